/**
 * Loss "cross-entropy": `mean_i alpha[t_i] · (-log softmax(z_i)[t_i])` over the active classes
 * (masked classes are left out of the softmax and get gradient 0). `labelSmoothing` ε replaces
 * the one-hot target by `(1-ε)·onehot + ε/|active|`; the native twin has no smoothing, so with
 * ε > 0 the loss has no `native()` and the runner uses this TS path.
 */
import { z } from "zod";
import type { Loss, LossResult, NativeLossConfig, PluginModule } from "../../pipeline/types.ts";
import { computeLoss, maskToNative } from "./common.ts";

export const configSchema = z.object({
  /** per-class weight of each sample's loss, one per class; null = all 1 */
  alpha: z.array(z.number().min(0)).min(1).nullable().default(null),
  labelSmoothing: z.number().min(0).lt(1).default(0),
}).strict();

export type CrossEntropyConfig = z.infer<typeof configSchema>;

export const plugin: PluginModule<typeof configSchema, Loss> = {
  name: "cross-entropy",
  configSchema,
  create(cfg): Loss {
    const math = { gamma: 0, alpha: cfg.alpha, labelSmoothing: cfg.labelSmoothing };
    const loss: Loss = {
      compute(logits, targets, n, c, activeMask): LossResult {
        return computeLoss("cross-entropy", math, logits, targets, n, c, activeMask);
      },
    };
    if (cfg.labelSmoothing === 0) {
      loss.native = (activeMask): NativeLossConfig => ({
        kind: "cross_entropy",
        alpha: cfg.alpha === null ? null : [...cfg.alpha],
        classMask: maskToNative(activeMask),
      });
    }
    return loss;
  },
};
