import assert from "node:assert/strict";
import {
  checkpointActions,
  EarlyStopping,
  improves,
  metricMode,
  readMetric,
} from "../../ts/pipeline/policies.ts";
import { type Schedule, scheduleLr } from "../../ts/pipeline/schedules.ts";
import type { EpochMetrics } from "../../ts/pipeline/types.ts";

Deno.test("policies: improves (table)", () => {
  const rows: [number, number | null, "min" | "max", number, boolean, string][] = [
    [0.5, null, "max", 0, true, "first value always improves"],
    [0.6, 0.5, "max", 0, true, "higher is better in max mode"],
    [0.5, 0.5, "max", 0, false, "equal is not an improvement"],
    [0.55, 0.5, "max", 0.1, false, "minDelta must be exceeded"],
    [0.3, 0.5, "min", 0, true, "lower is better in min mode"],
    [Number.NaN, 0.5, "max", 0, false, "NaN never improves"],
  ];
  for (const [v, best, mode, d, want, msg] of rows) assert.equal(improves(v, best, mode, d), want, msg);
});

Deno.test("policies: early stopping stops after `patience` evaluations without improvement", () => {
  const es = new EarlyStopping(2, 0, "max");
  const seq: [number, boolean, string][] = [
    [0.5, false, "first value sets best"],
    [0.6, false, "improvement resets the counter"],
    [0.6, false, "one bad evaluation"],
    [0.55, true, "second bad evaluation stops"],
  ];
  for (const [v, stop, msg] of seq) assert.equal(es.update(v), stop, msg);
  const again = new EarlyStopping(2, 0, "max");
  again.loadStateDict(es.stateDict());
  assert.equal(again.counter, 2, "state survives a round trip");
});

Deno.test("policies: checkpoint actions and metric lookup", () => {
  assert.deepEqual(checkpointActions(true), ["best", "last"]);
  assert.deepEqual(checkpointActions(false), ["last"]);
  assert.equal(metricMode("val.all.loss"), "min");
  assert.equal(metricMode("val.all.macroF1"), "max");
  const m = { accuracy: 0.9, macroF1: 0.8 } as unknown as EpochMetrics["val"] extends infer V ? V : never;
  const em = {
    epoch: 0,
    stage: 0,
    activeClasses: [0],
    train: { loss: 1, accuracy: 0.5, imagesPerSecond: 1, seconds: 1 },
    val: { all: m, active: m },
    lr: 1,
  } as unknown as EpochMetrics;
  assert.equal(readMetric(em, "val.all.macroF1"), 0.8);
  assert.equal(readMetric(em, "train.loss"), 1);
  assert.equal(readMetric(em, "val.all.nothing"), undefined);
});

/** The run-wide LR (no stages, no history) at `progress` epochs of `epochs`. */
function lrAt(schedule: Schedule, lr: number, progress: number, epochs: number): number {
  return scheduleLr(schedule, lr, {
    progress,
    epochs,
    epoch: Math.floor(progress),
    stageIndex: 0,
    history: [],
  });
}

Deno.test("scheduleLr: constant, cosine and warm-up values at given points", () => {
  const rows: [string, Parameters<typeof lrAt>, number][] = [
    ["constant ignores progress", [{ name: "constant" }, 0.1, 3.7, 10], 0.1],
    ["cosine starts at lr", [
      { name: "cosine", warmupEpochs: 0, minLr: 0, restartPerStage: false },
      0.1,
      0,
      10,
    ], 0.1],
    ["cosine is half way at the middle", [
      { name: "cosine", warmupEpochs: 0, minLr: 0, restartPerStage: false },
      0.1,
      5,
      10,
    ], 0.05],
    ["cosine ends at minLr", [
      { name: "cosine", warmupEpochs: 0, minLr: 0.001, restartPerStage: false },
      0.1,
      10,
      10,
    ], 0.001],
    [
      "warm-up is linear",
      [{ name: "cosine", warmupEpochs: 2, minLr: 0, restartPerStage: false }, 0.1, 1, 10],
      0.05,
    ],
    [
      "after warm-up the cosine starts at lr",
      [{ name: "cosine", warmupEpochs: 2, minLr: 0, restartPerStage: false }, 0.1, 2, 10],
      0.1,
    ],
  ];
  for (const [msg, args, want] of rows) {
    assert.ok(Math.abs(lrAt(...args) - want) < 1e-12, `${msg}: ${lrAt(...args)}`);
  }
});

Deno.test("policies: ordinal metrics are readable; ordinalMae is minimised, quadraticKappa maximised", () => {
  assert.equal(metricMode("val.all.ordinalMae"), "min");
  assert.equal(metricMode("val.active.ordinalMae"), "min");
  assert.equal(metricMode("val.all.quadraticKappa"), "max");
  const m = { accuracy: 0.9, ordinalMae: 0.25, quadraticKappa: 0.7, topK: { top2: 1 } };
  const em = {
    epoch: 0,
    stage: 0,
    activeClasses: [0],
    train: { loss: 1, accuracy: 0.5, imagesPerSecond: 1, seconds: 1 },
    val: { all: m, active: m },
    lr: 1,
  } as unknown as EpochMetrics;
  assert.equal(readMetric(em, "val.all.ordinalMae"), 0.25);
  assert.equal(readMetric(em, "val.active.quadraticKappa"), 0.7);
  assert.equal(readMetric(em, "val.all.topK"), undefined, "nested records are not scalar metrics");
});
