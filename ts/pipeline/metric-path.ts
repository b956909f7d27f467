/**
 * Metric paths (`val.all.macroF1`, `val.active.accuracy`, `train.loss`): how configs name a
 * figure of an epoch, and whether lower or higher is better. A leaf helper: the schedules, the
 * policies and stage plugins (auto-curriculum) read metrics through it.
 */
import type { EpochMetrics, Metrics } from "./types.ts";

/** What a metric path looks like (checked by the config's refine layer). */
export const METRIC_PATH = /^(val\.(all|active)\.[A-Za-z][A-Za-z0-9]*|train\.(loss|accuracy))$/;

/** The metric that picks the best checkpoint unless the config says otherwise. */
export const DEFAULT_BEST_METRIC = "val.all.macroF1";

/** "min" for loss-like and error metrics (…loss, …ordinalMae), "max" otherwise. */
export function metricMode(path: string): "min" | "max" {
  return /(loss|ordinalMae)$/i.test(path) ? "min" : "max";
}

/**
 * Reads a metric by dotted path from an epoch's figures: `val.all.macroF1`,
 * `val.active.accuracy`, `train.loss`… Undefined when the epoch has no such figure.
 */
export function readMetric(m: EpochMetrics, path: string): number | undefined {
  const [head, ...rest] = path.split(".");
  if (head === "train") return (m.train as Record<string, number>)[rest[0]];
  if (head === "val" && m.val) {
    const which = m.val[rest[0] as "all" | "active"] as Metrics | undefined;
    const v = which?.[rest[1] as keyof Metrics];
    return typeof v === "number" ? v : undefined;
  }
  return undefined;
}
