/**
 * The one error class of the native boundary, and the status checks that always throw it.
 *
 * Synchronous calls read this thread's last error (`hn_last_error_*`); calls declared
 * `nonblocking` run on another thread, so their message is read from the handle instead.
 */
import { getNative } from "./ffi.ts";
import { type OutStringCall, readOutString } from "./strings.ts";

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

function fail(status: number, op: string, message: string): never {
  const text = message === "" ? "(the library recorded no message)" : message;
  throw new NativeError(statusName(status), op, status in STATUS_NAMES ? text : `status ${status}: ${text}`, {
    status,
  });
}

/** This thread's last error message (empty when there is none). */
export function lastErrorMessage(): string {
  const { hn_last_error_length, hn_last_error_message } = getNative().symbols;
  const len = Number(hn_last_error_length());
  if (len === 0) return "";
  const buf = new Uint8Array(len);
  const written = Number(hn_last_error_message(buf, BigInt(len)));
  return new TextDecoder().decode(buf.subarray(0, Math.min(written, len)));
}

/** Throws NativeError unless `status` is HN_OK; the message is this thread's last error. */
export function check(status: number, op: string): void {
  if (status !== HN_OK) fail(status, op, lastErrorMessage());
}

/** Reads a handle's last error: `hn_model_last_error` / `hn_trainer_last_error` bound to a handle. */
export type HandleErrorFn = OutStringCall;

/**
 * Throws NativeError unless `status` is HN_OK; for nonblocking calls, whose message lives on
 * the handle (the thread-local of the worker thread is out of reach).
 */
export function checkHandle(status: number, op: string, handleError: HandleErrorFn): void {
  if (status === HN_OK) return;
  let message: string;
  try {
    message = readOutString(`${op} (reading the handle's error)`, handleError, (s) => {
      if (s !== HN_OK) throw new Error(`status ${s}`);
    });
  } catch (err) {
    message = `(could not read the handle's error message: ${err instanceof Error ? err.message : err})`;
  }
  fail(status, op, message);
}

/** A NativeError for a call on a closed handle; native code is not touched. */
export function closedError(op: string, what: string): NativeError {
  return new NativeError("CLOSED", op, `the ${what} is closed`);
}
