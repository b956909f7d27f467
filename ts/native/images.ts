/**
 * `Images`: the TS owner of one native `HnImages` handle — images decoded once (or read from a
 * cache file) into u8 NCHW memory, then gathered by index and augmented natively per batch
 * (`gather`). `applyOps` runs the same native ops on a u8 batch that TS already holds (the slow
 * path after a TS `transformU8`).
 *
 * An image set is read-only after it is built, so its calls run concurrently with each other and
 * with model calls (no shared queue). `close()` defers the native free until in-flight gathers
 * settle.
 */
import { closedError, HN_OK, NativeError, statusName } from "./errors.ts";
import { getNative, type Handle } from "./ffi.ts";
import { check, checkHandle, type HandleErrorFn } from "./status.ts";
import { encodeJson, readOutString } from "./strings.ts";

/** Declarative ops run natively per batch, in order (docs/ABI.md, augment ops). */
export type AugmentOp =
  | { op: "hflip"; p: number }
  | { op: "vflip"; p: number }
  | { op: "rot90"; p: number }
  | { op: "random_resized_crop"; scale: [number, number]; ratio: [number, number] }
  | { op: "jitter"; brightness: number; contrast: number }
  | { op: "normalize"; mean: number[]; std: number[] };

/** Options of {@link Images.build}. */
export interface ImagesBuildOptions {
  /** Absolute image paths (jpeg, png, bmp, gif, tiff, webp), in dataset order. */
  files: readonly string[];
  /** Output height in pixels (shorter side resized, then center-cropped to the aspect ratio). */
  height: number;
  /** Output width in pixels. */
  width: number;
  /** 3 (RGB; gray is replicated) or 1 (Rec. 709 luma). Default 3. */
  channels?: number;
  /** Cache file (reused while the files' sizes and mtimes match, else rewritten). Default none. */
  cachePath?: string | null;
  /**
   * `"error"` (default): a bad file (unreadable, not an image, cut short, over `maxPixels`) rejects
   * with NativeError `IO` naming it; `"skip"`: it is dropped and listed in `info().skipped`.
   */
  onBadImage?: "error" | "skip";
  /**
   * Largest `width × height` of a file, read from its header before decoding; a file over it is a
   * bad image (a decompression bomb never allocates its pixels). Default {@link DEFAULT_MAX_PIXELS}.
   */
  maxPixels?: number;
}

/** Default of `maxPixels`: 10^8 pixels (the native `DEFAULT_MAX_PIXELS`, docs/ABI.md). */
export const DEFAULT_MAX_PIXELS = 100_000_000;

/** A file dropped by `onBadImage: "skip"`. */
export interface SkippedImage {
  /** Position in the input file list. */
  index: number;
  path: string;
  error: string;
}

/** What {@link Images.info} reports. */
export interface ImagesInfo {
  count: number;
  channels: number;
  height: number;
  width: number;
  /** True when the pixels were read from the cache file. */
  fromCache: boolean;
  /** Seconds the build took (decoding, or reading the cache). */
  decodeSeconds: number;
  /** Why the cache file could not be written (the images are whole, decoded in memory); null when it was or none was asked */
  cacheError: string | null;
  skipped: SkippedImage[];
  /** For each image, its position in the input file list (use it to drop the labels of skipped files). */
  kept: number[];
}

/** `[c, h, w]` of one image. */
export type ImageShape = readonly [c: number, h: number, w: number];

/** `[n, c, h, w]` of a u8 NCHW batch. */
export type U8BatchShape = readonly [n: number, c: number, h: number, w: number];

function freeHandle(handle: Handle): void {
  getNative().symbols.hn_images_free(handle);
}

const freeImages = new FinalizationRegistry<Handle>(freeHandle);

const ERROR_CAPACITY = 4096;
const U32_MAX = 0xffff_ffff;

function invalid(op: string, message: string): NativeError {
  return new NativeError("INVALID_ARG", op, message);
}

function checkShape(op: string, shape: U8BatchShape): void {
  if (!Array.isArray(shape) || shape.length !== 4) {
    throw invalid(op, `shape must be [n, c, h, w] (4 dims); got ${JSON.stringify(shape)}`);
  }
  for (const [i, d] of shape.entries()) {
    if (!Number.isSafeInteger(d) || d <= 0 || d > U32_MAX) {
      throw invalid(op, `shape[${i}] must be a positive integer; got ${d} in [${shape.join(", ")}]`);
    }
  }
}

function checkSeed(op: string, seed: number): bigint {
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw invalid(op, `seed must be a non-negative safe integer; got ${seed}`);
  }
  return BigInt(seed);
}

function checkIndices(op: string, indices: Int32Array): void {
  if (!(indices instanceof Int32Array)) throw invalid(op, "indices must be an Int32Array");
}

