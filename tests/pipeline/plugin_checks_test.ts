import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { PluginError } from "../../ts/pipeline/errors.ts";
import { checkLossResult, checkOrder, pluginLabel } from "../../ts/pipeline/plugin-checks.ts";
import { runPipeline } from "../../ts/pipeline/runner.ts";
import { configIn, ROOT, syntheticYaml } from "./helpers.ts";

Deno.test("plugin checks: a sampler's order and a loss's result are validated, naming the plugin (table)", () => {
  const label = pluginLabel("sampler", "/home/me/my-sampler.ts");
  assert.equal(label, "sampler plugin /home/me/my-sampler.ts");
  assert.equal(pluginLabel("loss", "focal"), 'loss plugin "focal"');
  const bad: [string, unknown, RegExp][] = [
    ["empty", new Int32Array(0), /drew no training images for epoch 3/],
    ["plain Array", [1, 2, 3], /must return an Int32Array .* got a plain Array/],
    ["out of range", Int32Array.from([0, 1, 10]), /index 10 at position 2; the training split has 10 images/],
    ["negative", Int32Array.from([-1]), /index -1 at position 0/],
  ];
  for (const [msg, order, re] of bad) {
    assert.throws(
      () => checkOrder(order, 10, label, 2),
      (e) =>
        e instanceof PluginError && re.test(e.message) &&
        e.message.startsWith(label),
      msg,
    );
  }
  assert.deepEqual(checkOrder(Int32Array.from([0, 9]), 10, label, 0), Int32Array.from([0, 9]));
  const loss = pluginLabel("loss", "./poly.ts");
  assert.throws(
    () => checkLossResult({ loss: 1, grad: new Float32Array(5) }, 2, 3, loss),
    /5 gradient values for a batch of 2 rows × 3 classes \(6\)/,
  );
  assert.throws(() => checkLossResult({ loss: 1, grad: [0, 0] }, 1, 2, loss), /grad as a Float32Array/);
  assert.throws(
    () => checkLossResult({ grad: new Float32Array(2) }, 1, 2, loss),
    /compute\(\) must return \{ loss/,
  );
  assert.throws(
    () => checkLossResult({ loss: 1, grad: Float32Array.from([0, Number.NaN]) }, 1, 2, loss),
    /non-finite gradient \(NaN\) at row 0, class 1/,
  );
});

/** A user sampler file returning `body` from sample(). */
function samplerFile(dir: string, body: string): string {
  const file = join(dir, "bad-sampler.ts");
  const types = pathToFileURL(join(ROOT, "ts", "pipeline", "types.ts")).href;
  const zod = "zod";
  Deno.writeTextFileSync(
    file,
    `import { z } from "${zod}";
import type { PluginModule, Sampler } from "${types}";
export const plugin: PluginModule<z.ZodObject, Sampler> = {
  name: "bad",
  configSchema: z.object({}).strict(),
  create: () => ({
    sample: (labels) => ${body},
    expectedClassShare: (_l, _a, n) => new Array(n).fill(1 / n),
  }),
};
`,
  );
  return file;
}

Deno.test("plugin checks: a user sampler returning nothing or a plain Array stops the run naming its file", async () => {
  for (
    const [body, re] of [["new Int32Array(0)", /drew no training images/], ["[0, 1, 2]", /got a plain Array/]]
  ) {
    const dir = await Deno.makeTempDir();
    try {
      const file = samplerFile(dir, body as string);
      const config = await configIn(
        dir,
        syntheticYaml({ perClass: 20, valPerClass: 2, epochs: 1 }) + `sampler:\n  name: ${file}\n`,
      );
      await assert.rejects(
        () => runPipeline(config, { out: join(dir, "runs"), console: false }),
        (e) => e instanceof PluginError && (re as RegExp).test(e.message) && e.message.includes(file),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});
