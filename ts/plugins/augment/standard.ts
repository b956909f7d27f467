/**
 * Augmenter "standard": declarative ops run natively per batch.
 *
 * Training order: random_resized_crop, hflip, vflip, rot90, jitter, normalize (ops with p = 0 or
 * set to null are left out). Evaluation runs normalize only. Pixel values are taken in [0, 1]
 * (u8 / 255) when normalize applies, as in torchvision.
 *
 * `normalize: "dataset"` means per-channel mean/std of the training images: the runner measures
 * them (ts/pipeline/dataset-stats.ts) and calls `setDatasetStats(mean, std)` before it
 * reads `trainOps`/`evalOps`; reading them earlier throws.
 */
import { z } from "zod";
import type { Augmenter, AugmentOp, PluginModule } from "../../pipeline/types.ts";

const prob = z.number().min(0).max(1);
const range = z.tuple([z.number().positive(), z.number().positive()]);

export const DEFAULT_RANDOM_RESIZED_CROP = {
  scale: [0.08, 1] as [number, number],
  ratio: [3 / 4, 4 / 3] as [number, number],
};
export const DEFAULT_JITTER = { brightness: 0.2, contrast: 0.2 };

/** The config fields of the native ops (shared with "ts-function"). */
export const nativeOpsShape = {
  hflip: prob.default(0.5),
  vflip: prob.default(0),
  rot90: prob.default(0),
  randomResizedCrop: z.object({
    scale: range.default(DEFAULT_RANDOM_RESIZED_CROP.scale),
    ratio: range.default(DEFAULT_RANDOM_RESIZED_CROP.ratio),
  }).strict().nullable().default(null),
  jitter: z.object({
    brightness: z.number().min(0).default(DEFAULT_JITTER.brightness),
    contrast: z.number().min(0).default(DEFAULT_JITTER.contrast),
  }).strict().nullable().default(null),
  normalize: z.union([
    z.object({ mean: z.array(z.number()).min(1), std: z.array(z.number().positive()).min(1) }).strict(),
    z.literal("dataset"),
  ]).nullable().default(null),
};

export const configSchema = z.object(nativeOpsShape).strict();

export type StandardAugmentConfig = z.infer<typeof configSchema>;
type NativeOpsConfig = Pick<StandardAugmentConfig, keyof typeof nativeOpsShape>;

/** An Augmenter whose normalize may wait for the dataset's statistics. */
export interface StandardAugmenter extends Augmenter {
  /** true when normalize is "dataset" and setDatasetStats has not been called yet */
  readonly needsDatasetStats: boolean;
  /** per-channel mean and std in [0, 1] units, for `normalize: "dataset"` */
  setDatasetStats(mean: number[], std: number[]): void;
}

/** The training ops without normalize, in order. */
export function augmentOpsFor(cfg: NativeOpsConfig): AugmentOp[] {
  const ops: AugmentOp[] = [];
  const rrc = cfg.randomResizedCrop;
  if (rrc !== null) {
    if (rrc.scale[0] > rrc.scale[1] || rrc.ratio[0] > rrc.ratio[1]) {
      throw new Error(
        `augment: randomResizedCrop scale and ratio must be [low, high]; got scale ${
          JSON.stringify(rrc.scale)
        }, ` +
          `ratio ${JSON.stringify(rrc.ratio)}`,
      );
    }
    if (rrc.scale[1] > 1) {
      throw new Error(`augment: randomResizedCrop scale upper bound ${rrc.scale[1]} is above 1`);
    }
    ops.push({
      op: "random_resized_crop",
      scale: [rrc.scale[0], rrc.scale[1]],
      ratio: [rrc.ratio[0], rrc.ratio[1]],
    });
  }
  if (cfg.hflip > 0) ops.push({ op: "hflip", p: cfg.hflip });
  if (cfg.vflip > 0) ops.push({ op: "vflip", p: cfg.vflip });
  if (cfg.rot90 > 0) ops.push({ op: "rot90", p: cfg.rot90 });
  const j = cfg.jitter;
  if (j !== null && (j.brightness > 0 || j.contrast > 0)) {
    ops.push({ op: "jitter", brightness: j.brightness, contrast: j.contrast });
  }
  return ops;
}

function checkMeanStd(mean: number[], std: number[]): void {
  if (mean.length !== std.length) {
    throw new Error(`augment: normalize mean has ${mean.length} values but std has ${std.length}`);
  }
  if (std.some((s) => !(s > 0)) || mean.some((m) => !Number.isFinite(m))) {
    throw new Error(`augment: normalize needs finite means and positive stds; got mean ${mean}, std ${std}`);
  }
}

/** Builds the Augmenter of the native-op config (used by "standard" and "ts-function"). */
export function createStandardAugmenter(cfg: NativeOpsConfig): StandardAugmenter {
  const base = augmentOpsFor(cfg);
  let norm: AugmentOp | null = null;
  const fromDataset = cfg.normalize === "dataset";
  if (cfg.normalize !== null && cfg.normalize !== "dataset") {
    checkMeanStd(cfg.normalize.mean, cfg.normalize.std);
    norm = { op: "normalize", mean: [...cfg.normalize.mean], std: [...cfg.normalize.std] };
  }
  const pending = (): boolean => fromDataset && norm === null;
  const need = (): void => {
    if (pending()) {
      throw new Error(
        'augment: normalize is "dataset"; call setDatasetStats(mean, std) before reading the ops',
      );
    }
  };
  return {
    get trainOps(): AugmentOp[] {
      need();
      return norm ? [...base, norm] : [...base];
    },
    get evalOps(): AugmentOp[] {
      need();
      return norm ? [norm] : [];
    },
    get needsDatasetStats(): boolean {
      return pending();
    },
    setDatasetStats(mean: number[], std: number[]): void {
      if (!fromDataset) return;
      checkMeanStd(mean, std);
      norm = { op: "normalize", mean: [...mean], std: [...std] };
    },
  };
}

export const plugin: PluginModule<typeof configSchema, StandardAugmenter> = {
  name: "standard",
  configSchema,
  create(cfg): StandardAugmenter {
    return createStandardAugmenter(cfg);
  },
};
