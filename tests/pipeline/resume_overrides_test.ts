import assert from "node:assert/strict";
import { join } from "node:path";
import { loadConfig } from "../../ts/pipeline/config.ts";
import { UsageError } from "../../ts/pipeline/errors.ts";
import { checkResumeOverrides } from "../../ts/pipeline/resume.ts";
import { runPipeline } from "../../ts/pipeline/runner.ts";
import { configIn, syntheticYaml } from "./helpers.ts";

Deno.test("resume overrides: what was trained is refused, cadence and length are allowed (table)", () => {
  const rows: [string[], boolean, string][] = [
    [["train.epochs=20", "train.evalEvery=2", "train.threads=1"], true, "length, cadence, threads"],
    [
      ["train.earlyStopping.patience=3", "device=cpu", "train.maxStepsPerEpoch=5"],
      true,
      "early stopping, device",
    ],
    [["data.imageSize=48"], false, "the input size changes what was trained"],
    [["model.dropoutRate=0.1"], false, "the model"],
    [["augment.hflip=0.5"], false, "the augmentation"],
    [["train.optimizer.lr=1"], false, "the optimizer"],
    [["train.epochsX=3"], false, "a key that only starts like a safe one"],
  ];
  for (const [set, ok, msg] of rows) {
    if (ok) checkResumeOverrides(set);
    else {
      assert.throws(
        () => checkResumeOverrides(set),
        (e) => e instanceof UsageError && e.message.includes(set[0].split("=")[0]),
        msg,
      );
    }
  }
});

Deno.test("resume overrides: a longer run is recorded in config.yaml and overrides.jsonl and logged", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const yaml = syntheticYaml({ perClass: 20, valPerClass: 2, epochs: 1 }) +
      "  schedule:\n    name: cosine\n";
    const config = await configIn(
      dir,
      yaml.replace("  threads: 2\n", "  threads: 2\n  maxStepsPerEpoch: 2\n"),
    );
    const first = await runPipeline(config, { out: join(dir, "runs"), console: false });
    const set = ["train.epochs=2"];
    const longer = await loadConfig(join(first.dir, "config.yaml"), set);
    const r = await runPipeline(longer, { resumeDir: first.dir, resumeOverrides: set, console: false });
    assert.equal(r.lastEpoch, 1, "the resumed run trained its second epoch");
    assert.equal(
      (await loadConfig(join(first.dir, "config.yaml"))).train.epochs,
      2,
      "config.yaml says what runs",
    );
    const rec = JSON.parse(Deno.readTextFileSync(join(first.dir, "overrides.jsonl")).trim());
    assert.deepEqual([rec.fromEpoch, rec.set], [1, set]);
    const log = Deno.readTextFileSync(join(first.dir, "train.log"));
    assert.match(log, /Resumed with --set train\.epochs=2 \(recorded in overrides\.jsonl\)/);
    assert.match(log, /train\.epochs 1 → 2: the run continues at epoch 2; .* the LR schedule \(cosine\)/);
    await assert.rejects(
      () =>
        runPipeline(longer, { resumeDir: first.dir, resumeOverrides: ["data.imageSize=48"], console: false }),
      UsageError,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
