/**
 * The one SVG helper module: escaping, the document frame, axes and the line chart that
 * report.md, lr-find.svg and compare.svg are drawn with. Plain strings, no DOM.
 */

/** Escapes text for an SVG text node or attribute. */
export function escapeXml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
}

/** The opening lines of a W×H chart: root element, white background, title at x = `left`. */
export function svgOpen(W: number, H: number, left: number, titleXml: string): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${left}" y="18" font-size="13">${titleXml}</text>`,
  ];
}

/** The x and y axis lines of a plot area with margins left/right/top/bottom. */
export function axes(W: number, H: number, L: number, R: number, T: number, B: number): string[] {
  return [
    `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="black"/>`,
    `<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="black"/>`,
  ];
}

/** Closes a chart started with `svgOpen`; one string ending in a newline. */
export function svgClose(lines: string[]): string {
  return [...lines, "</svg>"].join("\n") + "\n";
}

/** The chart palette (matplotlib's tab10). */
export const COLORS = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#d62728",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#bcbd22",
  "#17becf",
];

/** One line of a line chart (null = no value at that x). */
export interface Series {
  name: string;
  values: (number | null)[];
}

/** A small line chart; y in [0, yMax]; stage changes drawn as dashed vertical lines. */
export function lineChart(
  title: string,
  xs: number[],
  series: Series[],
  stageStarts: number[],
  yMax?: number,
): string {
  const W = 640, H = 320, L = 50, R = 150, T = 30, B = 40;
  const all = series.flatMap((s) => s.values.filter((v): v is number => v !== null && Number.isFinite(v)));
  const top = yMax ?? Math.max(1e-9, ...all) * 1.05;
  const xMin = xs[0] ?? 0, xMax = Math.max(xs.at(-1) ?? 1, xMin + 1);
  const px = (x: number): number => L + ((x - xMin) / (xMax - xMin)) * (W - L - R);
  const py = (y: number): number => T + (1 - Math.min(y, top) / top) * (H - T - B);
  const out = [...svgOpen(W, H, L, escapeXml(title)), ...axes(W, H, L, R, T, B)];
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    out.push(`<text x="${L - 6}" y="${py(v) + 4}" text-anchor="end">${v.toFixed(top < 2 ? 2 : 1)}</text>`);
    out.push(`<line x1="${L}" y1="${py(v)}" x2="${W - R}" y2="${py(v)}" stroke="#eee"/>`);
  }
  out.push(`<text x="${(L + W - R) / 2}" y="${H - 8}" text-anchor="middle">epoch</text>`);
  out.push(`<text x="${L}" y="${H - B + 14}" text-anchor="middle">${xMin}</text>`);
  out.push(`<text x="${W - R}" y="${H - B + 14}" text-anchor="middle">${xMax}</text>`);
  for (const s of stageStarts) {
    out.push(
      `<line x1="${px(s)}" y1="${T}" x2="${px(s)}" y2="${H - B}" stroke="#999" stroke-dasharray="4 3"/>`,
    );
  }
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = s.values.map((
      v,
      j,
    ) => (v === null || !Number.isFinite(v) ? null : `${px(xs[j]).toFixed(1)},${py(v).toFixed(1)}`))
      .filter((p): p is string => p !== null);
    if (pts.length === 1) {
      out.push(`<circle cx="${pts[0].split(",")[0]}" cy="${pts[0].split(",")[1]}" r="3" fill="${color}"/>`);
    } else if (pts.length > 1) {
      out.push(`<polyline fill="none" stroke="${color}" stroke-width="1.8" points="${pts.join(" ")}"/>`);
    }
    out.push(`<rect x="${W - R + 10}" y="${T + i * 16}" width="10" height="10" fill="${color}"/>`);
    out.push(`<text x="${W - R + 24}" y="${T + i * 16 + 9}">${escapeXml(s.name)}</text>`);
  });
  return svgClose(out);
}

