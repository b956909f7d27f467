/**
 * Loss "class-balanced-focal" (Cui et al., CVPR 2019): focal loss whose per-class alpha is the
 * inverse effective number of samples, `w_k = (1-β) / (1-β^{n_k})` with `n_k` the class's
 * training count (from `setData`), scaled so the weights of the classes that have training
 * samples sum to their number (mean weight 1, so the loss scale stays that of plain focal).
 * β = 0 gives all weights 1; β → 1 approaches inverse frequency. The weights are fixed for the
 * run (not renormalised over a curriculum's active classes). Its native twin is the focal loss
 * with `alpha = w`.
 *
 * A class with no training samples is treated as having the count of the rarest class that has
 * some (here and in the other prior-based losses), so no weight, margin or prior is infinite;
 * it is never a training target and only matters for the val loss.
 */
import { z } from "zod";
import type { DataInfo, Loss, LossResult, NativeLossConfig, PluginModule } from "../../pipeline/types.ts";
import { computeLoss, maskToNative } from "./common.ts";

export const configSchema = z.object({
  /** β of the effective number (1-β^n)/(1-β); 0 = no re-weighting */
  beta: z.number().min(0).lt(1).default(0.999),
  gamma: z.number().min(0).default(1),
}).strict();

export type ClassBalancedFocalConfig = z.infer<typeof configSchema>;

/**
 * The training counts from `setData`, checked, with each 0 replaced by the smallest positive
 * count (see the module comment). Throws, naming the plugin, on a malformed `DataInfo`.
 */
export function countsFromData(name: string, info: DataInfo): { counts: number[]; present: boolean[] } {
  const raw = info.classCounts;
  if (!Array.isArray(raw) || raw.length !== info.numClasses) {
    throw new Error(
      `${name}: setData gave ${raw?.length} class counts for ${info.numClasses} classes`,
    );
  }
  raw.forEach((v, k) => {
    if (!(Number.isInteger(v) && v >= 0)) {
      throw new Error(`${name}: class count ${v} of class ${k} is not a non-negative integer`);
    }
  });
  const present = raw.map((v) => v > 0);
  if (!present.some((p) => p)) throw new Error(`${name}: the training split has no samples in any class`);
  const rarest = Math.min(...raw.filter((v) => v > 0));
  return { counts: raw.map((v) => (v > 0 ? v : rarest)), present };
}

/**
 * Effective-number weights `(1-β)/(1-β^n)` scaled so the present classes' weights sum to their
 * number. `1-β^n` is computed as `-expm1(n·log β)`, accurate for β near 1.
 */
export function effectiveNumberWeights(
  counts: readonly number[],
  present: readonly boolean[],
  beta: number,
): number[] {
  const raw = counts.map((n) => (beta === 0 ? 1 : (1 - beta) / -Math.expm1(n * Math.log(beta))));
  let sum = 0, m = 0;
  raw.forEach((w, k) => {
    if (present[k]) {
      sum += w;
      m++;
    }
  });
  return raw.map((w) => (w * m) / sum);
}

/** Throws unless `setData` gave exactly `c` classes. */
export function checkClassCount(
  name: string,
  counts: readonly number[] | null,
  c: number,
): readonly number[] {
  if (counts === null) throw new Error(`${name}: call setData (the training class counts) before compute`);
  if (counts.length !== c) {
    throw new Error(`${name}: setData gave ${counts.length} classes, but the logits have ${c}`);
  }
  return counts;
}

export const plugin: PluginModule<typeof configSchema, Loss> = {
  name: "class-balanced-focal",
  configSchema,
  create(cfg): Loss {
    const name = "class-balanced-focal";
    let alpha: number[] | null = null;
    const weights = (): number[] => {
      if (alpha === null) throw new Error(`${name}: call setData (the training class counts) before compute`);
      return alpha;
    };
    return {
      setData(info): void {
        const { counts, present } = countsFromData(name, info);
        alpha = effectiveNumberWeights(counts, present, cfg.beta);
      },
      compute(logits, targets, n, c, activeMask): LossResult {
        const a = checkClassCount(name, weights(), c) as number[];
        return computeLoss(
          name,
          { gamma: cfg.gamma, alpha: a, labelSmoothing: 0 },
          logits,
          targets,
          n,
          c,
          activeMask,
        );
      },
      native(activeMask): NativeLossConfig {
        return {
          kind: "focal",
          gamma: cfg.gamma,
          alpha: [...weights()],
          classMask: maskToNative(activeMask),
        };
      },
    };
  },
};
