/**
 * The JSON configs the native calls take, as docs/ABI.md defines them (snake_case, every field
 * present): the native layer declares what it accepts, and `ts/model/options.ts` maps the
 * validated user options onto these types.
 *
 * The native loss is the exception: `Trainer.setLoss` and `lossEval` take loss options directly
 * (there is no model-layer facade in between), so its zod schema lives here with the mapping.
 */
import { z } from "zod";

/** `kernels` of the `hn_model_new` JSON: the model's kernel and layout choices (docs/ABI.md). */
export interface NativeKernelsConfig {
  fused_group_norm: boolean;
  conv_rewrites: boolean;
  channels_last: boolean;
}

/** The `hn_model_new` JSON (also `config` of the `hn_model_describe` JSON). */
export interface NativeModelConfig {
  num_classes: number;
  input_channels: number;
  dropout_rate: number;
  fpn: "skip" | "seed";
  seed: number;
  kernels: NativeKernelsConfig;
  /** "cpu" or "cuda:N": where the weights live (on CUDA the CPU-only kernels are off) */
  device: string;
}

/** `optimizer` of the `hn_trainer_new` JSON. */
export interface NativeOptimizerConfig {
  kind: "adam" | "adamw" | "sgd";
  lr: number;
  betas: [number, number];
  eps: number;
  weight_decay: number;
  momentum: number;
  nesterov: boolean;
  fused: boolean;
}

/** The `hn_trainer_new` JSON (also `config` of the `hn_trainer_describe` JSON). */
export interface NativeTrainerConfig {
  optimizer: NativeOptimizerConfig;
  clip_grad_norm: number | null;
  seed: number;
  trainable: "all" | "head";
  /** moving average of the trained weights; null: off */
  ema: NativeEmaConfig | null;
  /** arithmetic of the train-mode forward: float32, or bfloat16 autocast (weights stay float32) */
  precision: "fp32" | "bf16";
}

/** The `ema` object of the `hn_trainer_new` JSON (warm-up rule: native/src/train/ema.rs). */
export interface NativeEmaConfig {
  decay: number;
  warmup_steps: number;
}

/** The `hn_trainer_set_loss` / `hn_loss_eval` JSON. */
export interface NativeLossConfig {
  kind: "cross_entropy" | "focal";
  gamma: number;
  alpha: number[] | null;
  class_mask: (0 | 1)[] | null;
}

/** A loss computed natively (the twin of a TS loss plugin), as callers write it. */
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

/** The `hn_trainer_set_loss` / `hn_loss_eval` JSON of parsed loss options. */
export function toNativeLossConfig(o: NativeLoss): NativeLossConfig {
  return { kind: o.kind, gamma: o.gamma, alpha: o.alpha, class_mask: o.classMask };
}

/** Why `cfg` does not fit a model of `numClasses` classes, or null when it does. */
export function lossClassIssue(cfg: NativeLossConfig, numClasses: number): string | null {
  for (const [key, arr] of [["alpha", cfg.alpha], ["classMask", cfg.class_mask]] as const) {
    if (arr !== null && arr.length !== numClasses) {
      return `loss.${key} has ${arr.length} entries, but there are ${numClasses} classes`;
    }
  }
  if (cfg.class_mask !== null && !cfg.class_mask.includes(1)) return "loss.classMask masks out every class";
  return null;
}
