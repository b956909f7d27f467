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

/** Why a run counts as diverged, or null while it does not. */
export type DivergenceVerdict = { reason: string } | null;

/**
 * Divergence that stays finite (Adam at a far too high LR trains to losses of 1e13 without a
 * NaN): the run has diverged when
 * - a read loss is NaN or ±Inf, or
 * - the mean train loss of the current epoch so far (over at least `minSteps` read steps), or of
 *   a whole epoch, is above `factor` × the reference: the lowest mean train loss of an earlier
 *   epoch of the same curriculum stage, or in a stage's first epoch the loss of its first step.
 *   Per stage, because a stage that adds classes legitimately starts far above the loss the
 *   previous stage converged to. The reference is at least `floor`, so a loss that converged to
 *   almost 0 does not turn ordinary noise into "divergence".
 * The reference comes from the epoch history (restored on resume) and the first step, so the
 * rule needs no state of its own beyond the current epoch.
 */
export class DivergenceGuard {
  #reference: number | null = null;
  #sum = 0;
  #count = 0;

  constructor(readonly factor = 100, readonly minSteps = 5, readonly floor = 0.05) {}

  /** Starts an epoch of stage `stageIndex`: the reference is that stage's lowest epoch mean in `history`. */
  beginEpoch(history: readonly EpochMetrics[], stageIndex: number): void {
    const losses = history.filter((h) => h.stage === stageIndex).map((h) => h.train.loss)
      .filter((v) => Number.isFinite(v));
    this.#reference = losses.length > 0 ? Math.min(...losses) : null;
    this.#sum = 0;
    this.#count = 0;
  }

  /** Feeds one read step loss; returns the verdict. */
  step(loss: number): DivergenceVerdict {
    if (!Number.isFinite(loss)) return { reason: `the loss is ${loss}` };
    if (this.#reference === null) this.#reference = loss;
    this.#sum += loss;
    this.#count++;
    const mean = this.#sum / this.#count;
    if (this.#count >= this.minSteps && this.#exceeds(mean)) {
      return { reason: `the epoch's mean train loss so far, ${fmt(mean)}, is over ${this.#limit()}` };
    }
    return null;
  }

  /** Checks a finished epoch's mean train loss. */
  epoch(meanLoss: number): DivergenceVerdict {
    if (!Number.isFinite(meanLoss)) return { reason: `the epoch's mean train loss is ${meanLoss}` };
    return this.#exceeds(meanLoss)
      ? { reason: `the epoch's mean train loss, ${fmt(meanLoss)}, is over ${this.#limit()}` }
      : null;
  }

  #exceeds(v: number): boolean {
    return this.#reference !== null && v > this.factor * Math.max(this.#reference, this.floor);
  }

  #limit(): string {
    const ref = Math.max(this.#reference ?? Number.NaN, this.floor);
    return `${this.factor}× the reference ${fmt(ref)}`;
  }
}

const fmt = (
  v: number,
): string => (Math.abs(v) >= 1e4 || Math.abs(v) < 1e-3 ? v.toExponential(2) : v.toFixed(4));
