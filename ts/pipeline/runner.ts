/**
 * `runPipeline`: a thin loop over the plugins (STYLE anti-pattern 1: no god-class trainer).
 *
 * load → class count → model/trainer → per epoch: stage.plan → sampler.sample → batches → step
 * → evaluate every `evalEvery` epochs → metrics.jsonl → checkpoints → early stopping.
 *
 * Logging, metrics.jsonl and progress are callbacks like a user's; every hook goes through
 * `callHooks`. One try/catch/finally calls `onException`, finalizes the loggers, disposes the
 * native handles and re-throws. Epochs are 0-based in plans, metrics.jsonl and last.json, and
 * shown 1-based in the log.
 */
import { writeReport } from "./report.ts";
import { createModel, createTrainer } from "../model/hybridnet.ts";
import type { NativeLossInput } from "../model/options.ts";
import { manualSeed, setNumThreads } from "../native/library.ts";
import type { Model } from "../native/model.ts";
import type { Trainer } from "../native/trainer.ts";
import { datasetMeanStd, type StandardAugmenter } from "../plugins/augment/standard.ts";
import { formatSeedLines } from "../plugins/evaluate/classification.ts";
import { configToYaml, refineWithDataset, type ResolvedConfig } from "./config.ts";
import { batchCount, batchStream, DataError, evalStream, openSplit, type SplitImages } from "./data.ts";
import { createLogger, type Logger } from "./log.ts";
import {
  checkpointActions,
  EarlyStopping,
  type EarlyStoppingState,
  improves,
  metricMode,
  readMetric,
} from "./policies.ts";
import { createProgress, type Progress } from "./progress.ts";
import { createPlugin } from "./registry.ts";
import { createRng, deriveSeed } from "./rng.ts";
import { scheduleLr } from "./schedules.ts";
import {
  appendJsonLine,
  createRunDir,
  recoverCheckpoints,
  type RunPaths,
  runPaths,
  saveBestWeights,
  saveLastCheckpoint,
  truncateMetrics,
  writeAtomic,
} from "./rundir.ts";
import type {
  Augmenter,
  AugmentOp,
  DataInfo,
  Dataset,
  EpochMetrics,
  Evaluator,
  Loader,
  Loss,
  Metrics,
  PluginContext,
  Rng,
  Sampler,
  StagePlan,
  Stateful,
  TrainStage,
} from "./types.ts";

// ---- hooks ------------------------------------------------------------------------------------

/** What a run tells its callbacks at the start. */
export interface RunInfo {
  config: ResolvedConfig;
  paths: RunPaths;
  classNames: string[];
  numClasses: number;
  /** first epoch this process trains (> 0 after a resume) */
  startEpoch: number;
  trainCount: number;
  valCount: number;
}

/** Train figures of one epoch (on the train-mode logits of the sampled batches). */
export interface TrainSummary {
  loss: number;
  metrics: Metrics;
  images: number;
  steps: number;
  seconds: number;
}

/** One metrics.jsonl line: the EpochMetrics contract plus the details. */
export interface EpochRecord extends EpochMetrics {
  globalStep: number;
  trainMetrics: Metrics;
  /** images drawn per class this epoch */
  sampledPerClass: number[];
  /** images the sampler expected to draw per class this epoch (its share × images drawn) */
  expectedPerClass: number[];
  stageCount: number;
  bestMetric: { name: string; value: number | null; epoch: number | null };
  earlyStopping: EarlyStoppingState | null;
}

