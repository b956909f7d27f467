/**
 * Pure decisions the runner carries out (STYLE 14): which checkpoints to write, whether a
 * metric improved, whether to stop early. No disk, no native calls: unit-testable.
 */
import { type Schedule, scheduleLr } from "./schedules.ts";
import type { EpochMetrics, Metrics } from "./types.ts";

export type { Schedule };

/** A checkpoint to write after an epoch. */
export type CheckpointAction = "best" | "last";

/** `last` every epoch; `best` too when the tracked metric improved. */
export function checkpointActions(improvedBest: boolean): CheckpointAction[] {
  return improvedBest ? ["best", "last"] : ["last"];
}

/** "min" for loss-like and error metrics (…loss, …ordinalMae), "max" otherwise. */
export function metricMode(path: string): "min" | "max" {
  return /(loss|ordinalMae)$/i.test(path) ? "min" : "max";
}

/**
 * Reads a metric by dotted path from an epoch's figures: `val.all.macroF1`,
 * `val.active.accuracy`, `train.loss`… Undefined when the epoch has no such figure.
 */
export function readMetric(m: EpochMetrics, path: string): number | undefined {
  const [head, ...rest] = path.split(".");
  if (head === "train") return (m.train as Record<string, number>)[rest[0]];
  if (head === "val" && m.val) {
    const which = m.val[rest[0] as "all" | "active"] as Metrics | undefined;
    const v = which?.[rest[1] as keyof Metrics];
    return typeof v === "number" ? v : undefined;
  }
  return undefined;
}

/** Whether `value` beats `best` by more than `minDelta` in `mode`. */
export function improves(value: number, best: number | null, mode: "min" | "max", minDelta = 0): boolean {
  if (!Number.isFinite(value)) return false;
  if (best === null) return true;
  return mode === "max" ? value > best + minDelta : value < best - minDelta;
}

/** State of the early-stopping policy (kept in last.json). */
export interface EarlyStoppingState {
  best: number | null;
  bad: number;
}

/** Early stopping: stop after `patience` evaluations without an improvement > minDelta. */
export class EarlyStopping {
  readonly stateKey = "earlyStopping";
  #state: EarlyStoppingState = { best: null, bad: 0 };

  constructor(readonly patience: number, readonly minDelta: number, readonly mode: "min" | "max") {}

  /** Feeds one evaluated value; returns whether training should stop. */
  update(value: number): boolean {
    if (improves(value, this.#state.best, this.mode, this.minDelta)) {
      this.#state = { best: value, bad: 0 };
    } else {
      this.#state = { ...this.#state, bad: this.#state.bad + 1 };
    }
    return this.#state.bad >= this.patience;
  }

  get counter(): number {
    return this.#state.bad;
  }

  stateDict(): EarlyStoppingState {
    return { ...this.#state };
  }

  loadStateDict(s: unknown): void {
    const st = s as EarlyStoppingState;
    if (typeof st !== "object" || st === null || typeof st.bad !== "number") {
      throw new Error(`earlyStopping state must be {best, bad}; got ${JSON.stringify(s)}`);
    }
    this.#state = { best: st.best ?? null, bad: st.bad };
  }
}

/**
 * Learning rate at `progress` epochs into a run of `epochs` (fractional: epoch + step/steps),
 * without stage or history context. Kept for existing callers; the schedules live in
 * schedules.ts and the runner calls `scheduleLr`.
 */
export function lrAt(schedule: Schedule, lr: number, progress: number, epochs: number): number {
  return scheduleLr(schedule, lr, {
    progress,
    epochs,
    epoch: Math.floor(progress),
    stageIndex: 0,
    history: [],
  });
}
