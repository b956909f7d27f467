/**
 * Loss "logit-adjusted" (Menon et al., ICLR 2021): softmax cross-entropy on `z_j + τ · log π_j`
 * over the active classes, with π the class prior from the training counts (`setData`),
 * renormalised over the active classes. τ = 1 is the balanced softmax; τ = 0 is plain
 * cross-entropy. The adjustment only shapes training: predictions use the raw logits, which
 * then estimate the class-balanced posterior. A class with no training samples gets the
 * rarest present class's count (see "class-balanced-focal"). `labelSmoothing` ε mixes ε/|active|
 * into the target as in "cross-entropy". No native twin.
 */
import { z } from "zod";
import type { Loss, LossResult, PluginModule } from "../../pipeline/types.ts";
import { checkClassCount, countsFromData } from "./class-balanced-focal.ts";
import { computeLoss } from "./common.ts";

export const configSchema = z.object({
  /** τ: weight of log π added to the logits */
  tau: z.number().min(0).default(1),
  labelSmoothing: z.number().min(0).lt(1).default(0),
}).strict();

export type LogitAdjustedConfig = z.infer<typeof configSchema>;

export const plugin: PluginModule<typeof configSchema, Loss> = {
  name: "logit-adjusted",
  configSchema,
  create(cfg): Loss {
    const name = "logit-adjusted";
    let counts: number[] | null = null;
    return {
      setData(info): void {
        counts = countsFromData(name, info).counts;
      },
      compute(logits, targets, n, c, activeMask): LossResult {
        const cnt = checkClassCount(name, counts, c);
        // log π_j = log n_j - log Σ_active n_k; the normaliser is a per-row constant, so it
        // leaves the loss unchanged, but it keeps the adjustment the documented prior
        let total = 0;
        for (let j = 0; j < c; j++) if (activeMask === null || activeMask[j] !== 0) total += cnt[j];
        const shift = cnt.map((v) => cfg.tau * (Math.log(v) - Math.log(total)));
        const adj = new Float64Array(n * c);
        for (let k = 0; k < n * c; k++) adj[k] = logits[k] + shift[k % c];
        // the shift is constant in z, so the gradient wrt the adjusted logits is dL/dz
        const math = { gamma: 0, alpha: null, labelSmoothing: cfg.labelSmoothing };
        return computeLoss(name, math, adj, targets, n, c, activeMask);
      },
    };
  },
};