// ---- charts of the HTML reports: xy lines with shaded bands, grouped bars, heat map ----------

/** A shaded x range of a chart (a curriculum stage), labelled at its top. */
export interface Band {
  from: number;
  to: number;
  label: string;
}

/** One line of an xy chart with its own points; `cls` is added to its element's class. */
export interface XYSeries {
  name: string;
  points: [x: number, y: number][];
  cls?: string;
  dashed?: boolean;
}

/** An xy chart: `bands` behind the lines; y in [0, yMax] (default: the data's top). */
export interface XYChart {
  title: string;
  series: XYSeries[];
  bands?: Band[];
  yMax?: number;
  xLabel?: string;
  width?: number;
  height?: number;
  /** class of the root element (e.g. "curve-chart") */
  cls?: string;
}

/** Plot frame: size, margins and the data → pixel maps. */
interface Frame {
  W: number;
  H: number;
  L: number;
  R: number;
  T: number;
  B: number;
  px(x: number): number;
  py(y: number): number;
}

/** The root element with a class, a white background and a title. */
function svgRoot(W: number, H: number, title: string, cls: string | undefined): string[] {
  const open = svgOpen(W, H, 10, escapeXml(title));
  if (cls) open[0] = open[0].replace("<svg ", `<svg class="${escapeXml(cls)}" `);
  return open;
}

/** Horizontal grid lines and y tick labels (5 ticks from 0 to `top`). */
function yGrid(f: Frame, top: number): string[] {
  const out: string[] = [];
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4, y = f.py(v).toFixed(1);
    out.push(`<line x1="${f.L}" y1="${y}" x2="${f.W - f.R}" y2="${y}" stroke="#e6e6e6"/>`);
    out.push(`<text x="${f.L - 5}" y="${Number(y) + 4}" text-anchor="end">${tickText(v)}</text>`);
  }
  return out;
}

/** A tick value with no trailing zeros (0.25, 1200). */
function tickText(v: number): string {
  return String(Number(v.toPrecision(4)));
}

/** The smallest "round" number ≥ v whose quarters are round too (1, 1.2, 1.6, 2, 2.4, 3.2, 4, 6, 8 × 10^k). */
export function niceTop(v: number): number {
  if (!(v > 0) || !Number.isFinite(v)) return 1;
  const e = 10 ** Math.floor(Math.log10(v));
  const m = [1, 1.2, 1.6, 2, 2.4, 3.2, 4, 6, 8, 10].find((m) => m * e >= v * (1 - 1e-12)) ?? 10;
  return Number((m * e).toPrecision(6));
}

/** Integer x ticks between xMin and xMax, at most ~10 of them. */
function xTicks(f: Frame, xMin: number, xMax: number): string[] {
  const lo = Math.ceil(xMin), hi = Math.floor(xMax);
  const step = Math.max(1, Math.ceil((hi - lo + 1) / 10));
  const out: string[] = [];
  for (let x = lo; x <= hi; x += step) {
    out.push(`<text x="${f.px(x).toFixed(1)}" y="${f.H - f.B + 14}" text-anchor="middle">${x}</text>`);
  }
  return out;
}

const BAND_FILLS = ["#eef3fb", "#fbf3e6"];

/** One shaded rectangle per band (class "stage-band"), label at its top (shortened when narrow). */
function bandRects(f: Frame, bands: Band[]): string[] {
  return bands.flatMap((b, i) => {
    const x0 = f.px(b.from), x1 = f.px(b.to), w = Math.max(0, x1 - x0);
    const label = w >= b.label.length * 5.6 + 6 ? b.label : w >= 24 ? `S${i + 1}` : "";
    return [
      `<g class="stage-band" data-band="${i}"><title>${escapeXml(b.label)}</title>` +
      `<rect x="${x0.toFixed(1)}" y="${f.T - 16}" width="${w.toFixed(1)}" height="${f.H - f.T - f.B + 16}" ` +
      `fill="${BAND_FILLS[i % 2]}"/>` +
      `<text x="${((x0 + x1) / 2).toFixed(1)}" y="${f.T - 5}" text-anchor="middle" fill="#555" ` +
      `font-size="10">${escapeXml(label)}</text></g>`,
    ];
  });
}

