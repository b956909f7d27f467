/**
 * Train stage "anti-curriculum", for contrast with the seed's curriculum: the same growing
 * class sets in the opposite difficulty order, middle classes first ("middle-outward": for 8
 * classes [3,4] → [2,3,4,5] → [1,...,6] → all), each stage but the last for a fixed number
 * of epochs. Pure in the epoch: state is `{}`.
 */
import { z } from "zod";
import type { EpochMetrics, PluginModule, StagePlan } from "../../pipeline/types.ts";
import { type ClassCountAwareStage, loadEmptyState } from "./common.ts";
import { generateStages } from "./order.ts";

export const configSchema = z.object({
  /** epochs of each stage but the last; null: the run's epochs split evenly over the stages */
  epochs: z.array(z.number().int().positive()).nullable().default(null),
  maskInactive: z.boolean().default(true),
}).strict();

export type AntiCurriculumConfig = z.infer<typeof configSchema>;

/** Epochs of each stage but the last: given, or an even split of `runEpochs`. */
export function antiStageEpochs(cfg: AntiCurriculumConfig, stageCount: number, runEpochs: number): number[] {
  if (cfg.epochs !== null) return cfg.epochs;
  const each = Math.max(1, Math.floor(runEpochs / stageCount));
  return new Array<number>(stageCount - 1).fill(each);
}

/** Stage index of `epoch` (0-based). */
export function stageOfEpoch(stageEpochs: number[], stageCount: number, epoch: number): number {
  let end = 0;
  for (let s = 0; s < stageCount - 1; s++) {
    end += stageEpochs[s] ?? 0;
    if (epoch < end) return s;
  }
  return stageCount - 1;
}

export const plugin: PluginModule<typeof configSchema, ClassCountAwareStage> = {
  name: "anti-curriculum",
  configSchema,
  create(cfg, ctx): ClassCountAwareStage {
    let stages: number[][] | null = null;
    const issues = (n: number): string[] => {
      const k = Math.ceil(n / 2);
      return cfg.epochs !== null && cfg.epochs.length !== k - 1
        ? [
          `anti-curriculum: ${n} classes make ${k} stages, so epochs needs ${
            k - 1
          } entries; got ${cfg.epochs.length}`,
        ]
        : [];
    };
    return {
      stateKey: "stage",
      setNumClasses(n: number): void {
        const found = issues(n);
        if (found.length > 0) throw new Error(found.join("\n"));
        stages = generateStages("middle-outward", n);
      },
      validate: issues,
      plan(epoch: number, _history: EpochMetrics[]): StagePlan {
        if (stages === null) throw new Error("anti-curriculum: call setNumClasses before plan()");
        const s = stageOfEpoch(antiStageEpochs(cfg, stages.length, ctx.epochs), stages.length, epoch);
        return {
          activeClasses: stages[s],
          stageIndex: s,
          stageCount: stages.length,
          maskInactive: cfg.maskInactive,
        };
      },
      stateDict(): unknown {
        return {};
      },
      loadStateDict(state: unknown): void {
        loadEmptyState("anti-curriculum", state);
      },
    };
  },
};
