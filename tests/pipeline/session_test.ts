import assert from "node:assert/strict";
import { ConfigError } from "../../ts/pipeline/errors.ts";
import { openRunData } from "../../ts/pipeline/run-data.ts";
import { scheduleOf, sessionSpec, type StepPosition, TrainSession } from "../../ts/pipeline/session.ts";
import { batchStream } from "../../ts/pipeline/data.ts";
import type { Loss } from "../../ts/pipeline/types.ts";
import { configIn, syntheticYaml } from "./helpers.ts";
import { hasCuda, noCudaReason } from "../gpu/has_cuda.ts";

/** A loss plugin wrapper that counts its TS `compute` calls. */
function counting(loss: Loss): Loss & { calls: number } {
  const c = Object.assign(Object.create(loss) as Loss, { calls: 0 }) as Loss & { calls: number };
  c.compute = (...args) => {
    c.calls++;
    return loss.compute(...args);
  };
  return c;
}

/** Three training steps of a fresh session of `config` with `nativeLoss`; returns losses and TS loss calls. */
async function threeSteps(
  extra: string,
  nativeLoss: "auto" | "never",
): Promise<{ losses: number[]; calls: number }> {
  const dir = await Deno.makeTempDir();
  const config = await configIn(dir, syntheticYaml({ perClass: 40, valPerClass: 4, extra }));
  const data = await openRunData(config, { log: () => {}, splits: ["train"] });
  const session = await TrainSession.open(sessionSpec(config, data.numClasses));
  try {
    const loss = counting(data.plugins.loss);
    session.train({ loss, nativeLoss, lr: scheduleOf(config) });
    const plan = data.plugins.stage.plan(0, []);
    session.beginEpoch(0, plan);
    const train = data.splits.train!;
    const order = Int32Array.from({ length: 96 }, (_, i) => i);
    const losses: number[] = [];
    const batches = batchStream(train, order, {
      batchSize: 32,
      ops: data.plugins.augment.trainOps,
      seedOf: (k) => k,
    });
    for await (const b of batches) {
      const pos: StepPosition = { epoch: 0, index: b.index, steps: 3, stageIndex: 0, history: [] };
      losses.push((await session.step(b, pos)).loss!);
    }
    const fig = session.endEpoch();
    assert.equal(fig.images, 96, "the epoch figures count every stepped image");
    assert.equal(fig.steps, 3);
    assert.ok(
      Math.abs(fig.loss - losses.reduce((a, v) => a + v, 0) / 3) < 1e-9,
      "epoch loss = mean of the steps",
    );
    return { losses, calls: loss.calls };
  } finally {
    session.close();
    data.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("session: a loss with a native twin steps natively; nativeLoss never takes the TS path to the same losses", async () => {
  const extra = "loss:\n  name: focal\n  gamma: 1\n";
  const native = await threeSteps(extra, "auto");
  const viaTs = await threeSteps(extra, "never");
  assert.equal(native.calls, 0, "the one-call path does not compute the loss in TS");
  assert.equal(viaTs.calls, 3, "the logits boundary computes the loss in TS once per step");
  for (let i = 0; i < 3; i++) {
    assert.ok(
      Math.abs(native.losses[i] - viaTs.losses[i]) < 1e-4,
      `step ${i}: ${native.losses[i]} vs ${viaTs.losses[i]}`,
    );
  }
});

Deno.test("session: an inference-only session refuses to train", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const config = await configIn(dir, syntheticYaml());
    const session = await TrainSession.open(sessionSpec(config, 4, { trainable: "none" }));
    try {
      assert.throws(() => session.trainer, /inference only/);
      assert.equal(session.numClasses, 4);
    } finally {
      session.close();
      session.close(); // idempotent
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "session: device cuda without a usable GPU is one ConfigError on device, naming what is missing",
  ignore: hasCuda,
}, async () => {
  const dir = await Deno.makeTempDir();
  try {
    const config = await configIn(dir, syntheticYaml(), ["device=cuda"]);
    assert.throws(
      () => sessionSpec(config, 4),
      (err) =>
        err instanceof ConfigError && /device — is "cuda", but CUDA is not usable here: /.test(err.message) &&
        err.message.includes(noCudaReason ?? "?"),
    );
    const auto = await configIn(dir, syntheticYaml(), ["device=auto"]);
    assert.equal(sessionSpec(auto, 4).device, "cpu");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
