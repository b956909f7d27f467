/**
 * The one place that opens libhybridnet: the symbol table of docs/ABI.md, the library search and
 * the ABI handshake. Every other module gets the symbols through {@link getNative}.
 *
 * Buffer lifetime, for every symbol below: Rust copies each input buffer before it returns, and
 * writes each output buffer before it returns. For the `nonblocking` symbols "returns" means
 * "the promise settles", so the wrappers keep their buffers referenced (and unmodified) until then.
 *
 * Status results are `i32` codes (see errors.ts). Handles cross as `usize` (the C ABI passes a
 * pointer and a usize alike) and live in TS as a bigint, {@link Handle}: no `Deno.UnsafePointer`
 * call is needed, so the library can run under a scoped `--allow-ffi=<library>` (Deno checks
 * every UnsafePointer call against an unscoped --allow-ffi), as ts/launch.ts runs it.
 *
 * MAIN_ARENA_NOTE — why the model's heavy calls are synchronous (`nonblocking: false`):
 * a `nonblocking` call runs on one of Deno's worker threads, and glibc gives each thread its own
 * malloc arena. A non-main arena cannot hold a block over 64 MiB in its heap, so every large
 * activation is mmap'd and unmapped again each step, faulting its pages back in; the library's
 * `mallopt` settings cannot prevent that (the eval forward at 128 px ran at about half the speed
 * from a worker thread; docs/perf-log.md). So model and trainer calls run on the JS thread (the
 * main arena), while the image gather stays `nonblocking`: the next batch is still prepared on a
 * worker thread while the current step runs. The ABI still marks those model and trainer symbols
 * **NB** (they may run on any thread and keep their error on the handle); `checkHandle` reads it
 * from there either way.
 */
import { fileURLToPath } from "node:url";
import { NativeError } from "./errors.ts";

/**
 * The ABI this TS side speaks. Bump together with `native/src/ffi/mod.rs` whenever a signature or
 * a JSON contract of docs/ABI.md changes.
 */
export const ABI_VERSION = 6;

/** A native handle: the object's address, owned by the TS wrapper that received it (0n is none). */
export type Handle = bigint;

/** Environment variable that names the library file to load, instead of the build outputs. */
export const NATIVE_PATH_ENV = "HYBRIDNET_NATIVE_PATH";

const BUILD_HINT = "run `deno task build:native`";

