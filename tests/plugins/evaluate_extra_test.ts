import assert from "node:assert/strict";
import type { DataInfo, Evaluator } from "../../ts/pipeline/types.ts";
import {
  logitAdjustment,
  ordinalMetrics,
  plugin,
  topKAccuracy,
} from "../../ts/plugins/evaluate/classification.ts";

function evaluator(cfg: Record<string, unknown> = {}, counts?: number[]): Evaluator {
  const ev = plugin.create(plugin.configSchema.parse(cfg), {
    configDir: ".",
    seed: 0,
    epochs: 10,
    log: (): void => {},
  }) as Evaluator;
  if (counts) ev.setData!(dataInfo(counts));
  return ev;
}

function dataInfo(counts: number[]): DataInfo {
  return { numClasses: counts.length, classNames: counts.map((_, k) => `c${k}`), classCounts: counts };
}

/** logits predicting `pred` per row */
function logitsFor(pred: number[], c: number): Float32Array {
  const z = new Float32Array(pred.length * c);
  pred.forEach((p, i) => {
    for (let k = 0; k < c; k++) z[i * c + k] = -k * 0.01;
    z[i * c + p] = 5;
  });
  return z;
}

const close = (a: number, b: number, what: string): void =>
  assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a} vs ${b}`);

// ---- ordinal -----------------------------------------------------------------------------------

Deno.test("ordinal: QWK and MAE of a hand-computed confusion with a zero-support class", () => {
  // true 0 0 0 1 1 3 3 / pred 0 0 1 1 2 0 3: class 2 has no support but is predicted once
  const truth = [0, 0, 0, 1, 1, 3, 3];
  const pred = [0, 0, 1, 1, 2, 0, 3];
  const m = evaluator().evaluate(logitsFor(pred, 4), Int32Array.from(truth), 7, 4, 0.25);
  assert.deepEqual(m.confusion, [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0], [1, 0, 0, 1]]);
  // |i-j|: 1 + 1 + 3 = 5 over 7 rows
  close(m.ordinalMae!, 5 / 7, "MAE");
  // observed Σ conf·(i-j)² = 1 + 1 + 9 = 11; rows [3,2,0,2], cols [3,2,1,1]
  // expected = Σ r_i c_j (i-j)² / 7 = (3·15 + 2·8 + 2·36) / 7 = 133/7 = 19 -> κ = 1 - 11/19
  close(m.quadraticKappa!, 8 / 19, "QWK");
  assert.equal(m.loss, 0.25);
});

Deno.test("ordinal: a 3-class table, perfect agreement, one-class agreement, reversal, no rows", () => {
  // O = 2, rows [2,1,2], cols [1,3,1], E = (2·7 + 1·2 + 2·7)/5 = 6 -> κ = 2/3; MAE = 2/5
  const a = ordinalMetrics([[1, 1, 0], [0, 1, 0], [0, 1, 1]]);
  close(a.quadraticKappa, 2 / 3, "3-class QWK");
  close(a.ordinalMae, 2 / 5, "3-class MAE");
  assert.deepEqual(ordinalMetrics([[3, 0, 0], [0, 2, 0], [0, 0, 0]]), { ordinalMae: 0, quadraticKappa: 1 });
  // expected disagreement 0 (everything in class 1): defined as 1
  assert.deepEqual(ordinalMetrics([[0, 0], [0, 4]]), { ordinalMae: 0, quadraticKappa: 1 });
  // full reversal of two classes: O = 2, E = 1 -> -1
  assert.deepEqual(ordinalMetrics([[0, 1], [1, 0]]), { ordinalMae: 1, quadraticKappa: -1 });
  assert.deepEqual(ordinalMetrics([[0, 0], [0, 0]]), { ordinalMae: 0, quadraticKappa: 0 });
});

// ---- top-k -------------------------------------------------------------------------------------

const TOPK_LOGITS = Float32Array.from([
  ...[0.1, 0.5, 0.3, 0.2], // label 2: rank 1
  ...[0.4, 0.3, 0.2, 0.1], // label 3: rank 3
  ...[0.2, 0.9, 0.9, 0.0], // label 2: tie with class 1, lower index first -> rank 1
  ...[0.7, 0.1, 0.2, 0.3], // label 2: rank 2
  ...[1, 0, 0, 0], //        label 0: rank 0
]);
const TOPK_LABELS = Int32Array.from([2, 3, 2, 2, 0]);

Deno.test("top-k: hand-computed ranks; k >= number of classes left out; top1 = accuracy", () => {
  const m = evaluator({ topK: [3, 1, 2, 4] }).evaluate(TOPK_LOGITS, TOPK_LABELS, 5, 4, 0);
  assert.deepEqual(Object.keys(m.topK!).sort(), ["top1", "top2", "top3"]);
  close(m.topK!.top1, 1 / 5, "top1");
  close(m.topK!.top1, m.accuracy, "top1 = accuracy");
  close(m.topK!.top2, 3 / 5, "top2");
  close(m.topK!.top3, 4 / 5, "top3");
  assert.deepEqual(Object.keys(evaluator().evaluate(TOPK_LOGITS, TOPK_LABELS, 5, 4, 0).topK!), ["top2"]);
});

Deno.test("top-k: with restrict, ranks among the restricted classes only", () => {
  // candidates {0, 2, 3}; every row's label is in it. ranks: 0, 2, 0, 2, 0
  const m = evaluator({ topK: [2, 3] }).evaluate(TOPK_LOGITS, TOPK_LABELS, 5, 4, 0, [3, 0, 2]);
  assert.deepEqual(m.topK, { top2: 3 / 5 });
  // rows of other classes are dropped: restrict {0, 1, 2} keeps rows 0, 2, 3, 4 (ranks 1, 1, 1, 0)
  assert.deepEqual(
    topKAccuracy(TOPK_LOGITS, TOPK_LABELS, 5, 4, [1, 2], [0, 1, 2]),
    { top1: 1 / 4, top2: 1 },
  );
});

Deno.test("top-k: a NaN logit ranks below every number, ties among NaN to the lower index", () => {
  const z = Float32Array.from([NaN, 1, NaN, -Infinity]);
  assert.deepEqual(topKAccuracy(z, Int32Array.from([0]), 1, 4, [1, 2, 3]), { top1: 0, top2: 0, top3: 1 });
  assert.deepEqual(topKAccuracy(z, Int32Array.from([3]), 1, 4, [1, 2]), { top1: 0, top2: 1 });
});

// ---- shot groups -------------------------------------------------------------------------------

// recalls: class 0 1/2, class 1 1, class 2 0, class 3 1/2, class 4 1, class 5 no support
const SHOT_TRUTH = [0, 0, 1, 2, 2, 3, 3, 4];
const SHOT_PRED = [0, 1, 1, 0, 3, 3, 2, 4];
const SHOT_COUNTS = [150, 100, 50, 20, 19, 5];

Deno.test("shot groups: ImageNet-LT thresholds by training count, classes without support skipped", () => {
  const ev = evaluator({}, SHOT_COUNTS);
  const m = ev.evaluate(logitsFor(SHOT_PRED, 6), Int32Array.from(SHOT_TRUTH), 8, 6, 0);
  // many: {0} (150 > 100); medium: {1, 2, 3} (100, 50, 20); few: {4} (19), class 5 has no support
  assert.deepEqual(m.shotGroups, { many: 0.5, medium: 0.5, few: 1 });
});

Deno.test("shot groups: custom thresholds, empty groups are null, undefined before setData", () => {
  const labels = Int32Array.from(SHOT_TRUTH);
  const z = logitsFor(SHOT_PRED, 6);
  const custom = evaluator({ shotThresholds: { many: 120, few: 60 } }, SHOT_COUNTS).evaluate(
    z,
    labels,
    8,
    6,
    0,
  );
  // many {0}; medium {1}; few {2, 3, 4}: (0 + 1/2 + 1)/3
  assert.deepEqual(custom.shotGroups, { many: 0.5, medium: 1, few: 0.5 });
  const oneGroup = evaluator({ shotThresholds: { many: 1000, few: 0 } }, SHOT_COUNTS)
    .evaluate(z, labels, 8, 6, 0);
  assert.deepEqual(oneGroup.shotGroups, { many: null, medium: 3 / 5, few: null });
  // restrict {0, 1}: only those rows count
  const r = evaluator({}, SHOT_COUNTS).evaluate(z, labels, 8, 6, 0, [0, 1]);
  assert.deepEqual(r.shotGroups, { many: 0.5, medium: 1, few: null });
  assert.equal(evaluator().evaluate(z, labels, 8, 6, 0).shotGroups, undefined);
  assert.equal(plugin.configSchema.safeParse({ shotThresholds: { many: 10, few: 20 } }).success, false);
  assert.equal(plugin.configSchema.safeParse({ shotThresholds: { many: 10, x: 1 } }).success, false);
  assert.deepEqual(plugin.configSchema.parse({ shotThresholds: { many: 50 } }).shotThresholds, {
    many: 50,
    few: 20,
  });
  assert.throws(() => evaluator({}, [1, 2, 3]).evaluate(z, labels, 8, 6, 0), /3 class counts/);
});

// ---- logit adjustment --------------------------------------------------------------------------

Deno.test("logit adjustment: flips a prediction exactly when τ·log(π0/π1) exceeds the logit gap", () => {
  const counts = [900, 100]; // log(π0/π1) = log 9 ≈ 2.197
  for (const tau of [0, 0.5, 1, 2]) {
    const ev = evaluator({ logitAdjustTau: tau }, counts);
    for (const gap of [0.5, 1, 2, 3, 4, 5]) {
      const m = ev.evaluate(Float32Array.from([gap, 0]), Int32Array.from([0]), 1, 2, 0.75);
      const flips = tau * Math.log(9) > gap;
      assert.deepEqual(m.confusion[0], flips ? [0, 1] : [1, 0], `τ ${tau}, gap ${gap}`);
      assert.equal(m.loss, 0.75, "loss passed through");
    }
  }
});

Deno.test("logit adjustment: biases, renormalised over restrict; every metric uses them", () => {
  const b = logitAdjustment([1, 3], 1, 2);
  close(b[0], Math.log(4), "bias 0");
  close(b[1], Math.log(4 / 3), "bias 1");
  const r = logitAdjustment([1, 3, 6], 2, 3, [2, 1]);
  assert.equal(r[0], 0, "not a candidate");
  close(r[1], -2 * Math.log(1 / 3), "bias 1 over {1, 2}");
  close(r[2], -2 * Math.log(2 / 3), "bias 2 over {1, 2}");
  // label 2: raw logits rank it last; adjusted 1 + 0.223, 3 + 2.303, 0.5 + 2.303 -> second
  const counts = [800, 100, 100];
  const z = Float32Array.from([1, 3, 0.5]);
  assert.deepEqual(evaluator({}, counts).evaluate(z, Int32Array.from([2]), 1, 3, 0).topK, { top2: 0 });
  const adj = evaluator({ logitAdjustTau: 1 }, counts).evaluate(z, Int32Array.from([2]), 1, 3, 0);
  assert.deepEqual(adj.topK, { top2: 1 });
  // restricted to {0, 2}: adjusted 1.223 vs 2.803 -> predicts 2 (raw would predict 0)
  const m = evaluator({ logitAdjustTau: 1 }, counts).evaluate(z, Int32Array.from([2]), 1, 3, 0, [0, 2]);
  assert.equal(m.accuracy, 1);
  assert.equal(evaluator({}, counts).evaluate(z, Int32Array.from([2]), 1, 3, 0, [0, 2]).accuracy, 0);
});

Deno.test("logit adjustment: clear errors without setData or with a class without training images", () => {
  const ev = evaluator({ logitAdjustTau: 1 });
  assert.throws(() => ev.evaluate(Float32Array.from([1, 0]), Int32Array.from([0]), 1, 2, 0), /setData/);
  assert.throws(() => evaluator({ logitAdjustTau: 1 }, [5, 0]), /class 1 \(c1\) has none/);
  evaluator({}, [5, 0]); // fine without adjustment
  assert.equal(plugin.configSchema.safeParse({ logitAdjustTau: -1 }).success, false);
});
