/**
 * Helpers shared by the built-in samplers: active-class lookup, class counts, and a weighted
 * draw over samples (cumulative weights in a Float64Array + binary search) with or without
 * replacement.
 */
import type { Rng } from "../../pipeline/types.ts";

/** A 0/1 lookup of the active classes, sized to cover every label and class index. */
export function activeLookup(labels: Int32Array, activeClasses: number[]): Uint8Array {
  let max = 0;
  for (const k of activeClasses) max = Math.max(max, k);
  for (let i = 0; i < labels.length; i++) if (labels[i] > max) max = labels[i];
  const on = new Uint8Array(max + 1);
  for (const k of activeClasses) {
    if (!Number.isInteger(k) || k < 0) throw new Error(`sampler: active class ${k} is not a class index`);
    on[k] = 1;
  }
  return on;
}

/** Number of samples of each class (length covers the largest label). */
export function classCounts(labels: Int32Array, minLength = 0): Float64Array {
  let max = minLength - 1;
  for (let i = 0; i < labels.length; i++) {
    const v = labels[i];
    if (v < 0) throw new Error(`sampler: label ${v} at index ${i} is negative`);
    if (v > max) max = v;
  }
  const counts = new Float64Array(max + 1);
  for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
  return counts;
}

/** Indices whose label is active, ascending. */
export function activeIndices(labels: Int32Array, activeClasses: number[]): Int32Array {
  const on = activeLookup(labels, activeClasses);
  let n = 0;
  for (let i = 0; i < labels.length; i++) n += on[labels[i]];
  const out = new Int32Array(n);
  let j = 0;
  for (let i = 0; i < labels.length; i++) if (on[labels[i]]) out[j++] = i;
  return out;
}

/** First index i with cum[i] > u (cum ascending, u < cum[last]). */
export function upperBound(cum: Float64Array, u: number): number {
  let lo = 0, hi = cum.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cum[mid] > u) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/**
 * Draws `numSamples` indices over the active samples, each with weight `classWeight[label]`
 * (a per-class weight: every sample of a class weighs the same, like torch's
 * WeightedRandomSampler fed with per-sample weights). With replacement: independent draws by
 * inverse CDF. Without: weighted sampling without replacement (Efraimidis-Spirakis keys), so
 * `numSamples` must not exceed the number of active samples with weight > 0.
 */
export function weightedDraw(
  labels: Int32Array,
  activeClasses: number[],
  classWeight: (count: number) => number,
  numSamples: number | null,
  replacement: boolean,
  rng: Rng,
): Int32Array {
  const idx = activeIndices(labels, activeClasses);
  if (idx.length === 0) {
    throw new Error(
      `sampler: the training split has no samples of the active classes [${activeClasses.join(", ")}]`,
    );
  }
  const counts = classCounts(labels);
  const m = numSamples ?? idx.length;
  if (!Number.isInteger(m) || m < 0) {
    throw new Error(`sampler: numSamples must be a non-negative integer; got ${m}`);
  }
  const w = new Float64Array(idx.length);
  for (let j = 0; j < idx.length; j++) w[j] = classWeight(counts[labels[idx[j]]]);
  const out = new Int32Array(m);
  if (replacement) {
    const cum = new Float64Array(idx.length);
    let acc = 0;
    for (let j = 0; j < idx.length; j++) {
      acc += w[j];
      cum[j] = acc;
    }
    if (!(acc > 0)) throw new Error("sampler: all sample weights are zero");
    for (let i = 0; i < m; i++) out[i] = idx[upperBound(cum, rng.next() * acc)];
    return out;
  }
  let positive = 0;
  for (let j = 0; j < w.length; j++) if (w[j] > 0) positive++;
  if (m > positive) {
    throw new Error(
      `sampler: numSamples ${m} without replacement exceeds the ${positive} active samples; ` +
        `set replacement: true or lower numSamples`,
    );
  }
  // key_j = log(u_j) / w_j; the m largest keys are a weighted sample without replacement, in order
  const keys = new Float64Array(idx.length);
  for (let j = 0; j < idx.length; j++) {
    let u = rng.next();
    while (u === 0) u = rng.next();
    keys[j] = w[j] > 0 ? Math.log(u) / w[j] : -Infinity;
  }
  const order = Int32Array.from({ length: idx.length }, (_, j) => j);
  order.sort((a, b) => keys[b] - keys[a]);
  for (let i = 0; i < m; i++) out[i] = idx[order[i]];
  return out;
}

/**
 * Per-draw class probabilities when each sample of class k weighs `classWeight(count_k)`:
 * share_k ∝ count_k * classWeight(count_k) over the active classes with samples.
 */
export function weightedShare(
  labels: Int32Array,
  activeClasses: number[],
  numClasses: number,
  classWeight: (count: number) => number,
): number[] {
  const counts = classCounts(labels, numClasses);
  const share = new Array<number>(numClasses).fill(0);
  let total = 0;
  for (const k of new Set(activeClasses)) {
    if (k < 0 || k >= numClasses || counts[k] === 0) continue;
    share[k] = counts[k] * classWeight(counts[k]);
    total += share[k];
  }
  return total > 0 ? share.map((v) => v / total) : share;
}
