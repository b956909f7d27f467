import assert from "node:assert/strict";
import { lossEval, type NativeLossInput } from "../../ts/mod.ts";
import { gaussian, maxAbsDiff, prng, throwsNative } from "./helpers.ts";

/** Straightforward float64 twin of the native loss: mean_i(-alpha_t (1 - p_t)^gamma log p_t). */
function referenceLoss(
  cfg: NativeLossInput,
  logits: ArrayLike<number>,
  c: number,
  targets: Int32Array,
): number {
  const n = targets.length;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const kept = [...Array(c).keys()].filter((j) => (cfg.classMask ?? [])[j] !== 0);
    const max = Math.max(...kept.map((j) => logits[i * c + j]));
    const logSum = Math.log(kept.reduce((s, j) => s + Math.exp(logits[i * c + j] - max), 0)) + max;
    const logp = logits[i * c + targets[i]] - logSum;
    const gamma = cfg.kind === "focal" ? (cfg.gamma ?? 1) : 0;
    const alpha = cfg.alpha ? cfg.alpha[targets[i]] : 1;
    total += -alpha * Math.pow(1 - Math.exp(logp), gamma) * logp;
  }
  return total / n;
}

/** Central differences of `f` at float64 `x`. */
function numericGrad(f: (x: Float64Array) => number, x: Float64Array, h: number): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const xp = x.slice();
    const xm = x.slice();
    xp[i] += h;
    xm[i] -= h;
    g[i] = (f(xp) - f(xm)) / (2 * h);
  }
  return g;
}

const N = 6;
const C = 5;
const logits = gaussian(N * C, 31).map((v) => 2 * v);
const rand = prng(8);
const targets = Int32Array.from({ length: N }, () => [0, 1, 3, 4][Math.floor(rand() * 4)]);

const CASES: [string, NativeLossInput][] = [
  ["cross-entropy", { kind: "cross_entropy" }],
  ["cross-entropy with class mask", { kind: "cross_entropy", classMask: [1, 1, 0, 1, 1] }],
  ["focal gamma 1 (the seed)", { kind: "focal" }],
  ["focal gamma 2", { kind: "focal", gamma: 2 }],
  ["focal gamma 2 with alpha and mask", {
    kind: "focal",
    gamma: 2,
    alpha: [0.5, 1, 1.5, 2, 0.25],
    classMask: [1, 1, 0, 1, 1],
  }],
  ["focal gamma 0", { kind: "focal", gamma: 0 }],
];

for (const [name, cfg] of CASES) {
  Deno.test(`lossEval ${name}: matches the TS float64 twin; gradient matches finite differences`, () => {
    const { loss, grad } = lossEval(cfg, logits, N, C, targets);
    const ref = referenceLoss(cfg, logits, C, targets);
    assert.ok(Math.abs(loss - ref) <= 1e-5 * Math.max(1, Math.abs(ref)), `loss ${loss} vs reference ${ref}`);

    // Gradient vs the float64 twin's central differences (tight) ...
    const twinGrad = numericGrad((z) => referenceLoss(cfg, z, C, targets), Float64Array.from(logits), 1e-6);
    assert.ok(maxAbsDiff(grad, twinGrad) <= 1e-5, `grad vs twin FD: ${maxAbsDiff(grad, twinGrad)}`);
    // ... and vs central differences of the native loss itself (float32 inputs: looser).
    const nativeFd = new Float64Array(N * C);
    for (let i = 0; i < N * C; i++) {
      const up = logits.slice();
      const down = logits.slice();
      up[i] += 1e-2;
      down[i] -= 1e-2;
      nativeFd[i] = (lossEval(cfg, up, N, C, targets).loss - lossEval(cfg, down, N, C, targets).loss) /
        (up[i] - down[i]);
    }
    assert.ok(maxAbsDiff(grad, nativeFd) <= 2e-3, `grad vs native FD: ${maxAbsDiff(grad, nativeFd)}`);
    if (cfg.classMask) {
      for (let i = 0; i < N; i++) assert.equal(grad[i * C + 2], 0, "masked class has no gradient");
    }
  });
}

Deno.test("lossEval: focal gamma 0 equals cross-entropy", () => {
  const ce = lossEval({ kind: "cross_entropy" }, logits, N, C, targets);
  const f0 = lossEval({ kind: "focal", gamma: 0 }, logits, N, C, targets);
  assert.ok(Math.abs(ce.loss - f0.loss) <= 1e-6);
  assert.ok(maxAbsDiff(ce.grad, f0.grad) <= 1e-6);
});

Deno.test("lossEval: bad arguments give INVALID_ARG", () => {
  throwsNative(() => lossEval({}, logits, N, C + 1, targets), "INVALID_ARG", /needs 36/);
  throwsNative(() => lossEval({ alpha: [1, 2] }, logits, N, C, targets), "INVALID_ARG", /alpha has 2/);
  throwsNative(() => lossEval({}, logits, N, C, Int32Array.of(0, 1, 2, 3, 4, 5)), "INVALID_ARG", /outside/);
  throwsNative(
    () => lossEval({ classMask: [1, 1, 0, 1, 1] }, logits, N, C, Int32Array.of(0, 2, 0, 0, 0, 0)),
    "INVALID_ARG",
    /masked/,
  );
  const nan = logits.slice();
  nan[3] = NaN;
  throwsNative(() => lossEval({}, nan, N, C, targets), "INVALID_ARG", /nan/i);
});