/** Optional hooks (Lightning naming); called only through `callHooks`. */
export interface Callback {
  onFitStart?(info: RunInfo): void | Promise<void>;
  onStageChange?(epoch: number, plan: StagePlan, previous: StagePlan | null): void | Promise<void>;
  onTrainEpochStart?(epoch: number, plan: StagePlan, steps: number, images: number): void | Promise<void>;
  onTrainBatchEnd?(epoch: number, step: number, loss: number, images: number): void | Promise<void>;
  onTrainEpochEnd?(epoch: number, summary: TrainSummary): void | Promise<void>;
  onValidationStart?(epoch: number): void | Promise<void>;
  onValidationEnd?(epoch: number, val: { all: Metrics; active: Metrics }): void | Promise<void>;
  onEpochEnd?(record: EpochRecord): void | Promise<void>;
  onCheckpointSave?(epoch: number, kinds: ("best" | "last")[]): void | Promise<void>;
  onFitEnd?(result: RunResult): void | Promise<void>;
  onException?(err: unknown): void | Promise<void>;
}

export type HookName = keyof Callback;

/** Calls `name` on every callback that has it, in order, timing each (DEBUG log). */
export async function callHooks<K extends HookName>(
  callbacks: Callback[],
  name: K,
  debug: ((line: string) => void) | null,
  ...args: Parameters<NonNullable<Callback[K]>>
): Promise<void> {
  for (const cb of callbacks) {
    const fn = cb[name] as ((...a: unknown[]) => unknown) | undefined;
    if (typeof fn !== "function") continue;
    const t0 = performance.now();
    await fn.apply(cb, args);
    debug?.(
      `hook ${name} on ${cb.constructor?.name ?? "callback"}: ${(performance.now() - t0).toFixed(1)} ms`,
    );
  }
}

// ---- options and result -------------------------------------------------------------------------

/** Options of `runPipeline`. */
export interface RunOptions {
  /** folder that holds the run folders (default "runs"); ignored with resumeDir */
  out?: string;
  /** continue the run in this folder from its last checkpoint */
  resumeDir?: string;
  /** extra callbacks, called after the built-in ones */
  callbacks?: Callback[];
  /** print log lines and progress to the console (default true) */
  console?: boolean;
  /** the config file, for messages */
  configFile?: string;
  /** DEBUG lines (hook timings) in train.log */
  debug?: boolean;
}

/** What a finished run returns. */
export interface RunResult {
  dir: string;
  epochsRun: number;
  lastEpoch: number;
  stoppedEarly: boolean;
  best: { name: string; value: number | null; epoch: number | null };
  history: EpochMetrics[];
}

/**
 * `inference.json` in the run folder: what eval and predict need besides the weights (class
 * names, input size, the eval ops with the normalization measured on the training split).
 */
export interface InferenceMeta {
  classNames: string[];
  channels: number;
  imageSize: [number, number];
  evalOps: AugmentOp[];
  model: { dropoutRate: number; fpn: "skip" | "seed" };
}

/** Path of a run's inference.json. */
export function inferencePath(paths: RunPaths): string {
  return `${paths.dir}/inference.json`;
}

/** The checkpoint JSON (last.json). */
interface LastJson {
  version: 1;
  epoch: number;
  globalStep: number;
  rng: number[];
  plugins: Record<string, unknown>;
  best: { name: string; value: number | null; epoch: number | null };
  earlyStopping: EarlyStoppingState | null;
  lastPlan: StagePlan | null;
  history: EpochMetrics[];
}

// ---- built-in callbacks ---------------------------------------------------------------------------

