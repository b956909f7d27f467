/**
 * `TrainSession`: one model on one device, and what training it needs — the trainer, the loss
 * path, the LR policy, `step`, `predict`/`validate`, the best/early-stop decisions, checkpoint
 * saving and `close()`. Every command that touches a model goes through one: `train` (the epoch
 * loop in runner.ts), `crt` (trainable head), `lr:find` (an LR sweep as its policy), `eval` and
 * `predict` (no trainer), `compare` (through `train`) and the benchmark (the data-free core:
 * `TrainSession.open` with options, no config).
 *
 * The loss path is fixed when the session is built: a loss with a native twin trains in one
 * native call per step (no host round trip); otherwise the logits cross to TS, the loss plugin
 * computes the gradient and a second call steps (the logits boundary, docs/ABI.md).
 *
 * `step` returns the batch loss only when it is read: every `train.logEverySteps` steps (1 on the
 * CPU, 50 on CUDA), so on CUDA the other steps never wait for the device. The epoch's train
 * figures (loss sum, images, confusion and top-k hits for the evaluator's `fromCounts`) are
 * counted natively on the model's device and read once, in `endEpoch()`; an evaluator without
 * `countSpec`/`fromCounts` gets the epoch's train logits instead, collected here as before. A
 * NaN loss between reads is still caught at the next read: the native running loss sum turns NaN
 * and is checked there (and at the epoch's end).
 *
 * With `train.ema` the trainer keeps a moving average of the weights natively; `validate` and the
 * best checkpoint use it (swapped into the model for the call, then swapped back), while `last`
 * keeps the raw weights and the trainer state the EMA, so a resumed run continues exactly.
 */
import { createModel, createTrainer, loadModel } from "../model/hybridnet.ts";
import type { HybridNetOptionsInput, TrainerOptionsInput } from "../model/options.ts";
import type { Model } from "../native/model.ts";
import type { Trainer } from "../native/trainer.ts";
import type { ResolvedConfig } from "./config.ts";
import { evalStream, type SplitImages } from "./data.ts";
import { type Device, resolveDevice } from "./device.ts";
import { ConfigError, DivergenceError } from "./errors.ts";
import {
  type CheckpointAction,
  type DivergenceGuard,
  RunDecisions,
  type RunDecisionsState,
} from "./policies.ts";
import { checkLossResult } from "./plugin-checks.ts";
import { checkWeightsFile } from "./weights-file.ts";
import { deriveSeed } from "./rng.ts";
import { type CheckpointWriters, type RunPaths, saveBestWeights, saveLastCheckpoint } from "./rundir.ts";
import { scheduleLr } from "./schedules.ts";
import type {
  AugmentOp,
  EpochMetrics,
  Evaluator,
  Loss,
  Metrics,
  PredictionCounts,
  StagePlan,
} from "./types.ts";

/** What the data-free core of a session is built from. */
export interface SessionSpec {
  device: Device;
  /** architecture, kernel options and the init seed */
  model: HybridNetOptionsInput;
  /** null: inference only (eval, predict) */
  trainer: TrainerOptionsInput | null;
  /** safetensors weights to load after building the model */
  weights?: string;
  /** read the loss back every this many steps (default 1) */
  logEverySteps?: number;
}

/** `train.logEverySteps` when the config leaves it null: every step on the CPU (free there), 50 elsewhere. */
export function defaultLogEverySteps(device: Device): number {
  return device === "cpu" ? 1 : 50;
}

/** Where in a run a step is: what an LR policy needs. */
export interface StepPosition {
  epoch: number;
  /** 0-based step within the epoch */
  index: number;
  /** steps in this epoch */
  steps: number;
  stageIndex: number;
  /** figures of the earlier epochs, oldest first */
  history: readonly EpochMetrics[];
}

/** The learning rate of a step. */
export type LrPolicy = (pos: StepPosition) => number;

