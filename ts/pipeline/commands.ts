/**
 * The work behind the CLI's `eval`, `predict` and `data:inspect` commands (cli.ts only parses
 * arguments and prints). Each returns data; the printing helpers format it.
 */
import { basename, dirname, join, resolve } from "node:path";
import { Images } from "../native/images.ts";
import {
  applyOverrides,
  DEFAULT_DEVICE,
  loadConfig,
  parseYaml,
  resolveConfig,
  type ResolvedConfig,
} from "./config.ts";
import { type Device, resolveDevice } from "./device.ts";
import { DataError } from "./errors.ts";
import { builtinModules, isPluginPath } from "./registry.ts";
import { createRng, deriveSeed } from "./rng.ts";
import type { InferenceMeta } from "./runner.ts";
import { openRunData } from "./run-data.ts";
import { formatSeedLines } from "./seed-format.ts";
import { type SessionSpec, sessionSpec, TrainSession } from "./session.ts";
import type { Metrics } from "./types.ts";

function exists(p: string): boolean {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
}

/** The run folder of a checkpoint in `<run>/checkpoints/`, when it has a config.yaml. */
export function runDirOfCheckpoint(checkpoint: string): string | null {
  const dir = dirname(dirname(resolve(checkpoint)));
  return exists(join(dir, "config.yaml")) ? dir : null;
}

/**
 * The option of a loader that names its data (`root`, `dir` or `manifest`), and the override
 * that points it at `dataDir`; for a loader with none of them, null.
 */
export function dataOverride(loaderName: string, dataDir: string): string | null {
  const mod = builtinModules("load").find((m) => m.name === loaderName);
  const keys = mod ? Object.keys(mod.configSchema.shape) : [];
  const abs = resolve(dataDir);
  if (keys.includes("root")) return `data.loader.root=${JSON.stringify(abs)}`;
  if (keys.includes("dir")) return `data.loader.dir=${JSON.stringify(abs)}`;
  if (keys.includes("manifest")) {
    const m = abs.endsWith(".csv") ? abs : join(abs, "manifest.csv");
    return `data.loader.manifest=${JSON.stringify(m)}`;
  }
  return null;
}

/** A loader section for a bare data folder: IDX files → idx, else imagefolder. */
export function guessLoader(dataDir: string): string {
  const abs = resolve(dataDir);
  let idx = false;
  try {
    for (const e of Deno.readDirSync(abs)) if (/idx[13]-ubyte/.test(e.name)) idx = true;
  } catch {
    throw new DataError(`--data ${dataDir}: folder does not exist`);
  }
  return idx ? "idx" : "imagefolder";
}

/** Loads a config, pointing its loader at `dataDir` when given (and the loader name when the config's does not fit). */
export async function loadConfigWithData(
  file: string,
  overrides: string[],
  dataDir: string | undefined,
): Promise<ResolvedConfig> {
  if (dataDir === undefined) return await loadConfig(file, overrides);
  const raw = parseYaml(await Deno.readTextFile(file), file);
  const set = new Map(overrides.map((o) => [o.slice(0, o.indexOf("=")), o]));
  let loader =
    ((raw.data as Record<string, unknown> | undefined)?.loader as { name?: string } | undefined)?.name ??
      "imagefolder";
  const nameOverride = set.get("data.loader.name");
  if (nameOverride) loader = nameOverride.slice(nameOverride.indexOf("=") + 1);
  const extra: string[] = [];
  if (!isPluginPath(loader) && dataOverride(loader, dataDir) === null) {
    // the config's loader cannot point at a folder (e.g. synthetic): use the folder's own loader
    const guessed = guessLoader(dataDir);
    const key = guessed === "idx" ? "dir" : "root";
    extra.push(`data.loader=${JSON.stringify({ name: guessed, [key]: resolve(dataDir) })}`);
  } else {
    const o = dataOverride(loader, dataDir);
    if (o === null) {
      throw new DataError(
        `--data: loader "${loader}" has no root/dir/manifest option to point at ${dataDir}`,
      );
    }
    extra.push(o);
  }
  return await loadConfig(file, [...overrides, ...extra]);
}

