/**
 * report.html and the comparison page, opened in headless Chromium: no console error, no
 * exception, nothing failed to load; and the page holds what the run recorded (bars per class,
 * confusion cells equal to the last evaluation's matrix, a band per curriculum stage, drawn
 * images per stage, one curve per run on the comparison page, the differing config keys).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { writeComparePage } from "../../ts/pipeline/report-compare.ts";
import type { ReportRecord } from "../../ts/pipeline/report-html.ts";
import { type Callback, runPipeline, type RunResult } from "../../ts/pipeline/runner.ts";
import { chromiumPath, openPage, pngSize } from "./chromium.ts";
import { configIn, syntheticYaml } from "./helpers.ts";

const TWO_STAGES = "stage:\n  name: curriculum\n  stages: [[0, 1], [0, 1, 2, 3]]\n  epochs: [1]\n";

/** A short real run: 4 classes, 3 epochs over 2 curriculum stages (1 + 2 epochs). */
async function shortRun(
  dir: string,
  sub: string,
  set: string[],
  callbacks: Callback[] = [],
): Promise<RunResult> {
  await Deno.mkdir(join(dir, sub));
  const config = await configIn(
    join(dir, sub),
    syntheticYaml({ perClass: 12, valPerClass: 5, epochs: 3, extra: TWO_STAGES }),
    ["train.maxStepsPerEpoch=3", "train.batchSize=8", ...set],
  );
  return await runPipeline(config, { out: dir, console: false, callbacks });
}

async function records(runDir: string): Promise<ReportRecord[]> {
  return (await Deno.readTextFile(join(runDir, "metrics.jsonl"))).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
}

/** What the run page's DOM holds, read in the browser. */
const RUN_PAGE_PROBE = `(() => {
  const q = (root, s) => [...root.querySelectorAll(s)];
  const attr = (e, a) => e.getAttribute(a);
  return {
    external: q(document, "script, link, img, iframe, [src], [href]").length,
    charts: q(document, "svg.curve-chart").map((s) => ({
      bands: q(s, ".stage-band").map((b) => b.querySelector("title").textContent),
      curves: q(s, ".curve").length,
    })),
    classBars: q(document, "svg.class-chart .class-bar").map((g) =>
      q(g, "rect.bar").map((r) => [attr(r, "data-series"), Number(attr(r, "data-value"))])
    ),
    cells: q(document, ".cm-cell").map((g) => ({
      row: Number(attr(g, "data-row")),
      col: Number(attr(g, "data-col")),
      count: Number(attr(g, "data-count")),
      text: g.querySelector("text").textContent,
    })),
    draws: q(document, "svg.stage-draws").map((s) => ({
      stage: Number(attr(s, "data-stage")),
      drawn: q(s, ".draw-group").map((g) => {
        const r = g.querySelector('rect[data-series="drawn"]');
        return r ? Number(attr(r, "data-value")) : null;
      }),
    })),
    config: document.querySelector("#config-yaml").textContent,
    state: document.querySelector("#run-state").textContent,
    timingRows: q(document, "table.timing tbody tr").length,
    svgWidths: q(document, "svg").map((s) => s.getBoundingClientRect().width),
  };
})()`;

/** What the comparison page's DOM holds. */
const COMPARE_PAGE_PROBE = `(() => {
  const q = (root, s) => [...root.querySelectorAll(s)];
  return {
    external: q(document, "script, link, img, iframe, [src]").length,
    links: q(document, "a[href]").map((a) => a.getAttribute("href")),
    charts: q(document, "svg.compare-chart").map((s) =>
      q(s, ".run-curve").map((c) => c.getAttribute("data-series"))
    ),
    classBars: q(document, "svg.class-chart .class-bar").map((g) => q(g, "rect.bar").length),
    finalF1: q(document, "table.figures tbody tr")
      .find((tr) => tr.cells[0].textContent === "macro-F1, final")
      ?.cells.length,
    finalF1Values: [...(q(document, "table.figures tbody tr")
      .find((tr) => tr.cells[0].textContent === "macro-F1, final")?.cells ?? [])].slice(1)
      .map((c) => c.textContent),
    diffKeys: q(document, "table.config-diffs tbody tr").map((tr) => tr.cells[0].textContent),
    diffCells: q(document, "table.config-diffs td.config-diff").length,
  };
})()`;

/** Asserts a PNG screenshot was written and is a real picture of the page (not a blank stub). */
async function assertScreenshot(path: string, png: Uint8Array): Promise<void> {
  await Deno.writeFile(path, png);
  const size = pngSize(await Deno.readFile(path));
  assert.ok(size.width >= 1000 && size.height >= 1000, `screenshot ${JSON.stringify(size)}`);
  assert.ok(png.length > 30_000, `screenshot of ${png.length} bytes: a page of charts compresses less`);
}

