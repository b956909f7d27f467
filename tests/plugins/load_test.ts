import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Dataset, Loader, PluginModule, Split } from "../../ts/pipeline/types.ts";
import { plugin as csv } from "../../ts/plugins/load/csv.ts";
import { plugin as idx } from "../../ts/plugins/load/idx.ts";
import { plugin as imagefolder } from "../../ts/plugins/load/imagefolder.ts";
import { plugin as synthetic } from "../../ts/plugins/load/synthetic.ts";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const SHARED = Deno.env.get("HN_SHARED") ?? join(REPO, "..", "shared");
const logs: string[] = [];
const ctx = { configDir: REPO, seed: 0, epochs: 10, log: (l: string): void => void logs.push(l) };

async function load(mod: PluginModule, cfg: Record<string, unknown>, configDir = REPO): Promise<Dataset> {
  const loader = (await mod.create(mod.configSchema.parse(cfg), { ...ctx, configDir })) as Loader;
  return await loader.load();
}

function counts(s: Split | undefined, k: number): number[] {
  const out = new Array(k).fill(0);
  for (const l of s?.labels ?? []) out[l]++;
  return out;
}

/** A w x h 24-bit BMP filled with one colour. */
function bmp(w: number, h: number, rgb: [number, number, number]): Uint8Array {
  const row = Math.ceil((w * 3) / 4) * 4;
  const size = 54 + row * h;
  const b = new Uint8Array(size);
  const dv = new DataView(b.buffer);
  b[0] = 0x42;
  b[1] = 0x4d;
  dv.setUint32(2, size, true);
  dv.setUint32(10, 54, true);
  dv.setUint32(14, 40, true);
  dv.setInt32(18, w, true);
  dv.setInt32(22, h, true);
  dv.setUint16(26, 1, true);
  dv.setUint16(28, 24, true);
  dv.setUint32(34, row * h, true);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = 54 + y * row + x * 3;
      b[o] = rgb[2];
      b[o + 1] = rgb[1];
      b[o + 2] = rgb[0];
    }
  }
  return b;
}

Deno.test("imagefolder: bccd_wbc5 class names (prefix order) and counts per split", async () => {
  const ds = await load(imagefolder, { root: join(SHARED, "data", "bccd_wbc5") });
  assert.deepEqual(ds.classNames, ["basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil"]);
  assert.deepEqual(counts(ds.train, 5), [1, 62, 23, 14, 145], "train counts (README table)");
  assert.deepEqual(counts(ds.val, 5), [1, 13, 5, 3, 31], "val counts (README table)");
  assert.equal(ds.test, undefined);
  assert.equal(ds.train.source.kind, "files");
  if (ds.train.source.kind === "files") {
    assert.ok(ds.train.source.paths[0].endsWith(join("train", "0_basophil", "BloodImage_00008_1.jpg")));
    assert.equal(ds.train.source.paths.length, 245);
  }
});

