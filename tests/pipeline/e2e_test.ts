import assert from "node:assert/strict";
import { join } from "node:path";
import { loadConfig } from "../../ts/pipeline/config.ts";
import { runPipeline } from "../../ts/pipeline/runner.ts";
import { configIn, maxAbsDiff, ROOT, syntheticYaml } from "./helpers.ts";

const SEED_LINE = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - CurriculumTrainer - INFO - /;

Deno.test("e2e: synthetic 4 classes reaches >= 95% val accuracy; run folder contents", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hn-e2e-" });
  try {
    const config = await configIn(dir, syntheticYaml({ perClass: 200, valPerClass: 30, epochs: 3 }));
    const result = await runPipeline(config, { out: dir, console: false });
    const last = result.history.at(-1)!;
    assert.ok(last.val!.all.accuracy >= 0.95, `val accuracy ${last.val!.all.accuracy}`);

    const files = [...Deno.readDirSync(result.dir)].map((e) => e.name).sort();
    assert.deepEqual(files, [
      "checkpoints",
      "class-recall.svg",
      "config.yaml",
      "curves.svg",
      "inference.json",
      "metrics.jsonl",
      "report.html",
      "report.md",
      "tb",
      "train.log",
    ]);
    // the report: final figures, per-class rows, one row per epoch, charts with one line per class
    const report = await Deno.readTextFile(join(result.dir, "report.md"));
    // class 3 row: precision, recall, F1, support 30, drawn and expected in the last epoch (shuffle: 200)
    assert.match(report, /\| 3 [^|]*\| \d+\.\d\d% \| \d+\.\d\d% \| \d+\.\d\d% \| 30 \| 200 \| 200\.0 \|/);
    assert.match(report, /ordinal MAE \d\.\d{4}, quadratic kappa -?\d\.\d{4}, top2 \d+\.\d\d%/);
    assert.match(report, /\| 3 \| 1 \| \d/);
    const chart = await Deno.readTextFile(join(result.dir, "class-recall.svg"));
    assert.equal(chart.match(/<polyline/g)?.length, 4, "one recall line per class");
    const ck = [...Deno.readDirSync(join(result.dir, "checkpoints"))].map((e) => e.name).sort();
    assert.deepEqual(ck, ["best.safetensors", "last.json", "last.safetensors", "last.state.safetensors"]);

    // config.yaml is the resolved config and loads back to the same thing
    const again = await loadConfig(join(result.dir, "config.yaml"));
    assert.deepEqual(again, config);

    // train.log lines in the seed's format, with the seed's figures
    const log = (await Deno.readTextFile(join(result.dir, "train.log"))).trim().split("\n");
    assert.ok(log.every((l) => SEED_LINE.test(l)), "every line has the seed's format");
    for (const want of ["Average Loss: ", "Accuracy: ", "Recall: ", "F1 Score: ", "Precision: ", "Class 3"]) {
      assert.ok(log.some((l) => l.includes(want)), `train.log has "${want}"`);
    }

    // metrics.jsonl: one line per epoch with every figure
    const lines = (await Deno.readTextFile(join(result.dir, "metrics.jsonl"))).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assert.equal(lines.length, 3);
    for (const [i, m] of lines.entries()) {
      assert.equal(m.epoch, i);
      for (const k of ["loss", "accuracy", "imagesPerSecond", "seconds"]) {
        assert.equal(typeof m.train[k], "number", k);
      }
      for (const part of ["all", "active"]) {
        for (const k of ["loss", "accuracy", "macroRecall", "macroF1", "weightedF1", "balancedAccuracy"]) {
          assert.equal(typeof m.val[part][k], "number", `val.${part}.${k}`);
        }
        assert.equal(m.val[part].perClass.length, 4);
        assert.equal(m.val[part].confusion.length, 4);
      }
      assert.equal(m.sampledPerClass.reduce((a: number, b: number) => a + b, 0), 800);
      // shuffle expects each class's count share of the 800 draws (200 each here)
      assert.deepEqual(m.expectedPerClass, [200, 200, 200, 200]);
      assert.deepEqual(m.sampledPerClass, [200, 200, 200, 200]);
      assert.equal(typeof m.trainMetrics.macroF1, "number");
      assert.equal(typeof m.lr, "number");
    }
    const lastJson = JSON.parse(await Deno.readTextFile(join(result.dir, "checkpoints", "last.json")));
    assert.equal(lastJson.epoch, 2);
    assert.equal(lastJson.history.length, 3);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function waitForCheckpoint(runsDir: string, timeoutMs: number): Promise<string> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    for (
      const e of (() => {
        try {
          return [...Deno.readDirSync(runsDir)];
        } catch {
          return [];
        }
      })()
    ) {
      try {
        const j = JSON.parse(Deno.readTextFileSync(join(runsDir, e.name, "checkpoints", "last.json")));
        if (j.epoch >= 0) return join(runsDir, e.name);
      } catch { /* not yet */ }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error("no checkpoint appeared");
}

Deno.test("e2e: a run killed (SIGKILL) after its first checkpoint and resumed ends with the same weights", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hn-resume-" });
  try {
    const yaml = syntheticYaml({
      perClass: 64,
      valPerClass: 8,
      epochs: 3,
      hflip: 0.5,
      extra: "stage:\n  name: curriculum\n  stages: [[0, 1], [0, 1, 2, 3]]\n  epochs: [1]\n" +
        "sampler:\n  name: inverse-frequency\n" +
        "model:\n  dropoutRate: 0.3\n",
    });
    const config = await configIn(dir, yaml);
    const full = await runPipeline(config, { out: join(dir, "full"), console: false });

    const runs = join(dir, "killed");
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        join(ROOT, "ts/cli.ts"),
        "train",
        "--config",
        join(dir, "config.yaml"),
        "--out",
        runs,
        "--quiet",
      ],
      cwd: ROOT,
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const runDir = await waitForCheckpoint(runs, 120_000);
    child.kill("SIGKILL");
    const status = await child.status;
    assert.equal(status.success, false, "the child was killed before it finished");
    const killedAt = JSON.parse(await Deno.readTextFile(join(runDir, "checkpoints", "last.json"))).epoch;
    assert.ok(killedAt < 2, `killed after epoch ${killedAt}`);

    const resumed = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", join(ROOT, "ts/cli.ts"), "train", "--resume", runDir, "--quiet"],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    });
    const out = await resumed.output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const diff = await maxAbsDiff(
      join(full.dir, "checkpoints", "last.safetensors"),
      join(runDir, "checkpoints", "last.safetensors"),
    );
    assert.ok(diff < 1e-6, `max abs diff ${diff}`);
    const lines = (await Deno.readTextFile(join(runDir, "metrics.jsonl"))).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assert.deepEqual(lines.map((l) => l.epoch), [0, 1, 2], "metrics.jsonl has each epoch once");
    const log = await Deno.readTextFile(join(runDir, "train.log"));
    assert.match(log, /resuming at epoch/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

for (const example of ["custom-sampler", "custom-loss"]) {
  Deno.test(`e2e: examples/configs/${example}.yaml trains for 1 epoch`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "hn-example-" });
    try {
      const config = await loadConfig(join(ROOT, "examples/configs", `${example}.yaml`), [
        "train.epochs=1",
        "train.threads=2",
        `data.cacheDir=${dir}/cache`,
      ]);
      const r = await runPipeline(config, { out: dir, console: false });
      assert.equal(r.history.length, 1);
      assert.ok(Number.isFinite(r.history[0].train.loss));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
