import assert from "node:assert/strict";
import { join } from "node:path";
import { evaluateCheckpoint } from "../../ts/pipeline/commands.ts";
import { loadConfig } from "../../ts/pipeline/config.ts";
import { runPipeline } from "../../ts/pipeline/runner.ts";
import { configIn, readSafetensors, syntheticYaml } from "./helpers.ts";

/** The float32 tensors of a safetensors file by name. */
async function tensors(path: string): Promise<Map<string, Float32Array>> {
  return readSafetensors(await Deno.readFile(path));
}

Deno.test("train.ema: validation and best.safetensors use the EMA; last keeps the raw weights, its state the EMA", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hn-ema-" });
  try {
    // One epoch: its evaluation is the best so far, so best.safetensors is written after the
    // same step as last.safetensors.
    const extra = `  maxStepsPerEpoch: 4
  ema:
    decay: 0.5
`;
    const config = await configIn(dir, syntheticYaml({ perClass: 40, valPerClass: 5, epochs: 1, extra }));
    assert.deepEqual(config.train.ema, { decay: 0.5, warmupSteps: 0 });
    const result = await runPipeline(config, { out: dir, console: false });
    const ck = join(result.dir, "checkpoints");
    const best = await tensors(join(ck, "best.safetensors"));
    const last = await tensors(join(ck, "last.safetensors"));
    const state = await tensors(join(ck, "last.state.safetensors"));

    assert.deepEqual([...best.keys()], [...last.keys()]);
    let differ = 0;
    for (const [name, raw] of last) {
      // the trainer state holds the EMA of every trained parameter, and best is exactly it
      const ema = state.get(`ema.${name}`);
      assert.ok(ema, `the state has ema.${name}`);
      assert.deepEqual(best.get(name), ema, `best ${name} is the EMA`);
      if (raw.some((v, i) => v !== ema[i])) differ++;
    }
    assert.ok(differ > 0, "best (EMA) differs from last (raw weights)");

    // The epoch's validation ran on the EMA weights: best.safetensors scores what metrics.jsonl says.
    const logged = result.history.at(-1)!.val!.all;
    const evalOf = (file: string) =>
      evaluateCheckpoint({
        checkpoint: join(ck, file),
        config,
        runDir: result.dir,
        split: "val",
        log: () => {},
      });
    const onBest = (await evalOf("best.safetensors")).metrics;
    assert.ok(
      Math.abs(onBest.loss - logged.loss) <= 1e-6,
      `val loss ${logged.loss} vs best's ${onBest.loss}`,
    );
    assert.deepEqual(onBest.confusion, logged.confusion);
    const onLast = (await evalOf("last.safetensors")).metrics;
    assert.notEqual(onLast.loss, logged.loss, "the raw weights score differently");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train.ema: a run resumed from its epoch-1 checkpoint ends with the uninterrupted run's weights, EMA and best", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hn-ema-resume-" });
  try {
    const extra = `  maxStepsPerEpoch: 3
  ema:
    decay: 0.7
    warmupSteps: 4
`;
    const yaml = (epochs: number): string => syntheticYaml({ perClass: 40, valPerClass: 5, epochs, extra });
    const full = await runPipeline(await configIn(dir, yaml(2)), { out: join(dir, "full"), console: false });
    const first = await runPipeline(await configIn(dir, yaml(1)), { out: join(dir, "cut"), console: false });
    const set = ["train.epochs=2"];
    const longer = await loadConfig(join(first.dir, "config.yaml"), set);
    await runPipeline(longer, { resumeDir: first.dir, resumeOverrides: set, console: false });
    for (const file of ["last.safetensors", "last.state.safetensors", "best.safetensors"]) {
      const want = await tensors(join(full.dir, "checkpoints", file));
      const got = await tensors(join(first.dir, "checkpoints", file));
      assert.deepEqual([...got.keys()], [...want.keys()], file);
      for (const [name, t] of want) assert.deepEqual(got.get(name), t, `${file}: ${name}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
