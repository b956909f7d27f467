/**
 * Float64 reference math shared by the built-in losses: masked log-softmax per row, and the
 * focal / cross-entropy loss (with optional per-class alpha and label smoothing) with its
 * gradient. Mean over the batch: `L = (1/n) Σ_i alpha[t_i] · ℓ_i` (a plain mean, not divided
 * by Σ alpha, the same as the native loss).
 */
import type { LossResult } from "../../pipeline/types.ts";

export interface LossMath {
  /** 0 = cross-entropy */
  gamma: number;
  alpha: number[] | null;
  /** cross-entropy only: target distribution (1-ε)·onehot + ε/|active| */
  labelSmoothing: number;
}

/** Throws on inconsistent shapes, targets outside [0,c) or on a masked-out class. */
export function checkLossInputs(
  name: string,
  logits: ArrayLike<number>,
  targets: Int32Array,
  n: number,
  c: number,
  mask: Uint8Array | null,
  alpha: number[] | null,
): void {
  if (!(Number.isInteger(n) && n > 0 && Number.isInteger(c) && c > 0)) {
    throw new Error(`${name}: n and c must be positive integers; got n=${n}, c=${c}`);
  }
  if (logits.length !== n * c) {
    throw new Error(`${name}: logits has ${logits.length} values; [n, c] needs ${n * c}`);
  }
  if (targets.length !== n) throw new Error(`${name}: targets has ${targets.length} values; n = ${n}`);
  if (alpha !== null && alpha.length !== c) {
    throw new Error(`${name}: alpha has ${alpha.length} entries, but there are ${c} classes`);
  }
  if (mask !== null) {
    if (mask.length !== c) {
      throw new Error(`${name}: activeMask has ${mask.length} entries, but there are ${c} classes`);
    }
    if (!mask.some((v) => v !== 0)) throw new Error(`${name}: activeMask masks out every class`);
  }
  for (let i = 0; i < n; i++) {
    const t = targets[i];
    if (!(t >= 0 && t < c)) throw new Error(`${name}: target ${t} at index ${i} is outside [0, ${c})`);
    if (mask !== null && mask[t] === 0) {
      throw new Error(`${name}: target ${t} at index ${i} is a masked-out class`);
    }
  }
}

/** Mean loss and dL/dlogits (float64 math, float32 gradient); masked classes get gradient 0. */
export function computeLoss(
  name: string,
  m: LossMath,
  logits: ArrayLike<number>,
  targets: Int32Array,
  n: number,
  c: number,
  mask: Uint8Array | null,
): LossResult {
  checkLossInputs(name, logits, targets, n, c, mask, m.alpha);
  const grad = new Float32Array(n * c);
  const logp = new Float64Array(c);
  const on = (j: number): boolean => mask === null || mask[j] !== 0;
  let activeCount = 0;
  for (let j = 0; j < c; j++) if (on(j)) activeCount++;
  const eps = m.labelSmoothing;
  const gamma = m.gamma;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const row = i * c;
    let mx = -Infinity;
    for (let j = 0; j < c; j++) if (on(j) && logits[row + j] > mx) mx = logits[row + j];
    let s = 0;
    for (let j = 0; j < c; j++) if (on(j)) s += Math.exp(logits[row + j] - mx);
    const lse = mx + Math.log(s);
    for (let j = 0; j < c; j++) logp[j] = on(j) ? logits[row + j] - lse : -Infinity;
    const t = targets[i];
    const a = m.alpha === null ? 1 : m.alpha[t];
    const lpt = logp[t];
    const pt = Math.exp(lpt);
    if (gamma === 0) {
      // cross-entropy against q = (1-ε)·onehot(t) + ε/|active|
      let l = -(1 - eps) * lpt;
      if (eps > 0) {
        let sumLogp = 0;
        for (let j = 0; j < c; j++) if (on(j)) sumLogp += logp[j];
        l -= (eps / activeCount) * sumLogp;
      }
      total += a * l;
      for (let j = 0; j < c; j++) {
        if (!on(j)) continue;
        const q = (j === t ? 1 - eps : 0) + (eps > 0 ? eps / activeCount : 0);
        grad[row + j] = (a * (Math.exp(logp[j]) - q)) / n;
      }
    } else {
      // focal: ℓ = -(1-p)^γ log p;  dℓ/dz_j = [γ(1-p)^(γ-1) p log p - (1-p)^γ] (δ_jt - p_j)
      const u = -Math.expm1(lpt); // 1 - p_t, accurate near p_t = 1
      const mod = Math.pow(u, gamma);
      total += a * (-mod * lpt);
      const term1 = u > 0 ? gamma * Math.pow(u, gamma - 1) * pt * lpt : 0;
      const coef = term1 - mod;
      for (let j = 0; j < c; j++) {
        if (!on(j)) continue;
        const d = (j === t ? 1 : 0) - Math.exp(logp[j]);
        grad[row + j] = (a * coef * d) / n;
      }
    }
  }
  return { loss: total / n, grad };
}

/** The mask as the native `classMask` (0/1 numbers), or null. */
export function maskToNative(mask: Uint8Array | null): (0 | 1)[] | null {
  return mask === null ? null : Array.from(mask, (v) => (v !== 0 ? 1 : 0));
}
