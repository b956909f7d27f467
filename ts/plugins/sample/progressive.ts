/**
 * Sampler "progressive" (progressively-balanced sampling, Kang et al., ICLR 2020): the class
 * share moves linearly from instance-balanced to class-balanced over the run,
 *
 *   p_k(e) = (1 - t) · n_k / N + t / K,   t = clamp(e / E, 0, 1),
 *
 * where n_k is class k's count in the training split, and N and K are the total count and the
 * number of classes with samples among the active classes of the current curriculum stage (the
 * `activeClasses` given to `sample`/`expectedClassShare`). So the weights are recomputed over
 * each stage's active classes: inactive classes get share 0 and a stage change renormalises the
 * rest. E = `epochs`, by default the run's epochs - 1 so epoch 0 draws like shuffling and the
 * last epoch is fully balanced (a one-epoch run, E = 0, is balanced throughout).
 *
 * Draws are with replacement, each sample of class k weighing p_k / n_k; `numSamples` defaults
 * to the number of active samples.
 */
import { z } from "zod";
import type { PluginModule, Sampler } from "../../pipeline/types.ts";
import { classCounts, weightedDraw, weightedShare } from "./common.ts";

export const configSchema = z.object({
  /** draws per epoch; null: the number of active training samples */
  numSamples: z.number().int().positive().nullable().default(null),
  /** epoch at which sampling is fully class-balanced; null: the run's last epoch (epochs - 1) */
  epochs: z.number().int().positive().nullable().default(null),
}).strict();

/** Interpolation weight t in [0, 1] at `epoch` for a ramp over `rampEpochs` epochs. */
export function progressiveT(epoch: number, rampEpochs: number): number {
  if (rampEpochs <= 0) return 1;
  return Math.min(1, Math.max(0, epoch / rampEpochs));
}

/**
 * Per-sample weight as a function of its class count: p_k / n_k = (1 - t) / N + t / (K · n_k),
 * with N and K over the active classes that have samples.
 */
function progressiveWeight(
  labels: Int32Array,
  activeClasses: number[],
  t: number,
): (count: number) => number {
  const counts = classCounts(labels);
  let total = 0, classes = 0;
  for (const k of new Set(activeClasses)) {
    const n = k >= 0 && k < counts.length ? counts[k] : 0;
    if (n > 0) {
      total += n;
      classes++;
    }
  }
  if (classes === 0) return () => 0;
  return (count) => (1 - t) / total + t / (classes * count);
}

export const plugin: PluginModule<typeof configSchema, Sampler> = {
  name: "progressive",
  configSchema,
  create(cfg, ctx): Sampler {
    const ramp = cfg.epochs ?? ctx.epochs - 1;
    return {
      sample(labels, activeClasses, epoch, rng): Int32Array {
        const w = progressiveWeight(labels, activeClasses, progressiveT(epoch, ramp));
        return weightedDraw(labels, activeClasses, w, cfg.numSamples, true, rng);
      },
      expectedClassShare(labels, activeClasses, numClasses, epoch): number[] {
        const w = progressiveWeight(labels, activeClasses, progressiveT(epoch, ramp));
        return weightedShare(labels, activeClasses, numClasses, w);
      },
    };
  },
};
