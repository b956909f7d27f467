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
 * - With no rows counted every metric is 0.
 */
import { z } from "zod";
import type { ClassMetrics, Evaluator, Metrics, PluginModule } from "../../pipeline/types.ts";

export const configSchema = z.object({}).strict();

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
  };
}

/** Confusion matrix of argmax predictions (see the module doc for `restrict`). */
export function confusionMatrix(
  logits: Float32Array,
  labels: Int32Array,
  n: number,
  c: number,
  restrict?: number[],
): number[][] {
  if (logits.length !== n * c) {
    throw new Error(`evaluate: logits has ${logits.length} values; [n, c] needs ${n * c}`);
  }
  if (labels.length !== n) throw new Error(`evaluate: labels has ${labels.length} values; n = ${n}`);
  const cols = restrict === undefined
    ? Array.from({ length: c }, (_, k) => k)
    : [...new Set(restrict)].sort((a, b) => a - b);
  for (const k of cols) {
    if (!(Number.isInteger(k) && k >= 0 && k < c)) {
      throw new Error(`evaluate: restrict class ${k} is outside [0, ${c})`);
    }
  }
  const keep = new Uint8Array(c);
  for (const k of cols) keep[k] = 1;
  const confusion = Array.from({ length: c }, () => new Array<number>(c).fill(0));
  for (let i = 0; i < n; i++) {
    const t = labels[i];
    if (!(t >= 0 && t < c)) throw new Error(`evaluate: label ${t} at index ${i} is outside [0, ${c})`);
    if (!keep[t]) continue;
    let best = cols[0];
    let bestV = logits[i * c + best];
    for (let q = 1; q < cols.length; q++) {
      const v = logits[i * c + cols[q]];
      if (v > bestV || (Number.isNaN(bestV) && !Number.isNaN(v))) {
        bestV = v;
        best = cols[q];
      }
    }
    confusion[t][best]++;
  }
  return confusion;
}

/**
 * The seed's summary lines: `Average Loss: 0.5352`, `Accuracy: 65.58%`, `Recall: 0.6556`
 * (macro recall), `F1 Score: 0.6416` (macro F1), then for each class `Class k:` (or
 * `Class k (name):` when a name is given) and its `Precision: 73.85%`, `Recall: 96.62%`,
 * `F1: 83.72%`. The runner adds timestamps.
 */
export function formatSeedLines(metrics: Metrics, classNames: string[] = []): string[] {
  const pct = (v: number): string => `${(100 * v).toFixed(2)}%`;
  const lines = [
    `Average Loss: ${metrics.loss.toFixed(4)}`,
    `Accuracy: ${pct(metrics.accuracy)}`,
    `Recall: ${metrics.macroRecall.toFixed(4)}`,
    `F1 Score: ${metrics.macroF1.toFixed(4)}`,
  ];
  metrics.perClass.forEach((m, k) => {
    const name = classNames[k];
    lines.push(name === undefined || name === String(k) ? `Class ${k}:` : `Class ${k} (${name}):`);
    lines.push(`Precision: ${pct(m.precision)}`, `Recall: ${pct(m.recall)}`, `F1: ${pct(m.f1)}`);
  });
  return lines;
}

export const plugin: PluginModule<typeof configSchema, Evaluator> = {
  name: "classification",
  configSchema,
  create(): Evaluator {
    return {
      evaluate(logits, labels, n, c, loss, restrict): Metrics {
        return metricsFromConfusion(confusionMatrix(logits, labels, n, c, restrict), loss);
      },
    };
  },
};