/** A series as a polyline (a circle when it has one point), class "curve" plus its own. */
function seriesElement(f: Frame, s: XYSeries, color: string): string {
  const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const cls = `curve${s.cls ? ` ${escapeXml(s.cls)}` : ""}`;
  const attrs = `class="${cls}" data-series="${escapeXml(s.name)}"`;
  if (pts.length === 1) {
    return `<circle ${attrs} cx="${f.px(pts[0][0]).toFixed(1)}" cy="${
      f.py(pts[0][1]).toFixed(1)
    }" r="3.5" fill="${color}"><title>${escapeXml(s.name)}</title></circle>`;
  }
  const d = pts.map(([x, y]) => `${f.px(x).toFixed(1)},${f.py(y).toFixed(1)}`).join(" ");
  return `<polyline ${attrs} fill="none" stroke="${color}" stroke-width="2"${
    s.dashed ? ' stroke-dasharray="6 4"' : ""
  } points="${d}"><title>${escapeXml(s.name)}</title></polyline>`;
}

/** A legend in the right margin: one swatch and name per entry. */
function legend(x: number, y: number, names: string[], colors: string[], dashed: boolean[] = []): string[] {
  return names.flatMap((name, i) => {
    const yy = y + i * 16;
    return [
      `<line x1="${x}" y1="${yy + 5}" x2="${x + 16}" y2="${yy + 5}" stroke="${colors[i]}" stroke-width="3"${
        dashed[i] ? ' stroke-dasharray="4 3"' : ""
      }/>`,
      `<text x="${x + 21}" y="${yy + 9}">${escapeXml(shorten(name, 24))}</text>`,
    ];
  });
}

