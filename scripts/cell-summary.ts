/**
 * Per-cell figures of a finished (or partly finished) comparison, for writing up its verdict:
 * final and best val figures, the first epoch at >= 90% accuracy, the last-3 macro-F1 move,
 * minutes, the LR that `lr: auto` picked, and per-class recall; then per-recipe mean ± std.
 * Reads only what `deno task compare` left on disk (compare.json and each run's metrics.jsonl).
 *
 *   deno run -A scripts/cell-summary.ts runs/compare-q12-pbc32-confirm [more compare folders...]
 */
import { join } from "node:path";
import { meanStd } from "../ts/pipeline/compare.ts";
import type { CompareState } from "../ts/pipeline/compare.ts";
import { lastMove } from "../ts/pipeline/compare-cells.ts";

interface EpochLine {
  epoch: number;
  val?: {
    all?: {
      accuracy: number;
      macroF1: number;
      balancedAccuracy: number;
      perClass: { recall: number }[];
      confusion: number[][];
    };
  };
}

const pct = (x: number): string => (100 * x).toFixed(2);

async function readJsonl(path: string): Promise<EpochLine[]> {
  const text = await Deno.readTextFile(path);
  return text.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as EpochLine);
}

async function pickedLr(dir: string): Promise<string> {
  try {
    const j = JSON.parse(await Deno.readTextFile(join(dir, "lr-auto.json")));
    return typeof j.picked === "number" ? j.picked.toExponential(2) : "-";
  } catch {
    return "-";
  }
}

function topConfusions(m: number[][]): string {
  const pairs = m.flatMap((row, t) => row.map((n, p) => ({ t, p, n }))).filter((x) => x.t !== x.p && x.n > 0);
  pairs.sort((a, b) => b.n - a.n);
  return pairs.slice(0, 3).map((x) => `${x.t}>${x.p} ${x.n}`).join(", ");
}

interface Row {
  recipe: string;
  seed: number;
  acc: number;
  f1: number;
  bal: number;
  bestF1: number;
  at90: number | null;
  move: number | null;
  minutes: number | null;
  lr: string;
  recall: number[];
  /** the three costliest confusions of the final epoch, "true>predicted count" */
  confusions: string;
}

async function summarizeFolder(folder: string): Promise<Row[]> {
  const state = JSON.parse(await Deno.readTextFile(join(folder, "compare.json"))) as CompareState;
  const rows: Row[] = [];
  for (const cell of state.cells) {
    if (cell.status !== "done" || !cell.dir) continue;
    const dir = cell.dir.startsWith("/") ? cell.dir : join(folder, cell.dir);
    const vals = (await readJsonl(join(dir, "metrics.jsonl"))).flatMap((e) =>
      e.val?.all ? [{ e: e.epoch, v: e.val.all }] : []
    );
    const last = vals.at(-1);
    if (!last) continue;
    const f1s = vals.map((x) => x.v.macroF1);
    const hit = vals.find((x) => x.v.accuracy >= 0.9);
    rows.push({
      recipe: cell.recipe,
      seed: cell.seed,
      acc: last.v.accuracy,
      f1: last.v.macroF1,
      bal: last.v.balancedAccuracy,
      bestF1: Math.max(...f1s),
      at90: hit ? hit.e + 1 : null,
      move: lastMove(f1s),
      minutes: cell.wallSeconds ? cell.wallSeconds / 60 : null,
      lr: await pickedLr(dir),
      recall: last.v.perClass.map((c) => c.recall),
      confusions: topConfusions(last.v.confusion),
    });
  }
  return rows;
}

const folders = Deno.args;
if (folders.length === 0) {
  console.error("usage: deno run -A scripts/cell-summary.ts <runs/compare-NAME> [...]");
  Deno.exit(2);
}
const rows = (await Promise.all(folders.map(summarizeFolder))).flat();
console.log(
  "| recipe | seed | acc % | macro-F1 % | bal % | best F1 % | epoch >= 90% | last-3 move | min | lr auto | recall per class % | top confusions |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|---|---|");
for (const r of rows) {
  console.log(
    `| ${r.recipe} | ${r.seed} | ${pct(r.acc)} | ${pct(r.f1)} | ${pct(r.bal)} | ${pct(r.bestF1)} | ${
      r.at90 ?? "never"
    } | ${r.move === null ? "-" : pct(r.move)} | ${r.minutes?.toFixed(1) ?? "-"} | ${r.lr} | ${
      r.recall.map((x) => (100 * x).toFixed(0)).join(" ")
    } | ${r.confusions} |`,
  );
}
console.log("\n| recipe | seeds | acc % | macro-F1 % | bal % | recall per class % (mean) |");
console.log("|---|---|---|---|---|---|");
const fmt = (xs: number[]): string => {
  const { mean, std } = meanStd(xs);
  return `${pct(mean)} ± ${pct(std)}`;
};
for (const recipe of [...new Set(rows.map((r) => r.recipe))]) {
  const rs = rows.filter((r) => r.recipe === recipe);
  const recall = rs[0].recall.map((_, k) => meanStd(rs.map((r) => r.recall[k])).mean);
  console.log(
    `| ${recipe} | ${rs.map((r) => r.seed).join(",")} | ${fmt(rs.map((r) => r.acc))} | ${
      fmt(rs.map((r) => r.f1))
    } | ${fmt(rs.map((r) => r.bal))} | ${recall.map((x) => (100 * x).toFixed(1)).join(" ")} |`,
  );
}
