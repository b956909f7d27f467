/**
 * Run configuration, validated in three layers (STYLE 17):
 *
 * 1. `RawConfigSchema` — what a user writes (YAML): `.strict()`, defaults from the `DEFAULT_*`
 *    constants below. Plugin sections are `{ name, ...options }`.
 * 2. resolve — absolute paths (`baseDir`, `data.cacheDir`, plugin files), a concrete seed and
 *    device, `imageSize` as `[h, w]`, and every plugin section parsed by the plugin's own
 *    `configSchema` (defaults filled). The result is parsed again by `ResolvedConfigSchema`.
 * 3. refine — cross-field checks (`refineConfig`) whose messages say what to change. It runs
 *    at load time, and again once the dataset tells the number of classes.
 *
 * Every problem is a `ConfigIssue` with a dotted path; `ConfigError.format()` prints them as
 * `configs/x.yaml: train.optimizer.lr — Too small: expected number to be >0`.
 */
import { dirname, isAbsolute, resolve } from "node:path";
import YAML from "yaml";
import { z } from "zod";
import {
  checkOptimizer,
  DEFAULT_DROPOUT_RATE,
  DEFAULT_INPUT_CHANNELS,
  DEFAULT_LR,
  EmaOptionsSchema,
  KernelOptionsSchema,
  OptimizerFieldsSchema,
} from "../model/options.ts";
import { ConfigError, type ConfigIssue, displayFile, PluginError } from "./errors.ts";
import { DEFAULT_BEST_METRIC, METRIC_PATH } from "./metric-path.ts";
import {
  isPluginPath,
  pluginPath,
  type PluginSection,
  resolvePlugin,
  sectionSchema,
  validateOptions,
} from "./registry.ts";
import { ScheduleSchema } from "./schedules.ts";
import type { PluginStage } from "./types.ts";

export { ConfigError, type ConfigIssue, formatIssues } from "./errors.ts";

// ---- defaults ---------------------------------------------------------------------------------

export const DEFAULT_NAME = "run";
export const DEFAULT_SEED = 0;
export const DEFAULT_DEVICE = "auto";
/** The values `device` takes: auto, cpu, cuda (the first usable device) or cuda:N. */
export const DEVICE_PATTERN = /^(auto|cpu|cuda|cuda:\d+)$/;
export const DEFAULT_IMAGE_SIZE = 128;
/** relative to the working directory (the project root when run through `deno task`) */
export const DEFAULT_CACHE_DIR = ".cache/images";
export const DEFAULT_ON_BAD_IMAGE = "error";
export const DEFAULT_FPN = "skip";
export const DEFAULT_AUGMENT = { name: "standard" };
export const DEFAULT_SAMPLER = { name: "shuffle" };
export const DEFAULT_LOSS = { name: "cross-entropy" };
export const DEFAULT_STAGE = { name: "none" };
export const DEFAULT_EVALUATE = { name: "classification" };
export const DEFAULT_EPOCHS = 10;
export const DEFAULT_BATCH_SIZE = 128;
export const DEFAULT_EVAL_EVERY = 1;

/** Where each stage's plugin section lives in the config (typed over every stage, so none is missed). */
export const PLUGIN_SECTION_PATHS: Record<PluginStage, string[]> = {
  load: ["data", "loader"],
  augment: ["augment"],
  sample: ["sampler"],
  loss: ["loss"],
  stage: ["stage"],
  evaluate: ["evaluate"],
};
const PLUGIN_SECTIONS = Object.entries(PLUGIN_SECTION_PATHS).map(([stage, path]) => ({
  stage: stage as PluginStage,
  path,
}));

// ---- layer 1: raw -----------------------------------------------------------------------------

const Section = z.object({ name: z.string().min(1) }).catchall(z.unknown());

const ImageSize = z.union([
  z.number().int().min(8),
  z.tuple([z.number().int().min(8), z.number().int().min(8)]),
]);

const EarlyStoppingSchema = z.object({
  metric: z.string().min(1).default(DEFAULT_BEST_METRIC),
  patience: z.number().int().min(1).default(10),
  minDelta: z.number().min(0).default(0),
  mode: z.enum(["max", "min"]).default("max"),
}).strict();

