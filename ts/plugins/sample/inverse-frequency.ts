/**
 * Sampler "inverse-frequency" (the seed's): like torch's WeightedRandomSampler with weight
 * 1/count(class) per sample, counted over the training split, drawn from the active classes
 * only. With replacement every active class with samples has the same expected share,
 * 1/|active|. `numSamples` defaults to the number of active samples.
 *
 * Without replacement each active sample is drawn at most once; with `numSamples` = all active
 * samples that is a weighted permutation (every class share equals its count share), which
 * `expectedClassShare` reports; for fewer samples it reports the first draw's probabilities.
 */
import { z } from "zod";
import type { PluginModule, Sampler } from "../../pipeline/types.ts";
import { activeIndices, weightedDraw, weightedShare } from "./common.ts";

export const configSchema = z.object({
  /** draws per epoch; null: the number of active training samples */
  numSamples: z.number().int().positive().nullable().default(null),
  replacement: z.boolean().default(true),
}).strict();

export type WeightedSamplerConfig = z.infer<typeof configSchema>;

/** A Sampler drawing each sample with weight `classWeight(count of its class)`. */
export function classWeightedSampler(
  cfg: WeightedSamplerConfig,
  classWeight: (count: number) => number,
): Sampler {
  return {
    sample(labels, activeClasses, _epoch, rng): Int32Array {
      return weightedDraw(labels, activeClasses, classWeight, cfg.numSamples, cfg.replacement, rng);
    },
    expectedClassShare(labels, activeClasses, numClasses): number[] {
      const permutation = !cfg.replacement &&
        (cfg.numSamples === null || cfg.numSamples >= activeIndices(labels, activeClasses).length);
      return weightedShare(labels, activeClasses, numClasses, permutation ? () => 1 : classWeight);
    },
  };
}

export const plugin: PluginModule<typeof configSchema, Sampler> = {
  name: "inverse-frequency",
  configSchema,
  create(cfg): Sampler {
    return classWeightedSampler(cfg, (count) => 1 / count);
  },
};
