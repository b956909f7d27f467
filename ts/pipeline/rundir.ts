/**
 * The run directory: `runs/<YYYY-MM-DD>-<name>[-N]/` with `config.yaml` (resolved),
 * `train.log`, `metrics.jsonl` and `checkpoints/`.
 *
 * Checkpoint sets and crash safety. `last` is a set of three files that must agree:
 * `last.safetensors` (weights), `last.state.safetensors` (optimizer) and `last.json` (epoch,
 * step, RNG and plugin state, history). A set is saved as a tiny journal:
 *
 * 1. weights → `last.safetensors.pending`, optimizer → `last.state.safetensors.pending`
 *    (each written to a temp file and renamed by the native side, so each is whole);
 * 2. `last.json.pending` written (temp + rename): **the commit point** — once it exists, the
 *    new set is complete;
 * 3. the three `.pending` files renamed over the live ones, `last.json` last.
 *
 * `recoverCheckpoints()` (run on --resume) rolls forward when `last.json.pending` exists (the
 * set was committed; finish step 3) and otherwise deletes stray `.pending` files (the crash
 * came before the commit; the previous set is untouched). A kill at any instant thus leaves
 * one consistent set. `best.safetensors` is written (temp + rename) before the `last` set, so a
 * crash between the two is repaired by the resumed epoch writing best again.
 */
import { join, resolve } from "node:path";

/** `YYYY-MM-DD` in local time. */
export function dateStamp(d: Date = new Date()): string {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${
    String(d.getDate()).padStart(2, "0")
  }`;
}

/** The paths of a run directory. */
export interface RunPaths {
  dir: string;
  config: string;
  log: string;
  metrics: string;
  checkpoints: string;
  lastWeights: string;
  lastState: string;
  lastJson: string;
  bestWeights: string;
}

/** Paths inside the run directory `dir`. */
export function runPaths(dir: string): RunPaths {
  const ck = join(dir, "checkpoints");
  return {
    dir,
    config: join(dir, "config.yaml"),
    log: join(dir, "train.log"),
    metrics: join(dir, "metrics.jsonl"),
    checkpoints: ck,
    lastWeights: join(ck, "last.safetensors"),
    lastState: join(ck, "last.state.safetensors"),
    lastJson: join(ck, "last.json"),
    bestWeights: join(ck, "best.safetensors"),
  };
}

/**
 * Creates `<root>/<date>-<name>/`, or `-2`, `-3`… when taken: an existing directory is never
 * reused (the final mkdir is not recursive, so a race with another run cannot share one).
 */
export async function createRunDir(root: string, name: string, date: Date = new Date()): Promise<RunPaths> {
  const absRoot = resolve(root);
  await Deno.mkdir(absRoot, { recursive: true });
  const base = `${dateStamp(date)}-${name}`;
  for (let k = 1;; k++) {
    const dir = join(absRoot, k === 1 ? base : `${base}-${k}`);
    try {
      await Deno.mkdir(dir);
    } catch (err) {
      if (err instanceof Deno.errors.AlreadyExists) continue;
      throw err;
    }
    const paths = runPaths(dir);
    await Deno.mkdir(paths.checkpoints);
    return paths;
  }
}

/** Numbers each writeAtomic call of this process, so concurrent writes of one path never share a temp file. */
let atomicWrites = 0;

/** Writes a file atomically: a temp file of its own in the same folder, fsync, then rename. */
export async function writeAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}-${atomicWrites++}`;
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const f = await Deno.open(tmp, { write: true, create: true, truncate: true });
  try {
    let off = 0;
    while (off < bytes.length) off += await f.write(bytes.subarray(off));
    await f.sync();
  } finally {
    f.close();
  }
  await Deno.rename(tmp, path);
}

/** Whether a path exists (a file or a folder). */
export async function exists(p: string): Promise<boolean> {
  try {
    await Deno.stat(p);
    return true;
  } catch {
    return false;
  }
}

const PENDING = ".pending";

/** What saves the weights and optimizer state of a `last` set. */
export interface CheckpointWriters {
  saveWeights(path: string): Promise<void>;
  saveState(path: string): Promise<void>;
}

