/**
 * Helpers of the fault tests (`deno task test:faults`): the tiny synthetic run they all train, the
 * CLI as a subprocess, a fast watcher of the run's checkpoints/ folder (to kill the moment a temp
 * file appears), the phase a kill landed in, and bit-exact comparison of finished runs.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT, syntheticYaml } from "../pipeline/helpers.ts";

export { prng } from "../native/helpers.ts";

/**
 * 4 classes at 32 px, 96 train images in batches of 32 (3 steps an epoch), `epochs` epochs, a
 * checkpoint after every step (so kills land mid-epoch and mid-save often), dropout, a sampler
 * and augmentation that draw random numbers.
 */
export function faultYaml(epochs = 2): string {
  return syntheticYaml({
    perClass: 24,
    valPerClass: 2,
    epochs,
    hflip: 0.5,
    extra: "sampler:\n  name: inverse-frequency\nmodel:\n  dropoutRate: 0.3\n",
  }).replace("  threads: 2\n", "  threads: 2\n  checkpointEverySteps: 1\n");
}

/**
 * A folder for run folders: under /dev/shm when it is a writable tmpfs (checkpoints are ~75 MB a
 * set; a SIGKILL does not lose page-cache writes, so a RAM disk tests the same thing, faster),
 * else the system temp folder.
 */
export async function scratchDir(prefix: string): Promise<string> {
  try {
    return await Deno.makeTempDir({ dir: "/dev/shm", prefix });
  } catch {
    return await Deno.makeTempDir({ prefix });
  }
}

/**
 * `deno run -A ts/cli.ts train ...args --quiet`, with stdout and stderr piped. OpenMP waits
 * passively (unless the environment says otherwise): on a 2-core machine shared with other jobs,
 * libgomp's spinning barriers made steps about 10x slower; how threads wait changes no result.
 */
export function spawnTrain(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "ts/cli.ts"), "train", ...args, "--quiet"],
    env: { OMP_WAIT_POLICY: Deno.env.get("OMP_WAIT_POLICY") ?? "PASSIVE" },
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Exit code and stderr of a child. */
export async function finish(
  child: Deno.ChildProcess,
): Promise<{ code: number; signal: string | null; stderr: string }> {
  const o = await child.output();
  return { code: o.code, signal: o.signal, stderr: new TextDecoder().decode(o.stderr) };
}

/** The one run folder under `out`, or null while it does not exist yet. */
export function runDirIn(out: string): string | null {
  try {
    for (const e of Deno.readDirSync(out)) if (e.isDirectory) return join(out, e.name);
  } catch { /* `out` not made yet */ }
  return null;
}

/** Names of interrupted or in-progress writes: the native `.<name>.<pid>.<n>.tmp`, writeAtomic's `<name>.tmp-<pid>-<n>`, the journal's `.pending`. */
export const TEMP_NAME = /\.tmp$|\.tmp-\d+(-\d+)?$|\.pending$/;

/** What a watcher saw of one run. */
export interface Observation {
  /** temp-file sightings: a temp name present that was not there at the previous poll */
  tempEvents: number;
  /** checkpoint commits: last.json replaced (a new inode) */
  commits: number;
  /** ms from spawn to the first commit (null: none) */
  firstCommitMs: number | null;
  /** ms from spawn to each commit seen */
  commitMs: number[];
  /** ms from spawn to exit, or to the kill */
  ms: number;
  /** the temp names seen at the poll that triggered the kill */
  caught: string[];
  /** the trigger fired by its fallback (`latest`, or a step trigger's next commit) */
  early: boolean;
}

/**
 * When to kill: at the `tempEvents`-th temp-file sighting, `afterMs` after the `commits`-th commit,
 * or `afterMs` after spawn. `latest` (a commit count) keeps a trigger from missing the run when
 * the machine runs faster than when the plan was drawn: once that many commits are seen, a temp
 * trigger fires at the next sighting and the others at once. A step trigger also fires at the
 * next commit when its delay has not run out by then.
 */
export type Trigger =
  | { kind: "temp"; tempEvents: number; latest?: number }
  | { kind: "step"; commits: number; afterMs: number }
  | { kind: "delay"; afterMs: number; latest?: number };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `<out>/<run>/checkpoints/` every ~1 ms while `child` runs: counts temp-file sightings and
 * commits, and sends `signal` when `trigger` fires (once). Returns what it saw, when the child
 * exited or was signalled (`killed` false: the child finished first).
 */
