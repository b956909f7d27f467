/** What the built-in train stages add to `TrainStage`: the runner tells them the class count. */
import type { TrainStage } from "../../pipeline/types.ts";

export interface ClassCountAwareStage extends TrainStage {
  /** the dataset's number of classes; the runner calls it before the first plan() */
  setNumClasses(n: number): void;
  /** problems of the config against `numClasses` classes, one message each; [] = fine */
  validate(numClasses: number): string[];
}

/** Accepts `{}` (or any plain object) as the state of a stateless stage. */
export function loadEmptyState(stage: string, state: unknown): void {
  if (state === null || typeof state !== "object" || Array.isArray(state)) {
    throw new Error(`${stage}: checkpoint state must be an object; got ${JSON.stringify(state)}`);
  }
}