/** One training batch as the session takes it. */
export interface StepBatch {
  x: Float32Array;
  shape: [number, number, number, number];
  targets: Int32Array;
}

/** What one step reports: its LR, and the batch's mean loss when it was read this step. */
export interface StepReport {
  lr: number;
  loss: number | null;
}

/** The train figures of an epoch, from the steps since `beginEpoch`. */
export interface EpochTrainFigures {
  /** mean loss over the images */
  loss: number;
  /** the native prediction counts; null when the evaluator takes logits (then in `logits`) */
  counts: PredictionCounts | null;
  /** train-mode logits [images, classes] and targets (empty with `counts`) */
  logits: Float32Array;
  targets: Int32Array;
  images: number;
  steps: number;
}

/**
 * A session's epoch accumulator: the loss sum, images and steps so far, and the prediction
 * counts (native counting) or the train-mode logits and targets (an evaluator without counts).
 */
export interface SessionEpochState {
  counts: PredictionCounts | null;
  logits: Float32Array;
  targets: Int32Array;
  lossSum: number;
  lossImages: number;
  steps: number;
}

/** The train metrics of an epoch's figures under `evaluator`, on the plan's `restrict` classes. */
export function trainMetrics(
  fig: EpochTrainFigures,
  evaluator: Evaluator,
  numClasses: number,
  restrict: number[],
): Metrics {
  if (fig.counts !== null && evaluator.fromCounts) {
    return evaluator.fromCounts(fig.counts, fig.loss, restrict);
  }
  return evaluator.evaluate(fig.logits, fig.targets, fig.images, numClasses, fig.loss, restrict);
}

/** Options of `sessionSpec`: what differs between a run, cRT and inference. */
export interface SpecOptions {
  /** "none": no trainer (eval, predict); "head": only the classifier trains (cRT) */
  trainable?: "all" | "head" | "none";
  /** weights to start from */
  weights?: string;
  /** base LR of the trainer (default: the config's) */
  lr?: number;
  /** the name the trainer's seed is derived from (default "trainer") */
  trainerSeedKey?: string;
  /** false: no EMA even with `train.ema` (the LR finder, whose model is thrown away) */
  ema?: boolean;
  /** read the loss every this many steps (default: the config's, resolved for the device) */
  logEverySteps?: number;
}

/** The session spec of a run of `config` on a dataset of `numClasses` classes. */
export function sessionSpec(config: ResolvedConfig, numClasses: number, o: SpecOptions = {}): SessionSpec {
  const trainable = o.trainable ?? "all";
  const device = resolveDevice(config.device);
  return {
    device,
    logEverySteps: o.logEverySteps ?? config.train.logEverySteps ?? defaultLogEverySteps(device),
    model: {
      numClasses,
      inputChannels: config.data.channels,
      dropoutRate: config.model.dropoutRate,
      fpn: config.model.fpn,
      kernels: config.model.kernels,
      seed: deriveSeed(config.seed, "model"),
      device,
    },
    trainer: trainable === "none" ? null : {
      optimizer: { ...config.train.optimizer, lr: o.lr ?? baseLr(config) },
      clipGradNorm: config.train.clipGradNorm,
      seed: deriveSeed(config.seed, o.trainerSeedKey ?? "trainer"),
      trainable,
      // cRT (head) writes its raw result, so an EMA there would only make its val disagree with it
      ema: trainable === "all" && o.ema !== false ? config.train.ema : null,
      precision: config.train.precision,
    },
    weights: o.weights,
  };
}

/**
 * The config's base LR. `lr: auto` is resolved by a new run before it starts (auto-lr.ts), which
 * writes the picked number into the run's config.yaml; anything else needs a number.
 */
export function baseLr(config: ResolvedConfig): number {
  const lr = config.train.optimizer.lr;
  if (lr === "auto") {
    throw new ConfigError("config", [{
      path: ["train", "optimizer", "lr"],
      message: 'is "auto", which only `train` resolves (with an LR range test); give a number here',
    }]);
  }
  return lr;
}