function seedLogCallback(log: Logger, classNames: string[], epochs: number): Callback {
  return {
    onFitStart(info): void {
      log.info(
        `Run ${info.paths.dir}: ${info.numClasses} classes, ${info.trainCount} train / ${info.valCount} val images` +
          (info.startEpoch > 0 ? `, resuming at epoch ${info.startEpoch + 1}` : ""),
      );
    },
    onStageChange(_epoch, plan): void {
      log.info(`Stage ${plan.stageIndex + 1}/${plan.stageCount}: classes [${plan.activeClasses.join(",")}]`);
    },
    onTrainEpochStart(epoch): void {
      log.info(`Epoch ${epoch + 1}/${epochs}`);
    },
    onTrainEpochEnd(_epoch, s): void {
      log.info("Training Epoch Summary:");
      for (const l of formatSeedLines(s.metrics, classNames).slice(0, 4)) log.info(l);
      log.info(
        `Throughput: ${(s.images / Math.max(s.seconds, 1e-9)).toFixed(1)} images/s (${
          s.seconds.toFixed(1)
        } s)`,
      );
    },
    onValidationEnd(_epoch, val): void {
      log.info("Validation Summary:");
      for (const l of formatSeedLines(val.all, classNames)) log.info(l);
      if (val.active.perClass.length > 0 && val.active.accuracy !== val.all.accuracy) {
        log.info(
          `Active classes: Accuracy: ${(100 * val.active.accuracy).toFixed(2)}%, F1 Score: ${
            val.active.macroF1.toFixed(4)
          }`,
        );
      }
    },
    onCheckpointSave(epoch, kinds): void {
      if (kinds.includes("best")) log.info(`Saved best checkpoint (epoch ${epoch + 1})`);
    },
  };
}

function metricsFileCallback(path: string): Callback {
  return { onEpochEnd: (record): Promise<void> => appendJsonLine(path, record) };
}

/** Rebuilds report.md and its charts after every epoch (after metrics.jsonl has the epoch). */
function reportCallback(dir: string, classNames: string[]): Callback {
  return { onEpochEnd: async (): Promise<void> => void await writeReport(dir, classNames) };
}

function progressCallback(p: Progress, epochs: number): Callback {
  return {
    onTrainEpochStart(epoch, _plan, steps, images): void {
      p.start(epoch + 1, epochs, steps, images);
    },
    onTrainBatchEnd(_epoch, step, loss, images): void {
      p.update(step, images, loss);
    },
    onTrainEpochEnd(): void {
      p.end();
    },
  };
}

// ---- helpers --------------------------------------------------------------------------------------

/** The loss's class mask of a plan: 1 = active; null when inactive classes are not masked. */
export function activeMask(plan: StagePlan, numClasses: number): Uint8Array | null {
  if (!plan.maskInactive) return null;
  const m = new Uint8Array(numClasses);
  for (const k of plan.activeClasses) m[k] = 1;
  return m;
}

function samePlan(a: StagePlan | null, b: StagePlan): boolean {
  return a !== null && a.stageIndex === b.stageIndex && a.maskInactive === b.maskInactive &&
    a.activeClasses.join(",") === b.activeClasses.join(",");
}

function isStateful(v: unknown): v is Stateful {
  const s = v as Stateful;
  return typeof s === "object" && s !== null && typeof s.stateKey === "string" &&
    typeof s.stateDict === "function" && typeof s.loadStateDict === "function";
}

/** Logits of a whole split in eval mode, with labels. */
export async function predictSplit(
  model: Model,
  split: SplitImages,
  batchSize: number,
  ops: Augmenter["evalOps"],
): Promise<Float32Array> {
  const c = model.numClasses;
  const out = new Float32Array(split.count * c);
  let off = 0;
  for await (const b of evalStream(split, batchSize, ops)) {
    out.set(await model.forward(b.x, b.shape), off);
    off += b.shape[0] * c;
  }
  return out;
}

/** Rows of `logits`/`labels` whose label is in `classes`. */
function rowsOf(
  logits: Float32Array,
  labels: Int32Array,
  c: number,
  classes: number[],
): [Float32Array, Int32Array] {
  const keep = new Uint8Array(c);
  for (const k of classes) keep[k] = 1;
  const idx: number[] = [];
  for (let i = 0; i < labels.length; i++) if (keep[labels[i]]) idx.push(i);
  const l = new Float32Array(idx.length * c);
  idx.forEach((i, j) => l.set(logits.subarray(i * c, (i + 1) * c), j * c));
  return [l, Int32Array.from(idx, (i) => labels[i])];
}

