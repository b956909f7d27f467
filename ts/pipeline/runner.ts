/**
 * `runPipeline`: the epoch loop of a training run, over a `TrainSession` and the plugins.
 *
 * Per epoch: plan the stage → sample → batches → `session.step` → hooks → validate → decisions
 * (best, early stop) → metrics.jsonl → checkpoints. Opening the data is `openRunData`, the model,
 * trainer, loss path, LR and checkpoint writing are the session's; this file only orders them.
 *
 * Logging, metrics.jsonl and progress are callbacks like a user's (callbacks.ts). One
 * try/catch/finally calls `onException`, finalizes the loggers, disposes the native handles and
 * re-throws. Epochs are 0-based in plans, metrics.jsonl and last.json, and 1-based in the log.
 */
import { manualSeed, setNumThreads } from "../native/library.ts";
import {
  type Callback,
  callHooks,
  type EpochRecord,
  type HookName,
  metricsFileCallback,
  progressCallback,
  reportCallback,
  type RunResult,
  seedLogCallback,
} from "./callbacks.ts";
import { configToYaml, loadConfig, type ResolvedConfig } from "./config.ts";
import { batchCount, batchStream, type SplitImages } from "./data.ts";
import { DataError, InterruptedError } from "./errors.ts";
import { createLogger, type Logger } from "./log.ts";
import { type BestMetric, DivergenceGuard, type EarlyStoppingState, RunDecisions } from "./policies.ts";
import { createProgress } from "./progress.ts";
import { createRng, deriveSeed } from "./rng.ts";
import { decodeAcc, encodeAcc, type PartialEpoch } from "./mid-epoch.ts";
import { checkOrder, pluginLabel } from "./plugin-checks.ts";
import { checkResumeOverrides, recordResumeOverrides } from "./resume.ts";
import { openRunData, type RunData } from "./run-data.ts";
import { resolveAutoLr } from "./auto-lr.ts";
import {
  createRunDir,
  exists,
  isFailedRun,
  markFailed,
  recoverCheckpoints,
  removeTempFiles,
  type RunPaths,
  runPaths,
  truncateMetrics,
  writeAtomic,
} from "./rundir.ts";
import { baseLr, scheduleOf, sessionSpec, trainMetrics, TrainSession } from "./session.ts";
import { tensorboardCallback } from "./tb-callback.ts";
import type { AugmentOp, EpochMetrics, Metrics, Rng, StagePlan, Stateful } from "./types.ts";

export type {
  BatchInfo,
  Callback,
  EpochRecord,
  HookName,
  RunInfo,
  RunResult,
  TrainSummary,
} from "./callbacks.ts";
export { callHooks } from "./callbacks.ts";

/** Options of `runPipeline`. */
export interface RunOptions {
  /** folder that holds the run folders (default "runs"); ignored with resumeDir */
  out?: string;
  /** continue the run in this folder from its last checkpoint */
  resumeDir?: string;
  /** the `--set` overrides given with resumeDir (already applied to `config`; checked and recorded) */
  resumeOverrides?: string[];
  /** extra callbacks, called after the built-in ones */
  callbacks?: Callback[];
  /** print log lines and progress to the console (default true) */
  console?: boolean;
  /** the config file, for messages */
  configFile?: string;
  /** DEBUG lines (hook timings) in train.log */
  debug?: boolean;
}

/**
 * `inference.json` in the run folder: what eval and predict need besides the weights (class
 * names, input size, the eval ops with the normalization measured on the training split).
 */
export interface InferenceMeta {
  classNames: string[];
  channels: 1 | 3;
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
  best: BestMetric;
  earlyStopping: EarlyStoppingState | null;
  lastPlan: StagePlan | null;
  history: EpochMetrics[];
  /** set when the checkpoint was written within an epoch (see mid-epoch.ts) */
  partial?: PartialEpoch | null;
}

