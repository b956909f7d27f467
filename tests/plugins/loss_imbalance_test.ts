import assert from "node:assert/strict";
import { createRng } from "../../ts/pipeline/rng.ts";
import type { DataInfo, Loss, PluginModule, StagePlan } from "../../ts/pipeline/types.ts";
import { plugin as cbFocal } from "../../ts/plugins/loss/class-balanced-focal.ts";
import { plugin as ce } from "../../ts/plugins/loss/cross-entropy.ts";
import { plugin as focal } from "../../ts/plugins/loss/focal.ts";
import { ldamMargins, plugin as ldam } from "../../ts/plugins/loss/ldam-drw.ts";
import { plugin as logitAdjusted } from "../../ts/plugins/loss/logit-adjusted.ts";
import { plugin as ordinal } from "../../ts/plugins/loss/ordinal.ts";

const ctx = { configDir: ".", seed: 0, epochs: 10, log: (): void => {} };
const PLAN: StagePlan = { activeClasses: [], stageIndex: 0, stageCount: 1, maskInactive: false };

function make(mod: PluginModule, cfg: Record<string, unknown> = {}, counts?: number[]): Loss {
  const loss = mod.create(mod.configSchema.parse(cfg), ctx) as Loss;
  if (counts) loss.setData!(dataInfo(counts));
  return loss;
}

function dataInfo(counts: number[]): DataInfo {
  return { numClasses: counts.length, classNames: counts.map((_, k) => `c${k}`), classCounts: counts };
}

function randomCase(
  seed: number,
  n: number,
  c: number,
  mask: Uint8Array | null,
  spread = 6,
): { logits: Float64Array; targets: Int32Array } {
  const r = createRng(seed);
  const logits = Float64Array.from({ length: n * c }, () => (r.next() - 0.5) * spread);
  const allowed = [...Array(c).keys()].filter((k) => mask === null || mask[k] === 1);
  const targets = Int32Array.from({ length: n }, () => allowed[r.int(allowed.length)]);
  return { logits, targets };
}

// The losses read logits as plain numbers, so float64 logits (cast) give a float64 finite difference.
const f64 = (z: Float64Array): Float32Array => z as unknown as Float32Array;

function loss1(loss: Loss, z: number[], t: number, mask: Uint8Array | null = null): number {
  return loss.compute(Float32Array.from(z), Int32Array.from([t]), 1, z.length, mask).loss;
}

function near(a: number, b: number, tol: number, what: string): void {
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);
}

/** Central differences in float64 against the analytic gradient, relative error < 1e-4. */
function checkGradient(what: string, loss: Loss, seed: number, mask: Uint8Array | null, spread = 6): void {
  const n = 4, c = 5, h = 1e-6;
  const { logits: z, targets } = randomCase(seed, n, c, mask, spread);
  const { grad } = loss.compute(f64(z), targets, n, c, mask);
  for (let k = 0; k < z.length; k++) {
    const zp = z.slice(), zm = z.slice();
    zp[k] += h;
    zm[k] -= h;
    const fd =
      (loss.compute(f64(zp), targets, n, c, mask).loss - loss.compute(f64(zm), targets, n, c, mask).loss) /
      (2 * h);
    const err = Math.abs(fd - grad[k]);
    assert.ok(
      err <= 1e-4 * Math.max(Math.abs(fd), Math.abs(grad[k])) + 1e-8,
      `${what} seed ${seed} logit ${k}: analytic ${grad[k]}, numeric ${fd}`,
    );
    if (mask !== null && mask[k % c] === 0) {
      assert.equal(grad[k], 0, `${what}: masked class ${k % c} has a gradient`);
    }
  }
}

const MASK = Uint8Array.from([1, 0, 1, 1, 0]);
const COUNTS = [500, 3, 40, 0, 12];

Deno.test("loss imbalance: gradients match central finite differences, with and without a mask", () => {
  const drwLate = make(ldam, { scale: 1, labelSmoothing: 0.1 }, COUNTS);
  const drwOn = make(ldam, { drwEpoch: 0, drwBeta: 0.99 }, COUNTS);
  drwOn.startEpoch!(0, PLAN);
  const cases: [string, Loss, number?][] = [
    ["class-balanced-focal", make(cbFocal, { beta: 0.99 }, COUNTS)],
    ["class-balanced-focal gamma 2", make(cbFocal, { beta: 0.9, gamma: 2 }, COUNTS)],
    ["ldam-drw scale 1 smoothing", drwLate],
    // scale 30 is meant for cosine logits in [-1, 1]
    ["ldam-drw scale 30 drw on", drwOn, 1],
    ["logit-adjusted", make(logitAdjusted, {}, COUNTS)],
    ["logit-adjusted tau 2 smoothing", make(logitAdjusted, { tau: 2, labelSmoothing: 0.2 }, COUNTS)],
    ["ordinal", make(ordinal)],
    ["ordinal alpha 0.1", make(ordinal, { alpha: 0.1 })],
  ];
  for (const [i, [what, loss, spread]] of cases.entries()) {
    for (let rep = 0; rep < 2; rep++) {
      checkGradient(what, loss, 10 * i + rep, null, spread);
      checkGradient(`${what} masked`, loss, 10 * i + rep + 5, MASK, spread);
    }
  }
});

