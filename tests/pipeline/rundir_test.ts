import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createRunDir,
  recoverCheckpoints,
  removeTempFiles,
  runPaths,
  saveLastCheckpoint,
  truncateMetrics,
  writeAtomic,
} from "../../ts/pipeline/rundir.ts";

const fakeWriters = (tag: string) => ({
  saveWeights: (p: string): Promise<void> => Deno.writeTextFile(p, `w-${tag}`),
  saveState: (p: string): Promise<void> => Deno.writeTextFile(p, `s-${tag}`),
});

Deno.test("rundir: a run folder is never reused (-2, -3...)", async () => {
  const root = await Deno.makeTempDir();
  const d = new Date(2024, 9, 31);
  const a = await createRunDir(root, "x", d);
  const b = await createRunDir(root, "x", d);
  const c = await createRunDir(root, "x", d);
  assert.equal(a.dir, join(root, "2024-10-31-x"));
  assert.equal(b.dir, join(root, "2024-10-31-x-2"));
  assert.equal(c.dir, join(root, "2024-10-31-x-3"));
  await Deno.remove(root, { recursive: true });
});

Deno.test("rundir: the checkpoint journal rolls forward a committed set and discards an uncommitted one", async () => {
  const root = await Deno.makeTempDir();
  const p = runPaths(root);
  await Deno.mkdir(p.checkpoints);
  await saveLastCheckpoint(p, fakeWriters("1"), { epoch: 1 });
  assert.equal(await recoverCheckpoints(p), "clean");
  // crash after the weights of set 2, before its json: set 1 stays
  await Deno.writeTextFile(p.lastWeights + ".pending", "w-2");
  assert.equal(await recoverCheckpoints(p), "discarded");
  assert.equal(await Deno.readTextFile(p.lastWeights), "w-1");
  // crash after the json of set 2 was committed but before the renames finished
  await Deno.writeTextFile(p.lastWeights + ".pending", "w-2");
  await Deno.writeTextFile(p.lastState + ".pending", "s-2");
  await Deno.writeTextFile(p.lastJson + ".pending", JSON.stringify({ epoch: 2 }));
  await Deno.rename(p.lastWeights + ".pending", p.lastWeights); // one rename done
  assert.equal(await recoverCheckpoints(p), "rolled-forward");
  assert.equal(await Deno.readTextFile(p.lastState), "s-2");
  assert.equal(JSON.parse(await Deno.readTextFile(p.lastJson)).epoch, 2);
  await Deno.writeTextFile(p.metrics, '{"epoch":0}\n{"epoch":1}\n{"epoch":2}\n');
  await truncateMetrics(p.metrics, 1);
  assert.equal(await Deno.readTextFile(p.metrics), '{"epoch":0}\n{"epoch":1}\n');
  await Deno.remove(root, { recursive: true });
});

Deno.test("rundir: temp files of interrupted writes are removed on resume, nothing else", async () => {
  const root = await Deno.makeTempDir();
  try {
    const p = await createRunDir(root, "t");
    const temps = [
      join(p.checkpoints, ".last.safetensors.pending.4242.0.tmp"), // the native writer's
      join(p.checkpoints, "last.json.pending.tmp-4242-3"), // writeAtomic's
      join(p.dir, "inference.json.tmp-17"), // writeAtomic's before it numbered its writes
    ];
    const keep = [p.lastWeights, p.lastJson, join(p.dir, "train.log"), join(p.checkpoints, "notes.tmp.txt")];
    for (const f of [...temps, ...keep]) await Deno.writeTextFile(f, "x".repeat(10));
    const r = await removeTempFiles(p);
    assert.deepEqual([...r.files].sort(), [...temps].sort());
    assert.equal(r.bytes, 30);
    for (const f of keep) assert.ok((await Deno.stat(f)).isFile, `${f} is kept`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("rundir: concurrent atomic writes of one path all land, and one of them is the file", async () => {
  // compare --parallel saves compare.json from two workers at once: a temp name shared between
  // them made the second rename fail with NotFound
  const root = await Deno.makeTempDir();
  try {
    const path = join(root, "state.json");
    const texts = Array.from({ length: 8 }, (_, i) => `write ${i} `.repeat(2000));
    await Promise.all(texts.map((t) => writeAtomic(path, t)));
    assert.ok(texts.includes(await Deno.readTextFile(path)), "the file is one whole write");
    assert.deepEqual([...Deno.readDirSync(root)].map((e) => e.name), ["state.json"], "no temp file left");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
