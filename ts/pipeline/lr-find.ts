/**
 * LR range test ("LR finder"): train a fresh model for `steps` steps while the learning rate
 * grows geometrically from `minLr` to `maxLr` (step i: minLr * (maxLr / minLr)^(i / (steps - 1))),
 * record the loss per step, and stop once the smoothed loss exceeds `divergeFactor` × its best.
 *
 * The data and the session are built as `runPipeline` builds them (same seeds), with the stage
 * plan of epoch 0 (or every class, `allClasses`), and the sweep as the session's LR policy; the sampler is drawn again whenever an epoch's batches run out. No
 * run folder, checkpoint or val split: only `lr-find.csv` and `lr-find.svg` in `out`.
 *
 * Suggested LR: the LR where the smoothed loss falls fastest against log(LR) (the most negative
 * central difference), i.e. the middle of the steepest descent, not the minimum, which sits
 * right before divergence. When the smoothed loss never falls, `minLr` with `descended: false`.
 */
import { join } from "node:path";
import { manualSeed, setNumThreads } from "../native/library.ts";
import type { ResolvedConfig } from "./config.ts";
import { batchStream } from "./data.ts";
import { DivergenceError, UsageError } from "./errors.ts";
import { createRng, deriveSeed } from "./rng.ts";
import { checkOrder, pluginLabel } from "./plugin-checks.ts";
import { openRunData } from "./run-data.ts";
import { sessionSpec, type StepReport, TrainSession } from "./session.ts";
import { axes, svgClose, svgOpen } from "./svg.ts";

/** Options of `findLr`. */
export interface LrFindOptions {
  /** LR of the first step (default 1e-7) */
  minLr?: number;
  /** LR of the last step (default 1) */
  maxLr?: number;
  /** steps to train at most (default 100) */
  steps?: number;
  /** folder for lr-find.csv and lr-find.svg (created) */
  out: string;
  /** weight of the past in the exponential moving average of the loss (default 0.98) */
  smoothing?: number;
  /** stop when the smoothed loss exceeds this × the best smoothed loss (default 4) */
  divergeFactor?: number;
  /** print a line per step (default: nothing) */
  log?: (line: string) => void;
  /**
   * sweep on every class instead of the stage plan of epoch 0 (default false). `lr: auto` sets it:
   * the picked LR serves the whole run, and a curriculum's first stage (two easy classes) lets the
   * loss fall at rates the full problem does not tolerate.
   */
  allClasses?: boolean;
}

/** One training step of the sweep. */
export interface LrFindPoint {
  /** 0-based step */
  step: number;
  lr: number;
  /** the batch's mean loss */
  loss: number;
  /** bias-corrected exponential moving average of `loss` */
  smoothed: number;
}

/** What `findLr` returns. */
export interface LrFindResult {
  points: LrFindPoint[];
  /** the LR at the steepest descent of the smoothed loss (see the module doc) */
  suggestedLr: number;
  /** false when the smoothed loss never fell (suggestedLr is then minLr) */
  descended: boolean;
  /** why the sweep ended */
  stop: "done" | "diverged" | "non-finite";
  minLr: number;
  maxLr: number;
  /** paths of the written files */
  csv: string;
  svg: string;
}

/** LR of step `i` of a geometric sweep of `steps` steps from minLr to maxLr. */
export function sweepLr(i: number, steps: number, minLr: number, maxLr: number): number {
  return steps <= 1 ? minLr : minLr * (maxLr / minLr) ** (i / (steps - 1));
}

/** Step index whose central slope of `smoothed` (per step, i.e. per log-LR unit) is most negative; -1 if none. */
export function steepestDescent(smoothed: number[]): number {
  let best = -1, bestSlope = 0;
  for (let i = 0; i < smoothed.length; i++) {
    const a = Math.max(0, i - 1), b = Math.min(smoothed.length - 1, i + 1);
    if (b === a) continue;
    const slope = (smoothed[b] - smoothed[a]) / (b - a);
    if (slope < bestSlope) [best, bestSlope] = [i, slope];
  }
  return best;
}

const fmtLr = (v: number): string => v.toExponential(2);

