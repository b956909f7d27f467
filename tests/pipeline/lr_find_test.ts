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

Deno.test("lr-find: a real sweep on the synthetic loader writes the CSV and SVG", async () => {
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
    assert.ok(r.suggestedLr >= minLr && r.suggestedLr <= maxLr, `suggested ${r.suggestedLr}`);

    const csv = (await Deno.readTextFile(join(out, "lr-find.csv"))).trim().split("\n");
    assert.equal(csv[0], "step,lr,loss,smoothed");
    assert.equal(csv.length, r.points.length + 1);
    assert.equal(Number(csv[1].split(",")[1]), minLr);
    assert.match(await Deno.readTextFile(join(out, "lr-find.svg")), /<polyline/);
    const text = formatLrFind(r);
    assert.match(text, /^LR finder: \d+ steps from lr 1\.00e-5/);
    assert.ok(text.includes("lr-find.csv"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
