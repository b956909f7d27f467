import assert from "node:assert/strict";
import type { EpochMetrics, Metrics, PluginModule } from "../../ts/pipeline/types.ts";
import type { ClassCountAwareStage } from "../../ts/plugins/stage/common.ts";
import { plugin as anti } from "../../ts/plugins/stage/anti-curriculum.ts";
import {
  advanceReason,
  autoCurriculumIssues,
  autoStageIndex,
  configSchema,
  plugin as auto,
} from "../../ts/plugins/stage/auto-curriculum.ts";
import { generateStages } from "../../ts/plugins/stage/order.ts";

const logs: string[] = [];
const ctx = { configDir: ".", seed: 0, epochs: 12, log: (l: string): void => void logs.push(l) };
function make(mod: PluginModule, cfg: Record<string, unknown> = {}): ClassCountAwareStage {
  return mod.create(mod.configSchema.parse(cfg), ctx) as ClassCountAwareStage;
}

function metrics(f1: number): Metrics {
  return {
    loss: 1,
    accuracy: f1,
    macroRecall: f1,
    macroF1: f1,
    weightedF1: f1,
    balancedAccuracy: f1,
    perClass: [],
    confusion: [],
  };
}

/** One epoch record per (stage, active macro-F1 or null = not evaluated). */
function history(rows: [stage: number, f1: number | null][]): EpochMetrics[] {
  return rows.map(([stage, f1], epoch) => ({
    epoch,
    stage,
    activeClasses: [],
    train: { loss: 1, accuracy: 0, imagesPerSecond: 1, seconds: 1 },
    ...(f1 === null ? {} : { val: { all: metrics(f1 / 2), active: metrics(f1) } }),
    lr: 1e-3,
  }));
}

Deno.test("stage orders: extremes-inward is the seed's curriculum for 8 classes; middle-outward reverses it", () => {
  assert.deepEqual(generateStages("extremes-inward", 8), [
    [0, 7],
    [0, 1, 6, 7],
    [0, 1, 2, 5, 6, 7],
    [0, 1, 2, 3, 4, 5, 6, 7],
  ]);
  assert.deepEqual(generateStages("middle-outward", 8), [
    [3, 4],
    [2, 3, 4, 5],
    [1, 2, 3, 4, 5, 6],
    [0, 1, 2, 3, 4, 5, 6, 7],
  ]);
  assert.deepEqual(generateStages("extremes-inward", 5), [[0, 4], [0, 1, 3, 4], [0, 1, 2, 3, 4]]);
  assert.throws(() => generateStages("extremes-inward", 1), /at least 2 classes/);
});

Deno.test("auto-curriculum: metric histories -> stage decisions (table)", () => {
  const cfg = configSchema.parse({ patience: 2, minDelta: 0.01 });
  const table: [name: string, rows: [number, number | null][], next: number][] = [
    ["no history starts at stage 0", [], 0],
    ["still improving stays", [[0, 0.5], [0, 0.6], [0, 0.7]], 0],
    ["two evaluations without gain > minDelta advance", [[0, 0.5], [0, 0.7], [0, 0.705], [0, 0.71]], 1],
    ["a gain just above minDelta keeps the stage", [[0, 0.5], [0, 0.7], [0, 0.705], [0, 0.72]], 0],
    ["fewer than patience+1 evaluations never plateau", [[0, 0.5], [0, 0.5]], 0],
    ["unevaluated epochs do not count as evaluations", [[0, 0.5], [0, null], [0, 0.5]], 0],
    ["only the current stage's epochs are judged", [[0, 0.9], [1, 0.3], [1, 0.4]], 1],
    ["a plateau in stage 1 advances to stage 2", [[0, 0.9], [1, 0.3], [1, 0.4], [1, 0.4], [1, 0.39]], 2],
    ["the last stage never advances", [[3, 0.5], [3, 0.5], [3, 0.5], [3, 0.5]], 3],
  ];
  for (const [name, rows, next] of table) {
    assert.equal(autoStageIndex(cfg, 4, history(rows)), next, name);
  }
});