Deno.test("imagefolder: relative root against configDir; errors name the path", async () => {
  const ds = await load(imagefolder, { root: "data/bccd_wbc5" }, SHARED);
  assert.equal(ds.train.labels.length, 245);
  await assert.rejects(
    load(imagefolder, { root: "no/such/dir" }),
    /root folder .*no\/such\/dir does not exist/,
  );
  const tmp = await Deno.makeTempDir();
  try {
    await Deno.mkdir(join(tmp, "train"));
    await assert.rejects(load(imagefolder, { root: tmp }), new RegExp(`no class folders in ${tmp}/train`));
    await Deno.mkdir(join(tmp, "train", "cats"));
    await Deno.mkdir(join(tmp, "train", "dogs"));
    await Deno.writeFile(join(tmp, "train", "dogs", "a.bmp"), bmp(2, 2, [1, 2, 3]));
    await assert.rejects(
      load(imagefolder, { root: tmp }),
      new RegExp(`class folder ${tmp}/train/cats has no images`),
    );
    await assert.rejects(load(imagefolder, { root: tmp, splitRatio: 0.5 }), /has no images/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("imagefolder: splitRatio splits one folder stratified per class, deterministic in splitSeed", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    // alphabetical classes (no numeric prefix on every folder)
    const spec: [string, number][] = [["zebra", 10], ["ant", 4], ["10_mixed", 2]];
    for (const [cls, n] of spec) {
      await Deno.mkdir(join(tmp, cls));
      for (let i = 0; i < n; i++) await Deno.writeFile(join(tmp, cls, `img${i}.BMP`), bmp(3, 2, [i, 0, 0]));
      await Deno.writeTextFile(join(tmp, cls, "notes.txt"), "not an image");
      await Deno.writeFile(join(tmp, cls, ".hidden.bmp"), bmp(1, 1, [0, 0, 0]));
    }
    const ds = await load(imagefolder, { root: tmp, splitRatio: 0.75, splitSeed: 1 });
    assert.deepEqual(ds.classNames, ["10_mixed", "ant", "zebra"]);
    assert.deepEqual(counts(ds.train, 3), [1, 3, 8]); // round(0.75 n), keeping one in val
    assert.deepEqual(counts(ds.val, 3), [1, 1, 2]);
    const again = await load(imagefolder, { root: tmp, splitRatio: 0.75, splitSeed: 1 });
    assert.deepEqual(again.train.source, ds.train.source);
    const trainPaths = ds.train.source.kind === "files" ? ds.train.source.paths : [];
    const valPaths = ds.val?.source.kind === "files" ? ds.val.source.paths : [];
    assert.equal(new Set([...trainPaths, ...valPaths]).size, 16, "train and val are disjoint and cover all");
    let differs = false;
    for (let seed = 2; seed < 8 && !differs; seed++) {
      const other = await load(imagefolder, { root: tmp, splitRatio: 0.75, splitSeed: seed });
      differs = JSON.stringify(other.val?.source) !== JSON.stringify(ds.val?.source);
    }
    assert.ok(differs, "another splitSeed gives another split");
    // without splitRatio this layout is an error that says what to do
    await assert.rejects(load(imagefolder, { root: tmp }), /set splitRatio/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("imagefolder: numeric prefixes sort by number; val may not add a class", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    for (const cls of ["10_ten", "2_two", "1_one"]) {
      await Deno.mkdir(join(tmp, "train", cls), { recursive: true });
      await Deno.writeFile(join(tmp, "train", cls, "a.bmp"), bmp(1, 1, [0, 0, 0]));
    }
    const ds = await load(imagefolder, { root: tmp });
    assert.deepEqual(ds.classNames, ["one", "two", "ten"]);
    await Deno.mkdir(join(tmp, "val", "3_three"), { recursive: true });
    await assert.rejects(
      load(imagefolder, { root: tmp }),
      /val\/3_three is a class folder that the train split does not have/,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("csv: pbc_blood8 manifest counts per split match its README", async () => {
  const ds = await load(csv, { manifest: join(SHARED, "data", "pbc_blood8", "manifest.csv") });
  assert.deepEqual(ds.classNames, [
    "basophil",
    "eosinophil",
    "erythroblast",
    "immature_granulocyte",
    "lymphocyte",
    "monocyte",
    "neutrophil",
    "platelet",
  ]);
  assert.equal(ds.train.labels.length, 11952);
  assert.equal(ds.val?.labels.length, 2561);
  assert.deepEqual(counts(ds.train, 8), [848, 2178, 1085, 2024, 850, 993, 2330, 1644]);
  assert.deepEqual(counts(ds.val, 8), [182, 466, 233, 434, 182, 213, 499, 352]);
});

Deno.test("csv: class names as labels, quoted cells, paths relative to the manifest, file:line errors", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await Deno.mkdir(join(tmp, "img"));
    for (const f of ["a.bmp", "b,1.bmp", "c.bmp"]) {
      await Deno.writeFile(join(tmp, "img", f), bmp(1, 1, [9, 9, 9]));
    }
    const man = join(tmp, "m.csv");
    await Deno.writeTextFile(
      man,
      'path,label,split\nimg/a.bmp,cat,train\n"img/b,1.bmp",dog,train\r\nimg/c.bmp,1,val\n\n',
    );
    const ds = await load(csv, { manifest: "m.csv", classes: ["cat", "dog"] }, tmp);
    assert.deepEqual(Array.from(ds.train.labels), [0, 1]);
    assert.deepEqual(Array.from(ds.val!.labels), [1]);
    assert.deepEqual(ds.train.source.kind === "files" ? ds.train.source.paths : [], [
      join(tmp, "img", "a.bmp"),
      join(tmp, "img", "b,1.bmp"),
    ]);
    // without classes: names from the labels
    await Deno.writeTextFile(man, "relpath,label\nimg/a.bmp,dog\nimg/c.bmp,cat\n");
    assert.deepEqual((await load(csv, { manifest: man })).classNames, ["cat", "dog"]);
    // classes.csv next to the manifest
    await Deno.writeTextFile(join(tmp, "classes.csv"), "label,name\n1,dog\n0,cat\n");
    await Deno.writeTextFile(man, "relpath,label\nimg/a.bmp,1\nimg/c.bmp,0\n");
    const d2 = await load(csv, { manifest: man });
    assert.deepEqual(d2.classNames, ["cat", "dog"]);
    // errors
    await Deno.writeTextFile(man, "relpath,label\nimg/a.bmp,1\nimg/c.bmp,7\n");
    await assert.rejects(load(csv, { manifest: man }), new RegExp(`${man}:3: label 7 is out of range`));
    await Deno.writeTextFile(man, "relpath,label\nimg/a.bmp,1\nimg/missing.bmp,0\n");
    await assert.rejects(
      load(csv, { manifest: man }),
      new RegExp(`${man}:3: image file .*missing.bmp does not exist`),
    );
    await Deno.writeTextFile(man, "relpath,label,split\nimg/a.bmp,1,training\n");
    await assert.rejects(load(csv, { manifest: man }), new RegExp(`${man}:2: split "training"`));
    await Deno.writeTextFile(man, "file,label\nimg/a.bmp,1\n");
    await assert.rejects(load(csv, { manifest: man }), new RegExp(`${man}:1: header needs a "path"`));
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

// ---- idx -------------------------------------------------------------------------------------

function idxImages(n: number, rows: number, cols: number, fill: (i: number) => number): Uint8Array {
  const b = new Uint8Array(16 + n * rows * cols);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, 0x803);
  dv.setUint32(4, n);
  dv.setUint32(8, rows);
  dv.setUint32(12, cols);
  for (let i = 0; i < n; i++) b.fill(fill(i), 16 + i * rows * cols, 16 + (i + 1) * rows * cols);
  return b;
}

function idxLabels(labels: number[]): Uint8Array {
  const b = new Uint8Array(8 + labels.length);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, 0x801);
  dv.setUint32(4, labels.length);
  b.set(labels, 8);
  return b;
}

async function gzip(b: Uint8Array): Promise<Uint8Array> {
  const s = new Blob([b as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(s).arrayBuffer());
}

Deno.test("idx: plain and .gz files, val = test by default, valFraction split, corrupt magic", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const trainLabels = Array.from({ length: 40 }, (_, i) => i % 10);
    await Deno.writeFile(join(tmp, "train-images-idx3-ubyte"), idxImages(40, 28, 28, (i) => i));
    await Deno.writeFile(join(tmp, "train-labels-idx1-ubyte.gz"), await gzip(idxLabels(trainLabels)));
    await Deno.writeFile(
      join(tmp, "t10k-images-idx3-ubyte.gz"),
      await gzip(idxImages(10, 28, 28, (i) => 200 + i)),
    );
    await Deno.writeFile(join(tmp, "t10k-labels-idx1-ubyte"), idxLabels([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
    const ds = await load(idx, { dir: tmp });
    assert.equal(ds.classNames[0], "tshirt_top");
    assert.equal(ds.classNames.length, 10);
    assert.equal(ds.train.source.kind, "pixels");
    if (ds.train.source.kind === "pixels") {
      assert.deepEqual(ds.train.source.shape, [40, 1, 28, 28]);
      assert.equal(ds.train.source.data[5 * 784 + 100], 5, "image 5 keeps its pixels");
    }
    assert.deepEqual(Array.from(ds.train.labels), trainLabels);
    assert.ok(ds.test, "the t10k files are the test split");
    assert.equal(ds.val, ds.test, "val = test when valFraction is 0");
    assert.equal(ds.test.source.kind, "pixels");
    if (ds.test.source.kind === "pixels") assert.equal(ds.test.source.data[3 * 784], 203);
    assert.deepEqual(Array.from(ds.test.labels), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);

    const split = await load(idx, {
      dir: tmp,
      valFraction: 0.25,
      splitSeed: 3,
      classNames: "abcdefghij".split(""),
    });
    assert.equal(split.classNames[2], "c");
    assert.deepEqual(counts(split.train, 10), new Array(10).fill(3));
    assert.deepEqual(counts(split.val, 10), new Array(10).fill(1));
    assert.equal(split.val?.source.kind, "pixels");
    assert.equal(split.train.source.kind, "pixels");
    if (split.val?.source.kind === "pixels" && split.train.source.kind === "pixels") {
      assert.deepEqual(split.val.source.shape, [10, 1, 28, 28]);
      assert.deepEqual(split.train.source.shape, [30, 1, 28, 28]);
      // every image's pixel value is its original index; its label is index % 10
      for (let j = 0; j < 10; j++) assert.equal(split.val.source.data[j * 784] % 10, split.val.labels[j]);
      const origin = (src: Uint8Array, n: number): number[] =>
        Array.from({ length: n }, (_, j) => src[j * 784]);
      for (const [j, v] of origin(split.train.source.data, 30).entries()) {
        assert.equal(v % 10, split.train.labels[j], `train image ${j}`);
      }
      // train and val together are the 40 train images, each once
      const all = [...origin(split.train.source.data, 30), ...origin(split.val.source.data, 10)];
      assert.deepEqual(all.sort((a, b) => a - b), Array.from({ length: 40 }, (_, i) => i));
    }
    assert.ok(split.test);
    assert.notEqual(split.val, split.test, "with valFraction, val comes from train");

    const bad = idxImages(40, 28, 28, () => 0);
    new DataView(bad.buffer).setUint32(0, 0x804);
    await Deno.writeFile(join(tmp, "train-images-idx3-ubyte"), bad);
    await assert.rejects(
      load(idx, { dir: tmp }),
      new RegExp(`${tmp}/train-images-idx3-ubyte: magic number 0x00000804`),
    );
    await Deno.writeFile(
      join(tmp, "train-images-idx3-ubyte"),
      idxImages(40, 28, 28, () => 0).subarray(0, 100),
    );
    await assert.rejects(
      load(idx, { dir: tmp }),
      /train-images-idx3-ubyte: 100 bytes, but the header \[40, 28, 28\]/,
    );
    await Deno.writeFile(join(tmp, "train-images-idx3-ubyte"), idxImages(39, 28, 28, () => 0));
    await assert.rejects(load(idx, { dir: tmp }), /has 40 labels but .* has 39 images/);
    await Deno.remove(join(tmp, "train-images-idx3-ubyte"));
    await assert.rejects(
      load(idx, { dir: tmp }),
      /train-images-idx3-ubyte \(or its .gz twin\) does not exist/,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

// ---- synthetic -------------------------------------------------------------------------------

Deno.test("synthetic: counts, shape, determinism, imbalance", async () => {
  const a = await load(synthetic, { numClasses: 3, size: 16, perClass: [5, 10, 2], valPerClass: 4, seed: 7 });
  assert.deepEqual(counts(a.train, 3), [5, 10, 2]);
  assert.deepEqual(counts(a.val, 3), [4, 4, 4]);
  assert.equal(a.test, undefined);
  assert.deepEqual(a.classNames, ["class_0", "class_1", "class_2"]);
  if (a.train.source.kind !== "pixels") throw new Error("expected pixels");
  assert.deepEqual(a.train.source.shape, [17, 3, 16, 16]);
  assert.equal(a.train.source.data.length, 17 * 3 * 256);
  const b = await load(synthetic, { numClasses: 3, size: 16, perClass: [5, 10, 2], valPerClass: 4, seed: 7 });
  assert.deepEqual(b, a);
  const c = await load(synthetic, { numClasses: 3, size: 16, perClass: [5, 10, 2], valPerClass: 4, seed: 8 });
  assert.notDeepEqual(c.train.source, a.train.source);
  await assert.rejects(
    load(synthetic, { numClasses: 3, perClass: [1, 2] }),
    /perClass has 2 entries, but numClasses is 3/,
  );
});

Deno.test("synthetic: class mean intensities overlap (not separable by brightness alone)", async () => {
  const ds = await load(synthetic, { numClasses: 4, size: 32, channels: 1, perClass: 200, valPerClass: 0 });
  if (ds.train.source.kind !== "pixels") throw new Error("expected pixels");
  const { data } = ds.train.source;
  const per = 32 * 32;
  const ranges = Array.from({ length: 4 }, () => [Infinity, -Infinity]);
  ds.train.labels.forEach((k, i) => {
    let s = 0;
    for (let j = 0; j < per; j++) s += data[i * per + j];
    const m = s / per;
    ranges[k][0] = Math.min(ranges[k][0], m);
    ranges[k][1] = Math.max(ranges[k][1], m);
  });
  // every pair of classes has overlapping ranges of mean intensity
  for (let a = 0; a < 4; a++) {
    for (let b = a + 1; b < 4; b++) {
      assert.ok(
        ranges[a][0] < ranges[b][1] && ranges[b][0] < ranges[a][1],
        `classes ${a},${b}: ${ranges[a]} vs ${ranges[b]}`,
      );
    }
  }
});

const FASHION = "/usr/share/datasets/fashion-mnist";
const hasFashion = (() => {
  try {
    return Deno.statSync(join(FASHION, "train-images-idx3-ubyte.gz")).isFile;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "idx: the real Fashion-MNIST (.gz) when installed (apt-get install dataset-fashion-mnist)",
  ignore: !hasFashion,
  fn: async () => {
    const ds = await load(idx, { dir: FASHION });
    assert.deepEqual(counts(ds.train, 10), new Array(10).fill(6000));
    assert.deepEqual(counts(ds.val, 10), new Array(10).fill(1000));
    assert.equal(ds.classNames[9], "ankle_boot");
    assert.equal(ds.train.source.kind, "pixels");
    if (ds.train.source.kind === "pixels") assert.deepEqual(ds.train.source.shape, [60000, 1, 28, 28]);
  },
});
