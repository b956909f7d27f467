import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigError, configJsonSchema, loadConfig } from "../../ts/pipeline/config.ts";
import {
  plateauLr,
  type PlateauSchedule,
  type Schedule,
  type ScheduleContext,
  scheduleLr,
  stageStart,
} from "../../ts/pipeline/schedules.ts";
import type { EpochMetrics, Metrics } from "../../ts/pipeline/types.ts";

/** An EpochMetrics with `stage` and, when given, val.all.{macroF1, loss} = value. */
function em(epoch: number, stage = 0, value?: number): EpochMetrics {
  const m = { macroF1: value, loss: value, accuracy: value } as unknown as Metrics;
  return {
    epoch,
    stage,
    activeClasses: [0],
    train: { loss: 1, accuracy: 0.5, imagesPerSecond: 1, seconds: 1 },
    ...(value === undefined ? {} : { val: { all: m, active: m } }),
    lr: 0,
  };
}

/** History of epochs 0.. with the given stages. */
const stages = (...s: number[]): EpochMetrics[] => s.map((st, i) => em(i, st));

/** Context at `progress` of a 10-epoch run in stage `stageIndex` after `history`. */
function at(progress: number, more: Partial<ScheduleContext> = {}): ScheduleContext {
  return { progress, epochs: 10, epoch: Math.floor(progress), stageIndex: 0, history: [], ...more };
}

const close = (got: number, want: number, msg: string): void =>
  assert.ok(Math.abs(got - want) <= 1e-12 + 1e-9 * Math.abs(want), `${msg}: got ${got}, want ${want}`);

const COS: Schedule = { name: "cosine", warmupEpochs: 0, minLr: 0, restartPerStage: false };
const ONE: Schedule = {
  name: "one-cycle",
  pctStart: 0.3,
  divFactor: 25,
  finalDivFactor: 1e4,
  restartPerStage: false,
};
const STEP: Schedule = {
  name: "step",
  milestones: [3, 6],
  gamma: 0.1,
  warmupEpochs: 0,
  restartPerStage: false,
};

Deno.test("scheduleLr: values at given points (lr 0.1, 10 epochs; hand-computed)", () => {
  const rows: [string, Schedule, ScheduleContext, number][] = [
    ["constant ignores progress", { name: "constant" }, at(3.7), 0.1],
    ["cosine starts at lr", COS, at(0), 0.1],
    ["cosine a quarter in: 0.05 (1 + cos(pi/4))", COS, at(2.5), 0.05 * (1 + Math.SQRT1_2)],
    ["cosine is half way at the middle", COS, at(5), 0.05],
    ["cosine ends at minLr", { ...COS, minLr: 0.001 }, at(10), 0.001],
    ["cosine after warm-up spans the rest", { ...COS, warmupEpochs: 2 }, at(6), 0.05],
    ["one-cycle starts at lr/divFactor", ONE, at(0), 0.004],
    ["one-cycle half way up: (0.004 + 0.1) / 2", ONE, at(1.5), 0.052],
    ["one-cycle peaks at pctStart", ONE, at(3), 0.1],
    ["one-cycle half way down", ONE, at(6.5), (0.1 + 4e-7) / 2],
    ["one-cycle ends at lr/(div*finalDiv)", ONE, at(10), 4e-7],
    ["step before the first milestone", STEP, at(2.99), 0.1],
    ["step at the first milestone", STEP, at(3), 0.01],
    ["step after both milestones", STEP, at(6.5), 0.001],
    [
      "plateau with no history is lr",
      {
        name: "plateau",
        metric: "val.all.macroF1",
        factor: 0.5,
        patience: 2,
        minDelta: 0,
        minLr: 0,
        cooldown: 0,
      },
      at(4),
      0.1,
    ],
  ];
  for (const [msg, s, ctx, want] of rows) close(scheduleLr(s, 0.1, ctx), want, msg);
});

Deno.test("scheduleLr: warm-up (linear; at the step's end when stepsPerEpoch is known)", () => {
  const cos: Schedule = { ...COS, warmupEpochs: 2 } as Schedule;
  const step: Schedule = { ...STEP, warmupEpochs: 1 } as Schedule;
  const rows: [string, Schedule, ScheduleContext, number][] = [
    ["cosine warm-up without steps starts at 0", cos, at(0), 0],
    ["cosine warm-up is linear", cos, at(1), 0.05],
    ["first step of 4 per epoch: (0 + 1/4) / 2", cos, at(0, { stepsPerEpoch: 4 }), 0.0125],
    ["last warm-up step reaches lr", cos, at(1.75, { stepsPerEpoch: 4 }), 0.1],
    ["the cosine starts at lr after warm-up", cos, at(2, { stepsPerEpoch: 4 }), 0.1],
    ["step warm-up is linear", step, at(0.5), 0.05],
    ["step warm-up with 2 steps per epoch", step, at(0.5, { stepsPerEpoch: 2 }), 0.1],
  ];
  for (const [msg, s, ctx, want] of rows) close(scheduleLr(s, 0.1, ctx), want, msg);
});