const TrainSchema = z.object({
  epochs: z.number().int().min(1).default(DEFAULT_EPOCHS),
  batchSize: z.number().int().min(1).default(DEFAULT_BATCH_SIZE),
  /** lr: a number, or "auto": an LR range test (lr:find) on the training data picks it before the run */
  optimizer: OptimizerFieldsSchema.extend({
    lr: z.union([z.number().positive(), z.literal("auto")]).default(DEFAULT_LR),
  }).strict().superRefine(checkOptimizer).prefault({}),
  clipGradNorm: z.number().positive().nullable().default(null),
  /** moving average of the weights, used for validation and best.safetensors; null: off */
  ema: EmaOptionsSchema.nullable().default(null),
  /** learning-rate schedule over the run, applied every step (see ts/pipeline/schedules.ts) */
  schedule: ScheduleSchema.default({ name: "constant" }),
  /** auto: a loss with a native twin trains in one native call per step; never: always via TS */
  nativeLoss: z.enum(["auto", "never"]).default("auto"),
  evalEvery: z.number().int().min(1).default(DEFAULT_EVAL_EVERY),
  earlyStopping: EarlyStoppingSchema.nullable().default(null),
  bestMetric: z.string().min(1).default(DEFAULT_BEST_METRIC),
  /**
   * arithmetic of the train-mode forward and loss: fp32, or bf16 autocast on the session's device
   * (weights, optimizer state and checkpoints stay float32)
   */
  precision: z.enum(["fp32", "bf16"]).default("fp32"),
  /** libtorch intra-op threads; null: libtorch's default */
  threads: z.number().int().min(1).nullable().default(null),
  /**
   * read the loss back every this many steps (progress, divergence checks, TensorBoard); the
   * other steps never wait for the device. null: 1 on the CPU, 50 on CUDA (session.ts)
   */
  logEverySteps: z.number().int().min(1).nullable().default(null),
  /** caps the steps of an epoch (tests, smoke runs); null: the whole epoch */
  maxStepsPerEpoch: z.number().int().min(1).nullable().default(null),
  /** also write the resumable `last` checkpoint every this many steps within an epoch; null: at epoch ends only */
  checkpointEverySteps: z.number().int().min(1).nullable().default(null),
}).strict();

export const RawConfigSchema = z.object({
  name: z.string().regex(/^[A-Za-z0-9._-]+$/, "use letters, digits, '.', '_' and '-' only").default(
    DEFAULT_NAME,
  ),
  /** null: a random seed, written to the run's config.yaml */
  seed: z.number().int().min(0).max(2 ** 32 - 1).nullable().default(DEFAULT_SEED),
  /** auto: the first usable CUDA device, else the CPU; cuda: the first usable CUDA device (device.ts) */
  device: z.string().regex(DEVICE_PATTERN, "use auto, cpu, cuda or cuda:N (N = 0, 1, ...)").default(
    DEFAULT_DEVICE,
  ),
  /** folder that relative paths in plugin options resolve against; default: the config file's folder */
  baseDir: z.string().min(1).optional(),
  data: z.object({
    loader: Section,
    imageSize: ImageSize.default(DEFAULT_IMAGE_SIZE),
    /** 1 (grey) or 3 (RGB): what the native image path decodes to */
    channels: z.union([z.literal(1), z.literal(3)]).default(DEFAULT_INPUT_CHANNELS),
    cacheDir: z.string().min(1).default(DEFAULT_CACHE_DIR),
    onBadImage: z.enum(["error", "skip"]).default(DEFAULT_ON_BAD_IMAGE),
    /** largest width × height of an image file, read from its header; a file over it is a bad image (10^8 = DEFAULT_MAX_PIXELS of ts/native/images.ts) */
    maxPixels: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).default(100_000_000),
  }).strict(),
  model: z.object({
    numClasses: z.union([z.literal("auto"), z.number().int().min(2)]).default("auto"),
    dropoutRate: z.number().min(0).lt(1).default(DEFAULT_DROPOUT_RATE),
    fpn: z.enum(["skip", "seed"]).default(DEFAULT_FPN),
    /** kernel choices (fused GroupNorm, conv rewrites, channels-last), fixed when the model is built */
    kernels: KernelOptionsSchema.prefault({}),
  }).strict().prefault({}),
  augment: Section.default(DEFAULT_AUGMENT),
  sampler: Section.default(DEFAULT_SAMPLER),
  loss: Section.default(DEFAULT_LOSS),
  stage: Section.default(DEFAULT_STAGE),
  evaluate: Section.default(DEFAULT_EVALUATE),
  train: TrainSchema.prefault({}),
}).strict();

export type RawConfig = z.infer<typeof RawConfigSchema>;
export type RawConfigInput = z.input<typeof RawConfigSchema>;

// ---- layer 2: resolved ------------------------------------------------------------------------

export const ResolvedConfigSchema = RawConfigSchema.extend({
  seed: z.number().int().min(0).max(2 ** 32 - 1),
  device: z.string().regex(DEVICE_PATTERN),
  baseDir: z.string().refine(isAbsolute, "must be an absolute path"),
  data: RawConfigSchema.shape.data.extend({
    imageSize: z.tuple([z.number().int().min(8), z.number().int().min(8)]),
    cacheDir: z.string().refine(isAbsolute, "must be an absolute path"),
  }).strict(),
}).strict();

