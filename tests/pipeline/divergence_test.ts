import assert from "node:assert/strict";
import { join } from "node:path";
import { DivergenceError } from "../../ts/pipeline/errors.ts";
import { DivergenceGuard } from "../../ts/pipeline/policies.ts";
import { runPipeline } from "../../ts/pipeline/runner.ts";
import type { EpochMetrics } from "../../ts/pipeline/types.ts";
import { configIn, syntheticYaml } from "./helpers.ts";

const epochOf = (epoch: number, stage: number, loss: number): EpochMetrics => ({
  epoch,
  stage,
  activeClasses: [0, 1],
  train: { loss, accuracy: 0.5, imagesPerSecond: 1, seconds: 1 },
  lr: 1e-3,
});

Deno.test("divergence guard: a finite explosion, NaN and stage changes (table)", () => {
  const rows: [string, EpochMetrics[], number, number[], boolean][] = [
    ["a falling loss is fine", [], 0, [2.1, 1.9, 1.7, 1.6, 1.5, 1.4], false],
    ["NaN stops at once", [], 0, [2.1, Number.NaN], true],
    ["Infinity stops at once", [], 0, [2.1, Number.POSITIVE_INFINITY], true],
    ["first epoch: the mean passes 100x the first step's loss", [], 0, [2, 10, 1e3, 1e6, 1e9], true],
    ["first epoch: fewer than 5 steps decide nothing", [], 0, [2, 1e9, 1e9, 1e9], false],
    ["later epoch: 100x the stage's lowest epoch mean", [epochOf(0, 0, 0.5)], 0, [40, 60, 60, 60, 60], true],
    ["later epoch: 50x is not divergence", [epochOf(0, 0, 0.5)], 0, [25, 25, 25, 25, 25], false],
    [
      "a new curriculum stage starts from its own first step, not the last stage's converged loss",
      [epochOf(0, 0, 0.003)],
      1,
      [1.5, 1.4, 1.3, 1.2, 1.1],
      false,
    ],
    ["the floor: a loss converged to ~0 does not make noise divergence", [epochOf(0, 0, 1e-5)], 0, [
      0.01,
      0.02,
      0.05,
      0.1,
      0.2,
    ], false],
  ];
  for (const [msg, history, stage, losses, want] of rows) {
    const g = new DivergenceGuard();
    g.beginEpoch(history, stage);
    const got = losses.some((l) => g.step(l) !== null);
    assert.equal(got, want, msg);
  }
  const g = new DivergenceGuard();
  g.beginEpoch([epochOf(0, 0, 0.5)], 0);
  assert.match(g.epoch(80)?.reason ?? "", /mean train loss, 80\.0000, is over 100× the reference 0\.5000/);
  assert.equal(g.epoch(20), null, "an epoch mean at 40x is not divergence");
});

Deno.test("divergence: Adam at lr 1e6 stops the run with 'diverged' and what to change; no best checkpoint", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const yaml = syntheticYaml({ perClass: 60, valPerClass: 4, epochs: 2 }).replace(
      "lr: 0.001",
      "lr: 1000000",
    );
    const config = await configIn(dir, yaml);
    await assert.rejects(
      () => runPipeline(config, { out: join(dir, "runs"), console: false }),
      (err) => {
        assert.ok(err instanceof DivergenceError, `expected a DivergenceError, got ${err}`);
        assert.match(err.message, /training diverged at epoch 1, step \d+: /);
        assert.match(err.message, /Lower train\.optimizer\.lr \(the step ran at lr 1000000\)/);
        return true;
      },
    );
    const [run] = [...Deno.readDirSync(join(dir, "runs"))];
    const ck = join(dir, "runs", run.name, "checkpoints");
    assert.deepEqual([...Deno.readDirSync(ck)].map((e) => e.name), [], "nothing saved, best above all");
    const log = Deno.readTextFileSync(join(dir, "runs", run.name, "train.log"));
    assert.match(log, /ERROR - DivergenceError: training diverged/);
    assert.match(Deno.readTextFileSync(join(dir, "runs", run.name, "FAILED")), /DivergenceError/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
