import assert from "node:assert/strict";
import { createRng } from "../../ts/pipeline/rng.ts";
import type { PluginContext, PluginModule, Sampler } from "../../ts/pipeline/types.ts";
import { plugin as effNum } from "../../ts/plugins/sample/effective-number.ts";
import { plugin as progressive, progressiveT } from "../../ts/plugins/sample/progressive.ts";

const ctx = (epochs: number): PluginContext => ({ configDir: ".", seed: 0, epochs, log: (): void => {} });

/** labels with the given count per class, shuffled with a fixed seed */
function makeLabels(counts: number[]): Int32Array {
  const out: number[] = [];
  counts.forEach((n, k) => {
    for (let i = 0; i < n; i++) out.push(k);
  });
  const r = createRng(7);
  for (let i = out.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return Int32Array.from(out);
}

function sampler(mod: PluginModule, cfg: Record<string, unknown> = {}, epochs = 11): Sampler {
  return mod.create(mod.configSchema.parse(cfg), ctx(epochs)) as Sampler;
}

function drawShares(s: Sampler, labels: Int32Array, active: number[], k: number, epoch: number): number[] {
  const rng = createRng(5);
  const counts = new Array(k).fill(0);
  let total = 0;
  while (total < 200_000) {
    const idx = s.sample(labels, active, epoch, rng);
    for (const i of idx) counts[labels[i]]++;
    total += idx.length;
  }
  return counts.map((c) => c / total);
}

function assertShares(got: number[], want: number[], tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  got.forEach((v, k) => assert.ok(Math.abs(v - want[k]) < tol, `${what} class ${k}: ${v} vs ${want[k]}`));
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);

const SMALL = makeLabels([1, 2, 4, 0, 8]);
const COUNTS = [100, 400, 900, 2500, 0, 1600];
const LABELS = makeLabels(COUNTS);

// ---- effective-number --------------------------------------------------------------------------

Deno.test("effective-number: hand-computed shares for beta 0.5", () => {
  // weights (1-β)/(1-β^n): n=1 -> 1, n=2 -> 2/3, n=4 -> 8/15, n=8 -> 128/255
  // shares ∝ n·w = 1, 4/3, 32/15, 1024/255 = (255, 340, 544, 1024) / 255, total 2163/255
  const s = sampler(effNum, { beta: 0.5 });
  const share = s.expectedClassShare(SMALL, [0, 1, 2, 3, 4], 5, 0);
  assertShares(share, [255 / 2163, 340 / 2163, 544 / 2163, 0, 1024 / 2163], 1e-12, "beta 0.5");
});

Deno.test("effective-number: beta 0 gives count shares, beta near 1 equal shares, default 0.999", () => {
  const zero = sampler(effNum, { beta: 0 }).expectedClassShare(SMALL, [0, 1, 2, 4], 5, 0);
  assertShares(zero, [1 / 15, 2 / 15, 4 / 15, 0, 8 / 15], 1e-12, "beta 0");
  const near = sampler(effNum, { beta: 1 - 1e-9 }).expectedClassShare(LABELS, [0, 1, 2, 3, 5], 6, 0);
  assertShares(near, [0.2, 0.2, 0.2, 0.2, 0, 0.2], 1e-5, "beta -> 1");
  assert.equal(effNum.configSchema.parse({}).beta, 0.999);
  assert.equal(effNum.configSchema.safeParse({ beta: 1 }).success, false, "beta 1 is rejected");
  assert.equal(effNum.configSchema.safeParse({ beta: -0.1 }).success, false, "negative beta is rejected");
  assert.equal(effNum.configSchema.safeParse({ gamma: 1 }).success, false, "strict");
  // default β: the heaviest class (2500) keeps more than the rarest (100) but far less than 25x
  const def = sampler(effNum).expectedClassShare(LABELS, [0, 3], 6, 0);
  const w = (n: number): number => (n * 0.001) / (1 - 0.999 ** n);
  assertShares(
    def,
    [w(100) / (w(100) + w(2500)), 0, 0, w(2500) / (w(100) + w(2500)), 0, 0],
    1e-12,
    "default",
  );
});

Deno.test("effective-number: shares over the active classes only, renormalised when the set changes", () => {
  const s = sampler(effNum, { beta: 0.5 });
  const a = s.expectedClassShare(SMALL, [0, 2], 5, 0);
  // n·w: class 0 -> 1, class 2 -> 32/15; total 47/15
  assertShares(a, [15 / 47, 0, 32 / 47, 0, 0], 1e-12, "active {0, 2}");
  const b = s.expectedClassShare(SMALL, [1, 2, 4], 5, 0);
  assert.equal(b[0], 0, "class 0 inactive");
  assert.ok(Math.abs(sum(b) - 1) < 1e-12, "active shares sum to 1");
  assertShares(b, [0, 340 / 1908, 544 / 1908, 0, 1024 / 1908], 1e-12, "active {1, 2, 4}");
});

Deno.test("effective-number: empirical draw shares within 1% of expected, never inactive", () => {
  const active = [0, 1, 3, 5];
  for (const replacement of [true, false]) {
    const s = sampler(effNum, { beta: 0.999, replacement });
    const want = s.expectedClassShare(LABELS, active, 6, 0);
    const got = drawShares(s, LABELS, active, 6, 0);
    assertShares(got, want, 0.01, `replacement ${replacement}`);
    assert.equal(got[2], 0);
  }
});

// ---- progressive -------------------------------------------------------------------------------

Deno.test("progressive: instance shares at epoch 0, equal at the last epoch, linear in between", () => {
  const s = sampler(progressive, {}, 11); // E = 10
  const active = [0, 1, 3]; // counts 100, 400, 2500: N = 3000, K = 3
  assertShares(s.expectedClassShare(LABELS, active, 6, 0), [1 / 30, 4 / 30, 0, 25 / 30, 0, 0], 1e-12, "e0");
  assertShares(s.expectedClassShare(LABELS, active, 6, 10), [1 / 3, 1 / 3, 0, 1 / 3, 0, 0], 1e-12, "e10");
  // t = 1/2: (n_k / N + 1/K) / 2 = (1/30 + 1/3)/2 = 11/60, (4/30 + 1/3)/2 = 14/60, (25/30 + 1/3)/2 = 35/60
  assertShares(s.expectedClassShare(LABELS, active, 6, 5), [11 / 60, 14 / 60, 0, 35 / 60, 0, 0], 1e-12, "e5");
  // past E stays balanced
  assertShares(s.expectedClassShare(LABELS, active, 6, 25), [1 / 3, 1 / 3, 0, 1 / 3, 0, 0], 1e-12, "e25");
});

Deno.test("progressive: the epochs option sets the ramp; a one-epoch run is balanced", () => {
  const s = sampler(progressive, { epochs: 4 }, 100);
  assertShares(
    s.expectedClassShare(LABELS, [0, 1, 3], 6, 2),
    [11 / 60, 14 / 60, 0, 35 / 60, 0, 0],
    1e-12,
    "e2/4",
  );
  const one = sampler(progressive, {}, 1);
  assertShares(one.expectedClassShare(LABELS, [0, 3], 6, 0), [0.5, 0, 0, 0.5, 0, 0], 1e-12, "one epoch");
  assert.deepEqual([progressiveT(-1, 4), progressiveT(1, 4), progressiveT(9, 4), progressiveT(0, 0)], [
    0,
    0.25,
    1,
    1,
  ]);
  assert.equal(progressive.configSchema.safeParse({ replacement: false }).success, false, "strict");
  assert.equal(progressive.configSchema.safeParse({ epochs: 0 }).success, false, "epochs > 0");
});

Deno.test("progressive: shares over the active classes only, renormalised when the set changes", () => {
  const s = sampler(progressive, {}, 11);
  // active {0, 1} (N = 500, K = 2) at t = 1/2: (0.2 + 0.5)/2 = 0.35, (0.8 + 0.5)/2 = 0.65
  assertShares(s.expectedClassShare(LABELS, [0, 1], 6, 5), [0.35, 0.65, 0, 0, 0, 0], 1e-12, "{0, 1}");
  // class 4 has no samples: it gets 0 and does not count in K
  const b = s.expectedClassShare(LABELS, [2, 4, 5], 6, 5);
  // N = 2500, K = 2: (900/2500 + 1/2)/2 = 0.43, (1600/2500 + 1/2)/2 = 0.57
  assertShares(b, [0, 0, 0.43, 0, 0, 0.57], 1e-12, "{2, 4, 5}");
  assert.ok(Math.abs(sum(b) - 1) < 1e-12);
});

Deno.test("progressive: empirical draw shares within 1% of expected at several epochs", () => {
  const s = sampler(progressive, {}, 11);
  const active = [0, 1, 3, 5];
  for (const epoch of [0, 3, 10]) {
    const got = drawShares(s, LABELS, active, 6, epoch);
    assertShares(got, s.expectedClassShare(LABELS, active, 6, epoch), 0.01, `epoch ${epoch}`);
    assert.equal(got[2], 0, "inactive class 2 drawn");
  }
});

Deno.test("progressive: numSamples, draws only active indices", () => {
  const idx = sampler(progressive).sample(LABELS, [0, 2], 4, createRng(1));
  assert.equal(idx.length, 1000, "default: number of active samples");
  for (const i of idx) assert.ok(LABELS[i] === 0 || LABELS[i] === 2, `index ${i} has label ${LABELS[i]}`);
  assert.equal(sampler(progressive, { numSamples: 17 }).sample(LABELS, [0, 2], 4, createRng(1)).length, 17);
  assert.throws(() => sampler(progressive).sample(LABELS, [4], 0, createRng(1)), /no samples/);
});

// ---- both ----------------------------------------------------------------------------------------

Deno.test("imbalance samplers: deterministic under a seed, different under another", () => {
  for (const mod of [effNum, progressive]) {
    const s = sampler(mod);
    const a = s.sample(LABELS, [0, 1, 2], 3, createRng(11));
    const b = s.sample(LABELS, [0, 1, 2], 3, createRng(11));
    const c = s.sample(LABELS, [0, 1, 2], 3, createRng(12));
    assert.deepEqual(a, b, `${mod.name}: same seed`);
    assert.notDeepEqual(a, c, `${mod.name}: other seed`);
  }
});
