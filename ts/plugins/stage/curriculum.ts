/**
 * Train stage "curriculum" (the seed's): fixed stages of classes. Stage s runs `epochs[s]`
 * epochs; the last stage runs to the end of training (an `epochs` entry for it is ignored).
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
/** Epochs of each stage but the last (the seed's 400 epochs, no split given: 100 each). */
export const DEFAULT_CURRICULUM_EPOCHS: number[] = [100, 100, 100];

export const configSchema = z.object({
  stages: z.array(z.array(z.number().int().min(0)).min(1)).min(1).default(DEFAULT_CURRICULUM_STAGES),
  epochs: z.array(z.number().int().positive()).default(DEFAULT_CURRICULUM_EPOCHS),
  maskInactive: z.boolean().default(true),
}).strict();

export type CurriculumConfig = z.infer<typeof configSchema>;

/** Problems of the stage list itself (no class count needed). */
export function structureIssues(cfg: CurriculumConfig): string[] {
  const out: string[] = [];
  if (cfg.epochs.length < cfg.stages.length - 1) {
    out.push(
      `curriculum: ${cfg.stages.length} stages need at least ${cfg.stages.length - 1} entries in epochs ` +
        `(one per stage but the last); got ${cfg.epochs.length}`,
    );
  }
  if (cfg.epochs.length > cfg.stages.length) {
    out.push(`curriculum: epochs has ${cfg.epochs.length} entries but there are ${cfg.stages.length} stages`);
  }
  cfg.stages.forEach((st, s) => {
    const dup = st.find((k, i) => st.indexOf(k) !== i);
    if (dup !== undefined) out.push(`curriculum: stages[${s}] lists class ${dup} twice`);
  });
  return out;
}

/** Problems of the stages against `numClasses` classes (plus the structural ones). */
export function curriculumIssues(cfg: CurriculumConfig, numClasses: number): string[] {
  const out = structureIssues(cfg);
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
export function curriculumPlan(cfg: CurriculumConfig, epoch: number): StagePlan {
  if (!Number.isInteger(epoch) || epoch < 0) {
    throw new Error(`curriculum: epoch must be an integer >= 0; got ${epoch}`);
  }
  const last = cfg.stages.length - 1;
  let s = 0;
  let end = 0;
  for (; s < last; s++) {
    end += cfg.epochs[s];
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
  create(cfg): ClassCountAwareStage {
    // problems are reported by validate() (the config's refine layer); plan() refuses to run with them
    let numClasses: number | null = null;
    return {
      stateKey: "stage",
      setNumClasses(n: number): void {
        numClasses = n;
      },
      validate(n: number): string[] {
        return curriculumIssues(cfg, n);
      },
      plan(epoch: number, _history: EpochMetrics[]): StagePlan {
        const issues = numClasses === null ? structureIssues(cfg) : curriculumIssues(cfg, numClasses);
        if (issues.length > 0) throw new Error(issues.join("\n"));
        return curriculumPlan(cfg, epoch);
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
