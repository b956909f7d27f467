/**
 * Disk full during a checkpoint: the run folder lives on a tmpfs sized so that the first `last`
 * set fits but the second does not (its weights fit, its optimizer state runs out of space).
 * The run must stop with a clear error (exit 1, the file and "No space left on device", no native
 * crash), keep the last good checkpoint intact (it loads), and `--resume` after space is freed (the
 * tmpfs grown) must finish bit-identical to an uninterrupted run.
 *
 * Needs root for `mount -t tmpfs` (CI runs as root); otherwise the test is ignored, saying why.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { createModel, createTrainer } from "../../ts/mod.ts";
import {
  assertSameRun,
  faultYaml,
  finish,
  phaseOf,
  runDirIn,
  scratchDir,
  spawnTrain,
  TEMP_NAME,
} from "./helpers.ts";

const log = (line: string): void => console.log(`[faults] ${line}`);

async function sh(cmd: string, args: string[]): Promise<{ ok: boolean; text: string }> {
  try {
    const o = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
    const dec = new TextDecoder();
    return { ok: o.success, text: (dec.decode(o.stdout) + dec.decode(o.stderr)).trim() };
  } catch (err) {
    return { ok: false, text: (err as Error).message };
  }
}

/** Why a tmpfs cannot be mounted here (null: it can), found by mounting and unmounting a tiny one. */
async function mountProblem(): Promise<string | null> {
  if (Deno.uid() !== 0) return `not root (uid ${Deno.uid()}): mount -t tmpfs needs root`;
  const dir = await Deno.makeTempDir({ prefix: "hn-mount-probe-" });
  try {
    const m = await sh("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir]);
    if (!m.ok) return `mount -t tmpfs failed: ${m.text}`;
    await sh("umount", [dir]);
    return null;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

const problem = await mountProblem();
if (problem !== null) log(`disk-full test ignored: ${problem}`);

Deno.test({
  name:
    "faults: disk full during a checkpoint: exit 1 naming the file, the last good set intact, --resume finishes",
  ignore: problem !== null,
  fn: async () => {
    const scratch = await scratchDir("hn-faults-disk-");
    const small = join(scratch, "small");
    let mounted = false;
    try {
      const config = join(scratch, "config.yaml");
      await Deno.writeTextFile(config, faultYaml());
      const ref = await finish(spawnTrain(["--config", config, "--out", join(scratch, "reference")]));
      assert.equal(ref.code, 0, ref.stderr);
      const refRun = runDirIn(join(scratch, "reference"))!;
      const size = (f: string): number => Deno.statSync(join(refRun, "checkpoints", f)).size;
      const w = size("last.safetensors"), s = size("last.state.safetensors");
      // set 1 (w + s) and set 2's weights (w) fit, set 2's optimizer state (s) does not: 2 MiB for the rest
      const bytes = 2 * w + s + Math.floor(s / 2) + 2 * 2 ** 20;
      await Deno.mkdir(small);
      const m = await sh("mount", ["-t", "tmpfs", "-o", `size=${Math.ceil(bytes / 1024)}k`, "tmpfs", small]);
      assert.ok(m.ok, m.text);
      mounted = true;
      log(
        `checkpoint set: weights ${(w / 2 ** 20).toFixed(1)} MiB + optimizer ${
          (s / 2 ** 20).toFixed(1)
        } MiB; ` +
          `tmpfs ${(bytes / 2 ** 20).toFixed(1)} MiB`,
      );

      const out = join(small, "runs");
      const r = await finish(spawnTrain(["--config", config, "--out", out]));
      const run = runDirIn(out)!;
      log(`full disk: exit ${r.code}; stderr: ${r.stderr.trim()}`);
      assert.equal(r.signal, null, "no native crash (killed by a signal)");
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /last\.state\.safetensors\.pending: No space left on device/);
      assert.doesNotMatch(r.stderr, /panic|\n\s+at /, "a clear message, not a crash or a stack");
      assert.match(Deno.readTextFileSync(join(run, "train.log")), /No space left on device/);
      assert.ok(!(await exists(join(run, "FAILED"))), "a run with a checkpoint is not marked FAILED");

      // the last good set: committed, whole, loadable
      const last = JSON.parse(Deno.readTextFileSync(join(run, "checkpoints", "last.json")));
      assert.deepEqual([last.epoch, last.partial?.epoch, last.partial?.step], [-1, 0, 1], "the step-1 set");
      const leftovers = [...Deno.readDirSync(join(run, "checkpoints"))].map((e) => e.name).filter((n) =>
        TEMP_NAME.test(n)
      );
      log(`left in checkpoints/: ${leftovers.join(", ") || "nothing"} (--resume cleans these)`);
      {
        using model = createModel({ numClasses: 4 });
        await model.load(join(run, "checkpoints", "last.safetensors"));
        await createTrainer(model).loadState(join(run, "checkpoints", "last.state.safetensors"));
      }

      // free space, resume: the run ends as if nothing had happened
      const g = await sh("mount", ["-o", "remount,size=1g", small]);
      assert.ok(g.ok, g.text);
      const resumed = await finish(spawnTrain(["--resume", run]));
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.equal(phaseOf(run), "between saves");
      assertSameRun(run, refRun, "resumed after the disk was full");
    } finally {
      if (mounted) await sh("umount", [small]);
      await Deno.remove(scratch, { recursive: true });
    }
  },
});

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.stat(p);
    return true;
  } catch {
    return false;
  }
}
