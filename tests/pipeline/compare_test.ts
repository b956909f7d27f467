import assert from "node:assert/strict";
import { join } from "node:path";
import {
  CompareSpecSchema,
  type CompareState,
  expandRecipes,
  loadCompareSpec,
  meanStd,
  type RecipeSummary,
  runCompare,
  verdict,
} from "../../ts/pipeline/compare.ts";
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
  };
}

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
    for (const c of r.state.cells) {
      assert.ok(c.result!.macroF1 >= 0 && c.result!.macroF1 <= 1);
      assert.equal(c.result!.perClassRecall.length, 4);
    }
    assert.match(r.markdown, /\| shuffle-ce \(baseline\) \| 2\/2 \|/);
    assert.match(r.markdown, /\| inverse-focal \| 2\/2 \|/);
    assert.match(r.markdown, /Best recipe: \*\*/);
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
