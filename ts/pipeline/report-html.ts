/**
 * `report.html`: one self-contained page per run (inline CSS and SVG; no script, font or file it
 * must fetch), rebuilt from metrics.jsonl and config.yaml after every epoch next to report.md, so
 * a running job's page is current. It shows the loss, accuracy and F1 curves over shaded
 * curriculum stages, the last evaluation's per-class precision/recall/F1 and confusion matrix,
 * what the sampler drew per class and stage against what it expected, timing, and the config.
 *
 * The elements a test (or a reader's script) counts carry stable classes: `curve-chart` (the
 * charts over epochs), `stage-band` (one per stage in each of them), `curve` (one per series),
 * `class-bar` (one group per class), `cm-cell` (one per confusion cell, with data-row, data-col
 * and data-count), `stage-draws` (one chart per stage).
 */
import { join } from "node:path";
import YAML from "yaml";
import { writeAtomic } from "./rundir.ts";
import { type Band, barChart, escapeXml, type HeatCell, heatMap, xyChart, type XYSeries } from "./svg.ts";
import type { EpochMetrics, Metrics } from "./types.ts";

/** One metrics.jsonl line as the reports read it (fields after `lr` are absent in older runs). */
export interface ReportRecord extends EpochMetrics {
  trainMetrics?: Metrics;
  sampledPerClass?: number[];
  expectedPerClass?: number[];
  stageCount?: number;
  bestMetric?: { name: string; value: number | null; epoch: number | null };
}

/** A record with a validation. */
export type Evaluated = ReportRecord & { val: { all: Metrics; active: Metrics } };

/** A run's metrics.jsonl; a line being written (not yet whole JSON) is left out. */
export async function readRecords(dir: string): Promise<ReportRecord[]> {
  const text = await Deno.readTextFile(join(dir, "metrics.jsonl"));
  return text.split("\n").flatMap((l) => {
    if (!l.trim()) return [];
    try {
      return [JSON.parse(l) as ReportRecord];
    } catch {
      return [];
    }
  });
}

/** A run's config.yaml: its text and its parsed value (empty when missing). */
export async function readRunConfig(dir: string): Promise<{ text: string; value: Record<string, unknown> }> {
  try {
    const text = await Deno.readTextFile(join(dir, "config.yaml"));
    return { text, value: (YAML.parse(text) ?? {}) as Record<string, unknown> };
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return { text: "", value: {} };
    throw err;
  }
}

/** Class names from the run's inference.json, else "class k" for `n` classes. */
export async function readClassNames(dir: string, n: number): Promise<string[]> {
  try {
    const meta = JSON.parse(await Deno.readTextFile(join(dir, "inference.json"))) as {
      classNames?: string[];
    };
    if (Array.isArray(meta.classNames) && meta.classNames.length > 0) return meta.classNames;
  } catch { /* no inference.json: a run from before it was written */ }
  return Array.from({ length: n }, (_, k) => `class ${k}`);
}

/** The last record with a validation, if any. */
export function lastEvaluated(rows: ReportRecord[]): Evaluated | undefined {
  return [...rows].reverse().find((r): r is Evaluated => r.val !== undefined);
}

/** The figures of a class as "k name". */
export function classLabel(k: number, classNames: string[]): string {
  return `${k} ${classNames[k] ?? ""}`.trim();
}

/** Consecutive epochs of one stage. */
export interface StageSpan {
  stage: number;
  firstEpoch: number;
  lastEpoch: number;
  activeClasses: number[];
}

/** The stages of `rows` in order, one span per change of stage. */
export function stageSpans(rows: ReportRecord[]): StageSpan[] {
  const spans: StageSpan[] = [];
  for (const r of rows) {
    const cur = spans.at(-1);
    if (cur && cur.stage === r.stage) cur.lastEpoch = r.epoch;
    else {spans.push({
        stage: r.stage,
        firstEpoch: r.epoch,
        lastEpoch: r.epoch,
        activeClasses: r.activeClasses,
      });}
  }
  return spans;
}

/** [0,1,2,5,6,7] as "0-2,5-7". */
export function compactList(ks: number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < ks.length; i++) {
    let j = i;
    while (j + 1 < ks.length && ks[j + 1] === ks[j] + 1) j++;
    parts.push(j > i ? `${ks[i]}-${ks[j]}` : `${ks[i]}`);
    i = j;
  }
  return parts.join(",");
}

