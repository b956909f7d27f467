/**
 * `deno task bench:model`: native HybridNet against the seed's own PyTorch code, same venv torch,
 * same threads, same machine, in one run. Prints a table of images/s and ratios and writes it to
 * bench-results/model-<date>.md. Not a test: timings never decide pass/fail.
 *
 * Peers: PyTorch "as-is" (glibc malloc defaults, as users run it) and "tuned" (MALLOC_MMAP_MAX_=0,
 * MALLOC_TRIM_THRESHOLD_=64 GiB: the one to beat). The native library sets the equivalent itself.
 * Options: --sizes 32,64,128 --batches 32,128 --budget 3 (seconds per measurement) --min-steps 3
 * (timed steps per measurement at least) --rounds 1 (interleaved passes; each column reports its
 * median) --precision fp32,bf16 (train steps in each arithmetic: ours with `train.precision`, the
 * peer under `torch.autocast("cpu", dtype=torch.bfloat16)`; inference rows are fp32 only) --device
 * cpu|cuda|cuda:N (default cpu; `auto` picks as a run does): both sides on that device, each step
 * waiting for the device to finish (ours reads its loss or logits back, the peer synchronises), so a
 * step's time is its whole time. The GPU check (scripts/gpu-check.sh) times CUDA in chunks of steps
 * as a run's loop does; this is the simpler per-step view. Each measurement reports img/s from its
 * median step time.
 */
import { ffiOverhead, nativeInfo } from "../ts/mod.ts";
import { createPlugin } from "../ts/pipeline/registry.ts";
import { type Device, resolveDevice } from "../ts/pipeline/device.ts";
import { type StepPosition, TrainSession } from "../ts/pipeline/session.ts";
import type { Loss } from "../ts/pipeline/types.ts";
import { prepareLibtorch, ROOT } from "./lib/libtorch.ts";

function arg(name: string, def: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Deno.args[i + 1] : def;
}
const sizes = arg("sizes", "32,64,128").split(",").map(Number);
const batches = arg("batches", "32,128").split(",").map(Number);
const budget = Number(arg("budget", "3"));
const rounds = Number(arg("rounds", "1"));
const minSteps = Number(arg("min-steps", "3"));
type Precision = "fp32" | "bf16";
const precisions = arg("precision", "fp32").split(",").map((p) => {
  if (p !== "fp32" && p !== "bf16") throw new Error(`--precision takes fp32 and/or bf16, got ${p}`);
  return p as Precision;
});

/** Where both sides run; a missing GPU is the same clear error as a run's. */
const device: Device = (() => {
  try {
    return resolveDevice(arg("device", "cpu"), "--device");
  } catch (err) {
    console.error(`bench:model: ${err instanceof Error ? err.message : err}`);
    Deno.exit(1);
  }
})();

function median(xs: (number | null)[]): number | null {
  const v = xs.filter((x): x is number => x !== null).sort((a, b) => a - b);
  return v.length === 0 ? null : v[Math.floor((v.length - 1) / 2)];
}
const threads = Number(nativeInfo().threads);
const torch = await prepareLibtorch();
const TUNED = { MALLOC_MMAP_MAX_: "0", MALLOC_TRIM_THRESHOLD_: "68719476736" };
/** The seed's loss (focal, γ 1), whose native twin makes a step one native call as in a run. */
const focal = await createPlugin<Loss>("loss", { name: "focal", gamma: 1 }, {
  configDir: ROOT,
  seed: 0,
  epochs: 1,
  log: () => {},
});

function randomBatch(n: number, size: number, seed: number): { x: Float32Array; y: Int32Array } {
  let s = seed >>> 0;
  const rnd = (): number => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  const x = new Float32Array(n * 3 * size * size);
  for (let i = 0; i < x.length; i++) x[i] = rnd() * 2 - 1;
  return { x, y: Int32Array.from({ length: n }, () => Math.floor(rnd() * 8)) };
}

/**
 * img/s from the median step time, after two warm-up calls, over at least `minSteps` calls and
 * `budget` seconds (at most 50). The median of single steps, not the mean, because on a shared VM
 * a step now and then runs far slower for reasons outside the process; bench_peer.py does the same.
 */
async function timeIt(batch: number, step: () => Promise<unknown>): Promise<number> {
  await step();
  await step();
  const times: number[] = [];
  const t0 = performance.now();
  while (times.length < minSteps || (performance.now() - t0 < budget * 1000 && times.length < 50)) {
    const t = performance.now();
    await step();
    times.push(performance.now() - t);
  }
  return batch / (median(times)! / 1000);
}