/** What the loop carries from epoch to epoch (and last.json across a resume). */
interface LoopState {
  history: EpochMetrics[];
  globalStep: number;
  lastPlan: StagePlan | null;
}

/** Everything an epoch of the loop uses. */
interface Run {
  config: ResolvedConfig;
  paths: RunPaths;
  data: RunData;
  train: SplitImages;
  val: SplitImages | null;
  session: TrainSession;
  rng: Rng;
  stateful: Stateful[];
  state: LoopState;
  /** the signal that asked the run to stop (SIGINT/SIGTERM), once one has */
  stop: { signal: string | null };
  /** the epoch a run resumed mid-epoch continues (used once) */
  partial: PartialEpoch | null;
  hook<K extends HookName>(name: K, ...args: Parameters<NonNullable<Callback[K]>>): Promise<void>;
}

/** The sampler RNG and plugin states at an epoch's start (what a mid-epoch resume replays from). */
interface EpochStart {
  rng: number[];
  plugins: Record<string, unknown>;
}

/** The states of the stateful plugins, by key. */
function pluginStates(run: Run): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const s of run.stateful) out[s.stateKey] = s.stateDict();
  return out;
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

/** Reads last.json of a run to resume (after finishing or discarding an interrupted save). */
async function readResume(paths: RunPaths, log: Logger): Promise<LastJson> {
  if (await isFailedRun(paths.dir)) {
    throw new DataError(
      `--resume ${paths.dir}: this run failed before its first checkpoint (see its FAILED file and train.log); ` +
        `start a new run instead`,
    );
  }
  const temp = await removeTempFiles(paths);
  if (temp.files.length > 0) {
    const mb = (temp.bytes / 2 ** 20).toFixed(1);
    log.info(
      `Removed ${temp.files.length} temp file(s) of an interrupted write (${mb} MB): ${
        temp.files.join(", ")
      }`,
    );
  }
  const rec = await recoverCheckpoints(paths);
  if (rec !== "clean") log.info(`Checkpoint journal: ${rec} an interrupted save`);
  try {
    return JSON.parse(await Deno.readTextFile(paths.lastJson)) as LastJson;
  } catch (err) {
    throw new DataError(
      `--resume ${paths.dir}: no readable checkpoints/last.json (${(err as Error).message})`,
      {
        cause: err,
      },
    );
  }
}

/** Writes inference.json (a new run only: the eval ops carry the measured normalization). */
async function writeInferenceMeta(paths: RunPaths, config: ResolvedConfig, data: RunData): Promise<void> {
  const meta: InferenceMeta = {
    classNames: data.classNames,
    channels: config.data.channels,
    imageSize: config.data.imageSize,
    evalOps: data.plugins.augment.evalOps,
    model: { dropoutRate: config.model.dropoutRate, fpn: config.model.fpn },
  };
  await writeAtomic(inferencePath(paths), JSON.stringify(meta, null, 2) + "\n");
}

/** What the training half of an epoch reports. */
interface TrainPart {
  /** LR of the last step */
  lr: number;
  loss: number;
  metrics: Metrics;
  seen: number;
  seconds: number;
  sampledPerClass: number[];
  expectedPerClass: number[];
}

/** The epoch's draw: the sampler's order (checked), the steps, and the images drawn and expected per class. */
function drawEpoch(run: Run, epoch: number, plan: StagePlan): {
  order: Int32Array;
  steps: number;
  used: number;
  sampledPerClass: number[];
  expectedPerClass: number[];
} {
  const { config, data, train } = run;
  const { sampler } = data.plugins;
  const numClasses = data.numClasses;
  const drawn = sampler.sample(train.labels, plan.activeClasses, epoch, run.rng);
  const order = checkOrder(drawn, train.count, pluginLabel("sampler", config.sampler.name), epoch);
  const steps = batchCount(order.length, config.train.batchSize, config.train.maxStepsPerEpoch);
  const used = Math.min(order.length, steps * config.train.batchSize);
  const sampledPerClass = new Array<number>(numClasses).fill(0);
  for (let i = 0; i < used; i++) sampledPerClass[train.labels[order[i]]]++;
  const expectedPerClass = sampler.expectedClassShare(train.labels, plan.activeClasses, numClasses, epoch)
    .map((share) => share * used);
  return { order, steps, used, sampledPerClass, expectedPerClass };
}