/** One band per stage span over x = epoch + 1 (each epoch's point sits mid-band). */
export function stageBands(rows: ReportRecord[]): Band[] {
  return stageSpans(rows).map((s) => ({
    from: s.firstEpoch + 0.5,
    to: s.lastEpoch + 1.5,
    label: `stage ${s.stage + 1}: classes ${compactList(s.activeClasses)}`,
  }));
}

// ---- page shell -------------------------------------------------------------------------------

const CSS = `
body{font-family:sans-serif;margin:18px auto;max-width:1180px;color:#222;font-size:14px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #ddd}
.muted{color:#666}.grid{display:flex;flex-wrap:wrap;gap:10px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:10px 0}
.card{border:1px solid #ddd;border-radius:6px;padding:6px 12px;min-width:110px}
.card b{display:block;font-size:18px}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f5f5f5}td:first-child,th:first-child{text-align:left}
.config-diff{background:#fff1a8}.top{font-weight:bold;background:#e3f2e1}
pre{background:#f7f7f7;border:1px solid #ddd;padding:8px;font-size:12px;overflow:auto;max-height:520px}
svg{border:1px solid #eee}`;

/** A whole HTML document: inline CSS, no script, nothing fetched. */
export function htmlPage(title: string, body: string[]): string {
  return [
    "<!DOCTYPE html>",
    '<html lang="en"><head><meta charset="utf-8">',
    `<title>${escapeXml(title)}</title>`,
    `<style>${CSS}</style></head><body>`,
    ...body,
    "</body></html>",
    "",
  ].join("\n");
}

/** A table; header cells are escaped, body cells are HTML already (`[html, class]` adds a class). */
export function htmlTable(head: string[], rows: (string | [string, string])[][], cls = ""): string {
  const cell = (c: string | [string, string]): string =>
    typeof c === "string" ? `<td>${c}</td>` : `<td class="${c[1]}">${c[0]}</td>`;
  return [
    `<table${cls ? ` class="${cls}"` : ""}><thead><tr>${
      head.map((h) => `<th>${escapeXml(h)}</th>`).join("")
    }</tr></thead><tbody>`,
    ...rows.map((r) => `<tr>${r.map(cell).join("")}</tr>`),
    "</tbody></table>",
  ].join("\n");
}

/** A percentage with 2 decimals. */
export const pct = (v: number | undefined): string =>
  v === undefined || !Number.isFinite(v) ? "n/a" : `${(100 * v).toFixed(2)}%`;

/** A figure with 4 decimals. */
export const num = (v: number | undefined): string =>
  v === undefined || !Number.isFinite(v) ? "n/a" : v.toFixed(4);

// ---- sections of report.html ------------------------------------------------------------------

/** Title, state and the last evaluation's figures. */
function summarySection(name: string, rows: ReportRecord[], totalEpochs: number | null): string[] {
  const last = rows.at(-1), ev = lastEvaluated(rows), m = ev?.val.all;
  const best = last?.bestMetric;
  const cards: [string, string][] = m
    ? [
      ["accuracy", pct(m.accuracy)],
      ["macro-F1", num(m.macroF1)],
      ["balanced accuracy", pct(m.balancedAccuracy)],
      ["weighted F1", num(m.weightedF1)],
      ["val loss", num(m.loss)],
    ]
    : [];
  if (best?.value !== null && best?.value !== undefined) {
    cards.push([`best ${best.name}`, `${num(best.value)} (epoch ${(best.epoch ?? 0) + 1})`]);
  }
  return [
    `<h1>Run report: ${escapeXml(name)}</h1>`,
    `<p class="muted" id="run-state">${rows.length} of ${totalEpochs ?? "?"} epochs recorded` +
    (last ? `, stage ${last.stage + 1}${last.stageCount ? ` of ${last.stageCount}` : ""}` : "") +
    `; updated ${escapeXml(new Date().toISOString())}.` +
    (ev ? ` Figures: validation after epoch ${ev.epoch + 1}, all classes scored.` : " No evaluation yet.") +
    "</p>",
    `<div class="cards">${
      cards.map(([k, v]) => `<div class="card">${escapeXml(k)}<b>${escapeXml(v)}</b></div>`).join("")
    }</div>`,
  ];
}

