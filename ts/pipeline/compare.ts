/**
 * `deno task compare`: trains several recipes on the same data, budget and seeds, one run after
 * another, and writes a table (mean ± std over seeds) and a chart that name the best recipe.
 *
 * A recipe is a list of `--set` overrides on one base config (plugin sections replace whole:
 * `sampler={name: shuffle}`), or one cell of a grid over `--set` keys. Figures are those of
 * the FINAL epoch on val, not of the best epoch: picking the best epoch on val and reporting on
 * the same val would flatter every recipe by a different amount.
 *
 * Resumable: `compare.json` records each (recipe, seed) cell; running the same command again
 * skips finished cells and resumes an interrupted run from its last checkpoint.
 */
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import YAML from "yaml";
import { z } from "zod";
import { parseYaml } from "./config.ts";
import { ConfigError, UsageError } from "./errors.ts";
import { type CellJob, type CellResult, pool, runCellInChild, runCellInProcess } from "./compare-cells.ts";
import { exists, writeAtomic } from "./rundir.ts";
import { escapeXml, svgClose, svgOpen } from "./svg.ts";

export { type CellResult, cellResult } from "./compare-cells.ts";

const SetList = z.array(z.string().regex(/^[^=\s]+=/, "expected key.path=value"));

export const CompareSpecSchema = z.object({
  name: z.string().regex(/^[\w.-]+$/, "letters, digits, '.', '_' or '-'").default("compare"),
  /** the base config, relative to the spec file */
  config: z.string(),
  seeds: z.array(z.number().int().min(0)).min(1).default([0, 1, 2]),
  /** overrides for every recipe: the shared budget (epochs, image size, ...) */
  set: SetList.default([]),
  /** recipe name -> its overrides */
  recipes: z.record(z.string().regex(/^[\w.=,-]+$/), SetList).default({}),
  /** key -> values: every combination becomes a recipe (named key=value,...) */
  grid: z.record(z.string(), z.array(z.unknown()).min(1)).default({}),
  /** the recipe the others are measured against; default: the first */
  baseline: z.string().nullable().default(null),
  /** the figure that ranks recipes */
  metric: z.enum(["macroF1", "accuracy", "balancedAccuracy", "macroRecall", "weightedF1"]).default("macroF1"),
}).strict();

export type CompareSpec = z.infer<typeof CompareSpecSchema>;

/** One recipe: a name and its overrides. */
export interface Recipe {
  name: string;
  set: string[];
}

/** One (recipe, seed) run in compare.json. */
export interface Cell {
  recipe: string;
  seed: number;
  dir: string | null;
  status: "pending" | "running" | "done";
  result: CellResult | null;
  /** wall seconds the run took (training, validation, checkpoints), summed over resumes */
  wallSeconds?: number;
}

/** compare.json */
export interface CompareState {
  version: 1;
  specHash: string;
  classNames: string[];
  cells: Cell[];
}

/** Mean and sample standard deviation (0 for one value). */
export function meanStd(values: number[]): { mean: number; std: number } {
  const n = values.length;
  if (n === 0) return { mean: Number.NaN, std: Number.NaN };
  const mean = values.reduce((a, b) => a + b, 0) / n;
  if (n === 1) return { mean, std: 0 };
  const v = values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1);
  return { mean, std: Math.sqrt(v) };
}

/** The recipes of a spec: listed ones first, then the grid's combinations. */
export function expandRecipes(spec: CompareSpec): Recipe[] {
  const out: Recipe[] = Object.entries(spec.recipes).map(([name, set]) => ({ name, set }));
  const keys = Object.keys(spec.grid);
  if (keys.length > 0) {
    let combos: [string, unknown][][] = [[]];
    for (const k of keys) {
      combos = combos.flatMap((c) => spec.grid[k].map((v) => [...c, [k, v] as [string, unknown]]));
    }
    for (const c of combos) {
      out.push({
        name: c.map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(","),
        set: c.map(([k, v]) => `${k}=${JSON.stringify(v)}`),
      });
    }
  }
  if (out.length === 0) throw new UsageError("compare: the spec has no recipes and no grid");
  const seen = new Set<string>();
  for (const r of out) {
    if (seen.has(r.name)) throw new UsageError(`compare: two recipes are named "${r.name}"`);
    seen.add(r.name);
  }
  if (spec.baseline !== null && !seen.has(spec.baseline)) {
    throw new UsageError(
      `compare: baseline "${spec.baseline}" is not one of the recipes (${[...seen].join(", ")})`,
    );
  }
  return out;
}

