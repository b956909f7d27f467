/**
 * Stage 2 of the GPU check: the same weights and batch on the device and on the CPU.
 * - fp32 with TF32 off: logits max|Δ| / max|ref| ≤ 1e-4, and every parameter's gradient
 *   ‖Δ‖₂/‖ref‖₂ ≤ 1e-4. Gradients are read back through one SGD step with lr 1e6 from the same
 *   weights, g = (w0 − w1) / lr (the ABI has no gradient read-out; at lr 1e6 the float32 rounding
 *   of w1 costs under 1e-6 relative for any gradient above 1e-7).
 * - bf16 (trainer precision) against fp32 on the device: focal loss within 1e-2 relative and
 *   argmax agreement ≥ 99% over a batch, on weights first trained a few steps on that batch so the
 *   logits have margins (at initialisation they are all near zero and argmax is a coin toss).
 * On `--device cpu` the fp32 comparison is CPU against CPU: it checks the stage's plumbing only.
 */
import { createModel, createTrainer, loadModel, lossEval } from "../../ts/mod.ts";
import type { TrainerOptionsInput } from "../../ts/model/options.ts";
import { readSafetensors, relErr, relL2 } from "../../tests/parity/helpers.ts";
import { cpuThreads, cudaApi, deviceArg, fragment, isCuda, onDevice, randomBatch } from "./common.ts";

const device = deviceArg();
cpuThreads(device);
const out = fragment();
const api = cudaApi();
const cuda = isCuda(device);
const SGD_LR = 1e6;
const dir = await Deno.makeTempDir({ prefix: "hn-gpu-parity-" });
const pass = (ok: boolean): string => (ok ? "pass" : "**FAIL**");
let failed = false;

out.add("## 2. Parity", "");
if (cuda && api.setTf32) api.setTf32(false);
out.add(
  `TF32: ${
    api.setTf32 ? "off (setTf32(false))" : "**setTf32 is not in this build: libtorch's default applies**"
  }; ` +
    `device \`${device}\` against \`cpu\`${cuda ? "" : " (CPU against CPU: plumbing only)"}.`,
  "",
);

// the initial weights, written once so both devices start from the same bytes
{
  using m = createModel({ numClasses: 8, seed: 7, dropoutRate: 0 });
  await m.save(`${dir}/w0.safetensors`);
}
const { x, y, shape } = cuda ? randomBatch(8, 64, 3) : randomBatch(2, 32, 3);

async function logitsAndSgdWeights(
  dev: string,
): Promise<{ logits: Float32Array; w1: Map<string, Float32Array> }> {
  using model = await loadModel(`${dir}/w0.safetensors`, { numClasses: 8, dropoutRate: 0, ...onDevice(dev) });
  const logits = await model.forward(x, shape);
  const trainer = createTrainer(model, { optimizer: { kind: "sgd", lr: SGD_LR, momentum: 0 } });
  trainer.setLoss({ kind: "focal", gamma: 1 });
  await trainer.trainStep(x, shape, y);
  const file = `${dir}/w1-${dev.replace(":", "")}.safetensors`;
  await model.save(file);
  return { logits, w1: await readSafetensors(file) };
}

const ref = await logitsAndSgdWeights("cpu");
const got = await logitsAndSgdWeights(device);
const w0 = await readSafetensors(`${dir}/w0.safetensors`);
const logitErr = relErr(got.logits, ref.logits);
const grad = (w1: Float32Array, name: string): Float32Array =>
  w0.get(name)!.map((v, i) => (v - w1[i]) / SGD_LR);
let worst = { name: "", err: -1 };
let over = 0;
for (const [name, w1ref] of ref.w1) {
  const w1got = got.w1.get(name);
  const err = w1got ? relL2(grad(w1got, name), grad(w1ref, name)) : Infinity;
  if (!(err <= 1e-4)) over++;
  if (!(err <= worst.err)) worst = { name, err };
}
failed ||= !(logitErr <= 1e-4) || over > 0;
out.add(
  "| check | value | bar | result |",
  "|---|---|---|---|",
  `| fp32 logits max\\|Δ\\|/max\\|ref\\| (${shape.join("×")}) | ${logitErr.toExponential(2)} | ≤ 1e-4 | ${
    pass(logitErr <= 1e-4)
  } |`,
  `| fp32 gradients, worst of ${ref.w1.size} parameters ‖Δ‖/‖ref‖ (\`${worst.name}\`) | ${
    worst.err.toExponential(2)
  } | ≤ 1e-4 each | ${pass(over === 0)}${over ? ` (${over} over)` : ""} |`,
);

if (!api.precision) {
  out.add("| bf16 vs fp32 | — | — | **not run: the trainer has no `precision` option in this build** |");
  failed = true;
} else {
  // weights with margins: a few fp32 Adam steps on the batch that is then compared
  const b = cuda ? randomBatch(128, 32, 5) : randomBatch(32, 16, 5);
  {
    using m = await loadModel(`${dir}/w0.safetensors`, {
      numClasses: 8,
      dropoutRate: 0,
      ...onDevice(device),
    });
    const t = createTrainer(m, { optimizer: { kind: "adam", lr: 1e-3 } });
    t.setLoss({ kind: "focal", gamma: 1 });
    for (let i = 0; i < 15; i++) await t.trainStep(b.x, b.shape, b.y);
    await m.save(`${dir}/trained.safetensors`);
  }
  const forwardAt = async (precision: "fp32" | "bf16"): Promise<Float32Array> => {
    using m = await loadModel(`${dir}/trained.safetensors`, {
      numClasses: 8,
      dropoutRate: 0,
      ...onDevice(device),
    });
    const t = createTrainer(m, { optimizer: { kind: "adam", lr: 1e-3 }, precision } as TrainerOptionsInput);
    return await t.forwardTrain(b.x, b.shape);
  };
  const f32 = await forwardAt("fp32");
  const bf16 = await forwardAt("bf16");
  const n = b.y.length;
  const loss32 = lossEval({ kind: "focal", gamma: 1 }, f32, n, 8, b.y).loss;
  const loss16 = lossEval({ kind: "focal", gamma: 1 }, bf16, n, 8, b.y).loss;
  const lossRel = Math.abs(loss16 - loss32) / Math.abs(loss32);
  let agree = 0;
  const argmax = (v: Float32Array, i: number): number => {
    let k = 0;
    for (let c = 1; c < 8; c++) if (v[i * 8 + c] > v[i * 8 + k]) k = c;
    return k;
  };
  for (let i = 0; i < n; i++) if (argmax(f32, i) === argmax(bf16, i)) agree++;
  const identical = bf16.every((v, i) => v === f32[i]);
  failed ||= !(lossRel <= 1e-2) || agree / n < 0.99;
  out.add(
    `| bf16 focal loss vs fp32 (${loss16.toFixed(5)} vs ${loss32.toFixed(5)}) | ${
      lossRel.toExponential(2)
    } | ≤ 1e-2 | ${pass(lossRel <= 1e-2)} |`,
    `| bf16 argmax agreement over ${n} images | ${(agree / n * 100).toFixed(1)}% | ≥ 99% | ${
      pass(agree / n >= 0.99)
    } |`,
  );
  if (identical) {
    out.add("", "Note: the bf16 logits equal the fp32 ones bit for bit: bf16 did not take effect here.");
  }
}
await Deno.remove(dir, { recursive: true });
if (failed) {
  console.error("parity: a check failed or could not run");
  Deno.exit(1);
}
