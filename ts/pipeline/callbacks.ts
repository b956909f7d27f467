/**
 * The hooks of a run (Lightning naming) and the built-in callbacks: the seed-format log,
 * metrics.jsonl, report.md and the progress line. Every hook is called through `callHooks`,
 * which times it (DEBUG log); the built-ins are callbacks like a user's.
 */
import type { ResolvedConfig } from "./config.ts";
import type { Logger } from "./log.ts";
import type { BestMetric, EarlyStoppingState } from "./policies.ts";
import type { Progress } from "./progress.ts";
import { writeReport } from "./report.ts";
import { writeHtmlReport } from "./report-html.ts";
import { appendJsonLine, type RunPaths } from "./rundir.ts";
import { formatSeedLines } from "./seed-format.ts";
import type { EpochMetrics, Metrics, StagePlan } from "./types.ts";

/** What a finished run returns. */
export interface RunResult {
  dir: string;
  epochsRun: number;
  lastEpoch: number;
  stoppedEarly: boolean;
  best: BestMetric;
  history: EpochMetrics[];
}

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

/** One step's own figures, for step-level logs (TensorBoard): its LR, its loss when read, the global step. */
export interface BatchInfo {
  lr: number;
  /** the batch's mean loss; null when the session did not read it this step */
  loss: number | null;
  /** steps taken in the whole run, this one included */
  globalStep: number;
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
  bestMetric: BestMetric;
  earlyStopping: EarlyStoppingState | null;
}

/** Optional hooks (Lightning naming); called only through `callHooks`. */
export interface Callback {
  onFitStart?(info: RunInfo): void | Promise<void>;
  onStageChange?(epoch: number, plan: StagePlan, previous: StagePlan | null): void | Promise<void>;
  onTrainEpochStart?(epoch: number, plan: StagePlan, steps: number, images: number): void | Promise<void>;
  /**
   * after each step: `loss` is the running mean of the epoch's losses read so far (NaN before the
   * first read, see `train.logEverySteps`); `batch` has this step's own figures
   */
  onTrainBatchEnd?(
    epoch: number,
    step: number,
    loss: number,
    images: number,
    batch: BatchInfo,
  ): void | Promise<void>;
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

// ---- built-in callbacks ---------------------------------------------------------------------------

/** The seed-format log lines of a run (train.log and the console). */
export function seedLogCallback(log: Logger, classNames: string[], epochs: number): Callback {
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

/** Appends each epoch's record to metrics.jsonl. */
export function metricsFileCallback(path: string): Callback {
  return { onEpochEnd: (record): Promise<void> => appendJsonLine(path, record) };
}

/** Rebuilds report.md, its charts and report.html after every epoch (after metrics.jsonl has the epoch). */
export function reportCallback(dir: string, classNames: string[]): Callback {
  return {
    onEpochEnd: async (): Promise<void> => {
      await writeReport(dir, classNames);
      await writeHtmlReport(dir, classNames);
    },
  };
}

/** The console progress line of the training batches. */
export function progressCallback(p: Progress, epochs: number): Callback {
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
