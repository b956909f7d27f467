/**
 * Loader "synthetic": a generated, learnable N-class image set held in memory (u8 NCHW).
 *
 * Class k draws oriented sinusoidal stripes at angle `k * 180° / numClasses` with a class
 * frequency (2, 3 or 4 periods per image, cycling with k), a random phase, a random contrast and
 * a random brightness offset per image, plus a Gaussian blob at a class-specific quadrant-ish
 * position; with 3 channels the stripe pattern is weighted by a class colour. Per-image random
 * brightness and phase keep the class from being readable from the mean intensity alone, while a
 * small CNN separates the classes within a few epochs. `noise` is the std of added Gaussian
 * noise in units of the full range (1 = 255).
 */
import { z } from "zod";
import { createRng, deriveSeed } from "../../pipeline/rng.ts";
import type { Dataset, Loader, PluginModule, Rng, Split } from "../../pipeline/types.ts";

const count = z.number().int().min(0);

export const configSchema = z.object({
  numClasses: z.number().int().min(2).max(64).default(4),
  /** image height and width */
  size: z.number().int().min(8).max(512).default(32),
  channels: z.union([z.literal(1), z.literal(3)]).default(3),
  /** training images per class: one count for all, or one per class (for imbalance) */
  perClass: z.union([count, z.array(count).min(1)]).default(100),
  valPerClass: z.union([count, z.array(count).min(1)]).default(20),
  testPerClass: z.union([count, z.array(count).min(1)]).default(0),
  seed: z.number().int().default(0),
  /** std of the added Gaussian noise, as a fraction of the full range */
  noise: z.number().min(0).max(1).default(0.1),
}).strict();

export type SyntheticConfig = z.infer<typeof configSchema>;

function gaussian(rng: Rng): number {
  let u = rng.next();
  while (u === 0) u = rng.next();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
}

/** Per-class colour weights for 3 channels (always sums to a similar total). */
function classColour(k: number): [number, number, number] {
  const palette: [number, number, number][] = [
    [1, 0.6, 0.3],
    [0.3, 1, 0.6],
    [0.6, 0.3, 1],
    [1, 1, 0.3],
    [0.3, 1, 1],
    [1, 0.3, 1],
  ];
  return palette[k % palette.length];
}

function counts(v: number | number[], numClasses: number, what: string): number[] {
  if (typeof v === "number") return new Array<number>(numClasses).fill(v);
  if (v.length !== numClasses) {
    throw new Error(`synthetic: ${what} has ${v.length} entries, but numClasses is ${numClasses}`);
  }
  return v;
}

/** Renders one image of class k into `out` (length c*s*s). */
function render(out: Uint8Array, k: number, cfg: SyntheticConfig, rng: Rng): void {
  const s = cfg.size, C = cfg.channels, K = cfg.numClasses;
  const theta = (Math.PI * k) / K + (rng.next() - 0.5) * (Math.PI / K) * 0.3;
  const freq = 2 + (k % 3);
  const phase = rng.next() * 2 * Math.PI;
  const contrast = 0.25 + 0.15 * rng.next();
  const offset = 0.35 + 0.3 * rng.next();
  const cx = (0.3 + 0.4 * (((k * 7) % K) / Math.max(1, K - 1))) * s + (rng.next() - 0.5) * 0.1 * s;
  const cy = (0.3 + 0.4 * (((k * 3) % K) / Math.max(1, K - 1))) * s + (rng.next() - 0.5) * 0.1 * s;
  const r2 = (0.12 * s) ** 2;
  const blob = 0.25 * (rng.next() < 0.5 ? 1 : -1);
  const col = C === 3 ? classColour(k) : [1];
  const cos = Math.cos(theta), sin = Math.sin(theta);
  const kx = (2 * Math.PI * freq) / s;
  for (let y = 0; y < s; y++) {
    for (let x = 0; x < s; x++) {
      const stripe = Math.sin(kx * (x * cos + y * sin) + phase);
      const d2 = (x - cx) ** 2 + (y - cy) ** 2;
      const b = blob * Math.exp(-d2 / (2 * r2));
      for (let c = 0; c < C; c++) {
        let v = offset + contrast * stripe * col[c] + b;
        if (cfg.noise > 0) v += cfg.noise * gaussian(rng);
        out[(c * s + y) * s + x] = Math.max(0, Math.min(255, Math.round(v * 255)));
      }
    }
  }
}

function makeSplit(cfg: SyntheticConfig, perClass: number[], rng: Rng): Split {
  const n = perClass.reduce((a, b) => a + b, 0);
  const per = cfg.channels * cfg.size * cfg.size;
  const data = new Uint8Array(n * per);
  const labels = new Int32Array(n);
  // interleave classes so that the order does not group by class
  const order: number[] = [];
  perClass.forEach((m, k) => {
    for (let i = 0; i < m; i++) order.push(k);
  });
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  order.forEach((k, i) => {
    labels[i] = k;
    render(data.subarray(i * per, (i + 1) * per), k, cfg, rng);
  });
  return { source: { kind: "pixels", data, shape: [n, cfg.channels, cfg.size, cfg.size] }, labels };
}

/** Generates the dataset (deterministic for a given config). */
export function generateSynthetic(cfg: SyntheticConfig): Dataset {
  const K = cfg.numClasses;
  const train = counts(cfg.perClass, K, "perClass");
  const val = counts(cfg.valPerClass, K, "valPerClass");
  const test = counts(cfg.testPerClass, K, "testPerClass");
  if (train.every((v) => v === 0)) throw new Error("synthetic: perClass gives no training images");
  const ds: Dataset = {
    classNames: Array.from({ length: K }, (_, k) => `class_${k}`),
    train: makeSplit(cfg, train, createRng(deriveSeed(cfg.seed, "synthetic", "train"))),
    description:
      `synthetic ${K} classes ${cfg.channels}x${cfg.size}x${cfg.size}, noise ${cfg.noise}, seed ${cfg.seed}`,
  };
  if (val.some((v) => v > 0)) {
    ds.val = makeSplit(cfg, val, createRng(deriveSeed(cfg.seed, "synthetic", "val")));
  }
  if (test.some((v) => v > 0)) {
    ds.test = makeSplit(cfg, test, createRng(deriveSeed(cfg.seed, "synthetic", "test")));
  }
  return ds;
}

export const plugin: PluginModule<typeof configSchema, Loader> = {
  name: "synthetic",
  configSchema,
  create(cfg): Loader {
    return { load: (): Promise<Dataset> => Promise.resolve().then(() => generateSynthetic(cfg)) };
  },
};
