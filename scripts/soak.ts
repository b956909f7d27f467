/**
 * `deno task bench:soak`: a long training soak that looks for leaks. Not a test: it takes a long
 * time, and what it measures depends on the machine.
 *
 * 10,000 training steps (default) at 32 px, batch 32, through the pipeline's data-free core
 * (`TrainSession.open` with options, as scripts/bench-model.ts) fed by the native data path: a
 * synthetic u8 image set (`Images.fromU8`), a seeded index draw per step, `gather` with
 * augmentation ops, then `session.step` with the focal loss's native twin, in epochs of 250 steps
 * (`beginEpoch` … `endEpoch`, as a run). VmRSS (/proc/self/status) and the native live-handle count
 * are sampled every 500 steps. Passes when the RSS drift after the warm-up (the largest sample
 * after step 1,000, against the sample at step 1,000) is under 5% and, once everything is closed,
 * no native handle is live. Writes a table to bench-results/soak-<date>.md, prints it, and exits 1
 * when it does not pass.
 *
 * OpenMP waits passively here (`OMP_WAIT_POLICY=PASSIVE` unless the environment sets it): on this
 * shared 2-core machine, with other processes running, libgomp's spinning barriers made a step
 * about 10x slower (3.8 s against 0.35 s at a load of 6), which would stretch the soak to hours.
 * It changes how idle threads wait, not what is allocated, so the memory figures are those of a run.
 *
 * Options: --steps 10000 --every 500 --warmup 1000 --epoch 250 --size 32 --batch 32 --limit 5 (%).
 */
import { Images } from "../ts/native/images.ts";
import type { AugmentOp } from "../ts/native/images.ts";
import { liveHandles, nativeInfo, setNumThreads } from "../ts/native/library.ts";
import { createPlugin } from "../ts/pipeline/registry.ts";
import { TrainSession } from "../ts/pipeline/session.ts";
import type { Loss } from "../ts/pipeline/types.ts";
import { ROOT } from "./lib/libtorch.ts";

function arg(name: string, def: number): number {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Number(Deno.args[i + 1]) : def;
}
// before the first native call loads libgomp, which reads it once
if (Deno.env.get("OMP_WAIT_POLICY") === undefined) Deno.env.set("OMP_WAIT_POLICY", "PASSIVE");
const STEPS = arg("steps", 10_000);
const EVERY = arg("every", 500);
const WARMUP = arg("warmup", 1_000);
const EPOCH = arg("epoch", 250);
const SIZE = arg("size", 32);
const BATCH = arg("batch", 32);
const LIMIT = arg("limit", 5);
const CLASSES = 8;
const IMAGES = 1024;

/** Resident set size of this process in MiB (VmRSS of /proc/self/status). */
function rssMiB(): number {
  const m = Deno.readTextFileSync("/proc/self/status").match(/^VmRSS:\s+(\d+) kB/m);
  if (!m) throw new Error("no VmRSS in /proc/self/status (Linux only)");
  return Number(m[1]) / 1024;
}

function cpuModel(): string {
  try {
    return Deno.readTextFileSync("/proc/cpuinfo").match(/^model name\s*:\s*(.+)$/m)?.[1].trim() ?? "unknown";
  } catch {
    return "unknown";
  }
}

