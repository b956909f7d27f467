/**
 * Train metrics counted natively (the trainer's train statistics) against the same metrics from
 * the epoch's train logits in TS, and `train.logEverySteps`: the loss read 1 step in N, the same
 * weights as reading every step, and a non-finite loss still caught at the next read.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DivergenceError } from "../../ts/pipeline/errors.ts";
import { openRunData, type RunData } from "../../ts/pipeline/run-data.ts";
import {
  defaultLogEverySteps,
  scheduleOf,
  sessionSpec,
  type StepPosition,
  trainMetrics,
  TrainSession,
} from "../../ts/pipeline/session.ts";
import { batchStream } from "../../ts/pipeline/data.ts";
import type { Evaluator, Metrics, StagePlan } from "../../ts/pipeline/types.ts";
import type { ResolvedConfig } from "../../ts/pipeline/config.ts";
import { configIn, syntheticYaml } from "./helpers.ts";

interface EpochRun {
  metrics: Metrics;
  loss: number;
  /** the step losses as `step` reported them (null: not read) */
  reads: (number | null)[];
  weights: Uint8Array;
}

/** One epoch of `steps` batches of 32 on a fresh session; the evaluator as given. */
async function epoch(
  config: ResolvedConfig,
  data: RunData,
  o: { evaluator: Evaluator; plan: StagePlan; steps: number; logEverySteps?: number; lr?: number },
): Promise<EpochRun> {
  const spec = sessionSpec(config, data.numClasses);
  const session = await TrainSession.open({ ...spec, logEverySteps: o.logEverySteps ?? spec.logEverySteps });
  const dir = await Deno.makeTempDir();
  try {
    session.train({
      loss: data.plugins.loss,
      nativeLoss: config.train.nativeLoss,
      lr: o.lr === undefined ? scheduleOf(config) : () => o.lr!,
      evaluator: o.evaluator,
    });
    session.beginEpoch(0, o.plan);
    // as a sampler would: a masked plan draws only its active classes; wrap around the split
    const train = data.splits.train!;
    const pool = Array.from({ length: train.count }, (_, i) => i)
      .filter((i) => !o.plan.maskInactive || o.plan.activeClasses.includes(train.labels[i]));
    const order = Int32Array.from({ length: 32 * o.steps }, (_, i) => pool[i % pool.length]);
    const reads: (number | null)[] = [];
    const batches = batchStream(train, order, {
      batchSize: 32,
      ops: data.plugins.augment.trainOps,
      seedOf: (k) => k,
    });
    for await (const b of batches) {
      const pos: StepPosition = { epoch: 0, index: b.index, steps: o.steps, stageIndex: 0, history: [] };
      reads.push((await session.step(b, pos)).loss);
    }
    const fig = session.endEpoch();
    const metrics = trainMetrics(fig, o.evaluator, data.numClasses, o.plan.activeClasses);
    await session.model.save(join(dir, "w.safetensors"));
    return { metrics, loss: fig.loss, reads, weights: await Deno.readFile(join(dir, "w.safetensors")) };
  } finally {
    session.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** The evaluator with only `evaluate`: the session then keeps the train logits (today's TS path). */
function logitsOnly(e: Evaluator): Evaluator {
  return { evaluate: e.evaluate.bind(e) };
}

async function withData<T>(
  extra: string,
  fn: (c: ResolvedConfig, d: RunData) => Promise<T>,
  overrides: string[] = [],
): Promise<T> {
  const dir = await Deno.makeTempDir();
  const config = await configIn(dir, syntheticYaml({ perClass: 40, valPerClass: 4, extra }), overrides);
  const data = await openRunData(config, { log: () => {}, splits: ["train"] });
  try {
    return await fn(config, data);
  } finally {
    data.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const ALL: StagePlan = { activeClasses: [0, 1, 2, 3], stageIndex: 0, stageCount: 1, maskInactive: false };
const MASKED: StagePlan = { activeClasses: [0, 2, 3], stageIndex: 0, stageCount: 1, maskInactive: true };
/** active classes without the loss mask: rows of class 1 train but are left out of the train metrics */
const RESTRICTED: StagePlan = { ...MASKED, maskInactive: false };

const TOP12 = "evaluate:\n  name: classification\n  topK: [1, 2]\n";

for (
  const [label, overrides] of [["native loss", []], ["TS loss, the logits path", [
    "train.nativeLoss=never",
  ]]] as const
) {
  Deno.test(`train stats (${label}): native counts give the metrics the TS evaluator gives on the logits, all and masked classes`, async () => {
    await withData(TOP12, async (config, data) => {
      const evaluator = data.plugins.evaluator;
      assert.ok(evaluator.countSpec && evaluator.fromCounts, "the built-in evaluator counts natively");
      for (const plan of [ALL, MASKED, RESTRICTED]) {
        const counted = await epoch(config, data, { evaluator, plan, steps: 3 });
        const fromLogits = await epoch(config, data, { evaluator: logitsOnly(evaluator), plan, steps: 3 });
        const what = `classes ${plan.activeClasses}`;
        assert.deepEqual(counted.metrics, fromLogits.metrics, `${what}: every train figure equal`);
        assert.equal(counted.loss, fromLogits.loss, `${what}: the epoch loss bit for bit`);
        const rows = counted.metrics.confusion.flat().reduce((a, v) => a + v, 0);
        if (plan === RESTRICTED) {
          assert.ok(rows > 0 && rows < 96, `${what}: only the active classes' rows (${rows})`);
        } else assert.equal(rows, 96, `${what}: every image of the 3 batches is counted`);
        assert.deepEqual(Object.keys(counted.metrics.topK ?? {}), ["top1", "top2"], `${what}: top-k counted`);
      }
    }, [...overrides]);
  });
}

Deno.test("train stats: active classes leave the rows of the others out and never predict them", async () => {
  await withData("", async (config, data) => {
    const r = await epoch(config, data, { evaluator: data.plugins.evaluator, plan: RESTRICTED, steps: 2 });
    assert.deepEqual(r.metrics.confusion[1], [0, 0, 0, 0], "class 1's rows are not counted");
    assert.ok(r.metrics.confusion.every((row) => row[1] === 0), "class 1 is never the argmax");
  });
});

Deno.test("logEverySteps 4: the loss is read 1 step in 4, and the weights and epoch loss equal reading every step", async () => {
  await withData("", async (config, data) => {
    const o = { evaluator: data.plugins.evaluator, plan: ALL, steps: 8 };
    const every = await epoch(config, data, { ...o, logEverySteps: 1 });
    const fourth = await epoch(config, data, { ...o, logEverySteps: 4 });
    assert.equal(every.reads.filter((l) => l !== null).length, 8);
    assert.deepEqual(fourth.reads.map((l) => l !== null), [
      false,
      false,
      false,
      true,
      false,
      false,
      false,
      true,
    ]);
    assert.equal(fourth.reads[3], every.reads[3], "a read loss is the step's loss");
    assert.deepEqual(fourth.weights, every.weights, "the same weights, byte for byte");
    assert.equal(fourth.loss, every.loss, "the epoch loss counts every step, read or not");
    assert.deepEqual(fourth.metrics, every.metrics);
  });
});

Deno.test("logEverySteps 4: a loss that turns non-finite between reads stops the run at the next read", async () => {
  await withData("", async (config, data) => {
    let err: unknown = null;
    try {
      // an absurd LR: the weights overflow within the first steps, and the loss with them
      await epoch(config, data, {
        evaluator: data.plugins.evaluator,
        plan: ALL,
        steps: 8,
        logEverySteps: 4,
        lr: 1e30,
      });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof DivergenceError, `a DivergenceError, got ${err}`);
    assert.match(err.message, /epoch 1, step 4:/, "caught at the first read, step 4");
    assert.match(err.message, /(loss is|since the previous read was) (NaN|Infinity|-Infinity)/);
  });
});

Deno.test("logEverySteps: null resolves to 1 on the CPU and 50 elsewhere; a number is kept", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const config = await configIn(dir, syntheticYaml());
    assert.equal(config.train.logEverySteps, null);
    assert.equal(sessionSpec(config, 4).logEverySteps, 1);
    const set = await configIn(dir, syntheticYaml(), ["train.logEverySteps=7"]);
    assert.equal(sessionSpec(set, 4).logEverySteps, 7);
    assert.equal(defaultLogEverySteps("cpu"), 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
