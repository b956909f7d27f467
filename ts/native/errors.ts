/**
 * The one error class of the native boundary and the status codes of docs/ABI.md. This module
 * imports nothing: `ffi.ts` and `strings.ts` throw its errors, and `status.ts` (which calls the
 * library) turns statuses into them.
 */

/** Status codes of docs/ABI.md, by value. */
export const STATUS_NAMES = {
  0: "OK",
  1: "INVALID_ARG",
  2: "TORCH",
  3: "IO",
  4: "CHECKPOINT",
  5: "STATE",
  6: "BUFFER_TOO_SMALL",
  7: "CUDA",
  99: "PANIC",
} as const;

/** `HN_OK`. */
export const HN_OK = 0;
/** `HN_ERR_BUFFER_TOO_SMALL`: `out_len` holds the needed size. */
export const HN_ERR_BUFFER_TOO_SMALL = 6;

/** A status name of the ABI. */
export type StatusCode = Exclude<(typeof STATUS_NAMES)[keyof typeof STATUS_NAMES], "OK">;

/**
 * Codes raised on the TS side: `CLOSED` (call on a closed handle, native code not touched),
 * `BUSY` (a synchronous call while a non-blocking one runs on the same model), `LOAD_FAILED`,
 * `ABI_MISMATCH`, and `UNKNOWN_STATUS` for a status the ABI does not list.
 */
export type NativeErrorCode =
  | StatusCode
  | "CLOSED"
  | "BUSY"
  | "LOAD_FAILED"
  | "ABI_MISMATCH"
  | "UNKNOWN_STATUS";

/** An error from (or about) libhybridnet: `code` is the status name, `op` the symbol or method. */
export class NativeError extends Error {
  override readonly name = "NativeError";
  readonly code: NativeErrorCode;
  readonly op: string;
  /** The raw status, when the error came from a native call. */
  readonly status: number | null;

  constructor(
    code: NativeErrorCode,
    op: string,
    message: string,
    options?: ErrorOptions & { status?: number },
  ) {
    super(`${op} failed [${code}]: ${message}`, options);
    this.code = code;
    this.op = op;
    this.status = options?.status ?? null;
  }
}

/** The status name of a native status value. */
export function statusName(status: number): StatusCode | "UNKNOWN_STATUS" {
  const name = (STATUS_NAMES as Record<number, string>)[status];
  return name === undefined || name === "OK" ? "UNKNOWN_STATUS" : name as StatusCode;
}

/** The NativeError for a failed native call: `status` names the code, `message` is the library's. */
export function statusError(status: number, op: string, message: string): NativeError {
  const text = message === "" ? "(the library recorded no message)" : message;
  return new NativeError(
    statusName(status),
    op,
    status in STATUS_NAMES ? text : `status ${status}: ${text}`,
    {
      status,
    },
  );
}

/** A NativeError for a call on a closed handle; native code is not touched. */
export function closedError(op: string, what: string): NativeError {
  return new NativeError("CLOSED", op, `the ${what} is closed`);
}
