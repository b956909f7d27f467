/**
 * Class stages generated from the class order, for ordinal labels (class index = rank):
 * "extremes-inward" adds the two outermost remaining classes per stage (the seed's curriculum
 * for 8 classes: [0,7] → [0,1,6,7] → [0,1,2,5,6,7] → all), "middle-outward" is its reverse
 * difficulty order (an anti-curriculum: the middle classes, which the seed finds hardest,
 * first).
 */

export type StageOrder = "extremes-inward" | "middle-outward";

/** Stages of `numClasses` classes, each a superset of the one before, the last = all classes. */
export function generateStages(order: StageOrder, numClasses: number): number[][] {
  if (!Number.isInteger(numClasses) || numClasses < 2) {
    throw new Error(`stage order ${order}: needs at least 2 classes; got ${numClasses}`);
  }
  const pairs: number[][] = []; // pairs[s] = the classes added at stage s, extremes first
  for (let lo = 0, hi = numClasses - 1; lo <= hi; lo++, hi--) pairs.push(lo === hi ? [lo] : [lo, hi]);
  if (order === "middle-outward") pairs.reverse();
  const stages: number[][] = [];
  const acc: number[] = [];
  for (const p of pairs) {
    acc.push(...p);
    stages.push([...acc].sort((a, b) => a - b));
  }
  return stages;
}
