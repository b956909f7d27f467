import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type Cell,
  CompareSpecSchema,
  type CompareState,
  etaLine,
  expandRecipes,
  flattened,
  loadCompareSpec,
  meanStd,
  type RecipeSummary,
  runCompare,
  verdict,
} from "../../ts/pipeline/compare.ts";
import { cellResult, lastMove, pool } from "../../ts/pipeline/compare-cells.ts";
import type { RunResult } from "../../ts/pipeline/runner.ts";
import { syntheticYaml } from "./helpers.ts";

Deno.test("compare: mean and sample std", () => {
  assert.deepEqual(meanStd([0.5]), { mean: 0.5, std: 0 });
  const m = meanStd([1, 2, 3, 4]);
  assert.equal(m.mean, 2.5);
  assert.ok(Math.abs(m.std - Math.sqrt(5 / 3)) < 1e-12);
});

Deno.test("compare: recipes from a list and from a grid; bad specs are refused", () => {
  const spec = CompareSpecSchema.parse({
    config: "x.yaml",
    recipes: { base: [], ce: ["loss={name: cross-entropy}"] },
    grid: { "loss.gamma": [0, 2], "train.optimizer.lr": [0.001] },
  });
  assert.deepEqual(expandRecipes(spec), [
    { name: "base", set: [] },
    { name: "ce", set: ["loss={name: cross-entropy}"] },
    { name: "loss.gamma=0,train.optimizer.lr=0.001", set: ["loss.gamma=0", "train.optimizer.lr=0.001"] },
    { name: "loss.gamma=2,train.optimizer.lr=0.001", set: ["loss.gamma=2", "train.optimizer.lr=0.001"] },
  ]);
  assert.throws(() => expandRecipes(CompareSpecSchema.parse({ config: "x" })), /no recipes and no grid/);
  assert.throws(
    () => expandRecipes(CompareSpecSchema.parse({ config: "x", recipes: { a: [] }, baseline: "b" })),
    /baseline "b" is not one of the recipes/,
  );
  assert.throws(
    () => CompareSpecSchema.parse({ config: "x", recipes: { a: ["noequals"] } }),
    /key.path=value/,
  );
  assert.throws(() => CompareSpecSchema.parse({ config: "x", recipez: {} }), /recipez/);
});

function summary(recipe: string, values: number[]): RecipeSummary {
  const m = meanStd(values);
  return {
    recipe,
    seeds: values.length,
    figures: { accuracy: m, macroF1: m, balancedAccuracy: m },
    perClassRecall: [],
    metricValues: values,
    trainMinutes: 1,
    lastMoves: [],
  };
}

Deno.test("compare: a run has flattened when val macro-F1 moved < 0.5 points over its last 3 epochs", () => {
  assert.equal(lastMove([0.5, 0.9]), null, "fewer than 3 validations");
  assert.ok(Math.abs(lastMove([0.1, 0.80, 0.83, 0.81])! - 0.03) < 1e-12, "max - min of the last 3 only");
  // a run's figures carry it, from the epochs that validated (others are skipped)
  const epoch = (f1: number | null) => ({
    train: { seconds: 2 },
    val: f1 === null ? undefined : {
      all: {
        accuracy: f1,
        macroF1: f1,
        balancedAccuracy: f1,
        macroRecall: f1,
        weightedF1: f1,
        perClass: [{ recall: f1 }],
      },
    },
  });
  const history = [epoch(0.5), epoch(0.90), epoch(null), epoch(0.902), epoch(0.899)];
  const r = cellResult({ history } as unknown as Pick<RunResult, "history">);
  assert.ok(Math.abs(r.lastMove! - 0.003) < 1e-12, `lastMove ${r.lastMove}`);
  assert.equal(r.macroF1, 0.899);
  assert.equal(r.trainSeconds, 10);
  // the table's column: every seed under 0.5 points, else the largest move; unknown stays unknown
  assert.equal(flattened([0.003, 0.0036]), "yes (0.36)");
  assert.equal(flattened([0.003, 0.012]), "no (1.20)");
  assert.equal(flattened([0.003, null]), "n/a");
  assert.equal(flattened([]), "n/a");
});

