/**
 * `deno task info`: which libtorch the library uses, from where and why (the view the build made:
 * native/.libtorch/READY, see scripts/lib/libtorch.ts), the NVIDIA driver and CUDA devices,
 * whether libtorch's CUDA part is usable (and if not, why), what `device: auto` picks, threads,
 * oneDNN, the library and its ABI.
 */
import { nativeInfo } from "../ts/mod.ts";
import { chooseView, hasNvidiaDriver, type Libtorch, VIEW } from "./lib/libtorch.ts";

/** What the library says about its libtorch once it reports it (feature-detected: older builds give a version string). */
interface TorchFacts {
  libDir: string;
  cudaBuild: boolean;
  cudaLoaded: boolean;
}

/** The facts `infoRows` describes. */
export interface InfoFacts {
  native: Omit<ReturnType<typeof nativeInfo>, "torch"> & {
    torch: string | TorchFacts;
    torchVersion?: string;
    cudaUsable?: { devices: number[]; reason: string | null };
  };
  /** native/.libtorch/READY; null when the view was never made */
  ready: Libtorch | null;
  /** the folder the view's libraries come from (where its include/ link points) */
  sourceLib: string | null;
  /** first line of /proc/driver/nvidia/version; null without a driver */
  driver: string | null;
}

/** The `label value` rows of `deno task info` (pure: tested on the real facts of this machine). */
export function infoRows(f: InfoFacts): [string, string][] {
  const torch = typeof f.native.torch === "object" ? f.native.torch : null;
  // the folder the view was made from: the loaded folder of a CPU-only view has no CUDA library
  const cudaBuild = f.sourceLib !== null
    ? exists(`${f.sourceLib}/libtorch_cuda.so`)
    : torch?.cudaBuild ?? false;
  const cpuView = f.ready?.cpuView ?? false;
  const kind = cpuView
    ? "CPU-only view of a CUDA build (copies without their CUDA entries)"
    : cudaBuild
    ? "CUDA build (the real libtorch)"
    : "CPU build";
  const why = f.ready?.why ?? chooseView({ driver: f.driver !== null, cudaBuild, cudaFlag: false }).why;
  const version = f.ready?.version ?? f.native.torchVersion ??
    (typeof f.native.torch === "string" ? f.native.torch : "unknown");
  const usable = cudaUsable(f, cpuView, cudaBuild);
  const devices = f.native.cuda_devices;
  return [
    ["libtorch", `${f.ready?.view ?? torch?.libDir ?? "unknown"} (torch ${version})`],
    ["  kind", kind],
    ...(torch
      ? [["  loaded", `${torch.libDir} (libtorch_cuda ${torch.cudaLoaded ? "loaded" : "not loaded"})`]] as [
        string,
        string,
      ][]
      : []),
    ["  from", `${f.sourceLib ?? torch?.libDir ?? "unknown"}, found via ${f.ready?.source ?? "unknown"}`],
    ["  why", why],
    ["NVIDIA driver", f.driver ?? "none (/proc/driver/nvidia/version is missing)"],
    [
      "CUDA devices",
      devices.length
        ? devices.map((d) => JSON.stringify(d)).join(", ")
        : `none${f.native.cuda_error ? ` (${f.native.cuda_error})` : ""}`,
    ],
    [
      "libtorch CUDA",
      usable.devices.length
        ? `usable: ${usable.devices.map((d) => `cuda:${d}`).join(", ")}`
        : `not usable: ${usable.reason}`,
    ],
    ["device auto", usable.devices.length ? `cuda:${usable.devices[0]}` : "cpu"],
    ["threads", String(f.native.threads)],
    ["oneDNN", String(f.native.mkldnn)],
    ["library", String(f.native.library_path)],
    ["ABI version", String(f.native.abi)],
  ];
}

/** The library's own answer when it gives one, else what the view implies. */
function cudaUsable(
  f: InfoFacts,
  cpuView: boolean,
  cudaBuild: boolean,
): { devices: number[]; reason: string } {
  const u = f.native.cudaUsable;
  if (u) return { devices: u.devices, reason: u.reason ?? "no CUDA device" };
  const reason = cpuView
    ? "this build links the CPU-only view; on a machine with an NVIDIA driver run `deno task setup --cuda`"
    : !cudaBuild
    ? "libtorch is a CPU build"
    : f.driver === null
    ? "no NVIDIA driver"
    : "this library build does not report CUDA use (rebuild with `deno task build:native`)";
  return { devices: [], reason };
}

function exists(p: string): boolean {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
}

/** The facts of this machine and the loaded library. */
export function gatherFacts(): InfoFacts {
  let ready: Libtorch | null = null;
  try {
    ready = JSON.parse(Deno.readTextFileSync(`${VIEW}/READY`));
  } catch { /* no view yet */ }
  let sourceLib: string | null = null;
  try {
    sourceLib = Deno.realPathSync(`${VIEW}/include`).replace(/\/include$/, "/lib");
  } catch { /* no view yet */ }
  let driver: string | null = null;
  if (hasNvidiaDriver()) {
    driver = Deno.readTextFileSync("/proc/driver/nvidia/version").split("\n")[0].trim();
  }
  // through unknown: the library's report grows (torch facts, cudaUsable) ahead of NativeInfo
  return { native: nativeInfo() as unknown as InfoFacts["native"], ready, sourceLib, driver };
}

if (import.meta.main) {
  for (const [k, v] of infoRows(gatherFacts())) console.log(`${k.padEnd(14)} ${v}`);
}
