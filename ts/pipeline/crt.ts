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
import { createTrainer, loadModel } from "../model/hybridnet.ts";
import type { NativeLossInput } from "../model/options.ts";
import { manualSeed } from "../native/library.ts";
import { formatSeedLines } from "../plugins/evaluate/classification.ts";
import { loadConfig } from "./config.ts";
import { batchCount, batchStream, DataError, openSplit, type SplitImages } from "./data.ts";
import { createPlugin, type PluginSection } from "./registry.ts";
import { createRng, deriveSeed } from "./rng.ts";
import { writeAtomic } from "./rundir.ts";
import { createPlugins, loadDataset, predictSplit, provideDatasetStats, trainDataInfo } from "./runner.ts";
import type { Loss, Metrics, PluginContext, Sampler } from "./types.ts";

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

/** Re-trains the head of `runDir`'s model; see the module doc. */
export async function retrainClassifier(opts: CrtOptions): Promise<CrtResult> {
  const log = opts.log ?? ((l: string): void => console.error(l));
  const config = await loadConfig(join(opts.runDir, "config.yaml"));
  const which = opts.checkpoint ?? "best";
  const source = join(opts.runDir, "checkpoints", `${which}.safetensors`);
  try {
    await Deno.stat(source);
  } catch {
    throw new DataError(
      `crt: ${source} does not exist (is ${opts.runDir} a run folder with a ${which} checkpoint?)`,
    );
  }
  const epochs = opts.epochs ?? 2;
  if (!Number.isInteger(epochs) || epochs < 1) {
    throw new DataError(`crt: epochs must be an integer >= 1; got ${epochs}`);
  }
  const samplerSection = opts.sampler ?? { name: "inverse-frequency" };
  const lossSection = opts.loss ?? { name: "cross-entropy" };
  const lr = opts.lr ?? config.train.optimizer.lr;
  const batchSize = opts.batchSize ?? config.train.batchSize;

  const ctx: PluginContext = { configDir: config.baseDir, seed: config.seed, epochs, log };
  const plugins = await createPlugins(config, ctx);
  const sampler = await createPlugin<Sampler>("sample", samplerSection, ctx);
  const loss = await createPlugin<Loss>("loss", lossSection, ctx);
  const ds = await loadDataset(plugins.loader, config);
  if (!ds.val) {
    throw new DataError("crt: the run's dataset has no val split to measure the re-trained head on");
  }
  const numClasses = ds.classNames.length;
  const info = trainDataInfo(ds.classNames, ds.train.labels);
  loss.setData?.(info);
  plugins.evaluator.setData?.(info);

  const [h, w] = config.data.imageSize;
  const opened: SplitImages[] = [];
  const open = async (s: NonNullable<typeof ds.val>, splitName: string): Promise<SplitImages> => {
    const split = await openSplit(s, {
      height: h,
      width: w,
      channels: config.data.channels,
      cacheDir: config.data.cacheDir,
      onBadImage: config.data.onBadImage,
      log,
      splitName,
    });
    opened.push(split);
    return split;
  };
  const model = await loadModel(source, {
    numClasses,
    inputChannels: config.data.channels,
    dropoutRate: config.model.dropoutRate,
    fpn: config.model.fpn,
  });
  try {
    const train = await open(ds.train, "train");
    const val = await open(ds.val, "val");
    await provideDatasetStats(plugins.augment, train);
    const evaluate = async (): Promise<Metrics> => {
      const logits = await predictSplit(model, val, batchSize, plugins.augment.evalOps);
      const l = loss.compute(logits, val.labels, val.count, numClasses, null).loss;
      return plugins.evaluator.evaluate(logits, val.labels, val.count, numClasses, l);
    };
    const before = await evaluate();
    log(
      `crt: ${which} checkpoint on val: accuracy ${pct(before.accuracy)}, macro-F1 ${
        before.macroF1.toFixed(4)
      }`,
    );

    const trainer = createTrainer(model, {
      optimizer: { ...config.train.optimizer, lr },
      clipGradNorm: config.train.clipGradNorm,
      seed: deriveSeed(config.seed, "crt"),
      trainable: "head",
    });
    const all = Array.from({ length: numClasses }, (_, k) => k);
    const plan = { activeClasses: all, stageIndex: 0, stageCount: 1, maskInactive: false };
    const rng = createRng(deriveSeed(config.seed, "crt-sampler"));
    const useNative = typeof loss.native === "function";
    for (let epoch = 0; epoch < epochs; epoch++) {
      manualSeed(deriveSeed(config.seed, "crt-epoch", epoch));
      loss.startEpoch?.(epoch, plan);
      if (useNative) trainer.setLoss(loss.native!(null) as NativeLossInput);
      const order = sampler.sample(train.labels, all, epoch, rng);
      const steps = batchCount(order.length, batchSize, opts.maxStepsPerEpoch ?? null);
      let sum = 0, seen = 0;
      for await (
        const b of batchStream(train, order, {
          batchSize,
          ops: plugins.augment.trainOps,
          seedOf: (k) => deriveSeed(config.seed, "crt", epoch, k),
          maxBatches: opts.maxStepsPerEpoch ?? null,
          transformU8: plugins.augment.transformU8?.bind(plugins.augment),
        })
      ) {
        const n = b.shape[0];
        let value: number;
        if (useNative) {
          value = (await trainer.trainStep(b.x, b.shape, b.targets)).loss;
        } else {
          const logits = await trainer.forwardTrain(b.x, b.shape);
          const r = loss.compute(logits, b.targets, n, numClasses, null);
          await trainer.backwardStep(r.grad);
          value = r.loss;
        }
        if (!Number.isFinite(value)) {
          throw new DataError(`crt: loss is ${value} at epoch ${epoch + 1}, step ${b.index + 1}`);
        }
        sum += value * n;
        seen += n;
      }
      log(
        `crt: epoch ${epoch + 1}/${epochs}: ${steps} steps, train loss ${
          (sum / Math.max(seen, 1)).toFixed(4)
        }`,
      );
    }
    const after = await evaluate();
    const out = join(opts.runDir, "checkpoints", "crt.safetensors");
    await model.save(out);
    const result: CrtResult = {
      checkpoint: out,
      epochs,
      sampler: samplerSection,
      loss: lossSection,
      lr,
      before,
      after,
      classNames: ds.classNames,
    };
    await writeAtomic(join(opts.runDir, "crt.json"), JSON.stringify(result, null, 2) + "\n");
    return result;
  } finally {
    for (const s of opened) s.images.close();
    model.close();
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
