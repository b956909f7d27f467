/**
 * Train stage "curriculum" (the seed's): fixed stages of classes. The stages but the last run
 * for `epochs[s]` epochs, or for `shares[s]` of the run (train.epochs, rounded to whole epochs,
 * at least one each), so a curriculum scales with the run's length; with neither, every stage
 * gets an equal share. The last stage runs to the end of training (an entry for it is ignored),
 * and a curriculum whose last stage would never start is refused, saying what to change.
 * Epochs are counted from 0. With `maskInactive`, the loss leaves out inactive classes' logits.
 *
 * The plan is a pure function of the epoch, so the checkpoint state is `{}`.
 */
import { z } from "zod";
import type { EpochMetrics, PluginModule, StagePlan } from "../../pipeline/types.ts";
import { type ClassCountAwareStage, loadEmptyState } from "./common.ts";

/** The seed's stages: [0,7] -> [0,1,6,7] -> [0,1,2,5,6,7] -> all 8. */
export const DEFAULT_CURRICULUM_STAGES: number[][] = [[0, 7], [0, 1, 6, 7], [0, 1, 2, 5, 6, 7], [
  0,
  1,
  2,
  3,
  4,
  5,
  6,
  7,
]];
export const configSchema = z.object({
  stages: z.array(z.array(z.number().int().min(0)).min(1)).min(1).default(DEFAULT_CURRICULUM_STAGES),
  /** epochs of each stage but the last; null: `shares` */
  epochs: z.array(z.number().int().positive()).nullable().default(null),
  /** share of the run for each stage but the last (sum < 1); null (with epochs null): equal shares */
  shares: z.array(z.number().gt(0).lt(1)).nullable().default(null),
  maskInactive: z.boolean().default(true),
}).strict();

export type CurriculumConfig = z.infer<typeof configSchema>;

/** Epochs of each stage but the last in a run of `runEpochs` epochs (given, or from the shares). */
export function stageLengths(cfg: CurriculumConfig, runEpochs: number): number[] {
  const n = cfg.stages.length - 1;
  if (cfg.epochs !== null) return cfg.epochs.slice(0, n);
  const shares = cfg.shares ?? new Array<number>(n).fill(1 / cfg.stages.length);
  return shares.slice(0, n).map((share) => Math.max(1, Math.round(share * runEpochs)));
}

/** Problems of the stage list and its lengths in a run of `runEpochs` epochs (no class count needed). */
export function structureIssues(cfg: CurriculumConfig, runEpochs: number): string[] {
  const out: string[] = [];
  const need = cfg.stages.length - 1;
  if (cfg.epochs !== null && cfg.shares !== null) {
    out.push("curriculum: give the stage lengths as epochs or as shares, not both");
  }
  for (const [key, list] of [["epochs", cfg.epochs], ["shares", cfg.shares]] as const) {
    if (list === null) continue;
    if (list.length < need) {
      out.push(
        `curriculum: ${cfg.stages.length} stages need at least ${need} entries in ${key} ` +
          `(one per stage but the last); got ${list.length}`,
      );
    }
    if (list.length > cfg.stages.length) {
      out.push(`curriculum: ${key} has ${list.length} entries but there are ${cfg.stages.length} stages`);
    }
  }
  const shareSum = (cfg.shares ?? []).slice(0, need).reduce((a, v) => a + v, 0);
  if (shareSum >= 1) {
    out.push(
      `curriculum: the shares add up to ${shareSum}; they must leave the last stage a share (sum < 1)`,
    );
  }
  cfg.stages.forEach((st, s) => {
    const dup = st.find((k, i) => st.indexOf(k) !== i);
    if (dup !== undefined) out.push(`curriculum: stages[${s}] lists class ${dup} twice`);
  });
  if (out.length === 0) out.push(...lastStageIssues(cfg, runEpochs));
  return out;
}

/** The refusal of a curriculum whose last stage would never start in `runEpochs` epochs. */
function lastStageIssues(cfg: CurriculumConfig, runEpochs: number): string[] {
  const before = stageLengths(cfg, runEpochs).reduce((a, v) => a + v, 0);
  if (before < runEpochs) return [];
  const last = cfg.stages[cfg.stages.length - 1];
  const fix = cfg.epochs !== null
    ? "give the stage lengths as shares of the run (e.g. shares: [0.0625, 0.125, 0.1875]) or shorten them"
    : "lower the shares or raise train.epochs";
  return [
    `curriculum: the last stage (classes [${last.join(",")}]) would never start: the stages before it take ` +
    `${before} epochs of train.epochs ${runEpochs}, so the model would never see every class; ${fix}`,
  ];
}

/** Problems of the stages against `numClasses` classes (plus the structural ones). */
export function curriculumIssues(cfg: CurriculumConfig, numClasses: number, runEpochs: number): string[] {
  const out = structureIssues(cfg, runEpochs);
  cfg.stages.forEach((st, s) => {
    for (const k of st) {
      if (k >= numClasses) {
        out.push(
          `curriculum: stages[${s}] lists class ${k}, but the dataset has ${numClasses} classes ` +
            `(0..${numClasses - 1})`,
        );
      }
    }
  });
  return out;
}

/** The plan of `epoch` (0-based). */
export function curriculumPlan(cfg: CurriculumConfig, epoch: number, runEpochs: number): StagePlan {
  if (!Number.isInteger(epoch) || epoch < 0) {
    throw new Error(`curriculum: epoch must be an integer >= 0; got ${epoch}`);
  }
  const last = cfg.stages.length - 1;
  const lengths = stageLengths(cfg, runEpochs);
  let s = 0;
  let end = 0;
  for (; s < last; s++) {
    end += lengths[s];
    if (epoch < end) break;
  }
  return {
    activeClasses: [...new Set(cfg.stages[s])].sort((a, b) => a - b),
    stageIndex: s,
    stageCount: cfg.stages.length,
    maskInactive: cfg.maskInactive,
  };
}

export const plugin: PluginModule<typeof configSchema, ClassCountAwareStage> = {
  name: "curriculum",
  configSchema,
  create(cfg, ctx): ClassCountAwareStage {
    // problems are reported by validate() (the config's refine layer); plan() refuses to run with them
    let numClasses: number | null = null;
    return {
      stateKey: "stage",
      setNumClasses(n: number): void {
        numClasses = n;
      },
      validate(n: number): string[] {
        return curriculumIssues(cfg, n, ctx.epochs);
      },
      plan(epoch: number, _history: EpochMetrics[]): StagePlan {
        const issues = numClasses === null
          ? structureIssues(cfg, ctx.epochs)
          : curriculumIssues(cfg, numClasses, ctx.epochs);
        if (issues.length > 0) throw new Error(issues.join("\n"));
        return curriculumPlan(cfg, epoch, ctx.epochs);
      },
      stateDict(): unknown {
        return {};
      },
      loadStateDict(state: unknown): void {
        loadEmptyState("curriculum", state);
      },
    };
  },
};
