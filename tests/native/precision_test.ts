/**
 * `precision: "bf16"` on the CPU (bfloat16 autocast around the train-mode forward and loss): it
 * trains, stays close to float32 from the same weights and batch, keeps every saved file float32,
 * and a resumed bf16 run continues exactly as the uninterrupted one.
 */
import assert from "node:assert/strict";
import { createModel, createTrainer, type Model, type Trainer } from "../../ts/mod.ts";
import { batch, parseSafetensors } from "./helpers.ts";

const { x, shape } = batch(8, 3, 32, 77);
const targets = new Int32Array([0, 1, 2, 0, 1, 2, 0, 1]);

function model(seed = 5): Model {
  // No dropout: runs are compared step for step.
  return createModel({ numClasses: 3, dropoutRate: 0, seed });
}

function trainer(m: Model, precision: "fp32" | "bf16"): Trainer {
  const t = createTrainer(m, { optimizer: { kind: "adam", lr: 1e-3 }, precision });
  t.setLoss({ kind: "cross_entropy" });
  return t;
}

async function weights(m: Model, dir: string, name: string): Promise<Uint8Array> {
  const path = `${dir}/${name}.safetensors`;
  await m.save(path);
  return await Deno.readFile(path);
}

Deno.test("bf16 on the CPU: a step runs, changes the weights, and its loss is within 3% of fp32", async () => {
  const dir = await Deno.makeTempDir();
  try {
    using a = model();
    using b = model();
    const ta = trainer(a, "fp32");
    const tb = trainer(b, "bf16");
    assert.equal(tb.describe().config.precision, "bf16");
    const before = await weights(b, dir, "before");
    const fp32 = await ta.trainStep(x, shape, targets);
    const bf16 = await tb.trainStep(x, shape, targets);
    const rel = Math.abs(bf16.loss - fp32.loss) / fp32.loss;
    assert.ok(
      Number.isFinite(bf16.loss) && rel <= 0.03,
      `bf16 loss ${bf16.loss} vs fp32 ${fp32.loss} (rel ${rel})`,
    );
    const after = await weights(b, dir, "after");
    assert.notDeepEqual(after, before, "the bf16 step changed no weight");
    for (const [name, t] of parseSafetensors(after).tensors) assert.equal(t.dtype, "F32", name);
    const state = `${dir}/state.safetensors`;
    await tb.saveState(state);
    for (const [name, t] of parseSafetensors(await Deno.readFile(state)).tensors) {
      assert.equal(t.dtype, "F32", name);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bf16 on the CPU: a few steps lower the loss", async () => {
  using m = model(6);
  const t = trainer(m, "bf16");
  const losses: number[] = [];
  for (let i = 0; i < 5; i++) losses.push((await t.trainStep(x, shape, targets)).loss);
  assert.ok(losses[4] < losses[0], `loss did not fall: ${losses.map((l) => l.toFixed(4)).join(" ")}`);
});

Deno.test("bf16 on the CPU: resuming from saved weights and state continues identically", async () => {
  const dir = await Deno.makeTempDir();
  try {
    using straight = model(7);
    const ts = trainer(straight, "bf16");
    for (let i = 0; i < 2; i++) await ts.trainStep(x, shape, targets);
    await straight.save(`${dir}/w.safetensors`);
    await ts.saveState(`${dir}/s.safetensors`);
    const want = await ts.trainStep(x, shape, targets);

    using resumed = model(8); // other initial weights: everything must come from the files
    await resumed.load(`${dir}/w.safetensors`);
    const tr = trainer(resumed, "bf16");
    await tr.loadState(`${dir}/s.safetensors`);
    const got = await tr.trainStep(x, shape, targets);
    assert.equal(got.loss, want.loss);
    assert.deepEqual(got.logits, want.logits);
    assert.deepEqual(await weights(resumed, dir, "r"), await weights(straight, dir, "s"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
