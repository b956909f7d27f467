/**
 * From a `Dataset` split to native images and batches.
 *
 * `openSplit` turns a split into an `Images` handle: file paths are decoded once into a cache
 * (`cacheDir/<hash of the file list, size and channels>.hnc`; when it cannot be written, the
 * images stay decoded in memory with one warning); in-memory pixels are wrapped as
 * they are. Labels of images the decoder skipped (`onBadImage: skip`: unreadable, not an image,
 * cut short, over `maxPixels`) are dropped; each class that lost images gets a warning, and a train
 * split left with a class that has no images is a DataError.
 *
 * `batchStream` yields batches with one gather in flight ahead: while the caller runs step k,
 * the gather of batch k+1 (a non-blocking native call on the Images handle) already runs. The
 * augmentation seed of a batch is the caller's `seedOf(batchIndex)` (the run uses
 * `deriveSeed(runSeed, epoch, batchIndex)`), so a resumed run sees the same pixels.
 */
import { join } from "node:path";
import { applyOps, Images, type SkippedImage } from "../native/images.ts";
import { DataError } from "./errors.ts";
import { createRng, deriveSeed } from "./rng.ts";
import type { Augmenter, AugmentOp, Split } from "./types.ts";

/** A split backed by a native `Images` handle. */
export interface SplitImages {
  images: Images;
  /** labels of the kept images, in Images order */
  labels: Int32Array;
  /** `[c, h, w]` of every image */
  chw: [number, number, number];
  count: number;
}

/** Options of `openSplit`. */
export interface OpenSplitOptions {
  height: number;
  width: number;
  channels: number;
  cacheDir: string;
  onBadImage: "error" | "skip";
  /** largest width × height of an image file (header); a file over it is a bad image */
  maxPixels?: number;
  /** class names, for the skipped-images warnings (default: the class index only) */
  classNames?: readonly string[];
  log(line: string): void;
  /** for messages: "train", "val", "test" */
  splitName: string;
}

