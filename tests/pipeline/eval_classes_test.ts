import assert from "node:assert/strict";
import { checkClassNames } from "../../ts/pipeline/commands.ts";
import { DataError } from "../../ts/pipeline/errors.ts";

Deno.test("eval: class names must match the checkpoint's inference.json unless allowed", () => {
  const warned: string[] = [];
  const warn = (l: string): void => void warned.push(l);
  checkClassNames(["a", "b"], ["a", "b"], "best.safetensors", false, warn);
  assert.deepEqual(warned, [], "same names: nothing said");
  assert.throws(
    () => checkClassNames(["basophil", "eosinophil"], ["cat", "dog"], "best.safetensors", false, warn),
    (e) =>
      e instanceof DataError && /class 0: "basophil" in the checkpoint, "cat" in the data/.test(e.message) &&
      /--allow-class-mismatch/.test(e.message),
  );
  assert.throws(
    () => checkClassNames(["a", "b"], ["b", "a"], "x", false, warn),
    /class 0: "a" in the checkpoint, "b" in the data; class 1/,
    "the same names in another order are another mapping",
  );
  checkClassNames(["a", "b"], ["a", "c"], "x", true, warn);
  assert.equal(warned.length, 1);
  assert.match(warned[0], /class 1: "b" in the checkpoint, "c" in the data; scoring anyway/);
  assert.throws(
    () => checkClassNames(["a", "b"], ["a", "b", "c"], "x", true, warn),
    /trained on 2 classes \(a, b\); the data has 3/,
    "another class count is refused even when allowed",
  );
});
