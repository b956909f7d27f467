/**
 * Loss "focal" (the seed's, gamma 1): `mean_i alpha[t_i] · (-(1 - p_t)^γ log p_t)` with
 * `p = softmax(z_i)` over the active classes (masked classes are left out of the softmax and get
 * gradient 0). γ = 0 is cross-entropy.
 */
import { z } from "zod";
import type { Loss, LossResult, NativeLossConfig, PluginModule } from "../../pipeline/types.ts";
import { computeLoss, maskToNative } from "./common.ts";

export const configSchema = z.object({
  gamma: z.number().min(0).default(1),
  /** per-class weight of each sample's loss, one per class; null = all 1 */
  alpha: z.array(z.number().min(0)).min(1).nullable().default(null),
}).strict();

export type FocalConfig = z.infer<typeof configSchema>;

export const plugin: PluginModule<typeof configSchema, Loss> = {
  name: "focal",
  configSchema,
  create(cfg): Loss {
    const math = { gamma: cfg.gamma, alpha: cfg.alpha, labelSmoothing: 0 };
    return {
      compute(logits, targets, n, c, activeMask): LossResult {
        return computeLoss("focal", math, logits, targets, n, c, activeMask);
      },
      native(activeMask): NativeLossConfig {
        return {
          kind: "focal",
          gamma: cfg.gamma,
          alpha: cfg.alpha === null ? null : [...cfg.alpha],
          classMask: maskToNative(activeMask),
        };
      },
    };
  },
};
