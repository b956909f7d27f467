/**
 * The plugin contracts of the pipeline: each stage is a tiny interface (1-3 methods), decisions
 * are pure, and the runner carries them out. A plugin module is one file exporting
 * `{ name, configSchema, create(cfg, ctx) }` (see `PluginModule`); configs name a built-in or a
 * path to a user's .ts file that exports the same shape.
 */
import type { z } from "zod";
import type { NativeLossInput } from "../model/options.ts";
import type { AugmentOp } from "../native/images.ts";

/** The pipeline stages that take a plugin: the one list (registry, built-ins and config use it). */
export const PLUGIN_STAGES = ["load", "augment", "sample", "loss", "stage", "evaluate"] as const;
export type PluginStage = (typeof PLUGIN_STAGES)[number];

/** Images of one split: file paths decoded natively, or pixels already in memory (u8 NCHW). */
export type ImageSource =
  | { kind: "files"; paths: string[] }
  | { kind: "pixels"; data: Uint8Array; shape: [n: number, c: number, h: number, w: number] };

export interface Split {
  source: ImageSource;
  /** class index per image, same order as the source */
  labels: Int32Array;
}

export interface Dataset {
  classNames: string[];
  train: Split;
  val?: Split;
  test?: Split;
  /** where it came from, for logs and the report */
  description: string;
}

/** Seedable PRNG with a state that survives a resume. */
export interface Rng {
  next(): number; // uniform [0,1)
  int(n: number): number; // uniform integer [0,n)
  state(): number[];
  setState(s: number[]): void;
}

/** What every plugin's create() receives. */
export interface PluginContext {
  /** folder of the config file, for resolving relative paths */
  configDir: string;
  /** the run's seed */
  seed: number;
  /** the run's number of training epochs (train.epochs), for plugins that change over the run */
  epochs: number;
  log(line: string): void;
}

/** What plugins may learn about the training split before the first epoch (`setData`). */
export interface DataInfo {
  numClasses: number;
  classNames: string[];
  /** training images per class (the whole train split, before any curriculum) */
  classCounts: number[];
}

/** Something with state to put in a checkpoint, restored on --resume. */
export interface Stateful {
  readonly stateKey: string;
  stateDict(): unknown;
  loadStateDict(state: unknown): void;
}

// ---- stages ----------------------------------------------------------------------------------

export interface Loader {
  load(): Promise<Dataset>;
}

/** Declarative ops run natively per batch (defined by the native image path; docs/ABI.md). */
export type { AugmentOp };

export interface Augmenter {
  /** native ops applied to training batches, in order (normalize included) */
  trainOps: AugmentOp[];
  /** ops for evaluation batches: typically only normalize */
  evalOps: AugmentOp[];
  /** optional slow path: runs in TS on the u8 batch [n,c,h,w] before the native ops */
  transformU8?(batch: Uint8Array, shape: [number, number, number, number], rng: Rng): void;
  /** optional: true while the augmenter still needs the training split's per-channel mean/std */
  readonly needsDatasetStats?: boolean;
  /** optional: receives the training split's per-channel mean/std (0-1 scale) before the first batch */
  setDatasetStats?(mean: number[], std: number[]): void;
}

export interface Sampler {
  /** indices into the training split for one epoch, drawn only from active classes */
  sample(labels: Int32Array, activeClasses: number[], epoch: number, rng: Rng): Int32Array;
  /** probability of drawing each class per draw (length = numClasses), for data:inspect and logs */
  expectedClassShare(
    labels: Int32Array,
    activeClasses: number[],
    numClasses: number,
    epoch: number,
  ): number[];
}

export interface LossResult {
  loss: number;
  /** dL/dlogits, [n, c] */
  grad: Float32Array;
}