/** Symbol table of libhybridnet (docs/ABI.md). */
export const symbols = {
  // ---- library -------------------------------------------------------------------------------
  /** `fn hn_abi_version() -> u32` */
  hn_abi_version: { parameters: [], result: "u32" },
  /** `fn hn_last_error_length() -> usize` — length in bytes of this thread's last error message. */
  hn_last_error_length: { parameters: [], result: "usize" },
  /** Copies this thread's last error message; returns the bytes written. */
  hn_last_error_message: {
    parameters: [
      "buffer", // buf: *mut u8 — written before return
      "usize", // cap: usize
    ],
    result: "usize",
  },
  /** JSON description of the build and runtime (abi, torch, threads, cuda). */
  hn_info_json: {
    parameters: [
      "buffer", // buf: *mut u8 — written before return
      "usize", // cap: usize
      "buffer", // out_len: *mut usize — needed size, also on HN_ERR_BUFFER_TOO_SMALL
    ],
    result: "i32",
  },
  hn_set_num_threads: {
    parameters: [
      "i32", // n: i32
    ],
    result: "i32",
  },
  hn_manual_seed: {
    parameters: [
      "u64", // seed: u64
    ],
    result: "i32",
  },
  /** TF32 in cuBLAS/cuDNN on or off, process-wide (default off; no effect on the CPU). */
  hn_set_tf32: {
    parameters: [
      "i32", // on: i32 — nonzero: on
    ],
    result: "i32",
  },
  /** Does nothing through the guard (FFI overhead benchmark). */
  hn_noop: { parameters: [], result: "i32" },
  /** The same symbol as a nonblocking call: measures the thread hop the heavy calls pay. */
  hn_noop_async: { name: "hn_noop", parameters: [], result: "i32", nonblocking: true },
  /** `fn hn_live_handles() -> u64` — models, trainers and image sets made and not yet freed (process-wide). */
  hn_live_handles: { parameters: [], result: "u64" },

  // ---- model ---------------------------------------------------------------------------------
  hn_model_new: {
    parameters: [
      "buffer", // cfg: *const u8 — JSON, copied before return
      "usize", // cfg_len: usize
      "buffer", // out: *mut *mut HnModel — caller owns the handle; free with hn_model_free
    ],
    result: "i32",
  },
  /** NULL ok; at most once. Trainers made from the model keep it alive natively. */
  hn_model_free: {
    parameters: [
      "usize", // m: *mut HnModel
    ],
    result: "void",
  },
  hn_model_param_count: {
    parameters: [
      "usize", // m: *const HnModel
      "buffer", // out: *mut u64
    ],
    result: "i32",
  },
  /** Eval-mode forward without grad. ABI **NB** (errors also on the handle), synchronous here. */
  hn_model_forward_eval: {
    parameters: [
      "usize", // m: *mut HnModel
      "buffer", // x: *const f32 — copied before return
      "usize", // x_len: usize
      "buffer", // shape: *const i64 — 4 values n,c,h,w
      "buffer", // out: *mut f32 — written before return
      "usize", // out_len: usize — must be n * num_classes
    ],
    result: "i32",
    nonblocking: false, // see MAIN_ARENA_NOTE
  },
  hn_model_save: {
    parameters: [
      "usize", // m: *const HnModel
      "buffer", // path: *const u8 — UTF-8, copied before return
      "usize", // path_len: usize
    ],
    result: "i32",
  },
  hn_model_load: {
    parameters: [
      "usize", // m: *mut HnModel
      "buffer", // path: *const u8 — UTF-8, copied before return
      "usize", // path_len: usize
    ],
    result: "i32",
  },
  /** JSON: params (names, shapes), the decoded `hn_model_new` config, kernel path counts. */
  hn_model_describe: {
    parameters: [
      "usize", // m: *const HnModel
      "buffer", // buf: *mut u8 — written before return
      "usize", // cap: usize
      "buffer", // out_len: *mut usize
    ],
    result: "i32",
  },
  /** The message of the last failed call on this handle (the channel of the ABI's NB calls). */
  hn_model_last_error: {
    parameters: [
      "usize", // m: *const HnModel
      "buffer", // buf: *mut u8 — written before return
      "usize", // cap: usize
      "buffer", // out_len: *mut usize
    ],
    result: "i32",
  },

  // ---- trainer -------------------------------------------------------------------------------
  hn_trainer_new: {
    parameters: [
      "usize", // m: *mut HnModel — the trainer keeps a reference to it
      "buffer", // cfg: *const u8 — JSON, copied before return
      "usize", // cfg_len: usize
      "buffer", // out: *mut *mut HnTrainer — caller owns the handle; free with hn_trainer_free
    ],
    result: "i32",
  },
  /** NULL ok; at most once. */
  hn_trainer_free: {
    parameters: [
      "usize", // t: *mut HnTrainer
    ],
    result: "void",
  },
  /** JSON: the decoded `hn_trainer_new` config, optimizer steps, steps that took the fused Adam, the EMA. */
  hn_trainer_describe: {
    parameters: [
      "usize", // t: *const HnTrainer
      "buffer", // buf: *mut u8 — written before return
      "usize", // cap: usize
      "buffer", // out_len: *mut usize — needed size, also on HN_ERR_BUFFER_TOO_SMALL
    ],
    result: "i32",
  },
  hn_trainer_set_lr: {
    parameters: [
      "usize", // t: *mut HnTrainer
      "f64", // lr: f64
    ],
    result: "i32",
  },
  /** Train-mode forward; keeps the graph for the next backward_step. ABI **NB**, synchronous here. */
  hn_trainer_forward_train: {
    parameters: [
      "usize", // t: *mut HnTrainer
      "buffer", // x: *const f32 — copied before return
      "usize", // x_len: usize
      "buffer", // shape: *const i64 — 4 values n,c,h,w
      "buffer", // out_logits: *mut f32 — written before return
      "usize", // out_len: usize — must be n * num_classes
    ],
    result: "i32",
    nonblocking: false, // see MAIN_ARENA_NOTE
  },
  /** `logits.backward(dlogits)`, clip, optimizer step, zero grads. ABI **NB**, synchronous here. */
  hn_trainer_backward_step: {
    parameters: [
      "usize", // t: *mut HnTrainer
      "buffer", // dlogits: *const f32 — copied before return
      "usize", // len: usize
      "buffer", // out_grad_norm: *mut f64 — total L2 norm before clipping
    ],
    result: "i32",
    nonblocking: false, // see MAIN_ARENA_NOTE
  },
  hn_trainer_set_loss: {
    parameters: [
      "usize", // t: *mut HnTrainer
      "buffer", // cfg: *const u8 — JSON, copied before return
      "usize", // cfg_len: usize
    ],
    result: "i32",
  },
  /** One call: forward, native loss (batch mean), backward, clip, step. ABI **NB**, synchronous here. */
  hn_trainer_train_step: {
    parameters: [
      "usize", // t: *mut HnTrainer
      "buffer", // x: *const f32 — copied before return
      "usize", // x_len: usize
      "buffer", // shape: *const i64 — 4 values n,c,h,w
      "buffer", // targets: *const i32 — copied before return
      "usize", // n_targets: usize
      "buffer", // out_logits: *mut f32 — written before return; NULL with out_len 0: not copied back
      "usize", // out_len: usize
      "buffer", // out_loss: *mut f64 — NULL: the loss stays on the device (no host sync)
    ],
    result: "i32",
    nonblocking: false, // see MAIN_ARENA_NOTE
  },
  /** Starts an epoch's train statistics (what to count: JSON `{classes, top_k, bias}`). */
  hn_trainer_stats_reset: {
    parameters: [
      "usize", // t: *mut HnTrainer
      "buffer", // cfg: *const u8 — JSON, copied before return
      "usize", // cfg_len: usize
      "f64", // loss_sum: f64 — the sum a resumed epoch starts from (0 for a new one)
    ],
    result: "i32",
  },
  /** Counts the last forward_train's logits with the TS loss (the logits path). */
  hn_trainer_count_last: {
    parameters: [
      "usize", // t: *mut HnTrainer
      "buffer", // targets: *const i32 — copied before return
      "usize", // n_targets: usize
      "f64", // loss: f64 — the batch's mean loss
    ],
    result: "i32",
  },
  /** JSON: the epoch's loss sum, images, steps, confusion and top-k hits (one host read). */
  hn_trainer_train_stats: {
    parameters: [
      "usize", // t: *const HnTrainer
      "buffer", // buf: *mut u8 — written before return
      "usize", // cap: usize
      "buffer", // out_len: *mut usize — needed size, also on HN_ERR_BUFFER_TOO_SMALL
    ],
    result: "i32",
  },
  hn_trainer_step_count: {
    parameters: [
      "usize", // t: *const HnTrainer
      "buffer", // out: *mut u64
    ],
    result: "i32",
  },
  hn_trainer_save_state: {
    parameters: [
      "usize", // t: *const HnTrainer
      "buffer", // path: *const u8 — UTF-8, copied before return
      "usize", // path_len: usize
    ],
    result: "i32",
  },
  hn_trainer_load_state: {
    parameters: [
      "usize", // t: *mut HnTrainer
      "buffer", // path: *const u8 — UTF-8, copied before return
      "usize", // path_len: usize
    ],
    result: "i32",
  },
  /** Swaps the trained parameters' values with their EMA in place; twice restores both. */
  hn_trainer_swap_ema: {
    parameters: [
      "usize", // t: *mut HnTrainer — made with an ema config, else HN_ERR_STATE
    ],
    result: "i32",
  },
  /** The message of the last failed call on this handle (the channel of the ABI's NB calls). */
  hn_trainer_last_error: {
    parameters: [
      "usize", // t: *const HnTrainer
      "buffer", // buf: *mut u8 — written before return
      "usize", // cap: usize
      "buffer", // out_len: *mut usize
    ],
    result: "i32",
  },

  // ---- loss ----------------------------------------------------------------------------------
  /** Stateless loss: mean loss over n and dL/dlogits [n,c] (for the TS/native twin tests). */
  hn_loss_eval: {
    parameters: [
      "buffer", // cfg: *const u8 — JSON, copied before return
      "usize", // cfg_len: usize
      "buffer", // logits: *const f32 — n*c values, copied before return
      "usize", // n: usize
      "usize", // c: usize
      "buffer", // targets: *const i32 — n values, copied before return
      "buffer", // out_loss: *mut f64
      "buffer", // out_grad: *mut f32 — n*c values, written before return
    ],
    result: "i32",
  },

  // ---- images (HnImages: read-only after build; no model mutex; each call holds a reference) --
  /**
   * Decodes image files (or reads the cache) into a u8 NCHW image set. NB: the error message
   * comes back through `err_buf`/`err_len` (there is no handle yet). `*out` is NULL on error.
   */
  hn_images_build: {
    parameters: [
      "buffer", // cfg: *const u8 — JSON, copied before the promise settles
      "usize", // cfg_len: usize
      "buffer", // out: *mut *mut HnImages — caller owns the handle; free with hn_images_free
      "buffer", // err_buf: *mut u8 — the error message (truncated to err_cap), written before the promise settles
      "usize", // err_cap: usize
      "buffer", // err_len: *mut usize — bytes written to err_buf (0 on success)
    ],
    result: "i32",
    nonblocking: true,
  },
  hn_images_from_u8: {
    parameters: [
      "buffer", // data: *const u8 — n*c*h*w u8 NCHW values, copied before return
      "usize", // len: usize
      "u32", // n: u32
      "u32", // c: u32
      "u32", // h: u32
      "u32", // w: u32
      "buffer", // out: *mut *mut HnImages — caller owns the handle; free with hn_images_free
    ],
    result: "i32",
  },
  /** NULL ok; at most once; no call may start after it (a running one keeps its own reference). */
  hn_images_free: {
    parameters: [
      "usize", // h: *mut HnImages
    ],
    result: "void",
  },
  hn_images_info: {
    parameters: [
      "usize", // h: *const HnImages
      "buffer", // buf: *mut u8 — written before return
      "usize", // cap: usize
      "buffer", // out_len: *mut usize
    ],
    result: "i32",
  },
  /** Gathers images by index, applies the augment ops, writes float32 NCHW. NB: errors via hn_images_last_error. */
  hn_images_gather: {
    parameters: [
      "usize", // h: *const HnImages
      "buffer", // indices: *const i32 — read during the call; do not mutate until the promise settles
      "usize", // n: usize
      "buffer", // ops: *const u8 — JSON, read during the call
      "usize", // ops_len: usize
      "u64", // seed: u64
      "buffer", // out: *mut f32 — written before the promise settles
      "usize", // out_len: usize — must be n*c*h*w
    ],
    result: "i32",
    nonblocking: true,
  },
  hn_images_gather_u8: {
    parameters: [
      "usize", // h: *const HnImages
      "buffer", // indices: *const i32 — read before return
      "usize", // n: usize
      "buffer", // out: *mut u8 — written before return
      "usize", // out_len: usize — must be n*c*h*w
    ],
    result: "i32",
  },
  /** The message of the last failed call on this handle (the channel of the nonblocking gather). */
  hn_images_last_error: {
    parameters: [
      "usize", // h: *const HnImages
      "buffer", // buf: *mut u8 — written before return
      "usize", // cap: usize
      "buffer", // out_len: *mut usize
    ],
    result: "i32",
  },
  /** Stateless: the ops of hn_images_gather applied to a u8 NCHW batch given by TS. */
  hn_u8_to_f32_ops: {
    parameters: [
      "buffer", // data: *const u8 — n*c*h*w values, read before return
      "usize", // len: usize
      "u32", // n: u32
      "u32", // c: u32
      "u32", // h: u32
      "u32", // w: u32
      "buffer", // ops: *const u8 — JSON, read before return
      "usize", // ops_len: usize
      "u64", // seed: u64
      "buffer", // out: *mut f32 — written before return
      "usize", // out_len: usize — must be n*c*h*w
    ],
    result: "i32",
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** The loaded symbols. */
export type NativeSymbols = Deno.DynamicLibrary<typeof symbols>["symbols"];

/** A loaded, version-checked library. */
export interface NativeLibrary {
  readonly path: string;
  readonly symbols: NativeSymbols;
  close(): void;
}

/** The library file name for this OS: `libhybridnet.so`, `libhybridnet.dylib` or `hybridnet.dll`. */
export function libraryFileName(os: typeof Deno.build.os = Deno.build.os): string {
  switch (os) {
    case "windows":
      return "hybridnet.dll";
    case "darwin":
      return "libhybridnet.dylib";
    default:
      return "libhybridnet.so";
  }
}

/**
 * The paths tried, in order. An explicit `HYBRIDNET_NATIVE_PATH` is the only candidate: falling
 * back to a build output when the override is wrong would silently run another library.
 */
export function candidatePaths(
  envPath: string | undefined,
  repoRoot: string | null = findRepoRoot(),
): string[] {
  if (envPath !== undefined && envPath !== "") return [envPath];
  if (repoRoot === null) return [];
  const name = libraryFileName();
  return ["release", "debug"].map((profile) => joinPath(repoRoot, "native", "target", profile, name));
}

function findRepoRoot(): string | null {
  const url = new URL("../../", import.meta.url);
  return url.protocol === "file:" ? fileURLToPath(url) : null;
}

function joinPath(root: string, ...parts: string[]): string {
  const sep = Deno.build.os === "windows" ? "\\" : "/";
  return [root.replace(/[\\/]+$/, ""), ...parts].join(sep);
}

function isPermissionError(err: unknown): boolean {
  return err instanceof Deno.errors.PermissionDenied || err instanceof Deno.errors.NotCapable;
}

/** Throws `ABI_MISMATCH` unless `found` equals the version this TS side speaks. */
export function checkAbiVersion(found: number, path: string, expected: number = ABI_VERSION): void {
  if (found === expected) return;
  throw new NativeError(
    "ABI_MISMATCH",
    "hn_abi_version",
    `${path} speaks ABI version ${found}, but this TS code expects ABI version ${expected}; ` +
      `rebuild the library: ${BUILD_HINT}`,
  );
}

/**
 * Opens `path`, checks the ABI version (with a table of only `hn_abi_version`, so an older
 * library with missing symbols still reports its version), then binds the full table.
 * Throws the dlopen error as is; the callers wrap it. The probe stays open until the full
 * table is bound, so the library is never unloaded and loaded again in between (libtorch's
 * static registrations do not like that).
 */
function openChecked(path: string): NativeLibrary {
  const probe = Deno.dlopen(path, { hn_abi_version: symbols.hn_abi_version });
  try {
    checkAbiVersion(probe.symbols.hn_abi_version(), path);
    const lib = Deno.dlopen(path, symbols);
    return { path, symbols: lib.symbols, close: () => lib.close() };
  } finally {
    probe.close();
  }
}

function loadFailure(tried: { path: string; error: unknown }[], hint: string, cause: unknown): NativeError {
  const lines = tried.map(({ path, error }) =>
    `  - ${path}: ${error instanceof Error ? error.message : String(error)}`
  );
  const where = tried.length === 0 ? "  (no candidate path: set HYBRIDNET_NATIVE_PATH)" : lines.join("\n");
  return new NativeError(
    "LOAD_FAILED",
    "dlopen",
    `could not load libhybridnet; tried:\n${where}\n${hint}`,
    { cause },
  );
}

/**
 * Loads the library at `path` (a test hook, and the way to use a library outside the repo).
 * Throws NativeError `LOAD_FAILED` naming the path, `ABI_MISMATCH`, or a permission error as is.
 */
export function loadNativeFrom(path: string): NativeLibrary {
  try {
    return openChecked(path);
  } catch (error) {
    if (isPermissionError(error) || error instanceof NativeError) throw error;
    throw loadFailure(
      [{ path, error }],
      `build it with ${BUILD_HINT}, or point ${NATIVE_PATH_ENV} at it`,
      error,
    );
  }
}

function searchAndLoad(): NativeLibrary {
  const envPath = Deno.env.get(NATIVE_PATH_ENV);
  const tried: { path: string; error: unknown }[] = [];
  for (const path of candidatePaths(envPath)) {
    try {
      return openChecked(path);
    } catch (error) {
      if (isPermissionError(error) || error instanceof NativeError) throw error;
      tried.push({ path, error });
    }
  }
  const hint = envPath
    ? `${NATIVE_PATH_ENV} is set; fix it or unset it to use the build outputs (${BUILD_HINT})`
    : `build it with ${BUILD_HINT}, or set ${NATIVE_PATH_ENV}`;
  // The cause is the error of a file that exists but failed to load, if any, over "not found".
  const real = tried.find(({ error }) => !/no such file|cannot find|not found/i.test(String(error)));
  throw loadFailure(tried, hint, (real ?? tried.at(-1))?.error);
}

let cached: NativeLibrary | undefined;

/** The library, loaded and version-checked on first use (importing mod.ts does not load it). */
export function getNative(): NativeLibrary {
  cached ??= searchAndLoad();
  return cached;
}
