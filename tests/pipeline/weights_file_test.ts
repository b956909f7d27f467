import assert from "node:assert/strict";
import { join } from "node:path";
import { DataError } from "../../ts/pipeline/errors.ts";
import { TrainSession } from "../../ts/pipeline/session.ts";
import { checkWeightsFile, weightsKind } from "../../ts/pipeline/weights-file.ts";

Deno.test("weights files: a PyTorch pickle or any non-safetensors file is refused before loading, with the conversion", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cases: [string, Uint8Array, RegExp][] = [
      [
        "zip.pt",
        Uint8Array.from([0x50, 0x4b, 0x03, 0x04, 0, 0, 0, 0, 0, 0]),
        /is a PyTorch pickle \(torch\.save\)/,
      ],
      [
        "legacy.pth",
        Uint8Array.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20]),
        /is a PyTorch pickle/,
      ],
      ["text.safetensors", new TextEncoder().encode("hello world, not tensors"), /is not a safetensors file/],
    ];
    for (const [name, bytes, re] of cases) {
      const p = join(dir, name);
      await Deno.writeFile(p, bytes);
      await assert.rejects(
        () => checkWeightsFile(p),
        (e) => e instanceof DataError && re.test(e.message) && /st\.save_file/.test(e.message),
        name,
      );
      await assert.rejects(
        () => TrainSession.open({ device: "cpu", model: { numClasses: 2 }, trainer: null, weights: p }),
        DataError,
        `${name}: the session refuses it too`,
      );
    }
    assert.equal(weightsKind(Uint8Array.from([8, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d])), "safetensors");
    await assert.rejects(() => checkWeightsFile(join(dir, "missing.safetensors")), /cannot read the file/);
    // a real checkpoint passes
    const s = await TrainSession.open({ device: "cpu", model: { numClasses: 2, seed: 1 }, trainer: null });
    const real = join(dir, "real.safetensors");
    try {
      await s.model.save(real);
    } finally {
      s.close();
    }
    await checkWeightsFile(real);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
