/**
 * Options of the native model, trainer and loss: zod schemas (the one source of truth; the
 * Rust `serde` structs mirror them with `deny_unknown_fields`) and their conversion to the
 * snake_case JSON of docs/ABI.md. Every field is filled here, because the native side has no
 * defaults.
 */
import { z } from "zod";

/** Largest seed that survives the trip through JSON into a Rust `u64`. */
const MAX_SEED = Number.MAX_SAFE_INTEGER;
const SeedSchema = z.number().int().min(0).max(MAX_SEED);

export const DEFAULT_NUM_CLASSES = 8;
export const DEFAULT_INPUT_CHANNELS = 3;
export const DEFAULT_DROPOUT_RATE = 0.3;
export const DEFAULT_LR = 1e-3;
export const DEFAULT_BETAS: [number, number] = [0.9, 0.999];
export const DEFAULT_EPS = 1e-8;
export const DEFAULT_MOMENTUM = 0.9;

/**
 * Kernel choices, fixed when the model is built (docs/ABI.md says which switch gates what).
 * Defaults: all on, the CPU's measured-fastest paths; the numerics stay PyTorch's either way.
 */
export const KernelOptionsSchema = z.object({
  fusedGroupNorm: z.boolean().default(true),
  convRewrites: z.boolean().default(true),
  channelsLast: z.boolean().default(true),
}).strict();

export type KernelOptions = z.infer<typeof KernelOptionsSchema>;

/** HybridNet architecture. `fpn: "skip"` skips the FPN maps the seed computes and discards. */
export const HybridNetOptionsSchema = z.object({
  numClasses: z.number().int().min(2).default(DEFAULT_NUM_CLASSES),
  inputChannels: z.number().int().min(1).max(4).default(DEFAULT_INPUT_CHANNELS),
  dropoutRate: z.number().min(0).lt(1).default(DEFAULT_DROPOUT_RATE),
  fpn: z.enum(["skip", "seed"]).default("skip"),
  kernels: KernelOptionsSchema.prefault({}),
  seed: SeedSchema.default(0),
}).strict();

/** Parsed HybridNet options (every field present). */
export type HybridNetOptions = z.infer<typeof HybridNetOptionsSchema>;
/** HybridNet options as a user writes them (defaults optional). */
export type HybridNetOptionsInput = z.input<typeof HybridNetOptionsSchema>;

const Fraction = z.number().min(0).lt(1);

export const OptimizerOptionsSchema = z.object({
  kind: z.enum(["adam", "adamw", "sgd"]).default("adam"),
  lr: z.number().positive().default(DEFAULT_LR),
  betas: z.tuple([Fraction, Fraction]).default(DEFAULT_BETAS),
  eps: z.number().positive().default(DEFAULT_EPS),
  weightDecay: z.number().min(0).default(0),
  momentum: Fraction.default(DEFAULT_MOMENTUM),
  nesterov: z.boolean().default(false),
}).strict();

/** Optimizer and step options of a native trainer. */
export const TrainerOptionsSchema = z.object({
  optimizer: OptimizerOptionsSchema.prefault({}),
  clipGradNorm: z.number().positive().nullable().default(null),
  seed: SeedSchema.default(0),
  /** "head": only `classifier.*` trains, the backbone runs without a graph (cRT) */
  trainable: z.enum(["all", "head"]).default("all"),
}).strict();

export type TrainerOptions = z.infer<typeof TrainerOptionsSchema>;
export type TrainerOptionsInput = z.input<typeof TrainerOptionsSchema>;

/** A loss computed natively (the twin of a TS loss plugin). */
export const NativeLossSchema = z.object({
  kind: z.enum(["cross_entropy", "focal"]).default("cross_entropy"),
  gamma: z.number().min(0).default(1),
  /** Per-class weights, one per class. */
  alpha: z.array(z.number().min(0)).nullable().default(null),
  /** 1 keeps a class, 0 excludes its logit from the softmax; one per class. */
  classMask: z.array(z.union([z.literal(0), z.literal(1)])).nullable().default(null),
}).strict();

export type NativeLoss = z.infer<typeof NativeLossSchema>;
export type NativeLossInput = z.input<typeof NativeLossSchema>;

/** The `hn_model_new` JSON of docs/ABI.md. */
export function toNativeModelConfig(o: HybridNetOptions): Record<string, unknown> {
  return {
    num_classes: o.numClasses,
    input_channels: o.inputChannels,
    dropout_rate: o.dropoutRate,
    fpn: o.fpn,
    seed: o.seed,
  };
}

/** The `hn_trainer_new` JSON of docs/ABI.md. */
export function toNativeTrainerConfig(o: TrainerOptions): Record<string, unknown> {
  const opt = o.optimizer;
  return {
    optimizer: {
      kind: opt.kind,
      lr: opt.lr,
      betas: opt.betas,
      eps: opt.eps,
      weight_decay: opt.weightDecay,
      momentum: opt.momentum,
      nesterov: opt.nesterov,
    },
    clip_grad_norm: o.clipGradNorm,
    seed: o.seed,
    trainable: o.trainable,
  };
}

/** The `hn_trainer_set_loss` / `hn_loss_eval` JSON of docs/ABI.md. */
export function toNativeLossConfig(o: NativeLoss): Record<string, unknown> {
  return { kind: o.kind, gamma: o.gamma, alpha: o.alpha, class_mask: o.classMask };
}

/** Why `o` does not fit a model of `numClasses` classes, or null when it does. */
export function lossClassIssue(o: NativeLoss, numClasses: number): string | null {
  for (const [key, arr] of [["alpha", o.alpha], ["classMask", o.classMask]] as const) {
    if (arr !== null && arr.length !== numClasses) {
      return `loss.${key} has ${arr.length} entries, but there are ${numClasses} classes`;
    }
  }
  if (o.classMask !== null && !o.classMask.includes(1)) return "loss.classMask masks out every class";
  return null;
}
