/**
 * Train stage "auto-curriculum": a class curriculum that moves to the next stage when the
 * active classes' validation metric stops improving, instead of after a hand-picked number of
 * epochs (the seed author's "choosing stages by hand is hard").
 *
 * A stage ends after its epoch when any of these holds (never before `minEpochsPerStage`):
 * - `threshold`: the stage's latest evaluated metric >= threshold (<= for a loss);
 * - plateau: the last `patience` evaluations of the stage brought no gain > `minDelta` over
 *   the stage's best before them;
 * - `maxEpochsPerStage` epochs were spent in it.
 * The last stage runs to the end of training, and starts at the latest `minFinalShare` of the run
 * (default a quarter) or `minFinalEpochs` before the end, whichever is longer, so a slow stage
 * cannot eat the budget of the full class set. A config that guarantees the last stage nothing
 * (both 0, and no `maxEpochsPerStage` short enough) is refused. Stages are class lists, or
 * generated from the class order ("extremes-inward", the seed's shape for ordinal labels).
 *
 * The decision is a pure function of the run's history (each epoch records its stage), which
 * the checkpoint already keeps, so a resumed run takes the same decisions: state is `{}`.
 */
import { z } from "zod";
import { metricMode, readMetric } from "../../pipeline/metric-path.ts";
import type { EpochMetrics, PluginModule, StagePlan } from "../../pipeline/types.ts";
import { type ClassCountAwareStage, loadEmptyState } from "./common.ts";
import { generateStages } from "./order.ts";

export const configSchema = z.object({
  /** class lists, or a generated order */
  stages: z.union([
    z.enum(["extremes-inward", "middle-outward"]),
    z.array(z.array(z.number().int().min(0)).min(1)).min(1),
  ]).default("extremes-inward"),
  /** a metric path of the epoch figures; `val.active.*` judges the classes being learned */
  metric: z.string().regex(/^(val\.(all|active)|train)\.[A-Za-z0-9]+$/).default("val.active.macroF1"),
  patience: z.number().int().positive().default(2),
  minDelta: z.number().min(0).default(0.005),
  threshold: z.number().nullable().default(null),
  minEpochsPerStage: z.number().int().positive().default(1),
  maxEpochsPerStage: z.number().int().positive().nullable().default(null),
  /** the last stage (all classes) starts at the latest this many epochs before the run ends */
  minFinalEpochs: z.number().int().min(0).default(0),
  /** …or at the latest this share of the run before its end, whichever is longer */
  minFinalShare: z.number().min(0).lt(1).default(0.25),
  maskInactive: z.boolean().default(true),
}).strict();

export type AutoCurriculumConfig = z.infer<typeof configSchema>;

/** The stage lists for `numClasses` classes. */
export function autoStages(cfg: AutoCurriculumConfig, numClasses: number): number[][] {
  return typeof cfg.stages === "string" ? generateStages(cfg.stages, numClasses) : cfg.stages;
}

/** Epochs at the end of a run of `runEpochs` that belong to the last stage whatever the metric says. */
export function finalEpochs(cfg: AutoCurriculumConfig, runEpochs: number): number {
  const byShare = Number.isFinite(runEpochs) ? Math.ceil(cfg.minFinalShare * runEpochs) : 0;
  return Math.max(cfg.minFinalEpochs, byShare);
}

/** Problems of the config against `numClasses` classes in a run of `runEpochs` epochs. */
export function autoCurriculumIssues(
  cfg: AutoCurriculumConfig,
  numClasses: number,
  runEpochs = Infinity,
): string[] {
  const out: string[] = [];
  if (typeof cfg.stages !== "string") {
    cfg.stages.forEach((st, s) => {
      for (const k of st) {
        if (k >= numClasses) {
          out.push(`auto-curriculum: stages[${s}] lists class ${k}, but there are ${numClasses} classes`);
        }
      }
      const dup = st.find((k, i) => st.indexOf(k) !== i);
      if (dup !== undefined) out.push(`auto-curriculum: stages[${s}] lists class ${dup} twice`);
    });
  } else if (numClasses < 2) {
    out.push(`auto-curriculum: "${cfg.stages}" needs at least 2 classes`);
  }
  if (cfg.maxEpochsPerStage !== null && cfg.maxEpochsPerStage < cfg.minEpochsPerStage) {
    out.push(
      `auto-curriculum: maxEpochsPerStage ${cfg.maxEpochsPerStage} is below minEpochsPerStage ${cfg.minEpochsPerStage}`,
    );
  }
  if (out.length === 0 && Number.isFinite(runEpochs)) {
    const stageCount = autoStages(cfg, numClasses).length;
    const capped = cfg.maxEpochsPerStage !== null && cfg.maxEpochsPerStage * (stageCount - 1) < runEpochs;
    if (finalEpochs(cfg, runEpochs) < 1 && !capped) {
      out.push(
        `auto-curriculum: nothing guarantees the last stage (all classes) ever starts in ${runEpochs} epochs: ` +
          `set minFinalShare (e.g. 0.25) or minFinalEpochs >= 1, or a maxEpochsPerStage below ` +
          `${Math.ceil(runEpochs / Math.max(stageCount - 1, 1))}`,
      );
    }
  }
  return out;
}