Deno.test("stageStart: first epoch of the trailing run of the current stage", () => {
  assert.equal(stageStart([], 0, 0), 0, "empty history: the current epoch");
  assert.equal(stageStart(stages(0, 0, 0, 0), 1, 4), 4, "a new stage starts now");
  assert.equal(stageStart(stages(0, 0, 0, 0, 1, 1), 1, 6), 4, "inside stage 1");
  assert.equal(stageStart(stages(0, 0, 1, 1, 0), 0, 5), 4, "a stage seen before restarts at its new run");
});

Deno.test("scheduleLr: restartPerStage treats the stage (to the end of the run) as the run", () => {
  /** At `progress` in stage 1, which began at epoch `from`; history = the epochs before this one. */
  const s1 = (progress: number, from: number, more: Partial<ScheduleContext> = {}): ScheduleContext =>
    at(progress, {
      stageIndex: 1,
      history: Array.from({ length: Math.floor(progress) }, (_, e) => em(e, e < from ? 0 : 1)),
      ...more,
    });
  const rows: [string, Schedule, ScheduleContext, number][] = [
    ["cosine restarts at lr", { ...COS, restartPerStage: true }, s1(4, 4), 0.1],
    ["cosine half way through epochs 4-10", { ...COS, restartPerStage: true }, s1(7, 4), 0.05],
    ["without restart: 0.05 (1 + cos(0.7 pi))", COS, s1(7, 4), 0.05 * (1 + Math.cos(0.7 * Math.PI))],
    ["a known stage length is used", { ...COS, restartPerStage: true }, s1(5, 4, { stageEpochs: 2 }), 0.05],
    ["warm-up restarts too", { ...COS, warmupEpochs: 1, restartPerStage: true }, s1(4.5, 4), 0.05],
    ["one-cycle restarts at lr/divFactor", { ...ONE, restartPerStage: true }, s1(5, 5), 0.004],
    ["one-cycle peaks at pctStart of the stage", { ...ONE, restartPerStage: true }, s1(6.5, 5), 0.1],
    [
      "step: milestones count from the stage start",
      { ...STEP, milestones: [2], restartPerStage: true },
      s1(5, 4),
      0.1,
    ],
    [
      "step: milestone 2 epochs into the stage",
      { ...STEP, milestones: [2], restartPerStage: true },
      s1(6, 4),
      0.01,
    ],
    ["step without restart counts from the run start", { ...STEP, milestones: [2] }, s1(5, 4), 0.01],
  ];
  for (const [msg, s, ctx, want] of rows) close(scheduleLr(s, 0.1, ctx), want, msg);
});

Deno.test("plateauLr: decisions replayed from the metric history", () => {
  const base: PlateauSchedule = {
    name: "plateau",
    metric: "val.all.macroF1",
    factor: 0.5,
    patience: 2,
    minDelta: 0,
    minLr: 0,
    cooldown: 0,
  };
  const hist = (...v: (number | undefined)[]): EpochMetrics[] => v.map((x, i) => em(i, 0, x));
  const rows: [string, Partial<PlateauSchedule>, EpochMetrics[], number][] = [
    ["no history: lr", {}, [], 0.1],
    ["improving: lr", {}, hist(0.5, 0.6, 0.7), 0.1],
    ["one bad evaluation is not enough", {}, hist(0.5, 0.5), 0.1],
    ["patience bad evaluations reduce", {}, hist(0.5, 0.5, 0.5), 0.05],
    ["an improvement resets the count", {}, hist(0.5, 0.4, 0.6, 0.5), 0.1],
    ["a second plateau reduces again", {}, hist(0.5, 0.4, 0.4, 0.4, 0.4), 0.025],
    ["epochs without the metric do not count", {}, hist(0.5, undefined, undefined, 0.5), 0.1],
    ["minDelta: small gains are bad evaluations", { minDelta: 0.1 }, hist(0.5, 0.55, 0.58), 0.05],
    [
      "cooldown: the evaluation after a cut counts no bad epoch",
      { cooldown: 1 },
      hist(0.5, 0.4, 0.4, 0.4, 0.4),
      0.05,
    ],
    ["minLr floors the cuts", { minLr: 0.04 }, hist(0.5, 0.4, 0.4, 0.4, 0.4), 0.04],
    ["minLr floor holds", { minLr: 0.04 }, hist(0.5, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4), 0.04],
    ["a loss metric is minimized", { metric: "val.all.loss" }, hist(1, 0.9, 0.95, 0.95), 0.05],
    ["a falling loss is an improvement", { metric: "val.all.loss" }, hist(1, 0.9, 0.8, 0.7), 0.1],
    ["patience 1 cuts at every bad evaluation", { patience: 1 }, hist(0.5, 0.4, 0.4), 0.025],
  ];
  for (const [msg, o, h, want] of rows) {
    const s = { ...base, ...o };
    close(plateauLr(s, 0.1, h), want, msg);
    close(scheduleLr(s, 0.1, at(h.length, { history: h })), want, `${msg} (scheduleLr)`);
  }
});

