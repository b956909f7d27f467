/**
 * HybridNet from TypeScript: the native model and trainer, their options, and library calls.
 * Importing this module does not load the native library; the first native call does.
 */
export { createModel, createTrainer, loadModel } from "./model/hybridnet.ts";
export { type KernelCalls, Model, type ModelDescription } from "./native/model.ts";
export { Trainer, type TrainerDescription, type TrainStepResult } from "./native/trainer.ts";
export {
  applyOps,
  Images,
  type ImagesBuildOptions,
  type ImageShape,
  type ImagesInfo,
  type SkippedImage,
  type U8BatchShape,
} from "./native/images.ts";
export { NativeError, type NativeErrorCode } from "./native/errors.ts";
export { type BatchShape } from "./native/handle.ts";
export { ABI_VERSION } from "./native/ffi.ts";
export {
  ffiOverhead,
  lossEval,
  manualSeed,
  type NativeInfo,
  nativeInfo,
  setNumThreads,
  setTf32,
} from "./native/library.ts";
export {
  type HybridNetOptions,
  type HybridNetOptionsInput,
  HybridNetOptionsSchema,
  type NativeLoss,
  type NativeLossInput,
  NativeLossSchema,
  type TrainerOptions,
  type TrainerOptionsInput,
  TrainerOptionsSchema,
} from "./model/options.ts";
