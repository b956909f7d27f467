import assert from "node:assert/strict";
import { join } from "node:path";
import { formatCrt, retrainClassifier } from "../../ts/pipeline/crt.ts";
import { runPipeline } from "../../ts/pipeline/runner.ts";
import { configIn, readSafetensors, runCli, syntheticYaml } from "./helpers.ts";

Deno.test("crt: re-training the head leaves every backbone tensor bit-identical and changes the head", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hn-crt-" });
  try {
    const config = await configIn(
      dir,
      syntheticYaml({ perClass: 40, valPerClass: 8, epochs: 1, extra: "  maxStepsPerEpoch: 3\n" }),
    );
    const run = await runPipeline(config, { out: dir, console: false });
    const logs: string[] = [];
    const r = await retrainClassifier({
      runDir: run.dir,
      epochs: 2,
      maxStepsPerEpoch: 3,
      log: (l) => logs.push(l),
    });

    const before = readSafetensors(await Deno.readFile(join(run.dir, "checkpoints", "best.safetensors")));
    const after = readSafetensors(await Deno.readFile(r.checkpoint));
    assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort(), "the whole model is saved");
    let headChanged = 0;
    for (const [name, t] of before) {
      const same = t.every((v, i) => v === after.get(name)![i]);
      if (name.startsWith("classifier.")) headChanged += same ? 0 : 1;
      else assert.ok(same, `${name} changed during cRT`);
    }
    assert.ok(headChanged > 0, "the head trained");

    const json = JSON.parse(await Deno.readTextFile(join(run.dir, "crt.json")));
    assert.equal(json.epochs, 2);
    assert.equal(json.sampler.name, "inverse-frequency");
    assert.equal(json.before.perClass.length, 4);
    assert.equal(json.after.perClass.reduce((a: number, c: { support: number }) => a + c.support, 0), 32);
    assert.equal(logs.filter((l) => /^crt: epoch \d\/2: 3 steps/.test(l)).length, 2);
    assert.match(formatCrt(r), /per-class recall \(before -> after\)/);

    // the CLI: a missing checkpoint is a one-line error naming the file
    const bad = await runCli(["crt", "--run", dir, "--epochs", "1"]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /crt: .*best\.safetensors does not exist/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
