/**
 * The run report: `report.md` with the final figures, per-class table and confusion matrix, and
 * two SVG charts (`curves.svg`: loss, accuracy and macro-F1 per epoch; `class-recall.svg`: each
 * class's validation recall per epoch, where a class that learns badly shows at a glance).
 * Rebuilt from metrics.jsonl after every epoch, so a killed or resumed run still has one.
 */
import { lineChart } from "./svg.ts";
import type { Metrics } from "./types.ts";

export { lineChart } from "./svg.ts";

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

const pct = (v: number): string => `${(100 * v).toFixed(2)}%`;

/** Reads a run's metrics.jsonl. */
async function readRows(dir: string): Promise<Row[]> {
  return (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n").filter(Boolean)
    .map((l) => JSON.parse(l));
}

/** curves.svg and class-recall.svg of `rows`. */
async function writeCharts(dir: string, rows: Row[], classNames: string[]): Promise<void> {
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
}

/** The report.md section on the last validated epoch: figures, per-class table, confusion matrix. */
function lastValidation(last: Row & { val: { all: Metrics } }, classNames: string[]): string[] {
  const m = last.val.all;
  const md = [
    `## Validation after epoch ${last.epoch + 1} (stage ${last.stage + 1}, classes [${
      last.activeClasses.join(",")
    }])`,
    "",
    "| average loss | accuracy | macro recall | macro F1 | weighted F1 | balanced accuracy |",
    "|---|---|---|---|---|---|",
    `| ${m.loss.toFixed(4)} | ${pct(m.accuracy)} | ${m.macroRecall.toFixed(4)} | ${m.macroF1.toFixed(4)} | ${
      m.weightedF1.toFixed(4)
    } | ${pct(m.balancedAccuracy)} |`,
    "",
  ];
  const extra = [
    m.ordinalMae === undefined ? "" : `ordinal MAE ${m.ordinalMae.toFixed(4)}`,
    m.quadraticKappa === undefined ? "" : `quadratic kappa ${m.quadraticKappa.toFixed(4)}`,
    ...Object.entries(m.topK ?? {}).map(([k, v]) => `${k} ${pct(v)}`),
    ...Object.entries(m.shotGroups ?? {}).map(([g, v]) => `${g}-shot recall ${v === null ? "n/a" : pct(v)}`),
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
  return md;
}

/** Writes report.md, curves.svg and class-recall.svg into `dir` from its metrics.jsonl. */
export async function writeReport(dir: string, classNames: string[]): Promise<string> {
  const rows = await readRows(dir);
  await writeCharts(dir, rows, classNames);
  const last = [...rows].reverse().find((r) => r.val);
  const md = [`# Run report: ${dir.split("/").at(-1)}`, ""];
  md.push(`${rows.length} epochs. Charts: ![curves](curves.svg) ![class recall](class-recall.svg)`, "");
  if (last?.val) md.push(...lastValidation(last as Row & { val: { all: Metrics } }, classNames));
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