async function native(
  mode: "train" | "infer",
  fpn: "skip" | "seed",
  size: number,
  batch: number,
  precision: Precision = "fp32",
): Promise<number> {
  // the session's data-free core: the same model, trainer and step as a run, with no config or data
  const session = await TrainSession.open({
    device,
    model: { numClasses: 8, fpn, seed: 0 },
    trainer: mode === "train" ? { optimizer: { kind: "adam", lr: 1e-4 }, precision } : null,
  });
  try {
    const { x, y } = randomBatch(batch, size, 1);
    const shape: [number, number, number, number] = [batch, 3, size, size];
    if (mode === "infer") return await timeIt(batch, () => session.model.forward(x, shape));
    session.train({ loss: focal, nativeLoss: "auto", lr: () => 1e-4 });
    const plan = {
      activeClasses: [0, 1, 2, 3, 4, 5, 6, 7],
      stageIndex: 0,
      stageCount: 1,
      maskInactive: false,
    };
    session.beginEpoch(0, plan);
    let k = 0;
    const pos = (): StepPosition => ({ epoch: 0, index: k++, steps: 1 << 30, stageIndex: 0, history: [] });
    return await timeIt(batch, () => session.step({ x, shape, targets: y }, pos()));
  } finally {
    session.close();
  }
}

async function peer(
  mode: string,
  size: number,
  batch: number,
  tuned: boolean,
  precision: Precision = "fp32",
): Promise<number | null> {
  if (!torch.python) return null;
  const out = await new Deno.Command(torch.python, {
    args: [
      `${ROOT}/scripts/bench_peer.py`,
      mode,
      String(size),
      String(batch),
      String(threads),
      String(budget),
      String(minSteps),
      precision,
      device,
    ],
    env: tuned ? TUNED : {},
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout)).img_s;
}

const f = (v: number | null): string => (v === null ? "n/a" : v.toFixed(1));
const r = (a: number, b: number | null): string => (b ? `${(a / b).toFixed(2)}×` : "n/a");
const rows: string[] = [];
console.error(`device ${device}; threads ${threads}; torch ${torch.version}; budget ${budget}s per cell`);
for (const size of sizes) {
  for (const batch of batches) {
    const cells = [
      ...precisions.map((p) => ["train", p] as const),
      ["infer", "fp32"] as const,
    ];
    for (const [mode, precision] of cells) {
      // `rounds` interleaved passes, median per column: this VM drifts by tens of percent between
      // minutes, so alternating the contenders and taking medians keeps the ratios honest
      const got: Record<"skip" | "seed" | "tuned" | "asIs", (number | null)[]> = {
        skip: [],
        seed: [],
        tuned: [],
        asIs: [],
      };
      for (let k = 0; k < rounds; k++) {
        got.skip.push(await native(mode, "skip", size, batch, precision));
        got.tuned.push(await peer(mode, size, batch, true, precision));
        got.seed.push(await native(mode, "seed", size, batch, precision));
        got.asIs.push(await peer(mode, size, batch, false, precision));
      }
      const skip = median(got.skip)!,
        seed = median(got.seed)!,
        tuned = median(got.tuned),
        asIs = median(got.asIs);
      const row = `| ${size} | ${batch} | ${mode} | ${precision} | ${f(skip)} | ${f(seed)} | ${f(tuned)} | ${
        f(asIs)
      } | ${r(skip, tuned)} | ${r(seed, tuned)} | ${r(skip, asIs)} |`;
      console.error(row);
      rows.push(row);
    }
  }
}
const ov = await ffiOverhead(20000);
const small = await native("train", "skip", 32, 32);
const stepUs = (32 / small) * 1e6;
const lines = [
  `# Model benchmark: native vs PyTorch eager (${new Date().toISOString().slice(0, 16)})`,
  "",
  `torch ${torch.version} (same libtorch for both), ${threads} threads, ${Deno.build.arch}, ${budget}s and at least ${minSteps} timed steps per measurement (img/s from the median step), median of ${rounds} interleaved round(s). img/s; ratios are native ÷ PyTorch measured in this run.`,
  "",
  "| px | batch | step | precision | native fpn=skip | native fpn=seed | PyTorch tuned | PyTorch as-is | skip ÷ tuned | seed ÷ tuned | skip ÷ as-is |",
  "|---|---|---|---|---|---|---|---|---|---|---|",
  ...rows,
  "",
  `FFI overhead: ${ov.syncUs.toFixed(2)} µs per synchronous call (model and trainer calls are synchronous, ` +
  `see MAIN_ARENA_NOTE in ts/native/ffi.ts), ${
    ov.asyncUs.toFixed(1)
  } µs per nonblocking call (the image gather); ` +
  `a 32 px batch-32 train step takes ${(stepUs / 1000).toFixed(1)} ms, so one step's FFI share is ` +
  `${(((ov.syncUs + ov.asyncUs) / stepUs) * 100).toFixed(3)}% (one step call plus one gather).`,
];
await Deno.mkdir(`${ROOT}/bench-results`, { recursive: true });
const file = `${ROOT}/bench-results/model-${new Date().toISOString().slice(0, 10)}.md`;
await Deno.writeTextFile(file, lines.join("\n") + "\n");
console.log(lines.join("\n"));
console.error(`written ${file}`);
