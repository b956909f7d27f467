/**
 * Evaluator "classification": the seed's metrics and more, from logits `[n, c]` and labels.
 *
 * - prediction = argmax of the logits (over the `restrict` columns only, when given; ties go to
 *   the lower class index); with `restrict`, only rows whose label is in it count.
 * - accuracy = correct / rows counted.
 * - per class k: precision = TP / predicted k, recall = TP / support, F1 = 2PR/(P+R); a ratio
 *   with a zero denominator is 0, never NaN.
 * - macroRecall, macroF1 = unweighted means over the classes with support > 0 (so a class that
 *   is absent from the evaluated rows neither counts as 0 nor as 1); balancedAccuracy equals
 *   macroRecall (sklearn's definition); weightedF1 = Σ support_k F1_k / Σ support_k.
 * - confusion: `c × c`, rows = true class, columns = predicted class.
 * - ordinalMae = mean |predicted - true| and quadraticKappa = Cohen's kappa with weights
 *   (i - j)², both over the class indices of the full `c × c` confusion (so they read the index
 *   order as the ordinal order, and a class without support still counts in the distances;
 *   sklearn's cohen_kappa_score(weights="quadratic", labels=range(c))). They are cheap, so they
 *   are always computed; ignore them for nominal classes. Kappa is 1 when the expected
 *   disagreement is 0 (all rows and predictions in one class, which forces perfect agreement).
 * - topK: `{ top2: … }` for each k of config `topK` below the number of candidate classes (c, or
 *   the `restrict` classes): a row counts when its label is among the k highest logits of the
 *   candidates (ties ordered as the argmax: lower index first, NaN last).
 * - shotGroups (after `setData`): mean recall of the classes with support in the evaluated rows,
 *   grouped by their TRAINING count: many > `shotThresholds.many`, few < `shotThresholds.few`,
 *   medium otherwise (ImageNet-LT's 100/20); null for a group with no such class.
 * - logitAdjustTau τ > 0: post-hoc logit adjustment (Menon et al., ICLR 2021): every metric uses
 *   logits - τ·log π_k, π = the training class prior from `setData` (renormalised over `restrict`,
 *   a shift that leaves the argmax unchanged); the loss is reported as passed in.
 * - With no rows counted every metric is 0 (shot groups null).
 */
import { z } from "zod";
import type {
  ClassMetrics,
  CountSpec,
  DataInfo,
  Evaluator,
  Metrics,
  PluginModule,
  PredictionCounts,
} from "../../pipeline/types.ts";

export const configSchema = z.object({
  /** k values for top-k accuracy; a k not below the number of candidate classes is left out */
  topK: z.array(z.number().int().positive()).default([2]),
  /** training-count thresholds of the shot groups: many = count > many, few = count < few */
  shotThresholds: z.object({
    many: z.number().nonnegative().default(100),
    few: z.number().nonnegative().default(20),
  }).strict().refine((t) => t.few <= t.many, { message: "shotThresholds.few must not exceed many" })
    .default({ many: 100, few: 20 }),
  /** post-hoc logit adjustment strength τ; 0 = off */
  logitAdjustTau: z.number().nonnegative().default(0),
}).strict();

export type ClassificationConfig = z.infer<typeof configSchema>;

const ratio = (a: number, b: number): number => (b > 0 ? a / b : 0);

/** Metrics of a confusion matrix (rows = true, columns = predicted); `loss` is passed through. */
export function metricsFromConfusion(confusion: number[][], loss: number): Metrics {
  const c = confusion.length;
  const perClass: ClassMetrics[] = [];
  let total = 0, correct = 0;
  const predicted = new Array<number>(c).fill(0);
  for (let i = 0; i < c; i++) {
    for (let j = 0; j < c; j++) {
      total += confusion[i][j];
      predicted[j] += confusion[i][j];
    }
    correct += confusion[i][i];
  }
  let recallSum = 0, f1Sum = 0, weightedF1 = 0, withSupport = 0;
  for (let k = 0; k < c; k++) {
    const tp = confusion[k][k];
    const support = confusion[k].reduce((a, b) => a + b, 0);
    const precision = ratio(tp, predicted[k]);
    const recall = ratio(tp, support);
    const f1 = ratio(2 * precision * recall, precision + recall);
    perClass.push({ precision, recall, f1, support });
    if (support > 0) {
      withSupport++;
      recallSum += recall;
      f1Sum += f1;
      weightedF1 += support * f1;
    }
  }
  const macroRecall = ratio(recallSum, withSupport);
  return {
    loss,
    accuracy: ratio(correct, total),
    macroRecall,
    macroF1: ratio(f1Sum, withSupport),
    weightedF1: ratio(weightedF1, total),
    balancedAccuracy: macroRecall,
    perClass,
    confusion,
    ...ordinalMetrics(confusion),
  };
}

