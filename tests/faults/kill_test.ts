/**
 * Kills and signals against a real training run (the CLI as a subprocess), then `--resume`: every
 * run that had a checkpoint must finish bit-identical (weights, optimizer state, per-epoch
 * figures) to one uninterrupted run of the same config, with no temp file left.
 *
 * The 20 SIGKILL points come from a seeded PRNG (printed; `HN_FAULT_SEED=<n>` replays the plan;
 * the moments still depend on the machine's speed): 7 the instant the n-th checkpoint temp or
 * pending file appears (the watcher polls checkpoints/ about every millisecond), 7 a random part of
 * a step after the k-th checkpoint commit, 6 a random time after spawn (mostly in the start-up);
 * the times are fractions of the pace measured over the runs so far (`Pace`), and each trigger has
 * a fallback so that a run that goes faster still gets its kill before it ends (see `Trigger`).
 * A kill before the first checkpoint leaves a folder without last.json: `--resume` must refuse it
 * clearly, and a fresh run must then finish bit-identical too. SIGINT and SIGTERM must exit 130
 * with a resumable checkpoint.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  assertSameRun,
  faultYaml,
  finish,
  type Observation,
  type Phase,
  phaseOf,
  prng,
  runDirIn,
  scratchDir,
  spawnTrain,
  type Trigger,
  watch,
} from "./helpers.ts";

const KILLS = 20;
const SEED = Number(Deno.env.get("HN_FAULT_SEED") ?? Math.floor(Math.random() * 2 ** 31));
const log = (line: string): void => console.log(`[faults] ${line}`);

interface Reference {
  scratch: string;
  config: string;
  run: string;
  obs: Observation;
}

let reference: Promise<Reference> | null = null;
/** The scratch folder, removed at exit unless a test failed (its folders are then kept to look at). */
let scratch: string | null = null;
let keep = false;

/** Runs `fn`; on a failure keeps the scratch folder and says where it is and which seed to replay. */
async function keepOnFailure(what: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    keep = true;
    log(`FAILED: ${what} (seed ${SEED}); its folders are kept under ${scratch}`);
    throw err;
  }
}

/**
 * The machine's current pace: the medians of the times to the first commit and between commits
 * (about one step plus its save) over the runs so far. It varies several-fold on a shared machine,
 * so the kill plan is drawn as fractions of it, turned into milliseconds just before each run.
 */
class Pace {
  #first: number[] = [];
  #gaps: number[] = [];

  /** Adds what a run showed (a run killed before a commit adds nothing for that commit). */
  add(o: Observation): void {
    if (o.firstCommitMs !== null) this.#first.push(o.firstCommitMs);
    for (let i = 1; i < o.commitMs.length; i++) this.#gaps.push(o.commitMs[i] - o.commitMs[i - 1]);
  }

