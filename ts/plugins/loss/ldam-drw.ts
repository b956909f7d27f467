/**
 * Loss "ldam-drw" (Cao et al., NeurIPS 2019): label-distribution-aware margin loss with deferred
 * re-weighting. Class k gets the margin `Δ_k = C / n_k^{1/4}` (n_k its training count, from
 * `setData`), with C chosen so the largest margin, the rarest class's, is `maxMargin`. The
 * target logit is lowered by its margin and all logits are multiplied by `scale` before a
 * softmax cross-entropy over the active classes:
 * `ℓ_i = w[t_i] · CE(s · (z_i - Δ_{t_i} · onehot(t_i)), t_i)`, mean over the batch.
 *
 * Deferred re-weighting: w = 1 before epoch `drwEpoch` (0-based; null = ⌊0.8 · epochs⌋), and the
 * class-balanced effective-number weights with `drwBeta` from then on (as in
 * "class-balanced-focal", mean weight 1 over the classes with samples). The switch is read
 * from the epoch number alone, so a resumed run needs no extra state.
 *
 * The paper uses normalised (cosine) logits in [-1, 1], for which `scale` 30 is meant; with an
 * ordinary linear head, `scale` 1 keeps the usual logit scale. The margins only shape training:
 * predictions use the raw logits. `labelSmoothing` ε mixes ε/|active| into the target as in
 * "cross-entropy". No native twin.
 */
import { z } from "zod";
import type { Loss, LossResult, PluginModule } from "../../pipeline/types.ts";
import { checkClassCount, countsFromData, effectiveNumberWeights } from "./class-balanced-focal.ts";
import { computeLoss } from "./common.ts";

export const configSchema = z.object({
  /** the rarest class's margin; 0 = no margins */
  maxMargin: z.number().min(0).default(0.5),
  /** s: the margin-adjusted logits are multiplied by it */
  scale: z.number().positive().default(30),
  /** first (0-based) epoch of the re-weighting; null = ⌊0.8 · train.epochs⌋ */
  drwEpoch: z.number().int().min(0).nullable().default(null),
  drwBeta: z.number().min(0).lt(1).default(0.9999),
  labelSmoothing: z.number().min(0).lt(1).default(0),
}).strict();

export type LdamDrwConfig = z.infer<typeof configSchema>;

/** `Δ_k = C / n_k^{1/4}` with `max_k Δ_k = maxMargin` (counts all positive). */
export function ldamMargins(counts: readonly number[], maxMargin: number): number[] {
  const raw = counts.map((n) => 1 / Math.pow(n, 0.25));
  const top = Math.max(...raw);
  return raw.map((d) => (d / top) * maxMargin);
}

export const plugin: PluginModule<typeof configSchema, Loss> = {
  name: "ldam-drw",
  configSchema,
  create(cfg, ctx): Loss {
    const name = "ldam-drw";
    const drwEpoch = cfg.drwEpoch ?? Math.floor(0.8 * ctx.epochs);
    const s = cfg.scale;
    let margins: number[] | null = null;
    let drwWeights: number[] | null = null;
    let reweight = false;
    return {
      setData(info): void {
        const { counts, present } = countsFromData(name, info);
        margins = ldamMargins(counts, cfg.maxMargin);
        drwWeights = effectiveNumberWeights(counts, present, cfg.drwBeta);
      },
      startEpoch(epoch): void {
        const on = epoch >= drwEpoch;
        if (on && !reweight) ctx.log(`${name}: deferred re-weighting on from epoch ${epoch + 1}`);
        reweight = on;
      },
      compute(logits, targets, n, c, activeMask): LossResult {
        const delta = checkClassCount(name, margins, c);
        // CE of u = s·(z - Δ_t·onehot): dL/dz = s · dL/du; computeLoss checks the targets and mask
        const u = new Float64Array(n * c);
        for (let i = 0; i < n; i++) {
          const row = i * c;
          for (let j = 0; j < c; j++) u[row + j] = s * logits[row + j];
          const t = targets[i];
          if (t >= 0 && t < c) u[row + t] -= s * delta[t];
        }
        const math = { gamma: 0, alpha: reweight ? drwWeights : null, labelSmoothing: cfg.labelSmoothing };
        const r = computeLoss(name, math, u, targets, n, c, activeMask);
        for (let k = 0; k < r.grad.length; k++) r.grad[k] *= s;
        return r;
      },
    };
  },
};