export async function watch(
  child: Deno.ChildProcess,
  out: string,
  t0: number,
  trigger: Trigger | null,
  signal: Deno.Signal = "SIGKILL",
): Promise<Observation & { killed: boolean }> {
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const obs: Observation = {
    tempEvents: 0,
    commits: 0,
    firstCommitMs: null,
    commitMs: [],
    ms: 0,
    caught: [],
    early: false,
  };
  let seen = new Set<string>();
  let ino: number | null = null;
  let stepDeadline: number | null = null;
  let killed = false;
  while (!exited && !killed) {
    const run = runDirIn(out);
    const now = new Set<string>();
    if (run !== null) {
      const ck = join(run, "checkpoints");
      try {
        for (const e of Deno.readDirSync(ck)) if (TEMP_NAME.test(e.name)) now.add(e.name);
      } catch { /* not made yet */ }
      try {
        const i = Deno.statSync(join(ck, "last.json")).ino;
        if (i !== null && i !== ino) {
          ino = i;
          obs.commits++;
          obs.commitMs.push(performance.now() - t0);
          obs.firstCommitMs ??= obs.commitMs[0];
        }
      } catch { /* no checkpoint yet */ }
    }
    for (const n of now) if (!seen.has(n)) obs.tempEvents++;
    seen = now;
    const ms = performance.now() - t0;
    let fire = false, early = false;
    if (trigger?.kind === "temp") {
      fire = obs.tempEvents >= trigger.tempEvents && now.size > 0;
      early = !fire && now.size > 0 && obs.commits >= (trigger.latest ?? Infinity);
    } else if (trigger?.kind === "delay") {
      fire = ms >= trigger.afterMs;
      early = !fire && obs.commits >= (trigger.latest ?? Infinity);
    } else if (trigger?.kind === "step") {
      if (stepDeadline === null && obs.commits >= trigger.commits) stepDeadline = ms + trigger.afterMs;
      fire = stepDeadline !== null && ms >= stepDeadline;
      early = !fire && obs.commits > trigger.commits;
    }
    obs.early = early;
    fire ||= early;
    if (fire && !exited) {
      try {
        child.kill(signal);
        killed = true;
        obs.caught = [...now];
      } catch { /* exited meanwhile */ }
    }
    obs.ms = ms;
    if (!killed) await sleep(1);
  }
  await status;
  return { ...obs, killed };
}

/** Where in a run a kill landed, read from its folder afterwards. */
export type Phase =
  | "before the run folder"
  | "before the first checkpoint"
  | "first save, before its commit"
  | "mid-save, before the commit"
  | "mid-save, after the commit"
  | "between saves";

/** The phase of a killed run from what its folder holds. */
export function phaseOf(run: string | null): Phase {
  if (run === null) return "before the run folder";
  const names = new Set<string>();
  try {
    for (const e of Deno.readDirSync(join(run, "checkpoints"))) names.add(e.name);
  } catch { /* none */ }
  if (names.has("last.json.pending")) return "mid-save, after the commit";
  const temp = [...names].some((n) => TEMP_NAME.test(n));
  if (!names.has("last.json")) return temp ? "first save, before its commit" : "before the first checkpoint";
  return temp ? "mid-save, before the commit" : "between saves";
}

/** Asserts two files are byte for byte the same. */
export function sameBytes(a: string, b: string, msg: string): void {
  const x = Deno.readFileSync(a), y = Deno.readFileSync(b);
  assert.ok(x.length === y.length && x.every((v, i) => v === y[i]), `${msg}: ${a} and ${b} differ`);
}

/** [epoch, train loss, val accuracy] per metrics.jsonl line. */
export function metricsOf(run: string): unknown[][] {
  return Deno.readTextFileSync(join(run, "metrics.jsonl")).trim().split("\n").map((l) => JSON.parse(l))
    .map((l) => [l.epoch, l.train.loss, l.val?.all?.accuracy]);
}

/** The header (tensor entries and `__metadata__`) and data bytes of a safetensors file. */
function parseSafetensors(path: string): { header: Record<string, unknown>; data: Uint8Array } {
  const bytes = Deno.readFileSync(path);
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return {
    header: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))),
    data: bytes.subarray(8 + n),
  };
}

/**
 * Asserts two safetensors files hold the same tensors (names, dtypes, shapes, bytes) and metadata.
 * Not their bytes: the optimizer state's metadata keys come out in hash-map order, which differs
 * between processes.
 */
export function sameSafetensors(a: string, b: string, msg: string): void {
  const x = parseSafetensors(a), y = parseSafetensors(b);
  assert.deepEqual(y.header, x.header, `${msg}: headers of ${a} and ${b}`);
  assert.ok(
    x.data.length === y.data.length && x.data.every((v, i) => v === y.data[i]),
    `${msg}: tensor bytes differ`,
  );
}

/**
 * Asserts that `run` finished as `ref` did: the same final weights (bytes) and optimizer state
 * (tensors and metadata), the same per-epoch figures, and no temp or pending file left in
 * checkpoints/.
 */
export function assertSameRun(run: string, ref: string, what: string): void {
  const ck = (dir: string, f: string): string => join(dir, "checkpoints", f);
  sameBytes(ck(ref, "last.safetensors"), ck(run, "last.safetensors"), `${what}: final weights`);
  sameSafetensors(
    ck(ref, "last.state.safetensors"),
    ck(run, "last.state.safetensors"),
    `${what}: optimizer state`,
  );
  assert.deepEqual(metricsOf(run), metricsOf(ref), `${what}: metrics.jsonl`);
  const left = [...Deno.readDirSync(join(run, "checkpoints"))].map((e) => e.name).filter((n) =>
    TEMP_NAME.test(n)
  );
  assert.deepEqual(left, [], `${what}: temp files left in checkpoints/`);
}
