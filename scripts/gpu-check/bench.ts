/**
 * Stage 4 of the GPU check: train-step and inference img/s, ours against the seed's model in
 * PyTorch eager (peer.py, one long-lived process) on the same device, interleaved cell by cell in
 * one run: ours fp32, PyTorch fp32 (NCHW, then channels-last), ours bf16, PyTorch bf16 autocast
 * (NCHW, then channels-last). TF32 is on for both sides' fp32. Both sides measure alike (timeIt
 * here, measure() in peer.py): train steps run without a host sync except at the end of each
 * chunk, as a run's loop does between loss reads; inference brings every batch's logits to the
 * host. Both take the batch from host memory each step.
 * Ours is the model as a run trains it (fpn: skip); the seed computes its FPN and discards it.
 * Targets (issue 12): train step ≥ 1.3× the better PyTorch fp32 layout, and our bf16 ≥ 1.3× the
 * better PyTorch bf16 autocast layout. Timings are reported, never asserted.
 */
import { createModel, createTrainer } from "../../ts/mod.ts";
import type { TrainerOptionsInput } from "../../ts/model/options.ts";
import {
  arg,
  cpuThreads,
  cudaApi,
  deviceArg,
  errorText,
  fragment,
  isCuda,
  median,
  onDevice,
  randomBatch,
} from "./common.ts";

const device = deviceArg();
const threads = cpuThreads(device);
const cuda = isCuda(device);
const out = fragment();
const api = cudaApi();
const sizes = arg("sizes", cuda ? "64,128,224" : "32").split(",").map(Number);
const batch = Number(arg("batch", cuda ? "128" : "8"));
const budget = Number(arg("budget", cuda ? "0.6" : "0.5"));
const minSteps = Number(arg("min-steps", cuda ? "5" : "2"));
const python = arg("python", "");
const seedModel = arg("seed-model", "");

type Cell = { img_s: number; steps: number } | { error: string };

/**
 * img/s the way peer.py measures it: 2 warm-up calls of `steps`, one probe step, then 3 chunks of
 * k steps (k from the budget, ≥ minSteps, ≤ 50), each chunk ending synchronized; the median chunk.
 * `steps(k)` must leave the device idle when it resolves.
 */
async function timeIt(steps: (k: number) => Promise<unknown>): Promise<Cell> {
  await steps(2);
  let t = performance.now();
  await steps(1);
  const k = Math.max(minSteps, Math.min(50, Math.ceil((budget * 1000) / 3 / (performance.now() - t))));
  const rates: number[] = [];
  for (let c = 0; c < 3; c++) {
    t = performance.now();
    await steps(k);
    rates.push((k * batch) / ((performance.now() - t) / 1000));
  }
  return { img_s: median(rates), steps: 3 * k };
}

async function ours(mode: "train" | "infer", size: number, precision: "fp32" | "bf16"): Promise<Cell> {
  if (precision === "bf16" && !api.precision) return { error: "no trainer precision option in this build" };
  if (precision === "bf16" && mode === "infer") {
    return { error: "the model's forward has no precision option" };
  }
  try {
    using model = createModel({ numClasses: 8, seed: 0, fpn: "skip", ...onDevice(device) });
    const { x, y, shape } = randomBatch(batch, size, 1);
    if (mode === "infer") {
      // every forward brings its logits to the host (no lazy forward exists), as PyTorch's does
      return await timeIt(async (k) => {
        for (let i = 0; i < k; i++) await model.forward(x, shape);
      });
    }
    const opts = { optimizer: { kind: "adam", lr: 1e-4 }, ...(precision === "bf16" ? { precision } : {}) };
    const trainer = createTrainer(model, opts as TrainerOptionsInput);
    trainer.setLoss({ kind: "focal", gamma: 1 });
    // steps that read nothing back (a run's loop between loss reads); the last reads the loss,
    // which waits for the device
    return await timeIt(async (k) => {
      for (let i = 0; i < k; i++) await trainer.trainStepLazy(x, shape, y, i === k - 1);
    });
  } catch (e) {
    return { error: errorText(e) };
  }
}

/** The PyTorch peer: one process, one request per line. */
class Peer {
  readonly #proc: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #chunks: ReadableStreamDefaultReader<string>;
  #buffered = "";
  header: Record<string, unknown> = {};
  constructor() {
    this.#proc = new Deno.Command(python, {
      args: [
        new URL("./peer.py", import.meta.url).pathname,
        seedModel,
        cuda ? device : "cpu",
        String(threads),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
      env: { PYTHONUNBUFFERED: "1" },
    }).spawn();
    this.#writer = this.#proc.stdin.getWriter();
    this.#chunks = this.#proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
  }
  /** The next line the peer prints, as JSON. */
  async #read(): Promise<Record<string, unknown>> {
    while (!this.#buffered.includes("\n")) {
      const { value, done } = await this.#chunks.read();
      if (done) throw new Error("the PyTorch peer exited (its error is in the stage log)");
      this.#buffered += value;
    }
    const i = this.#buffered.indexOf("\n");
    const line = this.#buffered.slice(0, i);
    this.#buffered = this.#buffered.slice(i + 1);
    return JSON.parse(line);
  }
  async start(): Promise<void> {
    this.header = await this.#read();
  }
  /** One measurement; a peer that dies on it is reported in the cell (the caller starts another). */
  async measure(mode: string, size: number, precision: string, channelsLast: boolean): Promise<Cell> {
    const req = { mode, size, batch, precision, channels_last: channelsLast, budget, min_steps: minSteps };
    try {
      await this.#writer.write(new TextEncoder().encode(JSON.stringify(req) + "\n"));
      return await this.#read() as Cell;
    } catch (e) {
      const st = await this.#proc.status;
      this.dead = true;
      return {
        error: `the PyTorch peer died (exit ${st.code}${st.signal ? `, ${st.signal}` : ""}): ${errorText(e)}`,
      };
    }
  }
  dead = false;
  async close(): Promise<void> {
    await this.#writer.close();
    await this.#proc.status;
  }
}

