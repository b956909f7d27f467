/**
 * The image cache is optional: a cache folder that cannot be made, or a cache file that cannot be
 * written, costs one warning and a decode in memory, never the run (issue 14, item 10).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { splitCacheKey } from "../../ts/pipeline/data.ts";
import { openRunData } from "../../ts/pipeline/run-data.ts";
import { configIn, SHARED } from "./helpers.ts";

const PBC = join(SHARED, "data", "pbc_blood8", "train");

/** `<tmp>/data/train/<class>/` with 3 real JPEGs for each of 2 classes. */
async function imageFolder(): Promise<{ dir: string; files: string[] }> {
  const dir = await Deno.makeTempDir({ prefix: "hn-cache-fallback-" });
  const files: string[] = [];
  for (const folder of ["0_basophil", "1_eosinophil"]) {
    const out = join(dir, "data", "train", folder);
    await Deno.mkdir(out, { recursive: true });
    const names = [...Deno.readDirSync(join(PBC, folder))].map((e) => e.name).filter((f) =>
      f.endsWith(".jpg")
    )
      .sort().slice(0, 3);
    for (const [i, n] of names.entries()) {
      await Deno.copyFile(join(PBC, folder, n), join(out, `${i}.jpg`));
      files.push(join(out, `${i}.jpg`));
    }
  }
  return { dir, files };
}

function yaml(dir: string, cacheDir: string): string {
  return `data:\n  loader:\n    name: imagefolder\n    root: ${join(dir, "data")}\n  imageSize: 16\n` +
    `  cacheDir: ${cacheDir}\ntrain:\n  epochs: 1\n  threads: 2\n`;
}

Deno.test("cache fallback: an unmakeable cache folder or an unwritable cache file warns once and decodes in memory", async () => {
  const { dir, files } = await imageFolder();
  try {
    // 1. the cache folder's parent is a regular file: mkdir fails
    await Deno.writeTextFile(join(dir, "blocker"), "x");
    // 2. the cache file's path is taken by a folder: the native write (temp + rename) fails
    const cache2 = join(dir, "cache2");
    const key = await splitCacheKey([...files].sort(), 16, 16, 3);
    await Deno.mkdir(join(cache2, `${key}.hnc`), { recursive: true });
    for (
      const [cacheDir, why] of [[join(dir, "blocker", "cache"), /Not a directory|not a directory/], [
        cache2,
        /.+/,
      ]]
    ) {
      const config = await configIn(dir, yaml(dir, cacheDir as string));
      const warnings: string[] = [];
      const data = await openRunData(config, {
        log: () => {},
        warn: (l) => warnings.push(l),
        splits: ["train"],
      });
      try {
        assert.equal(data.splits.train!.count, 6, "every image decoded");
        const cacheLines = warnings.filter((l) => l.includes("could not be written"));
        assert.equal(cacheLines.length, 1, warnings.join("\n"));
        assert.match(cacheLines[0], why as RegExp);
        assert.match(cacheLines[0], /decoded in memory and will be decoded again next run/);
        const px = await data.splits.train!.images.gatherU8(Int32Array.from([0]));
        assert.ok(px.some((v) => v > 0), "real pixels");
      } finally {
        data.close();
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
