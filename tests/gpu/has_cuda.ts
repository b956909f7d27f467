/**
 * The gate of every CUDA test (`ignore: !hasCuda`): whether the loaded library can put a model on
 * a CUDA device (the driver lists one and libtorch's CUDA part is loaded), from `nativeInfo()`.
 */
import { nativeInfo } from "../../ts/mod.ts";

const usable = nativeInfo().cudaUsable;

/** Whether a CUDA device is usable in this process. */
export const hasCuda: boolean = usable.devices.length > 0;

/** The first usable CUDA device (`cuda:0` when there is none: the tests using it are ignored). */
export const cudaDevice = `cuda:${usable.devices[0] ?? 0}`;

/** Why CUDA is not usable here (null when it is). */
export const noCudaReason: string | null = usable.reason;