/** Saves the `last` set with the journal described in the module doc. */
export async function saveLastCheckpoint(
  paths: RunPaths,
  w: CheckpointWriters,
  json: unknown,
): Promise<void> {
  await w.saveWeights(paths.lastWeights + PENDING);
  await w.saveState(paths.lastState + PENDING);
  await writeAtomic(paths.lastJson + PENDING, JSON.stringify(json));
  await commitPending(paths);
}

async function commitPending(paths: RunPaths): Promise<void> {
  for (const p of [paths.lastWeights, paths.lastState, paths.lastJson]) {
    if (await exists(p + PENDING)) await Deno.rename(p + PENDING, p);
  }
}

/** Finishes or discards a `last` set interrupted mid-save (see the module doc). */
export async function recoverCheckpoints(paths: RunPaths): Promise<"clean" | "rolled-forward" | "discarded"> {
  if (await exists(paths.lastJson + PENDING)) {
    await commitPending(paths);
    return "rolled-forward";
  }
  let found = false;
  for (const p of [paths.lastWeights, paths.lastState]) {
    if (await exists(p + PENDING)) {
      await Deno.remove(p + PENDING);
      found = true;
    }
  }
  return found ? "discarded" : "clean";
}

/** Saves best weights atomically (the native save already writes temp + rename). */
export async function saveBestWeights(
  paths: RunPaths,
  w: Pick<CheckpointWriters, "saveWeights">,
): Promise<void> {
  await w.saveWeights(paths.bestWeights);
}

/** Appends one JSON line to metrics.jsonl. */
export async function appendJsonLine(path: string, value: unknown): Promise<void> {
  await Deno.writeTextFile(path, JSON.stringify(value) + "\n", { append: true, create: true });
}

/**
 * Truncates metrics.jsonl to the epochs a resumed run keeps (lines of later epochs were written
 * after the checkpoint it resumes from).
 */
export async function truncateMetrics(path: string, lastEpoch: number): Promise<void> {
  if (!(await exists(path))) return;
  const lines = (await Deno.readTextFile(path)).split("\n").filter((l) => l.trim() !== "");
  const keep = lines.filter((l) => {
    try {
      return (JSON.parse(l) as { epoch: number }).epoch <= lastEpoch;
    } catch {
      return false;
    }
  });
  await writeAtomic(path, keep.map((l) => l + "\n").join(""));
}

/** The marker of a run that failed before its first checkpoint (its log and config stay for diagnosis). */
export function failedMarker(dir: string): string {
  return join(dir, "FAILED");
}

/** Marks a run folder as failed: `FAILED` holds the error; such a folder is never resumed. */
export async function markFailed(paths: RunPaths, err: unknown): Promise<void> {
  const e = err as Error;
  const text =
    `${e?.name ?? "Error"}: ${e?.message ?? String(err)}\nThis run failed before its first checkpoint; ` +
    `its train.log and config.yaml are kept for diagnosis. Start a new run (it cannot be resumed).\n`;
  await Deno.writeTextFile(failedMarker(paths.dir), text);
}

/** Whether a run folder is marked failed. */
export async function isFailedRun(dir: string): Promise<boolean> {
  return await exists(failedMarker(dir));
}

/**
 * Temp files an interrupted write leaves: the native `.<name>.<pid>.<n>.tmp` and writeAtomic's
 * `<name>.tmp-<pid>-<n>` (`<name>.tmp-<pid>` before it numbered its writes).
 */
const TEMP_FILE = /^\..+\.\d+\.\d+\.tmp$|\.tmp-\d+(-\d+)?$/;

/** Removes the temp files of interrupted checkpoint writes in the run folder; returns their names and bytes. */
export async function removeTempFiles(paths: RunPaths): Promise<{ files: string[]; bytes: number }> {
  const files: string[] = [];
  let bytes = 0;
  for (const dir of [paths.dir, paths.checkpoints]) {
    for await (const e of Deno.readDir(dir)) {
      if (!e.isFile || !TEMP_FILE.test(e.name)) continue;
      const p = join(dir, e.name);
      bytes += (await Deno.stat(p)).size;
      await Deno.remove(p);
      files.push(p);
    }
  }
  return { files, bytes };
}