/** `s` cut to `n` characters with an ellipsis. */
export function shorten(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n - 1)}…`;
}

/** An xy chart: bands, grid, one element per series, legend on the right. */
export function xyChart(c: XYChart): string {
  const W = c.width ?? 560, H = c.height ?? 300, L = 48, R = 150, B = 36;
  const T = c.bands && c.bands.length > 0 ? 46 : 30; // band labels sit in a strip above the plot
  const xs = c.series.flatMap((s) => s.points.map((p) => p[0])).filter(Number.isFinite);
  const ys = c.series.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite);
  const xMin = Math.min(...xs, ...(c.bands ?? []).map((b) => b.from), xs.length ? Infinity : 0);
  const xMax = Math.max(...xs, ...(c.bands ?? []).map((b) => b.to), xMin + 1);
  const top = c.yMax ?? niceTop(Math.max(1e-9, ...ys) * 1.02);
  const f: Frame = {
    W,
    H,
    L,
    R,
    T,
    B,
    px: (x) => L + ((x - xMin) / (xMax - xMin)) * (W - L - R),
    py: (y) => T + (1 - Math.max(0, Math.min(y, top)) / top) * (H - T - B),
  };
  const colors = c.series.map((_, i) => COLORS[i % COLORS.length]);
  const out = [...svgRoot(W, H, c.title, c.cls), ...bandRects(f, c.bands ?? []), ...yGrid(f, top)];
  out.push(...axes(W, H, L, R, T, B), ...xTicks(f, xMin, xMax));
  out.push(
    `<text x="${(L + W - R) / 2}" y="${H - 4}" text-anchor="middle">${escapeXml(c.xLabel ?? "epoch")}</text>`,
  );
  c.series.forEach((s, i) => out.push(seriesElement(f, s, colors[i])));
  out.push(...legend(W - R + 10, T, c.series.map((s) => s.name), colors, c.series.map((s) => !!s.dashed)));
  return svgClose(out);
}

/** A grouped bar chart: one group per label, one bar per series, values in [0, yMax]. */
export interface BarChart {
  title: string;
  groups: string[];
  series: { name: string; values: (number | null)[]; color?: string }[];
  /** class of each group's element (e.g. "class-bar") */
  groupClass: string;
  yMax?: number;
  width?: number;
  height?: number;
  cls?: string;
  format?: (v: number) => string;
}

/** The bars of group `g`: one `<g class=groupClass data-group=g>` holding a rect per series. */
function barGroup(c: BarChart, f: Frame, g: number, gw: number, colors: string[]): string {
  const n = c.series.length, bw = Math.max(2, (gw * 0.8) / n), x0 = f.L + g * gw + gw * 0.1;
  const fmt = c.format ?? ((v: number): string => v.toFixed(3));
  const bars = c.series.map((s, i) => {
    const v = s.values[g];
    if (v === null || v === undefined || !Number.isFinite(v)) return "";
    const y = f.py(v), x = x0 + i * bw;
    return `<rect class="bar" data-series="${escapeXml(s.name)}" data-value="${v}" x="${x.toFixed(1)}" y="${
      y.toFixed(1)
    }" width="${(bw - 1).toFixed(1)}" height="${(f.H - f.B - y).toFixed(1)}" fill="${colors[i]}"><title>${
      escapeXml(`${c.groups[g]}, ${s.name}: ${fmt(v)}`)
    }</title></rect>`;
  });
  return `<g class="${escapeXml(c.groupClass)}" data-group="${g}">${bars.join("")}</g>`;
}

/** Group labels under the x axis; rotated when they do not fit their group's width. */
function groupLabels(f: Frame, groups: string[], gw: number): string[] {
  const rotate = groups.some((g) => g.length * 6.2 > gw);
  return groups.map((g, i) => {
    const x = f.L + (i + 0.5) * gw, y = f.H - f.B + 14;
    return rotate
      ? `<text x="${x.toFixed(1)}" y="${y}" text-anchor="end" transform="rotate(-30 ${x.toFixed(1)} ${y})">${
        escapeXml(shorten(g, 18))
      }</text>`
      : `<text x="${x.toFixed(1)}" y="${y}" text-anchor="middle">${escapeXml(g)}</text>`;
  });
}

/** A grouped bar chart (see `BarChart`). */
export function barChart(c: BarChart): string {
  const rotate = c.groups.some((g) => g.length * 6.2 > (560 - 198) / Math.max(1, c.groups.length));
  const W = c.width ?? 560, H = (c.height ?? 280) + (rotate ? 40 : 0), L = 48, R = 150, T = 30;
  const B = rotate ? 76 : 36;
  const vals = c.series.flatMap((s) => s.values).filter((v): v is number => v !== null && Number.isFinite(v));
  const top = c.yMax ?? niceTop(Math.max(1e-9, ...vals) * 1.02);
  const f: Frame = {
    W,
    H,
    L,
    R,
    T,
    B,
    px: (x) => x,
    py: (y) => T + (1 - Math.min(y, top) / top) * (H - T - B),
  };
  const gw = (W - L - R) / Math.max(1, c.groups.length);
  const colors = c.series.map((s, i) => s.color ?? COLORS[i % COLORS.length]);
  const out = [...svgRoot(W, H, c.title, c.cls), ...yGrid(f, top), ...axes(W, H, L, R, T, B)];
  c.groups.forEach((_, g) => out.push(barGroup(c, f, g, gw, colors)));
  out.push(...groupLabels(f, c.groups, gw));
  out.push(...legend(W - R + 10, T, c.series.map((s) => s.name), colors));
  return svgClose(out);
}

/** One cell of a heat map: `shade` in [0, 1] sets its colour; `attrs` go on its element. */
export interface HeatCell {
  shade: number;
  text: string;
  sub?: string;
  tooltip: string;
  attrs: Record<string, string | number>;
}

/** A heat map: rows × columns of cells (class `cellClass`), row labels left, column labels on top. */
export interface HeatMap {
  title: string;
  rowLabels: string[];
  colLabels: string[];
  cells: HeatCell[][];
  cellClass: string;
  rowTitle?: string;
  colTitle?: string;
  cls?: string;
}

/** White → dark blue for a shade in [0, 1]. */
export function blues(shade: number): string {
  const t = Math.max(0, Math.min(1, shade));
  const mix = (a: number, b: number): number => Math.round(a + (b - a) * t);
  return `rgb(${mix(247, 8)},${mix(251, 48)},${mix(255, 107)})`;
}

/** One heat-map cell: rect, its text (white on dark) and a tooltip. */
function heatCell(c: HeatCell, cls: string, x: number, y: number, size: number): string {
  const attrs = Object.entries(c.attrs).map(([k, v]) => ` ${k}="${escapeXml(String(v))}"`).join("");
  const ink = c.shade > 0.5 ? "white" : "#222";
  const cx = (x + size / 2).toFixed(1);
  return `<g class="${escapeXml(cls)}"${attrs}><title>${escapeXml(c.tooltip)}</title>` +
    `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${size - 1}" height="${size - 1}" fill="${
      blues(c.shade)
    }"/>` +
    `<text x="${cx}" y="${
      (y + size / 2 + (c.sub ? -1 : 4)).toFixed(1)
    }" text-anchor="middle" fill="${ink}" ` +
    `font-size="12">${escapeXml(c.text)}</text>` +
    (c.sub
      ? `<text x="${cx}" y="${(y + size / 2 + 12).toFixed(1)}" text-anchor="middle" fill="${ink}" ` +
        `font-size="9">${escapeXml(c.sub)}</text>`
      : "") +
    "</g>";
}