/** The LR policy of `config`'s `train.schedule`. */
export function scheduleOf(config: ResolvedConfig): LrPolicy {
  const { schedule, epochs } = config.train;
  return (p) =>
    scheduleLr(schedule, baseLr(config), {
      progress: p.epoch + p.index / p.steps,
      epochs,
      epoch: p.epoch,
      stageIndex: p.stageIndex,
      history: p.history,
      stepsPerEpoch: p.steps,
    });
}

/** The loss's class mask of a plan: 1 = active; null when inactive classes are not masked. */
export function activeMask(plan: StagePlan, numClasses: number): Uint8Array | null {
  if (!plan.maskInactive) return null;
  const m = new Uint8Array(numClasses);
  for (const k of plan.activeClasses) m[k] = 1;
  return m;
}

/** Rows of `logits`/`labels` whose label is in `classes`. */
function rowsOf(
  logits: Float32Array,
  labels: Int32Array,
  c: number,
  classes: number[],
): [Float32Array, Int32Array] {
  const keep = new Uint8Array(c);
  for (const k of classes) keep[k] = 1;
  const idx: number[] = [];
  for (let i = 0; i < labels.length; i++) if (keep[labels[i]]) idx.push(i);
  const l = new Float32Array(idx.length * c);
  idx.forEach((i, j) => l.set(logits.subarray(i * c, (i + 1) * c), j * c));
  return [l, Int32Array.from(idx, (i) => labels[i])];
}

/** The DivergenceError of a run whose loss exploded: what happened, where, and what to change. */
function diverged(reason: string, where: string, lr: number): DivergenceError {
  return new DivergenceError(
    `training diverged at ${where}: ${reason}. Lower train.optimizer.lr (the step ran at lr ${lr}), ` +
      `set train.clipGradNorm, or warm the LR up (train.schedule); the last checkpoint is the previous epoch's`,
  );
}

/** The training parts a session needs beyond the model (absent for inference). */
export interface TrainingParts {
  loss: Loss;
  /** "auto": the loss's native twin when it has one; "never": always the logits boundary */
  nativeLoss: "auto" | "never";
  lr: LrPolicy;
  /** best checkpoint and early stopping; null: no decisions (cRT, lr:find) */
  decisions?: RunDecisions | null;
  /** how the loss plugin is named in messages (e.g. `loss plugin "focal"`) */
  lossLabel?: string;
  /** stops a run whose loss explodes while finite (policies.ts); null: only non-finite losses stop it */
  guard?: DivergenceGuard | null;
  /** the evaluator of the train metrics: with `countSpec`/`fromCounts` no train logits leave the device */
  evaluator?: Evaluator | null;
}