/** Why a stage ends after the epochs `inStage` (its records, oldest first); null = it goes on. */
export function advanceReason(cfg: AutoCurriculumConfig, inStage: EpochMetrics[]): string | null {
  if (inStage.length < cfg.minEpochsPerStage) return null;
  if (cfg.maxEpochsPerStage !== null && inStage.length >= cfg.maxEpochsPerStage) {
    return `${inStage.length} epochs (maxEpochsPerStage)`;
  }
  const values = inStage.map((m) => readMetric(m, cfg.metric)).filter((v): v is number =>
    v !== undefined && Number.isFinite(v)
  );
  if (values.length === 0) return null;
  const sign = metricMode(cfg.metric) === "max" ? 1 : -1;
  const last = values[values.length - 1];
  if (cfg.threshold !== null && sign * last >= sign * cfg.threshold) {
    return `${cfg.metric} ${last.toFixed(4)} reached threshold ${cfg.threshold}`;
  }
  if (values.length > cfg.patience) {
    const before = values.slice(0, values.length - cfg.patience).map((v) => sign * v);
    const recent = values.slice(values.length - cfg.patience).map((v) => sign * v);
    if (Math.max(...recent) <= Math.max(...before) + cfg.minDelta) {
      return `${cfg.metric} plateaued (no gain > ${cfg.minDelta} in ${cfg.patience} evaluations)`;
    }
  }
  return null;
}

/**
 * The stage of `epoch`, decided from the history (newest last); `runEpochs` = the run's
 * epochs (for `minFinalShare` and `minFinalEpochs`).
 */
export function autoStageIndex(
  cfg: AutoCurriculumConfig,
  stageCount: number,
  history: EpochMetrics[],
  epoch: number = history.length,
  runEpochs: number = Infinity,
): number {
  if (epoch >= runEpochs - finalEpochs(cfg, runEpochs)) return stageCount - 1;
  if (history.length === 0) return 0;
  const current = history[history.length - 1].stage;
  if (current >= stageCount - 1) return stageCount - 1;
  let first = history.length - 1;
  while (first > 0 && history[first - 1].stage === current) first--;
  return advanceReason(cfg, history.slice(first)) === null ? current : current + 1;
}

export const plugin: PluginModule<typeof configSchema, ClassCountAwareStage> = {
  name: "auto-curriculum",
  configSchema,
  create(cfg, ctx): ClassCountAwareStage {
    let stages: number[][] | null = typeof cfg.stages === "string" ? null : cfg.stages;
    return {
      stateKey: "stage",
      setNumClasses(n: number): void {
        const issues = autoCurriculumIssues(cfg, n, ctx.epochs);
        if (issues.length > 0) throw new Error(issues.join("\n"));
        stages = autoStages(cfg, n);
      },
      validate(n: number): string[] {
        return autoCurriculumIssues(cfg, n, ctx.epochs);
      },
      plan(epoch: number, history: EpochMetrics[]): StagePlan {
        if (stages === null) {
          throw new Error(
            "auto-curriculum: generated stages need the class count (call setNumClasses first)",
          );
        }
        const s = autoStageIndex(cfg, stages.length, history, epoch, ctx.epochs);
        const prev = history.at(-1)?.stage;
        if (prev !== undefined && prev !== s) {
          const first = history.findIndex((m) => m.stage === prev);
          const why = advanceReason(cfg, history.slice(first)) ??
            `the last ${
              finalEpochs(cfg, ctx.epochs)
            } epochs are kept for all classes (minFinalShare/minFinalEpochs)`;
          ctx.log(`auto-curriculum: stage ${prev + 1} ends: ${why}`);
        }
        return {
          activeClasses: [...new Set(stages[s])].sort((a, b) => a - b),
          stageIndex: s,
          stageCount: stages.length,
          maskInactive: cfg.maskInactive,
        };
      },
      stateDict(): unknown {
        return {};
      },
      loadStateDict(state: unknown): void {
        loadEmptyState("auto-curriculum", state);
      },
    };
  },
};
