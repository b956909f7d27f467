/**
 * Plumbing shared by the handle wrappers: the per-model call queue and the batch checks done
 * in TS before a native call (the native side checks again).
 */
import { NativeError } from "./errors.ts";

/** `[n, c, h, w]` of an NCHW float32 batch. */
export type BatchShape = readonly [n: number, c: number, h: number, w: number];

const noop = (): void => {};

/**
 * Serializes calls on one native model and the trainers that share its weights: a call made
 * while another is in flight waits for it, it never runs beside it on another thread.
 */
export class CallQueue {
  #tail: Promise<void> = Promise.resolve();
  #pending = 0;

  /** True while a queued call has not settled. */
  get busy(): boolean {
    return this.#pending > 0;
  }

  /** Runs `fn` after every call queued before it has settled. */
  run<T>(fn: () => Promise<T> | T): Promise<T> {
    this.#pending++;
    const result = this.#tail.then(async () => {
      try {
        return await fn();
      } finally {
        this.#pending--;
      }
    });
    this.#tail = result.then(noop, noop);
    return result;
  }

  /** Runs `fn` now when idle, else after the queued calls settle (used to free handles). */
  whenIdle(fn: () => void): void {
    if (!this.busy) fn();
    else void this.#tail.then(fn);
  }
}

function invalid(op: string, message: string): NativeError {
  return new NativeError("INVALID_ARG", op, message);
}

/**
 * Checks an NCHW batch against the model; with `shapeOut` (4 x i64, reused per handle) writes
 * the shape there for the native call. Returns n. Throws NativeError `INVALID_ARG` naming what
 * to change.
 */
export function checkBatch(
  op: string,
  x: Float32Array,
  shape: BatchShape,
  inputChannels: number,
  shapeOut?: BigInt64Array,
): number {
  if (!(x instanceof Float32Array)) throw invalid(op, "input must be a Float32Array");
  if (!Array.isArray(shape) || shape.length !== 4) {
    const got = Array.isArray(shape) ? `${shape.length} dims [${shape.join(", ")}]` : String(shape);
    throw invalid(op, `shape must be [n, c, h, w] (4 dims); got ${got}`);
  }
  for (const [i, d] of shape.entries()) {
    if (!Number.isSafeInteger(d) || d <= 0) {
      throw invalid(op, `shape[${i}] must be a positive integer; got ${d} in [${shape.join(", ")}]`);
    }
  }
  const [n, c, h, w] = shape;
  if (c !== inputChannels) {
    throw invalid(op, `shape [${shape.join(", ")}] has ${c} channels, but the model takes ${inputChannels}`);
  }
  if (x.length !== n * c * h * w) {
    throw invalid(op, `input has ${x.length} values, but shape [${shape.join(", ")}] needs ${n * c * h * w}`);
  }
  if (shapeOut) {
    shapeOut[0] = BigInt(n);
    shapeOut[1] = BigInt(c);
    shapeOut[2] = BigInt(h);
    shapeOut[3] = BigInt(w);
  }
  return n;
}

/** Checks that `targets` holds n class indices in [0, numClasses). */
export function checkTargets(op: string, targets: Int32Array, n: number, numClasses: number): void {
  if (!(targets instanceof Int32Array)) throw invalid(op, "targets must be an Int32Array");
  if (targets.length !== n) throw invalid(op, `targets has ${targets.length} values; the batch has ${n}`);
  const bad = targets.findIndex((t) => t < 0 || t >= numClasses);
  if (bad >= 0) throw invalid(op, `targets[${bad}] = ${targets[bad]} is not a class in [0, ${numClasses})`);
}