function meanLoss(
  loss: Loss,
  logits: Float32Array,
  labels: Int32Array,
  c: number,
  mask: Uint8Array | null,
): number {
  const n = labels.length;
  if (n === 0) return Number.NaN;
  return loss.compute(logits, labels, n, c, mask).loss;
}

/** Class names and per-class counts of the training split, for plugins' `setData`. */
export function trainDataInfo(classNames: string[], labels: Int32Array): DataInfo {
  const classCounts = new Array<number>(classNames.length).fill(0);
  for (let i = 0; i < labels.length; i++) classCounts[labels[i]]++;
  return { numClasses: classNames.length, classNames, classCounts };
}

/** A fresh model for a run of `config` (its init seed derived from the run's seed). */
export function runModel(config: ResolvedConfig, numClasses: number): Model {
  return createModel({
    numClasses,
    inputChannels: config.data.channels,
    dropoutRate: config.model.dropoutRate,
    fpn: config.model.fpn,
    seed: deriveSeed(config.seed, "model"),
  });
}

/** The trainer of a run of `config` for `model`. */
export function runTrainer(config: ResolvedConfig, model: Model): Trainer {
  return createTrainer(model, {
    optimizer: config.train.optimizer,
    clipGradNorm: config.train.clipGradNorm,
    seed: deriveSeed(config.seed, "trainer"),
  });
}

/** Where the Fashion-MNIST IDX files of the Debian package live. */
export const FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist";

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

/** The built plugins of a run. */
export interface Plugins {
  loader: Loader;
  augment: Augmenter;
  sampler: Sampler;
  loss: Loss;
  stage: TrainStage & { setNumClasses?(n: number): void };
  evaluator: Evaluator;
}

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

/** For `normalize: "dataset"`: per-channel mean/std of (up to 4096 evenly spaced) training images. */
export async function provideDatasetStats(augment: Augmenter, train: SplitImages): Promise<void> {
  const aug = augment as Partial<StandardAugmenter>;
  if (!aug.needsDatasetStats || typeof aug.setDatasetStats !== "function") return;
  const n = Math.min(train.count, 4096);
  const idx = Int32Array.from({ length: n }, (_, i) => Math.floor((i * train.count) / n));
  const u8 = await train.images.gatherU8(idx);
  const { mean, std } = datasetMeanStd(u8, [n, ...train.chw]);
  aug.setDatasetStats(mean, std);
}

// ---- the loop ---------------------------------------------------------------------------------------

