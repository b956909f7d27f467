/**
 * Sampler "effective-number" (class-balanced weights of Cui et al., CVPR 2019): each sample of
 * class k weighs (1 - β) / (1 - β^{n_k}), the inverse of the class's "effective number" of
 * samples, with n_k its count in the training split. β = 0 weighs every sample 1 (class shares
 * ∝ count, like shuffling); β → 1 approaches 1/n_k (inverse frequency, equal shares); the
 * common β = 0.999 sits in between, flattening heavy classes more than light ones.
 *
 * The weights are normalised over the active classes of the current curriculum stage (the
 * `activeClasses` given to `sample`/`expectedClassShare`): inactive classes get share 0 and the
 * active ones' shares sum to 1, so a stage change renormalises them. Options
 * `numSamples`/`replacement` as "inverse-frequency".
 */
import { z } from "zod";
import type { PluginModule, Sampler } from "../../pipeline/types.ts";
import { classWeightedSampler, configSchema as weightedSchema } from "./inverse-frequency.ts";

export const configSchema = weightedSchema.extend({
  /** β in [0, 1): 0 = plain count shares, → 1 = inverse frequency */
  beta: z.number().min(0).lt(1).default(0.999),
}).strict();

/** (1 - β) / (1 - β^n); expm1 keeps 1 - β^n accurate when β is close to 1. */
export function effectiveNumberWeight(beta: number, count: number): number {
  // Math.log(0) = -Infinity gives 1 - 0^n = 1 for β = 0
  return (1 - beta) / -Math.expm1(count * Math.log(beta));
}

export const plugin: PluginModule<typeof configSchema, Sampler> = {
  name: "effective-number",
  configSchema,
  create(cfg): Sampler {
    return classWeightedSampler(cfg, (count) => effectiveNumberWeight(cfg.beta, count));
  },
};
