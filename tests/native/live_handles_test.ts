import assert from "node:assert/strict";
import { createModel, createTrainer, Images } from "../../ts/mod.ts";
import { liveHandles } from "../../ts/native/library.ts";

// Other test files of the same `deno test` process may hold handles of their own, so the
// in-process tests compare with the count at their start; the last one checks the absolute
// count in a fresh process.

const pixels = (n: number): Uint8Array => new Uint8Array(n * 3 * 8 * 8).map((_, i) => i % 251);

Deno.test("liveHandles: a model, its trainer and an image set count while open; close() (twice) brings the count back", () => {
  const base = liveHandles();
  const model = createModel({ numClasses: 4 });
  assert.equal(liveHandles(), base + 1, "the model");
  createTrainer(model, { optimizer: { kind: "adam", lr: 1e-3 } });
  assert.equal(liveHandles(), base + 2, "and its trainer");
  const images = Images.fromU8(pixels(2), [2, 3, 8, 8]);
  assert.equal(liveHandles(), base + 3, "and an image set");
  model.close();
  assert.equal(liveHandles(), base + 1, "the model's close() frees its trainer too");
  model.close();
  assert.equal(liveHandles(), base + 1, "a second close() frees nothing");
  images.close();
  images.close();
  assert.equal(liveHandles(), base, "every handle freed once");
});

Deno.test("liveHandles: an image set closed during a gather counts until the gather settles", async () => {
  const base = liveHandles();
  const images = Images.fromU8(pixels(4), [4, 3, 8, 8]);
  const pending = images.gather(new Int32Array([0, 1, 2, 3]), [], 1);
  images.close();
  assert.equal(liveHandles(), base + 1, "the free waits for the in-flight gather");
  await pending;
  assert.equal(liveHandles(), base, "freed once the gather settled");
});

Deno.test("liveHandles: a fresh process starts at 0, counts each handle and is back at 0 after close()", async () => {
  const lib = new URL("../../ts/native/library.ts", import.meta.url).href;
  const mod = new URL("../../ts/mod.ts", import.meta.url).href;
  const code = `
    import { liveHandles } from "${lib}";
    import { createModel, createTrainer } from "${mod}";
    const seen = [liveHandles()];
    const m = createModel({ numClasses: 3 });
    createTrainer(m, { optimizer: { kind: "sgd", lr: 0.1 } });
    seen.push(liveHandles());
    m.close();
    seen.push(liveHandles());
    console.log(JSON.stringify(seen));`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(out.stdout).trim()), [0, 2, 0]);
});
