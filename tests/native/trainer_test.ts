import assert from "node:assert/strict";
import { createModel, createTrainer, loadModel, type Model } from "../../ts/mod.ts";
import {
  batch,
  maxAbsDiff,
  parseSafetensors,
  rejectsNative,
  softmaxCrossEntropy,
  throwsNative,
} from "./helpers.ts";

// A tiny fixed batch: 8 images 3x32x32 from a seeded PRNG, 2 classes.
const { x, shape } = batch(8, 3, 32, 2024);
const targets = new Int32Array([0, 1, 0, 1, 1, 0, 1, 0]);
const STEPS = 20;

function tinyModel(seed = 1): Model {
  // No dropout: the tests compare runs step for step.
  return createModel({ numClasses: 2, dropoutRate: 0, seed });
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

Deno.test("two-call step: forwardTrain -> TS cross-entropy gradient -> backwardStep lowers the loss", async () => {
  using model = tinyModel();
  const trainer = createTrainer(model, { optimizer: { kind: "adam", lr: 1e-3 } });
  const losses: number[] = [];
  for (let step = 0; step < STEPS; step++) {
    const logits = await trainer.forwardTrain(x, shape);
    assert.equal(logits.length, 8 * 2);
    const { loss, grad } = softmaxCrossEntropy(logits, targets, 2);
    losses.push(loss);
    const { gradNorm } = await trainer.backwardStep(grad);
    assert.ok(Number.isFinite(gradNorm) && gradNorm > 0, `grad norm ${gradNorm} at step ${step}`);
  }
  assert.equal(trainer.stepCount(), STEPS);
  assert.ok(
    mean(losses.slice(-5)) < 0.7 * mean(losses.slice(0, 5)),
    `loss did not decrease: ${losses.map((l) => l.toFixed(4)).join(" ")}`,
  );
});

Deno.test("one-call trainStep with the native cross-entropy lowers the loss and agrees with TS", async () => {
  using model = tinyModel();
  const trainer = createTrainer(model, { optimizer: { kind: "adam", lr: 1e-3 } });
  trainer.setLoss({ kind: "cross_entropy" });
  const losses: number[] = [];
  for (let step = 0; step < STEPS; step++) {
    const { loss, logits } = await trainer.trainStep(x, shape, targets);
    const ts = softmaxCrossEntropy(logits, targets, 2).loss;
    assert.ok(Math.abs(loss - ts) <= 1e-5 * Math.max(1, ts), `step ${step}: native ${loss} vs TS ${ts}`);
    losses.push(loss);
  }
  assert.equal(trainer.stepCount(), STEPS);
  assert.ok(
    mean(losses.slice(-5)) < 0.7 * mean(losses.slice(0, 5)),
    `loss did not decrease: ${losses.map((l) => l.toFixed(4)).join(" ")}`,
  );
});

Deno.test("saveState/loadState: a trainer restored mid-way follows the uninterrupted one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hybridnet-state-" });
  try {
    const opts = { optimizer: { kind: "adam" as const, lr: 1e-3 }, seed: 4 };
    using a = tinyModel(9);
    using b = tinyModel(9);
    const ta = createTrainer(a, opts);
    const tb = createTrainer(b, opts);
    for (const t of [ta, tb]) t.setLoss({ kind: "focal", gamma: 2 });
    for (let i = 0; i < 3; i++) {
      await ta.trainStep(x, shape, targets);
      await tb.trainStep(x, shape, targets);
    }
    // b is saved and rebuilt from disk; a runs on uninterrupted.
    await b.save(`${dir}/model.safetensors`);
    await tb.saveState(`${dir}/trainer.safetensors`);
    using c = await loadModel(`${dir}/model.safetensors`, { numClasses: 2, dropoutRate: 0, seed: 77 });
    const tc = createTrainer(c, { ...opts, seed: 5 });
    tc.setLoss({ kind: "focal", gamma: 2 });
    await tc.loadState(`${dir}/trainer.safetensors`);
    assert.equal(tc.stepCount(), 3);
    // Control: the same weights with a fresh optimizer state diverge, so the check below has teeth.
    using d = await loadModel(`${dir}/model.safetensors`, { numClasses: 2, dropoutRate: 0 });
    const td = createTrainer(d, opts);
    td.setLoss({ kind: "focal", gamma: 2 });

    for (let i = 0; i < 3; i++) {
      const sa = await ta.trainStep(x, shape, targets);
      const sc = await tc.trainStep(x, shape, targets);
      await td.trainStep(x, shape, targets);
      // Bit for bit, as native/tests/trainer.rs proves for a resumed step: same weights, same
      // state, same inputs, same kernels.
      assert.equal(sc.loss, sa.loss, `step ${i}: the restored run's loss`);
      assert.deepEqual(sc.logits, sa.logits, `step ${i}: the restored run's logits`);
    }
    assert.equal(ta.stepCount(), 6);
    assert.equal(tc.stepCount(), 6);
    const la = await a.forward(x, shape);
    const lc = await c.forward(x, shape);
    const ld = await d.forward(x, shape);
    assert.deepEqual(lc, la, "the restored run ends with the same weights");
    assert.ok(maxAbsDiff(la, ld) > 1e-5, "fresh optimizer state should differ");

    await rejectsNative(() => tc.loadState(`${dir}/missing.safetensors`), "IO");
    await rejectsNative(() => tc.loadState(`${dir}/model.safetensors`), "CHECKPOINT");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("trainer: bad calls give clear NativeErrors and the trainer keeps working", async () => {
  using model = tinyModel();
  const trainer = createTrainer(model, { optimizer: { kind: "sgd", lr: 1e-2 }, clipGradNorm: 1 });
  await rejectsNative(() => trainer.backwardStep(new Float32Array(16)), "STATE");
  await rejectsNative(() => trainer.trainStep(x, shape, new Int32Array(7)), "INVALID_ARG", /7 values.*8/);
  await rejectsNative(
    () => trainer.trainStep(x, shape, new Int32Array([0, 1, 2, 0, 0, 0, 0, 0])),
    "INVALID_ARG",
    /targets\[2\] = 2/,
  );
  await rejectsNative(() => trainer.forwardTrain(x.subarray(3), shape), "INVALID_ARG", /values/);
  const nan = x.slice();
  nan[5] = NaN;
  await rejectsNative(() => trainer.trainStep(nan, shape, targets), "INVALID_ARG", /nan|finite/i);
  await rejectsNative(() => trainer.forwardTrain(nan, shape), "INVALID_ARG", /nan|finite/i);

  const logits = await trainer.forwardTrain(x, shape);
  await rejectsNative(
    () => trainer.backwardStep(new Float32Array(logits.length + 1)),
    "INVALID_ARG",
    /17 values/,
  );
  const { gradNorm } = await trainer.backwardStep(softmaxCrossEntropy(logits, targets, 2).grad);
  assert.ok(gradNorm > 0);
  await rejectsNative(() => trainer.backwardStep(new Float32Array(16)), "STATE", /forward/i);

  throwsNative(() => trainer.setLoss({ kind: "focal", alpha: [1, 2, 3] }), "INVALID_ARG", /alpha has 3/);
  throwsNative(() => trainer.setLr(0), "INVALID_ARG");
  trainer.setLr(5e-3);
  trainer.setLoss({ kind: "focal", gamma: 2, alpha: [0.25, 0.75], classMask: [1, 1] });
  const step = await trainer.trainStep(x, shape, targets);
  assert.ok(Number.isFinite(step.loss));
  assert.equal(trainer.stepCount(), 2);

  // A call on the model while the trainer's step is in flight waits for it.
  const pending = trainer.trainStep(x, shape, targets);
  throwsNative(() => trainer.stepCount(), "BUSY");
  const eval1 = model.forward(x, shape);
  await pending;
  assert.equal((await eval1).length, 16);
  assert.equal(trainer.stepCount(), 3);
});

Deno.test("optimizer.fused: the fused Adam pass and the tensor path; describe gives back the config", async () => {
  using a = tinyModel(3);
  using b = tinyModel(3);
  const ta = createTrainer(a, { optimizer: { kind: "adamw", lr: 1e-3, weightDecay: 0.01 } });
  const tb = createTrainer(b, { optimizer: { kind: "adamw", lr: 1e-3, weightDecay: 0.01, fused: false } });
  for (const t of [ta, tb]) t.setLoss({ kind: "cross_entropy" });
  for (let i = 0; i < 3; i++) {
    await ta.trainStep(x, shape, targets);
    await tb.trainStep(x, shape, targets);
  }
  assert.deepEqual([ta.describe().steps, ta.describe().fusedSteps], [3, 3]);
  assert.deepEqual([tb.describe().steps, tb.describe().fusedSteps], [3, 0]);
  assert.equal(ta.describe().config.optimizer.fused, true);
  assert.equal(tb.describe().config.optimizer.fused, false);
  // The same update rule: after three steps the two models agree to float rounding.
  const la = await a.forward(x, shape);
  const lb = await b.forward(x, shape);
  assert.ok(maxAbsDiff(la, lb) <= 1e-4, `fused and tensor-path runs differ by ${maxAbsDiff(la, lb)}`);
});

// ---- EMA of the weights ------------------------------------------------------------------------

/** The float32 tensors of a safetensors file, by name. */
async function readTensors(path: string): Promise<Map<string, Float32Array>> {
  const file = parseSafetensors(await Deno.readFile(path));
  return new Map([...file.tensors].map(([name, t]) => [name, new Float32Array(t.data.buffer)]));
}

/** The model's weights as saved (a file per call). */
async function savedWeights(model: Model, dir: string, tag: string): Promise<Map<string, Float32Array>> {
  const path = `${dir}/${tag}.safetensors`;
  await model.save(path);
  return await readTensors(path);
}

/** The decay of EMA update `t` (0-based), the rule of native/src/train/ema.rs. */
function emaDecay(decay: number, warmupSteps: number, t: number): number {
  return warmupSteps === 0 ? decay : Math.min(decay, (1 + t) / (warmupSteps + t));
}

function assertSameTensors(a: Map<string, Float32Array>, b: Map<string, Float32Array>, what: string): void {
  assert.deepEqual([...a.keys()], [...b.keys()], `${what}: tensor names`);
  for (const [name, t] of a) assert.deepEqual(b.get(name), t, `${what}: ${name}`);
}

Deno.test("EMA: the swapped-in weights are the EMA of the saved weight sequence (warm-up rule)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hybridnet-ema-" });
  try {
    const ema = { decay: 0.8, warmupSteps: 3 };
    using model = tinyModel(5);
    const trainer = createTrainer(model, { optimizer: { kind: "adam", lr: 3e-3 }, ema });
    trainer.setLoss({ kind: "cross_entropy" });
    assert.deepEqual(trainer.describe().config.ema, { decay: 0.8, warmup_steps: 3 });
    assert.deepEqual(trainer.describe().ema, { updates: 0, fusedUpdates: 0, swapped: false });
    // The EMA starts from the weights the first step starts from, then follows each step's weights.
    const seq = [await savedWeights(model, dir, "w0")];
    const N = 6;
    for (let k = 1; k <= N; k++) {
      await trainer.trainStep(x, shape, targets);
      seq.push(await savedWeights(model, dir, `w${k}`));
    }
    const want = new Map<string, Float64Array>();
    for (const [name, w0] of seq[0]) {
      const e = Float64Array.from(w0);
      for (let t = 0; t < N; t++) {
        const d = emaDecay(ema.decay, ema.warmupSteps, t);
        const w = seq[t + 1].get(name)!;
        for (let i = 0; i < e.length; i++) e[i] = d * e[i] + (1 - d) * w[i];
      }
      want.set(name, e);
    }
    assert.deepEqual(trainer.describe().ema, { updates: N, fusedUpdates: N, swapped: false });

    await trainer.swapEma();
    assert.equal(trainer.describe().ema!.swapped, true);
    const swapped = await savedWeights(model, dir, "ema");
    let moved = 0;
    for (const [name, e] of want) {
      const got = swapped.get(name)!;
      assert.ok(maxAbsDiff(got, e) <= 1e-6, `${name}: EMA differs from TS by ${maxAbsDiff(got, e)}`);
      if (maxAbsDiff(got, seq[N].get(name)!) > 1e-6) moved++;
    }
    assert.ok(moved > 0, "the EMA trails the raw weights");
    // Nothing trains or saves state while the EMA is in the model.
    await rejectsNative(() => trainer.trainStep(x, shape, targets), "STATE", /swap/);
    await rejectsNative(() => trainer.saveState(`${dir}/s.safetensors`), "STATE", /swap/);
    await trainer.swapEma();
    assertSameTensors(await savedWeights(model, dir, "back"), seq[N], "swapped back");
    await trainer.withEma(async () =>
      assertSameTensors(await savedWeights(model, dir, "again"), swapped, "withEma")
    );
    assert.equal(trainer.describe().ema!.swapped, false);

    using plain = tinyModel(5);
    await rejectsNative(() => createTrainer(plain, {}).swapEma(), "STATE", /no EMA/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("EMA: resume equivalence: a run restored from its state continues with bit-identical weights and EMA", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hybridnet-ema-resume-" });
  try {
    const opts = {
      optimizer: { kind: "adamw" as const, lr: 2e-3, weightDecay: 0.01 },
      clipGradNorm: 1,
      seed: 4,
      ema: { decay: 0.9, warmupSteps: 5 },
    };
    using a = tinyModel(9);
    const ta = createTrainer(a, opts);
    ta.setLoss({ kind: "focal", gamma: 2 });
    for (let i = 0; i < 3; i++) await ta.trainStep(x, shape, targets);
    await a.save(`${dir}/model.safetensors`);
    await ta.saveState(`${dir}/trainer.safetensors`);
    const state = parseSafetensors(await Deno.readFile(`${dir}/trainer.safetensors`));
    assert.equal(state.metadata?.ema_updates, "3");

    // A fresh model and trainer (other seeds) restored from the two files.
    using c = await loadModel(`${dir}/model.safetensors`, { numClasses: 2, dropoutRate: 0, seed: 77 });
    const tc = createTrainer(c, { ...opts, seed: 5 });
    tc.setLoss({ kind: "focal", gamma: 2 });
    await tc.loadState(`${dir}/trainer.safetensors`);
    assert.equal(tc.describe().ema!.updates, 3);
    // Control: the same weights with a fresh EMA end elsewhere, so the check below has teeth.
    using d = await loadModel(`${dir}/model.safetensors`, { numClasses: 2, dropoutRate: 0 });
    const td = createTrainer(d, opts);
    td.setLoss({ kind: "focal", gamma: 2 });

    for (let i = 0; i < 4; i++) {
      const sa = await ta.trainStep(x, shape, targets);
      const sc = await tc.trainStep(x, shape, targets);
      assert.equal(sc.loss, sa.loss, `step ${i}: the restored run's loss`);
    }
    for (let i = 0; i < 4; i++) await td.trainStep(x, shape, targets);
    assertSameTensors(
      await savedWeights(c, dir, "c-raw"),
      await savedWeights(a, dir, "a-raw"),
      "raw weights",
    );
    const emaOf = (m: Model, t: typeof ta, tag: string): Promise<Map<string, Float32Array>> =>
      t.withEma(() => savedWeights(m, dir, tag));
    const emaA = await emaOf(a, ta, "a-ema");
    assertSameTensors(await emaOf(c, tc, "c-ema"), emaA, "EMA weights");
    // ... and the EMA is in the state file as written: saving again gives the same tensors.
    await ta.saveState(`${dir}/ta.safetensors`);
    await tc.saveState(`${dir}/tc.safetensors`);
    assertSameTensors(
      await readTensors(`${dir}/tc.safetensors`),
      await readTensors(`${dir}/ta.safetensors`),
      "state",
    );
    const emaD = await emaOf(d, td, "d-ema");
    const far = [...emaA].some(([name, t]) => maxAbsDiff(t, emaD.get(name)!) > 1e-5);
    assert.ok(far, "a fresh EMA (no state) should differ");

    // Strict: an EMA state into a trainer without one.
    using e = tinyModel(9);
    await rejectsNative(
      () => createTrainer(e, { ...opts, ema: null }).loadState(`${dir}/trainer.safetensors`),
      "CHECKPOINT",
      /EMA/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
