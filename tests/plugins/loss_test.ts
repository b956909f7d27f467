import assert from "node:assert/strict";
import { lossEval } from "../../ts/mod.ts";
import { createRng } from "../../ts/pipeline/rng.ts";
import type { Loss, PluginModule } from "../../ts/pipeline/types.ts";
import { computeLoss, type LossMath } from "../../ts/plugins/loss/common.ts";
import { plugin as ce } from "../../ts/plugins/loss/cross-entropy.ts";
import { plugin as focal } from "../../ts/plugins/loss/focal.ts";

const ctx = { configDir: ".", seed: 0, epochs: 10, log: (): void => {} };

function make(mod: PluginModule, cfg: Record<string, unknown> = {}): Loss {
  return mod.create(mod.configSchema.parse(cfg), ctx) as Loss;
}

function randomCase(
  seed: number,
  n: number,
  c: number,
  mask: Uint8Array | null,
): { logits: Float32Array; targets: Int32Array } {
  const r = createRng(seed);
  const logits = Float32Array.from({ length: n * c }, () => (r.next() - 0.5) * 6);
  const allowed = [...Array(c).keys()].filter((k) => mask === null || mask[k] === 1);
  const targets = Int32Array.from({ length: n }, () => allowed[r.int(allowed.length)]);
  return { logits, targets };
}

Deno.test("loss: uniform logits give log C (cross-entropy, and focal scaled by (1-1/C)^gamma)", () => {
  const n = 3, c = 4;
  const logits = new Float32Array(n * c).fill(0.7);
  const targets = Int32Array.from([0, 2, 3]);
  const r = make(ce).compute(logits, targets, n, c, null);
  assert.ok(Math.abs(r.loss - Math.log(4)) < 1e-12, `CE ${r.loss}`);
  // dL/dz_j = (p_j - δ)/n = (0.25 - δ)/3
  assert.ok(Math.abs(r.grad[0] - (0.25 - 1) / 3) < 1e-7);
  assert.ok(Math.abs(r.grad[1] - 0.25 / 3) < 1e-7);
  const f = make(focal, { gamma: 2 }).compute(logits, targets, n, c, null);
  assert.ok(Math.abs(f.loss - 0.75 ** 2 * Math.log(4)) < 1e-12, `focal ${f.loss}`);
  // masked: 2 of 4 classes active -> log 2
  const mask = Uint8Array.from([1, 0, 1, 0]);
  const m = make(ce).compute(logits.subarray(0, 8), Int32Array.from([0, 2]), 2, 4, mask);
  assert.ok(Math.abs(m.loss - Math.log(2)) < 1e-12);
  assert.equal(m.grad[1], 0);
  assert.equal(m.grad[3], 0);
});

Deno.test("loss: hand value with alpha, and focal gamma 0 equals cross-entropy", () => {
  // logits [0, ln 3] -> p = [1/4, 3/4]; target 1: CE = -ln(3/4); focal γ=1: (1/4)·(-ln 3/4)
  const logits = Float32Array.from([0, Math.log(3)]);
  const t = Int32Array.from([1]);
  assert.ok(Math.abs(make(ce).compute(logits, t, 1, 2, null).loss + Math.log(0.75)) < 1e-7);
  assert.ok(Math.abs(make(focal).compute(logits, t, 1, 2, null).loss + 0.25 * Math.log(0.75)) < 1e-7);
  assert.ok(
    Math.abs(make(ce, { alpha: [1, 2] }).compute(logits, t, 1, 2, null).loss + 2 * Math.log(0.75)) < 1e-7,
  );
  const { logits: z, targets } = randomCase(3, 7, 5, null);
  const a = make(ce, { alpha: [0.5, 1, 2, 1, 3] }).compute(z, targets, 7, 5, null);
  const b = make(focal, { gamma: 0, alpha: [0.5, 1, 2, 1, 3] }).compute(z, targets, 7, 5, null);
  assert.equal(a.loss, b.loss);
  assert.deepEqual(a.grad, b.grad);
});

Deno.test("loss: gradient matches central finite differences in float64", () => {
  const cases: { name: string; math: LossMath; mask: Uint8Array | null }[] = [
    { name: "CE", math: { gamma: 0, alpha: null, labelSmoothing: 0 }, mask: null },
    {
      name: "CE alpha mask",
      math: { gamma: 0, alpha: [1, 2, 0.5, 1, 3], labelSmoothing: 0 },
      mask: Uint8Array.from([1, 1, 0, 1, 0]),
    },
    {
      name: "CE smoothing mask",
      math: { gamma: 0, alpha: null, labelSmoothing: 0.1 },
      mask: Uint8Array.from([0, 1, 1, 1, 1]),
    },
    { name: "focal 1", math: { gamma: 1, alpha: null, labelSmoothing: 0 }, mask: null },
    {
      name: "focal 2 alpha mask",
      math: { gamma: 2, alpha: [0.25, 1, 1, 2, 0.5], labelSmoothing: 0 },
      mask: Uint8Array.from([1, 0, 1, 1, 0]),
    },
    { name: "focal 0.5", math: { gamma: 0.5, alpha: [1, 1, 1, 1, 4], labelSmoothing: 0 }, mask: null },
  ];
  const n = 4, c = 5, h = 1e-6;
  for (const [ci, { name, math, mask }] of cases.entries()) {
    for (let rep = 0; rep < 3; rep++) {
      const { logits, targets } = randomCase(100 * ci + rep, n, c, mask);
      const z = Float64Array.from(logits);
      const { grad } = computeLoss(name, math, z, targets, n, c, mask);
      for (let k = 0; k < z.length; k++) {
        const zp = z.slice(), zm = z.slice();
        zp[k] += h;
        zm[k] -= h;
        const fd = (computeLoss(name, math, zp, targets, n, c, mask).loss -
          computeLoss(name, math, zm, targets, n, c, mask).loss) / (2 * h);
        assert.ok(
          Math.abs(fd - grad[k]) < 1e-6,
          `${name} case ${rep} logit ${k}: analytic ${grad[k]}, numeric ${fd}`,
        );
        if (mask !== null && mask[k % c] === 0) {
          assert.equal(grad[k], 0, `${name}: masked class ${k % c} has a gradient`);
        }
      }
    }
  }
});

