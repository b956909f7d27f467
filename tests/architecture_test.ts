import assert from "node:assert/strict";
import { cycles, functionsIn, importGraph, upwardImports } from "../scripts/structure.ts";

Deno.test("architecture: ts/ imports only downward (native → model → pipeline → plugins → cli)", async () => {
  const graph = await importGraph();
  assert.ok(graph.size > 40, `the graph should hold every module of ts/; got ${graph.size}`);
  assert.deepEqual(upwardImports(graph), []);
});

Deno.test("architecture: no import cycle among the modules of ts/", async () => {
  assert.deepEqual(cycles(await importGraph()), []);
});

Deno.test("architecture: the cycle finder and the layer rule see what they should", () => {
  const g = new Map([
    ["ts/native/a.ts", ["ts/native/b.ts"]],
    ["ts/native/b.ts", ["ts/native/a.ts", "ts/pipeline/types.ts"]],
    ["ts/pipeline/types.ts", []],
  ]);
  assert.deepEqual(cycles(g), [["ts/native/a.ts", "ts/native/b.ts"]]);
  assert.deepEqual(upwardImports(g), ["ts/native/b.ts -> ts/pipeline/types.ts"]);
});

Deno.test("architecture: no function in ts/pipeline is longer than 80 lines", () => {
  const fns = functionsIn("ts/pipeline");
  assert.ok(fns.length > 100, `expected the pipeline's functions; found ${fns.length}`);
  const long = fns.filter((f) => f.lines > 80).map((f) => `${f.file}:${f.line} ${f.name} (${f.lines} lines)`);
  assert.deepEqual(long, []);
});
