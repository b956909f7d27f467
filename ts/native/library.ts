/**
 * Library-wide calls: build info, thread count, global seed, and the stateless native loss.
 */
import { lossClassIssue, type NativeLossInput, NativeLossSchema, toNativeLossConfig } from "./config.ts";
import { NativeError } from "./errors.ts";
import { getNative } from "./ffi.ts";
import { check } from "./status.ts";
import { encodeJson, readOutString } from "./strings.ts";

/** The libtorch the process runs on. */
export interface TorchLibInfo {
  /** folder of the loaded libtorch_cpu.so ("" if the loader could not tell) */
  libDir: string;
  /** whether that folder holds libtorch_cuda.so (a CUDA build of torch) */
  cudaBuild: boolean;
  /** whether libtorch's CUDA part is loaded (a driver lists a device and the build has CUDA) */
  cudaLoaded: boolean;
}

/** Build and runtime facts of the loaded library (`hn_info_json`, docs/ABI.md). */
export interface NativeInfo {
  abi: number;
  /** torch release the library was built against, e.g. "2.11.0" */
  torchVersion: string;
  threads: number;
  mkldnn: boolean;
  /** devices the CUDA driver lists (none without a driver) */
  cuda_devices: unknown[];
  /** why the driver lists none */
  cuda_error: string | null;
  library_path: string;
  torch: TorchLibInfo;
  /** the `cuda:N` ordinals a model can use, or why there are none */
  cudaUsable: { devices: number[]; reason: string | null };
}

interface InfoJson {
  abi: number;
  torch: string;
  threads: number;
  mkldnn: boolean;
  cuda_devices: unknown[];
  cuda_error: string | null;
  library_path: string;
  torch_lib: { lib_dir: string | null; cuda_build: boolean; cuda_loaded: boolean };
  cuda_usable: { devices: number[]; reason: string | null };
}

/** Build and runtime facts of the loaded library (parsed `hn_info_json`). */
export function nativeInfo(): NativeInfo {
  const { hn_info_json } = getNative().symbols;
  const raw: InfoJson = JSON.parse(
    readOutString("hn_info_json", (buf, cap, outLen) => hn_info_json(buf, cap, outLen), check),
  );
  const { torch, torch_lib: lib, cuda_usable: usable, ...rest } = raw;
  return {
    ...rest,
    torchVersion: torch,
    torch: { libDir: lib.lib_dir ?? "", cudaBuild: lib.cuda_build, cudaLoaded: lib.cuda_loaded },
    cudaUsable: { devices: usable.devices, reason: usable.reason },
  };
}

/**
 * TF32 in CUDA matmuls and convolutions, process-wide (PyTorch's `allow_tf32` switches for cuBLAS
 * and cuDNN). Off by default; no effect on the CPU.
 */
export function setTf32(on: boolean): void {
  check(getNative().symbols.hn_set_tf32(on ? 1 : 0), "hn_set_tf32");
}

/** Sets libtorch's intra-op thread count. */
export function setNumThreads(n: number): void {
  if (!Number.isSafeInteger(n) || n < 1 || n > 2 ** 31 - 1) {
    throw new NativeError(
      "INVALID_ARG",
      "hn_set_num_threads",
      `thread count must be a positive integer; got ${n}`,
    );
  }
  check(getNative().symbols.hn_set_num_threads(n), "hn_set_num_threads");
}

/** Seeds libtorch's global RNG. */
export function manualSeed(seed: number | bigint): void {
  if (typeof seed === "number" && !(Number.isSafeInteger(seed) && seed >= 0)) {
    throw new NativeError(
      "INVALID_ARG",
      "hn_manual_seed",
      `seed must be a non-negative integer; got ${seed}`,
    );
  }
  check(getNative().symbols.hn_manual_seed(BigInt(seed)), "hn_manual_seed");
}

/**
 * Native mean loss over the batch and dL/dlogits of `logits` `[n, c]` (row-major) against
 * `targets` `[n]`, in the argument order of `hn_loss_eval`. For the TS/native twin tests.
 */
export function lossEval(
  loss: NativeLossInput,
  logits: Float32Array,
  n: number,
  c: number,
  targets: Int32Array,
): { loss: number; grad: Float32Array } {
  const op = "hn_loss_eval";
  const config = toNativeLossConfig(NativeLossSchema.parse(loss));
  const issue = !(Number.isSafeInteger(n) && n > 0 && Number.isSafeInteger(c) && c > 0)
    ? `n and c must be positive integers; got n=${n}, c=${c}`
    : logits.length !== n * c
    ? `logits has ${logits.length} values; [n, c] = [${n}, ${c}] needs ${n * c}`
    : targets.length !== n
    ? `targets has ${targets.length} values; n = ${n}`
    : lossClassIssue(config, c);
  if (issue !== null) throw new NativeError("INVALID_ARG", op, issue);
  const cfg = encodeJson(config);
  const out = new Float64Array(1);
  const grad = new Float32Array(n * c);
  check(
    getNative().symbols.hn_loss_eval(
      cfg,
      BigInt(cfg.length),
      logits as Float32Array<ArrayBuffer>,
      BigInt(n),
      BigInt(c),
      targets as Int32Array<ArrayBuffer>,
      out,
      grad,
    ),
    op,
  );
  return { loss: out[0], grad };
}

/**
 * How many native handles (models, trainers, image sets) this process has made and not yet closed
 * (`hn_live_handles`): 0 once every wrapper is closed. For leak checks (tests, the soak benchmark).
 */
export function liveHandles(): number {
  return Number(getNative().symbols.hn_live_handles());
}

/** Mean cost of one FFI call through the guard, synchronous and nonblocking (benchmark only). */
export async function ffiOverhead(calls: number): Promise<{ syncUs: number; asyncUs: number }> {
  const { hn_noop, hn_noop_async } = getNative().symbols;
  for (let i = 0; i < 1000; i++) hn_noop();
  let t0 = performance.now();
  for (let i = 0; i < calls; i++) hn_noop();
  const syncUs = ((performance.now() - t0) * 1000) / calls;
  const asyncCalls = Math.max(1, Math.floor(calls / 10));
  t0 = performance.now();
  for (let i = 0; i < asyncCalls; i++) await hn_noop_async();
  const asyncUs = ((performance.now() - t0) * 1000) / asyncCalls;
  return { syncUs, asyncUs };
}