Deno.test("class-balanced-focal: weights are the normalised inverse effective numbers", () => {
  // β = 0.5, counts [1, 2, 3]: E_n = (1 - 0.5^n)/0.5 = [1, 1.5, 1.75] -> 1/E = [1, 2/3, 4/7],
  // sum 47/21, scaled to sum 3: [63/47, 42/47, 36/47]
  const w = make(cbFocal, { beta: 0.5 }, [1, 2, 3]).native!(null).alpha!;
  [63 / 47, 42 / 47, 36 / 47].forEach((v, k) => near(w[k], v, 1e-12, `weight ${k}`));
  // class 2 has no samples: normalised over [1, 2] (1/E = [1, 2/3] -> [6/5, 4/5]), class 2 as the rarest
  const w0 = make(cbFocal, { beta: 0.5 }, [1, 2, 0]).native!(null).alpha!;
  [6 / 5, 4 / 5, 6 / 5].forEach((v, k) => near(w0[k], v, 1e-12, `weight ${k} with an empty class`));
  assert.deepEqual(make(cbFocal, { beta: 0 }, [7, 1, 300]).native!(null).alpha, [1, 1, 1]);
  // β = 0.999 against the formula, and the loss is focal with those alphas
  const counts = [1000, 100, 10];
  const raw = counts.map((n) => (1 - 0.999) / (1 - 0.999 ** n));
  const sum = raw.reduce((a, b) => a + b);
  const loss = make(cbFocal, {}, counts);
  const alpha = loss.native!(null).alpha!;
  raw.forEach((v, k) => near(alpha[k], (3 * v) / sum, 1e-9, `beta 0.999 weight ${k}`));
  const { logits, targets } = randomCase(1, 6, 3, null);
  const z = Float32Array.from(logits);
  const a = loss.compute(z, targets, 6, 3, null);
  const b = make(focal, { gamma: 1, alpha }).compute(z, targets, 6, 3, null);
  assert.equal(a.loss, b.loss);
  assert.deepEqual(a.grad, b.grad);
});

Deno.test("class-balanced-focal: native() is focal with the same alpha, gamma and mask", () => {
  const loss = make(cbFocal, { beta: 0.99, gamma: 2 }, [50, 5, 500]);
  const nat = loss.native!(Uint8Array.from([1, 0, 1]));
  assert.equal(nat.kind, "focal");
  assert.equal(nat.gamma, 2);
  assert.deepEqual(nat.classMask, [1, 0, 1]);
  const w = [50, 5, 500].map((n) => 0.01 / (1 - 0.99 ** n));
  const s = w.reduce((x, y) => x + y);
  nat.alpha!.forEach((v, k) => near(v, (3 * w[k]) / s, 1e-12, `native alpha ${k}`));
  // same alpha as the TS path: one sample of class k scales a gamma-0-like loss by alpha[k]
  const z = [0.3, -0.2, 1.1];
  const plain = make(focal, { gamma: 2 });
  for (let k = 0; k < 3; k++) {
    near(loss1(loss, z, k), nat.alpha![k] * loss1(plain, z, k), 1e-12, `class ${k}`);
  }
});

Deno.test("ldam-drw: margins, scale and the hand-computed loss", () => {
  assert.deepEqual(ldamMargins([1, 16], 0.5), [0.5, 0.25]);
  const m = ldamMargins([10, 1000, 10], 1);
  near(m[0], 1, 1e-15, "rarest margin");
  near(m[1], Math.pow(10 / 1000, 0.25), 1e-15, "common margin");
  // counts [1, 16], scale 1: target 0 -> u = [-0.5, 0], CE = log(1 + e^0.5); target 1 -> u = [0, -0.25]
  const l1 = make(ldam, { scale: 1 }, [1, 16]);
  near(loss1(l1, [0, 0], 0), Math.log(1 + Math.exp(0.5)), 1e-12, "target 0");
  near(loss1(l1, [0, 0], 1), Math.log(1 + Math.exp(0.25)), 1e-12, "target 1");
  // scale 2: u = 2·[-0.5, 0] = [-1, 0]
  near(loss1(make(ldam, { scale: 2 }, [1, 16]), [0, 0], 0), Math.log(1 + Math.E), 1e-12, "scale 2");
  // maxMargin 0 and scale 1 is cross-entropy
  const { logits, targets } = randomCase(4, 5, 4, null);
  const z = Float32Array.from(logits);
  const a = make(ldam, { scale: 1, maxMargin: 0 }, [5, 6, 7, 8]).compute(z, targets, 5, 4, null);
  const b = make(ce).compute(z, targets, 5, 4, null);
  near(a.loss, b.loss, 1e-12, "no margin");
  a.grad.forEach((g, k) => near(g, b.grad[k], 1e-7, `grad ${k}`));
  // a masked class is out of the softmax: [z0, z1, masked] with target 0 = the two-class loss
  near(
    loss1(l1, [0.4, -0.3], 0),
    loss1(make(ldam, { scale: 1 }, [1, 16, 3]), [0.4, -0.3, 9], 0, Uint8Array.from([1, 1, 0])),
    1e-12,
    "masked",
  );
});

