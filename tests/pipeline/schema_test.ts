import assert from "node:assert/strict";
import { configJsonSchema } from "../../ts/pipeline/config.ts";

const SCHEMA_FILE = new URL("../../configs/schema.json", import.meta.url);

Deno.test("schema: configs/schema.json is what `deno task schema` writes today", async () => {
  const onDisk = await Deno.readTextFile(SCHEMA_FILE);
  const want = JSON.stringify(configJsonSchema(), null, 2) + "\n";
  // the parsed comparison names the first differing key; the text one also catches formatting drift
  assert.deepEqual(
    JSON.parse(onDisk),
    JSON.parse(want),
    "configs/schema.json is stale: run `deno task schema`",
  );
  assert.equal(onDisk, want, "configs/schema.json differs in formatting: run `deno task schema`");
});
