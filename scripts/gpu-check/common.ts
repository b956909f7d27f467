/**
 * What every stage of scripts/gpu-check.sh shares: its arguments, the markdown fragment it writes
 * (rewritten after each result, so a stage killed at its time limit still leaves what it measured),
 * and feature tests for the CUDA-side API, so a build that lacks part of it reports what is missing
 * instead of failing to import.
 */
import * as library from "../../ts/native/library.ts";
import { HybridNetOptionsSchema, TrainerOptionsSchema } from "../../ts/model/options.ts";

/** `--name value` pairs of a stage's command line. */
export function arg(name: string, def: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < Deno.args.length ? Deno.args[i + 1] : def;
}

/** The device under check: "cpu" or "cuda:N" ("cuda" means cuda:0). */
export function deviceArg(): string {
  const d = arg("device", "cuda:0");
  if (d === "cuda") return "cuda:0";
  if (d !== "cpu" && !/^cuda:\d+$/.test(d)) throw new Error(`--device must be cpu, cuda or cuda:N; got ${d}`);
  return d;
}

export const isCuda = (device: string): boolean => device.startsWith("cuda");

/**
 * libtorch's CPU threads for a `--device cpu` check: `--threads` (default 1), the same for the
 * PyTorch peer. One thread, because that check proves the pack on a small shared machine, where
 * two spinning OpenMP threads on two busy cores ran steps 50× slower.
 */
export function cpuThreads(device: string): number {
  const n = Number(arg("threads", "1"));
  if (!isCuda(device)) library.setNumThreads(n);
  return n;
}

/** A markdown fragment that is written whole after every change. */
export class Fragment {
  readonly #path: string;
  readonly #lines: string[] = [];
  constructor(path: string) {
    this.#path = path;
  }
  add(...lines: string[]): void {
    this.#lines.push(...lines);
    Deno.writeTextFileSync(this.#path, this.#lines.join("\n") + "\n");
  }
}

/** The fragment named by `--out` (the driver collects it into the report). */
export function fragment(): Fragment {
  const out = arg("out", "");
  if (out === "") throw new Error("--out <file.md> is required");
  return new Fragment(out);
}

/** The parts of the CUDA API this build has (item 2-4 of issue 12 may land after the pack). */
export interface CudaApi {
  /** `createModel` takes `device` (else zod would strip it and the model would stay on the CPU) */
  modelDevice: boolean;
  /** the trainer takes `precision: "fp32" | "bf16"` */
  precision: boolean;
  /** `setTf32(on)` is exported */
  setTf32: ((on: boolean) => void) | null;
}

export function cudaApi(): CudaApi {
  const lib = library as unknown as Record<string, unknown>;
  return {
    modelDevice: "device" in HybridNetOptionsSchema.shape,
    precision: "precision" in TrainerOptionsSchema.shape,
    setTf32: typeof lib.setTf32 === "function" ? lib.setTf32 as (on: boolean) => void : null,
  };
}

/** Model options placing the model on `device` (nothing for the CPU, so older builds work there). */
export function onDevice(device: string): { device?: string } {
  return device === "cpu" ? {} : { device };
}

/** A reproducible batch in [-1, 1) with labels in [0, classes). */
export function randomBatch(
  n: number,
  size: number,
  seed: number,
  classes = 8,
): { x: Float32Array; y: Int32Array; shape: [number, number, number, number] } {
  let s = seed >>> 0;
  const rnd = (): number => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  const x = new Float32Array(n * 3 * size * size);
  for (let i = 0; i < x.length; i++) x[i] = rnd() * 2 - 1;
  const y = Int32Array.from({ length: n }, () => Math.floor(rnd() * classes));
  return { x, y, shape: [n, 3, size, size] };
}

export function median(xs: number[]): number {
  const v = [...xs].sort((a, b) => a - b);
  return v[Math.floor((v.length - 1) / 2)];
}

export function errorText(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const cause = e.cause instanceof Error ? `\ncaused by: ${e.cause.message}` : "";
  return `${e.name}: ${e.message}${cause}`;
}
