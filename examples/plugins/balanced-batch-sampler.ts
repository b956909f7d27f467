/**
 * Example user plugin: a sampler that deals the active classes round-robin, so every run of K
 * consecutive indices (and thus every batch, up to rounding) holds each active class about
 * equally. Each class's images are shuffled and re-shuffled when used up; an epoch has as many
 * draws as there are images of active classes. Use it with `sampler: { name: ./path/to/this.ts }`.
 */
import { z } from "zod";
import type { PluginModule, Rng, Sampler } from "../../ts/pipeline/types.ts";

export const configSchema = z.object({
  /** draws per epoch as a multiple of the active images (1 = one pass worth of draws) */
  epochScale: z.number().positive().default(1),
}).strict();

function shuffled(a: number[], rng: Rng): number[] {
  const out = [...a];
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

export const plugin: PluginModule<typeof configSchema, Sampler> = {
  name: "balanced-batch",
  configSchema,
  create(cfg): Sampler {
    return {
      sample(labels, activeClasses, _epoch, rng): Int32Array {
        const pools = activeClasses.map((k) =>
          labels.reduce<number[]>((acc, l, i) => (l === k ? [...acc, i] : acc), [])
        )
          .filter((p) => p.length > 0);
        const total = Math.round(cfg.epochScale * pools.reduce((s, p) => s + p.length, 0));
        const queues = pools.map((p) => shuffled(p, rng));
        const out = new Int32Array(total);
        for (let i = 0; i < total; i++) {
          const c = i % pools.length;
          if (queues[c].length === 0) queues[c] = shuffled(pools[c], rng);
          out[i] = queues[c].pop()!;
        }
        return out;
      },
      expectedClassShare(labels, activeClasses, numClasses): number[] {
        const present = activeClasses.filter((k) => labels.includes(k));
        return Array.from({ length: numClasses }, (_, k) => (present.includes(k) ? 1 / present.length : 0));
      },
    };
  },
};
