/**
 * Learning-rate schedules of `train.schedule`, as pure functions of the run's position and the
 * `history` of earlier epochs. Everything a schedule needs is either the position (fractional
 * epoch) or in `history`, which last.json keeps, so a resumed run gets the same LRs with no
 * schedule state of its own.
 *
 * - constant: `lr` throughout.
 * - cosine: linear warm-up from 0 over `warmupEpochs` (see `stepsPerEpoch`), then half a cosine
 *   from `lr` to `minLr`.
 * - one-cycle: cosine rise from `lr / divFactor` to `lr` over the first `pctStart` of the run,
 *   then cosine fall to `lr / (divFactor * finalDivFactor)` (as torch's OneCycleLR, on the
 *   continuous position rather than step counts).
 * - step: `lr * gamma^k` where k = milestones (epochs) reached; optional linear warm-up from 0.
 * - plateau: `lr * factor^r` where r = reductions so far, replayed from `history` (`plateauLr`).
 *
 * `restartPerStage` (cosine, one-cycle, step): the schedule starts over at the first epoch of
 * the current curriculum stage (found in `history`), and the stage counts as a run of
 * `epochs - stageStart` epochs (what remains of the run), since a stage plugin need not know
 * its length. So every stage but the last ends before its curve does; pass `stageEpochs` when
 * the length is known.
 */
import { z } from "zod";
import { DEFAULT_BEST_METRIC, METRIC_PATH, metricMode, readMetric } from "./metric-path.ts";
import { improves } from "./policies.ts";
import type { EpochMetrics } from "./types.ts";

/** restart the schedule at each curriculum stage, the stage counting as the rest of the run */
const restartPerStage = z.boolean().default(false);

/** `train.schedule` (the config validates it with this schema; the types below derive from it). */
export const ScheduleSchema = z.discriminatedUnion("name", [
  z.object({ name: z.literal("constant") }).strict(),
  z.object({
    name: z.literal("cosine"),
    warmupEpochs: z.number().min(0).default(0),
    minLr: z.number().min(0).default(0),
    restartPerStage,
  }).strict(),
  z.object({
    name: z.literal("one-cycle"),
    /** share of the run (or stage) spent rising to lr */
    pctStart: z.number().gt(0).lt(1).default(0.3),
    /** starts at lr / divFactor */
    divFactor: z.number().min(1).default(25),
    /** ends at lr / (divFactor * finalDivFactor) */
    finalDivFactor: z.number().min(1).default(1e4),
    restartPerStage,
  }).strict(),
  z.object({
    name: z.literal("step"),
    /** epochs (from the run's or stage's start) at which the LR is multiplied by gamma */
    milestones: z.array(z.number().int().min(1)).min(1).refine(
      (m) => m.every((v, i) => i === 0 || v > m[i - 1]),
      "must be increasing, e.g. [30, 60]",
    ),
    gamma: z.number().gt(0).max(1).default(0.1),
    warmupEpochs: z.number().min(0).default(0),
    restartPerStage,
  }).strict(),
  z.object({
    name: z.literal("plateau"),
    metric: z.string().regex(
      METRIC_PATH,
      "is not a metric; use e.g. val.all.macroF1, val.all.loss or train.loss",
    )
      .default(DEFAULT_BEST_METRIC),
    factor: z.number().gt(0).lt(1).default(0.5),
    /** evaluations without improvement before the LR is reduced */
    patience: z.number().int().min(1).default(2),
    minDelta: z.number().min(0).default(0),
    minLr: z.number().min(0).default(0),
    /** evaluations after a reduction that count no bad epochs */
    cooldown: z.number().int().min(0).default(0),
  }).strict(),
]);

/** The learning-rate schedule of `train.schedule`. */
export type Schedule = z.infer<typeof ScheduleSchema>;
type Named<N extends Schedule["name"]> = Extract<Schedule, { name: N }>;
/** cosine schedule: warm-up, then cosine to `minLr`. */
export type CosineSchedule = Named<"cosine">;
/** one-cycle schedule (cosine rise, then cosine fall). */
export type OneCycleSchedule = Named<"one-cycle">;
/** step schedule: multiply by `gamma` at each milestone epoch. */
export type StepSchedule = Named<"step">;
/** reduce-on-plateau: multiply by `factor` after `patience` evaluations without improvement. */
export type PlateauSchedule = Named<"plateau">;

/** Where in the run an LR is asked for. */
export interface ScheduleContext {
  /** epochs into the run, fractional: epoch + step / stepsPerEpoch */
  progress: number;
  /** the run's epochs (train.epochs) */
  epochs: number;
  /** the current epoch (0-based) */
  epoch: number;
  /** the current stage plan's stageIndex */
  stageIndex: number;
  /** metrics of the earlier epochs, oldest first (the current epoch not included) */
  history: readonly EpochMetrics[];
  /** the current stage's length when known; default: the rest of the run */
  stageEpochs?: number;
  /**
   * steps per epoch, when known: the warm-up ramp is then taken at the end of the current step,
   * so the first step trains at lr / warm-up steps rather than at 0 (which the trainer rejects)
   */
  stepsPerEpoch?: number;
}

