/**
 * The seed's log format for metrics, shared by train.log, `eval`, `crt` and `compare`.
 */
import type { Metrics } from "./types.ts";

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