/** Mean absolute index error and quadratic weighted kappa of a confusion matrix (module doc). */
export function ordinalMetrics(confusion: number[][]): { ordinalMae: number; quadraticKappa: number } {
  const c = confusion.length;
  const rows = new Array<number>(c).fill(0), cols = new Array<number>(c).fill(0);
  let total = 0, absErr = 0, observed = 0;
  for (let i = 0; i < c; i++) {
    for (let j = 0; j < c; j++) {
      const v = confusion[i][j];
      total += v;
      rows[i] += v;
      cols[j] += v;
      absErr += v * Math.abs(i - j);
      observed += v * (i - j) ** 2;
    }
  }
  if (total === 0) return { ordinalMae: 0, quadraticKappa: 0 };
  let expected = 0;
  for (let i = 0; i < c; i++) {
    if (rows[i] === 0) continue;
    for (let j = 0; j < c; j++) expected += rows[i] * cols[j] * (i - j) ** 2;
  }
  expected /= total;
  return { ordinalMae: absErr / total, quadraticKappa: expected > 0 ? 1 - observed / expected : 1 };
}

/** The candidate columns of an argmax: all classes, or the sorted distinct `restrict` classes. */
function candidateColumns(c: number, restrict?: number[]): number[] {
  const cols = restrict === undefined
    ? Array.from({ length: c }, (_, k) => k)
    : [...new Set(restrict)].sort((a, b) => a - b);
  for (const k of cols) {
    if (!(Number.isInteger(k) && k >= 0 && k < c)) {
      throw new Error(`evaluate: restrict class ${k} is outside [0, ${c})`);
    }
  }
  return cols;
}

/**
 * Confusion matrix of argmax predictions (see the module doc for `restrict`). `bias[k]`, when
 * given, is added to column k's logits in float64 (logit adjustment without float32 rounding).
 */
export function confusionMatrix(
  logits: Float32Array,
  labels: Int32Array,
  n: number,
  c: number,
  restrict?: number[],
  bias?: ArrayLike<number>,
): number[][] {
  checkShapes(logits, labels, n, c);
  const cols = candidateColumns(c, restrict);
  const b = bias ?? new Float64Array(c);
  const keep = new Uint8Array(c);
  for (const k of cols) keep[k] = 1;
  const confusion = Array.from({ length: c }, () => new Array<number>(c).fill(0));
  for (let i = 0; i < n; i++) {
    const t = labels[i];
    if (!(t >= 0 && t < c)) throw new Error(`evaluate: label ${t} at index ${i} is outside [0, ${c})`);
    if (!keep[t]) continue;
    let best = cols[0];
    let bestV = logits[i * c + best] + b[best];
    for (let q = 1; q < cols.length; q++) {
      const v = logits[i * c + cols[q]] + b[cols[q]];
      if (v > bestV || (Number.isNaN(bestV) && !Number.isNaN(v))) {
        bestV = v;
        best = cols[q];
      }
    }
    confusion[t][best]++;
  }
  return confusion;
}

function checkShapes(logits: Float32Array, labels: Int32Array, n: number, c: number): void {
  if (logits.length !== n * c) {
    throw new Error(`evaluate: logits has ${logits.length} values; [n, c] needs ${n * c}`);
  }
  if (labels.length !== n) throw new Error(`evaluate: labels has ${labels.length} values; n = ${n}`);
}

/**
 * Top-k accuracy for each k in `ks` below the number of candidate classes, keyed `top${k}`: the
 * share of counted rows whose label ranks among the k best candidates, in the argmax's order
 * (higher score first, ties to the lower index, NaN last), so top1 equals the accuracy.
 */
export function topKAccuracy(
  logits: Float32Array,
  labels: Int32Array,
  n: number,
  c: number,
  ks: number[],
  restrict?: number[],
  bias?: ArrayLike<number>,
): Record<string, number> {
  checkShapes(logits, labels, n, c);
  const cols = candidateColumns(c, restrict);
  const kept = [...new Set(ks)].filter((k) => k < cols.length).sort((a, b) => a - b);
  const out: Record<string, number> = {};
  if (kept.length === 0) return out;
  const b = bias ?? new Float64Array(c);
  const maxK = kept[kept.length - 1];
  const keep = new Uint8Array(c);
  for (const k of cols) keep[k] = 1;
  // rankCount[r] = rows whose label has exactly r better candidates (r capped at maxK)
  const rankCount = new Array<number>(maxK + 1).fill(0);
  let rows = 0;
  for (let i = 0; i < n; i++) {
    const t = labels[i];
    if (!(t >= 0 && t < c)) throw new Error(`evaluate: label ${t} at index ${i} is outside [0, ${c})`);
    if (!keep[t]) continue;
    rows++;
    const st = logits[i * c + t] + b[t];
    const nanT = Number.isNaN(st);
    let rank = 0;
    for (let q = 0; q < cols.length && rank < maxK; q++) {
      const k = cols[q];
      if (k === t) continue;
      const sq = logits[i * c + k] + b[k];
      const better = nanT ? (!Number.isNaN(sq) || k < t) : (sq > st || (sq === st && k < t));
      if (better) rank++;
    }
    rankCount[rank]++;
  }
  let within = 0, r = 0;
  for (const k of kept) {
    for (; r < k; r++) within += rankCount[r];
    out[`top${k}`] = ratio(within, rows);
  }
  return out;
}