/** Runs (or resumes) a training run; see the module doc. */
export async function runPipeline(config: ResolvedConfig, opts: RunOptions = {}): Promise<RunResult> {
  const file = opts.configFile ?? "config";
  if (config.device === "cuda") {
    throw new DataError(
      'device "cuda": the native model API of this build trains on the CPU; set device: cpu or auto',
    );
  }
  const paths = opts.resumeDir
    ? runPaths(opts.resumeDir)
    : await createRunDir(opts.out ?? "runs", config.name);
  const showConsole = opts.console !== false;
  const progress = showConsole ? createProgress() : null;
  const log = createLogger({
    file: paths.log,
    console: showConsole,
    debug: opts.debug,
    beforeConsole: () => progress?.clear(),
  });
  const disposables: { close(): void }[] = [];
  const callbacks: Callback[] = [];
  const debug = opts.debug ? (l: string): void => log.debug(l) : null;
  try {
    let resume: LastJson | null = null;
    if (opts.resumeDir) {
      const rec = await recoverCheckpoints(paths);
      if (rec !== "clean") log.info(`Checkpoint journal: ${rec} an interrupted save`);
      try {
        resume = JSON.parse(await Deno.readTextFile(paths.lastJson)) as LastJson;
      } catch (err) {
        throw new DataError(
          `--resume ${paths.dir}: no readable checkpoints/last.json (${(err as Error).message})`,
          {
            cause: err,
          },
        );
      }
      await truncateMetrics(paths.metrics, resume.epoch);
    } else {
      await writeAtomic(paths.config, configToYaml(config));
    }
    if (config.train.threads !== null) setNumThreads(config.train.threads);

    const ctx: PluginContext = {
      configDir: config.baseDir,
      seed: config.seed,
      epochs: config.train.epochs,
      log: (l) => log.info(l),
    };
    const plugins = await createPlugins(config, ctx);
    const dataset: Dataset = await loadDataset(plugins.loader, config);
    const classNames = dataset.classNames;
    const numClasses = classNames.length;
    await refineWithDataset(config, numClasses, file);
    plugins.stage.setNumClasses?.(numClasses);
    const dataInfo = trainDataInfo(classNames, dataset.train.labels);
    plugins.loss.setData?.(dataInfo);
    plugins.evaluator.setData?.(dataInfo);
    if (!dataset.val) log.warn("The dataset has no val split: no validation metrics, best = last");

    const [h, w] = config.data.imageSize;
    const open = (s: NonNullable<Dataset["val"]>, splitName: string): Promise<SplitImages> =>
      openSplit(s, {
        height: h,
        width: w,
        channels: config.data.channels,
        cacheDir: config.data.cacheDir,
        onBadImage: config.data.onBadImage,
        log: (l) => log.warn(l),
        splitName,
      });
    const train = await open(dataset.train, "train");
    disposables.push(train.images);
    const val = dataset.val ? await open(dataset.val, "val") : null;
    if (val) disposables.push(val.images);
    await provideDatasetStats(plugins.augment, train);
    if (!resume) {
      const meta: InferenceMeta = {
        classNames,
        channels: config.data.channels,
        imageSize: config.data.imageSize,
        evalOps: plugins.augment.evalOps,
        model: { dropoutRate: config.model.dropoutRate, fpn: config.model.fpn },
      };
      await writeAtomic(inferencePath(paths), JSON.stringify(meta, null, 2) + "\n");
    }

    const model = runModel(config, numClasses);
    disposables.push(model);
    const trainer: Trainer = runTrainer(config, model);

    const rng: Rng = createRng(deriveSeed(config.seed, "sampler"));
    const stateful: Stateful[] =
      ([plugins.stage, plugins.sampler, plugins.loss, plugins.augment] as unknown[]).filter(
        isStateful,
      );
    const es = config.train.earlyStopping;
    const early = es ? new EarlyStopping(es.patience, es.minDelta, es.mode) : null;
    const bestName = config.train.bestMetric;
    let best: LastJson["best"] = { name: bestName, value: null, epoch: null };
    let history: EpochMetrics[] = [];
    let globalStep = 0;
    let startEpoch = 0;
    let lastPlan: StagePlan | null = null;
    if (resume) {
      await model.load(paths.lastWeights);
      await trainer.loadState(paths.lastState);
      rng.setState(resume.rng);
      for (const s of stateful) if (s.stateKey in resume.plugins) s.loadStateDict(resume.plugins[s.stateKey]);
      early?.loadStateDict(resume.earlyStopping);
      best = resume.best;
      history = resume.history;
      globalStep = resume.globalStep;
      startEpoch = resume.epoch + 1;
      lastPlan = resume.lastPlan;
    }

    callbacks.push(
      seedLogCallback(log, classNames, config.train.epochs),
      metricsFileCallback(paths.metrics),
      reportCallback(paths.dir, classNames),
    );
    if (progress) callbacks.push(progressCallback(progress, config.train.epochs));
    callbacks.push(...(opts.callbacks ?? []));
    const hook = <K extends HookName>(
      name: K,
      ...args: Parameters<NonNullable<Callback[K]>>
    ): Promise<void> => callHooks(callbacks, name, debug, ...args);

    await hook("onFitStart", {
      config,
      paths,
      classNames,
      numClasses,
      startEpoch,
      trainCount: train.count,
      valCount: val?.count ?? 0,
    });

    const useNative = config.train.nativeLoss === "auto" && typeof plugins.loss.native === "function";
    let stoppedEarly = false;
    let epoch = startEpoch;
    let lr = config.train.optimizer.lr;
    for (; epoch < config.train.epochs && !stoppedEarly; epoch++) {
      manualSeed(deriveSeed(config.seed, "epoch", epoch));
      const plan = plugins.stage.plan(epoch, history);
      if (!samePlan(lastPlan, plan)) await hook("onStageChange", epoch, plan, lastPlan);
      lastPlan = plan;
      const mask = activeMask(plan, numClasses);
      plugins.loss.startEpoch?.(epoch, plan);
      // asked every epoch: a loss may change over the run (DRW's switch), and it costs one call
      if (useNative) trainer.setLoss(plugins.loss.native!(mask) as NativeLossInput);

      // ---- train
      const order = plugins.sampler.sample(train.labels, plan.activeClasses, epoch, rng);
      const steps = batchCount(order.length, config.train.batchSize, config.train.maxStepsPerEpoch);
      const used = Math.min(order.length, steps * config.train.batchSize);
      const sampledPerClass = new Array<number>(numClasses).fill(0);
      for (let i = 0; i < used; i++) sampledPerClass[train.labels[order[i]]]++;
      const expectedPerClass = plugins.sampler
        .expectedClassShare(train.labels, plan.activeClasses, numClasses, epoch)
        .map((share) => share * used);
      await hook("onTrainEpochStart", epoch, plan, steps, used);
      const trainLogits = new Float32Array(used * numClasses);
      const trainTargets = new Int32Array(used);
      let lossSum = 0, seen = 0;
      const t0 = performance.now();
      for await (
        const b of batchStream(train, order, {
          batchSize: config.train.batchSize,
          ops: plugins.augment.trainOps,
          seedOf: (k) => deriveSeed(config.seed, epoch, k),
          maxBatches: config.train.maxStepsPerEpoch,
          transformU8: plugins.augment.transformU8?.bind(plugins.augment),
        })
      ) {
        const n = b.shape[0];
        lr = scheduleLr(config.train.schedule, config.train.optimizer.lr, {
          progress: epoch + b.index / steps,
          epochs: config.train.epochs,
          epoch,
          stageIndex: plan.stageIndex,
          history,
          stepsPerEpoch: steps,
        });
        trainer.setLr(lr);
        let loss: number, logits: Float32Array;
        if (useNative) {
          ({ loss, logits } = await trainer.trainStep(b.x, b.shape, b.targets));
        } else {
          logits = await trainer.forwardTrain(b.x, b.shape);
          const r = plugins.loss.compute(logits, b.targets, n, numClasses, mask);
          await trainer.backwardStep(r.grad);
          loss = r.loss;
        }
        if (!Number.isFinite(loss)) {
          throw new DataError(
            `training diverged: loss is ${loss} at epoch ${epoch + 1}, step ${b.index + 1}`,
          );
        }
        trainLogits.set(logits, seen * numClasses);
        trainTargets.set(b.targets, seen);
        lossSum += loss * n;
        seen += n;
        globalStep++;
        await hook("onTrainBatchEnd", epoch, b.index + 1, lossSum / seen, seen);
      }
      const seconds = (performance.now() - t0) / 1000;
      const trainLoss = lossSum / Math.max(seen, 1);
      const trainMetrics = plugins.evaluator.evaluate(
        trainLogits,
        trainTargets,
        seen,
        numClasses,
        trainLoss,
        plan.activeClasses,
      );
      await hook("onTrainEpochEnd", epoch, {
        loss: trainLoss,
        metrics: trainMetrics,
        images: seen,
        steps,
        seconds,
      });

      // ---- evaluate
      let valFigures: { all: Metrics; active: Metrics } | undefined;
      const isEvalEpoch = (epoch + 1) % config.train.evalEvery === 0 || epoch + 1 === config.train.epochs;
      if (val && isEvalEpoch) {
        await hook("onValidationStart", epoch);
        const logits = await predictSplit(model, val, config.train.batchSize, plugins.augment.evalOps);
        const allLoss = meanLoss(plugins.loss, logits, val.labels, numClasses, null);
        const all = plugins.evaluator.evaluate(logits, val.labels, val.count, numClasses, allLoss);
        const [al, at] = rowsOf(logits, val.labels, numClasses, plan.activeClasses);
        const activeLoss = meanLoss(plugins.loss, al, at, numClasses, mask);
        const active = plugins.evaluator.evaluate(
          logits,
          val.labels,
          val.count,
          numClasses,
          activeLoss,
          plan.activeClasses,
        );
        valFigures = { all, active };
        await hook("onValidationEnd", epoch, valFigures);
      }

      const figures: EpochMetrics = {
        epoch,
        stage: plan.stageIndex,
        activeClasses: plan.activeClasses,
        train: {
          loss: trainLoss,
          accuracy: trainMetrics.accuracy,
          imagesPerSecond: seen / Math.max(seconds, 1e-9),
          seconds,
        },
        ...(valFigures ? { val: valFigures } : {}),
        lr,
      };
      history.push(figures);

      // ---- decisions: best, early stop, checkpoints
      const evaluated = valFigures !== undefined || !val;
      const value = readMetric(figures, val ? bestName : "train.loss");
      const improved = evaluated && value !== undefined &&
        improves(value, best.value, metricMode(val ? bestName : "train.loss"));
      if (improved) best = { name: bestName, value: value!, epoch };
      if (early && evaluated) {
        const v = readMetric(figures, es!.metric);
        if (v !== undefined) stoppedEarly = early.update(v);
      }

      const record: EpochRecord = {
        ...figures,
        globalStep,
        trainMetrics,
        sampledPerClass,
        expectedPerClass,
        stageCount: plan.stageCount,
        bestMetric: best,
        earlyStopping: early?.stateDict() ?? null,
      };
      await hook("onEpochEnd", record);

      const actions = checkpointActions(improved);
      const writers = {
        saveWeights: (p: string): Promise<void> => model.save(p),
        saveState: (p: string): Promise<void> => trainer.saveState(p),
      };
      if (actions.includes("best")) await saveBestWeights(paths, writers);
      const plugState: Record<string, unknown> = {};
      for (const s of stateful) plugState[s.stateKey] = s.stateDict();
      const json: LastJson = {
        version: 1,
        epoch,
        globalStep,
        rng: rng.state(),
        plugins: plugState,
        best,
        earlyStopping: early?.stateDict() ?? null,
        lastPlan: plan,
        history,
      };
      await saveLastCheckpoint(paths, writers, json);
      await hook("onCheckpointSave", epoch, actions);
      if (stoppedEarly) {
        log.info(`Early stopping: no improvement of ${es!.metric} for ${es!.patience} evaluations`);
      }
    }

    const result: RunResult = {
      dir: paths.dir,
      epochsRun: epoch - startEpoch,
      lastEpoch: epoch - 1,
      stoppedEarly,
      best,
      history,
    };
    await hook("onFitEnd", result);
    log.info(
      `Finished: ${epoch} epochs; best ${best.name} = ${
        best.value === null ? "n/a" : best.value.toFixed(4)
      }` +
        (best.epoch === null ? "" : ` (epoch ${best.epoch + 1})`),
    );
    return result;
  } catch (err) {
    try {
      await callHooks(callbacks, "onException", debug, err);
    } catch (hookErr) {
      log.error(`onException hook failed: ${(hookErr as Error).message}`);
    }
    log.error(`${(err as Error).name ?? "Error"}: ${(err as Error).message ?? String(err)}`);
    throw err;
  } finally {
    progress?.end();
    log.close();
    for (const d of disposables.reverse()) {
      try {
        d.close();
      } catch { /* a close failure must not hide the run's own error */ }
    }
  }
}