export interface Loss {
  /** mean loss over the batch and its gradient; `activeMask[c]` = 0 means class c is masked out */
  compute(
    logits: Float32Array,
    targets: Int32Array,
    n: number,
    c: number,
    activeMask: Uint8Array | null,
  ): LossResult;
  /** the native twin (one-call step), when the loss has one; asked again every epoch */
  native?(activeMask: Uint8Array | null): NativeLossConfig;
  /** optional: the training split's class counts, once before the first epoch (class priors) */
  setData?(info: DataInfo): void;
  /** optional: called at the start of every epoch (e.g. a deferred re-weighting switch) */
  startEpoch?(epoch: number, plan: StagePlan): void;
}

/** A native loss twin's config: the native layer's own schema type (docs/ABI.md). */
export type NativeLossConfig = NativeLossInput;

export interface StagePlan {
  /** classes sampled this epoch, sorted */
  activeClasses: number[];
  stageIndex: number;
  stageCount: number;
  /** exclude inactive classes' logits from the loss */
  maskInactive: boolean;
}

export interface TrainStage extends Stateful {
  /** decides the classes for this epoch; history = metrics of earlier epochs (newest last) */
  plan(epoch: number, history: EpochMetrics[]): StagePlan;
  /** optional: the dataset's number of classes, before the first plan() */
  setNumClasses?(n: number): void;
  /** optional: problems of the stage's options against `numClasses` classes, one message each */
  validate?(numClasses: number): string[];
}

export interface ClassMetrics {
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

export interface Metrics {
  loss: number;
  accuracy: number;
  macroRecall: number;
  macroF1: number;
  weightedF1: number;
  balancedAccuracy: number;
  perClass: ClassMetrics[];
  /** rows = true class, columns = predicted */
  confusion: number[][];
  // Optional: evaluators other than "classification" need not compute these.
  /** mean |predicted - true| over class indices (index order taken as the ordinal order) */
  ordinalMae?: number;
  /** Cohen's kappa with quadratic weights (i - j)² over class indices */
  quadraticKappa?: number;
  /** top-k accuracy by k, keyed "top2", "top3", … */
  topK?: Record<string, number>;
  /** mean recall of the classes in each training-count group; null for a group with no classes */
  shotGroups?: { many: number | null; medium: number | null; few: number | null };
}

export interface Evaluator {
  /** logits [n,c] and labels; restrict = evaluate on these classes only (rows and argmax) */
  evaluate(
    logits: Float32Array,
    labels: Int32Array,
    n: number,
    c: number,
    loss: number,
    restrict?: number[],
  ): Metrics;
  /** optional: the training split's class counts, once before evaluating (priors, shot groups) */
  setData?(info: DataInfo): void;
  /**
   * optional, with `fromCounts`: what the trainer should count natively for the train metrics
   * (top-k values, a per-class logit bias), so no train logits cross to TS. Without the pair the
   * session keeps the epoch's train logits and calls `evaluate`.
   */
  countSpec?(c: number, restrict?: number[]): CountSpec;
  /** the metrics `evaluate` would give for the rows the counts were made from */
  fromCounts?(counts: PredictionCounts, loss: number, restrict?: number[]): Metrics;
}

/** What the native train statistics count for an evaluator (see `Evaluator.countSpec`). */
export interface CountSpec {
  /** k values of top-k hits */
  topK: number[];
  /** per-class value added to the logits before the argmax; null: none */
  bias: ArrayLike<number> | null;
}

/** Prediction counts of an epoch's train batches (argmax over the candidate classes). */
export interface PredictionCounts {
  /** `C × C`, row = label, column = prediction */
  confusion: number[][];
  /** rows whose label is among the k best candidates, keyed by k */
  topKHits: Record<string, number>;
}

export interface EpochMetrics {
  epoch: number;
  stage: number;
  activeClasses: number[];
  train: { loss: number; accuracy: number; imagesPerSecond: number; seconds: number };
  val?: { all: Metrics; active: Metrics };
  lr: number;
}

/** What a plugin file exports. */
export interface PluginModule<S extends z.ZodObject = z.ZodObject, T = unknown> {
  name: string;
  configSchema: S;
  create(cfg: z.infer<S>, ctx: PluginContext): T | Promise<T>;
}
