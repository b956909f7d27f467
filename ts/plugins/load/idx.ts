/**
 * Loader "idx": MNIST / Fashion-MNIST IDX files (`idx3-ubyte` images, `idx1-ubyte` labels),
 * plain or gzip-compressed. Each file name is looked up as given and with `.gz` added (or
 * removed). Produces in-memory `{kind: "pixels"}` sources of shape `[n, 1, rows, cols]`.
 *
 * Test files are optional. With `valFraction` 0 the test split also serves as val; otherwise
 * `valFraction` of each training class (stratified, `splitSeed`) becomes val.
 */
import { join } from "node:path";
import { z } from "zod";
import { createRng, deriveSeed } from "../../pipeline/rng.ts";
import type { Dataset, Loader, PluginModule, Split } from "../../pipeline/types.ts";
import { isDir, isFile, resolveFrom, stratifiedSplit } from "./common.ts";

export const FASHION_MNIST_CLASSES = [
  "tshirt_top",
  "trouser",
  "pullover",
  "dress",
  "coat",
  "sandal",
  "shirt",
  "sneaker",
  "bag",
  "ankle_boot",
];

export const configSchema = z.object({
  /** folder with the IDX files, relative to the config file's folder */
  dir: z.string().min(1),
  trainImages: z.string().min(1).default("train-images-idx3-ubyte"),
  trainLabels: z.string().min(1).default("train-labels-idx1-ubyte"),
  testImages: z.string().min(1).default("t10k-images-idx3-ubyte"),
  testLabels: z.string().min(1).default("t10k-labels-idx1-ubyte"),
  /** class names in label order; null: the Fashion-MNIST names for 10 classes, else "0".."K-1" */
  classNames: z.array(z.string().min(1)).min(1).nullable().default(null),
  /** fraction of each training class moved to val; 0: val = the test split */
  valFraction: z.number().min(0).lt(1).default(0),
  splitSeed: z.number().int().default(0),
}).strict();

export type IdxConfig = z.infer<typeof configSchema>;

const IMAGES_MAGIC = 0x00000803;
const LABELS_MAGIC = 0x00000801;

/** The existing file among `name` and its `.gz` twin, or null. */
export function findIdxFile(dir: string, name: string): string | null {
  const alt = name.endsWith(".gz") ? name.slice(0, -3) : `${name}.gz`;
  for (const n of [name, alt]) {
    const p = join(dir, n);
    if (isFile(p)) return p;
  }
  return null;
}

/** File bytes, gunzipped when the file starts with the gzip magic. */
export async function readMaybeGzip(path: string): Promise<Uint8Array> {
  const raw = await Deno.readFile(path);
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      const stream = new Blob([raw]).stream().pipeThrough(new DecompressionStream("gzip"));
      return new Uint8Array(await new Response(stream).arrayBuffer());
    } catch (e) {
      throw new Error(`idx: ${path}: gzip data is corrupt (${(e as Error).message})`);
    }
  }
  return raw;
}