/** Loss against LR on a log10 x-axis: raw loss in grey, smoothed in blue, the suggestion dashed. */
export function lrFindChart(
  points: LrFindPoint[],
  suggestedLr: number,
  minLr: number,
  maxLr: number,
): string {
  const W = 640, H = 320, L = 60, R = 20, T = 30, B = 40;
  const x0 = Math.log10(minLr), x1 = Math.max(Math.log10(maxLr), x0 + 1e-9);
  const sm = points.map((p) => p.smoothed);
  const lo = Math.min(...points.map((p) => Math.min(p.loss, p.smoothed)));
  // the top follows the smoothed curve and the first loss, so one spike does not flatten the rest
  const hi0 = Math.max(...sm, points[0]?.loss ?? 1);
  const pad = Math.max((hi0 - lo) * 0.05, 1e-6);
  const yLo = lo - pad, yHi = hi0 + pad;
  const px = (lr: number): number => L + ((Math.log10(lr) - x0) / (x1 - x0)) * (W - L - R);
  const py = (y: number): number =>
    T + (1 - (Math.min(Math.max(y, yLo), yHi) - yLo) / (yHi - yLo)) * (H - T - B);
  const title = `LR finder: loss against learning rate (suggested ${fmtLr(suggestedLr)})`;
  const out = [...svgOpen(W, H, L, title), ...axes(W, H, L, R, T, B)];
  for (let e = Math.ceil(x0 - 1e-9); e <= x1 + 1e-9; e++) {
    const x = px(10 ** e).toFixed(1);
    out.push(`<line x1="${x}" y1="${T}" x2="${x}" y2="${H - B}" stroke="#eee"/>`);
    out.push(`<text x="${x}" y="${H - B + 14}" text-anchor="middle">1e${e}</text>`);
  }
  for (let i = 0; i <= 4; i++) {
    const v = yLo + ((yHi - yLo) * i) / 4;
    out.push(`<text x="${L - 6}" y="${(py(v) + 4).toFixed(1)}" text-anchor="end">${v.toPrecision(3)}</text>`);
  }
  out.push(`<text x="${(L + W - R) / 2}" y="${H - 8}" text-anchor="middle">learning rate (log scale)</text>`);
  const line = (vals: number[], color: string, width: number): string =>
    `<polyline fill="none" stroke="${color}" stroke-width="${width}" points="${
      points.map((p, i) => `${px(p.lr).toFixed(1)},${py(vals[i]).toFixed(1)}`).join(" ")
    }"/>`;
  if (points.length > 0) {
    out.push(line(points.map((p) => p.loss), "#bbb", 1), line(sm, "#1f77b4", 1.8));
    const sx = px(suggestedLr).toFixed(1);
    out.push(`<line x1="${sx}" y1="${T}" x2="${sx}" y2="${H - B}" stroke="#d62728" stroke-dasharray="4 3"/>`);
    const legend: [string, string][] = [["loss", "#bbb"], ["smoothed", "#1f77b4"], ["suggested", "#d62728"]];
    legend.forEach(([name, color], i) => {
      out.push(`<rect x="${W - R - 90}" y="${T + 4 + i * 16}" width="10" height="10" fill="${color}"/>`);
      out.push(`<text x="${W - R - 76}" y="${T + 13 + i * 16}">${name}</text>`);
    });
  }
  return svgClose(out);
}

/** A short text summary of a sweep (for the CLI). */
export function formatLrFind(r: LrFindResult): string {
  const n = r.points.length;
  const best = r.points.reduce((a, p) => (p.smoothed < a.smoothed ? p : a), r.points[0]);
  const stop = r.stop === "done"
    ? `reached maxLr ${fmtLr(r.maxLr)}`
    : r.stop === "diverged"
    ? `loss diverged at lr ${fmtLr(r.points[n - 1].lr)}`
    : `loss not finite after lr ${fmtLr(r.points[n - 1]?.lr ?? r.minLr)}`;
  const lines = [`LR finder: ${n} steps from lr ${fmtLr(r.minLr)}; stopped: ${stop}`];
  if (best) lines.push(`  lowest smoothed loss ${best.smoothed.toFixed(4)} at lr ${fmtLr(best.lr)}`);
  lines.push(
    r.descended
      ? `  suggested lr ${fmtLr(r.suggestedLr)} (steepest descent of the smoothed loss)`
      : `  the smoothed loss never fell: no suggestion (widen minLr..maxLr or train more steps)`,
  );
  lines.push(`  wrote ${r.csv} and ${r.svg}`);
  return lines.join("\n");
}

/** Checks the sweep options; a UsageError says which one is off. */
function sweepOptions(
  opts: LrFindOptions,
): { minLr: number; maxLr: number; steps: number; beta: number; divergeFactor: number } {
  const minLr = opts.minLr ?? 1e-7, maxLr = opts.maxLr ?? 1, steps = opts.steps ?? 100;
  const beta = opts.smoothing ?? 0.98, divergeFactor = opts.divergeFactor ?? 4;
  if (!(minLr > 0 && maxLr > minLr)) {
    throw new UsageError(`lr:find: need 0 < min < max; got ${minLr}, ${maxLr}`);
  }
  if (!(Number.isInteger(steps) && steps >= 2)) {
    throw new UsageError(`lr:find: steps must be an integer >= 2; got ${steps}`);
  }
  if (!(beta >= 0 && beta < 1)) throw new UsageError(`lr:find: smoothing must be in [0, 1); got ${beta}`);
  if (!(divergeFactor > 1)) throw new UsageError(`lr:find: divergeFactor must be > 1; got ${divergeFactor}`);
  return { minLr, maxLr, steps, beta, divergeFactor };
}

