/**
 * The plugin registry: a plugin is found by name among the built-ins (`ts/plugins/builtins.ts`)
 * or by path to a user's `.ts` file that exports `plugin = { name, configSchema, create }`
 * (relative to the config's folder). Its options are validated with its own `configSchema`, so
 * a user plugin needs no change anywhere else.
 */
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import { BUILTIN_PLUGINS } from "../plugins/builtins.ts";
import { PluginError } from "./errors.ts";
import type { PluginContext, PluginModule, PluginStage } from "./types.ts";

export { PluginError, type PluginIssue } from "./errors.ts";
export type Stage = PluginStage;

/** A plugin section of a config: the plugin's name (or file path) plus its options. */
export interface PluginSection {
  name: string;
  [option: string]: unknown;
}

const builtinTable: Record<Stage, Record<string, PluginModule>> = BUILTIN_PLUGINS;

/** Names of the built-in plugins of a stage, sorted. */
export function builtinNames(stage: Stage): string[] {
  return Object.keys(builtinTable[stage] ?? {}).sort();
}

/** The built-in plugin modules of a stage. */
export function builtinModules(stage: Stage): PluginModule[] {
  return builtinNames(stage).map((n) => builtinTable[stage][n]);
}

/** True when a plugin name is a file path rather than a built-in name. */
export function isPluginPath(name: string): boolean {
  return /[\\/]/.test(name) || /\.(ts|js|mts|mjs)$/.test(name);
}

/** The absolute path of a plugin file named in a config whose relative paths resolve against `baseDir`. */
export function pluginPath(name: string, baseDir: string): string {
  return isAbsolute(name) ? name : resolve(baseDir, name);
}

const moduleCache = new Map<string, PluginModule>();

function isPluginModule(v: unknown): v is PluginModule {
  const p = v as PluginModule | undefined;
  return typeof p === "object" && p !== null && typeof p.name === "string" &&
    p.configSchema instanceof z.ZodObject && typeof p.create === "function";
}

/**
 * The plugin module for `name` in `stage`: a built-in, or the `plugin` export of the file at
 * `name` (resolved against `baseDir`). Throws PluginError saying what exists instead.
 */
export async function resolvePlugin(stage: Stage, name: string, baseDir: string): Promise<PluginModule> {
  if (!isPluginPath(name)) {
    const mod = builtinTable[stage]?.[name];
    if (mod === undefined) {
      throw new PluginError([{
        path: ["name"],
        message: `unknown ${stage} plugin "${name}"; built-ins: ${
          builtinNames(stage).join(", ")
        }, or a path to a .ts file exporting \`plugin\``,
      }]);
    }
    return mod;
  }
  const file = pluginPath(name, baseDir);
  const cached = moduleCache.get(file);
  if (cached) return cached;
  try {
    const st = await Deno.stat(file);
    if (!st.isFile) throw new Error("not a file");
  } catch {
    throw new PluginError([{ path: ["name"], message: `plugin file ${file} does not exist` }]);
  }
  let imported: Record<string, unknown>;
  try {
    imported = await import(pathToFileURL(file).href);
  } catch (err) {
    throw new PluginError([{
      path: ["name"],
      message: `plugin file ${file} failed to load: ${(err as Error).message}`,
    }], {
      cause: err,
    });
  }
  const mod = imported.plugin;
  if (!isPluginModule(mod)) {
    throw new PluginError([{
      path: ["name"],
      message:
        `plugin file ${file} must export \`plugin = { name, configSchema: z.object(...), create(cfg, ctx) }\``,
    }]);
  }
  moduleCache.set(file, mod);
  return mod;
}

/**
 * Validates a section's options (everything but `name`) with the plugin's schema. Returns the
 * parsed options (defaults filled) with `name` first; throws PluginError with section-relative paths.
 */
export function validateOptions(mod: PluginModule, section: PluginSection): PluginSection {
  const { name, ...options } = section;
  const parsed = mod.configSchema.safeParse(options);
  if (!parsed.success) {
    throw new PluginError(
      parsed.error.issues.map((i) => ({ path: i.path as (string | number)[], message: i.message })),
      {
        cause: parsed.error,
      },
    );
  }
  return { name, ...(parsed.data as Record<string, unknown>) };
}

/** Resolves, validates and creates the plugin of a section. */
export async function createPlugin<T>(
  stage: Stage,
  section: PluginSection,
  ctx: PluginContext,
): Promise<T> {
  const mod = await resolvePlugin(stage, section.name, ctx.configDir);
  const parsed = validateOptions(mod, section);
  const { name: _name, ...options } = parsed;
  return await mod.create(options as never, ctx) as T;
}

/**
 * Per stage, the JSON-Schema-able union of the built-ins' schemas (each extended with its
 * `name` literal) plus a user plugin path with free-form options (STYLE 16).
 */
export function sectionSchema(stage: Stage): z.ZodType {
  const userFile = z.object({
    name: z.string().regex(/\.(ts|js|mts|mjs)$/).describe("path to a plugin file exporting `plugin`"),
  }).catchall(z.unknown());
  const mods = builtinModules(stage);
  if (mods.length === 0) return userFile;
  const variants = mods.map((m) => m.configSchema.extend({ name: z.literal(m.name) }));
  return z.union([z.discriminatedUnion("name", variants as never), userFile]);
}