/** Parses an idx3-ubyte image file: `[n, rows, cols]` and the pixel bytes. */
export function parseIdxImages(
  bytes: Uint8Array,
  file: string,
): { n: number; rows: number; cols: number; data: Uint8Array } {
  if (bytes.length < 16) throw new Error(`idx: ${file}: ${bytes.length} bytes, too short for an idx3 header`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = dv.getUint32(0);
  if (magic !== IMAGES_MAGIC) {
    throw new Error(
      `idx: ${file}: magic number 0x${
        magic.toString(16).padStart(8, "0")
      } is not 0x00000803 (idx3 ubyte images)`,
    );
  }
  const n = dv.getUint32(4), rows = dv.getUint32(8), cols = dv.getUint32(12);
  const want = 16 + n * rows * cols;
  if (bytes.length !== want) {
    throw new Error(
      `idx: ${file}: ${bytes.length} bytes, but the header [${n}, ${rows}, ${cols}] needs ${want}`,
    );
  }
  return { n, rows, cols, data: bytes.subarray(16) };
}

/** Parses an idx1-ubyte label file. */
export function parseIdxLabels(bytes: Uint8Array, file: string): Uint8Array {
  if (bytes.length < 8) throw new Error(`idx: ${file}: ${bytes.length} bytes, too short for an idx1 header`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = dv.getUint32(0);
  if (magic !== LABELS_MAGIC) {
    throw new Error(
      `idx: ${file}: magic number 0x${
        magic.toString(16).padStart(8, "0")
      } is not 0x00000801 (idx1 ubyte labels)`,
    );
  }
  const n = dv.getUint32(4);
  if (bytes.length !== 8 + n) {
    throw new Error(`idx: ${file}: ${bytes.length} bytes, but the header [${n}] needs ${8 + n}`);
  }
  return bytes.subarray(8);
}

async function readPair(imagesPath: string, labelsPath: string): Promise<Split> {
  const img = parseIdxImages(await readMaybeGzip(imagesPath), imagesPath);
  const lab = parseIdxLabels(await readMaybeGzip(labelsPath), labelsPath);
  if (lab.length !== img.n) {
    throw new Error(`idx: ${labelsPath} has ${lab.length} labels but ${imagesPath} has ${img.n} images`);
  }
  return {
    source: { kind: "pixels", data: new Uint8Array(img.data), shape: [img.n, 1, img.rows, img.cols] },
    labels: Int32Array.from(lab),
  };
}

function pixelSubset(s: Split, idx: number[]): Split {
  const src = s.source;
  if (src.kind !== "pixels") throw new Error("idx: internal: expected a pixels source");
  const [, c, h, w] = src.shape;
  const per = c * h * w;
  const data = new Uint8Array(idx.length * per);
  idx.forEach((i, j) => data.set(src.data.subarray(i * per, (i + 1) * per), j * per));
  return {
    source: { kind: "pixels", data, shape: [idx.length, c, h, w] },
    labels: Int32Array.from(idx, (i) => s.labels[i]),
  };
}

/** Loads an IDX dataset (see the module doc). */
export async function loadIdx(
  cfg: IdxConfig,
  configDir: string,
  log: (line: string) => void,
): Promise<Dataset> {
  const dir = resolveFrom(configDir, cfg.dir);
  if (!isDir(dir)) throw new Error(`idx: folder ${dir} does not exist`);
  const need = (name: string): string => {
    const p = findIdxFile(dir, name);
    if (p === null) throw new Error(`idx: ${join(dir, name)} (or its .gz twin) does not exist`);
    return p;
  };
  let train = await readPair(need(cfg.trainImages), need(cfg.trainLabels));
  const ti = findIdxFile(dir, cfg.testImages);
  const tl = findIdxFile(dir, cfg.testLabels);
  if ((ti === null) !== (tl === null)) {
    throw new Error(`idx: found only one of ${join(dir, cfg.testImages)} and ${join(dir, cfg.testLabels)}`);
  }
  const test = ti !== null && tl !== null ? await readPair(ti, tl) : undefined;
  if (test) {
    const [, , h, w] = (test.source as { shape: number[] }).shape;
    const [, , th, tw] = (train.source as { shape: number[] }).shape;
    if (h !== th || w !== tw) {
      throw new Error(`idx: ${ti} has ${h}x${w} images, ${cfg.trainImages} has ${th}x${tw}`);
    }
  }
  let maxLabel = 0;
  for (const s of [train, test]) if (s) { for (const v of s.labels) maxLabel = Math.max(maxLabel, v); }
  const numClasses = cfg.classNames?.length ?? maxLabel + 1;
  if (maxLabel >= numClasses) {
    throw new Error(`idx: label ${maxLabel} found, but classNames lists ${numClasses} classes`);
  }
  const classNames = cfg.classNames ??
    (numClasses === 10
      ? [...FASHION_MNIST_CLASSES]
      : Array.from({ length: numClasses }, (_, k) => String(k)));
  const ds: Dataset = { classNames, train, description: `idx ${dir}` };
  if (cfg.valFraction > 0) {
    const rng = createRng(deriveSeed(cfg.splitSeed, "idx-split"));
    const parts = stratifiedSplit(train.labels, numClasses, 1 - cfg.valFraction, rng);
    const full = train;
    train = pixelSubset(full, parts.train);
    ds.train = train;
    ds.val = pixelSubset(full, parts.val);
    ds.description += ` (val = ${cfg.valFraction} of each training class, splitSeed ${cfg.splitSeed})`;
  } else if (test) {
    ds.val = test;
    ds.description += " (val = test split)";
  } else {
    log(`idx: no test files in ${dir} and valFraction 0: the dataset has no val split`);
  }
  if (test) ds.test = test;
  return ds;
}

export const plugin: PluginModule<typeof configSchema, Loader> = {
  name: "idx",
  configSchema,
  create(cfg, ctx): Loader {
    return { load: (): Promise<Dataset> => loadIdx(cfg, ctx.configDir, ctx.log) };
  },
};