/** Reads and validates a spec file (YAML); `config` becomes absolute. */
export async function loadCompareSpec(file: string): Promise<CompareSpec> {
  const raw = parseYaml(await Deno.readTextFile(file), file);
  const parsed = CompareSpecSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => ({
      path: i.path as (string | number)[],
      message: i.message,
    }));
    throw new ConfigError(file, issues, { cause: parsed.error });
  }
  const spec = parsed.data;
  if (!isAbsolute(spec.config)) spec.config = resolve(dirname(resolve(file)), spec.config);
  return spec;
}

/** Per-recipe summary over seeds. */
export interface RecipeSummary {
  recipe: string;
  seeds: number;
  figures: Record<"accuracy" | "macroF1" | "balancedAccuracy", { mean: number; std: number }>;
  perClassRecall: number[];
  metricValues: number[];
  trainMinutes: number;
  /** each seed's last-3-epoch macro-F1 move (cellResult's lastMove); null where unknown */
  lastMoves: (number | null)[];
}

export function summarize(
  state: CompareState,
  recipes: Recipe[],
  metric: CompareSpec["metric"],
): RecipeSummary[] {
  return recipes.map((r) => {
    const done = state.cells.filter((c) => c.recipe === r.name && c.status === "done" && c.result);
    const res = done.map((c) => c.result!);
    const k = res[0]?.perClassRecall.length ?? 0;
    return {
      recipe: r.name,
      seeds: res.length,
      figures: {
        accuracy: meanStd(res.map((x) => x.accuracy)),
        macroF1: meanStd(res.map((x) => x.macroF1)),
        balancedAccuracy: meanStd(res.map((x) => x.balancedAccuracy)),
      },
      perClassRecall: Array.from({ length: k }, (_, j) => meanStd(res.map((x) => x.perClassRecall[j])).mean),
      metricValues: res.map((x) => x[metric]),
      trainMinutes: meanStd(res.map((x) => x.trainSeconds / 60)).mean,
      lastMoves: res.map((x) => x.lastMove ?? null),
    };
  });
}

/** The verdict: best recipe by mean metric, and whether it beats the baseline by more than the spread. */
export function verdict(
  sums: RecipeSummary[],
  baseline: string,
  metric: string,
): { best: string; line: string; beatsBaseline: boolean } {
  const ranked = sums.filter((s) => s.seeds > 0).sort((a, b) =>
    meanStd(b.metricValues).mean - meanStd(a.metricValues).mean
  );
  if (ranked.length === 0) return { best: "", line: "No finished runs yet.", beatsBaseline: false };
  const best = ranked[0];
  const base = sums.find((s) => s.recipe === baseline)!;
  const b = meanStd(best.metricValues), a = meanStd(base.metricValues);
  if (best.recipe === baseline) {
    return {
      best: best.recipe,
      line: `Best recipe: **${best.recipe}** (the baseline) with ${metric} ${fmt(b.mean)} ± ${fmt(b.std)}.`,
      beatsBaseline: false,
    };
  }
  const diff = b.mean - a.mean;
  // "more than the seeds' spread": the gap must exceed both recipes' standard deviations added
  const spread = b.std + a.std;
  const beats = diff > spread;
  return {
    best: best.recipe,
    beatsBaseline: beats,
    line:
      `Best recipe: **${best.recipe}**, ${metric} ${fmt(b.mean)} ± ${fmt(b.std)} vs baseline ${baseline} ` +
      `${fmt(a.mean)} ± ${fmt(a.std)}: +${fmt(diff)}, ` +
      (beats
        ? `more than the seeds' spread (std sum ${fmt(spread)}).`
        : `NOT more than the seeds' spread (std sum ${fmt(spread)}), so not a clear win.`),
  };
}

function fmt(v: number): string {
  return Number.isFinite(v) ? v.toFixed(4) : "n/a";
}

/**
 * "yes (0.36)" when every seed's val macro-F1 moved less than 0.5 points over its last 3 epochs,
 * "no (1.20)" otherwise (the largest move, F1 points), "n/a" when some run lacks 3 validations.
 */
export function flattened(moves: (number | null)[]): string {
  if (moves.length === 0 || moves.some((m) => m === null)) return "n/a";
  const worst = 100 * Math.max(...(moves as number[]));
  return `${worst < 0.5 ? "yes" : "no"} (${worst.toFixed(2)})`;
}

const pct = (m: { mean: number; std: number }): string =>
  Number.isFinite(m.mean) ? `${(100 * m.mean).toFixed(2)} ± ${(100 * m.std).toFixed(2)}` : "n/a";