/** Options of a data command's config: a run's config when given a checkpoint, else a file, else guessed. */
export async function configForData(opts: {
  checkpoint?: string;
  config?: string;
  data?: string;
  defaultConfig: string;
  overrides?: string[];
}): Promise<{ config: ResolvedConfig; runDir: string | null }> {
  const runDir = opts.checkpoint ? runDirOfCheckpoint(opts.checkpoint) : null;
  const file = opts.config ?? (runDir ? join(runDir, "config.yaml") : null);
  if (file !== null) {
    return { config: await loadConfigWithData(file, opts.overrides ?? [], opts.data), runDir };
  }
  if (opts.data !== undefined) {
    // a bare data folder: a minimal config around the guessed loader, resolved in place
    const loader = guessLoader(opts.data);
    const raw = {
      data: { loader: { name: loader, [loader === "idx" ? "dir" : "root"]: resolve(opts.data) } },
    };
    // named after the flag in messages; relative paths in overrides resolve against the working directory
    const file = `(--data ${opts.data})`;
    applyOverrides(raw, opts.overrides ?? [], file);
    return { config: await resolveConfig(raw, { file }), runDir };
  }
  return { config: await loadConfigWithData(opts.defaultConfig, opts.overrides ?? [], opts.data), runDir };
}

// ---- eval -------------------------------------------------------------------------------------------

/** Result of `evaluateCheckpoint`. */
export interface EvalResult {
  split: string;
  classNames: string[];
  metrics: Metrics;
}

/** Reads a run's inference.json, or null. */
export function readInferenceMeta(runDir: string | null): InferenceMeta | null {
  if (runDir === null) return null;
  try {
    return JSON.parse(Deno.readTextFileSync(join(runDir, "inference.json"))) as InferenceMeta;
  } catch {
    return null;
  }
}

/**
 * Refuses to score data whose classes are not the checkpoint's: another count always, other
 * names (or order) unless `allow` — then a warning names the differences.
 */
export function checkClassNames(
  trained: string[],
  data: string[],
  checkpoint: string,
  allow: boolean,
  warn: (l: string) => void,
): void {
  if (trained.length !== data.length) {
    throw new DataError(
      `${checkpoint} was trained on ${trained.length} classes (${
        trained.join(", ")
      }); the data has ${data.length} ` +
        `(${data.join(", ")})`,
    );
  }
  const diff = trained.map((
    n,
    k,
  ) => (n === data[k] ? null : `class ${k}: "${n}" in the checkpoint, "${data[k]}" in the data`))
    .filter((d): d is string => d !== null);
  if (diff.length === 0) return;
  const what = `the data's class names differ from the checkpoint's (inference.json): ${diff.join("; ")}`;
  if (!allow) {
    throw new DataError(
      `${what}. Scores would compare the wrong classes; pass --allow-class-mismatch to score anyway`,
    );
  }
  warn(`warning: ${what}; scoring anyway (--allow-class-mismatch)`);
}

/** Metrics and confusion matrix of a checkpoint on a split of the config's dataset. */
export async function evaluateCheckpoint(opts: {
  checkpoint: string;
  config: ResolvedConfig;
  runDir: string | null;
  split: "val" | "test";
  log?: (l: string) => void;
  /** score a data set whose class names differ from the checkpoint's (same count) */
  allowClassMismatch?: boolean;
}): Promise<EvalResult> {
  const log = opts.log ?? ((l: string): void => console.error(l));
  const { config } = opts;
  const meta = readInferenceMeta(opts.runDir);
  // the train split is opened only when the eval ops must be measured again (no inference.json)
  const data = await openRunData(config, { log, splits: [opts.split], statsFromTrain: meta === null });
  let session: TrainSession | null = null;
  try {
    if (meta) {
      checkClassNames(
        meta.classNames,
        data.classNames,
        opts.checkpoint,
        opts.allowClassMismatch === true,
        log,
      );
    }
    const images = data.splits[opts.split];
    if (!images) throw new DataError(`the dataset (${data.dataset.description}) has no ${opts.split} split`);
    session = await TrainSession.open(
      sessionSpec(config, data.numClasses, { trainable: "none", weights: opts.checkpoint }),
    );
    const { all } = await session.validate(images, {
      evaluator: data.plugins.evaluator,
      loss: data.plugins.loss,
      batchSize: config.train.batchSize,
      ops: meta?.evalOps ?? data.plugins.augment.evalOps,
    });
    return { split: opts.split, classNames: data.classNames, metrics: all };
  } finally {
    session?.close();
    data.close();
  }
}

