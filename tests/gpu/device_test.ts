/**
 * CUDA against the CPU, run where a CUDA device is usable (`ignore: !hasCuda`; the GPU check runs
 * them too). TF32 is off for the parity checks, so both sides compute in float32:
 * - logits: max |cuda - cpu| / max |cpu| <= 1e-4;
 * - every parameter's gradient: relative L2 <= 1e-4 (read as the update of one SGD step with a large
 *   learning rate, which the float32 weights carry without cancelling it away);
 * - bf16 autocast: loss within 1e-2 relative of fp32, argmax agreement >= 99% of a batch;
 * - a few train steps on CUDA lower the loss; a checkpoint saved on CUDA loads on the CPU.
 */
import assert from "node:assert/strict";
import { createModel, createTrainer, type Model, setTf32 } from "../../ts/mod.ts";
import { batch, parseSafetensors, softmaxCrossEntropy } from "../native/helpers.ts";
import { cudaDevice, hasCuda } from "./has_cuda.ts";

const CLASSES = 8;

function build(device: string, seed = 11): Model {
  // No dropout: both sides must compute the same function.
  return createModel({ numClasses: CLASSES, dropoutRate: 0, seed, device });
}

function targetsOf(n: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => (i * 5 + 3) % CLASSES);
}

function maxAbs(a: Float32Array): number {
  return a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
}

function relMaxAbs(got: Float32Array, want: Float32Array): number {
  let m = 0;
  for (let i = 0; i < want.length; i++) m = Math.max(m, Math.abs(got[i] - want[i]));
  return m / Math.max(maxAbs(want), 1e-12);
}

/** name -> float32 values of a safetensors file. */
function tensors(bytes: Uint8Array): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, t] of parseSafetensors(bytes).tensors) {
    out.set(name, new Float32Array(t.data.slice().buffer));
  }
  return out;
}

