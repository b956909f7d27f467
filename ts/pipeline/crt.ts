/**
 * Classifier re-training (cRT, Kang et al. ICLR 2020): keep a trained run's features, re-train
 * only the head with class-balanced sampling for a few epochs. Features learnt with instance
 * sampling are usually the better ones; the head is where the class bias sits.
 *
 * The native trainer runs with `trainable: "head"`: the backbone runs without an autograd graph
 * and its weights cannot change (the model has no BatchNorm, so there are no running
 * statistics to freeze either). Output, in the run folder: `checkpoints/crt.safetensors` (the
 * whole model, usable by eval/predict) and `crt.json` (val metrics before and after).
 */
import { join } from "node:path";
import { manualSeed } from "../native/library.ts";
import { loadConfig, type ResolvedConfig } from "./config.ts";
import { batchCount, batchStream } from "./data.ts";
import { DataError, UsageError } from "./errors.ts";
import { createPlugin, type PluginSection } from "./registry.ts";
import { createRng, deriveSeed } from "./rng.ts";
import { checkOrder, pluginLabel } from "./plugin-checks.ts";
import { openRunData, pluginContext, type RunData } from "./run-data.ts";
import { writeAtomic } from "./rundir.ts";
import { formatSeedLines } from "./seed-format.ts";
import { baseLr, sessionSpec, TrainSession } from "./session.ts";
import type { Loss, Metrics, Sampler, StagePlan } from "./types.ts";

/** Options of `retrainClassifier`. */
export interface CrtOptions {
  /** a finished (or stopped) run folder */
  runDir: string;
  /** which weights to start from */
  checkpoint?: "best" | "last";
  epochs?: number;
  /** default: inverse-frequency (class-balanced) */
  sampler?: PluginSection;
  /** default: cross-entropy */
  loss?: PluginSection;
  /** default: the run's lr */
  lr?: number;
  /** default: the run's */
  batchSize?: number;
  maxStepsPerEpoch?: number | null;
  log?: (line: string) => void;
}

/** What `retrainClassifier` returns (also written to crt.json). */
export interface CrtResult {
  checkpoint: string;
  epochs: number;
  sampler: PluginSection;
  loss: PluginSection;
  lr: number;
  before: Metrics;
  after: Metrics;
  classNames: string[];
}

/** The run's checkpoint cRT starts from; a DataError when the run has none. */
async function sourceCheckpoint(runDir: string, which: "best" | "last"): Promise<string> {
  const source = join(runDir, "checkpoints", `${which}.safetensors`);
  try {
    await Deno.stat(source);
  } catch {
    throw new DataError(
      `crt: ${source} does not exist (is ${runDir} a run folder with a ${which} checkpoint?)`,
    );
  }
  return source;
}

/** The head-training epochs of cRT: class-balanced draws over all classes, one step per batch. */
async function trainHead(session: TrainSession, o: {
  config: ResolvedConfig;
  data: RunData;
  sampler: Sampler;
  epochs: number;
  batchSize: number;
  maxSteps: number | null;
  samplerLabel: string;
  log(line: string): void;
}): Promise<void> {
  const { config, data, sampler, epochs, batchSize } = o;
  const train = data.splits.train!;
  const all = Array.from({ length: data.numClasses }, (_, k) => k);
  const plan: StagePlan = { activeClasses: all, stageIndex: 0, stageCount: 1, maskInactive: false };
  const rng = createRng(deriveSeed(config.seed, "crt-sampler"));
  for (let epoch = 0; epoch < epochs; epoch++) {
    manualSeed(deriveSeed(config.seed, "crt-epoch", epoch));
    session.beginEpoch(epoch, plan);
    const order = checkOrder(
      sampler.sample(train.labels, all, epoch, rng),
      train.count,
      o.samplerLabel,
      epoch,
    );
    const steps = batchCount(order.length, batchSize, o.maxSteps);
    const batches = batchStream(train, order, {
      batchSize,
      ops: data.plugins.augment.trainOps,
      seedOf: (k) => deriveSeed(config.seed, "crt", epoch, k),
      maxBatches: o.maxSteps,
      transformU8: data.plugins.augment.transformU8?.bind(data.plugins.augment),
    });
    for await (const b of batches) {
      await session.step(b, { epoch, index: b.index, steps, stageIndex: 0, history: [] });
    }
    o.log(
      `crt: epoch ${epoch + 1}/${epochs}: ${steps} steps, train loss ${session.endEpoch().loss.toFixed(4)}`,
    );
  }
}