Deno.test("report.html in the detector: console errors, exceptions and failed loads are caught", {
  ignore: chromiumPath() === null,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "hn-report-neg-" });
  try {
    const bad = join(dir, "bad.html");
    await Deno.writeTextFile(
      bad,
      '<!DOCTYPE html><p id="x">x</p><img src="gone.png"><script>console.error("boom"); nope();</script>',
    );
    const r = await openPage(bad, "document.querySelector('#x').textContent");
    assert.equal(r.value, "x");
    assert.equal(r.errors.length, 3, r.errors.join("\n"));
    assert.ok(r.errors.some((e) => /console.error: boom/.test(e)));
    assert.ok(r.errors.some((e) => /nope is not defined/.test(e)));
    assert.ok(r.errors.some((e) => /gone\.png/.test(e)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("report.html of a 2-stage run and the comparison page of two runs, in headless Chromium", {
  ignore: chromiumPath() === null,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "hn-report-html-" });
  try {
    // report.html is current after every epoch: read back at each epoch's end (our callback runs
    // after the built-in ones), it counts the epochs recorded so far
    let runDir = "";
    const states: string[] = [];
    const watch: Callback = {
      onFitStart: (info): void => {
        runDir = info.paths.dir;
      },
      onEpochEnd: async (rec): Promise<void> => {
        const html = await Deno.readTextFile(join(runDir, "report.html"));
        states.push(`${rec.epoch}: ${html.match(/id="run-state">(\d+ of \d+) epochs/)?.[1]}`);
      },
    };
    const a = await shortRun(dir, "a", [], [watch]);
    assert.deepEqual(states, ["0: 1 of 3", "1: 2 of 3", "2: 3 of 3"], "report.html rewritten at each epoch");
    const b = await shortRun(dir, "b", ["seed=8", "sampler={name: inverse-frequency}"]);

    // ---- the run page
    const rows = await records(a.dir);
    const last = rows.at(-1)!;
    const page = await openPage(join(a.dir, "report.html"), RUN_PAGE_PROBE, { width: 1200, height: 1000 });
    assert.deepEqual(page.errors, [], "no console error, exception or failed load");
    const v = page.value as {
      external: number;
      charts: { bands: string[]; curves: number }[];
      classBars: [string, number][][];
      cells: { row: number; col: number; count: number; text: string }[];
      draws: { stage: number; drawn: (number | null)[] }[];
      config: string;
      state: string;
      timingRows: number;
      svgWidths: number[];
    };
    assert.equal(v.external, 0, "self-contained: no script, stylesheet, image or link");
    assert.ok(v.svgWidths.every((w) => w > 100), "every chart is laid out");
    // one band per curriculum stage in each curve chart, labelled with its classes
    assert.equal(v.charts.length, 4, "loss, accuracy, macro-F1, recall per class");
    for (const c of v.charts) {
      assert.deepEqual(c.bands, ["stage 1: classes 0-1", "stage 2: classes 0-3"]);
    }
    assert.equal(v.charts[3].curves, 4, "one recall curve per class");
    // one bar group per class, its bars the last evaluation's precision, recall and F1
    const pc = last.val!.all.perClass;
    assert.deepEqual(
      v.classBars,
      pc.map((c) => [["precision", c.precision], ["recall", c.recall], ["F1", c.f1]]),
    );
    // C×C confusion cells, each showing the count of the last evaluation's matrix
    const cm = last.val!.all.confusion;
    assert.equal(v.cells.length, 16);
    for (const cell of v.cells) {
      assert.equal(cell.count, cm[cell.row][cell.col], `cell ${cell.row},${cell.col}`);
      assert.equal(cell.text, String(cell.count));
    }
    assert.deepEqual(
      v.cells.map((c) => [c.row, c.col]),
      cm.flatMap((row, i) => row.map((_, j) => [i, j])),
      "every (row, col) once, in order",
    );
    // drawn per class and stage: sums of metrics.jsonl's sampledPerClass over the stage's epochs
    const drawn = (stage: number): number[] =>
      [0, 1, 2, 3].map((k) =>
        rows.filter((r) => r.stage === stage).reduce((s, r) => s + r.sampledPerClass![k], 0)
      );
    assert.deepEqual(v.draws, [{ stage: 0, drawn: drawn(0) }, { stage: 1, drawn: drawn(1) }]);
    assert.deepEqual(drawn(0).slice(2), [0, 0], "stage 1 draws nothing of classes 2 and 3");
    assert.equal(v.config, await Deno.readTextFile(join(a.dir, "config.yaml")));
    assert.match(v.state, /^3 of 3 epochs recorded, stage 2 of 2/);
    assert.equal(v.timingRows, 3);
    await assertScreenshot(join(dir, "report.png"), page.screenshot);

    // ---- the comparison page of the two runs
    const out = await writeComparePage([a.dir, b.dir], join(dir, "compare", "report-compare.html"));
    const cmp = await openPage(out, COMPARE_PAGE_PROBE, { width: 1200, height: 1000 });
    assert.deepEqual(cmp.errors, []);
    const c = cmp.value as {
      external: number;
      links: string[];
      charts: string[][];
      classBars: number[];
      finalF1Values: string[];
      diffKeys: string[];
      diffCells: number;
    };
    assert.equal(c.external, 0);
    const names = [a.dir, b.dir].map((d) => d.split("/").at(-1)!);
    assert.equal(c.charts.length, 4);
    for (const chart of c.charts) assert.deepEqual(chart, names, "one curve per run in each chart");
    assert.deepEqual(c.classBars, [2, 2, 2, 2], "per-class recall: one group per class, a bar per run");
    const finals = await Promise.all(
      [a.dir, b.dir].map(async (d) => (await records(d)).at(-1)!.val!.all.macroF1),
    );
    assert.deepEqual(c.finalF1Values, finals.map((f) => f.toFixed(4)));
    // each link is relative and reaches the run's report.html
    assert.equal(c.links.length, 2);
    for (const l of c.links) await Deno.stat(join(dir, "compare", l));
    // only the keys that differ, each value highlighted
    assert.ok(c.diffKeys.includes("seed") && c.diffKeys.includes("sampler.name"), c.diffKeys.join(", "));
    assert.ok(!c.diffKeys.includes("train.batchSize") && !c.diffKeys.includes("data.imageSize"));
    assert.equal(c.diffCells, 2 * c.diffKeys.length);
    await assertScreenshot(join(dir, "compare.png"), cmp.screenshot);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