/** Writes lr-find.csv and lr-find.svg into `out`; returns their paths. */
async function writeSweep(
  out: string,
  points: LrFindPoint[],
  suggestedLr: number,
  minLr: number,
  maxLr: number,
): Promise<{ csv: string; svg: string }> {
  await Deno.mkdir(out, { recursive: true });
  const csv = join(out, "lr-find.csv"), svg = join(out, "lr-find.svg");
  const rows = points.map((p) => `${p.step},${p.lr},${p.loss},${p.smoothed}`);
  await Deno.writeTextFile(csv, ["step,lr,loss,smoothed", ...rows].join("\n") + "\n");
  await Deno.writeTextFile(svg, lrFindChart(points, suggestedLr, minLr, maxLr));
  return { csv, svg };
}

/** Runs the LR range test on `config` (see the module doc); writes lr-find.csv/.svg into `opts.out`. */
export async function findLr(config: ResolvedConfig, opts: LrFindOptions): Promise<LrFindResult> {
  const { minLr, maxLr, steps, beta, divergeFactor } = sweepOptions(opts);
  if (config.train.threads !== null) setNumThreads(config.train.threads);
  const log = (l: string): void => opts.log?.(l);
  const data = await openRunData(config, { log, splits: ["train"] });
  let session: TrainSession | null = null;
  try {
    const train = data.splits.train!;
    const { augment, sampler, loss, stage } = data.plugins;
    // the sweep sets the LR of every step; the trainer starts at its first (also when lr is "auto")
    // the sweep plots every step's loss, so every step reads it back
    const spec = sessionSpec(config, data.numClasses, { lr: minLr, ema: false, logEverySteps: 1 });
    session = await TrainSession.open(spec);
    const samplerLabel = pluginLabel("sampler", config.sampler.name);
    session.train({
      loss,
      nativeLoss: config.train.nativeLoss,
      lr: (p) => sweepLr(p.index, steps, minLr, maxLr),
      lossLabel: pluginLabel("loss", config.loss.name),
    });
    manualSeed(deriveSeed(config.seed, "epoch", 0));
    const first = stage.plan(0, []);
    const plan = opts.allClasses
      ? { ...first, activeClasses: Array.from({ length: data.numClasses }, (_, c) => c), maskInactive: false }
      : first;
    session.beginEpoch(0, plan);
    const rng = createRng(deriveSeed(config.seed, "sampler"));
    const points: LrFindPoint[] = [];
    let avg = 0, best = Infinity;
    let stop: LrFindResult["stop"] = "done";
    sweep: for (let draw = 0; points.length < steps; draw++) {
      const order = checkOrder(
        sampler.sample(train.labels, plan.activeClasses, draw, rng),
        train.count,
        samplerLabel,
        draw,
      );
      const batches = batchStream(train, order, {
        batchSize: config.train.batchSize,
        ops: augment.trainOps,
        seedOf: (k) => deriveSeed(config.seed, "lr-find", draw, k),
        maxBatches: steps - points.length,
        transformU8: augment.transformU8?.bind(augment),
      });
      for await (const b of batches) {
        const i = points.length;
        const pos = { epoch: 0, index: i, steps, stageIndex: plan.stageIndex, history: [] };
        let r: StepReport;
        try {
          r = await session.step(b, pos);
        } catch (err) {
          if (!(err instanceof DivergenceError)) throw err;
          stop = "non-finite";
          break sweep;
        }
        const value = r.loss!;
        avg = beta * avg + (1 - beta) * value;
        const smoothed = avg / (1 - beta ** (i + 1));
        points.push({ step: i, lr: r.lr, loss: value, smoothed });
        opts.log?.(`lr-find step ${i + 1}/${steps}: lr ${fmtLr(r.lr)} loss ${value.toFixed(4)}`);
        if (smoothed > divergeFactor * best) {
          stop = "diverged";
          break sweep;
        }
        best = Math.min(best, smoothed);
      }
    }
    const k = steepestDescent(points.map((p) => p.smoothed));
    const suggestedLr = k >= 0 ? points[k].lr : minLr;
    const { csv, svg } = await writeSweep(opts.out, points, suggestedLr, minLr, maxLr);
    return { points, suggestedLr, descended: k >= 0, stop, minLr, maxLr, csv, svg };
  } finally {
    session?.close();
    data.close();
  }
}
