import assert from "node:assert/strict";
import { join } from "node:path";
import { createRng } from "../../ts/pipeline/rng.ts";
import { datasetMeanStd } from "../../ts/pipeline/dataset-stats.ts";
import { plugin as standard, type StandardAugmenter } from "../../ts/plugins/augment/standard.ts";
import { plugin as tsFunction } from "../../ts/plugins/augment/ts-function.ts";

const ctx = { configDir: ".", seed: 0, epochs: 10, log: (): void => {} };
const make = (cfg: Record<string, unknown>): StandardAugmenter =>
  standard.create(standard.configSchema.parse(cfg), ctx) as StandardAugmenter;

Deno.test("augment standard: config -> ops (table)", () => {
  const rows: [cfg: Record<string, unknown>, train: unknown[], evalOps: unknown[], msg: string][] = [
    [{}, [{ op: "hflip", p: 0.5 }], [], "defaults: hflip 0.5 only"],
    [{ hflip: 0 }, [], [], "nothing"],
    [
      { hflip: 0.5, vflip: 0.25, rot90: 0.75, jitter: {}, normalize: { mean: [0.5], std: [0.25] } },
      [
        { op: "hflip", p: 0.5 },
        { op: "vflip", p: 0.25 },
        { op: "rot90", p: 0.75 },
        { op: "jitter", brightness: 0.2, contrast: 0.2 },
        { op: "normalize", mean: [0.5], std: [0.25] },
      ],
      [{ op: "normalize", mean: [0.5], std: [0.25] }],
      "every flip, default jitter, fixed normalize",
    ],
    [
      { hflip: 0, randomResizedCrop: { scale: [0.5, 1] }, jitter: { brightness: 0.1, contrast: 0 } },
      [
        { op: "random_resized_crop", scale: [0.5, 1], ratio: [3 / 4, 4 / 3] },
        { op: "jitter", brightness: 0.1, contrast: 0 },
      ],
      [],
      "crop first, default ratio",
    ],
    [{ hflip: 0, jitter: { brightness: 0, contrast: 0 } }, [], [], "zero jitter is left out"],
  ];
  for (const [cfg, train, ev, msg] of rows) {
    const a = make(cfg);
    assert.deepEqual(a.trainOps, train, msg);
    assert.deepEqual(a.evalOps, ev, msg);
    assert.equal(a.transformU8, undefined, msg);
  }
});

Deno.test("augment standard: bad configs", () => {
  assert.throws(() => standard.configSchema.parse({ hflip: 1.5 }));
  assert.throws(() => standard.configSchema.parse({ flip: 0.5 }), /flip/);
  assert.throws(() => make({ randomResizedCrop: { scale: [1, 0.5] } }), /\[low, high\]/);
  assert.throws(
    () => make({ normalize: { mean: [0.5, 0.5], std: [0.2] } }),
    /mean has 2 values but std has 1/,
  );
});

Deno.test('augment standard: normalize "dataset" waits for setDatasetStats', () => {
  const a = make({ normalize: "dataset" });
  assert.equal(a.needsDatasetStats, true);
  assert.throws(() => a.trainOps, /setDatasetStats/);
  // two 1x2x1x2 images: channel 0 = 0,255,0,255 ; channel 1 = 51 everywhere
  const data = Uint8Array.from([0, 255, 51, 51, 0, 255, 51, 51]);
  const { mean, std } = datasetMeanStd(data, [2, 2, 1, 2]);
  assert.deepEqual(mean, [0.5, 0.2]);
  assert.deepEqual(std, [0.5, 1]);
  a.setDatasetStats(mean, std);
  assert.equal(a.needsDatasetStats, false);
  assert.deepEqual(a.evalOps, [{ op: "normalize", mean: [0.5, 0.2], std: [0.5, 1] }]);
  assert.deepEqual(a.trainOps.at(-1), { op: "normalize", mean: [0.5, 0.2], std: [0.5, 1] });
});

Deno.test("augment ts-function: imports the module and calls transform; native ops as standard", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      join(tmp, "aug.ts"),
      `export function transform(batch: Uint8Array, shape: [number, number, number, number], rng: { int(n: number): number }): void {
  const [n, c, h, w] = shape;
  for (let i = 0; i < n * c * h * w; i++) batch[i] = 255 - batch[i];
  batch[0] = rng.int(7);
}
`,
    );
    const cfg = tsFunction.configSchema.parse({ module: "aug.ts", hflip: 0, vflip: 1 });
    const a = (await tsFunction.create(cfg, { ...ctx, configDir: tmp })) as StandardAugmenter;
    assert.deepEqual(a.trainOps, [{ op: "vflip", p: 1 }]);
    assert.ok(a.transformU8);
    const batch = Uint8Array.from([10, 20, 30, 40]);
    a.transformU8(batch, [1, 1, 2, 2], createRng(1));
    assert.deepEqual(Array.from(batch.subarray(1)), [235, 225, 215]);
    assert.equal(batch[0], createRng(1).int(7));

    await Deno.writeTextFile(join(tmp, "bad.ts"), "export const x = 1;\n");
    await assert.rejects(
      Promise.resolve(
        tsFunction.create(tsFunction.configSchema.parse({ module: "bad.ts" }), { ...ctx, configDir: tmp }),
      ),
      /bad.ts must export a function "transform\(batch, shape, rng\)"; it exports x/,
    );
    await assert.rejects(
      Promise.resolve(
        tsFunction.create(tsFunction.configSchema.parse({ module: "none.ts" }), { ...ctx, configDir: tmp }),
      ),
      /cannot import .*none.ts/,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