export type ResolvedConfig = z.infer<typeof ResolvedConfigSchema>;

// ---- errors -----------------------------------------------------------------------------------

function zodIssues(err: z.ZodError, prefix: (string | number)[] = []): ConfigIssue[] {
  return err.issues.map((i) => ({
    path: [...prefix, ...(i.path as (string | number)[])],
    message: i.message,
  }));
}

// ---- overrides --------------------------------------------------------------------------------

/** Applies `a.b.c=value` overrides (value parsed as a YAML scalar or flow collection) in place. */
export function applyOverrides(raw: Record<string, unknown>, overrides: string[], file: string): void {
  for (const o of overrides) {
    const eq = o.indexOf("=");
    if (eq <= 0) {
      throw new ConfigError(file, [{ path: [], message: `--set ${o}: expected key.path=value` }]);
    }
    const keys = o.slice(0, eq).trim().split(".");
    let value: unknown;
    try {
      value = YAML.parse(o.slice(eq + 1));
    } catch (err) {
      throw new ConfigError(file, [{
        path: keys,
        message: `--set value is not valid YAML: ${(err as Error).message}`,
      }]);
    }
    let node: Record<string, unknown> = raw;
    for (let k = 0; k < keys.length - 1; k++) {
      const next = node[keys[k]];
      if (typeof next !== "object" || next === null || Array.isArray(next)) node[keys[k]] = {};
      node = node[keys[k]] as Record<string, unknown>;
    }
    node[keys[keys.length - 1]] = value ?? null;
  }
}

// ---- loading ----------------------------------------------------------------------------------

/** Parses YAML text; a syntax error becomes a ConfigError naming `file:line`. */
export function parseYaml(text: string, file: string): Record<string, unknown> {
  const doc = YAML.parseDocument(text, { prettyErrors: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const offset = e.pos?.[0] ?? 0;
    const before = text.slice(0, offset).split("\n");
    const where = `${displayFile(file)}:${before.length}:${before[before.length - 1].length + 1}`;
    throw new ConfigError(where, [{ path: [], message: `YAML syntax error: ${e.message.split("\n")[0]}` }]);
  }
  const value = doc.toJS() ?? {};
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new ConfigError(file, [{
      path: [],
      message: "the config must be a YAML mapping (key: value lines)",
    }]);
  }
  return value as Record<string, unknown>;
}

/** Options of the resolve layer. */
export interface ResolveOptions {
  /** the file the config came from, for messages and relative paths */
  file: string;
}

function getAt(obj: Record<string, unknown>, path: string[]): unknown {
  let node: unknown = obj;
  for (const k of path) node = (node as Record<string, unknown>)?.[k];
  return node;
}

function setAt(obj: Record<string, unknown>, path: string[], value: unknown): void {
  let node = obj;
  for (const k of path.slice(0, -1)) node = node[k] as Record<string, unknown>;
  node[path[path.length - 1]] = value;
}

/** Layers 1 and 2: raw object → ResolvedConfig, then the load-time refine layer. Async for user plugin imports. */
export async function resolveConfig(raw: unknown, opts: ResolveOptions): Promise<ResolvedConfig> {
  const { file } = opts;
  const parsed = RawConfigSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(file, zodIssues(parsed.error), { cause: parsed.error });
  const c = parsed.data;
  const configDir = dirname(resolve(file));
  const baseDir = c.baseDir === undefined ? configDir : resolve(configDir, c.baseDir);
  const size = c.data.imageSize;
  const resolved: Record<string, unknown> = {
    ...c,
    seed: c.seed ?? Math.floor(Math.random() * 2 ** 32),
    // auto and cuda stay as written: the session resolves them against the library (device.ts)
    device: c.device,
    baseDir,
    data: {
      ...c.data,
      imageSize: typeof size === "number" ? [size, size] : size,
      cacheDir: resolve(Deno.cwd(), c.data.cacheDir),
    },
  };
  const issues: ConfigIssue[] = [];
  for (const { path, stage } of PLUGIN_SECTIONS) {
    const section = getAt(resolved, path) as PluginSection;
    const name = isPluginPath(section.name) ? pluginPath(section.name, baseDir) : section.name;
    try {
      const mod = await resolvePlugin(stage, name, baseDir);
      setAt(resolved, path, validateOptions(mod, { ...section, name }));
    } catch (err) {
      if (!(err instanceof PluginError)) throw err;
      for (const i of err.issues) issues.push({ path: [...path, ...i.path], message: i.message });
    }
  }
  if (issues.length > 0) throw new ConfigError(file, issues);
  const again = ResolvedConfigSchema.safeParse(resolved);
  if (!again.success) throw new ConfigError(file, zodIssues(again.error), { cause: again.error });
  const refined = await refineIssues(again.data, null);
  if (refined.length > 0) throw new ConfigError(file, refined);
  return again.data;
}