const clamp01 = (x: number): number => Math.min(1, Math.max(0, x));

/** `from` → `to` along half a cosine as t goes 0 → 1. */
function cosineBetween(from: number, to: number, t: number): number {
  return to + (from - to) * 0.5 * (1 + Math.cos(Math.PI * clamp01(t)));
}

/**
 * First epoch of the current stage: the start of the run of trailing `history` entries whose
 * `stage` is `stageIndex`; `epoch` itself when the previous epoch was another stage.
 */
export function stageStart(history: readonly EpochMetrics[], stageIndex: number, epoch: number): number {
  let start = epoch;
  for (let i = history.length - 1; i >= 0 && history[i].stage === stageIndex; i--) start = history[i].epoch;
  return start;
}

/** Linear warm-up factor in (0, 1] over `w` epochs; `step` = one step in epochs (0: unknown). */
function warmFactor(progress: number, w: number, step: number): number {
  return w > 0 && progress < w ? Math.min(1, (progress + step) / w) : 1;
}

/** Cosine LR at `progress` of `epochs` (warm-up from 0 first). */
function cosineLr(s: CosineSchedule, lr: number, progress: number, epochs: number, step: number): number {
  const w = s.warmupEpochs;
  if (w > 0 && progress < w) return lr * warmFactor(progress, w, step);
  return cosineBetween(lr, s.minLr, (progress - w) / Math.max(epochs - w, 1e-9));
}

/** One-cycle LR at `progress` of `epochs`. */
function oneCycleLr(s: OneCycleSchedule, lr: number, progress: number, epochs: number): number {
  const initial = lr / s.divFactor;
  const final = initial / s.finalDivFactor;
  const t = clamp01(progress / Math.max(epochs, 1e-9));
  if (t < s.pctStart) return cosineBetween(initial, lr, t / s.pctStart);
  return cosineBetween(lr, final, (t - s.pctStart) / (1 - s.pctStart));
}

/** Step LR at `progress` (epochs; a milestone m applies from the start of epoch m). */
function stepLr(s: StepSchedule, lr: number, progress: number, step: number): number {
  const k = s.milestones.filter((m) => progress >= m).length;
  return lr * warmFactor(progress, s.warmupEpochs, step) * s.gamma ** k;
}

/**
 * Reduce-on-plateau LR for the epoch after `history`, replayed from the start: each evaluated
 * epoch (one with the metric) either improves the best by more than `minDelta` (mode from
 * `metricMode`) or adds a bad epoch; after `patience` bad epochs in a row the LR is multiplied
 * by `factor` (floored at `minLr`), and the next `cooldown` evaluations count no bad epochs.
 * Like `EarlyStopping`, it acts at the `patience`-th bad evaluation (torch waits one more).
 */
export function plateauLr(s: PlateauSchedule, lr: number, history: readonly EpochMetrics[]): number {
  const mode = metricMode(s.metric);
  let best: number | null = null;
  let bad = 0, cooldown = 0, cur = lr;
  for (const h of history) {
    const v = readMetric(h, s.metric);
    if (v === undefined) continue; // not an evaluated epoch
    if (improves(v, best, mode, s.minDelta)) {
      best = v;
      bad = 0;
    } else {
      bad++;
    }
    if (cooldown > 0) {
      cooldown--;
      bad = 0;
    }
    if (bad >= s.patience) {
      cur = Math.max(cur * s.factor, s.minLr);
      cooldown = s.cooldown;
      bad = 0;
    }
  }
  return cur;
}

/** The learning rate of `schedule` (base `lr`) at the position in `ctx`. The runner's one entry point. */
export function scheduleLr(schedule: Schedule, lr: number, ctx: ScheduleContext): number {
  if (schedule.name === "constant") return lr;
  if (schedule.name === "plateau") return plateauLr(schedule, lr, ctx.history);
  let { progress, epochs } = ctx;
  if (schedule.restartPerStage) {
    const start = stageStart(ctx.history, ctx.stageIndex, ctx.epoch);
    progress -= start;
    epochs = ctx.stageEpochs ?? epochs - start;
  }
  const step = ctx.stepsPerEpoch ? 1 / ctx.stepsPerEpoch : 0;
  if (schedule.name === "cosine") return cosineLr(schedule, lr, progress, epochs, step);
  if (schedule.name === "one-cycle") return oneCycleLr(schedule, lr, progress, epochs);
  return stepLr(schedule, lr, progress, step);
}