Deno.test("loss: TS and native twin agree to 1e-5", () => {
  const n = 8, c = 6;
  const rows: { mod: PluginModule; cfg: Record<string, unknown>; mask: Uint8Array | null }[] = [
    { mod: ce, cfg: {}, mask: null },
    { mod: ce, cfg: { alpha: [1, 2, 3, 0.5, 1, 1] }, mask: Uint8Array.from([1, 1, 0, 1, 0, 1]) },
    { mod: focal, cfg: {}, mask: null },
    { mod: focal, cfg: { gamma: 2 }, mask: Uint8Array.from([0, 1, 1, 1, 1, 0]) },
    {
      mod: focal,
      cfg: { gamma: 1, alpha: [0.25, 0.5, 1, 1, 2, 4] },
      mask: Uint8Array.from([1, 1, 1, 0, 1, 1]),
    },
  ];
  rows.forEach(({ mod, cfg, mask }, i) => {
    const loss = make(mod, cfg);
    assert.ok(loss.native, `${mod.name} has a native twin`);
    const nat = loss.native(mask);
    const { logits, targets } = randomCase(7 + i, n, c, mask);
    const ts = loss.compute(logits, targets, n, c, mask);
    const nv = lossEval(
      { kind: nat.kind, gamma: nat.gamma, alpha: nat.alpha, classMask: nat.classMask as (0 | 1)[] | null },
      logits,
      n,
      c,
      targets,
    );
    assert.ok(
      Math.abs(ts.loss - nv.loss) < 1e-5,
      `row ${i} ${mod.name}: loss TS ${ts.loss}, native ${nv.loss}`,
    );
    for (let k = 0; k < n * c; k++) {
      assert.ok(
        Math.abs(ts.grad[k] - nv.grad[k]) < 1e-5,
        `row ${i} ${mod.name}: grad[${k}] TS ${ts.grad[k]}, native ${nv.grad[k]}`,
      );
    }
  });
});

Deno.test("loss: native() config, and no native twin with label smoothing", () => {
  assert.deepEqual(make(focal).native!(Uint8Array.from([1, 0, 1])), {
    kind: "focal",
    gamma: 1,
    alpha: null,
    classMask: [1, 0, 1],
  });
  assert.deepEqual(make(ce, { alpha: [1, 2] }).native!(null), {
    kind: "cross_entropy",
    alpha: [1, 2],
    classMask: null,
  });
  assert.equal(make(ce, { labelSmoothing: 0.1 }).native, undefined);
});

Deno.test("loss: bad inputs are errors that say what is wrong", () => {
  const l = make(focal, { alpha: [1, 1] });
  const z = new Float32Array(6);
  assert.throws(
    () => l.compute(z, Int32Array.from([0, 1]), 2, 3, null),
    /alpha has 2 entries, but there are 3 classes/,
  );
  const m = make(ce);
  assert.throws(
    () => m.compute(z, Int32Array.from([0, 3]), 2, 3, null),
    /target 3 at index 1 is outside \[0, 3\)/,
  );
  assert.throws(
    () => m.compute(z, Int32Array.from([0, 1]), 2, 3, Uint8Array.from([1, 0, 1])),
    /masked-out class/,
  );
  assert.throws(() => m.compute(z, Int32Array.from([0, 1]), 2, 3, Uint8Array.from([0, 0, 0])), /every class/);
  assert.throws(() => m.compute(z, Int32Array.from([0]), 2, 3, null), /targets has 1 values/);
  assert.throws(() => focal.configSchema.parse({ gamma: -1 }));
  assert.throws(() => focal.configSchema.parse({ gama: 1 }), /gama/);
});

Deno.test("loss: focal at saturated logits: p_t = 1 gives loss and gradient 0, p_t ~ 0 the linear limit", () => {
  const logits = Float32Array.from([60, -60, -60]);
  const f = make(focal, { gamma: 0.5 });
  // (1 - p)^(gamma - 1) is infinite at p = 1: the gradient must still come out 0, not NaN
  const r = f.compute(logits, Int32Array.from([0]), 1, 3, null);
  assert.ok(Number.isFinite(r.loss) && r.grad.every(Number.isFinite), `loss ${r.loss}, grad ${r.grad}`);
  assert.ok(Math.abs(r.loss) <= 1e-12, `loss ${r.loss}`);
  r.grad.forEach((g, k) => assert.ok(Math.abs(g) <= 1e-12, `grad ${k}: ${g}`));
  // confidently wrong: -log p_t = 120 with (1 - p_t)^gamma = 1; the gradient is softmax - onehot = [1, -1, 0]
  const w = f.compute(logits, Int32Array.from([1]), 1, 3, null);
  assert.ok(Math.abs(w.loss - 120) < 1e-9, `loss ${w.loss}`);
  [1, -1, 0].forEach((v, k) => assert.ok(Math.abs(w.grad[k] - v) < 1e-9, `grad ${k}: ${w.grad[k]}`));
});