function newHandle(op: string, out: BigUint64Array): Handle {
  const handle = out[0];
  if (handle === 0n) throw new NativeError("STATE", op, "returned HN_OK but a null handle");
  return handle;
}

/** The native ops JSON of `ops` (the AugmentOp fields are the native field names). */
function opsJson(op: string, ops: readonly AugmentOp[]): Uint8Array<ArrayBuffer> {
  if (!Array.isArray(ops)) throw invalid(op, "ops must be an array of AugmentOp");
  return encodeJson(ops);
}

interface InfoJson {
  count: number;
  channels: number;
  height: number;
  width: number;
  from_cache: boolean;
  decode_seconds: number;
  cache_error?: string | null;
  skipped: SkippedImage[];
  kept: number[];
}

/**
 * Decoded images, u8 NCHW in native memory. Owns its handle; `close()` (or `using`) frees it
 * once in-flight gathers settle.
 */
export class Images {
  #handle: Handle | null;
  #info: ImagesInfo;
  #inFlight = 0;
  #freeWhenIdle: Handle | null = null;

  private constructor(handle: Handle, info: ImagesInfo) {
    this.#handle = handle;
    this.#info = info;
    freeImages.register(this, handle, this);
  }

  /** Owns a new handle: reads its info (freeing the handle if that fails). */
  static #adopt(handle: Handle): Images {
    let info: ImagesInfo;
    try {
      info = Images.#readInfo(handle);
    } catch (err) {
      freeHandle(handle);
      throw err;
    }
    return new Images(handle, info);
  }

  static #readInfo(handle: Handle): ImagesInfo {
    const { hn_images_info } = getNative().symbols;
    const op = "hn_images_info";
    const json = readOutString(op, (buf, cap, outLen) => hn_images_info(handle, buf, cap, outLen), check);
    const j = JSON.parse(json) as InfoJson;
    return {
      count: j.count,
      channels: j.channels,
      height: j.height,
      width: j.width,
      fromCache: j.from_cache,
      decodeSeconds: j.decode_seconds,
      cacheError: j.cache_error ?? null,
      skipped: j.skipped,
      kept: j.kept,
    };
  }

  /**
   * Decodes `files` in parallel on a native thread (or reads `cachePath` when it matches).
   * Rejects with NativeError `INVALID_ARG` (options) or `IO` naming the bad file or cache path.
   */
  static async build(options: ImagesBuildOptions): Promise<Images> {
    const op = "hn_images_build";
    const { files, height, width, channels = 3, cachePath = null, onBadImage = "error" } = options;
    const { maxPixels = DEFAULT_MAX_PIXELS } = options;
    if (!Array.isArray(files) || files.some((f) => typeof f !== "string")) {
      throw invalid(op, "files must be an array of path strings");
    }
    if (!Number.isSafeInteger(maxPixels) || maxPixels < 1) {
      throw invalid(op, `maxPixels must be a positive integer; got ${maxPixels}`);
    }
    const cfg = encodeJson({
      files,
      height,
      width,
      channels,
      cache_path: cachePath,
      on_bad_image: onBadImage,
      max_pixels: maxPixels,
    });
    const out = new BigUint64Array(1);
    const errBuf = new Uint8Array(ERROR_CAPACITY);
    const errLen = new BigUint64Array(1);
    const { hn_images_build } = getNative().symbols;
    const status = await hn_images_build(cfg, BigInt(cfg.length), out, errBuf, BigInt(errBuf.length), errLen);
    if (status !== HN_OK) {
      const message = new TextDecoder().decode(errBuf.subarray(0, Number(errLen[0])));
      const code = statusName(status);
      throw new NativeError(code, op, message === "" ? `status ${status} (no message)` : message, { status });
    }
    return Images.#adopt(newHandle(op, out));
  }

  /** An image set of u8 NCHW pixels already in memory (copied). */
  static fromU8(data: Uint8Array, shape: U8BatchShape): Images {
    const op = "hn_images_from_u8";
    if (!(data instanceof Uint8Array)) throw invalid(op, "data must be a Uint8Array");
    checkShape(op, shape);
    const [n, c, h, w] = shape;
    const out = new BigUint64Array(1);
    const { hn_images_from_u8 } = getNative().symbols;
    check(hn_images_from_u8(data as Uint8Array<ArrayBuffer>, BigInt(data.length), n, c, h, w, out), op);
    return Images.#adopt(newHandle(op, out));
  }

  /** Count, shape, cache use, build time, and the skipped / kept file positions. */
  info(): ImagesInfo {
    this.#live("info");
    return structuredClone(this.#info);
  }

  /** Number of images. */
  get count(): number {
    return this.#info.count;
  }

  /** `[c, h, w]` of every image. */
  get shape(): ImageShape {
    return [this.#info.channels, this.#info.height, this.#info.width];
  }

  get closed(): boolean {
    return this.#handle === null;
  }

  /** The raw handle, for interop only; throws CLOSED after close(). */
  get unsafeHandle(): Handle {
    return this.#live("unsafeHandle");
  }

  #live(op: string): Handle {
    if (this.#handle === null) throw closedError(op, "image set");
    return this.#handle;
  }

  #lastError(handle: Handle): HandleErrorFn {
    const { hn_images_last_error } = getNative().symbols;
    return (buf, cap, outLen) => hn_images_last_error(handle, buf, cap, outLen);
  }

  #imageLen(): number {
    const [c, h, w] = this.shape;
    return c * h * w;
  }

  /**
   * Float32 NCHW `[indices.length, c, h, w]`: the images at `indices`, `/255`, then `ops` in order
   * (normalize last), on a native thread, each sample with its own generator seeded by
   * (`seed`, position), so the result depends only on (indices, ops, seed). `indices` and `out`
   * must not be touched until the promise settles. Rejects with NativeError `INVALID_ARG` for an
   * index out of range, bad ops, or a wrong `out` length.
   */
  async gather(
    indices: Int32Array,
    ops: readonly AugmentOp[],
    seed: number,
    out?: Float32Array,
  ): Promise<Float32Array> {
    const op = "hn_images_gather";
    const handle = this.#live(op);
    checkIndices(op, indices);
    const seedU64 = checkSeed(op, seed);
    const opsBytes = opsJson(op, ops);
    const need = indices.length * this.#imageLen();
    const dst = out ?? new Float32Array(need);
    if (!(dst instanceof Float32Array) || dst.length !== need) {
      throw invalid(
        op,
        `out must be a Float32Array of ${indices.length}*${this.shape.join("*")} = ${need} values`,
      );
    }
    const { hn_images_gather } = getNative().symbols;
    this.#inFlight++;
    try {
      const status = await hn_images_gather(
        handle,
        indices as Int32Array<ArrayBuffer>,
        BigInt(indices.length),
        opsBytes,
        BigInt(opsBytes.length),
        seedU64,
        dst as Float32Array<ArrayBuffer>,
        BigInt(dst.length),
      );
      checkHandle(status, op, this.#lastError(handle));
      return dst;
    } finally {
      this.#settled();
    }
  }

  /** The raw u8 pixels `[indices.length, c, h, w]` of the images at `indices` (for a TS transform). */
  gatherU8(indices: Int32Array): Uint8Array {
    const op = "hn_images_gather_u8";
    const handle = this.#live(op);
    checkIndices(op, indices);
    const out = new Uint8Array(indices.length * this.#imageLen());
    const { hn_images_gather_u8 } = getNative().symbols;
    const status = hn_images_gather_u8(
      handle,
      indices as Int32Array<ArrayBuffer>,
      BigInt(indices.length),
      out,
      BigInt(out.length),
    );
    check(status, op);
    return out;
  }

  #settled(): void {
    this.#inFlight--;
    if (this.#inFlight === 0 && this.#freeWhenIdle !== null) {
      const handle = this.#freeWhenIdle;
      this.#freeWhenIdle = null;
      freeHandle(handle);
    }
  }

  /** Frees the handle (after in-flight gathers settle). Idempotent. */
  close(): void {
    const handle = this.#handle;
    if (handle === null) return;
    this.#handle = null;
    freeImages.unregister(this);
    if (this.#inFlight === 0) freeHandle(handle);
    else this.#freeWhenIdle = handle;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * The native ops of {@link Images.gather} applied to a u8 NCHW batch held by TS (for example
 * after an Augmenter's `transformU8`): float32 `[n, c, h, w]`, equal to gathering the same
 * pixels with the same ops and seed. Synchronous.
 */
export function applyOps(
  u8: Uint8Array,
  shape: U8BatchShape,
  ops: readonly AugmentOp[],
  seed: number,
): Float32Array {
  const op = "hn_u8_to_f32_ops";
  if (!(u8 instanceof Uint8Array)) throw invalid(op, "u8 must be a Uint8Array");
  checkShape(op, shape);
  const seedU64 = checkSeed(op, seed);
  const opsBytes = opsJson(op, ops);
  const [n, c, h, w] = shape;
  const out = new Float32Array(n * c * h * w);
  const { hn_u8_to_f32_ops } = getNative().symbols;
  const status = hn_u8_to_f32_ops(
    u8 as Uint8Array<ArrayBuffer>,
    BigInt(u8.length),
    n,
    c,
    h,
    w,
    opsBytes,
    BigInt(opsBytes.length),
    seedU64,
    out,
    BigInt(out.length),
  );
  check(status, op);
  return out;
}
