/**
 * Train stage "none": every class in every epoch, one stage, no masking. The class count comes
 * from the `numClasses` option or from `setNumClasses(n)` (the runner calls it before plan()).
 */
import { z } from "zod";
import type { EpochMetrics, PluginModule, StagePlan } from "../../pipeline/types.ts";
import { type ClassCountAwareStage, loadEmptyState } from "./common.ts";

export const configSchema = z.object({
  /** null: set by the runner from the dataset */
  numClasses: z.number().int().min(1).nullable().default(null),
}).strict();

export const plugin: PluginModule<typeof configSchema, ClassCountAwareStage> = {
  name: "none",
  configSchema,
  create(cfg): ClassCountAwareStage {
    let numClasses = cfg.numClasses;
    const issues = (n: number): string[] =>
      cfg.numClasses !== null && cfg.numClasses !== n
        ? [`stage none: numClasses is ${cfg.numClasses}, but the dataset has ${n} classes`]
        : [];
    return {
      stateKey: "stage",
      setNumClasses(n: number): void {
        if (!Number.isInteger(n) || n < 1) {
          throw new Error(`stage none: numClasses must be a positive integer; got ${n}`);
        }
        numClasses = n;
      },
      validate(n: number): string[] {
        return issues(n);
      },
      plan(_epoch: number, _history: EpochMetrics[]): StagePlan {
        const problems = numClasses === null ? [] : issues(numClasses);
        if (problems.length > 0) throw new Error(problems.join("\n"));
        if (numClasses === null) {
          throw new Error("stage none: the class count is unknown; call setNumClasses(n) first");
        }
        return {
          activeClasses: Array.from({ length: numClasses }, (_, k) => k),
          stageIndex: 0,
          stageCount: 1,
          maskInactive: false,
        };
      },
      stateDict(): unknown {
        return {};
      },
      loadStateDict(state: unknown): void {
        loadEmptyState("stage none", state);
      },
    };
  },
};