Deno.test("ldam-drw: weights 1 before drwEpoch, effective-number weights from it on", () => {
  const counts = [1, 16];
  // drwBeta 0.5: 1/E = [1, 0.5/(1-0.5^16)], scaled to sum 2
  const raw = [1, 0.5 / (1 - 0.5 ** 16)];
  const w = raw.map((v) => (2 * v) / (raw[0] + raw[1]));
  const loss = make(ldam, { scale: 1, drwBeta: 0.5 }, counts); // ctx.epochs 10 -> drwEpoch 8
  const base = [loss1(loss, [0.2, 0.1], 0), loss1(loss, [0.2, 0.1], 1)];
  loss.startEpoch!(7, PLAN);
  near(loss1(loss, [0.2, 0.1], 0), base[0], 0, "epoch 7, class 0");
  near(loss1(loss, [0.2, 0.1], 1), base[1], 0, "epoch 7, class 1");
  loss.startEpoch!(8, PLAN);
  near(loss1(loss, [0.2, 0.1], 0), w[0] * base[0], 1e-12, "epoch 8, class 0");
  near(loss1(loss, [0.2, 0.1], 1), w[1] * base[1], 1e-12, "epoch 8, class 1");
  // an explicit drwEpoch, and a resume straight into a later epoch
  const early = make(ldam, { scale: 1, drwBeta: 0.5, drwEpoch: 2 }, counts);
  early.startEpoch!(1, PLAN);
  near(loss1(early, [0.2, 0.1], 1), base[1], 0, "drwEpoch 2 at epoch 1");
  const resumed = make(ldam, { scale: 1, drwBeta: 0.5, drwEpoch: 2 }, counts);
  resumed.startEpoch!(5, PLAN);
  near(loss1(resumed, [0.2, 0.1], 1), w[1] * base[1], 1e-12, "resumed at epoch 5");
  assert.equal(loss.native, undefined);
});

Deno.test("logit-adjusted: tau 0 and equal counts are cross-entropy; hand value with a prior", () => {
  const { logits, targets } = randomCase(2, 6, 4, null);
  const z = Float32Array.from(logits);
  const plain = make(ce).compute(z, targets, 6, 4, null);
  for (const [cfg, counts] of [[{ tau: 0 }, [1, 50, 7, 300]], [{}, [9, 9, 9, 9]]] as const) {
    const r = make(logitAdjusted, cfg, [...counts]).compute(z, targets, 6, 4, null);
    near(r.loss, plain.loss, 1e-12, `${JSON.stringify(cfg)} ${counts}`);
    r.grad.forEach((g, k) => near(g, plain.grad[k], 1e-7, `grad ${k}`));
  }
  // counts [1, 3], logits [0, 0]: adjusted [log 1/4, log 3/4], target 0 -> -log(1/4)
  near(loss1(make(logitAdjusted, {}, [1, 3]), [0, 0], 0), Math.log(4), 1e-12, "balanced softmax");
  // tau 2: [2 log 1/4, 2 log 3/4] -> p0 = 1/(1 + 9)
  near(loss1(make(logitAdjusted, { tau: 2 }, [1, 3]), [0, 0], 0), Math.log(10), 1e-12, "tau 2");
  // masked class 2 is left out of the prior and the softmax
  near(
    loss1(make(logitAdjusted, {}, [1, 3, 400]), [0, 0, 5], 0, Uint8Array.from([1, 1, 0])),
    Math.log(4),
    1e-12,
    "masked",
  );
  // an empty class gets the rarest present count: [0, 2, 6] acts as [2, 2, 6]
  near(
    loss1(make(logitAdjusted, {}, [0, 2, 6]), [0.1, 0.5, -0.2], 0),
    loss1(make(logitAdjusted, {}, [2, 2, 6]), [0.1, 0.5, -0.2], 0),
    0,
    "empty class",
  );
  assert.equal(make(logitAdjusted).native, undefined);
});

