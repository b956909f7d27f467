/**
 * Pure decisions the runner carries out (STYLE 14): which checkpoints to write, whether a
 * metric improved, whether to stop early. No disk, no native calls: unit-testable.
 */
import { metricMode, readMetric } from "./metric-path.ts";
import type { EpochMetrics } from "./types.ts";

export { metricMode, readMetric };

/** A checkpoint to write after an epoch. */
export type CheckpointAction = "best" | "last";

/** `last` every epoch; `best` too when the tracked metric improved. */
export function checkpointActions(improvedBest: boolean): CheckpointAction[] {
  return improvedBest ? ["best", "last"] : ["last"];
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

/** The best metric so far: its name, value and epoch (null before the first evaluation). */
export interface BestMetric {
  name: string;
  value: number | null;
  epoch: number | null;
}

/** What `RunDecisions` keeps across a resume (in last.json). */
export interface RunDecisionsState {
  best: BestMetric;
  earlyStopping: EarlyStoppingState | null;
}

/** What to do after an epoch. */
export interface EpochDecision {
  /** the tracked metric improved: the epoch is the new best */
  improved: boolean;
  /** early stopping says stop */
  stop: boolean;
  actions: CheckpointAction[];
}

/**
 * The best-checkpoint and early-stopping decisions of a run. With a val split the best metric
 * is `bestMetric`; without one, `train.loss` (so best = lowest train loss). Epochs without an
 * evaluation (evalEvery > 1) decide nothing but write `last`.
 */
export class RunDecisions {
  #best: BestMetric;
  readonly #early: EarlyStopping | null;

  constructor(
    readonly bestMetric: string,
    readonly hasVal: boolean,
    readonly earlyStopping:
      | { metric: string; patience: number; minDelta: number; mode: "min" | "max" }
      | null,
  ) {
    this.#best = { name: bestMetric, value: null, epoch: null };
    const es = earlyStopping;
    this.#early = es ? new EarlyStopping(es.patience, es.minDelta, es.mode) : null;
  }

  get best(): BestMetric {
    return { ...this.#best };
  }

  /** Feeds one epoch's figures; `evaluated` = the epoch ran validation (or there is no val split). */
  afterEpoch(figures: EpochMetrics, evaluated: boolean): EpochDecision {
    const tracked = this.hasVal ? this.bestMetric : "train.loss";
    const value = readMetric(figures, tracked);
    const improved = evaluated && value !== undefined &&
      improves(value, this.#best.value, metricMode(tracked));
    if (improved) this.#best = { name: this.bestMetric, value: value!, epoch: figures.epoch };
    let stop = false;
    if (this.#early && evaluated) {
      const v = readMetric(figures, this.earlyStopping!.metric);
      if (v !== undefined) stop = this.#early.update(v);
    }
    return { improved, stop, actions: checkpointActions(improved) };
  }

  stateDict(): RunDecisionsState {
    return { best: this.best, earlyStopping: this.#early?.stateDict() ?? null };
  }

  loadStateDict(s: RunDecisionsState): void {
    this.#best = { ...s.best };
    this.#early?.loadStateDict(s.earlyStopping);
  }
}
