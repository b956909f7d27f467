/**
 * The one place that decides where a session runs. This build trains on the CPU; `cuda` is
 * refused here, for every command, with what to change.
 */
import { ConfigError } from "./errors.ts";

/** A device a session can run on. */
export type Device = "cpu";

/** The device of a resolved config's `device` (auto was resolved when the config loaded). */
export function resolveDevice(device: "cpu" | "cuda", file = "config"): Device {
  if (device === "cuda") {
    throw new ConfigError(file, [{
      path: ["device"],
      message: 'is "cuda", but the native model API of this build trains on the CPU; set device: cpu or auto',
    }]);
  }
  return device;
}