Deno.test("ordinal: SORD soft labels by hand, and a huge alpha is cross-entropy", () => {
  // alpha ln 2, t = 1 of 3: q ∝ [1/2, 1, 1/2] = [1/4, 1/2, 1/4]; logits log q give p = q,
  // so the loss is the entropy 1.5 ln 2 and the gradient is 0
  const loss = make(ordinal, { alpha: Math.LN2 });
  const q = [0.25, 0.5, 0.25];
  const r = loss.compute(Float32Array.from(q.map(Math.log)), Int32Array.from([1]), 1, 3, null);
  near(r.loss, 1.5 * Math.LN2, 1e-7, "entropy");
  r.grad.forEach((g, k) => near(g, 0, 1e-7, `grad ${k}`));
  // uniform p: loss log C whatever q
  near(loss1(loss, [0.3, 0.3, 0.3], 0), Math.log(3), 1e-12, "uniform");
  // masked class 2, t = 0: q = [2/3, 1/3, -], p = softmax([0, 0]) -> grad (1/2 - q)
  const m = loss.compute(new Float32Array(3), Int32Array.from([0]), 1, 3, Uint8Array.from([1, 1, 0]));
  near(m.loss, Math.LN2, 1e-12, "masked loss");
  [0.5 - 2 / 3, 0.5 - 1 / 3, 0].forEach((v, k) => near(m.grad[k], v, 1e-7, `masked grad ${k}`));
  // alpha 1e6: q is one-hot -> plain cross-entropy
  const { logits, targets } = randomCase(3, 5, 6, null);
  const z = Float32Array.from(logits);
  const a = make(ordinal, { alpha: 1e6 }).compute(z, targets, 5, 6, null);
  const b = make(ce).compute(z, targets, 5, 6, null);
  near(a.loss, b.loss, 1e-12, "huge alpha");
  a.grad.forEach((g, k) => near(g, b.grad[k], 1e-7, `grad ${k}`));
  // closer wrong classes cost less than far ones with the same logit
  assert.ok(loss1(make(ordinal), [0, 5, 0, 0], 0) < loss1(make(ordinal), [0, 0, 0, 5], 0));
});

Deno.test("loss imbalance: errors name the plugin; schemas are strict", () => {
  const z = new Float32Array(6), t = Int32Array.from([0, 1]);
  for (const mod of [cbFocal, ldam, logitAdjusted]) {
    const loss = make(mod);
    assert.throws(
      () => loss.compute(z, t, 2, 3, null),
      new RegExp(`^Error: ${mod.name}: call setData \\(the training class counts\\) before compute`),
    );
    assert.throws(
      () => make(mod, {}, [2, 3]).compute(z, t, 2, 3, null),
      new RegExp(`${mod.name}: setData gave 2 classes`),
    );
    assert.throws(
      () => make(mod, {}, [0, 0, 0]),
      new RegExp(`${mod.name}: the training split has no samples`),
    );
    assert.throws(() => make(mod, {}, [1, 2.5, 3]), new RegExp(`${mod.name}: class count 2.5 of class 1`));
    assert.throws(
      () => loss.setData!({ numClasses: 4, classNames: [], classCounts: [1, 2, 3] }),
      new RegExp(`${mod.name}: setData gave 3 class counts for 4 classes`),
    );
    assert.throws(
      () => make(mod, {}, [1, 2, 3]).compute(z, Int32Array.from([0, 3]), 2, 3, null),
      new RegExp(`${mod.name}: target 3 at index 1 is outside`),
    );
  }
  assert.throws(() => make(cbFocal).native!(null), /class-balanced-focal: call setData/);
  assert.throws(
    () => make(ordinal).compute(z, t, 2, 3, Uint8Array.from([1, 0, 1])),
    /ordinal: target 1 at index 1 is a masked-out class/,
  );
  for (const mod of [cbFocal, ldam, logitAdjusted, ordinal]) {
    assert.throws(() => mod.configSchema.parse({ surelyNotAnOption: 1 }), /surelyNotAnOption/, mod.name);
  }
  assert.throws(() => cbFocal.configSchema.parse({ beta: 1 }));
  assert.throws(() => ldam.configSchema.parse({ scale: 0 }));
  assert.throws(() => ldam.configSchema.parse({ drwEpoch: 1.5 }));
  assert.throws(() => logitAdjusted.configSchema.parse({ labelSmoothing: 1 }));
  assert.throws(() => ordinal.configSchema.parse({ mode: "coral" }));
  assert.deepEqual(ldam.configSchema.parse({}), {
    maxMargin: 0.5,
    scale: 30,
    drwEpoch: null,
    drwBeta: 0.9999,
    labelSmoothing: 0,
  });
});
