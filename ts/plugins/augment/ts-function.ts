/**
 * Augmenter "ts-function": the slow path. `module` names a user .ts/.js file (relative to the
 * config file's folder) that exports
 * `transform(batch: Uint8Array, shape: [n, c, h, w], rng: Rng): void`, which edits the u8 NCHW
 * batch in place before the native ops (the same options as "standard") run.
 */
import { pathToFileURL } from "node:url";
import { z } from "zod";
import type { PluginModule, Rng } from "../../pipeline/types.ts";
import { resolveFrom } from "../load/common.ts";
import { createStandardAugmenter, nativeOpsShape, type StandardAugmenter } from "./standard.ts";

export const configSchema = z.object({
  /** path of the module exporting `transform` */
  module: z.string().min(1),
  ...nativeOpsShape,
}).strict();

export type TsFunctionAugmentConfig = z.infer<typeof configSchema>;

/** What the user module must export. */
export type TransformFn = (batch: Uint8Array, shape: [number, number, number, number], rng: Rng) => void;

export const plugin: PluginModule<typeof configSchema, StandardAugmenter> = {
  name: "ts-function",
  configSchema,
  async create(cfg, ctx): Promise<StandardAugmenter> {
    const path = resolveFrom(ctx.configDir, cfg.module);
    let mod: Record<string, unknown>;
    try {
      mod = await import(pathToFileURL(path).href);
    } catch (e) {
      throw new Error(`augment ts-function: cannot import ${path}: ${(e as Error).message}`);
    }
    const transform = mod.transform;
    if (typeof transform !== "function") {
      throw new Error(
        `augment ts-function: ${path} must export a function "transform(batch, shape, rng)"; ` +
          `it exports ${Object.keys(mod).join(", ") || "nothing"}`,
      );
    }
    const { module: _module, ...ops } = cfg;
    const aug = createStandardAugmenter(ops);
    const fn = transform as TransformFn;
    aug.transformU8 = (batch: Uint8Array, shape: [number, number, number, number], rng: Rng): void =>
      fn(batch, shape, rng);
    return aug;
  },
};
