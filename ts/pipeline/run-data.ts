/**
 * A run's data, opened once for every command: the plugins of the config, the dataset, the
 * class count checked against the config (refine layer), the training split's class counts
 * given to the plugins that want them, and the splits a command asks for as native images.
 */
import type { ResolvedConfig } from "./config.ts";
import { refineWithDataset } from "./config.ts";
import { provideDatasetStats } from "./dataset-stats.ts";
import { openSplit, type OpenSplitOptions, type SplitImages } from "./data.ts";
import { DataError } from "./errors.ts";
import { createPlugin } from "./registry.ts";
import type {
  Augmenter,
  DataInfo,
  Dataset,
  Evaluator,
  Loader,
  Loss,
  PluginContext,
  Sampler,
  TrainStage,
} from "./types.ts";

/** Where the Fashion-MNIST IDX files of the Debian package live. */
export const FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist";

/** The built plugins of a config. */
export interface Plugins {
  loader: Loader;
  augment: Augmenter;
  sampler: Sampler;
  loss: Loss;
  stage: TrainStage;
  evaluator: Evaluator;
}

/** The context every plugin of `config` is created with. */
export function pluginContext(
  config: ResolvedConfig,
  log: (l: string) => void,
  epochs?: number,
): PluginContext {
  return { configDir: config.baseDir, seed: config.seed, epochs: epochs ?? config.train.epochs, log };
}

/** Creates every plugin section of `config`. */
export async function createPlugins(config: ResolvedConfig, ctx: PluginContext): Promise<Plugins> {
  return {
    loader: await createPlugin<Loader>("load", config.data.loader, ctx),
    augment: await createPlugin<Augmenter>("augment", config.augment, ctx),
    sampler: await createPlugin<Sampler>("sample", config.sampler, ctx),
    loss: await createPlugin<Loss>("loss", config.loss, ctx),
    stage: await createPlugin<TrainStage>("stage", config.stage, ctx),
    evaluator: await createPlugin<Evaluator>("evaluate", config.evaluate, ctx),
  };
}

/** Runs the loader; its errors become DataErrors naming the loader (and how to get the data). */
export async function loadDataset(loader: Loader, config: ResolvedConfig): Promise<Dataset> {
  try {
    return await loader.load();
  } catch (err) {
    if (err instanceof DataError) throw err;
    const msg = (err as Error).message ?? String(err);
    const opts = config.data.loader as Record<string, unknown>;
    const hint = String(opts.dir ?? opts.root ?? "").includes("fashion-mnist") && /does not exist/.test(msg)
      ? ` — install the data with: apt-get install dataset-fashion-mnist (IDX files in ${FASHION_MNIST_DIR})`
      : "";
    throw new DataError(`data.loader (${config.data.loader.name}): ${msg}${hint}`, { cause: err });
  }
}

/** Class names and per-class counts of the training split, for plugins' `setData`. */
export function trainDataInfo(classNames: string[], labels: Int32Array): DataInfo {
  const classCounts = new Array<number>(classNames.length).fill(0);
  for (let i = 0; i < labels.length; i++) classCounts[labels[i]]++;
  return { numClasses: classNames.length, classNames, classCounts };
}

/** How `openSplit` opens the splits of `config`. */
export function splitOptions(
  config: ResolvedConfig,
  splitName: string,
  log: (l: string) => void,
): OpenSplitOptions {
  const [height, width] = config.data.imageSize;
  return {
    height,
    width,
    channels: config.data.channels,
    cacheDir: config.data.cacheDir,
    onBadImage: config.data.onBadImage,
    maxPixels: config.data.maxPixels,
    log,
    splitName,
  };
}

export type SplitName = "train" | "val" | "test";

/** Options of `openRunData`. */
export interface OpenRunDataOptions {
  /** plugin lines */
  log(line: string): void;
  /** warnings (skipped images); default: log */
  warn?(line: string): void;
  /** the config file, for refine messages */
  file?: string;
  /** splits to open as native images (a missing val/test split is left null) */
  splits?: SplitName[];
  /** the epochs plugins are told (default train.epochs) */
  epochs?: number;
  /** whether the train split is opened for the augmenter's dataset statistics when not asked for */
  statsFromTrain?: boolean;
}

/** A run's data: see the module doc. `close()` frees the opened splits. */
export interface RunData {
  plugins: Plugins;
  dataset: Dataset;
  classNames: string[];
  numClasses: number;
  info: DataInfo;
  splits: Partial<Record<SplitName, SplitImages>>;
  close(): void;
}

/** Opens `config`'s data (see the module doc). */
export async function openRunData(config: ResolvedConfig, o: OpenRunDataOptions): Promise<RunData> {
  const plugins = await createPlugins(config, pluginContext(config, o.log, o.epochs));
  const dataset = await loadDataset(plugins.loader, config);
  const classNames = dataset.classNames;
  const numClasses = classNames.length;
  await refineWithDataset(config, numClasses, o.file ?? "config");
  plugins.stage.setNumClasses?.(numClasses);
  const splits: RunData["splits"] = {};
  const warn = o.warn ?? o.log;
  const close = (): void => {
    for (const s of Object.values(splits)) s.images.close();
  };
  try {
    for (const name of o.splits ?? []) {
      const split = dataset[name];
      if (split) splits[name] = await openSplit(split, { ...splitOptions(config, name, warn), classNames });
    }
    const wantsStats = plugins.augment.needsDatasetStats === true;
    if (wantsStats && !splits.train && o.statsFromTrain !== false) {
      splits.train = await openSplit(dataset.train, { ...splitOptions(config, "train", warn), classNames });
    }
    if (splits.train) await provideDatasetStats(plugins.augment, splits.train);
    // The class priors (logit adjustment, LDAM, class-balanced weights) count the images training
    // sees: the opened train split's kept labels (after skipped bad images), else the dataset's.
    const info = trainDataInfo(classNames, splits.train?.labels ?? dataset.train.labels);
    plugins.loss.setData?.(info);
    plugins.evaluator.setData?.(info);
    return { plugins, dataset, classNames, numClasses, info, splits, close };
  } catch (err) {
    close();
    throw err;
  }
}
