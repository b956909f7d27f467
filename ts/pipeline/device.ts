/**
 * The one place that decides where a session runs: the config's `device` (`auto`, `cpu`, `cuda`
 * or `cuda:N`) against the CUDA devices the loaded library can use (`nativeInfo().cudaUsable`:
 * devices the driver lists, with libtorch's CUDA part loaded). `auto` takes the first usable
 * CUDA device, else the CPU; `cuda` without one is a ConfigError saying what is missing.
 */
import { nativeInfo } from "../native/library.ts";
import { DEVICE_PATTERN } from "./config.ts";
import { ConfigError } from "./errors.ts";

/** A device a session can run on: the CPU or one CUDA device. */
export type Device = "cpu" | `cuda:${number}`;

/** What the library reports about CUDA: the usable ordinals, or why there are none. */
export interface CudaAvailability {
  devices: number[];
  reason: string | null;
}

let cached: CudaAvailability | undefined;

/** The library's usable CUDA devices (read once per process: loading CUDA is process-wide). */
export function cudaAvailability(): CudaAvailability {
  cached ??= nativeInfo().cudaUsable;
  return cached;
}

/** Whether the device is a CUDA one. */
export function isCuda(device: Device): boolean {
  return device !== "cpu";
}

/**
 * The session's device for a config's `device` value. `cuda` is the first usable device and
 * `cuda:N` must be usable; otherwise a ConfigError on `device` names what is missing (the
 * driver, a CUDA build of torch, or the device).
 */
export function resolveDevice(device: string, file = "config", cuda?: CudaAvailability): Device {
  if (device === "cpu") return "cpu";
  const { devices, reason } = cuda ?? cudaAvailability();
  if (device === "auto") return devices.length > 0 ? `cuda:${devices[0]}` : "cpu";
  const fail = (why: string): never => {
    throw new ConfigError(file, [{
      path: ["device"],
      message: `is "${device}", but ${why}; set device: cpu or auto`,
    }]);
  };
  if (!DEVICE_PATTERN.test(device)) return fail("it must be one of auto, cpu, cuda, cuda:N");
  if (devices.length === 0) return fail(`CUDA is not usable here: ${reason ?? "no usable CUDA device"}`);
  const n = device === "cuda" ? devices[0] : Number(device.slice("cuda:".length));
  if (!devices.includes(n)) {
    return fail(
      `this machine has ${devices.length} usable CUDA device(s): ${
        devices.map((d) => `cuda:${d}`).join(", ")
      }`,
    );
  }
  return `cuda:${n}`;
}
