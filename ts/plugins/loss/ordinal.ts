/**
 * Loss "ordinal" for ordered labels, mode "sord" (soft ordinal labels, Díaz & Marathe, CVPR
 * 2019): the one-hot target t becomes `q_j ∝ exp(-α · (j - t)²)` over the active classes, and
 * the loss is the cross-entropy `-Σ_j q_j log p_j` with `p = softmax(z)` over the active
 * classes, mean over the batch; dL/dz_j = (p_j - q_j)/n. The class index order is taken as the
 * ordinal order (distances count masked classes in between too). A larger α gives a sharper
 * target; α → ∞ is plain cross-entropy. No native twin.
 */
import { z } from "zod";
import type { Loss, LossResult, PluginModule } from "../../pipeline/types.ts";
import { checkLossInputs } from "./common.ts";

export const configSchema = z.object({
  mode: z.enum(["sord"]).default("sord"),
  /** α: how fast the soft target decays with the squared class distance */
  alpha: z.number().positive().default(1),
}).strict();

export type OrdinalConfig = z.infer<typeof configSchema>;

export const plugin: PluginModule<typeof configSchema, Loss> = {
  name: "ordinal",
  configSchema,
  create(cfg): Loss {
    const name = "ordinal";
    return {
      compute(logits, targets, n, c, activeMask): LossResult {
        checkLossInputs(name, logits, targets, n, c, activeMask, null);
        const on = (j: number): boolean => activeMask === null || activeMask[j] !== 0;
        const grad = new Float32Array(n * c);
        const logp = new Float64Array(c);
        const q = new Float64Array(c);
        let total = 0;
        for (let i = 0; i < n; i++) {
          const row = i * c;
          const t = targets[i];
          let mx = -Infinity;
          for (let j = 0; j < c; j++) if (on(j) && logits[row + j] > mx) mx = logits[row + j];
          let s = 0, qs = 0;
          for (let j = 0; j < c; j++) {
            if (!on(j)) continue;
            s += Math.exp(logits[row + j] - mx);
            // exponent ≤ 0 and 0 at j = t (active), so qs ≥ 1: no overflow or 0/0
            q[j] = Math.exp(-cfg.alpha * (j - t) * (j - t));
            qs += q[j];
          }
          const lse = mx + Math.log(s);
          for (let j = 0; j < c; j++) {
            if (!on(j)) continue;
            logp[j] = logits[row + j] - lse;
            const qj = q[j] / qs;
            // skip q_j = 0 so an underflowed target weight never meets a -Infinity log p
            if (qj > 0) total -= qj * logp[j];
            grad[row + j] = (Math.exp(logp[j]) - qj) / n;
          }
        }
        return { loss: total / n, grad };
      },
    };
  },
};
