/**
 * Bad images through the pipeline's data path (issue 14, "nothing silently wrong"): an image
 * folder of real blood-cell JPEGs, made in a temp dir, where some files are cut short. `skip`
 * warns per class, refuses a train class left empty, and the class priors count only the kept
 * images; `error` names the file; `data.maxPixels` reaches the native decoder.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DEFAULT_MAX_PIXELS, Images } from "../../ts/native/images.ts";
import { NativeError } from "../../ts/native/errors.ts";
import { RawConfigSchema } from "../../ts/pipeline/config.ts";
import { DataError } from "../../ts/pipeline/errors.ts";
import { openRunData } from "../../ts/pipeline/run-data.ts";
import { configIn, SHARED } from "./helpers.ts";

const PBC = join(SHARED, "data", "pbc_blood8", "train");
const CLASSES = ["0_basophil", "1_eosinophil", "2_erythroblast"];

/** The first `n` JPEGs (sorted) of a pbc_blood8 class folder. */
function pbcFiles(folder: string, n: number): string[] {
  const names = [...Deno.readDirSync(join(PBC, folder))].map((e) => e.name).filter((f) => f.endsWith(".jpg"));
  return names.sort().slice(0, n).map((f) => join(PBC, folder, f));
}

/**
 * `<tmp>/data/train/<class>/` with 4 real JPEGs per class (3 classes); `cut[k]` files of class k
 * are cut to half their size (the first ones). Returns the temp dir.
 */
async function imageFolder(cut: number[]): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "hn-bad-images-" });
  for (const [k, folder] of CLASSES.entries()) {
    const out = join(dir, "data", "train", folder);
    await Deno.mkdir(out, { recursive: true });
    for (const [i, src] of pbcFiles(folder, 4).entries()) {
      const bytes = await Deno.readFile(src);
      await Deno.writeFile(join(out, `${i}.jpg`), i < cut[k] ? bytes.subarray(0, bytes.length >> 1) : bytes);
    }
  }
  return dir;
}

function yaml(dir: string, onBadImage: "error" | "skip", extra = ""): string {
  return `name: bad-images
seed: 1
data:
  loader:
    name: imagefolder
    root: ${join(dir, "data")}
  imageSize: 32
  channels: 3
  cacheDir: ${join(dir, "cache")}
  onBadImage: ${onBadImage}
${extra}loss:
  name: logit-adjusted
train:
  epochs: 1
  batchSize: 4
  threads: 2
`;
}

Deno.test("bad images: skip warns per class and the priors count only the kept train images", async () => {
  const dir = await imageFolder([0, 3, 0]);
  const config = await configIn(dir, yaml(dir, "skip"));
  const lines: string[] = [];
  const data = await openRunData(config, { log: () => {}, warn: (l) => lines.push(l), splits: ["train"] });
  try {
    assert.deepEqual(
      data.info.classCounts,
      [4, 1, 4],
      "priors from the kept labels, not the dataset's [4, 4, 4]",
    );
    assert.equal(data.splits.train!.count, 9);
    assert.deepEqual(Array.from(data.splits.train!.labels), [0, 0, 0, 0, 1, 2, 2, 2, 2]);
    assert.ok(lines.includes("class 1 (eosinophil): 3 of 4 train images skipped"), lines.join("\n"));
    const fileLines = lines.filter((l) => l.startsWith("train: skipped bad image "));
    assert.equal(fileLines.length, 3, lines.join("\n"));
    assert.ok(fileLines.every((l) => l.includes("truncated")), fileLines.join("\n"));
  } finally {
    data.close();
  }
  // Without the train split opened, the priors are the dataset's labels.
  const unopened = await openRunData(config, { log: () => {}, statsFromTrain: false });
  assert.deepEqual(unopened.info.classCounts, [4, 4, 4]);
  unopened.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("bad images: skip that empties a train class is a DataError naming the class", async () => {
  const dir = await imageFolder([0, 0, 4]);
  const config = await configIn(dir, yaml(dir, "skip"));
  const lines: string[] = [];
  await assert.rejects(
    openRunData(config, { log: () => {}, warn: (l) => lines.push(l), splits: ["train"] }),
    (e: unknown) => {
      assert.ok(e instanceof DataError, String(e));
      assert.match(e.message, /class 2 \(erythroblast\): all 4 skipped/);
      assert.match(e.message, /truncated/);
      return true;
    },
  );
  assert.ok(lines.includes("class 2 (erythroblast): 4 of 4 train images skipped"), lines.join("\n"));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("bad images: error names the cut file; predict's build refuses it too", async () => {
  const dir = await imageFolder([0, 1, 0]);
  const cutFile = join(dir, "data", "train", CLASSES[1], "0.jpg");
  const config = await configIn(dir, yaml(dir, "error"));
  await assert.rejects(openRunData(config, { log: () => {}, splits: ["train"] }), (e: unknown) => {
    assert.ok(e instanceof NativeError, String(e));
    assert.equal(e.code, "IO");
    assert.ok(e.message.includes(cutFile) && e.message.includes("truncated"), e.message);
    return true;
  });
  // `predict` builds its Images with onBadImage "error" (ts/pipeline/commands.ts).
  await assert.rejects(
    Images.build({ files: [cutFile], height: 32, width: 32, onBadImage: "error" }),
    (e: unknown) => e instanceof NativeError && e.code === "IO" && e.message.includes(cutFile),
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("bad images: data.maxPixels reaches the decoder and defaults to DEFAULT_MAX_PIXELS", async () => {
  const raw = RawConfigSchema.parse({ data: { loader: { name: "imagefolder", root: "x" } } });
  assert.equal(raw.data.maxPixels, DEFAULT_MAX_PIXELS, "config default = the native wrapper's default");
  const dir = await imageFolder([0, 0, 0]);
  const config = await configIn(dir, yaml(dir, "error", "  maxPixels: 1000\n"));
  await assert.rejects(openRunData(config, { log: () => {}, splits: ["train"] }), (e: unknown) => {
    assert.ok(e instanceof NativeError && e.code === "IO", String(e));
    assert.match(e.message, /pixels, over the limit of 1000 /);
    return true;
  });
  await assert.rejects(
    Images.build({ files: ["/x.png"], height: 8, width: 8, maxPixels: 0 }),
    (e: unknown) => e instanceof NativeError && e.code === "INVALID_ARG",
  );
  await Deno.remove(dir, { recursive: true });
});
