/**
 * The run report: `report.md` with the final figures, per-class table and confusion matrix, and
 * two SVG charts (`curves.svg`: loss, accuracy and macro-F1 per epoch; `class-recall.svg`: each
 * class's validation recall per epoch, where a class that learns badly shows at a glance).
 * Rebuilt from metrics.jsonl after every epoch, so a killed or resumed run still has one.
 */
import type { Metrics } from "./types.ts";

interface Row {
  epoch: number;
  stage: number;
  activeClasses: number[];
  train: { loss: number; accuracy: number };
  val?: { all: Metrics };
  /** absent in runs from before these were recorded */
  sampledPerClass?: number[];
  expectedPerClass?: number[];
}

const COLORS = [
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

interface Series {
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
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${L}" y="18" font-size="13">${title}</text>`,
    `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="black"/>`,
    `<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="black"/>`,
  ];
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
  out.push("</svg>");
  return out.join("\n") + "\n";
}

function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

const pct = (v: number): string => `${(100 * v).toFixed(2)}%`;

/** Writes report.md, curves.svg and class-recall.svg into `dir` from its metrics.jsonl. */
export async function writeReport(dir: string, classNames: string[]): Promise<string> {
  const rows: Row[] = (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n").filter(Boolean)
    .map((l) => JSON.parse(l));
  const xs = rows.map((r) => r.epoch + 1);
  const stageStarts = rows.filter((r, i) => i > 0 && r.stage !== rows[i - 1].stage).map((r) => r.epoch + 1);
  const valOf = (f: (m: Metrics) => number): (number | null)[] =>
    rows.map((r) => (r.val ? f(r.val.all) : null));
  await Deno.writeTextFile(
    `${dir}/curves.svg`,
    lineChart("loss, accuracy and macro-F1 per epoch", xs, [
      { name: "train loss", values: rows.map((r) => r.train.loss) },
      { name: "val loss", values: valOf((m) => m.loss) },
      { name: "train accuracy", values: rows.map((r) => r.train.accuracy) },
      { name: "val accuracy", values: valOf((m) => m.accuracy) },
      { name: "val macro-F1", values: valOf((m) => m.macroF1) },
    ], stageStarts),
  );
  await Deno.writeTextFile(
    `${dir}/class-recall.svg`,
    lineChart(
      "validation recall per class (all classes scored)",
      xs,
      classNames.map((name, k) => ({
        name: `${k} ${name}`,
        values: rows.map((r) => (r.val ? r.val.all.perClass[k]?.recall ?? null : null)),
      })),
      stageStarts,
      1,
    ),
  );
  const last = [...rows].reverse().find((r) => r.val);
  const md = [`# Run report: ${dir.split("/").at(-1)}`, ""];
  md.push(`${rows.length} epochs. Charts: ![curves](curves.svg) ![class recall](class-recall.svg)`, "");
  if (last?.val) {
    const m = last.val.all;
    md.push(
      `## Validation after epoch ${last.epoch + 1} (stage ${last.stage + 1}, classes [${
        last.activeClasses.join(",")
      }])`,
      "",
    );
    md.push(
      "| average loss | accuracy | macro recall | macro F1 | weighted F1 | balanced accuracy |",
      "|---|---|---|---|---|---|",
    );
    md.push(
      `| ${m.loss.toFixed(4)} | ${pct(m.accuracy)} | ${m.macroRecall.toFixed(4)} | ${
        m.macroF1.toFixed(4)
      } | ${m.weightedF1.toFixed(4)} | ${pct(m.balancedAccuracy)} |`,
      "",
    );
    const extra = [
      m.ordinalMae === undefined ? "" : `ordinal MAE ${m.ordinalMae.toFixed(4)}`,
      m.quadraticKappa === undefined ? "" : `quadratic kappa ${m.quadraticKappa.toFixed(4)}`,
      ...Object.entries(m.topK ?? {}).map(([k, v]) => `${k} ${pct(v)}`),
      ...Object.entries(m.shotGroups ?? {}).map(([g, v]) =>
        `${g}-shot recall ${v === null ? "n/a" : pct(v)}`
      ),
    ].filter(Boolean);
    if (extra.length > 0) md.push(extra.join(", ") + ".", "");
    // the draws show what the sampler did to each class (the seed author's 1/frequency question)
    const drawn = last.sampledPerClass, expected = last.expectedPerClass;
    const draws = drawn !== undefined && expected !== undefined;
    md.push(
      `| class | precision | recall | F1 | support |${draws ? " drawn in this epoch | expected |" : ""}`,
      `|---|---|---|---|---|${draws ? "---|---|" : ""}`,
    );
    m.perClass.forEach((c, k) =>
      md.push(
        `| ${k} ${classNames[k] ?? ""} | ${pct(c.precision)} | ${pct(c.recall)} | ${
          pct(c.f1)
        } | ${c.support} |${draws ? ` ${drawn[k]} | ${expected[k].toFixed(1)} |` : ""}`,
      )
    );
    md.push("", "Confusion matrix (rows: true class, columns: predicted):", "");
    md.push(
      `| | ${classNames.map((_, k) => k).join(" | ")} |`,
      `|---|${classNames.map(() => "---").join("|")}|`,
    );
    m.confusion.forEach((row, k) => md.push(`| **${k}** | ${row.join(" | ")} |`));
  }
  md.push(
    "",
    "## Per epoch",
    "",
    "| epoch | stage | train loss | train acc | val loss | val acc | val macro-F1 |",
    "|---|---|---|---|---|---|---|",
  );
  for (const r of rows) {
    const v = r.val?.all;
    md.push(
      `| ${r.epoch + 1} | ${r.stage + 1} | ${r.train.loss.toFixed(4)} | ${pct(r.train.accuracy)} | ${
        v ? v.loss.toFixed(4) : ""
      } | ${v ? pct(v.accuracy) : ""} | ${v ? v.macroF1.toFixed(4) : ""} |`,
    );
  }
  await Deno.writeTextFile(`${dir}/report.md`, md.join("\n") + "\n");
  return `${dir}/report.md`;
}
