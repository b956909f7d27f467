/**
 * `device.ts`: how a config's `device` resolves against the CUDA devices the library can use.
 * Table rows give the availability explicitly (the decision is a pure function of it); the last
 * tests ask the real library.
 */
import assert from "node:assert/strict";
import { type CudaAvailability, resolveDevice } from "../../ts/pipeline/device.ts";
import { ConfigError } from "../../ts/pipeline/errors.ts";
import { createModel, NativeError, nativeInfo } from "../../ts/mod.ts";
import { hasCuda } from "../gpu/has_cuda.ts";

const NONE: CudaAvailability = {
  devices: [],
  reason: "no usable NVIDIA driver: CUDA driver library (libcuda) not found",
};
const TWO: CudaAvailability = { devices: [0, 1], reason: null };

Deno.test("device: resolution table", () => {
  const rows: [string, CudaAvailability, string | RegExp, string][] = [
    ["cpu", TWO, "cpu", "cpu is always the CPU"],
    ["auto", NONE, "cpu", "auto falls back to the CPU"],
    ["auto", TWO, "cuda:0", "auto takes the first usable device"],
    ["auto", { devices: [1], reason: null }, "cuda:1", "the first usable, not cuda:0"],
    ["cuda", TWO, "cuda:0", "bare cuda is the first usable device"],
    ["cuda:1", TWO, "cuda:1", "an explicit usable device"],
    [
      "cuda",
      NONE,
      /is "cuda", but CUDA is not usable here: no usable NVIDIA driver/,
      "names the missing driver",
    ],
    ["cuda:0", NONE, /CUDA is not usable here: no usable NVIDIA driver/, "same for cuda:N"],
    [
      "cuda:2",
      TWO,
      /is "cuda:2", but this machine has 2 usable CUDA device\(s\): cuda:0, cuda:1/,
      "out of range",
    ],
    ["gpu", TWO, /it must be one of auto, cpu, cuda, cuda:N/, "unknown value"],
  ];
  for (const [value, cuda, want, why] of rows) {
    if (typeof want === "string") {
      assert.equal(resolveDevice(value, "c.yaml", cuda), want, why);
    } else {
      assert.throws(
        () => resolveDevice(value, "c.yaml", cuda),
        (e) => e instanceof ConfigError && want.test(e.message) && /device — /.test(e.message),
        why,
      );
    }
  }
});

Deno.test({
  name: "device: here, without a usable GPU, auto is the CPU and cuda names what is missing",
  ignore: hasCuda,
}, () => {
  const { cudaUsable, torch } = nativeInfo();
  assert.deepEqual(cudaUsable.devices, []);
  assert.ok(cudaUsable.reason !== null && cudaUsable.reason.length > 0);
  assert.match(cudaUsable.reason, /NVIDIA driver|CPU-only build|dlopen|out of range/);
  assert.equal(torch.cudaLoaded, false);
  assert.equal(resolveDevice("auto"), "cpu");
  assert.throws(
    () => resolveDevice("cuda"),
    (e) => e instanceof ConfigError && e.message.includes(cudaUsable.reason!),
  );
  // The native layer refuses a CUDA model itself, with the same reason.
  assert.throws(
    () => createModel({ numClasses: 2, device: "cuda:0" }),
    (e) => e instanceof NativeError && e.code === "CUDA" && e.message.includes(cudaUsable.reason!),
  );
});

Deno.test("device: nativeInfo names the loaded libtorch folder", () => {
  const { torch } = nativeInfo();
  assert.ok(torch.libDir.length > 0, "libDir is empty");
  assert.ok(Deno.statSync(`${torch.libDir}/libtorch_cpu.so`).isFile);
  assert.equal(
    torch.cudaBuild,
    (() => {
      try {
        return Deno.statSync(`${torch.libDir}/libtorch_cuda.so`).isFile;
      } catch {
        return false;
      }
    })(),
  );
});
