/**
 * `deno task report RUN…`: one self-contained HTML page comparing runs (default
 * runs/report-compare.html): their curves overlaid (one `run-curve` per run in each chart), the
 * final and best figures side by side, per-class recall side by side, and the config keys whose
 * values differ between the runs (flattened config.yaml; keys equal in every run are left out).
 * Reads only run folders (metrics.jsonl, config.yaml, inference.json), so it works on finished,
 * killed and running runs alike.
 */
import { basename, dirname, join, relative, resolve } from "node:path";
import {
  classLabel,
  type Evaluated,
  htmlPage,
  htmlTable,
  lastEvaluated,
  num,
  readClassNames,
  readRecords,
  readRunConfig,
  type ReportRecord,
} from "./report-html.ts";
import { UsageError } from "./errors.ts";
import { writeAtomic } from "./rundir.ts";
import { barChart, escapeXml, xyChart, type XYSeries } from "./svg.ts";
import type { Metrics } from "./types.ts";

/** One run as the comparison sees it. */
export interface CompareRun {
  dir: string;
  name: string;
  rows: ReportRecord[];
  config: Record<string, unknown>;
  classNames: string[];
}

/** Reads a run folder; a folder without metrics.jsonl is a usage error. */
export async function loadCompareRun(dir: string): Promise<CompareRun> {
  const abs = resolve(dir);
  let rows: ReportRecord[];
  try {
    rows = await readRecords(abs);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new UsageError(`report: ${dir} has no metrics.jsonl (is it a run folder?)`, { cause: err });
    }
    throw err;
  }
  const n = lastEvaluated(rows)?.val.all.perClass.length ?? rows.at(-1)?.sampledPerClass?.length ?? 0;
  return {
    dir: abs,
    name: basename(abs),
    rows,
    config: (await readRunConfig(abs)).value,
    classNames: await readClassNames(abs, n),
  };
}

/** A nested config as `a.b.c` → value (scalars and lists of scalars as JSON text; other lists by index). */
export function flattenConfig(value: unknown, prefix = ""): Record<string, string> {
  const out: Record<string, string> = {};
  const scalarList = Array.isArray(value) && value.every((v) => v === null || typeof v !== "object");
  if (value !== null && typeof value === "object" && !scalarList) {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      Object.assign(out, flattenConfig(v, prefix ? `${prefix}.${k}` : k));
    }
    return out;
  }
  out[prefix] = JSON.stringify(value);
  return out;
}

/** Config keys whose values are not the same in every run (a key missing in a run counts as different). */
export function configDifferences(configs: Record<string, unknown>[]): {
  key: string;
  values: (string | undefined)[];
  same: number;
}[] {
  const flat = configs.map((c) => flattenConfig(c));
  const keys = [...new Set(flat.flatMap((f) => Object.keys(f)))].sort();
  const differing = keys.filter((k) => new Set(flat.map((f) => f[k])).size > 1);
  return differing.map((key) => ({
    key,
    values: flat.map((f) => f[key]),
    same: keys.length - differing.length,
  }));
}

/** The figures the comparison lines up, and whether higher is better. */
const FIGURES: { key: keyof Metrics; label: string; higher: boolean }[] = [
  { key: "macroF1", label: "macro-F1", higher: true },
  { key: "accuracy", label: "accuracy", higher: true },
  { key: "balancedAccuracy", label: "balanced accuracy", higher: true },
  { key: "weightedF1", label: "weighted F1", higher: true },
  { key: "macroRecall", label: "macro recall", higher: true },
  { key: "loss", label: "val loss", higher: false },
];

/** The best value of a figure over a run's evaluations, and its epoch. */
export function bestOf(
  rows: ReportRecord[],
  key: keyof Metrics,
  higher: boolean,
): { value: number; epoch: number } | null {
  let best: { value: number; epoch: number } | null = null;
  for (const r of rows) {
    const v = r.val?.all[key];
    if (typeof v !== "number" || !Number.isFinite(v)) continue;
    if (best === null || (higher ? v > best.value : v < best.value)) best = { value: v, epoch: r.epoch };
  }
  return best;
}

/** Title and the list of runs with links to their own report.html. */
function headerSection(runs: CompareRun[], outDir: string): string[] {
  const items = runs.map((r, i) => {
    const link = relative(outDir, join(r.dir, "report.html"));
    return `<li class="run-item" data-run="${i}"><b>${escapeXml(r.name)}</b>: ${r.rows.length} epochs, ` +
      `<a href="${escapeXml(link)}">report.html</a> <span class="muted">${escapeXml(r.dir)}</span></li>`;
  });
  return [
    `<h1>Run comparison: ${runs.length} runs</h1>`,
    `<p class="muted">Updated ${escapeXml(new Date().toISOString())}. Curves: one per run; ` +
    "final = the last evaluation, best = the best evaluation of the run (its epoch in brackets).</p>",
    `<ul>${items.join("\n")}</ul>`,
  ];
}

/** Val macro-F1, val accuracy, val loss and train loss over epochs, one curve per run. */
function curvesSection(runs: CompareRun[]): string[] {
  const series = (f: (r: ReportRecord) => number | undefined): XYSeries[] =>
    runs.map((run) => ({
      name: run.name,
      cls: "run-curve",
      points: run.rows.flatMap((r) => {
        const v = f(r);
        return v === undefined ? [] : [[r.epoch + 1, v] as [number, number]];
      }),
    }));
  const chart = (title: string, s: XYSeries[], yMax?: number): string =>
    xyChart({ title, series: s, yMax, cls: "compare-chart" });
  return [
    '<h2 id="curves">Curves</h2>',
    '<div class="grid">',
    chart("val macro-F1", series((r) => r.val?.all.macroF1), 1),
    chart("val accuracy", series((r) => r.val?.all.accuracy), 1),
    chart("val loss", series((r) => r.val?.all.loss)),
    chart("train loss", series((r) => r.train.loss)),
    "</div>",
  ];
}

