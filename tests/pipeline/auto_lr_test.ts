import assert from "node:assert/strict";
import { join } from "node:path";
import { loadConfig } from "../../ts/pipeline/config.ts";
import { runPipeline } from "../../ts/pipeline/runner.ts";
import { baseLr } from "../../ts/pipeline/session.ts";
import { configIn, syntheticYaml } from "./helpers.ts";

Deno.test("lr auto: a range test picks the LR before the run; the curve, the choice and config.yaml say which", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const yaml = syntheticYaml({ perClass: 40, valPerClass: 4, epochs: 1 }).replace(
      "    lr: 0.001",
      "    lr: auto",
    )
      .replace("  threads: 2\n", "  threads: 2\n  maxStepsPerEpoch: 2\n");
    const config = await configIn(dir, yaml);
    assert.equal(config.train.optimizer.lr, "auto");
    assert.throws(() => baseLr(config), /train\.optimizer\.lr — is "auto", which only `train` resolves/);
    const run = await runPipeline(config, { out: join(dir, "runs"), console: false });
    const choice = JSON.parse(Deno.readTextFileSync(join(run.dir, "lr-auto.json")));
    const csv = Deno.readTextFileSync(join(run.dir, "lr-find.csv")).trim().split("\n").slice(1)
      .map((l) => l.split(",").map(Number));
    assert.ok(csv.length >= 10, `the range test ran (${csv.length} steps)`);
    assert.ok(choice.picked > 0 && choice.picked < 1, `picked ${choice.picked}`);
    if (choice.descended) {
      assert.ok(csv.some(([, lr]) => lr === choice.picked), "the pick is one of the swept LRs");
    }
    const written = await loadConfig(join(run.dir, "config.yaml"));
    assert.equal(
      written.train.optimizer.lr,
      choice.picked,
      "config.yaml holds the number, so resume and crt use it",
    );
    assert.equal(run.history[0].lr, choice.picked, "the run trained at it (constant schedule)");
    assert.match(Deno.readTextFileSync(join(run.dir, "train.log")), /lr auto: training at lr /);
    assert.ok(Deno.statSync(join(run.dir, "lr-find.svg")).size > 500);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
