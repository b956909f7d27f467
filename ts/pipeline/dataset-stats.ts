/**
 * Per-channel statistics of the training split, for augmenters whose normalisation is measured
 * on the data (`normalize: "dataset"`): measured once, before the first batch, from up to 4096
 * evenly spaced training images.
 */
import type { SplitImages } from "./data.ts";
import type { Augmenter } from "./types.ts";

/** Training images sampled for the statistics (evenly spaced over the split). */
const STATS_SAMPLE = 4096;

/**
 * Per-channel mean and std (population) of u8 NCHW pixels in [0, 1] units; a zero std becomes 1
 * so that normalize stays finite.
 */
export function datasetMeanStd(
  data: Uint8Array,
  shape: [number, number, number, number],
): { mean: number[]; std: number[] } {
  const [n, c, h, w] = shape;
  const hw = h * w;
  if (data.length !== n * c * hw) {
    throw new Error(`datasetMeanStd: ${data.length} bytes for shape [${shape}]`);
  }
  const sum = new Float64Array(c), sq = new Float64Array(c);
  for (let i = 0; i < n; i++) {
    for (let ch = 0; ch < c; ch++) {
      const off = (i * c + ch) * hw;
      let s = 0, q = 0;
      for (let k = 0; k < hw; k++) {
        const v = data[off + k];
        s += v;
        q += v * v;
      }
      sum[ch] += s;
      sq[ch] += q;
    }
  }
  const cnt = n * hw;
  const mean: number[] = [], std: number[] = [];
  for (let ch = 0; ch < c; ch++) {
    const m = cnt > 0 ? sum[ch] / cnt : 0;
    const v = cnt > 0 ? Math.max(0, sq[ch] / cnt - m * m) : 0;
    mean.push(m / 255);
    std.push(v > 0 ? Math.sqrt(v) / 255 : 1);
  }
  return { mean, std };
}

/** Gives `augment` the training split's mean/std when it asks for them (`needsDatasetStats`). */
export async function provideDatasetStats(augment: Augmenter, train: SplitImages): Promise<void> {
  if (!augment.needsDatasetStats || typeof augment.setDatasetStats !== "function") return;
  const n = Math.min(train.count, STATS_SAMPLE);
  const idx = Int32Array.from({ length: n }, (_, i) => Math.floor((i * train.count) / n));
  const u8 = await train.images.gatherU8(idx);
  const { mean, std } = datasetMeanStd(u8, [n, ...train.chw]);
  augment.setDatasetStats(mean, std);
}