/** Re-trains the head of `runDir`'s model; see the module doc. */
export async function retrainClassifier(opts: CrtOptions): Promise<CrtResult> {
  const log = opts.log ?? ((l: string): void => console.error(l));
  const config = await loadConfig(join(opts.runDir, "config.yaml"));
  const which = opts.checkpoint ?? "best";
  const source = await sourceCheckpoint(opts.runDir, which);
  const epochs = opts.epochs ?? 2;
  if (!Number.isInteger(epochs) || epochs < 1) {
    throw new UsageError(`crt: epochs must be an integer >= 1; got ${epochs}`);
  }
  const samplerSection = opts.sampler ?? { name: "inverse-frequency" };
  const lossSection = opts.loss ?? { name: "cross-entropy" };
  const lr = opts.lr ?? baseLr(config);
  const batchSize = opts.batchSize ?? config.train.batchSize;

  const ctx = pluginContext(config, log, epochs);
  const sampler = await createPlugin<Sampler>("sample", samplerSection, ctx);
  const loss = await createPlugin<Loss>("loss", lossSection, ctx);
  const data = await openRunData(config, { log, epochs, splits: ["train", "val"] });
  let session: TrainSession | null = null;
  try {
    const { val } = data.splits;
    if (!val) {
      throw new DataError("crt: the run's dataset has no val split to measure the re-trained head on");
    }
    loss.setData?.(data.info);
    const numClasses = data.numClasses;
    session = await TrainSession.open(
      sessionSpec(config, numClasses, { trainable: "head", weights: source, lr, trainerSeedKey: "crt" }),
    );
    const evaluate = async (): Promise<Metrics> =>
      (await session!.validate(val, {
        evaluator: data.plugins.evaluator,
        loss,
        batchSize,
        ops: data.plugins.augment.evalOps,
      })).all;
    const before = await evaluate();
    log(
      `crt: ${which} checkpoint on val: accuracy ${pct(before.accuracy)}, macro-F1 ${
        before.macroF1.toFixed(4)
      }`,
    );
    // the loss plugin may not be native-capable; crt has no `nativeLoss: never` of its own, so the run's applies
    session.train({
      loss,
      nativeLoss: config.train.nativeLoss,
      lr: () => lr,
      lossLabel: pluginLabel("loss", lossSection.name),
    });
    await trainHead(session, {
      config,
      data,
      sampler,
      epochs,
      batchSize,
      maxSteps: opts.maxStepsPerEpoch ?? null,
      samplerLabel: pluginLabel("sampler", samplerSection.name),
      log,
    });
    const after = await evaluate();
    const out = join(opts.runDir, "checkpoints", "crt.safetensors");
    await session.model.save(out);
    const result: CrtResult = {
      checkpoint: out,
      epochs,
      sampler: samplerSection,
      loss: lossSection,
      lr,
      before,
      after,
      classNames: data.classNames,
    };
    await writeAtomic(join(opts.runDir, "crt.json"), JSON.stringify(result, null, 2) + "\n");
    return result;
  } finally {
    session?.close();
    data.close();
  }
}

function pct(v: number): string {
  return `${(100 * v).toFixed(2)}%`;
}

/** Before/after lines: the seed's figures and per-class recall. */
export function formatCrt(r: CrtResult): string {
  const lines = [`cRT: ${r.epochs} epochs, sampler ${r.sampler.name}, loss ${r.loss.name}, lr ${r.lr}`];
  lines.push("before:", ...formatSeedLines(r.before, r.classNames).slice(0, 4).map((l) => `  ${l}`));
  lines.push("after:", ...formatSeedLines(r.after, r.classNames).slice(0, 4).map((l) => `  ${l}`));
  lines.push("per-class recall (before -> after):");
  r.classNames.forEach((n, k) => {
    lines.push(
      `  ${k} ${n}: ${r.before.perClass[k].recall.toFixed(3)} -> ${r.after.perClass[k].recall.toFixed(3)}`,
    );
  });
  lines.push(`weights: ${r.checkpoint}`);
  return lines.join("\n");
}