/** A heat map (see `HeatMap`): square cells of 30-60 px. */
export function heatMap(h: HeatMap): string {
  const n = Math.max(h.rowLabels.length, h.colLabels.length, 1);
  const size = Math.max(30, Math.min(60, Math.floor(480 / n)));
  const labelW = Math.min(150, 12 + 6.5 * Math.max(...h.rowLabels.map((l) => l.length), 4));
  const L = labelW + 22, T = 100, matrixH = size * h.rowLabels.length;
  const W = L + size * h.colLabels.length + 30, H = T + matrixH + 28;
  const out = svgRoot(Math.max(W, 320), H, h.title, h.cls);
  // column labels slanted above the matrix, the column title under it
  h.colLabels.forEach((l, j) => {
    const x = L + j * size + size / 2;
    out.push(
      `<text x="${x}" y="${T - 6}" text-anchor="start" transform="rotate(-40 ${x} ${T - 6})">${
        escapeXml(shorten(l, 13))
      }</text>`,
    );
  });
  out.push(
    `<text x="${L + (size * h.colLabels.length) / 2}" y="${T + matrixH + 18}" fill="#555" ` +
      `text-anchor="middle">${escapeXml(h.colTitle ?? "")}</text>`,
  );
  out.push(
    `<text x="12" y="${T + matrixH / 2}" fill="#555" text-anchor="middle" ` +
      `transform="rotate(-90 12 ${T + matrixH / 2})">${escapeXml(h.rowTitle ?? "")}</text>`,
  );
  h.rowLabels.forEach((l, i) => {
    out.push(
      `<text x="${L - 6}" y="${T + i * size + size / 2 + 4}" text-anchor="end">${escapeXml(l)}</text>`,
    );
    h.cells[i].forEach((c, j) => out.push(heatCell(c, h.cellClass, L + j * size, T + i * size, size)));
  });
  return svgClose(out);
}
