/**
 * Status checks of native calls: they always throw NativeError on a status other than HN_OK.
 *
 * Synchronous calls read this thread's last error (`hn_last_error_*`). The message of a symbol
 * the ABI marks **NB** (it may run on another thread) is also on its handle, and is read from
 * there: the thread-local of a worker thread is out of reach.
 */
import { HN_OK, statusError } from "./errors.ts";
import { getNative } from "./ffi.ts";
import { type OutStringCall, readOutString } from "./strings.ts";

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
  if (status !== HN_OK) throw statusError(status, op, lastErrorMessage());
}

/** Reads a handle's last error: `hn_model_last_error` / `hn_trainer_last_error` bound to a handle. */
export type HandleErrorFn = OutStringCall;

/**
 * Throws NativeError unless `status` is HN_OK, with the message stored on the handle (for the
 * **NB** symbols, which may have run on another thread).
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
  throw statusError(status, op, message);
}
