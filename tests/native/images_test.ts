import assert from "node:assert/strict";
import { type AugmentOp } from "../../ts/pipeline/types.ts";
import { applyOps, createModel, Images } from "../../ts/mod.ts";
import { batch, rejectsNative, throwsNative } from "./helpers.ts";

const SHARED = Deno.env.get("HN_SHARED") ?? new URL("../../../shared", import.meta.url).pathname;
const PLATELETS = `${SHARED}/data/pbc_blood8/val/7_platelet`;

/** The first `n` files of the platelet folder, sorted. */
function plateletFiles(n: number): string[] {
  const names = [...Deno.readDirSync(PLATELETS)].filter((e) => e.isFile).map((e) => e.name).sort();
  return names.slice(0, n).map((name) => `${PLATELETS}/${name}`);
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "hybridnet-images-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const TRAIN_OPS: AugmentOp[] = [
  { op: "hflip", p: 0.5 },
  { op: "vflip", p: 0.5 },
  { op: "rot90", p: 0.5 },
  { op: "random_resized_crop", scale: [0.08, 1], ratio: [0.75, 1.3333] },
  { op: "jitter", brightness: 0.2, contrast: 0.2 },
  { op: "normalize", mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
];

const range = (n: number): Int32Array => Int32Array.from({ length: n }, (_, i) => i);

Deno.test("Images.build: 50 real JPEGs at 32 px, cached on the second build with the same bytes", async () => {
  await withTempDir(async (dir) => {
    const files = plateletFiles(50);
    assert.equal(files.length, 50);
    const cachePath = `${dir}/platelets.hnc`;
    using first = await Images.build({ files, height: 32, width: 32, channels: 3, cachePath });
    const info = first.info();
    assert.equal(first.count, 50);
    assert.deepEqual(first.shape, [3, 32, 32]);
    assert.equal(info.fromCache, false);
    assert.ok(info.decodeSeconds > 0);
    assert.deepEqual(info.kept, [...range(50)]);
    assert.deepEqual(info.skipped, []);
    assert.ok((await Deno.stat(cachePath)).size > 50 * 3 * 32 * 32);

    using second = await Images.build({ files, height: 32, width: 32, cachePath });
    assert.equal(second.info().fromCache, true);
    const all = range(50);
    assert.deepEqual(second.gatherU8(all), first.gatherU8(all));
    assert.deepEqual(
      await second.gather(all, [], 0),
      await first.gather(all, [], 0),
      "same bytes through gather",
    );
  });
});

Deno.test("Images.gather: augmented batch has the expected length, is finite and deterministic", async () => {
  using images = await Images.build({ files: plateletFiles(20), height: 32, width: 32 });
  const idx = Int32Array.from([3, 1, 4, 1, 5, 9, 2, 6]);
  const a = await images.gather(idx, TRAIN_OPS, 7);
  assert.equal(a.length, 8 * 3 * 32 * 32);
  assert.ok(a.every(Number.isFinite), "finite");
  assert.deepEqual(await images.gather(idx, TRAIN_OPS, 7), a, "same (indices, seed), same batch");
  assert.notDeepEqual(await images.gather(idx, TRAIN_OPS, 8), a, "another seed, another batch");
  // A caller-owned out buffer is filled and returned.
  const out = new Float32Array(a.length);
  assert.equal(await images.gather(idx, TRAIN_OPS, 7, out), out);
  assert.deepEqual(out, a);
  // The same ops on the gathered u8 pixels (the TS slow path) give the same floats.
  assert.deepEqual(applyOps(images.gatherU8(idx), [8, 3, 32, 32], TRAIN_OPS, 7), a);
});

Deno.test("Images.gather: bad indices, ops, out length and seed reject with INVALID_ARG", async () => {
  using images = Images.fromU8(new Uint8Array(2 * 3 * 4 * 4), [2, 3, 4, 4]);
  await rejectsNative(() => images.gather(Int32Array.from([0, 2]), [], 0), "INVALID_ARG", /indices\[1\] = 2/);
  await rejectsNative(
    () => images.gather(Int32Array.from([0]), [{ op: "normalize", mean: [0.5], std: [1] }], 0),
    "INVALID_ARG",
    /needs 3 mean/,
  );
  await rejectsNative(
    () => images.gather(Int32Array.from([0]), [{ op: "normalize", mean: [0, 0, 0], std: [1, 0, 1] }], 0),
    "INVALID_ARG",
    /std must be finite and > 0/,
  );
  const unknown = [{ op: "blur", p: 1 }] as unknown as AugmentOp[];
  await rejectsNative(() => images.gather(Int32Array.from([0]), unknown, 0), "INVALID_ARG", /blur/);
  await rejectsNative(
    () => images.gather(Int32Array.from([0]), [], 0, new Float32Array(3)),
    "INVALID_ARG",
    /out must be/,
  );
  await rejectsNative(() => images.gather(Int32Array.from([0]), [], -1), "INVALID_ARG", /seed/);
  throwsNative(() => images.gatherU8(Int32Array.from([5])), "INVALID_ARG", /out of range/);
});

Deno.test("Images.build: a bad path rejects with IO naming the file; skip mode drops it", async () => {
  await withTempDir(async (dir) => {
    const bad = `${dir}/x.jpg`;
    await Deno.writeFile(bad, crypto.getRandomValues(new Uint8Array(500)));
    const missing = `${dir}/missing.jpg`;
    const good = plateletFiles(3);
    const files = [good[0], bad, good[1], missing, good[2]];
    const err = await rejectsNative(() => Images.build({ files, height: 16, width: 16 }), "IO");
    assert.ok(err.message.includes(bad), err.message);
    await rejectsNative(
      () => Images.build({ files: [missing], height: 16, width: 16 }),
      "IO",
      /missing\.jpg/,
    );

    using images = await Images.build({ files, height: 16, width: 16, channels: 1, onBadImage: "skip" });
    const info = images.info();
    assert.equal(images.count, 3);
    assert.deepEqual(images.shape, [1, 16, 16]);
    assert.deepEqual(info.kept, [0, 2, 4]);
    assert.deepEqual(info.skipped.map((s) => [s.index, s.path]), [[1, bad], [3, missing]]);
    assert.ok(info.skipped.every((s) => s.error.length > 0));

    await rejectsNative(
      () => Images.build({ files: [], height: 16, width: 16 }),
      "INVALID_ARG",
      /files is empty/,
    );
    await rejectsNative(
      () => Images.build({ files: good, height: 16, width: 16, channels: 2 }),
      "INVALID_ARG",
      /channels/,
    );
  });
});

Deno.test("Images.fromU8 + gather without ops equals the manual /255 conversion", async () => {
  const shape = [3, 2, 5, 4] as const;
  const data = Uint8Array.from({ length: 3 * 2 * 5 * 4 }, (_, i) => (i * 37) % 256);
  using images = Images.fromU8(data, shape);
  assert.equal(images.count, 3);
  assert.deepEqual(images.shape, [2, 5, 4]);
  assert.equal(images.info().fromCache, false);
  const idx = Int32Array.from([2, 0]);
  const got = await images.gather(idx, [], 123);
  const want = new Float32Array(2 * 40);
  for (const [k, i] of [...idx].entries()) {
    for (let j = 0; j < 40; j++) want[k * 40 + j] = data[i * 40 + j] / 255;
  }
  assert.deepEqual(got, want);
  assert.deepEqual(
    images.gatherU8(idx),
    Uint8Array.from([...data.subarray(80, 120), ...data.subarray(0, 40)]),
  );
  // Normalize math matches TS float32 math.
  const norm = applyOps(data, [3, 2, 5, 4], [{ op: "normalize", mean: [0.5, 0.25], std: [0.2, 2] }], 0);
  for (let j = 0; j < norm.length; j++) {
    const ch = Math.floor(j / 20) % 2;
    const v = Math.fround(data[j] / 255);
    const expect = Math.fround(Math.fround(v - Math.fround([0.5, 0.25][ch])) / Math.fround([0.2, 2][ch]));
    assert.equal(norm[j], expect, `value ${j}`);
  }
  throwsNative(() => Images.fromU8(data, [3, 2, 5, 5]), "INVALID_ARG", /needs/);
  throwsNative(
    () => Images.fromU8(data, [3, 2, 5] as unknown as [number, number, number, number]),
    "INVALID_ARG",
  );
  throwsNative(() => applyOps(data, [3, 2, 5, 4], [], 0.5), "INVALID_ARG", /seed/);
});

Deno.test("Images.close: idempotent, dispose twice, calls after close throw CLOSED, close during a gather", async () => {
  const images = Images.fromU8(new Uint8Array(4 * 3 * 8 * 8).fill(9), [4, 3, 8, 8]);
  const pending = images.gather(range(4), TRAIN_OPS, 1);
  images.close(); // deferred until the gather settles
  assert.equal(images.closed, true);
  const out = await pending;
  assert.ok(out.every(Number.isFinite));
  images.close();
  images[Symbol.dispose]();
  throwsNative(() => images.info(), "CLOSED");
  throwsNative(() => images.gatherU8(range(1)), "CLOSED");
  await rejectsNative(() => images.gather(range(1), [], 0), "CLOSED");
  {
    using scoped = Images.fromU8(new Uint8Array(3), [1, 3, 1, 1]);
    assert.equal(scoped.count, 1);
    scoped.close();
  }
});

Deno.test("Images.gather and Model.forward run concurrently", async () => {
  using images = await Images.build({ files: plateletFiles(16), height: 32, width: 32 });
  using model = createModel({ numClasses: 8, inputChannels: 3 });
  const probe = batch(4, 3, 32, 3);
  const idx = range(16);
  const [x, logits, y] = await Promise.all([
    images.gather(idx, TRAIN_OPS, 1),
    model.forward(probe.x, probe.shape),
    images.gather(idx, TRAIN_OPS, 2),
  ]);
  assert.equal(x.length, 16 * 3 * 32 * 32);
  assert.equal(y.length, x.length);
  assert.equal(logits.length, 4 * 8);
  assert.ok(logits.every(Number.isFinite));
  // Feed the gathered batch to the model.
  const out = await model.forward(x, [16, 3, 32, 32]);
  assert.ok(out.every(Number.isFinite));
});
