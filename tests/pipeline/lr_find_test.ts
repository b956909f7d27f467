import assert from "node:assert/strict";
import { join } from "node:path";
import {
  findLr,
  formatLrFind,
  lrFindChart,
  type LrFindPoint,
  steepestDescent,
  sweepLr,
} from "../../ts/pipeline/lr-find.ts";
import { configIn, ROOT } from "./helpers.ts";

Deno.test("lr-find: sweep LRs and the steepest descent (pure parts)", () => {
  assert.equal(sweepLr(0, 5, 1e-4, 1), 1e-4);
  assert.ok(Math.abs(sweepLr(2, 5, 1e-4, 1) - 1e-2) < 1e-15);
  assert.ok(Math.abs(sweepLr(4, 5, 1e-4, 1) - 1) < 1e-12);
  // central slopes: [-, -0.5, -1.5, -1, +1.5, -] → the steepest is at index 2
  assert.equal(steepestDescent([3, 2.9, 2, 0, 0, 3]), 2);
  assert.equal(steepestDescent([1, 1, 2, 3]), -1, "a loss that never falls has no descent");
  assert.equal(steepestDescent([1]), -1);
  const pts: LrFindPoint[] = [1, 2, 3].map((i) => ({ step: i - 1, lr: 10 ** -i, loss: i, smoothed: i }));
  const svg = lrFindChart(pts, 1e-2, 1e-3, 1e-1);
  assert.match(svg, /^<svg /);
  for (const tick of ["1e-3", "1e-2", "1e-1"]) assert.ok(svg.includes(`>${tick}<`), tick);
});