/**
 * `topKAccuracy` from counted hits (`PredictionCounts.topKHits`): the same keys (each k of `ks`
 * below the number of candidates, ascending) and values (hits / rows counted).
 */
export function topKFromHits(
  counts: PredictionCounts,
  ks: number[],
  candidates: number,
): Record<string, number> {
  let rows = 0;
  for (const row of counts.confusion) for (const v of row) rows += v;
  const out: Record<string, number> = {};
  for (const k of [...new Set(ks)].filter((k) => k < candidates).sort((a, b) => a - b)) {
    out[`top${k}`] = ratio(counts.topKHits[String(k)] ?? 0, rows);
  }
  return out;
}

/** Shot groups of the classes with support (see the module doc); `trainCounts` per class. */
export function shotGroupRecall(
  perClass: ClassMetrics[],
  trainCounts: number[],
  thresholds: { many: number; few: number },
): { many: number | null; medium: number | null; few: number | null } {
  const sums = { many: 0, medium: 0, few: 0 };
  const nums = { many: 0, medium: 0, few: 0 };
  perClass.forEach((m, k) => {
    if (m.support === 0) return;
    const count = trainCounts[k];
    const g = count > thresholds.many ? "many" : count < thresholds.few ? "few" : "medium";
    sums[g] += m.recall;
    nums[g]++;
  });
  const mean = (g: "many" | "medium" | "few"): number | null => (nums[g] > 0 ? sums[g] / nums[g] : null);
  return { many: mean("many"), medium: mean("medium"), few: mean("few") };
}

/**
 * Per-column bias -τ·log π_k of post-hoc logit adjustment, π = `trainCounts` normalised over the
 * candidate columns (other columns get 0: they never compete).
 */
export function logitAdjustment(
  trainCounts: number[],
  tau: number,
  c: number,
  restrict?: number[],
): Float64Array {
  const cols = candidateColumns(c, restrict);
  let total = 0;
  for (const k of cols) total += trainCounts[k];
  const bias = new Float64Array(c);
  for (const k of cols) bias[k] = -tau * Math.log(trainCounts[k] / total);
  return bias;
}

export const plugin: PluginModule<typeof configSchema, Evaluator> = {
  name: "classification",
  configSchema,
  create(cfg): Evaluator {
    let trainCounts: number[] | null = null;
    /** The logit adjustment of `c` classes over `restrict`, or undefined when τ is 0. */
    const biasOf = (c: number, restrict?: number[]): Float64Array | undefined => {
      if (trainCounts !== null && trainCounts.length !== c) {
        throw new Error(
          `evaluate: setData gave ${trainCounts.length} class counts; the logits have ${c} classes`,
        );
      }
      if (!(cfg.logitAdjustTau > 0)) return undefined;
      if (trainCounts === null) {
        throw new Error(
          "evaluate: logitAdjustTau > 0 needs the training class counts; call setData(info) before evaluate",
        );
      }
      return logitAdjustment(trainCounts, cfg.logitAdjustTau, c, restrict);
    };
    return {
      setData(info: DataInfo): void {
        if (cfg.logitAdjustTau > 0) {
          // log 0 would make a class without training images win every argmax
          const empty = info.classCounts.findIndex((v) => !(v > 0));
          if (empty >= 0) {
            throw new Error(
              `evaluate: logitAdjustTau needs training images of every class; class ${empty} ` +
                `(${info.classNames[empty] ?? empty}) has none`,
            );
          }
        }
        trainCounts = [...info.classCounts];
      },
      evaluate(logits, labels, n, c, loss, restrict): Metrics {
        const bias = biasOf(c, restrict);
        const m = metricsFromConfusion(confusionMatrix(logits, labels, n, c, restrict, bias), loss);
        m.topK = topKAccuracy(logits, labels, n, c, cfg.topK, restrict, bias);
        if (trainCounts !== null) m.shotGroups = shotGroupRecall(m.perClass, trainCounts, cfg.shotThresholds);
        return m;
      },
      countSpec(c, restrict): CountSpec {
        return { topK: cfg.topK, bias: biasOf(c, restrict) ?? null };
      },
      fromCounts(counts, loss, restrict): Metrics {
        const m = metricsFromConfusion(counts.confusion, loss);
        m.topK = topKFromHits(counts, cfg.topK, candidateColumns(counts.confusion.length, restrict).length);
        if (trainCounts !== null) m.shotGroups = shotGroupRecall(m.perClass, trainCounts, cfg.shotThresholds);
        return m;
      },
    };
  },
};
