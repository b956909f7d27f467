import assert from "node:assert/strict";
import { createRng } from "../../ts/pipeline/rng.ts";
import type { PluginModule, Sampler } from "../../ts/pipeline/types.ts";
import { plugin as invFreq } from "../../ts/plugins/sample/inverse-frequency.ts";
import { plugin as shuffle } from "../../ts/plugins/sample/shuffle.ts";
import { plugin as sqrtInv } from "../../ts/plugins/sample/sqrt-inverse.ts";

const ctx = { configDir: ".", seed: 0, epochs: 10, log: (): void => {} };

/** labels with the given count per class, interleaved */
function makeLabels(counts: number[]): Int32Array {
  const out: number[] = [];
  counts.forEach((n, k) => {
    for (let i = 0; i < n; i++) out.push(k);
  });
  const r = createRng(99);
  for (let i = out.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return Int32Array.from(out);
}

function sampler(mod: PluginModule, cfg: Record<string, unknown> = {}): Sampler {
  return mod.create(mod.configSchema.parse(cfg), ctx) as Sampler;
}

function drawShares(
  s: Sampler,
  labels: Int32Array,
  active: number[],
  numClasses: number,
  draws: number,
): number[] {
  const rng = createRng(5);
  const counts = new Array(numClasses).fill(0);
  let total = 0;
  while (total < draws) {
    const idx = s.sample(labels, active, 0, rng);
    for (const i of idx) counts[labels[i]]++;
    total += idx.length;
  }
  return counts.map((c) => c / total);
}

const COUNTS = [100, 400, 900, 2500, 0, 1600];
const LABELS = makeLabels(COUNTS);

Deno.test("inverse-frequency: expected share is 1/|active| over active classes with samples", () => {
  const s = sampler(invFreq);
  assert.deepEqual(s.expectedClassShare(LABELS, [0, 1, 2, 3, 4, 5], 6, 0), [0.2, 0.2, 0.2, 0.2, 0, 0.2]);
  assert.deepEqual(s.expectedClassShare(LABELS, [1, 3], 7, 0), [0, 0.5, 0, 0.5, 0, 0, 0]);
});

Deno.test("sqrt-inverse: expected share is proportional to sqrt(count)", () => {
  const s = sampler(sqrtInv);
  const share = s.expectedClassShare(LABELS, [0, 1, 2, 3, 5], 6, 0);
  // sqrt counts 10, 20, 30, 50, -, 40 -> total 150
  const want = [10 / 150, 20 / 150, 30 / 150, 50 / 150, 0, 40 / 150];
  share.forEach((v, k) => assert.ok(Math.abs(v - want[k]) < 1e-12, `class ${k}: ${v} vs ${want[k]}`));
});

Deno.test("shuffle: expected share is the count share", () => {
  const s = sampler(shuffle);
  const share = s.expectedClassShare(LABELS, [0, 1], 6, 0);
  assert.deepEqual(share, [0.2, 0.8, 0, 0, 0, 0]);
});

Deno.test("samplers: empirical class shares over 200k draws within 1% of expected", () => {
  const active = [0, 1, 3, 5];
  for (
    const [name, mod] of [["inverse-frequency", invFreq], ["sqrt-inverse", sqrtInv], [
      "shuffle",
      shuffle,
    ]] as const
  ) {
    const s = sampler(mod);
    const expected = s.expectedClassShare(LABELS, active, 6, 0);
    const got = drawShares(s, LABELS, active, 6, 200_000);
    got.forEach((v, k) =>
      assert.ok(
        Math.abs(v - expected[k]) < 0.01,
        `${name} class ${k}: drawn ${v.toFixed(4)}, expected ${expected[k]}`,
      )
    );
    assert.equal(got[2], 0, `${name}: inactive class 2 was drawn`);
    assert.equal(got[4], 0, `${name}: class 4 has no samples`);
  }
});

Deno.test("inverse-frequency: default numSamples = active count; only active indices; numSamples option", () => {
  const s = sampler(invFreq);
  const idx = s.sample(LABELS, [0, 2], 0, createRng(1));
  assert.equal(idx.length, 1000);
  for (const i of idx) assert.ok(LABELS[i] === 0 || LABELS[i] === 2, `index ${i} has label ${LABELS[i]}`);
  const s2 = sampler(invFreq, { numSamples: 17 });
  assert.equal(s2.sample(LABELS, [0, 2], 0, createRng(1)).length, 17);
});

Deno.test("samplers: deterministic under a seed, different under another", () => {
  for (const mod of [invFreq, sqrtInv, shuffle]) {
    const s = sampler(mod);
    const a = s.sample(LABELS, [0, 1, 2], 3, createRng(11));
    const b = s.sample(LABELS, [0, 1, 2], 3, createRng(11));
    const c = s.sample(LABELS, [0, 1, 2], 3, createRng(12));
    assert.deepEqual(a, b, `${mod.name}: same seed`);
    assert.notDeepEqual(a, c, `${mod.name}: other seed`);
  }
});

Deno.test("shuffle: a permutation of the active indices", () => {
  const s = sampler(shuffle);
  const idx = s.sample(LABELS, [1, 5], 0, createRng(3));
  const want: number[] = [];
  LABELS.forEach((l, i) => {
    if (l === 1 || l === 5) want.push(i);
  });
  assert.equal(idx.length, want.length);
  assert.deepEqual(Array.from(idx).sort((a, b) => a - b), want);
  assert.notDeepEqual(Array.from(idx), want, "not shuffled");
});

Deno.test("inverse-frequency without replacement: each active sample at most once", () => {
  const s = sampler(invFreq, { replacement: false });
  const idx = s.sample(LABELS, [0, 3], 0, createRng(4));
  assert.equal(idx.length, 2600);
  assert.equal(new Set(idx).size, 2600);
  // a full weighted permutation: the share is the count share
  const share = s.expectedClassShare(LABELS, [0, 3], 6, 0);
  assert.ok(Math.abs(share[0] - 100 / 2600) < 1e-12);
  // with few draws the rare class comes up far more often than its count share
  const few = sampler(invFreq, { replacement: false, numSamples: 100 });
  let rare = 0;
  for (let t = 0; t < 50; t++) {
    for (const i of few.sample(LABELS, [0, 3], 0, createRng(t))) rare += LABELS[i] === 0 ? 1 : 0;
  }
  assert.ok(rare / 5000 > 0.3, `rare share ${rare / 5000}`);
  assert.throws(
    () => sampler(invFreq, { replacement: false, numSamples: 5000 }).sample(LABELS, [0], 0, createRng(1)),
    /exceeds/,
  );
});

Deno.test("samplers: an active set without samples is an error", () => {
  assert.throws(
    () => sampler(invFreq).sample(LABELS, [4], 0, createRng(1)),
    /no samples of the active classes/,
  );
});

Deno.test("inverse-frequency: a 60k-label, 100:1 imbalanced split draws 60k indices, ~6k per class, each epoch", () => {
  // Fashion-MNIST size, but imbalanced, so equal draw counts come from the weights, not the data
  const sizes = [30000, 15000, 6000, 3000, 3000, 1500, 600, 600, 200, 100];
  const labels = makeLabels(sizes);
  assert.equal(labels.length, 60_000);
  const all = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const s = sampler(invFreq);
  const epochs: Int32Array[] = [];
  for (let e = 0; e < 5; e++) {
    const idx = s.sample(labels, all, e, createRng(e));
    assert.equal(idx.length, 60_000, `epoch ${e}: default numSamples = active count`);
    const drawn = new Array(10).fill(0);
    for (const i of idx) {
      assert.ok(Number.isInteger(i) && i >= 0 && i < labels.length, `epoch ${e}: index ${i} out of range`);
      drawn[labels[i]]++;
    }
    // binomial(60000, 0.1): std ~73, so ±300 is a 4-sigma band around 6000
    drawn.forEach((n, k) => assert.ok(Math.abs(n - 6000) < 300, `epoch ${e} class ${k}: drew ${n}`));
    epochs.push(idx);
  }
  assert.notDeepEqual(epochs[0], epochs[1], "epochs draw differently");
  // each of the rarest class's 100 images is drawn ~60 times an epoch (missing one: p ~ e^-60)
  const rare = new Set(Array.from(epochs[0]).filter((i) => labels[i] === 9));
  assert.equal(rare.size, 100, "every rare image drawn");

  // without replacement: a weighted permutation of all 60k indices
  const perm = sampler(invFreq, { replacement: false }).sample(labels, all, 0, createRng(9));
  assert.equal(perm.length, 60_000);
  assert.equal(new Set(perm).size, 60_000, "every index exactly once");
  // a subset of active classes on the large array: only their indices, equal shares
  const sub = s.sample(labels, [0, 9], 0, createRng(3));
  assert.equal(sub.length, 30_100);
  const nine = Array.from(sub).filter((i) => labels[i] === 9).length;
  assert.ok(Array.from(sub).every((i) => labels[i] === 0 || labels[i] === 9), "inactive class drawn");
  assert.ok(Math.abs(nine - 15_050) < 400, `class 9 drew ${nine} of 30100`);
});