Deno.test("auto-curriculum: threshold, min and max epochs per stage, loss metrics minimise", () => {
  const thr = configSchema.parse({ threshold: 0.8, patience: 10 });
  assert.equal(autoStageIndex(thr, 4, history([[0, 0.7]])), 0);
  assert.equal(autoStageIndex(thr, 4, history([[0, 0.7], [0, 0.81]])), 1);
  assert.match(advanceReason(thr, history([[0, 0.81]]))!, /threshold 0.8/);

  const minE = configSchema.parse({ threshold: 0.8, minEpochsPerStage: 3 });
  assert.equal(autoStageIndex(minE, 4, history([[0, 0.9], [0, 0.9]])), 0, "min epochs holds the stage");
  assert.equal(autoStageIndex(minE, 4, history([[0, 0.9], [0, 0.9], [0, 0.9]])), 1);

  const maxE = configSchema.parse({ maxEpochsPerStage: 2, patience: 10 });
  assert.equal(autoStageIndex(maxE, 4, history([[0, 0.1], [0, 0.2]])), 1, "max epochs ends a stage");
  assert.equal(autoStageIndex(maxE, 4, history([[0, null], [0, null]])), 1, "even with no evaluations");

  const fin = configSchema.parse({ minFinalEpochs: 3, patience: 10 });
  assert.equal(autoStageIndex(fin, 4, history([[0, 0.5], [0, 0.6]]), 2, 6), 0, "epoch 2 of 6: still free");
  assert.equal(
    autoStageIndex(fin, 4, history([[0, 0.5], [0, 0.6], [0, 0.7]]), 3, 6),
    3,
    "last 3 epochs: all classes",
  );

  // the default keeps the last quarter of the run for all classes, however slowly stage 1 plateaus
  const slow = configSchema.parse({ patience: 100 });
  assert.equal(autoStageIndex(slow, 4, history([[0, 0.5]]), 14, 20), 0, "epoch 15 of 20: still stage 1");
  assert.equal(
    autoStageIndex(slow, 4, history([[0, 0.5]]), 15, 20),
    3,
    "the last 5 of 20 epochs: all classes",
  );
  const issues = (cfg: Record<string, unknown>, runEpochs: number): string[] =>
    autoCurriculumIssues(configSchema.parse(cfg), 8, runEpochs);
  assert.deepEqual(issues({}, 20), [], "the defaults are never refused");
  assert.match(
    issues({ minFinalShare: 0 }, 20).join(";"),
    /nothing guarantees the last stage .* set minFinalShare/,
  );
  assert.deepEqual(issues({ minFinalShare: 0, minFinalEpochs: 1 }, 20), [], "one guaranteed epoch is enough");
  assert.deepEqual(
    issues({ minFinalShare: 0, maxEpochsPerStage: 5 }, 20),
    [],
    "3 stages of at most 5 leave 5",
  );
  assert.match(issues({ minFinalShare: 0, maxEpochsPerStage: 7 }, 20).join(";"), /maxEpochsPerStage below 7/);

  const loss = configSchema.parse({ metric: "val.active.loss", threshold: 0.5 });
  // readMetric reads loss = 1 in these records: above the threshold, so no advance for a loss
  assert.equal(autoStageIndex(loss, 4, history([[0, 0.9]])), 0);
  /** stage-0 records whose val.active.loss is `losses` (macro-F1 fixed at 0.5) */
  const withLoss = (losses: number[]): EpochMetrics[] =>
    history(losses.map((): [number, number] => [0, 0.5])).map((h, i) => ({
      ...h,
      val: { all: h.val!.all, active: { ...h.val!.active, loss: losses[i] } },
    }));
  assert.equal(autoStageIndex(loss, 4, withLoss([0.7, 0.5])), 1, "a loss down to the threshold advances");
  assert.equal(autoStageIndex(loss, 4, withLoss([0.7, 0.51])), 0);
  const lossPlateau = configSchema.parse({ metric: "val.active.loss", patience: 2, minDelta: 0.01 });
  assert.equal(autoStageIndex(lossPlateau, 4, withLoss([1, 0.8, 0.6])), 0, "a falling loss is a gain");
  assert.equal(autoStageIndex(lossPlateau, 4, withLoss([1, 0.8, 0.9, 1])), 1, "a rising loss plateaus");
});

Deno.test("auto-curriculum plugin: generated stages, plans from history, logs why a stage ended", () => {
  const st = make(auto, { patience: 1, minDelta: 0 });
  st.setNumClasses(8);
  assert.deepEqual(st.plan(0, []), {
    activeClasses: [0, 7],
    stageIndex: 0,
    stageCount: 4,
    maskInactive: true,
  });
  logs.length = 0;
  const p = st.plan(2, history([[0, 0.8], [0, 0.8]]));
  assert.deepEqual(p.activeClasses, [0, 1, 6, 7]);
  assert.equal(p.stageIndex, 1);
  assert.match(logs.join("\n"), /stage 1 ends: val\.active\.macroF1 plateaued/);
  assert.deepEqual(st.stateDict(), {}, "decisions come from the history, so no state");

  const listed = make(auto, { stages: [[1, 2], [0, 1, 2]] });
  listed.setNumClasses(3);
  assert.deepEqual(listed.plan(0, []).activeClasses, [1, 2]);
  assert.deepEqual(make(auto, { stages: [[0, 9]] }).validate(3), [
    "auto-curriculum: stages[0] lists class 9, but there are 3 classes",
  ]);
  assert.throws(() => make(auto, { stages: [[0, 9]] }).setNumClasses(3), /lists class 9/);
  assert.throws(() => auto.configSchema.parse({ patiense: 2 }), /patiense/);
  assert.throws(() => make(auto).plan(0, []), /class count/);
});

Deno.test("anti-curriculum: middle classes first, even split of the run's epochs by default", () => {
  const st = make(anti); // ctx.epochs = 12, 8 classes -> 4 stages of 3 epochs
  st.setNumClasses(8);
  const rows: [number, number[]][] = [
    [0, [3, 4]],
    [2, [3, 4]],
    [3, [2, 3, 4, 5]],
    [6, [1, 2, 3, 4, 5, 6]],
    [9, [0, 1, 2, 3, 4, 5, 6, 7]],
    [11, [0, 1, 2, 3, 4, 5, 6, 7]],
  ];
  for (const [epoch, active] of rows) {
    assert.deepEqual(st.plan(epoch, []).activeClasses, active, `epoch ${epoch}`);
  }
  const fixed = make(anti, { epochs: [1, 1, 1] });
  fixed.setNumClasses(8);
  assert.equal(fixed.plan(3, []).stageIndex, 3);
  assert.match(make(anti, { epochs: [1] }).validate(8)[0], /needs 3 entries/);
});