/** Loss, accuracy, F1 and per-class recall over epochs, curriculum stages shaded. */
function curvesSection(rows: ReportRecord[], classNames: string[]): string[] {
  const bands = stageBands(rows);
  const x = (r: ReportRecord): number => r.epoch + 1;
  const of = (name: string, f: (r: ReportRecord) => number | undefined, dashed = false): XYSeries => ({
    name,
    dashed,
    points: rows.flatMap((r) => {
      const v = f(r);
      return v === undefined ? [] : [[x(r), v] as [number, number]];
    }),
  });
  const chart = (title: string, series: XYSeries[], yMax?: number): string =>
    xyChart({ title, series, bands, yMax, cls: "curve-chart" });
  const legend = bands.map((b, i) => `S${i + 1} = ${escapeXml(b.label)}`).join("; ");
  return [
    '<h2 id="curves">Curves</h2>',
    `<p class="muted" id="stage-legend">Shaded: curriculum stages (${legend}). Dashed: train figures.</p>`,
    '<div class="grid">',
    chart("loss", [of("train loss", (r) => r.train.loss, true), of("val loss", (r) => r.val?.all.loss)]),
    chart("accuracy", [
      of("train accuracy", (r) => r.train.accuracy, true),
      of("val accuracy", (r) => r.val?.all.accuracy),
      of("val balanced acc.", (r) => r.val?.all.balancedAccuracy),
    ], 1),
    chart("macro-F1", [
      of("train macro-F1", (r) => r.trainMetrics?.macroF1, true),
      of("val macro-F1", (r) => r.val?.all.macroF1),
      of("val macro-F1, active", (r) => r.val?.active.macroF1),
    ], 1),
    chart(
      "validation recall per class",
      classNames.map((_, k) => of(classLabel(k, classNames), (r) => r.val?.all.perClass[k]?.recall)),
      1,
    ),
    "</div>",
  ];
}

/** Precision, recall and F1 bars (one group per class) and their table. */
function classSection(ev: Evaluated, classNames: string[]): string[] {
  const pc = ev.val.all.perClass;
  const groups = pc.map((_, k) => classLabel(k, classNames));
  return [
    `<h2 id="per-class">Per class (validation after epoch ${ev.epoch + 1})</h2>`,
    barChart({
      title: "precision, recall and F1 per class",
      groups,
      series: [
        { name: "precision", values: pc.map((c) => c.precision) },
        { name: "recall", values: pc.map((c) => c.recall) },
        { name: "F1", values: pc.map((c) => c.f1) },
      ],
      groupClass: "class-bar",
      yMax: 1,
      width: 900,
      cls: "class-chart",
    }),
    htmlTable(
      ["class", "precision", "recall", "F1", "support"],
      pc.map((c, k) => [escapeXml(groups[k]), pct(c.precision), pct(c.recall), pct(c.f1), String(c.support)]),
    ),
  ];
}

/** The confusion matrix: each cell shows its count; its colour is the row-normalised share. */
function confusionSection(ev: Evaluated, classNames: string[]): string[] {
  const cm = ev.val.all.confusion;
  const cells: HeatCell[][] = cm.map((row, i) => {
    const total = row.reduce((a, b) => a + b, 0);
    return row.map((count, j) => {
      const share = total > 0 ? count / total : 0;
      return {
        shade: share,
        text: String(count),
        sub: `${(100 * share).toFixed(0)}%`,
        tooltip: `true ${classLabel(i, classNames)}, predicted ${classLabel(j, classNames)}: ${count} ` +
          `(${(100 * share).toFixed(1)}% of the row)`,
        attrs: { "data-row": i, "data-col": j, "data-count": count },
      };
    });
  });
  const labels = cm.map((_, k) => classLabel(k, classNames));
  return [
    `<h2 id="confusion">Confusion matrix (validation after epoch ${ev.epoch + 1})</h2>`,
    '<p class="muted">Each cell: its count, and below it the share of its row (true class); the colour ' +
    "is that share, so a small class's errors show as clearly as a large one's.</p>",
    heatMap({
      title: "rows: true class, columns: predicted",
      rowLabels: labels,
      colLabels: labels,
      cells,
      cellClass: "cm-cell",
      rowTitle: "true",
      colTitle: "predicted",
      cls: "confusion-chart",
    }),
  ];
}

/** "epoch 3" or "epochs 3-5" (1-based) of a stage span. */
function epochRange(s: StageSpan): string {
  return s.firstEpoch === s.lastEpoch
    ? `epoch ${s.firstEpoch + 1}`
    : `epochs ${s.firstEpoch + 1}-${s.lastEpoch + 1}`;
}