/** compare.md: the table, the per-class recall table, the verdict and a link to each run's report.html. */
export function compareMarkdown(
  spec: CompareSpec,
  recipes: Recipe[],
  state: CompareState,
  /** the comparison folder, so the report links are relative to compare.md */
  dir?: string,
): { md: string; best: string } {
  const sums = summarize(state, recipes, spec.metric);
  const baseline = spec.baseline ?? recipes[0].name;
  const v = verdict(sums, baseline, spec.metric);
  const lines = [
    `# Recipe comparison: ${spec.name}`,
    "",
    `Base config \`${spec.config}\`, shared overrides: ${
      spec.set.map((s) => `\`${s}\``).join(", ") || "none"
    }; ` +
    `seeds ${
      spec.seeds.join(", ")
    }. Figures: final epoch on val, mean ± sample std over seeds (%, F1 × 100).`,
    "",
    "| recipe | runs | accuracy | macro-F1 | balanced acc | train min/run | flattened (last-3 macro-F1 move) |",
    "| --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const s of sums) {
    lines.push(
      `| ${s.recipe}${s.recipe === baseline ? " (baseline)" : ""} | ${s.seeds}/${spec.seeds.length} | ${
        pct(s.figures.accuracy)
      } | ${pct(s.figures.macroF1)} | ${pct(s.figures.balancedAccuracy)} | ${s.trainMinutes.toFixed(1)} | ${
        flattened(s.lastMoves)
      } |`,
    );
  }
  const names = state.classNames;
  lines.push("", "Per-class recall (mean over seeds, %):", "");
  lines.push(`| recipe | ${names.map((n, k) => `${k} ${n}`).join(" | ")} |`);
  lines.push(`| --- | ${names.map(() => "---").join(" | ")} |`);
  for (const s of sums) {
    lines.push(
      `| ${s.recipe} | ${
        names.map((
          _,
          k,
        ) => (s.perClassRecall[k] === undefined ? "n/a" : (100 * s.perClassRecall[k]).toFixed(1))).join(" | ")
      } |`,
    );
  }
  lines.push("", v.line, "", "Recipes:", "");
  for (const r of recipes) {
    lines.push(`- **${r.name}**: ${r.set.map((s) => `\`${s}\``).join(" ") || "the base config"}`);
  }
  const reports = state.cells.filter((c) => c.dir !== null).map((c) => {
    const link = (f: string): string => `[${f}](${dir ? relative(dir, join(c.dir!, f)) : join(c.dir!, f)})`;
    const wall = c.wallSeconds === undefined ? "" : `, ${(c.wallSeconds / 60).toFixed(1)} min wall`;
    return `- ${c.recipe}, seed ${c.seed}: ${link("report.html")}, ${link("report.md")}${wall}`;
  });
  if (reports.length > 0) lines.push("", "Each run's report:", "", ...reports);
  lines.push("", "![macro-F1 per recipe](compare.svg)", "");
  return { md: lines.join("\n"), best: v.best };
}

/**
 * "; about N min left (M runs)" from the mean wall time of the finished runs, or "" before the first
 * has finished. Runs of one comparison share a budget, so their mean is a fair guess.
 */
export function etaLine(cells: Cell[]): string {
  const timed = cells.filter((c) => c.status === "done" && c.wallSeconds !== undefined);
  const left = cells.filter((c) => c.status !== "done").length;
  if (timed.length === 0 || left === 0) return "";
  const mean = timed.reduce((a, c) => a + c.wallSeconds!, 0) / timed.length;
  return `; about ${Math.ceil((mean * left) / 60)} min left (${left} run${left === 1 ? "" : "s"})`;
}

/** A horizontal bar chart: mean metric per recipe, whiskers ± std, one dot per seed. */
export function compareChart(sums: RecipeSummary[], metric: string): string {
  const W = 720, row = 28, L = 230, R = 70, T = 36;
  const H = T + row * sums.length + 30;
  const px = (v: number): number => L + Math.max(0, Math.min(1, v)) * (W - L - R);
  const out = svgOpen(
    W,
    H,
    L,
    `val ${escapeXml(metric)} per recipe (final epoch; bar = mean, whisker = ±1 std, dots = seeds)`,
  );
  for (let t = 0; t <= 10; t += 2) {
    const x = px(t / 10);
    out.push(`<line x1="${x}" y1="${T - 4}" x2="${x}" y2="${H - 26}" stroke="#eee"/>`);
    out.push(`<text x="${x}" y="${H - 12}" text-anchor="middle">${(t / 10).toFixed(1)}</text>`);
  }
  sums.forEach((s, i) => {
    const y = T + i * row;
    const m = meanStd(s.metricValues);
    out.push(`<text x="${L - 8}" y="${y + 16}" text-anchor="end">${escapeXml(s.recipe)}</text>`);
    if (s.seeds === 0) return;
    out.push(`<rect x="${L}" y="${y + 5}" width="${px(m.mean) - L}" height="${row - 10}" fill="#8ab4e8"/>`);
    out.push(
      `<line x1="${px(m.mean - m.std)}" y1="${y + row / 2}" x2="${px(m.mean + m.std)}" y2="${
        y + row / 2
      }" stroke="black"/>`,
    );
    for (const v of s.metricValues) {
      out.push(`<circle cx="${px(v)}" cy="${y + row / 2}" r="2.5" fill="#c0392b"/>`);
    }
    out.push(`<text x="${px(m.mean + m.std) + 6}" y="${y + 16}">${m.mean.toFixed(3)}</text>`);
  });
  return svgClose(out);
}

