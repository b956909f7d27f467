/**
 * A checkpoint in the middle of an epoch (every `train.checkpointEverySteps` steps, and when
 * SIGINT/SIGTERM stops a run): what `last.json` needs so that a resumed run continues at the
 * next batch with the same data order and ends with the same weights as an uninterrupted run.
 *
 * The epoch is replayed from its start state — the sampler RNG and plugin states before the
 * epoch's plan and draw (both deterministic from there) — and the batches already stepped are
 * skipped; the train figures accumulated so far travel along (the native prediction counts, or
 * logits and targets as base64 for an evaluator that takes logits).
 * Dropout draws are seeded per step (runner.ts), so the skipped steps leave no RNG state behind.
 */
import type { SessionEpochState } from "./session.ts";
import type { PredictionCounts } from "./types.ts";

/** The `partial` field of last.json. */
export interface PartialEpoch {
  epoch: number;
  /** batches of the epoch already stepped */
  step: number;
  /** sampler RNG state at the epoch's start */
  rng: number[];
  /** plugin states at the epoch's start */
  plugins: Record<string, unknown>;
  /** the runner's running figures: images seen, loss sum, seconds so far, last LR */
  seen: number;
  /** images of the steps whose loss was read (absent in older checkpoints: every step's was) */
  readSeen?: number;
  lossSum: number;
  seconds: number;
  lr: number;
  /** the session's accumulator */
  acc: {
    /** the native prediction counts (absent in older checkpoints, and with an evaluator that takes logits) */
    counts?: PredictionCounts | null;
    logits: string;
    targets: string;
    lossSum: number;
    lossImages: number;
    steps: number;
  };
}

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromBase64(text: string): Uint8Array {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** The session accumulator as JSON-safe text. */
export function encodeAcc(a: SessionEpochState): PartialEpoch["acc"] {
  return {
    counts: a.counts,
    logits: toBase64(new Uint8Array(a.logits.buffer, a.logits.byteOffset, a.logits.byteLength)),
    targets: toBase64(new Uint8Array(a.targets.buffer, a.targets.byteOffset, a.targets.byteLength)),
    lossSum: a.lossSum,
    lossImages: a.lossImages,
    steps: a.steps,
  };
}

/** Back from `encodeAcc`. */
export function decodeAcc(a: PartialEpoch["acc"]): SessionEpochState {
  const l = fromBase64(a.logits), t = fromBase64(a.targets);
  return {
    counts: a.counts ?? null,
    logits: new Float32Array(l.buffer, l.byteOffset, l.byteLength / 4),
    targets: new Int32Array(t.buffer, t.byteOffset, t.byteLength / 4),
    lossSum: a.lossSum,
    lossImages: a.lossImages,
    steps: a.steps,
  };
}