Deno.test("lr-find: a real synthetic sweep: the CSV is the points, smoothed is their EMA, the suggestion the steepest descent", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hn-lrfind-" });
  try {
    const config = await configIn(
      dir,
      `seed: 3
data:
  loader:
    name: synthetic
    numClasses: 4
    size: 16
    perClass: 16
    valPerClass: 0
  imageSize: 16
  channels: 3
  cacheDir: ${join(ROOT, ".cache", "test-images")}
augment:
  name: standard
  hflip: 0
train:
  batchSize: 16
  threads: 2
`,
    );
    const steps = 20, minLr = 1e-5, maxLr = 10;
    const out = join(dir, "lr");
    const r = await findLr(config, { minLr, maxLr, steps, out });

    // 64 images / 16 per batch = 4 steps per epoch: reaching step 5 means the sampler was drawn again
    assert.ok(r.points.length >= 5, `only ${r.points.length} steps`);
    assert.ok(r.points.length <= steps);
    if (r.stop === "done") assert.equal(r.points.length, steps);
    const ratio = (maxLr / minLr) ** (1 / (steps - 1));
    r.points.forEach((p, i) => {
      assert.equal(p.step, i);
      assert.ok(Math.abs(p.lr / (minLr * ratio ** i) - 1) < 1e-9, `lr of step ${i}: ${p.lr}`);
      assert.ok(Number.isFinite(p.loss) && Number.isFinite(p.smoothed), `step ${i}: ${p.loss}`);
    });
    assert.equal(
      r.points[0].smoothed,
      r.points[0].loss,
      "bias correction: the first smoothed value is the loss",
    );

    // the CSV holds the points at full precision
    const csv = (await Deno.readTextFile(join(out, "lr-find.csv"))).trim().split("\n");
    assert.equal(csv[0], "step,lr,loss,smoothed");
    const rows = csv.slice(1).map((l) => l.split(",").map(Number));
    assert.deepEqual(rows, r.points.map((p) => [p.step, p.lr, p.loss, p.smoothed]));
    assert.equal(rows[0][1], minLr);

    // smoothed = the bias-corrected EMA (default weight 0.98) of the loss column, recomputed
    const beta = 0.98;
    let avg = 0;
    rows.forEach(([i, , loss, smoothed]) => {
      avg = beta * avg + (1 - beta) * loss;
      const want = avg / (1 - beta ** (i + 1));
      assert.ok(
        Math.abs(smoothed - want) <= 1e-12 * Math.abs(want),
        `smoothed of step ${i}: ${smoothed} vs ${want}`,
      );
    });

    // the stop rule: "done" ran every step; "diverged" stopped at the first smoothed loss above
    // 4x the best before it, and no earlier step crossed that line
    const sm = rows.map((row) => row[3]);
    const crossed = sm.map((v, i) => i > 0 && v > 4 * Math.min(...sm.slice(0, i)));
    if (r.stop === "done") assert.equal(rows.length, steps);
    if (r.stop === "diverged") {
      assert.equal(crossed.indexOf(true), rows.length - 1, `stop at step ${rows.length - 1}`);
    } else {
      assert.equal(crossed.indexOf(true), -1, `step ${crossed.indexOf(true)} diverged but the sweep went on`);
    }

    // the suggestion: the LR of the most negative central difference of the smoothed column
    let k = -1, steepest = 0;
    sm.forEach((_, i) => {
      const a = Math.max(0, i - 1), b = Math.min(sm.length - 1, i + 1);
      const slope = (sm[b] - sm[a]) / (b - a);
      if (slope < steepest) [k, steepest] = [i, slope];
    });
    assert.ok(k >= 0, "a learnable set: the smoothed loss falls somewhere in the sweep");
    assert.equal(r.descended, true);
    assert.equal(r.suggestedLr, rows[k][1], `suggested ${r.suggestedLr}, steepest descent at step ${k}`);
    // on a learnable set the loss falls at moderate LRs and rises again at the largest ones; the
    // suggestion sits on the way down, not at (or past) the lowest loss
    const lowest = sm.indexOf(Math.min(...sm));
    assert.ok(sm[lowest] < 0.95 * sm[0], `lowest smoothed loss ${sm[lowest]} vs first ${sm[0]}`);
    assert.ok(sm.at(-1)! > 1.2 * sm[lowest], `last smoothed loss ${sm.at(-1)} vs lowest ${sm[lowest]}`);
    assert.ok(k <= lowest, `suggestion at step ${k}, lowest loss at step ${lowest}`);
    assert.ok(r.suggestedLr <= rows[lowest][1]);

    const svgText = await Deno.readTextFile(join(out, "lr-find.svg"));
    assert.match(svgText, /<polyline/);
    assert.ok(
      svgText.includes(`(suggested ${r.suggestedLr.toExponential(2)})`),
      "the chart names the suggestion",
    );
    const text = formatLrFind(r);
    assert.match(text, /^LR finder: \d+ steps from lr 1\.00e-5/);
    assert.ok(text.includes("lr-find.csv"));
    assert.ok(text.includes(`suggested lr ${r.suggestedLr.toExponential(2)}`), text);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lr-find: allClasses sweeps every class under a curriculum (the first loss is ln 4, not ln 2)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hn-lrfind-all-" });
  try {
    const config = await configIn(
      dir,
      `seed: 5
data:
  loader:
    name: synthetic
    numClasses: 4
    size: 16
    perClass: 16
    valPerClass: 0
  imageSize: 16
  channels: 3
  cacheDir: ${join(ROOT, ".cache", "test-images")}
augment:
  name: standard
  hflip: 0
loss:
  name: cross-entropy
stage:
  name: curriculum
  stages: [[0, 1], [0, 1, 2, 3]]
  epochs: [1]
  maskInactive: true
train:
  batchSize: 16
  threads: 2
`,
    );
    // at lr 1e-9 the model barely moves: the first steps' loss is that of a fresh model over the
    // classes in play, about ln 2 for stage 1 (two classes, the rest masked) and ln 4 for all four
    const opts = { minLr: 1e-9, maxLr: 1e-8, steps: 3 };
    const stage1 = await findLr(config, { ...opts, out: join(dir, "a") });
    const all = await findLr(config, { ...opts, out: join(dir, "b"), allClasses: true });
    const mean = (r: { points: LrFindPoint[] }): number =>
      r.points.reduce((s, p) => s + p.loss, 0) / r.points.length;
    assert.ok(Math.abs(mean(stage1) - Math.log(2)) < 0.25, `stage 1 loss ${mean(stage1)}`);
    assert.ok(Math.abs(mean(all) - Math.log(4)) < 0.35, `all-classes loss ${mean(all)}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
