/**
 * Sampler "shuffle": every training sample of an active class exactly once per epoch, in a
 * random order (a Fisher-Yates permutation of the active indices).
 */
import { z } from "zod";
import type { PluginModule, Sampler } from "../../pipeline/types.ts";
import { activeIndices, weightedShare } from "./common.ts";

export const configSchema = z.object({}).strict();

export const plugin: PluginModule<typeof configSchema, Sampler> = {
  name: "shuffle",
  configSchema,
  create(): Sampler {
    return {
      sample(labels, activeClasses, _epoch, rng): Int32Array {
        const out = activeIndices(labels, activeClasses);
        for (let i = out.length - 1; i > 0; i--) {
          const j = rng.int(i + 1);
          const t = out[i];
          out[i] = out[j];
          out[j] = t;
        }
        return out;
      },
      expectedClassShare(labels, activeClasses, numClasses): number[] {
        return weightedShare(labels, activeClasses, numClasses, () => 1);
      },
    };
  },
};