/** Per stage: images drawn per class against the sampler's expectation (sums over the stage's epochs). */
function drawsSection(rows: ReportRecord[], classNames: string[]): string[] {
  const spans = stageSpans(rows);
  const charts = spans.flatMap((s) => {
    const rs = rows.filter((r) => r.epoch >= s.firstEpoch && r.epoch <= s.lastEpoch && r.sampledPerClass);
    if (rs.length === 0) return [];
    const sum = (f: (r: ReportRecord) => number[] | undefined): number[] =>
      classNames.map((_, k) => rs.reduce((a, r) => a + (f(r)?.[k] ?? 0), 0));
    const svg = barChart({
      title: `stage ${s.stage + 1} (${epochRange(s)}): images per class`,
      groups: classNames.map((_, k) => classLabel(k, classNames)),
      series: [
        { name: "drawn", values: sum((r) => r.sampledPerClass), color: "#1f77b4" },
        { name: "expected", values: sum((r) => r.expectedPerClass), color: "#bbbbbb" },
      ],
      groupClass: "draw-group",
      format: (v) => v.toFixed(1),
    });
    return [svg.replace("<svg ", `<svg class="stage-draws" data-stage="${s.stage}" `)];
  });
  if (charts.length === 0) return [];
  return [
    '<h2 id="sampling">Sampling: drawn vs expected per class and stage</h2>',
    '<p class="muted">Drawn: images the sampler put in the epochs of the stage; expected: its ' +
    "per-class share times the images drawn.</p>",
    `<div class="grid">${charts.join("\n")}</div>`,
  ];
}

/** Seconds and images/s per epoch: a chart over stages, totals, the table folded. */
function timingSection(rows: ReportRecord[]): string[] {
  const total = rows.reduce((a, r) => a + r.train.seconds, 0);
  const images = rows.reduce((a, r) => a + r.train.imagesPerSecond * r.train.seconds, 0);
  const bands = stageBands(rows);
  const pts = (f: (r: ReportRecord) => number): [number, number][] => rows.map((r) => [r.epoch + 1, f(r)]);
  return [
    '<h2 id="timing">Timing</h2>',
    `<p>Training: ${total.toFixed(1)} s over ${rows.length} epochs, ${
      (images / Math.max(total, 1e-9)).toFixed(1)
    } images/s on average (train steps only; validation not included).</p>`,
    '<div class="grid">',
    xyChart({
      title: "training images/s",
      series: [{ name: "img/s", points: pts((r) => r.train.imagesPerSecond) }],
      bands,
      cls: "timing-chart",
    }),
    xyChart({
      title: "training seconds per epoch",
      series: [{ name: "seconds", points: pts((r) => r.train.seconds) }],
      bands,
      cls: "timing-chart",
    }),
    "</div>",
    "<details><summary>per epoch</summary>",
    htmlTable(
      ["epoch", "stage", "seconds", "img/s", "lr"],
      rows.map((r) => [
        String(r.epoch + 1),
        String(r.stage + 1),
        r.train.seconds.toFixed(2),
        r.train.imagesPerSecond.toFixed(1),
        r.lr.toExponential(2),
      ]),
      "timing",
    ),
    "</details>",
  ];
}

/** The run's resolved config.yaml as it is on disk. */
function configSection(text: string): string[] {
  return ['<h2 id="config">Config (config.yaml)</h2>', `<pre id="config-yaml">${escapeXml(text)}</pre>`];
}

/** What `renderRunReport` draws from. */
export interface RunReportInput {
  name: string;
  rows: ReportRecord[];
  configText: string;
  totalEpochs: number | null;
  classNames: string[];
}

/** The report.html of a run. */
export function renderRunReport(r: RunReportInput): string {
  const ev = lastEvaluated(r.rows);
  const body = [
    ...summarySection(r.name, r.rows, r.totalEpochs),
    ...curvesSection(r.rows, r.classNames),
    ...(ev ? [...classSection(ev, r.classNames), ...confusionSection(ev, r.classNames)] : []),
    ...drawsSection(r.rows, r.classNames),
    ...timingSection(r.rows),
    ...configSection(r.configText),
  ];
  return htmlPage(`Run report: ${r.name}`, body);
}

/** Writes `<dir>/report.html` from its metrics.jsonl and config.yaml; returns its path. */
export async function writeHtmlReport(dir: string, classNames: string[]): Promise<string> {
  const rows = await readRecords(dir);
  const config = await readRunConfig(dir);
  const train = config.value.train as { epochs?: number } | undefined;
  const html = renderRunReport({
    name: dir.split("/").filter(Boolean).at(-1) ?? dir,
    rows,
    configText: config.text,
    totalEpochs: typeof train?.epochs === "number" ? train.epochs : null,
    classNames,
  });
  const path = join(dir, "report.html");
  await writeAtomic(path, html);
  return path;
}
