/**
 * Example user plugin: Poly-1 cross-entropy (Leng et al., 2022),
 * `L = mean_i [ CE_i + epsilon · (1 − p_t) ]`, written in TS with its gradient
 * `dL/dz_ij = (p_ij − y_ij) · (1 + epsilon · p_t) / n`. It has no native twin, so the runner trains
 * it through the two-call boundary (forwardTrain → compute → backwardStep). Masked classes are
 * left out of the softmax and get gradient 0.
 */
import { z } from "zod";
import type { Loss, LossResult, PluginModule } from "../../ts/pipeline/types.ts";

export const configSchema = z.object({
  epsilon: z.number().default(1),
}).strict();

export const plugin: PluginModule<typeof configSchema, Loss> = {
  name: "poly-1",
  configSchema,
  create(cfg): Loss {
    return {
      compute(logits, targets, n, c, activeMask): LossResult {
        const grad = new Float32Array(n * c);
        const p = new Float64Array(c);
        let total = 0;
        for (let i = 0; i < n; i++) {
          const row = logits.subarray(i * c, (i + 1) * c);
          let max = -Infinity;
          for (let j = 0; j < c; j++) if (!activeMask || activeMask[j]) max = Math.max(max, row[j]);
          let sum = 0;
          for (let j = 0; j < c; j++) {
            p[j] = !activeMask || activeMask[j] ? Math.exp(row[j] - max) : 0;
            sum += p[j];
          }
          for (let j = 0; j < c; j++) p[j] /= sum;
          const t = targets[i];
          const pt = Math.max(p[t], 1e-12);
          total += -Math.log(pt) + cfg.epsilon * (1 - pt);
          const scale = (1 + cfg.epsilon * pt) / n;
          for (let j = 0; j < c; j++) grad[i * c + j] = (p[j] - (j === t ? 1 : 0)) * scale;
        }
        return { loss: total / n, grad };
      },
    };
  },
};
