import assert from "node:assert/strict";
import { z } from "zod";
import { BUILTIN_PLUGINS } from "../../ts/plugins/builtins.ts";
import { PLUGIN_STAGES } from "../../ts/pipeline/types.ts";

const REQUIRED: Record<string, Record<string, unknown>> = {
  imagefolder: { root: "x" },
  csv: { manifest: "x.csv" },
  idx: { dir: "x" },
  "ts-function": { module: "x.ts" },
};

Deno.test("builtins: every stage has its plugins, keyed by their own name", () => {
  assert.deepEqual(Object.keys(BUILTIN_PLUGINS).sort(), [...PLUGIN_STAGES].sort());
  const names = Object.fromEntries(PLUGIN_STAGES.map((s) => [s, Object.keys(BUILTIN_PLUGINS[s]).sort()]));
  assert.deepEqual(names, {
    load: ["csv", "idx", "imagefolder", "synthetic"],
    augment: ["standard", "ts-function"],
    sample: ["effective-number", "inverse-frequency", "progressive", "shuffle", "sqrt-inverse"],
    loss: ["class-balanced-focal", "cross-entropy", "focal", "ldam-drw", "logit-adjusted", "ordinal"],
    stage: ["anti-curriculum", "auto-curriculum", "curriculum", "none"],
    evaluate: ["classification"],
  });
  for (const s of PLUGIN_STAGES) {
    for (const [name, p] of Object.entries(BUILTIN_PLUGINS[s])) {
      assert.equal(p.name, name);
      assert.equal(typeof p.create, "function", name);
    }
  }
});

Deno.test("builtins: schemas are strict, have defaults, and build the registry's discriminated union", () => {
  for (const s of PLUGIN_STAGES) {
    const mods = Object.values(BUILTIN_PLUGINS[s]);
    const options = mods.map((p) => p.configSchema.extend({ name: z.literal(p.name) }));
    const union = z.discriminatedUnion("name", options as unknown as [z.ZodObject, ...z.ZodObject[]]);
    for (const p of mods) {
      const input = { name: p.name, ...(REQUIRED[p.name] ?? {}) };
      const r = union.safeParse(input);
      assert.ok(r.success, `${s}/${p.name}: ${r.success ? "" : r.error.message}`);
      const bad = union.safeParse({ ...input, surelyNotAnOption: 1 });
      assert.equal(bad.success, false, `${s}/${p.name} accepts unknown keys`);
    }
  }
});
