/**
 * Options of the native model and trainer: zod schemas (the one source of truth; the Rust
 * `serde` structs mirror them with `deny_unknown_fields` and accept the same ranges) and their
 * mapping onto the snake_case JSON types the native layer declares (`ts/native/config.ts`,
 * docs/ABI.md). Every field is filled here, because the native side has no defaults. The native
 * loss's options live with the native layer, which takes them directly; they are re-exported here.
 */
import { z } from "zod";
import type { NativeModelConfig, NativeTrainerConfig } from "../native/config.ts";

export {
  lossClassIssue,
  type NativeLoss,
  type NativeLossConfig,
  type NativeLossInput,
  NativeLossSchema,
  toNativeLossConfig,
} from "../native/config.ts";

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
/** Largest class count (Rust `MAX_CLASSES`). */
export const MAX_CLASSES = 1_000_000;
/** Largest input channel count (Rust `MAX_INPUT_CHANNELS`); the image data path makes 1 or 3. */
export const MAX_INPUT_CHANNELS = 4096;

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

/** A model's device as the native layer takes it: `cpu` or `cuda:N` (auto/cuda are resolved above). */
export const DeviceSchema = z.string().regex(/^(cpu|cuda:\d+)$/, 'use "cpu" or "cuda:N" (N = 0, 1, ...)');

/** HybridNet architecture. `fpn: "skip"` skips the FPN maps the seed computes and discards. */
export const HybridNetOptionsSchema = z.object({
  numClasses: z.number().int().min(2).max(MAX_CLASSES).default(DEFAULT_NUM_CLASSES),
  inputChannels: z.number().int().min(1).max(MAX_INPUT_CHANNELS).default(DEFAULT_INPUT_CHANNELS),
  dropoutRate: z.number().min(0).lt(1).default(DEFAULT_DROPOUT_RATE),
  fpn: z.enum(["skip", "seed"]).default("skip"),
  kernels: KernelOptionsSchema.prefault({}),
  seed: SeedSchema.default(0),
  /** where the weights live: the CPU, or CUDA device N (its CPU-only kernel options are then off) */
  device: DeviceSchema.default("cpu"),
}).strict();

/** Parsed HybridNet options (every field present). */
export type HybridNetOptions = z.infer<typeof HybridNetOptionsSchema>;
/** HybridNet options as a user writes them (defaults optional). */
export type HybridNetOptionsInput = z.input<typeof HybridNetOptionsSchema>;

const Fraction = z.number().min(0).lt(1);

/**
 * Optimizer options. Rust's `OptimizerConfig::validate` accepts exactly these ranges (finite
 * numbers; lr > 0; betas and momentum in [0, 1); eps > 0; weightDecay >= 0; nesterov only with
 * momentum > 0). `fused`: Adam/AdamW on CPU float32 take the one-pass kernel (same update rule).
 */
/** The optimizer's fields without the cross-field check (for schemas that widen a field, e.g. lr: auto). */
export const OptimizerFieldsSchema = z.object({
  kind: z.enum(["adam", "adamw", "sgd"]).default("adam"),
  lr: z.number().positive().default(DEFAULT_LR),
  betas: z.tuple([Fraction, Fraction]).default(DEFAULT_BETAS),
  eps: z.number().positive().default(DEFAULT_EPS),
  weightDecay: z.number().min(0).default(0),
  momentum: Fraction.default(DEFAULT_MOMENTUM),
  nesterov: z.boolean().default(false),
  fused: z.boolean().default(true),
}).strict();

/** The optimizer's cross-field check: Nesterov momentum needs momentum. */
export function checkOptimizer(o: { nesterov: boolean; momentum: number }, ctx: z.RefinementCtx): void {
  if (o.nesterov && o.momentum <= 0) {
    ctx.addIssue({
      code: "custom",
      path: ["nesterov"],
      message: "Nesterov momentum needs momentum > 0: set momentum, or nesterov: false",
    });
  }
}

export const OptimizerOptionsSchema = OptimizerFieldsSchema.superRefine(checkOptimizer);

export const DEFAULT_EMA_DECAY = 0.999;

/**
 * Exponential moving average of the trained weights, updated natively after every optimizer step.
 * The decay of update t (0-based) is `decay` when `warmupSteps` is 0, else
 * `min(decay, (1 + t) / (warmupSteps + t))` (native/src/train/ema.rs says why).
 */
export const EmaOptionsSchema = z.object({
  decay: z.number().gt(0).lt(1).default(DEFAULT_EMA_DECAY),
  warmupSteps: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
}).strict();

export type EmaOptions = z.infer<typeof EmaOptionsSchema>;

/** Optimizer and step options of a native trainer. */
export const TrainerOptionsSchema = z.object({
  optimizer: OptimizerOptionsSchema.prefault({}),
  clipGradNorm: z.number().positive().nullable().default(null),
  seed: SeedSchema.default(0),
  /** "head": only `classifier.*` trains, the backbone runs without a graph (cRT) */
  trainable: z.enum(["all", "head"]).default("all"),
  /** null: no EMA */
  ema: EmaOptionsSchema.nullable().default(null),
  /** "bf16": bfloat16 autocast around the train-mode forward and loss; weights stay float32 */
  precision: z.enum(["fp32", "bf16"]).default("fp32"),
}).strict();

export type TrainerOptions = z.infer<typeof TrainerOptionsSchema>;
export type TrainerOptionsInput = z.input<typeof TrainerOptionsSchema>;

/** The `hn_model_new` JSON of docs/ABI.md. */
export function toNativeModelConfig(o: HybridNetOptions): NativeModelConfig {
  return {
    num_classes: o.numClasses,
    input_channels: o.inputChannels,
    dropout_rate: o.dropoutRate,
    fpn: o.fpn,
    seed: o.seed,
    // The fused GroupNorm and the conv rewrites are CPU kernels: off on CUDA (Rust agrees).
    kernels: {
      fused_group_norm: o.kernels.fusedGroupNorm && o.device === "cpu",
      conv_rewrites: o.kernels.convRewrites && o.device === "cpu",
      channels_last: o.kernels.channelsLast,
    },
    device: o.device,
  };
}

/** The `hn_trainer_new` JSON of docs/ABI.md. */
export function toNativeTrainerConfig(o: TrainerOptions): NativeTrainerConfig {
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
      fused: opt.fused,
    },
    clip_grad_norm: o.clipGradNorm,
    seed: o.seed,
    trainable: o.trainable,
    ema: o.ema === null ? null : { decay: o.ema.decay, warmup_steps: o.ema.warmupSteps },
    precision: o.precision,
  };
}
