import assert from "node:assert/strict";
import type { Evaluator, Metrics } from "../../ts/pipeline/types.ts";
import { metricsFromConfusion, plugin } from "../../ts/plugins/evaluate/classification.ts";
import { formatSeedLines } from "../../ts/pipeline/seed-format.ts";

const ev = plugin.create(plugin.configSchema.parse({}), {
  configDir: ".",
  seed: 0,
  epochs: 10,
  log: (): void => {},
}) as Evaluator;

/** one-hot-ish logits predicting `pred` per row */
function logitsFor(pred: number[], c: number): Float32Array {
  const z = new Float32Array(pred.length * c);
  pred.forEach((p, i) => {
    for (let k = 0; k < c; k++) z[i * c + k] = -k * 0.01; // ties broken toward low k otherwise
    z[i * c + p] = 5;
  });
  return z;
}

const close = (a: number, b: number, what: string): void =>
  assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a} vs ${b}`);

Deno.test("metrics: hand-computed confusion with a class of zero support and one never predicted", () => {
  // 4 classes. true: 0 0 0 1 1 2 2 2 2 ; class 3 has no support
  // pred: 0 0 1 1 3 2 2 0 3          ; class 3 predicted but absent; nothing... see below
  const truth = [0, 0, 0, 1, 1, 2, 2, 2, 2];
  const pred = [0, 0, 1, 1, 3, 2, 2, 0, 3];
  const m = ev.evaluate(logitsFor(pred, 4), Int32Array.from(truth), 9, 4, 0.5);
  assert.deepEqual(m.confusion, [
    [2, 1, 0, 0],
    [0, 1, 0, 1],
    [1, 0, 2, 1],
    [0, 0, 0, 0],
  ]);
  close(m.accuracy, 5 / 9, "accuracy");
  // class 0: P 2/3 R 2/3 F1 2/3 ; class 1: P 1/2 R 1/2 F1 1/2 ; class 2: P 1 R 1/2 F1 2/3 ; class 3: P 0 (0/2) R 0 (no support) F1 0
  const want = [[2 / 3, 2 / 3, 2 / 3, 3], [1 / 2, 1 / 2, 1 / 2, 2], [1, 1 / 2, 2 / 3, 4], [0, 0, 0, 0]];
  m.perClass.forEach((pc, k) => {
    close(pc.precision, want[k][0], `precision ${k}`);
    close(pc.recall, want[k][1], `recall ${k}`);
    close(pc.f1, want[k][2], `f1 ${k}`);
    assert.equal(pc.support, want[k][3]);
  });
  close(m.macroRecall, (2 / 3 + 1 / 2 + 1 / 2) / 3, "macro recall over supported classes");
  close(m.balancedAccuracy, m.macroRecall, "balanced accuracy");
  close(m.macroF1, (2 / 3 + 1 / 2 + 2 / 3) / 3, "macro F1");
  close(m.weightedF1, (3 * 2 / 3 + 2 * 1 / 2 + 4 * 2 / 3) / 9, "weighted F1");
  assert.equal(m.loss, 0.5);
  for (const v of [m.accuracy, m.macroF1, ...m.perClass.flatMap((p) => [p.precision, p.recall, p.f1])]) {
    assert.ok(!Number.isNaN(v));
  }
});

Deno.test("metrics: a class with support that is never predicted has precision 0, recall 0", () => {
  const m = ev.evaluate(logitsFor([0, 0, 0], 2), Int32Array.from([0, 1, 1]), 3, 2, 0);
  assert.deepEqual(m.perClass[1], { precision: 0, recall: 0, f1: 0, support: 2 });
  close(m.macroRecall, 0.5, "macro recall");
  close(m.perClass[0].precision, 1 / 3, "precision 0");
});

Deno.test("metrics: restrict limits rows to those classes and argmax to those columns", () => {
  // row 0: label 0, logits favour 2 then 0 -> with restrict [0,1] predicts 0
  // row 1: label 2 -> dropped
  // row 2: label 1, favours 3 then 1 -> predicts 1
  // row 3: label 1, favours 0 among [0,1]
  const c = 4;
  const z = Float32Array.from([
    1,
    0,
    9,
    0,
    0,
    0,
    9,
    0,
    0,
    2,
    0,
    9,
    3,
    1,
    0,
    0,
  ]);
  const labels = Int32Array.from([0, 2, 1, 1]);
  const m = ev.evaluate(z, labels, 4, c, 0, [1, 0]);
  assert.deepEqual(m.confusion, [
    [1, 0, 0, 0],
    [1, 1, 0, 0],
    [0, 0, 0, 0],
    [0, 0, 0, 0],
  ]);
  close(m.accuracy, 2 / 3, "accuracy");
  close(m.macroRecall, (1 + 0.5) / 2, "macro recall");
  const all = ev.evaluate(z, labels, 4, c, 0);
  close(all.accuracy, 1 / 4, "unrestricted accuracy");
  assert.throws(() => ev.evaluate(z, labels, 4, c, 0, [4]), /restrict class 4/);
  assert.throws(() => ev.evaluate(z, Int32Array.from([0, 5, 0, 0]), 4, c, 0), /label 5 at index 1/);
});

Deno.test("metrics: no rows gives zeros, not NaN", () => {
  const m = metricsFromConfusion([[0, 0], [0, 0]], 0);
  assert.deepEqual([m.accuracy, m.macroRecall, m.macroF1, m.weightedF1], [0, 0, 0, 0]);
});

Deno.test("formatSeedLines: the seed's summary format", () => {
  const m: Metrics = {
    loss: 0.53521,
    accuracy: 0.65581,
    macroRecall: 0.65561,
    macroF1: 0.64162,
    weightedF1: 0,
    balancedAccuracy: 0.65561,
    perClass: [{ precision: 0.73851, recall: 0.96621, f1: 0.83721, support: 10 }, {
      precision: 0.5,
      recall: 0.25,
      f1: 1 / 3,
      support: 4,
    }],
    confusion: [],
  };
  assert.deepEqual(formatSeedLines(m, ["0", "lymphocyte"]), [
    "Average Loss: 0.5352",
    "Accuracy: 65.58%",
    "Recall: 0.6556",
    "F1 Score: 0.6416",
    "Class 0:",
    "Precision: 73.85%",
    "Recall: 96.62%",
    "F1: 83.72%",
    "Class 1 (lymphocyte):",
    "Precision: 50.00%",
    "Recall: 25.00%",
    "F1: 33.33%",
  ]);
});