/** See the module doc. */
export class TrainSession {
  readonly model: Model;
  readonly device: Device;
  #trainer: Trainer | null;
  #parts: TrainingParts | null = null;
  #native = false;
  #mask: Uint8Array | null = null;
  /** read the loss back every this many steps */
  readonly logEverySteps: number;
  /** this epoch: the candidate classes, whether counting is native, and (else) the logits kept */
  #epoch = {
    index: 0,
    classes: [] as number[],
    counted: false,
    logits: [] as Float32Array[],
    targets: [] as Int32Array[],
  };
  #closed = false;
  #lastLr = Number.NaN;
  /** whether the trainer keeps an EMA of the weights (validation and `best` use it) */
  readonly #ema: boolean;

  private constructor(model: Model, trainer: Trainer | null, device: Device, logEverySteps: number) {
    this.model = model;
    this.#trainer = trainer;
    this.device = device;
    this.logEverySteps = logEverySteps;
    this.#ema = trainer !== null && trainer.describe().config.ema !== null;
  }

  /** The data-free core: builds the model (loading `spec.weights`) and its trainer. */
  static async open(spec: SessionSpec): Promise<TrainSession> {
    if (spec.weights !== undefined) await checkWeightsFile(spec.weights);
    // The spec's device wins: every session's model lives where the session runs.
    const options = { ...spec.model, device: spec.device };
    const model = spec.weights === undefined ? createModel(options) : await loadModel(spec.weights, options);
    try {
      const trainer = spec.trainer === null ? null : createTrainer(model, spec.trainer);
      return new TrainSession(model, trainer, spec.device, spec.logEverySteps ?? 1);
    } catch (err) {
      model.close();
      throw err;
    }
  }

  get numClasses(): number {
    return this.model.numClasses;
  }

  /** The trainer; throws for an inference-only session. */
  get trainer(): Trainer {
    if (this.#trainer === null) throw new Error("TrainSession: this session has no trainer (inference only)");
    return this.#trainer;
  }

  /** Whether steps run the loss natively in one call. */
  get nativeLoss(): boolean {
    return this.#native;
  }

  /** Sets the loss path, LR policy and decisions (once, before the first step). */
  train(parts: TrainingParts): this {
    this.trainer; // throws for inference-only sessions
    this.#parts = parts;
    this.#native = parts.nativeLoss === "auto" && typeof parts.loss.native === "function";
    return this;
  }

  get decisions(): RunDecisions | null {
    return this.#parts?.decisions ?? null;
  }

  #training(): TrainingParts {
    if (this.#parts === null) throw new Error("TrainSession: call train(parts) before stepping");
    return this.#parts;
  }

  /**
   * Starts an epoch under `plan`: the loss learns the epoch (and DRW-like switches), the native
   * twin is set again (asked every epoch: a loss may change over the run), the accumulators
   * reset (the native train statistics count the plan's active classes, as the train metrics do).
   */
  beginEpoch(epoch: number, plan: StagePlan, history: readonly EpochMetrics[] = []): void {
    const { loss, guard, evaluator } = this.#training();
    this.#mask = activeMask(plan, this.numClasses);
    loss.startEpoch?.(epoch, plan);
    if (this.#native) this.trainer.setLoss(loss.native!(this.#mask));
    guard?.beginEpoch(history, plan.stageIndex);
    // train logits are kept only for an evaluator that needs them (no countSpec/fromCounts)
    const counted = !evaluator ||
      (typeof evaluator.countSpec === "function" && typeof evaluator.fromCounts === "function");
    this.#epoch = { index: epoch, classes: [...plan.activeClasses], counted, logits: [], targets: [] };
    this.#resetStats(null);
  }

  /** Starts the native statistics of this epoch, from `from` (a resumed epoch's accumulator) if given. */
  #resetStats(from: SessionEpochState | null): void {
    const { evaluator } = this.#training();
    const { classes, counted } = this.#epoch;
    const c = this.numClasses;
    const spec = counted && evaluator?.countSpec ? evaluator.countSpec(c, classes) : { topK: [], bias: null };
    // without counts (an evaluator that takes logits) only the loss sum, images and steps carry
    const counts = from?.counts ??
      { confusion: Array.from({ length: c }, () => new Array<number>(c).fill(0)), topKHits: {} };
    const carry = from && { images: from.lossImages, steps: from.steps, ...counts };
    this.trainer.resetStats({ classes, topK: spec.topK, bias: spec.bias, carry }, from?.lossSum ?? 0);
  }

  /**
   * One optimizer step on `batch` at `pos` (the LR policy sets the LR first). The loss is read
   * back on every `logEverySteps`-th step of the epoch (the logits path has it on the host anyway).
   */
  async step(batch: StepBatch, pos: StepPosition): Promise<StepReport> {
    const parts = this.#training();
    const trainer = this.trainer;
    const lr = parts.lr(pos);
    trainer.setLr(lr);
    this.#lastLr = lr;
    const read = (pos.index + 1) % this.logEverySteps === 0;
    const loss = this.#native ? await this.#nativeStep(batch, read) : await this.#logitsStep(batch, parts);
    if (loss !== null) {
      const where = `epoch ${pos.epoch + 1}, step ${pos.index + 1}`;
      const verdict = Number.isFinite(loss)
        ? (this.#unreadNaN() ?? parts.guard?.step(loss) ?? null)
        : { reason: `the loss is ${loss}` };
      if (verdict) throw diverged(verdict.reason, where, lr);
    }
    return { lr, loss };
  }

  /** The one-call step; the loss when `read`, else null (nothing copied back). */
  async #nativeStep(batch: StepBatch, read: boolean): Promise<number | null> {
    const e = this.#epoch;
    if (e.counted) return await this.trainer.trainStepLazy(batch.x, batch.shape, batch.targets, read);
    const r = await this.trainer.trainStep(batch.x, batch.shape, batch.targets);
    e.logits.push(r.logits);
    e.targets.push(batch.targets);
    return read ? r.loss : null;
  }

  /** Forward, the TS loss, backward; the batch is counted natively with the TS loss. */
  async #logitsStep(batch: StepBatch, parts: TrainingParts): Promise<number> {
    const trainer = this.trainer;
    const n = batch.shape[0], c = this.numClasses;
    const logits = await trainer.forwardTrain(batch.x, batch.shape);
    const label = parts.lossLabel ?? "loss plugin";
    const r = checkLossResult(parts.loss.compute(logits, batch.targets, n, c, this.#mask), n, c, label);
    await trainer.backwardStep(r.grad);
    await trainer.countLast(batch.targets, r.loss);
    if (!this.#epoch.counted) {
      this.#epoch.logits.push(logits);
      this.#epoch.targets.push(batch.targets);
    }
    return r.loss;
  }

  /** With losses left unread, a NaN among them shows in the native running sum: checked at each read. */
  #unreadNaN(): { reason: string } | null {
    if (this.logEverySteps === 1 || !this.#native) return null;
    const sum = this.trainer.trainStats().lossSum;
    return Number.isFinite(sum) ? null : { reason: `a loss since the previous read was ${sum}` };
  }

  /** The accumulator of the steps since `beginEpoch` (for a mid-epoch checkpoint): one native read. */
  epochState(): SessionEpochState {
    const e = this.#epoch;
    const stats = this.trainer.trainStats();
    const images = e.targets.reduce((a, t) => a + t.length, 0);
    const logits = new Float32Array(images * this.numClasses);
    const targets = new Int32Array(images);
    let off = 0;
    e.targets.forEach((t, i) => {
      logits.set(e.logits[i], off * this.numClasses);
      targets.set(t, off);
      off += t.length;
    });
    return {
      counts: e.counted ? { confusion: stats.confusion, topKHits: stats.topKHits } : null,
      logits,
      targets,
      lossSum: stats.lossSum,
      lossImages: stats.images,
      steps: stats.steps,
    };
  }

  /**
   * Continues an epoch from a mid-epoch checkpoint's accumulator (after `beginEpoch`). One saved
   * with logits (an evaluator without counts, or an older checkpoint) keeps this epoch on logits.
   */
  restoreEpoch(s: SessionEpochState): void {
    const e = this.#epoch;
    e.counted = e.counted && s.counts !== null;
    e.logits = e.counted ? [] : [s.logits];
    e.targets = e.counted ? [] : [s.targets];
    this.#resetStats(s);
  }

  /** The train figures of the steps since `beginEpoch`. */
  endEpoch(): EpochTrainFigures {
    const { counts, logits, targets, lossSum, lossImages, steps } = this.epochState();
    const loss = lossSum / Math.max(lossImages, 1);
    const verdict = steps > 0 ? (this.#parts?.guard?.epoch(loss) ?? null) : null;
    if (verdict) throw diverged(verdict.reason, `the end of epoch ${this.#epoch.index + 1}`, this.#lastLr);
    if (steps > 0 && !Number.isFinite(loss)) {
      throw diverged(
        `the epoch's mean train loss is ${loss}`,
        `the end of epoch ${this.#epoch.index + 1}`,
        this.#lastLr,
      );
    }
    return { loss, counts, logits, targets, images: lossImages, steps };
  }

  /** Eval-mode logits of a whole split, in split order. */
  async predict(split: SplitImages, batchSize: number, ops: AugmentOp[]): Promise<Float32Array> {
    const c = this.numClasses;
    const out = new Float32Array(split.count * c);
    let off = 0;
    for await (const b of evalStream(split, batchSize, ops)) {
      out.set(await this.model.forward(b.x, b.shape), off);
      off += b.shape[0] * c;
    }
    return out;
  }

  /**
   * Metrics of a split: on all classes, and (with a plan) on the plan's active classes with the
   * loss masked as in training. The loss figure is the given loss plugin's mean.
   */
  async validate(
    split: SplitImages,
    o: { evaluator: Evaluator; loss: Loss; batchSize: number; ops: AugmentOp[]; plan?: StagePlan },
  ): Promise<{ all: Metrics; active: Metrics; logits: Float32Array }> {
    const c = this.numClasses;
    const logits = await this.#withEma(() => this.predict(split, o.batchSize, o.ops));
    const meanLoss = (l: Float32Array, t: Int32Array, mask: Uint8Array | null): number =>
      t.length === 0 ? Number.NaN : o.loss.compute(l, t, t.length, c, mask).loss;
    const all = o.evaluator.evaluate(
      logits,
      split.labels,
      split.count,
      c,
      meanLoss(logits, split.labels, null),
    );
    if (!o.plan) return { all, active: all, logits };
    const [al, at] = rowsOf(logits, split.labels, c, o.plan.activeClasses);
    const activeLoss = meanLoss(al, at, activeMask(o.plan, c));
    const active = o.evaluator.evaluate(
      logits,
      split.labels,
      split.count,
      c,
      activeLoss,
      o.plan.activeClasses,
    );
    return { all, active, logits };
  }

  /** Best/early-stop decisions after an epoch (see RunDecisions); none without decisions. */
  decide(
    figures: EpochMetrics,
    evaluated: boolean,
  ): { improved: boolean; stop: boolean; actions: CheckpointAction[] } {
    const d = this.decisions;
    if (d === null) return { improved: false, stop: false, actions: ["last"] };
    return d.afterEpoch(figures, evaluated);
  }

  /**
   * Writes the checkpoints `actions` names: best weights (the EMA's with `train.ema`), then the
   * `last` set with `json` (raw weights; the trainer state holds the EMA).
   */
  async save(paths: RunPaths, actions: CheckpointAction[], json: unknown): Promise<void> {
    const writers: CheckpointWriters = {
      saveWeights: (p) => this.model.save(p),
      saveState: (p) => this.trainer.saveState(p),
    };
    if (actions.includes("best")) await this.#withEma(() => saveBestWeights(paths, writers));
    await saveLastCheckpoint(paths, writers, json);
  }

  /** Runs `fn` with the EMA weights in the model when the trainer keeps an EMA, else as is. */
  #withEma<T>(fn: () => Promise<T>): Promise<T> {
    return this.#ema ? this.trainer.withEma(fn) : fn();
  }

  /** Loads the `last` weights and optimizer state of `paths`, and the decisions' state. */
  async restore(paths: RunPaths, decisions: RunDecisionsState): Promise<void> {
    await this.model.load(paths.lastWeights);
    await this.trainer.loadState(paths.lastState);
    this.decisions?.loadStateDict(decisions);
  }

  /** Frees the trainer and the model (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.model.close();
  }
}