/** Loads a YAML config file, applies `a.b=v` overrides, and resolves it. */
export async function loadConfig(
  file: string,
  overrides: string[] = [],
  opts: Omit<ResolveOptions, "file"> = {},
): Promise<ResolvedConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (err) {
    throw new ConfigError(file, [{
      path: [],
      message: `cannot read the config file: ${(err as Error).message}`,
    }], {
      cause: err,
    });
  }
  const raw = parseYaml(text, file);
  applyOverrides(raw, overrides, file);
  return await resolveConfig(raw, { ...opts, file });
}

/** The resolved config as YAML (what a run writes to config.yaml; loads back to the same config). */
export function configToYaml(config: ResolvedConfig): string {
  return YAML.stringify(config, { lineWidth: 0 });
}

// ---- layer 3: refine --------------------------------------------------------------------------

/** Something a stage plugin may offer to check its classes against the dataset. */
interface ValidatingStage {
  setNumClasses?(n: number): void;
  validate?(numClasses: number): string[];
}

/**
 * Cross-field checks. `numClasses` is the dataset's class count once known (null: only what
 * the config itself says). Messages say what to change.
 */
export async function refineIssues(c: ResolvedConfig, numClasses: number | null): Promise<ConfigIssue[]> {
  const schema = ResolvedConfigSchema.superRefine((cfg, ctx) => {
    const add = (path: (string | number)[], message: string): void => {
      ctx.addIssue({ code: "custom", path, message });
    };
    if (cfg.train.evalEvery > cfg.train.epochs) {
      add(
        ["train", "evalEvery"],
        `is ${cfg.train.evalEvery} but train.epochs is ${cfg.train.epochs}; lower evalEvery`,
      );
    }
    if (!METRIC_PATH.test(cfg.train.bestMetric)) {
      add(
        ["train", "bestMetric"],
        `"${cfg.train.bestMetric}" is not a metric; use e.g. val.all.macroF1 or val.active.accuracy`,
      );
    }
    const es = cfg.train.earlyStopping;
    if (es && !METRIC_PATH.test(es.metric)) {
      add(["train", "earlyStopping", "metric"], `"${es.metric}" is not a metric; use e.g. val.all.macroF1`);
    }
    if (numClasses !== null && cfg.model.numClasses !== "auto" && cfg.model.numClasses !== numClasses) {
      add(
        ["model", "numClasses"],
        `is ${cfg.model.numClasses} but the dataset has ${numClasses} classes; set it to ${numClasses} or "auto"`,
      );
    }
  });
  const parsed = schema.safeParse(c);
  const issues: ConfigIssue[] = parsed.success ? [] : zodIssues(parsed.error);
  const n = numClasses ?? (c.model.numClasses === "auto" ? null : c.model.numClasses);
  if (n !== null) {
    // the stage plugin knows its own class lists (e.g. curriculum stages)
    const { name: stageName, ...stageOpts } = c.stage;
    const mod = await resolvePlugin("stage", stageName, c.baseDir);
    const stage = await mod.create(stageOpts as never, {
      configDir: c.baseDir,
      seed: c.seed,
      epochs: c.train.epochs,
      log: () => {},
    }) as ValidatingStage;
    stage.setNumClasses?.(n);
    for (const msg of stage.validate?.(n) ?? []) issues.push({ path: ["stage"], message: msg });
  }
  return issues;
}

/** Runs the refine layer with the dataset's class count; throws ConfigError. */
export async function refineWithDataset(c: ResolvedConfig, numClasses: number, file: string): Promise<void> {
  const issues = await refineIssues(c, numClasses);
  if (issues.length > 0) throw new ConfigError(file, issues);
}

// ---- JSON Schema ------------------------------------------------------------------------------

/** JSON Schema of a config file, generated from the zod schemas (raw layer, built-in plugins inlined). */
export function configJsonSchema(): Record<string, unknown> {
  const withPlugins = RawConfigSchema.extend({
    data: RawConfigSchema.shape.data.extend({ loader: sectionSchema("load") }).strict(),
    augment: sectionSchema("augment").optional(),
    sampler: sectionSchema("sample").optional(),
    loss: sectionSchema("loss").optional(),
    stage: sectionSchema("stage").optional(),
    evaluate: sectionSchema("evaluate").optional(),
  }).strict();
  return z.toJSONSchema(withPlugins, { io: "input", unrepresentable: "any" }) as Record<string, unknown>;
}