/** A short stable hash of what decides the runs, so a changed spec is not mixed with old results. */
export async function specHash(spec: CompareSpec, recipes: Recipe[]): Promise<string> {
  const text = JSON.stringify({ config: spec.config, set: spec.set, seeds: spec.seeds, recipes });
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest).slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Options of `runCompare`. */
export interface CompareOptions {
  /** folder holding `compare-<name>/` (default "runs") */
  out?: string;
  /** print each run's log to the console */
  console?: boolean;
  /** progress lines ("[3/18] recipe seed 1 ...") */
  log?: (line: string) => void;
  /**
   * runs training at once, each in a child process (default 1: one after another, in this process).
   * Unless the spec sets `train.threads`, each run gets the machine's cores / parallel threads.
   */
  parallel?: number;
}

/** What `runCompare` returns. */
export interface CompareResult {
  dir: string;
  best: string;
  markdown: string;
  state: CompareState;
}

/** compare.json as left by an earlier invocation of the same spec, or a fresh one with every cell pending. */
async function openState(
  statePath: string,
  hash: string,
  spec: CompareSpec,
  recipes: Recipe[],
): Promise<CompareState> {
  let state: CompareState;
  try {
    state = JSON.parse(await Deno.readTextFile(statePath)) as CompareState;
    if (state.specHash !== hash) {
      throw new UsageError(
        `compare: ${statePath} was made by a different spec (recipes, seeds, config or shared overrides ` +
          `changed); give the comparison a new name, or remove that folder`,
      );
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    state = { version: 1, specHash: hash, classNames: [], cells: [] };
    for (const r of recipes) {
      for (const seed of spec.seeds) {
        state.cells.push({ recipe: r.name, seed, dir: null, status: "pending", result: null });
      }
    }
  }
  return state;
}

/** Runs (or continues) every cell of the spec; see the module doc. */
export async function runCompare(spec: CompareSpec, opts: CompareOptions = {}): Promise<CompareResult> {
  const log = opts.log ?? ((l: string): void => console.log(l));
  const recipes = expandRecipes(spec);
  const dir = resolve(opts.out ?? "runs", `compare-${spec.name}`);
  const runsDir = join(dir, "runs");
  await Deno.mkdir(runsDir, { recursive: true });
  const statePath = join(dir, "compare.json");
  const hash = await specHash(spec, recipes);
  const state = await openState(statePath, hash, spec, recipes);
  await writeAtomic(join(dir, "spec.yaml"), YAML.stringify(spec));
  // with --parallel two workers save at once: each save snapshots the state when called and
  // writes after the one before, so an older snapshot never lands over a newer one
  let saved: Promise<void> = Promise.resolve();
  const save = (): Promise<void> => {
    const text = JSON.stringify(state, null, 2) + "\n";
    saved = saved.then(() => writeAtomic(statePath, text));
    return saved;
  };
  const render = async (): Promise<CompareResult> => {
    const { md, best } = compareMarkdown(spec, recipes, state, dir);
    await writeAtomic(join(dir, "compare.md"), md);
    await writeAtomic(
      join(dir, "compare.svg"),
      compareChart(summarize(state, recipes, spec.metric), spec.metric),
    );
    return { dir, best, markdown: md, state };
  };
  const total = state.cells.length;
  const parallel = Math.max(1, opts.parallel ?? 1);
  const threads = parallel > 1 && !spec.set.some((s) => s.startsWith("train.threads="))
    ? [`train.threads=${Math.max(1, Math.floor(navigator.hardwareConcurrency / parallel))}`]
    : [];
  const pending = [...state.cells.entries()].filter(([, c]) => c.status !== "done");
  await pool(pending, parallel, async ([i, cell]) => {
    const recipe = recipes.find((r) => r.name === cell.recipe)!;
    const runName = `${recipe.name.replace(/[^\w.-]+/g, "_")}-s${cell.seed}`;
    const resumable = cell.dir !== null && await exists(join(cell.dir, "checkpoints", "last.json"));
    const left = etaLine(state.cells);
    log(`[${i + 1}/${total}] ${cell.recipe}, seed ${cell.seed}${resumable ? " (resuming)" : ""}${left}`);
    const started = performance.now();
    if (!resumable && cell.dir !== null) await Deno.remove(cell.dir, { recursive: true }).catch(() => {});
    const job: CellJob = {
      config: resumable ? join(cell.dir!, "config.yaml") : spec.config,
      overrides: resumable
        ? threads
        : [...spec.set, ...recipe.set, `seed=${cell.seed}`, `name=${runName}`, ...threads],
      resumeDir: resumable ? cell.dir! : undefined,
      out: runsDir,
      console: opts.console ?? false,
    };
    const onStart = async (runDir: string, classNames: string[]): Promise<void> => {
      cell.dir = runDir;
      cell.status = "running";
      if (state.classNames.length === 0) state.classNames = classNames;
      await save();
    };
    cell.result = parallel > 1 ? await runCellInChild(job, onStart) : await runCellInProcess(job, onStart);
    cell.status = "done";
    cell.wallSeconds = (cell.wallSeconds ?? 0) + (performance.now() - started) / 1000;
    await save();
    log(
      `[${i + 1}/${total}] ${cell.recipe}, seed ${cell.seed}: accuracy ${
        (100 * cell.result.accuracy).toFixed(2)
      }%, ` +
        `macro-F1 ${cell.result.macroF1.toFixed(4)} (${
          (cell.result.trainSeconds / 60).toFixed(1)
        } min training, ${(cell.wallSeconds / 60).toFixed(1)} min wall)${etaLine(state.cells)}`,
    );
    await render();
  });
  return await render();
}

/** A spec from command-line pieces: each `--config` file a recipe, or a grid over one base config. */
export function specFromArgs(o: {
  configs: string[];
  grid: string[];
  set: string[];
  seeds: number[];
  name: string;
  metric?: CompareSpec["metric"];
}): CompareSpec {
  if (o.configs.length === 0) throw new UsageError("compare: give a spec file, or at least one --config");
  const grid: Record<string, unknown[]> = {};
  for (const g of o.grid) {
    const eq = g.indexOf("=");
    if (eq <= 0) throw new UsageError(`compare: --grid ${g}: expected key.path=v1,v2,...`);
    grid[g.slice(0, eq)] = g.slice(eq + 1).split(",").map((v) => YAML.parse(v));
  }
  const base = resolve(o.configs[0]);
  const recipes: Record<string, string[]> = {};
  if (o.configs.length > 1) {
    // each config is a recipe: its whole file is the override of the base (same data, budget)
    for (const f of o.configs) {
      const name = f.replace(/^.*\//, "").replace(/\.ya?ml$/, "");
      const raw = parseYaml(Deno.readTextFileSync(f), f);
      recipes[name] = Object.entries(raw)
        .filter(([k]) => !["name", "seed", "baseDir"].includes(k))
        .map(([k, v]) => `${k}=${JSON.stringify(pathsAbsolute(k, v, dirname(resolve(f))))}`);
    }
  } else if (o.grid.length === 0) {
    recipes[o.configs[0].replace(/^.*\//, "").replace(/\.ya?ml$/, "")] = [];
  }
  return CompareSpecSchema.parse({
    name: o.name,
    config: base,
    seeds: o.seeds,
    set: o.set,
    recipes,
    grid,
    ...(o.metric ? { metric: o.metric } : {}),
  });
}

/** A config's data section with its loader paths made absolute (recipes from other folders). */
function pathsAbsolute(key: string, v: unknown, dir: string): unknown {
  if (key !== "data" || typeof v !== "object" || v === null) return v;
  const data = structuredClone(v) as Record<string, Record<string, unknown>>;
  const loader = data.loader;
  if (loader) {
    for (const k of ["root", "dir", "file"]) {
      if (typeof loader[k] === "string" && !isAbsolute(loader[k] as string)) {
        loader[k] = resolve(dir, loader[k] as string);
      }
    }
  }
  return data;
}