/** Cells of one row, the best value marked "top". */
function markedRow(
  label: string,
  values: (number | null)[],
  higher: boolean,
  text: (i: number) => string,
): (string | [string, string])[] {
  const finite = values.filter((v): v is number => v !== null && Number.isFinite(v));
  // the best value is marked only when the runs differ (a tie everywhere marks nothing)
  const differ = new Set(finite).size > 1;
  const top = differ ? (higher ? Math.max(...finite) : Math.min(...finite)) : null;
  return [
    escapeXml(label),
    ...values.map((
      v,
      i,
    ): string | [string, string] => (v !== null && v === top ? [text(i), "top"] : text(i))),
  ];
}

/** Final and best figures side by side, then epochs and time. */
function figuresSection(runs: CompareRun[]): string[] {
  const finals = runs.map((r) => lastEvaluated(r.rows));
  const rows: (string | [string, string])[][] = [];
  for (const f of FIGURES) {
    const fin = finals.map((e) => (e ? (e.val.all[f.key] as number) : null));
    rows.push(markedRow(`${f.label}, final`, fin, f.higher, (i) => num(fin[i] ?? undefined)));
    const best = runs.map((r) => bestOf(r.rows, f.key, f.higher));
    rows.push(
      markedRow(
        `${f.label}, best`,
        best.map((b) => b?.value ?? null),
        f.higher,
        (i) => best[i] ? `${num(best[i]!.value)} (${best[i]!.epoch + 1})` : "n/a",
      ),
    );
  }
  const secs = runs.map((r) => r.rows.reduce((a, x) => a + x.train.seconds, 0));
  const imgs = runs.map((r) => r.rows.reduce((a, x) => a + x.train.imagesPerSecond * x.train.seconds, 0));
  rows.push(["epochs", ...runs.map((r) => String(r.rows.length))]);
  rows.push(["training seconds", ...secs.map((s) => s.toFixed(1))]);
  rows.push(["images/s", ...secs.map((s, i) => (imgs[i] / Math.max(s, 1e-9)).toFixed(1))]);
  return [
    '<h2 id="figures">Final and best figures</h2>',
    htmlTable(["figure", ...runs.map((r) => r.name)], rows, "figures"),
  ];
}

/** Final per-class recall: bars (one group per class, a bar per run) and a table. */
function recallSection(runs: CompareRun[]): string[] {
  const finals = runs.map((r) => lastEvaluated(r.rows));
  const n = Math.max(0, ...finals.map((e) => e?.val.all.perClass.length ?? 0));
  const names = runs[0].classNames;
  const groups = Array.from({ length: n }, (_, k) => classLabel(k, names));
  const recall = (e: Evaluated | undefined, k: number): number | null =>
    e?.val.all.perClass[k]?.recall ?? null;
  const rows = groups.map((g, k) => {
    const vs = finals.map((e) => recall(e, k));
    return markedRow(g, vs, true, (i) => (vs[i] === null ? "n/a" : `${(100 * vs[i]!).toFixed(1)}%`));
  });
  return [
    '<h2 id="per-class">Per-class recall (final evaluation)</h2>',
    barChart({
      title: "validation recall per class, one bar per run",
      groups,
      series: runs.map((r, i) => ({ name: r.name, values: groups.map((_, k) => recall(finals[i], k)) })),
      groupClass: "class-bar",
      yMax: 1,
      width: 900,
      cls: "class-chart",
    }),
    htmlTable(["class", ...runs.map((r) => r.name)], rows, "recall"),
  ];
}

/** The config keys that differ, every value cell highlighted. */
function configDiffSection(runs: CompareRun[]): string[] {
  const diffs = configDifferences(runs.map((r) => r.config));
  const same = diffs[0]?.same ?? Object.keys(flattenConfig(runs[0].config)).length;
  const rows = diffs.map((d) => [
    `<code>${escapeXml(d.key)}</code>`,
    ...d.values.map((
      v,
    ): [string, string] => [v === undefined ? "<i>absent</i>" : escapeXml(v), "config-diff"]),
  ]);
  return [
    '<h2 id="config">Config differences</h2>',
    `<p class="muted">${diffs.length} keys differ; ${same} keys have the same value in every run and are not shown.</p>`,
    diffs.length > 0 ? htmlTable(["key", ...runs.map((r) => r.name)], rows, "config-diffs") : "",
  ];
}

/** The comparison page of `runs`; links are relative to `outDir`. */
export function renderComparePage(runs: CompareRun[], outDir: string): string {
  return htmlPage(`Run comparison: ${runs.map((r) => r.name).join(", ")}`, [
    ...headerSection(runs, outDir),
    ...curvesSection(runs),
    ...figuresSection(runs),
    ...recallSection(runs),
    ...configDiffSection(runs),
  ]);
}

/** Reads the run folders `dirs` and writes the comparison page to `out`; returns its path. */
export async function writeComparePage(dirs: string[], out: string): Promise<string> {
  if (dirs.length === 0) throw new UsageError("report: give at least one run folder");
  const runs = await Promise.all(dirs.map(loadCompareRun));
  const seen = new Map<string, number>();
  for (const r of runs) {
    const k = (seen.get(r.name) ?? 0) + 1;
    seen.set(r.name, k);
    if (k > 1) r.name = `${r.name} (${k})`;
  }
  const path = resolve(out);
  await Deno.mkdir(dirname(path), { recursive: true });
  await writeAtomic(path, renderComparePage(runs, dirname(path)));
  return path;
}