/** A small LCG: the synthetic pixels, labels and index draws are the same every run. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return (): number => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

const rand = lcg(1);
const pixels = new Uint8Array(IMAGES * 3 * SIZE * SIZE).map(() => Math.floor(rand() * 256));
const labels = Int32Array.from({ length: IMAGES }, (_, i) => i % CLASSES);
const ops: AugmentOp[] = [
  { op: "hflip", p: 0.5 },
  { op: "random_resized_crop", scale: [0.6, 1], ratio: [0.75, 1.333] },
  { op: "jitter", brightness: 0.2, contrast: 0.2 },
  { op: "normalize", mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
];
const focal = await createPlugin<Loss>("loss", { name: "focal", gamma: 1 }, {
  configDir: ROOT,
  seed: 0,
  epochs: Math.ceil(STEPS / EPOCH),
  log: () => {},
});

setNumThreads(Number(nativeInfo().threads));
const handlesAtStart = liveHandles();
const images = Images.fromU8(pixels, [IMAGES, 3, SIZE, SIZE]);
const session = await TrainSession.open({
  device: "cpu",
  model: { numClasses: CLASSES, dropoutRate: 0.3, seed: 0 },
  trainer: { optimizer: { kind: "adam", lr: 1e-3 } },
});
/** One sample: VmRSS, V8's heap (used / reserved, to tell JS garbage from native memory), live handles. */
interface Sample {
  step: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  handles: number;
  msPerStep: number;
}
const samples: Sample[] = [];
function sample(step: number, msPerStep: number): Sample {
  const m = Deno.memoryUsage();
  const s = {
    step,
    rss: rssMiB(),
    heapUsed: m.heapUsed / 2 ** 20,
    heapTotal: m.heapTotal / 2 ** 20,
    handles: liveHandles(),
    msPerStep,
  };
  samples.push(s);
  return s;
}
const plan = { activeClasses: [...Array(CLASSES).keys()], stageIndex: 0, stageCount: 1, maskInactive: false };
const t0 = performance.now();
let tSample = t0;
try {
  session.train({ loss: focal, nativeLoss: "auto", lr: () => 1e-3 });
  sample(0, 0);
  const draw = lcg(2);
  for (let step = 1; step <= STEPS; step++) {
    const index = (step - 1) % EPOCH;
    const epoch = Math.floor((step - 1) / EPOCH);
    if (index === 0) session.beginEpoch(epoch, plan);
    const idx = Int32Array.from({ length: BATCH }, () => Math.floor(draw() * IMAGES));
    const x = await images.gather(idx, ops, step);
    const targets = idx.map((i) => labels[i]);
    await session.step({ x, shape: [BATCH, 3, SIZE, SIZE], targets }, {
      epoch,
      index,
      steps: EPOCH,
      stageIndex: 0,
      history: [],
    });
    if (index === EPOCH - 1 || step === STEPS) session.endEpoch();
    if (step % EVERY === 0) {
      const now = performance.now();
      const s = sample(step, (now - tSample) / EVERY);
      tSample = now;
      console.error(
        `step ${step}: RSS ${s.rss.toFixed(1)} MiB, JS heap ${s.heapUsed.toFixed(1)}/${
          s.heapTotal.toFixed(1)
        } MiB, ` +
          `${s.handles} live handles, ${s.msPerStep.toFixed(0)} ms/step`,
      );
    }
  }
} finally {
  session.close();
  images.close();
}
const seconds = (performance.now() - t0) / 1000;
const handlesAtEnd = liveHandles() - handlesAtStart;

const base = samples.find((s) => s.step >= WARMUP) ?? samples[samples.length - 1];
const after = samples.filter((s) => s.step >= base.step);
const peak = Math.max(...after.map((s) => s.rss));
const last = samples[samples.length - 1];
const drift = ((peak - base.rss) / base.rss) * 100;
const endDrift = ((last.rss - base.rss) / base.rss) * 100;
const pass = drift < LIMIT && handlesAtEnd === 0;

const mib = (v: number): string => v.toFixed(1);
const pct = (v: number): string => `${v >= 0 ? "+" : ""}${v.toFixed(2)}%`;
const row = (s: Sample): string =>
  `| ${s.step} | ${mib(s.rss)} | ${mib(s.heapUsed)} / ${mib(s.heapTotal)} | ${s.handles} | ` +
  `${s.step === 0 ? "" : s.msPerStep.toFixed(0)} |`;
const setup =
  `${cpuModel()}, ${nativeInfo().threads} threads (OMP_WAIT_POLICY=${Deno.env.get("OMP_WAIT_POLICY")}), ` +
  `${SIZE} px, batch ${BATCH}, ${CLASSES} classes, epochs of ${EPOCH} steps, native gather + augmentation + ` +
  `one-call focal step; ${seconds.toFixed(0)} s (${((seconds * 1000) / STEPS).toFixed(0)} ms/step).`;
const verdict =
  `Warm-up: the first ${base.step} steps. RSS at step ${base.step}: ${mib(base.rss)} MiB; peak after ` +
  `it ${mib(peak)} MiB (drift ${pct(drift)}, limit ${LIMIT}%); at the end ${mib(last.rss)} MiB ` +
  `(${pct(endDrift)}). Live native handles after close(): ${handlesAtEnd}. ${pass ? "PASS" : "FAIL"}.`;
const lines = [
  `# Soak: ${STEPS} training steps (${new Date().toISOString().slice(0, 16)})`,
  "",
  setup,
  "",
  "| step | VmRSS MiB | JS heap used / total MiB | live handles | ms/step (since last sample) |",
  "|---|---|---|---|---|",
  ...samples.map(row),
  "",
  verdict,
];
await Deno.mkdir(`${ROOT}/bench-results`, { recursive: true });
const file = `${ROOT}/bench-results/soak-${new Date().toISOString().slice(0, 10)}.md`;
await Deno.writeTextFile(file, lines.join("\n") + "\n");
console.log(lines.join("\n"));
console.error(`written ${file}`);
if (!pass) Deno.exit(1);
