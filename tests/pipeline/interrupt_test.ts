import assert from "node:assert/strict";
import { join } from "node:path";
import { runPipeline } from "../../ts/pipeline/runner.ts";
import { configIn, ROOT, syntheticYaml } from "./helpers.ts";

/** A synthetic run of 2 epochs × 6 steps with dropout, a sampler and augmentation that use randomness. */
function yaml(extra = ""): string {
  return syntheticYaml({
    perClass: 64,
    valPerClass: 4,
    epochs: 2,
    hflip: 0.5,
    extra: "sampler:\n  name: inverse-frequency\nmodel:\n  dropoutRate: 0.3\n" + extra,
  }).replace("  threads: 2\n", "  threads: 2\n  maxStepsPerEpoch: 6\n");
}

function spawnTrain(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "ts/cli.ts"), "train", ...args, "--quiet"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

async function waitFor<T>(what: string, probe: () => T | null, ms = 120_000): Promise<T> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    try {
      const v = probe();
      if (v !== null) return v;
    } catch { /* not there yet */ }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const runDirIn = (out: string): string => join(out, [...Deno.readDirSync(out)][0].name);
const lastJson = (dir: string): { epoch: number; partial?: { epoch: number; step: number } | null } =>
  JSON.parse(Deno.readTextFileSync(join(dir, "checkpoints", "last.json")));

async function finish(child: Deno.ChildProcess): Promise<{ code: number; stderr: string }> {
  const o = await child.output();
  return { code: o.code, stderr: new TextDecoder().decode(o.stderr) };
}

function sameBytes(a: string, b: string, msg: string): void {
  const x = Deno.readFileSync(a), y = Deno.readFileSync(b);
  assert.ok(x.length === y.length && x.every((v, i) => v === y[i]), `${msg}: ${a} and ${b} differ`);
}

Deno.test("interrupt: SIGINT mid-epoch saves a resumable checkpoint, exits 130, and the resumed run ends bit-identical", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hn-sigint-" });
  try {
    const config = await configIn(dir, yaml());
    const full = await runPipeline(config, { out: join(dir, "full"), console: false });
    const out = join(dir, "stopped");
    const child = spawnTrain(["--config", join(dir, "config.yaml"), "--out", out]);
    // the first step's progress is in train.log only at the epoch's end; wait for the epoch's start line
    await waitFor(
      "epoch 1 to start",
      () => /Epoch 1\/2/.test(Deno.readTextFileSync(join(runDirIn(out), "train.log"))) || null,
    );
    child.kill("SIGINT");
    const r = await finish(child);
    assert.equal(r.code, 130, r.stderr);
    assert.match(
      r.stderr,
      /SIGINT: interrupted at epoch 1, step \d+; a resumable checkpoint is saved\. Resume with: deno task train --resume /,
    );
    const run = runDirIn(out);
    const at = lastJson(run);
    assert.ok(
      at.partial && at.partial.epoch === 0 && at.partial.step >= 1,
      `a mid-epoch checkpoint: ${JSON.stringify(at.partial)}`,
    );
    assert.match(
      Deno.readTextFileSync(join(run, "train.log")),
      /WARNING - SIGINT: finishing the current step/,
    );
    const resumed = await finish(spawnTrain(["--resume", run]));
    assert.equal(resumed.code, 0, resumed.stderr);
    sameBytes(
      join(full.dir, "checkpoints", "last.safetensors"),
      join(run, "checkpoints", "last.safetensors"),
      "final weights",
    );
    const epochs = Deno.readTextFileSync(join(run, "metrics.jsonl")).trim().split("\n").map((l) =>
      JSON.parse(l).epoch
    );
    assert.deepEqual(epochs, [0, 1]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("interrupt: with checkpointEverySteps a run killed (SIGKILL) inside its first epoch resumes at the same batch", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hn-midepoch-" });
  try {
    const config = await configIn(
      dir,
      yaml().replace("  maxStepsPerEpoch: 6\n", "  maxStepsPerEpoch: 6\n  checkpointEverySteps: 2\n"),
    );
    assert.equal(config.train.checkpointEverySteps, 2);
    const full = await runPipeline(config, { out: join(dir, "full"), console: false });
    const out = join(dir, "killed");
    const child = spawnTrain(["--config", join(dir, "config.yaml"), "--out", out]);
    const run = await waitFor("a mid-epoch checkpoint", () => {
      const d = runDirIn(out);
      return lastJson(d).partial?.epoch === 0 ? d : null;
    });
    child.kill("SIGKILL");
    await finish(child);
    const at = lastJson(run);
    assert.equal(at.epoch, -1, "killed inside the first epoch: no epoch finished");
    const resumed = await finish(spawnTrain(["--resume", run]));
    assert.equal(resumed.code, 0, resumed.stderr);
    sameBytes(
      join(full.dir, "checkpoints", "last.safetensors"),
      join(run, "checkpoints", "last.safetensors"),
      "final weights",
    );
    const fullLines = Deno.readTextFileSync(join(full.dir, "metrics.jsonl")).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    const lines = Deno.readTextFileSync(join(run, "metrics.jsonl")).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assert.deepEqual(
      lines.map((l) => [l.epoch, l.train.loss, l.val.all.accuracy]),
      fullLines.map((l) => [l.epoch, l.train.loss, l.val.all.accuracy]),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