  get firstCommitMs(): number {
    return median(this.#first);
  }

  get stepMs(): number {
    return median(this.#gaps);
  }
}

function median(xs: number[]): number {
  const v = [...xs].sort((a, b) => a - b);
  return v.length === 0 ? 1000 : v[Math.floor(v.length / 2)];
}

/** A kill point as drawn: a temp-file sighting, a fraction of a step after a commit, or a fraction of the start-up. */
type PlannedKill =
  | { kind: "temp"; tempEvents: number }
  | { kind: "step"; commits: number; u: number }
  | { kind: "delay"; u: number };

/** One uninterrupted run (watched, to size the kill plan), shared by the tests of this file. */
function referenceRun(): Promise<Reference> {
  reference ??= (async () => {
    scratch = await scratchDir("hn-faults-kill-");
    const config = join(scratch, "config.yaml");
    await Deno.writeTextFile(config, faultYaml());
    const out = join(scratch, "reference");
    const t0 = performance.now();
    const child = spawnTrain(["--config", config, "--out", out]);
    const obs = await watch(child, out, t0, null);
    const r = await finish(child);
    assert.equal(r.code, 0, r.stderr);
    log(
      `reference run: ${(obs.ms / 1000).toFixed(1)} s, ${obs.commits} checkpoint commits (first at ` +
        `${((obs.firstCommitMs ?? 0) / 1000).toFixed(1)} s), ${obs.tempEvents} temp-file sightings`,
    );
    return { scratch: scratch!, config, run: runDirIn(out)!, obs };
  })();
  return reference;
}

/**
 * The 20 kill points: 7 at the n-th temp-file sighting, 7 a fraction of a step after the k-th
 * commit, 6 a fraction of 1.5 start-ups after spawn (so about two thirds before the first commit).
 */
function killPlan(seed: number, ref: Observation): PlannedKill[] {
  const rand = prng(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));
  return Array.from(
    { length: KILLS },
    (_, i): PlannedKill =>
      i < 7
        ? { kind: "temp", tempEvents: int(1, Math.max(1, Math.floor(ref.tempEvents * 0.75))) }
        : i < 14
        ? { kind: "step", commits: int(0, ref.commits - 2), u: rand() }
        : { kind: "delay", u: rand() * 1.5 },
  );
}

/** The trigger of a planned kill at the current pace; the fallbacks fire before the last commit of a run. */
function triggerOf(k: PlannedKill, pace: Pace, commits: number): Trigger {
  const latest = commits - 1;
  return k.kind === "temp"
    ? { kind: "temp", tempEvents: k.tempEvents, latest }
    : k.kind === "step"
    ? { kind: "step", commits: k.commits, afterMs: k.u * pace.stepMs }
    : { kind: "delay", afterMs: k.u * pace.firstCommitMs, latest };
}

const describe = (t: Trigger): string =>
  t.kind === "temp"
    ? `at temp-file sighting #${t.tempEvents}`
    : t.kind === "step"
    ? `${Math.round(t.afterMs)} ms after commit #${t.commits}`
    : `${Math.round(t.afterMs)} ms after spawn`;

const hasCheckpoint = (run: string | null): boolean =>
  run !== null && ["last.json", "last.json.pending"].some((f) => {
    try {
      return Deno.statSync(join(run, "checkpoints", f)).isFile;
    } catch {
      return false;
    }
  });

/** A run killed before its first checkpoint: refused by --resume with a clear message, then trained afresh. */
async function freshInstead(ref: Reference, run: string | null, out: string, what: string): Promise<void> {
  if (run !== null) {
    assert.ok(!(await exists(join(run, "FAILED"))), `${what}: a SIGKILL cannot mark the run FAILED`);
    const r = await finish(spawnTrain(["--resume", run]));
    assert.equal(r.code, 1, `${what}: --resume of a run without a checkpoint must fail: ${r.stderr}`);
    if (await exists(join(run, "config.yaml"))) {
      assert.match(r.stderr, /no readable checkpoints\/last\.json/, what);
    } else {
      assert.match(r.stderr, /config\.yaml/, `${what}: killed before config.yaml was written`);
    }
    assert.doesNotMatch(r.stderr, /panic|\n\s+at /, `${what}: a clear message, not a crash or stack`);
  }
  const fresh = `${out}-fresh`;
  const f = await finish(spawnTrain(["--config", ref.config, "--out", fresh]));
  assert.equal(f.code, 0, `${what}: fresh run: ${f.stderr}`);
  assertSameRun(runDirIn(fresh)!, ref.run, `${what} (fresh run)`);
}

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.stat(p);
    return true;
  } catch {
    return false;
  }
}

