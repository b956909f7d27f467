/**
 * The thin facade over the native model: validate options with zod, then build the handles.
 * Option errors are ZodErrors with their paths, as thrown by zod.
 */
import { Model } from "../native/model.ts";
import { Trainer } from "../native/trainer.ts";
import {
  type HybridNetOptionsInput,
  HybridNetOptionsSchema,
  toNativeModelConfig,
  toNativeTrainerConfig,
  type TrainerOptionsInput,
  TrainerOptionsSchema,
} from "./options.ts";

/** A new model with weights initialized from `options.seed`. */
export function createModel(options: HybridNetOptionsInput = {}): Model {
  return Model.create(toNativeModelConfig(HybridNetOptionsSchema.parse(options)));
}

/**
 * A model built from `options`, then strictly loaded from a safetensors checkpoint (every
 * tensor present, no extras, same shapes). The model is closed again if the load fails.
 */
export async function loadModel(checkpointPath: string, options: HybridNetOptionsInput = {}): Promise<Model> {
  const model = createModel(options);
  try {
    await model.load(checkpointPath);
    return model;
  } catch (err) {
    model.close();
    throw err;
  }
}

/** A trainer for `model`; closed by `model.close()` at the latest. */
export function createTrainer(model: Model, options: TrainerOptionsInput = {}): Trainer {
  return Trainer.create(model, toNativeTrainerConfig(TrainerOptionsSchema.parse(options)));
}