async function saved(m: Model, path: string): Promise<Map<string, Float32Array>> {
  await m.save(path);
  return tensors(await Deno.readFile(path));
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test(
  { name: "gpu: CUDA logits and every gradient match the CPU (TF32 off)", ignore: !hasCuda },
  async () => {
    setTf32(false);
    await withDir(async (dir) => {
      const { x, shape } = batch(16, 3, 64, 5);
      const targets = targetsOf(16);
      using cpu = build("cpu");
      using gpu = build(cudaDevice);
      const w0 = await saved(cpu, `${dir}/w0.safetensors`);
      await gpu.load(`${dir}/w0.safetensors`);
      const evalCpu = await cpu.forward(x, shape);
      const evalGpu = await gpu.forward(x, shape);
      const rel = relMaxAbs(evalGpu, evalCpu);
      assert.ok(rel <= 1e-4, `eval logits: max-abs / max-abs-ref ${rel}`);

      // One SGD step with lr 1000 from the same dlogits: the weight change is -1000 * grad.
      const sgd = { optimizer: { kind: "sgd" as const, lr: 1000, momentum: 0 } };
      const tc = createTrainer(cpu, sgd);
      const tg = createTrainer(gpu, sgd);
      const lc = await tc.forwardTrain(x, shape);
      const lg = await tg.forwardTrain(x, shape);
      assert.ok(relMaxAbs(lg, lc) <= 1e-4, `train logits: ${relMaxAbs(lg, lc)}`);
      const { grad } = softmaxCrossEntropy(lc, targets, CLASSES);
      await tc.backwardStep(grad);
      await tg.backwardStep(grad);
      const wc = await saved(cpu, `${dir}/wc.safetensors`);
      const wg = await saved(gpu, `${dir}/wg.safetensors`);
      let compared = 0;
      for (const [name, before] of w0) {
        const [c, g] = [wc.get(name)!, wg.get(name)!];
        let ref = 0, err = 0;
        for (let i = 0; i < before.length; i++) {
          const dc = before[i] - c[i], dg = before[i] - g[i];
          ref += dc * dc;
          err += (dg - dc) * (dg - dc);
        }
        [ref, err] = [Math.sqrt(ref), Math.sqrt(err)];
        if (ref === 0) continue; // no gradient (the skipped FPN)
        assert.ok(err / ref <= 1e-4, `${name}: gradient relative L2 ${err / ref}`);
        compared++;
      }
      assert.ok(compared > 50, `only ${compared} parameters had a gradient`);
    });
  },
);

Deno.test(
  { name: "gpu: bf16 loss within 1e-2 of fp32 and argmax agreement >= 99%", ignore: !hasCuda },
  async () => {
    setTf32(false);
    const { x, shape } = batch(128, 3, 64, 6);
    const targets = targetsOf(128);
    using a = build(cudaDevice);
    using b = build(cudaDevice);
    // A few fp32 steps first: at the random init the top two logits of many rows nearly tie, and a
    // flip there says nothing about bf16. Both sides then start from these weights.
    const warm = createTrainer(a, { optimizer: { kind: "adam", lr: 1e-3 } });
    warm.setLoss({ kind: "cross_entropy" });
    for (let i = 0; i < 10; i++) await warm.trainStep(x, shape, targets);
    warm.close();
    await withDir(async (dir) => {
      await a.save(`${dir}/w.safetensors`);
      await b.load(`${dir}/w.safetensors`);
    });
    const fp32 = await createTrainer(a, { precision: "fp32" }).forwardTrain(x, shape);
    const bf16 = await createTrainer(b, { precision: "bf16" }).forwardTrain(x, shape);
    const la = softmaxCrossEntropy(fp32, targets, CLASSES).loss;
    const lb = softmaxCrossEntropy(bf16, targets, CLASSES).loss;
    assert.ok(Math.abs(lb - la) / la <= 1e-2, `bf16 loss ${lb} vs fp32 ${la}`);
    let agree = 0;
    for (let i = 0; i < 128; i++) {
      const row = (l: Float32Array): number[] => Array.from(l.subarray(i * CLASSES, (i + 1) * CLASSES));
      const arg = (r: number[]): number => r.indexOf(Math.max(...r));
      if (arg(row(fp32)) === arg(row(bf16))) agree++;
    }
    assert.ok(agree / 128 >= 0.99, `argmax agreement ${agree}/128`);
  },
);

Deno.test(
  { name: "gpu: a few train steps on CUDA (fp32 and bf16) lower the loss", ignore: !hasCuda },
  async () => {
    const { x, shape } = batch(32, 3, 32, 7);
    const targets = targetsOf(32);
    for (const precision of ["fp32", "bf16"] as const) {
      using m = build(cudaDevice, 12);
      const t = createTrainer(m, { optimizer: { kind: "adam", lr: 1e-3 }, precision, clipGradNorm: 5 });
      t.setLoss({ kind: "cross_entropy" });
      const losses: number[] = [];
      for (let i = 0; i < 10; i++) losses.push((await t.trainStep(x, shape, targets)).loss);
      assert.equal(t.describe().fusedSteps, 10, "every step took ATen's fused Adam");
      assert.ok(losses[9] < 0.8 * losses[0], `${precision}: ${losses.map((l) => l.toFixed(4)).join(" ")}`);
    }
  },
);

Deno.test(
  { name: "gpu: weights and trainer state saved on CUDA load on the CPU", ignore: !hasCuda },
  async () => {
    setTf32(false);
    await withDir(async (dir) => {
      const { x, shape } = batch(8, 3, 32, 8);
      using gpu = build(cudaDevice, 13);
      const t = createTrainer(gpu, { optimizer: { kind: "adam", lr: 1e-3 }, precision: "bf16" });
      t.setLoss({ kind: "cross_entropy" });
      await t.trainStep(x, shape, targetsOf(8));
      const w = await saved(gpu, `${dir}/w.safetensors`);
      for (const [name, t] of parseSafetensors(await Deno.readFile(`${dir}/w.safetensors`)).tensors) {
        assert.equal(t.dtype, "F32", name);
      }
      await t.saveState(`${dir}/s.safetensors`);
      using cpu = build("cpu", 99);
      await cpu.load(`${dir}/w.safetensors`);
      assert.deepEqual(await saved(cpu, `${dir}/w2.safetensors`), w);
      const tc = createTrainer(cpu, { optimizer: { kind: "adam", lr: 1e-3 } });
      await tc.loadState(`${dir}/s.safetensors`);
      assert.equal(tc.stepCount(), 1);
      const rel = relMaxAbs(await gpu.forward(x, shape), await cpu.forward(x, shape));
      assert.ok(rel <= 1e-4, `logits after the round trip: ${rel}`);
    });
  },
);