/** The seed-style lines plus the confusion matrix (rows = true class). */
export function formatEval(r: EvalResult): string {
  const lines = [`${r.split} split:`, ...formatSeedLines(r.metrics, r.classNames)];
  const names = r.classNames.map((n, k) => `${k}:${n}`);
  const w = Math.max(6, ...r.metrics.confusion.flat().map((v) => String(v).length + 1));
  lines.push("Confusion matrix (rows = true, columns = predicted):");
  lines.push(" ".repeat(4) + r.classNames.map((_, k) => String(k).padStart(w)).join(""));
  r.metrics.confusion.forEach((row, k) =>
    lines.push(String(k).padStart(3) + " " + row.map((v) => String(v).padStart(w)).join(""))
  );
  lines.push(`classes: ${names.join(", ")}`);
  return lines.join("\n");
}

// ---- predict ------------------------------------------------------------------------------------------

/** One image's prediction. */
export interface Prediction {
  image: string;
  label: number;
  className: string;
  probabilities: Record<string, number>;
}

/** Softmax of one row. */
function softmax(row: Float32Array): number[] {
  const m = Math.max(...row);
  const e = Array.from(row, (v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/** The inference session of a run's checkpoint, from its inference.json. */
function predictSpec(checkpoint: string, meta: InferenceMeta, device: Device): SessionSpec {
  return {
    device,
    model: {
      numClasses: meta.classNames.length,
      inputChannels: meta.channels,
      dropoutRate: meta.model.dropoutRate,
      fpn: meta.model.fpn,
    },
    trainer: null,
    weights: checkpoint,
  };
}

/** Class and probabilities per image, for a checkpoint of a run (its inference.json) or a config. */
export async function predictImages(opts: {
  checkpoint: string;
  images: string[];
  config?: ResolvedConfig;
}): Promise<Prediction[]> {
  const runDir = runDirOfCheckpoint(opts.checkpoint);
  const meta = readInferenceMeta(runDir);
  if (meta === null) {
    throw new DataError(
      `predict: ${opts.checkpoint} is not in a run folder with inference.json (runs/<run>/checkpoints/*.safetensors)`,
    );
  }
  const numClasses = meta.classNames.length;
  const [height, width] = meta.imageSize;
  const files = opts.images.map((p) => resolve(p));
  const cacheDir = await Deno.makeTempDir({ prefix: "hn-predict-" });
  // the config's device when one is given, else the default (auto: the first usable GPU, else the CPU)
  const device = resolveDevice(opts.config?.device ?? DEFAULT_DEVICE);
  const session = await TrainSession.open(predictSpec(opts.checkpoint, meta, device));
  let images: Images | null = null;
  try {
    images = await Images.build({
      files,
      height,
      width,
      channels: meta.channels,
      cachePath: join(cacheDir, "predict.hnc"),
      onBadImage: "error",
    });
    const idx = Int32Array.from(files, (_, i) => i);
    const x = await images.gather(idx, meta.evalOps, 0);
    const logits = await session.model.forward(x, [files.length, meta.channels, height, width]);
    return files.map((_f, i) => {
      const p = softmax(logits.subarray(i * numClasses, (i + 1) * numClasses));
      const label = p.indexOf(Math.max(...p));
      return {
        image: opts.images[i],
        label,
        className: meta.classNames[label],
        probabilities: Object.fromEntries(meta.classNames.map((n, k) => [n, p[k]])),
      };
    });
  } finally {
    images?.close();
    session.close();
    await Deno.remove(cacheDir, { recursive: true });
  }
}

/** One line per image: name, class, top probabilities. */
export function formatPredictions(ps: Prediction[]): string {
  return ps.map((p) => {
    const top = Object.entries(p.probabilities).sort((a, b) => b[1] - a[1]).slice(0, 3)
      .map(([n, v]) => `${n} ${(100 * v).toFixed(1)}%`).join(", ");
    return `${basename(p.image)}: ${p.className} (class ${p.label}) — ${top}`;
  }).join("\n");
}

// ---- data:inspect ------------------------------------------------------------------------------------

/** Counts per class and split, and per training stage the sampler's share and a simulated draw. */
export interface InspectResult {
  description: string;
  classNames: string[];
  counts: Record<string, number[]>;
  stages: {
    stageIndex: number;
    firstEpoch: number;
    epochs: number;
    activeClasses: number[];
    expectedShare: number[];
    simulatedDraws: number[];
    drawsPerEpoch: number;
  }[];
}

/** Inspects the config's dataset (see InspectResult). */
export async function inspectData(
  config: ResolvedConfig,
  log: (l: string) => void = () => {},
): Promise<InspectResult> {
  const data = await openRunData(config, { log, statsFromTrain: false });
  data.close(); // no split opened: counts and the sampler's draws need only the labels
  const { sampler, stage } = data.plugins;
  const ds = data.dataset;
  const k = ds.classNames.length;
  const counts: Record<string, number[]> = {};
  for (const s of ["train", "val", "test"] as const) {
    const split = ds[s];
    if (!split) continue;
    const c = new Array<number>(k).fill(0);
    for (const l of split.labels) c[l]++;
    counts[s] = c;
  }
  const stages: InspectResult["stages"] = [];
  const rng = createRng(deriveSeed(config.seed, "inspect"));
  for (let e = 0; e < config.train.epochs; e++) {
    const plan = stage.plan(e, []);
    const last = stages[stages.length - 1];
    if (last && last.stageIndex === plan.stageIndex) {
      last.epochs++;
      continue;
    }
    const order = sampler.sample(ds.train.labels, plan.activeClasses, e, rng);
    const draws = new Array<number>(k).fill(0);
    for (const i of order) draws[ds.train.labels[i]]++;
    stages.push({
      stageIndex: plan.stageIndex,
      firstEpoch: e,
      epochs: 1,
      activeClasses: plan.activeClasses,
      expectedShare: sampler.expectedClassShare(ds.train.labels, plan.activeClasses, k, e),
      simulatedDraws: draws,
      drawsPerEpoch: order.length,
    });
  }
  return { description: ds.description, classNames: ds.classNames, counts, stages };
}

/** A plain-text table of an InspectResult. */
export function formatInspect(r: InspectResult): string {
  const splits = Object.keys(r.counts);
  const nameW = Math.max(5, ...r.classNames.map((n, k) => `${k} ${n}`.length));
  const lines = [r.description, "", "Images per class:"];
  lines.push("class".padEnd(nameW) + splits.map((s) => s.padStart(8)).join(""));
  r.classNames.forEach((n, k) => {
    lines.push(`${k} ${n}`.padEnd(nameW) + splits.map((s) => String(r.counts[s][k]).padStart(8)).join(""));
  });
  lines.push(
    "total".padEnd(nameW) +
      splits.map((s) => String(r.counts[s].reduce((a, b) => a + b, 0)).padStart(8)).join(""),
  );
  for (const st of r.stages) {
    lines.push("");
    lines.push(
      `Stage ${st.stageIndex + 1} (epochs ${st.firstEpoch + 1}-${st.firstEpoch + st.epochs}): classes [${
        st.activeClasses.join(",")
      }], ${st.drawsPerEpoch} draws per epoch`,
    );
    lines.push("class".padEnd(nameW) + "   train  expected share  simulated draws");
    r.classNames.forEach((n, k) => {
      if (!st.activeClasses.includes(k)) return;
      const share = `${(100 * st.expectedShare[k]).toFixed(2)}%`;
      lines.push(
        `${k} ${n}`.padEnd(nameW) + String(r.counts.train[k]).padStart(8) + share.padStart(16) +
          String(st.simulatedDraws[k]).padStart(17),
      );
    });
  }
  return lines.join("\n");
}
