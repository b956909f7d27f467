/**
 * Strings across the ABI. In: `(ptr *const u8, len usize)` UTF-8, not NUL-terminated.
 * Out: `(buf *mut u8, cap usize, out_len *mut usize)`, retried once with a larger buffer on
 * HN_ERR_BUFFER_TOO_SMALL (`out_len` then holds the needed size).
 */
import { HN_ERR_BUFFER_TOO_SMALL, NativeError } from "./errors.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const INITIAL_CAPACITY = 1024;

/** UTF-8 bytes of `s`, to pass as `(ptr, len)` with `BigInt(bytes.length)`. */
export function encodeString(s: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(s);
}

/** The JSON of `value` as UTF-8 bytes. */
export function encodeJson(value: unknown): Uint8Array<ArrayBuffer> {
  return encoder.encode(JSON.stringify(value));
}

/** A native call that writes a string into `(buf, cap, out_len)` and returns a status. */
export type OutStringCall = (
  buf: Uint8Array<ArrayBuffer>,
  cap: bigint,
  outLen: BigUint64Array<ArrayBuffer>,
) => number;

/**
 * Runs `call` with a buffer, growing it once if the library answers HN_ERR_BUFFER_TOO_SMALL;
 * any other status goes to `check` (which throws).
 */
export function readOutString(
  op: string,
  call: OutStringCall,
  check: (status: number, op: string) => void,
): string {
  const outLen = new BigUint64Array(1);
  let buf = new Uint8Array(INITIAL_CAPACITY);
  let status = call(buf, BigInt(buf.length), outLen);
  if (status === HN_ERR_BUFFER_TOO_SMALL) {
    buf = new Uint8Array(Number(outLen[0]));
    status = call(buf, BigInt(buf.length), outLen);
  }
  check(status, op);
  const len = Number(outLen[0]);
  if (len > buf.length) {
    throw new NativeError("BUFFER_TOO_SMALL", op, `out_len ${len} exceeds the buffer capacity ${buf.length}`);
  }
  return decoder.decode(buf.subarray(0, len));
}
