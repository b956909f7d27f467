/** Shared fixtures of the native tests: a seeded PRNG, batches, TS reference math, safetensors. */
import assert from "node:assert/strict";
import { type BatchShape, NativeError, type NativeErrorCode } from "../../ts/mod.ts";

function expectNative(err: unknown, code: NativeErrorCode, pattern?: RegExp): NativeError {
  assert.ok(err instanceof NativeError, `expected a NativeError, got ${err}`);
  assert.equal(err.name, "NativeError");
  assert.equal(err.code, code, `code of: ${err.message}`);
  if (pattern) assert.match(err.message, pattern);
  return err;
}

/** Asserts that `fn` throws a NativeError with `code` (and a message matching `pattern`). */
export function throwsNative(fn: () => unknown, code: NativeErrorCode, pattern?: RegExp): NativeError {
  try {
    fn();
  } catch (err) {
    return expectNative(err, code, pattern);
  }
  assert.fail(`expected NativeError ${code}, nothing was thrown`);
}

/** Asserts that `fn()` rejects with a NativeError with `code` (and a message matching `pattern`). */
export async function rejectsNative(
  fn: () => Promise<unknown>,
  code: NativeErrorCode,
  pattern?: RegExp,
): Promise<NativeError> {
  try {
    await fn();
  } catch (err) {
    return expectNative(err, code, pattern);
  }
  assert.fail(`expected NativeError ${code}, the promise resolved`);
}

/** mulberry32: a small seeded PRNG in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal samples (Box-Muller) into a Float32Array. */
export function gaussian(length: number, seed: number): Float32Array {
  const rand = prng(seed);
  const out = new Float32Array(length);
  for (let i = 0; i < length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - rand()));
    const th = 2 * Math.PI * rand();
    out[i] = r * Math.cos(th);
    if (i + 1 < length) out[i + 1] = r * Math.sin(th);
  }
  return out;
}

/** A fixed NCHW batch. */
export function batch(
  n: number,
  c: number,
  hw: number,
  seed: number,
): { x: Float32Array; shape: BatchShape } {
  return { x: gaussian(n * c * hw * hw, seed), shape: [n, c, hw, hw] };
}

/** Mean softmax cross-entropy of `logits` [n, c] in float64, and its gradient as float32. */
export function softmaxCrossEntropy(
  logits: Float32Array,
  targets: Int32Array,
  c: number,
): { loss: number; grad: Float32Array } {
  const n = targets.length;
  const grad = new Float32Array(n * c);
  let loss = 0;
  for (let i = 0; i < n; i++) {
    const row = Array.from(logits.subarray(i * c, (i + 1) * c));
    const max = Math.max(...row);
    const exps = row.map((v) => Math.exp(v - max));
    const sum = exps.reduce((a, b) => a + b, 0);
    loss += -(row[targets[i]] - max - Math.log(sum));
    for (let j = 0; j < c; j++) grad[i * c + j] = (exps[j] / sum - (j === targets[i] ? 1 : 0)) / n;
  }
  return { loss: loss / n, grad };
}

/** Largest |a[i] - b[i]|. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

// ---- safetensors: 8-byte LE header length, JSON header, then the data ---------------------

export interface StTensor {
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

export interface StFile {
  tensors: Map<string, StTensor>;
  metadata: Record<string, string> | undefined;
}

/** Parses a safetensors file into its tensors (in header order) and metadata. */
export function parseSafetensors(bytes: Uint8Array): StFile {
  const headerLen = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen)));
  const base = 8 + headerLen;
  const tensors = new Map<string, StTensor>();
  let metadata: Record<string, string> | undefined;
  for (const [name, v] of Object.entries(header)) {
    if (name === "__metadata__") {
      metadata = v as Record<string, string>;
      continue;
    }
    const { dtype, shape, data_offsets: [s, e] } = v as {
      dtype: string;
      shape: number[];
      data_offsets: number[];
    };
    tensors.set(name, { dtype, shape, data: bytes.slice(base + s, base + e) });
  }
  return { tensors, metadata };
}

/** Writes tensors contiguously after a space-padded header (valid safetensors). */
export function writeSafetensors(file: StFile): Uint8Array {
  const header: Record<string, unknown> = {};
  if (file.metadata) header.__metadata__ = file.metadata;
  let offset = 0;
  for (const [name, t] of file.tensors) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.length] };
    offset += t.data.length;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const t of file.tensors.values()) {
    out.set(t.data, at);
    at += t.data.length;
  }
  return out;
}
