import assert from "node:assert/strict";
import { createRng, deriveSeed } from "../../ts/pipeline/rng.ts";

Deno.test("rng: same seed, same stream; another seed, another stream", () => {
  const a = createRng(42), b = createRng(42), c = createRng(43);
  const xa = Array.from({ length: 8 }, () => a.next());
  const xb = Array.from({ length: 8 }, () => b.next());
  const xc = Array.from({ length: 8 }, () => c.next());
  assert.deepEqual(xa, xb);
  assert.notDeepEqual(xa, xc);
  for (const v of xa) assert.ok(v >= 0 && v < 1, `next() = ${v} outside [0,1)`);
});

Deno.test("rng: state round-trips through JSON and resumes the stream", () => {
  const a = createRng(7);
  for (let i = 0; i < 10; i++) a.next();
  const saved = JSON.parse(JSON.stringify(a.state()));
  const after = Array.from({ length: 5 }, () => a.int(1000));
  const b = createRng(0);
  b.setState(saved);
  assert.deepEqual(Array.from({ length: 5 }, () => b.int(1000)), after);
  assert.throws(() => b.setState([1, 2, 3]), /4 unsigned 32-bit integers/);
  assert.throws(() => b.setState([0, 0, 0, 0]), /all zeros/);
});

Deno.test("rng: int(n) is uniform enough and in range", () => {
  const r = createRng(1);
  const counts = new Array(7).fill(0);
  const draws = 70_000;
  for (let i = 0; i < draws; i++) counts[r.int(7)]++;
  for (const c of counts) assert.ok(Math.abs(c / draws - 1 / 7) < 0.01, `share ${c / draws}`);
  assert.throws(() => r.int(0), RangeError);
  assert.throws(() => r.int(2.5), RangeError);
});

Deno.test("deriveSeed: deterministic, sensitive to every part", () => {
  assert.equal(deriveSeed(1, "a", 2), deriveSeed(1, "a", 2));
  const seen = new Set([
    deriveSeed(1, "a", 2),
    deriveSeed(2, "a", 2),
    deriveSeed(1, "b", 2),
    deriveSeed(1, "a", 3),
    deriveSeed(1, "a"),
    deriveSeed(1, "a2"),
    deriveSeed(1),
  ]);
  assert.equal(seen.size, 7);
  const s = deriveSeed(123, "x");
  assert.ok(Number.isInteger(s) && s >= 0 && s < 2 ** 32);
});