Deno.test("plateauLr: a resumed run gets the LR of an uninterrupted one from the saved history", () => {
  const s: PlateauSchedule = {
    name: "plateau",
    metric: "val.all.macroF1",
    factor: 0.5,
    patience: 1,
    minDelta: 0,
    minLr: 0,
    cooldown: 1,
  };
  const values = [0.3, 0.4, 0.4, 0.4, 0.35, 0.5, 0.5, 0.5];
  const history: EpochMetrics[] = [];
  const live: number[] = [];
  for (const [e, v] of values.entries()) {
    live.push(plateauLr(s, 0.1, history));
    history.push(em(e, 0, v));
  }
  // a resume at epoch e only has history[0..e-1] (from last.json)
  const resumed = values.map((_, e) => plateauLr(s, 0.1, JSON.parse(JSON.stringify(history.slice(0, e)))));
  assert.deepEqual(resumed, live);
  assert.deepEqual(live, [0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125]);
});

// ---- config ------------------------------------------------------------------------------------

const MINIMAL = "data:\n  loader:\n    name: synthetic\n";

async function loadSchedule(yaml: string): Promise<unknown> {
  const dir = await Deno.makeTempDir({ prefix: "hn-sched-" });
  try {
    const file = join(dir, "x.yaml");
    await Deno.writeTextFile(file, MINIMAL + "train:\n  schedule:\n" + yaml);
    return (await loadConfig(file)).train.schedule;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function scheduleErrors(yaml: string): Promise<string[]> {
  try {
    await loadSchedule(yaml);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${err}`);
    return err.format().split("\n");
  }
  assert.fail(`expected the schedule to be rejected:\n${yaml}`);
}

Deno.test("config: train.schedule accepts every schedule and fills its defaults", async () => {
  const rows: [string, unknown][] = [
    ["    name: constant\n", { name: "constant" }],
    ["    name: cosine\n", { name: "cosine", warmupEpochs: 0, minLr: 0, restartPerStage: false }],
    [
      "    name: cosine\n    warmupEpochs: 1\n    minLr: 1.0e-5\n    restartPerStage: true\n",
      { name: "cosine", warmupEpochs: 1, minLr: 1e-5, restartPerStage: true },
    ],
    [
      "    name: one-cycle\n",
      { name: "one-cycle", pctStart: 0.3, divFactor: 25, finalDivFactor: 1e4, restartPerStage: false },
    ],
    [
      "    name: step\n    milestones: [30, 60]\n",
      { name: "step", milestones: [30, 60], gamma: 0.1, warmupEpochs: 0, restartPerStage: false },
    ],
    [
      "    name: plateau\n",
      {
        name: "plateau",
        metric: "val.all.macroF1",
        factor: 0.5,
        patience: 2,
        minDelta: 0,
        minLr: 0,
        cooldown: 0,
      },
    ],
    [
      "    name: plateau\n    metric: val.all.loss\n    factor: 0.1\n    patience: 3\n    cooldown: 1\n",
      {
        name: "plateau",
        metric: "val.all.loss",
        factor: 0.1,
        patience: 3,
        minDelta: 0,
        minLr: 0,
        cooldown: 1,
      },
    ],
  ];
  for (const [yaml, want] of rows) assert.deepEqual(await loadSchedule(yaml), want, yaml);
});

Deno.test("config: train.schedule rejects bad schedules with the path and what to change", async () => {
  const rows: [string, RegExp][] = [
    ["    name: step\n", /train\.schedule\.milestones — /],
    ["    name: step\n    milestones: [60, 30]\n", /train\.schedule\.milestones — must be increasing/],
    ["    name: step\n    milestones: [0]\n", /train\.schedule\.milestones\.0 — Too small/],
    ["    name: one-cycle\n    pctStart: 1\n", /train\.schedule\.pctStart — Too big/],
    ["    name: plateau\n    metric: val.all\n", /train\.schedule\.metric — is not a metric/],
    ["    name: plateau\n    factor: 1\n", /train\.schedule\.factor — Too big/],
    [
      "    name: plateau\n    restartPerStage: true\n",
      /train\.schedule — Unrecognized key: "restartPerStage"/,
    ],
    ["    name: linear\n", /train\.schedule\.name — /],
  ];
  for (const [yaml, want] of rows) {
    const lines = await scheduleErrors(yaml);
    assert.ok(lines.some((l) => want.test(l)), `${yaml}: ${lines.join(" | ")}`);
  }
});

Deno.test("config: the JSON Schema lists every schedule", () => {
  const text = JSON.stringify(configJsonSchema());
  for (const name of ["constant", "cosine", "one-cycle", "step", "plateau"]) {
    assert.ok(text.includes(`"const":"${name}"`), name);
  }
});