/** Writes the `last` set in the middle of an epoch (see mid-epoch.ts). */
async function saveMidEpoch(
  run: Run,
  plan: StagePlan,
  start: EpochStart,
  partial: Omit<PartialEpoch, "rng" | "plugins" | "acc">,
): Promise<void> {
  const full: PartialEpoch = {
    ...partial,
    rng: start.rng,
    plugins: start.plugins,
    acc: encodeAcc(run.session.epochState()),
  };
  const json: LastJson = {
    version: 1,
    epoch: partial.epoch - 1,
    globalStep: run.state.globalStep,
    rng: start.rng,
    plugins: start.plugins,
    ...run.session.decisions!.stateDict(),
    lastPlan: plan,
    history: run.state.history,
    partial: full,
  };
  await run.session.save(run.paths, ["last"], json);
}

/** The training half of an epoch: draw, batches, steps; returns the train figures. */
async function trainEpoch(run: Run, epoch: number, plan: StagePlan, start: EpochStart): Promise<TrainPart> {
  const { config, data, session, train } = run;
  const { augment } = data.plugins;
  const { order, steps, used, sampledPerClass, expectedPerClass } = drawEpoch(run, epoch, plan);
  await run.hook("onTrainEpochStart", epoch, plan, steps, used);
  const resumed = run.partial?.epoch === epoch ? run.partial : null;
  run.partial = null;
  if (resumed) session.restoreEpoch(decodeAcc(resumed.acc));
  let lr = resumed?.lr ?? baseLr(config),
    lossSum = resumed?.lossSum ?? 0,
    seen = resumed?.seen ?? 0,
    // images of the steps whose loss was read (train.logEverySteps): the running mean's divisor
    readSeen = resumed?.readSeen ?? resumed?.seen ?? 0;
  const t0 = performance.now() - (resumed?.seconds ?? 0) * 1000;
  const every = config.train.checkpointEverySteps;
  const batches = batchStream(train, order, {
    batchSize: config.train.batchSize,
    ops: augment.trainOps,
    seedOf: (k) => deriveSeed(config.seed, epoch, k),
    maxBatches: config.train.maxStepsPerEpoch,
    transformU8: augment.transformU8?.bind(augment),
    startBatch: resumed?.step ?? 0,
  });
  for await (const b of batches) {
    // dropout draws seeded per step, so a run resumed at any step draws what it would have
    manualSeed(deriveSeed(config.seed, "dropout", epoch, b.index));
    const pos = { epoch, index: b.index, steps, stageIndex: plan.stageIndex, history: run.state.history };
    const r = await session.step(b, pos);
    lr = r.lr;
    seen += b.shape[0];
    if (r.loss !== null) {
      lossSum += r.loss * b.shape[0];
      readSeen += b.shape[0];
    }
    run.state.globalStep++;
    const running = readSeen > 0 ? lossSum / readSeen : Number.NaN;
    await run.hook("onTrainBatchEnd", epoch, b.index + 1, running, seen, {
      lr,
      loss: r.loss,
      globalStep: run.state.globalStep,
    });
    const last = b.index + 1 === steps;
    if (!last && (run.stop.signal !== null || (every !== null && (b.index + 1) % every === 0))) {
      const seconds = (performance.now() - t0) / 1000;
      await saveMidEpoch(run, plan, start, {
        epoch,
        step: b.index + 1,
        seen,
        readSeen,
        lossSum,
        seconds,
        lr,
      });
      if (run.stop.signal !== null) throw interrupted(run, `epoch ${epoch + 1}, step ${b.index + 1}`);
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  const fig = session.endEpoch();
  const metrics = trainMetrics(fig, data.plugins.evaluator, data.numClasses, plan.activeClasses);
  await run.hook("onTrainEpochEnd", epoch, { loss: fig.loss, metrics, images: seen, steps, seconds });
  return { lr, loss: fig.loss, metrics, seen, seconds, sampledPerClass, expectedPerClass };
}

/** The InterruptedError of a run stopped by a signal, saying how to resume. */
function interrupted(run: Run, where: string): InterruptedError {
  return new InterruptedError(
    `${run.stop.signal}: interrupted at ${where}; a resumable checkpoint is saved. Resume with: ` +
      `deno task train --resume ${run.paths.dir}`,
  );
}

/** Validation of an epoch, when it is an evaluation epoch and there is a val split. */
async function validateEpoch(
  run: Run,
  epoch: number,
  plan: StagePlan,
): Promise<{ all: Metrics; active: Metrics } | undefined> {
  const { config, data, val } = run;
  const isEvalEpoch = (epoch + 1) % config.train.evalEvery === 0 || epoch + 1 === config.train.epochs;
  if (!val || !isEvalEpoch) return undefined;
  await run.hook("onValidationStart", epoch);
  const { all, active } = await run.session.validate(val, {
    evaluator: data.plugins.evaluator,
    loss: data.plugins.loss,
    batchSize: config.train.batchSize,
    ops: data.plugins.augment.evalOps,
    plan,
  });
  await run.hook("onValidationEnd", epoch, { all, active });
  return { all, active };
}

/** One epoch of the loop (see the module doc); returns whether early stopping says stop. */
async function runEpoch(run: Run, epoch: number): Promise<boolean> {
  const { config, data, session, state } = run;
  manualSeed(deriveSeed(config.seed, "epoch", epoch));
  const start: EpochStart = { rng: run.rng.state(), plugins: pluginStates(run) };
  const plan = data.plugins.stage.plan(epoch, state.history);
  if (!samePlan(state.lastPlan, plan)) await run.hook("onStageChange", epoch, plan, state.lastPlan);
  state.lastPlan = plan;
  session.beginEpoch(epoch, plan, state.history);
  const t = await trainEpoch(run, epoch, plan, start);
  const val = await validateEpoch(run, epoch, plan);
  const figures: EpochMetrics = {
    epoch,
    stage: plan.stageIndex,
    activeClasses: plan.activeClasses,
    train: {
      loss: t.loss,
      accuracy: t.metrics.accuracy,
      imagesPerSecond: t.seen / Math.max(t.seconds, 1e-9),
      seconds: t.seconds,
    },
    ...(val ? { val } : {}),
    lr: t.lr,
  };
  state.history.push(figures);
  const decision = session.decide(figures, val !== undefined || !run.val);
  const decided = session.decisions!.stateDict();
  const record: EpochRecord = {
    ...figures,
    globalStep: state.globalStep,
    trainMetrics: t.metrics,
    sampledPerClass: t.sampledPerClass,
    expectedPerClass: t.expectedPerClass,
    stageCount: plan.stageCount,
    bestMetric: decided.best,
    earlyStopping: decided.earlyStopping,
  };
  await run.hook("onEpochEnd", record);
  const plugins = pluginStates(run);
  const json: LastJson = {
    version: 1,
    epoch,
    globalStep: state.globalStep,
    rng: run.rng.state(),
    plugins,
    ...decided,
    lastPlan: plan,
    history: state.history,
  };
  await session.save(run.paths, decision.actions, json);
  await run.hook("onCheckpointSave", epoch, decision.actions);
  return decision.stop;
}

/** Builds the session and the loop state of a run (restored from `resume` when given). */
async function startRun(
  config: ResolvedConfig,
  paths: RunPaths,
  data: RunData,
  resume: LastJson | null,
): Promise<{ session: TrainSession; rng: Rng; stateful: Stateful[]; state: LoopState }> {
  const es = config.train.earlyStopping;
  const session = await TrainSession.open(sessionSpec(config, data.numClasses));
  session.train({
    loss: data.plugins.loss,
    nativeLoss: config.train.nativeLoss,
    lr: scheduleOf(config),
    decisions: new RunDecisions(config.train.bestMetric, data.splits.val !== undefined, es),
    guard: new DivergenceGuard(),
    lossLabel: pluginLabel("loss", config.loss.name),
    evaluator: data.plugins.evaluator,
  });
  const { stage, sampler, loss, augment } = data.plugins;
  const stateful = ([stage, sampler, loss, augment] as unknown[]).filter(isStateful);
  const rng = createRng(deriveSeed(config.seed, "sampler"));
  const state: LoopState = { history: [], globalStep: 0, lastPlan: null };
  if (resume) {
    await session.restore(paths, { best: resume.best, earlyStopping: resume.earlyStopping });
    // a mid-epoch checkpoint replays its epoch from the epoch's start state
    const from = resume.partial ?? resume;
    rng.setState(from.rng);
    for (const s of stateful) if (s.stateKey in from.plugins) s.loadStateDict(from.plugins[s.stateKey]);
    Object.assign(state, {
      history: resume.history,
      globalStep: resume.globalStep,
      lastPlan: resume.lastPlan,
    });
  }
  return { session, rng, stateful, state };
}

/**
 * SIGINT/SIGTERM ask the run to stop: it finishes the current step, writes a resumable
 * checkpoint and throws InterruptedError. A second signal quits at once (exit 130). Returns the
 * function that removes the listeners.
 */
function watchSignals(stop: { signal: string | null }, log: Logger): () => void {
  const listeners = (["SIGINT", "SIGTERM"] as const).map((sig) => {
    const fn = (): void => {
      if (stop.signal !== null) Deno.exit(130);
      stop.signal = sig;
      log.warn(
        `${sig}: finishing the current step, then saving a resumable checkpoint (again to quit at once)`,
      );
    };
    Deno.addSignalListener(sig, fn);
    return [sig, fn] as const;
  });
  return () => listeners.forEach(([sig, fn]) => Deno.removeSignalListener(sig, fn));
}

/**
 * A new run writes its config.yaml; a resumed one reads last.json (cleaning up an interrupted
 * save), drops metrics.jsonl lines after it, and checks and records `--set` overrides.
 */
async function prepareRunFolder(
  paths: RunPaths,
  config: ResolvedConfig,
  opts: RunOptions,
  log: Logger,
): Promise<LastJson | null> {
  if (!opts.resumeDir) {
    await writeAtomic(paths.config, configToYaml(config));
    return null;
  }
  const resume = await readResume(paths, log);
  await truncateMetrics(paths.metrics, resume.epoch);
  const overrides = opts.resumeOverrides ?? [];
  if (overrides.length > 0) {
    checkResumeOverrides(overrides);
    const before = await loadConfig(paths.config);
    await recordResumeOverrides(paths, before, config, overrides, resume.epoch + 1, log);
  }
  return resume;
}

/**
 * train.log keeps the error (the console gets it once, from whoever catches it: the CLI prints
 * it); a new run without any checkpoint is marked FAILED.
 */
async function recordFailure(paths: RunPaths, err: unknown, isNew: boolean, log: Logger): Promise<void> {
  log.error(`${(err as Error).name ?? "Error"}: ${(err as Error).message ?? String(err)}`, {
    console: false,
  });
  if (isNew && !(await exists(paths.lastJson))) {
    await markFailed(paths, err);
    log.error(`Marked ${paths.dir} as failed (no checkpoint was written): see its FAILED file`, {
      console: false,
    });
  }
}

/** Runs (or resumes) a training run; see the module doc. */
export async function runPipeline(config: ResolvedConfig, opts: RunOptions = {}): Promise<RunResult> {
  const paths = opts.resumeDir
    ? runPaths(opts.resumeDir)
    : await createRunDir(opts.out ?? "runs", config.name);
  const progress = opts.console !== false ? createProgress() : null;
  const stop = { signal: null as string | null };
  const log = createLogger({
    file: paths.log,
    console: opts.console !== false,
    debug: opts.debug,
    beforeConsole: () => progress?.clear(),
  });
  const disposables: { close(): void }[] = [{ close: watchSignals(stop, log) }];
  const callbacks: Callback[] = [];
  const debug = opts.debug ? (l: string): void => log.debug(l) : null;
  try {
    config = await resolveAutoLr(config, paths, log);
    const resume = await prepareRunFolder(paths, config, opts, log);
    if (config.train.threads !== null) setNumThreads(config.train.threads);
    const data = await openRunData(config, {
      log: (l) => log.info(l),
      warn: (l) => log.warn(l),
      file: opts.configFile ?? "config",
      splits: ["train", "val"],
    });
    disposables.push(data);
    if (!data.dataset.val) log.warn("The dataset has no val split: no validation metrics, best = last");
    if (!resume) await writeInferenceMeta(paths, config, data);
    const { session, rng, stateful, state } = await startRun(config, paths, data, resume);
    disposables.push(session);
    callbacks.push(
      seedLogCallback(log, data.classNames, config.train.epochs),
      metricsFileCallback(paths.metrics),
      reportCallback(paths.dir, data.classNames),
      tensorboardCallback(),
    );
    if (progress) callbacks.push(progressCallback(progress, config.train.epochs));
    callbacks.push(...(opts.callbacks ?? []));
    const run: Run = {
      config,
      paths,
      data,
      train: data.splits.train!,
      val: data.splits.val ?? null,
      session,
      rng,
      stateful,
      state,
      stop,
      partial: resume?.partial ?? null,
      hook: (name, ...args) => callHooks(callbacks, name, debug, ...args),
    };
    return await loop(run, resume ? resume.epoch + 1 : 0, log);
  } catch (err) {
    try {
      await callHooks(callbacks, "onException", debug, err);
    } catch (hookErr) {
      log.error(`onException hook failed: ${(hookErr as Error).message}`);
    }
    await recordFailure(paths, err, opts.resumeDir === undefined, log);
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

/** The epochs from `startEpoch` on, then onFitEnd and the closing log line. */
async function loop(run: Run, startEpoch: number, log: Logger): Promise<RunResult> {
  const { config, data } = run;
  await run.hook("onFitStart", {
    config,
    paths: run.paths,
    classNames: data.classNames,
    numClasses: data.numClasses,
    startEpoch,
    trainCount: run.train.count,
    valCount: run.val?.count ?? 0,
  });
  let stoppedEarly = false;
  let epoch = startEpoch;
  for (; epoch < config.train.epochs && !stoppedEarly; epoch++) {
    stoppedEarly = await runEpoch(run, epoch);
    if (run.stop.signal !== null && epoch + 1 < config.train.epochs) {
      throw interrupted(run, `the end of epoch ${epoch + 1}`);
    }
    if (stoppedEarly) {
      const es = config.train.earlyStopping!;
      log.info(`Early stopping: no improvement of ${es.metric} for ${es.patience} evaluations`);
    }
  }
  const best = run.session.decisions!.best;
  const result: RunResult = {
    dir: run.paths.dir,
    epochsRun: epoch - startEpoch,
    lastEpoch: epoch - 1,
    stoppedEarly,
    best,
    history: run.state.history,
  };
  await run.hook("onFitEnd", result);
  const value = best.value === null ? "n/a" : best.value.toFixed(4);
  log.info(
    `Finished: ${epoch} epochs; best ${best.name} = ${value}` +
      (best.epoch === null ? "" : ` (epoch ${best.epoch + 1})`),
  );
  return result;
}
