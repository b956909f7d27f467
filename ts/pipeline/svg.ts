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
