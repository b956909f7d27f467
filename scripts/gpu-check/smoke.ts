/**
 * Stage 1 of the GPU check (60 s): the library loads, the device is found, and one forward and
 * one train step (forward, focal loss, backward, Adam) run on it. Exit 3 means "loaded, but no
 * usable CUDA device", so the driver can retry with libtorch_cuda.so preloaded and say so.
 * Also records which libtorch files the process mapped (/proc/self/maps: what was really loaded).
 */
import { createModel, createTrainer, nativeInfo } from "../../ts/mod.ts";
import {
  cpuThreads,
  cudaApi,
  deviceArg,
  errorText,
  fragment,
  isCuda,
  onDevice,
  randomBatch,
} from "./common.ts";

const device = deviceArg();
cpuThreads(device);
const out = fragment();
out.add("## 1. Smoke", "");

/** Loaded shared objects of torch, CUDA and the project, from this process's memory map. */
function loadedLibraries(): string[] {
  const maps = Deno.readTextFileSync("/proc/self/maps");
  const paths = new Set<string>();
  for (const line of maps.split("\n")) {
    const p = line.slice(line.indexOf("/"));
    if (line.includes("/") && /lib(torch|c10|cudart|cudnn|cublas|nccl|cuda\.so|hybridnet|gomp)/.test(p)) {
      paths.add(p);
    }
  }
  return [...paths].sort();
}

/** `nativeInfo().torch`: a version string in older builds, `{ libDir, cudaBuild, cudaLoaded }` now. */
function describeTorch(torch: unknown): string {
  if (typeof torch !== "object" || torch === null) return JSON.stringify(torch);
  const t = torch as Record<string, unknown>;
  const rest = Object.entries(t).filter(([k]) => !["libDir", "cudaBuild", "cudaLoaded"].includes(k));
  return `from \`${t.libDir}\`, CUDA build ${t.cudaBuild}, CUDA part loaded ${t.cudaLoaded}` +
    (rest.length ? ` (${rest.map(([k, v]) => `${k} ${JSON.stringify(v)}`).join(", ")})` : "");
}

let info: Record<string, unknown>;
try {
  info = nativeInfo() as unknown as Record<string, unknown>;
} catch (e) {
  out.add("**FAILED: the library did not load.**", "", "```", errorText(e), "```");
  throw e;
}
const api = cudaApi();
out.add(
  `- device asked: \`${device}\``,
  `- library: \`${info.library_path}\` (ABI ${info.abi}), ${info.threads} threads; libtorch ${
    describeTorch(info.torch)
  }`,
  `- CUDA as the library sees it: devices ${JSON.stringify(info.cuda_devices)}, error ${
    JSON.stringify(info.cuda_error)
  }` + ("cudaUsable" in info ? `, cudaUsable ${JSON.stringify(info.cudaUsable)}` : ""),
  `- CUDA API in this build: createModel device option ${
    api.modelDevice ? "yes" : "**no**"
  }, trainer precision ${api.precision ? "yes" : "**no**"}, setTf32 ${api.setTf32 ? "yes" : "**no**"}`,
);

if (isCuda(device)) {
  const index = Number(device.slice(5));
  const usable = info.cudaUsable as { devices?: number[]; reason?: string | null } | undefined;
  const missing = !api.modelDevice
    ? "this build's createModel has no `device` option (ts/model/options.ts), so nothing can run on CUDA"
    : usable && !(usable.devices ?? []).includes(index)
    ? `nativeInfo().cudaUsable has no device ${index}: ${usable.reason ?? "no reason given"}`
    : null;
  if (missing !== null) {
    out.add("", `**FAILED: no usable CUDA device.** ${missing}`);
    console.error(missing);
    Deno.exit(api.modelDevice ? 3 : 1);
  }
}

try {
  const t0 = performance.now();
  using model = createModel({ numClasses: 8, seed: 0, ...onDevice(device) });
  const { x, y, shape } = randomBatch(4, 32, 1);
  const logits = await model.forward(x, shape);
  if (logits.length !== 32 || !logits.every(Number.isFinite)) {
    throw new Error(`forward gave ${logits.length} values, finite: ${logits.every(Number.isFinite)}`);
  }
  const trainer = createTrainer(model, { optimizer: { kind: "adam", lr: 1e-4 } });
  trainer.setLoss({ kind: "focal", gamma: 1 });
  const step = await trainer.trainStep(x, shape, y);
  if (!Number.isFinite(step.loss)) throw new Error(`train step loss is ${step.loss}`);
  const described = model.describe() as unknown as Record<string, unknown>;
  out.add(
    `- one forward (4×3×32×32 → 4×8, finite) and one train step (focal loss ${
      step.loss.toFixed(5)
    }) on \`${device}\` in ${((performance.now() - t0) / 1000).toFixed(1)} s; model.describe().device: ${
      JSON.stringify(described.device ?? "(not reported by this build)")
    }`,
  );
} catch (e) {
  out.add("", "**FAILED: forward/backward.**", "", "```", errorText(e), "```");
  throw e;
}
out.add("", "Loaded libraries (/proc/self/maps):", "", ...loadedLibraries().map((p) => `- \`${p}\``));
console.log("smoke ok");
