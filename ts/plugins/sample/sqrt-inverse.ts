/**
 * Sampler "sqrt-inverse": weight 1/sqrt(count(class)) per sample, so a class's expected share is
 * proportional to sqrt(count) over the active classes: between plain shuffling (∝ count) and
 * the seed's inverse frequency (equal shares). Options as "inverse-frequency".
 */
import type { PluginModule, Sampler } from "../../pipeline/types.ts";
import { classWeightedSampler, configSchema } from "./inverse-frequency.ts";

export { configSchema };

export const plugin: PluginModule<typeof configSchema, Sampler> = {
  name: "sqrt-inverse",
  configSchema,
  create(cfg): Sampler {
    return classWeightedSampler(cfg, (count) => 1 / Math.sqrt(count));
  },
};