Deno.test("compare: the ETA is the finished runs' mean wall time times the runs left", () => {
  const cell = (status: Cell["status"], wallSeconds?: number): Cell => ({
    recipe: "r",
    seed: 0,
    dir: null,
    status,
    result: null,
    wallSeconds,
  });
  assert.equal(etaLine([cell("pending"), cell("pending")]), "", "nothing finished: no guess");
  assert.equal(
    etaLine([cell("done", 60), cell("done", 180), cell("running"), cell("pending")]),
    "; about 4 min left (2 runs)",
  );
  assert.equal(etaLine([cell("done", 61), cell("pending")]), "; about 2 min left (1 run)", "rounded up");
  assert.equal(etaLine([cell("done", 60)]), "", "none left");
});

Deno.test("compare: the verdict names the best recipe and weighs the gap against the seeds' spread", () => {
  const clear = verdict(
    [summary("base", [0.5, 0.52, 0.51]), summary("new", [0.6, 0.61, 0.62])],
    "base",
    "macroF1",
  );
  assert.equal(clear.best, "new");
  assert.equal(clear.beatsBaseline, true);
  assert.match(clear.line, /more than the seeds' spread/);
  const noisy = verdict(
    [summary("base", [0.5, 0.6, 0.4]), summary("new", [0.52, 0.62, 0.45])],
    "base",
    "macroF1",
  );
  assert.equal(noisy.best, "new");
  assert.equal(noisy.beatsBaseline, false);
  assert.match(noisy.line, /NOT more than the seeds' spread/);
  const baseWins = verdict([summary("base", [0.7]), summary("new", [0.6])], "base", "macroF1");
  assert.equal(baseWins.best, "base");
  assert.match(baseWins.line, /\(the baseline\)/);
});

Deno.test("compare: a real 2 recipes x 2 seeds comparison on synthetic data, then a rerun resumes (no new runs)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hn-compare-" });
  try {
    await Deno.writeTextFile(
      join(dir, "base.yaml"),
      syntheticYaml({ perClass: 24, valPerClass: 6, epochs: 1 }),
    );
    await Deno.writeTextFile(
      join(dir, "spec.yaml"),
      `name: tiny
config: base.yaml
seeds: [0, 1]
set: ["train.epochs=2", "train.maxStepsPerEpoch=2"]
recipes:
  shuffle-ce: []
  inverse-focal: ["sampler={name: inverse-frequency}", "loss={name: focal, gamma: 1}"]
`,
    );
    const spec = await loadCompareSpec(join(dir, "spec.yaml"));
    const lines: string[] = [];
    const r = await runCompare(spec, { out: dir, log: (l) => lines.push(l) });
    assert.equal(r.state.cells.length, 4);
    assert.ok(
      r.state.cells.every((c) => c.status === "done" && c.result!.epochs === 2),
      "every cell finished",
    );
    // each cell's figures are its run's final epoch in metrics.jsonl
    for (const c of r.state.cells) {
      const epochs = (await Deno.readTextFile(join(c.dir!, "metrics.jsonl"))).trim().split("\n").map((l) =>
        JSON.parse(l)
      );
      assert.deepEqual(epochs.map((e) => e.epoch), [0, 1], `${c.recipe} seed ${c.seed}: epochs`);
      const val = epochs[1].val.all;
      const res = c.result!;
      assert.equal(res.macroF1, val.macroF1, `${c.recipe} seed ${c.seed}: macro-F1 of the final epoch`);
      assert.equal(res.accuracy, val.accuracy);
      assert.equal(res.balancedAccuracy, val.balancedAccuracy);
      assert.deepEqual(res.perClassRecall, val.perClass.map((k: { recall: number }) => k.recall));
      // and the accuracy is the confusion matrix's diagonal share (6 val images per class)
      const conf = val.confusion as number[][];
      assert.equal(conf.flat().reduce((a, b) => a + b, 0), 24);
      assert.equal(res.accuracy, conf.reduce((a, row, k) => a + row[k], 0) / 24);
    }
    // compare.json on disk is the returned state
    assert.deepEqual(JSON.parse(await Deno.readTextFile(join(r.dir, "compare.json"))), r.state);
    // compare.md: mean ± sample std over the two seeds (in %), recomputed from the cells
    const stats = (xs: number[]): [number, number] => {
      const m = xs.reduce((a, b) => a + b, 0) / xs.length;
      return [m, Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1))];
    };
    const pctOf = (xs: number[]): string => stats(xs).map((v) => (100 * v).toFixed(2)).join(" ± ");
    const means: Record<string, number> = {};
    for (
      const [recipe, label] of [["shuffle-ce", "shuffle-ce (baseline)"], ["inverse-focal", "inverse-focal"]]
    ) {
      const res = r.state.cells.filter((c) => c.recipe === recipe).map((c) => c.result!);
      assert.equal(res.length, 2);
      const row = `| ${label} | 2/2 | ${pctOf(res.map((x) => x.accuracy))} | ${
        pctOf(res.map((x) => x.macroF1))
      } | ${pctOf(res.map((x) => x.balancedAccuracy))} |`;
      assert.ok(r.markdown.includes(row), `compare.md lacks the row ${row}:\n${r.markdown}`);
      // two epochs are too few to tell whether the curve flattened
      assert.ok(res.every((x) => x.lastMove === null), "lastMove is null after 2 epochs");
      assert.match(r.markdown, new RegExp(`\\| ${label.replace(/[()]/g, "\\$&")} \\|.* \\| n/a \\|\n`));
      const recalls = [0, 1, 2, 3].map((k) =>
        (100 * stats(res.map((x) => x.perClassRecall[k]))[0]).toFixed(1)
      );
      assert.ok(
        r.markdown.includes(`| ${recipe} | ${recalls.join(" | ")} |`),
        `per-class recall of ${recipe}`,
      );
      means[recipe] = stats(res.map((x) => x.macroF1))[0];
    }
    const best = means["inverse-focal"] > means["shuffle-ce"] ? "inverse-focal" : "shuffle-ce";
    assert.equal(r.best, best, `mean macro-F1 ${JSON.stringify(means)}`);
    assert.match(r.markdown, new RegExp(`Best recipe: \\*\\*${best}\\*\\*`));
    assert.equal(await Deno.readTextFile(join(r.dir, "compare.md")), r.markdown);
    // each run's report.html is linked from compare.md, relative to it
    const links = [...r.markdown.matchAll(/\[report\.html\]\(([^)]+)\)/g)].map((m) => m[1]);
    assert.equal(links.length, 4, "one report link per cell");
    for (const l of links) assert.ok((await Deno.stat(join(r.dir, l))).isFile, l);
    // ... and each run folder keeps its report.md, linked too, with the run's wall time
    const mdLinks = [...r.markdown.matchAll(/\[report\.md\]\(([^)]+)\), ([\d.]+) min wall/g)];
    assert.equal(mdLinks.length, 4, "one report.md link with its wall time per cell");
    for (const m of mdLinks) assert.match(await Deno.readTextFile(join(r.dir, m[1])), /^# /);
    assert.ok(r.state.cells.every((c) => (c.wallSeconds ?? 0) > 0), "every cell timed");
    // after the first run, each start and end line says how long the rest should take
    assert.doesNotMatch(lines[0], /min left/);
    assert.match(lines[2], /^\[2\/4\] .*; about \d+ min left \(3 runs\)$/);
    assert.doesNotMatch(lines.at(-1)!, /min left/, "nothing left after the last run");
    const files = [...Deno.readDirSync(r.dir)].map((e) => e.name).sort();
    assert.deepEqual(files, ["compare.json", "compare.md", "compare.svg", "runs", "spec.yaml"]);
    assert.match(await Deno.readTextFile(join(r.dir, "compare.svg")), /^<svg/);
    assert.equal(lines.filter((l) => /accuracy/.test(l)).length, 4, "four runs reported");

    // a rerun of the same spec skips finished cells
    const again: string[] = [];
    const r2 = await runCompare(spec, { out: dir, log: (l) => again.push(l) });
    assert.deepEqual(again, []);
    assert.deepEqual(r2.state.cells.map((c) => c.result), r.state.cells.map((c) => c.result));

    // an interrupted cell (status running, checkpoint present) resumes from its checkpoint
    const state = JSON.parse(await Deno.readTextFile(join(r.dir, "compare.json"))) as CompareState;
    state.cells[3].status = "running";
    state.cells[3].result = null;
    await Deno.writeTextFile(join(r.dir, "compare.json"), JSON.stringify(state));
    const resumed: string[] = [];
    const r3 = await runCompare(spec, { out: dir, log: (l) => resumed.push(l) });
    assert.match(resumed[0], /\[4\/4\] inverse-focal, seed 1 \(resuming\)/);
    assert.equal(r3.state.cells[3].status, "done");

    // a changed spec is not mixed with the old results
    spec.seeds = [0];
    await assert.rejects(() => runCompare(spec, { out: dir, log: () => {} }), /different spec/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("compare --parallel 2: two runs at once in child processes give the figures of one after another", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hn-compare-par-" });
  try {
    await Deno.writeTextFile(
      join(dir, "base.yaml"),
      syntheticYaml({ perClass: 24, valPerClass: 6, epochs: 1 }),
    );
    const specYaml = (name: string): string =>
      `name: ${name}
config: base.yaml
seeds: [0]
set: ["train.epochs=2", "train.maxStepsPerEpoch=2", "train.threads=1"]
recipes:
  shuffle-ce: ["sampler={name: shuffle}", "loss={name: cross-entropy}"]
  inverse-focal: ["sampler={name: inverse-frequency}", "loss={name: focal, gamma: 1}"]
`;
    await Deno.writeTextFile(join(dir, "seq.yaml"), specYaml("seq"));
    await Deno.writeTextFile(join(dir, "par.yaml"), specYaml("par"));
    const seq = await runCompare(await loadCompareSpec(join(dir, "seq.yaml")), { out: dir, log: () => {} });
    const lines: string[] = [];
    const par = await runCompare(await loadCompareSpec(join(dir, "par.yaml")), {
      out: dir,
      log: (l) => lines.push(l),
      parallel: 2,
    });
    // both started before either finished: they ran at once
    assert.match(lines[0], /^\[1\/2\] shuffle-ce/);
    assert.match(lines[1], /^\[2\/2\] inverse-focal/);
    const strip = (c: Cell): unknown => ({
      ...c.result,
      trainSeconds: 0,
      recipe: c.recipe,
      status: c.status,
    });
    assert.deepEqual(
      par.state.cells.map(strip),
      seq.state.cells.map(strip),
      "same figures as in-process runs",
    );
    assert.deepEqual(par.state.classNames, seq.state.classNames);
    for (const c of par.state.cells) {
      assert.ok((await Deno.stat(join(c.dir!, "report.md"))).isFile, "the child's run folder has its report");
    }
    assert.equal(par.best, seq.best);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("compare pool: at most N at once, and after a failure nothing new starts", async () => {
  let running = 0;
  let peak = 0;
  const started: number[] = [];
  await pool([1, 2, 3, 4, 5], 2, async (n) => {
    started.push(n);
    running++;
    peak = Math.max(peak, running);
    await new Promise((r) => setTimeout(r, 5));
    running--;
  });
  assert.equal(peak, 2);
  assert.deepEqual(started, [1, 2, 3, 4, 5]);
  const seen: number[] = [];
  await assert.rejects(
    () =>
      pool([1, 2, 3, 4], 1, async (n) => {
        seen.push(n);
        if (n === 2) throw new Error("cell 2 failed");
        await Promise.resolve();
      }),
    /cell 2 failed/,
  );
  assert.deepEqual(seen, [1, 2], "no cell starts after the failure");
});