const fmt = (c: Cell): string => ("error" in c ? `error¹` : c.img_s.toFixed(1));
const val = (c: Cell): number | null => ("error" in c ? null : c.img_s);
function ratio(a: Cell, ...bs: Cell[]): number | null {
  const best = Math.max(...bs.map((b) => val(b) ?? -1));
  const v = val(a);
  return v === null || best <= 0 ? null : v / best;
}
const fr = (r: number | null): string => (r === null ? "n/a" : `${r.toFixed(2)}×`);

out.add("## 4. Benchmark: ours vs the seed's model in PyTorch eager", "");
if (!python || !seedModel) throw new Error("--python and --seed-model are required");
if (cuda) {
  if (api.setTf32) api.setTf32(true);
  else out.add("**setTf32 is not in this build: our fp32 runs with libtorch's TF32 default.**", "");
}
let peer = new Peer();
await peer.start();
/** The peer's measurement, on a fresh peer process if the last one died. */
async function peerCell(mode: string, size: number, precision: string, channelsLast: boolean): Promise<Cell> {
  if (peer.dead) {
    peer = new Peer();
    await peer.start();
  }
  return await peer.measure(mode, size, precision, channelsLast);
}
out.add(
  `Device \`${device}\` (PyTorch sees ${
    JSON.stringify(peer.header.device)
  }, torch ${peer.header.torch}, cuDNN ${peer.header.cudnn}); ` +
    `batch ${batch}${
      cuda ? "" : `, ${threads} CPU thread(s) on both sides`
    }; img/s: median of 3 chunks of k steps (k ≥ ${minSteps}, ~${budget} s per cell; train steps sync once per chunk, inference returns every batch's logits), after 2 warm-ups; ` +
    `${
      cuda ? "TF32 on for fp32 on both sides" : "TF32 does not apply on the CPU"
    }; ours = fpn skip (as runs train), PyTorch = the seed's HybridNet as written. ` +
    `Ratios divide ours by the better of PyTorch's two layouts (NCHW, channels-last).`,
  "",
  "| px | step | ours fp32 | PyTorch fp32 | PyTorch fp32 cl | ours ÷ PyTorch fp32 | ours bf16 | PyTorch bf16 | PyTorch bf16 cl | ours bf16 ÷ PyTorch bf16 |",
  "|---|---|---|---|---|---|---|---|---|---|",
);
const errors: string[] = [];
const targets: string[] = [];
for (const size of sizes) {
  for (const mode of ["train", "infer"] as const) {
    const o32 = await ours(mode, size, "fp32");
    const p32 = await peerCell(mode, size, "fp32", false);
    const p32cl = await peerCell(mode, size, "fp32", true);
    const o16 = await ours(mode, size, "bf16");
    const p16 = await peerCell(mode, size, "bf16", false);
    const p16cl = await peerCell(mode, size, "bf16", true);
    const r32 = ratio(o32, p32, p32cl), r16 = ratio(o16, p16, p16cl);
    for (const [name, c] of Object.entries({ o32, p32, p32cl, o16, p16, p16cl })) {
      if ("error" in c) errors.push(`${size} px ${mode} ${name}: ${c.error}`);
    }
    out.add(
      `| ${size} | ${mode} | ${fmt(o32)} | ${fmt(p32)} | ${fmt(p32cl)} | ${fr(r32)} | ${fmt(o16)} | ${
        fmt(p16)
      } | ${fmt(p16cl)} | ${fr(r16)} |`,
    );
    if (mode === "train") {
      const met = (
        r: number | null,
      ): string => (r === null ? "not measured" : r >= 1.3 ? "met" : "**not met**");
      // a ratio over one layout only, when the other failed, is said to be so
      const partial = (...cs: Cell[]): string =>
        cs.some((c) => "error" in c) ? ", against the PyTorch layout that ran" : "";
      targets.push(
        `- ${size} px train: ours fp32 ≥ 1.3× PyTorch fp32: ${met(r32)} (${fr(r32)}${
          partial(p32, p32cl)
        }); ` +
          `ours bf16 ≥ 1.3× PyTorch bf16 autocast: ${met(r16)} (${fr(r16)}${partial(p16, p16cl)})`,
      );
    }
  }
}
if (!peer.dead) await peer.close();
out.add("", "Targets (issue 12):", "", ...targets);
if (errors.length) out.add("", "¹ errors:", "", ...errors.map((e) => `- ${e.split("\n")[0]}`));
// a cell that could not run in this build is reported, not failed; a crash or error fails the stage
const broken = errors.filter((e) => !/no precision option|no trainer precision/.test(e));
if (broken.length) {
  console.error(`${broken.length} benchmark cell(s) failed`);
  Deno.exit(1);
}