Deno.test("faults: SIGKILL at 20 seeded points, then --resume, ends bit-identical to an uninterrupted run", async () => {
  const ref = await referenceRun();
  log(`seed ${SEED} (HN_FAULT_SEED=${SEED} replays this kill plan)`);
  const plan = killPlan(SEED, ref.obs);
  const pace = new Pace();
  pace.add(ref.obs);
  const phases = new Map<Phase | "finished before its trigger", number>();
  let tempKills = 0;
  for (const [i, planned] of plan.entries()) {
    const trigger = triggerOf(planned, pace, ref.obs.commits);
    const what = `kill ${i + 1}/${KILLS} (${describe(trigger)})`;
    const out = join(ref.scratch, `kill-${i + 1}`);
    const t0 = performance.now();
    const child = spawnTrain(["--config", ref.config, "--out", out]);
    const o = await watch(child, out, t0, trigger);
    const r = await finish(child);
    pace.add(o);
    const run = runDirIn(out);
    const phase = o.killed ? phaseOf(run) : "finished before its trigger";
    phases.set(phase, (phases.get(phase) ?? 0) + 1);
    if (o.killed && trigger.kind === "temp") tempKills++;
    const caught = o.caught.length > 0 ? ` [${o.caught.join(", ")}]` : "";
    const early = o.early ? " (by its fallback)" : "";
    log(`${what}: ${(o.ms / 1000).toFixed(2)} s${early}, ${phase}${caught}`);
    await keepOnFailure(what, async () => {
      if (!o.killed) {
        assert.equal(r.code, 0, `${what}: finished without a kill: ${r.stderr}`);
        assertSameRun(run!, ref.run, what);
      } else if (hasCheckpoint(run)) {
        assert.equal(r.signal, "SIGKILL", what);
        const resumed = await finish(spawnTrain(["--resume", run!]));
        assert.equal(resumed.code, 0, `${what}: --resume: ${resumed.stderr}`);
        assertSameRun(run!, ref.run, `${what}, resumed`);
      } else {
        await freshInstead(ref, run, out, what);
      }
    });
    await Deno.remove(out, { recursive: true }).catch(() => {});
    await Deno.remove(`${out}-fresh`, { recursive: true }).catch(() => {});
  }
  log(`phases hit (seed ${SEED}): ${[...phases].map(([p, n]) => `${p}: ${n}`).join("; ")}`);
  assert.ok(tempKills >= 5, `at least 5 kills the moment a temp file appeared (got ${tempKills})`);
});

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.test(`faults: ${signal} exits 130 with a resumable checkpoint; --resume ends bit-identical`, async () => {
    const ref = await referenceRun();
    const rand = prng(SEED + (signal === "SIGINT" ? 1 : 2));
    // SIGINT a random time into a step; SIGTERM the instant a checkpoint's temp file appears (mid-save)
    const trigger: Trigger = signal === "SIGINT"
      ? {
        kind: "step",
        commits: 1 + Math.floor(rand() * Math.max(1, ref.obs.commits - 3)),
        afterMs: rand() * 0.8 * (ref.obs.commitMs[1] - ref.obs.commitMs[0]),
      }
      : {
        kind: "temp",
        tempEvents: 1 + Math.floor(rand() * Math.max(1, ref.obs.tempEvents / 2)),
        latest: ref.obs.commits - 3, // before the last epoch's end, after which a signal changes nothing
      };
    const out = join(ref.scratch, signal);
    await keepOnFailure(signal, async () => {
      const child = spawnTrain(["--config", ref.config, "--out", out]);
      const o = await watch(child, out, performance.now(), trigger, signal);
      const r = await finish(child);
      log(`${signal} ${describe(trigger)}: exit ${r.code} after ${(o.ms / 1000).toFixed(2)} s`);
      assert.ok(o.killed, `${signal} was sent before the run finished`);
      assert.equal(r.code, 130, r.stderr);
      assert.match(
        r.stderr,
        new RegExp(
          `${signal}: interrupted at (epoch \\d+, step \\d+|the end of epoch \\d+); a resumable checkpoint is ` +
            `saved\\. Resume with: deno task train --resume `,
        ),
      );
      const run = runDirIn(out)!;
      assert.equal(phaseOf(run), "between saves", "the signal's save is complete: no temp or pending file");
      assert.match(
        Deno.readTextFileSync(join(run, "train.log")),
        new RegExp(`WARNING - ${signal}: finishing the current step`),
      );
      const resumed = await finish(spawnTrain(["--resume", run]));
      assert.equal(resumed.code, 0, resumed.stderr);
      assertSameRun(run, ref.run, `${signal}, resumed`);
    });
    await Deno.remove(out, { recursive: true });
  });
}

globalThis.addEventListener("unload", () => {
  if (scratch !== null && !keep) Deno.removeSync(scratch, { recursive: true });
});