/** Hex SHA-256 prefix of the split's identity (file list, size, channels). */
export async function splitCacheKey(
  paths: string[],
  height: number,
  width: number,
  channels: number,
): Promise<string> {
  const text = `${height}x${width}x${channels}\n${paths.join("\n")}`;
  const h = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return Array.from(h.subarray(0, 12), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The one warning of a split whose image cache could not be written. */
function warnNoCache(o: OpenSplitOptions, why: string): void {
  o.log(
    `${o.splitName}: the image cache in data.cacheDir ${o.cacheDir} could not be written (${why}); ` +
      `the images were decoded in memory and will be decoded again next run (free space or set data.cacheDir)`,
  );
}

/** Opens a split as native images (see the module doc). */
export async function openSplit(split: Split, o: OpenSplitOptions): Promise<SplitImages> {
  const src = split.source;
  if (src.kind === "pixels") {
    const [n, c, h, w] = src.shape;
    if (c !== o.channels || h !== o.height || w !== o.width) {
      throw new DataError(
        `${o.splitName} split: the loader gives ${c}x${h}x${w} images (channels x height x width) but the ` +
          `config says data.channels ${o.channels}, data.imageSize [${o.height}, ${o.width}]; set them to match`,
      );
    }
    if (split.labels.length !== n) {
      throw new DataError(`${o.splitName} split: ${n} images but ${split.labels.length} labels`);
    }
    const images = Images.fromU8(src.data, [n, c, h, w]);
    return { images, labels: split.labels, chw: [c, h, w], count: n };
  }
  if (split.labels.length !== src.paths.length) {
    throw new DataError(`${o.splitName} split: ${src.paths.length} files but ${split.labels.length} labels`);
  }
  // the cache is an optimisation: a cache folder that cannot be made or written costs a warning
  let cachePath: string | null = null;
  try {
    await Deno.mkdir(o.cacheDir, { recursive: true });
    cachePath = join(o.cacheDir, `${await splitCacheKey(src.paths, o.height, o.width, o.channels)}.hnc`);
  } catch (err) {
    warnNoCache(o, (err as Error).message);
  }
  const images = await Images.build({
    files: src.paths,
    height: o.height,
    width: o.width,
    channels: o.channels,
    cachePath,
    onBadImage: o.onBadImage,
    maxPixels: o.maxPixels,
  });
  const info = images.info();
  if (info.cacheError !== null) warnNoCache(o, info.cacheError);
  for (const s of info.skipped) o.log(`${o.splitName}: skipped bad image ${s.path}: ${s.error}`);
  let labels = split.labels;
  if (info.skipped.length > 0) labels = Int32Array.from(info.kept, (i) => split.labels[i]);
  try {
    if (info.count !== labels.length) {
      throw new DataError(
        `${o.splitName} split: ${info.count} images decoded but ${labels.length} labels kept`,
      );
    }
    if (info.skipped.length > 0) checkSkippedClasses(split.labels, labels, info.skipped, o);
  } catch (err) {
    images.close();
    throw err;
  }
  return { images, labels, chw: [o.channels, o.height, o.width], count: info.count };
}

/** Per-class image counts of `labels` (the class count is the largest label + 1). */
function classCounts(labels: Int32Array, numClasses: number): number[] {
  const counts = new Array<number>(numClasses).fill(0);
  for (const l of labels) counts[l]++;
  return counts;
}

/**
 * Warns, for each class that lost images to `onBadImage: skip`, how many of how many; throws a
 * DataError when the train split is left with a class that had images and now has none (its
 * priors and its recall would be silently wrong).
 */
function checkSkippedClasses(
  all: Int32Array,
  kept: Int32Array,
  skipped: readonly SkippedImage[],
  o: OpenSplitOptions,
): void {
  let numClasses = o.classNames?.length ?? 0;
  for (const l of all) numClasses = Math.max(numClasses, l + 1);
  const before = classCounts(all, numClasses);
  const after = classCounts(kept, numClasses);
  const name = (k: number): string =>
    o.classNames?.[k] === undefined ? `class ${k}` : `class ${k} (${o.classNames[k]})`;
  const emptied: string[] = [];
  for (let k = 0; k < numClasses; k++) {
    const lost = before[k] - after[k];
    if (lost === 0) continue;
    o.log(`${name(k)}: ${lost} of ${before[k]} ${o.splitName} images skipped`);
    if (after[k] === 0) {
      const first = skipped.find((s) => all[s.index] === k);
      emptied.push(
        `${name(k)}: all ${before[k]} skipped${first ? ` (first: ${first.path}: ${first.error})` : ""}`,
      );
    }
  }
  if (o.splitName === "train" && emptied.length > 0) {
    throw new DataError(
      `train split: onBadImage "skip" left ${
        emptied.length === 1 ? "a class" : `${emptied.length} classes`
      } with no images — ` +
        `${emptied.join("; ")}. Fix or replace those files, or remove the class from the dataset`,
    );
  }
}

/** One training batch. */
export interface Batch {
  index: number;
  x: Float32Array;
  shape: [number, number, number, number];
  targets: Int32Array;
}

/** Options of `batchStream`. */
export interface BatchStreamOptions {
  batchSize: number;
  ops: AugmentOp[];
  /** seed of batch `b`'s augmentation */
  seedOf(b: number): number;
  /** cap on the number of batches */
  maxBatches?: number | null;
  /** first batch to yield (a run resumed mid-epoch skips the batches it already stepped) */
  startBatch?: number;
  /** the augmenter's TS slow path, run on the u8 batch before the native ops */
  transformU8?: Augmenter["transformU8"];
}

/** Slices `order` into batches (the last one may be smaller). */
export function batchCount(total: number, batchSize: number, maxBatches: number | null = null): number {
  const n = Math.ceil(total / batchSize);
  return maxBatches === null ? n : Math.min(n, maxBatches);
}

/**
 * Batches of `order` (indices into `split`), gathered natively with one batch prefetched: the
 * gather of batch k+1 is started before batch k is handed to the caller.
 */
export async function* batchStream(
  split: SplitImages,
  order: Int32Array,
  o: BatchStreamOptions,
): AsyncGenerator<Batch> {
  const total = batchCount(order.length, o.batchSize, o.maxBatches ?? null);
  const [c, h, w] = split.chw;
  const fullLen = o.batchSize * c * h * w;
  const buffers = [new Float32Array(fullLen), new Float32Array(fullLen)];
  const start = (b: number): Promise<Batch> => {
    const idx = order.subarray(b * o.batchSize, Math.min(order.length, (b + 1) * o.batchSize));
    const n = idx.length;
    const shape: [number, number, number, number] = [n, c, h, w];
    const targets = Int32Array.from(idx, (i) => split.labels[i]);
    const seed = o.seedOf(b);
    const out = n === o.batchSize ? buffers[b % 2] : undefined;
    const indices = Int32Array.from(idx);
    let x: Promise<Float32Array>;
    if (o.transformU8) {
      const u8 = split.images.gatherU8(indices);
      o.transformU8(u8, shape, createRng(deriveSeed(seed, "transformU8")));
      x = Promise.resolve(applyOps(u8, shape, o.ops, seed));
    } else {
      x = split.images.gather(indices, o.ops, seed, out);
    }
    return x.then((xs) => ({ index: b, x: xs, shape, targets }));
  };
  const first = o.startBatch ?? 0;
  if (total <= first) return;
  let next = start(first);
  for (let b = first; b < total; b++) {
    const cur = await next;
    if (b + 1 < total) next = start(b + 1);
    yield cur;
  }
}

/** Sequential batches of a whole split for evaluation (eval ops only, fixed seed). */
export function evalStream(split: SplitImages, batchSize: number, ops: AugmentOp[]): AsyncGenerator<Batch> {
  const order = Int32Array.from({ length: split.count }, (_, i) => i);
  return batchStream(split, order, { batchSize, ops, seedOf: () => 0 });
}
