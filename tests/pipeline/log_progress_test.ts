import assert from "node:assert/strict";
import { formatLine } from "../../ts/pipeline/log.ts";
import { createProgress } from "../../ts/pipeline/progress.ts";

Deno.test("log: lines have the seed's format", () => {
  const d = new Date(2024, 9, 31, 11, 28, 41, 157);
  assert.equal(
    formatLine("Accuracy: 65.58%", "INFO", d),
    "2024-10-31 11:28:41,157 - CurriculumTrainer - INFO - Accuracy: 65.58%",
  );
});

Deno.test("progress: without a TTY, one plain line per ~10% of the epoch", () => {
  const out: string[] = [];
  let t = 0;
  const p = createProgress({ tty: false, write: (s) => out.push(s), now: () => t });
  p.start(1, 3, 100, 3200);
  for (let s = 1; s <= 100; s++) {
    t += 10;
    p.update(s, s * 32, 0.5);
  }
  p.end();
  assert.equal(out.length, 10);
  assert.match(out[9], /^epoch 1\/3 100% 100\/100 3200\.0 img\/s loss 0\.5000 ETA 0:00\n$/);
});

Deno.test("progress: on a TTY the bar is redrawn in place", () => {
  const out: string[] = [];
  let t = 0;
  const p = createProgress({ tty: true, write: (s) => out.push(s), now: () => t });
  p.start(2, 3, 4, 128);
  for (let s = 1; s <= 4; s++) {
    t += 1000;
    p.update(s, s * 32, 1);
  }
  p.end();
  assert.ok(out.slice(0, -1).every((l) => l.startsWith("\r\x1b[2K") && !l.includes("\n")));
  assert.match(out[3], /\[#{30}\] 4\/4/);
});
