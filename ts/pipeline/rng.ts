/**
 * Seedable PRNG for the pipeline: xoshiro128** on four 32-bit words, seeded through splitmix32.
 * The state is a plain `number[]` of four unsigned 32-bit integers, so it survives a JSON
 * checkpoint and a resume reproduces the same stream.
 */
import type { Rng } from "./types.ts";

const TWO_POW_32 = 4294967296;

function splitmix32(x: number): [next: number, out: number] {
  const next = (x + 0x9e3779b9) >>> 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return [next, (z ^ (z >>> 16)) >>> 0];
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** Mixes a 32-bit value (murmur3 finalizer). */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Folds a seed (any finite number, or a bigint) into 32 bits: low and high words mixed. */
function seedWord(seed: number | bigint): number {
  if (typeof seed === "bigint") {
    const v = BigInt.asUintN(64, seed);
    return (Number(v & 0xffffffffn) ^ fmix32(Number(v >> 32n))) >>> 0;
  }
  if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite number; got ${seed}`);
  const lo = seed >>> 0;
  const hi = Math.floor(seed / TWO_POW_32) >>> 0;
  return (lo ^ fmix32(hi)) >>> 0;
}

class Xoshiro128 implements Rng {
  private s: Uint32Array = new Uint32Array(4);

  constructor(seed: number | bigint) {
    let x = seedWord(seed);
    for (let i = 0; i < 4; i++) {
      const [nx, out] = splitmix32(x);
      x = nx;
      this.s[i] = out;
    }
    if ((this.s[0] | this.s[1] | this.s[2] | this.s[3]) === 0) this.s[0] = 1;
  }

  /** Next unsigned 32-bit output. */
  u32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  next(): number {
    // 53 random bits: 27 from one word, 26 from the next
    const a = this.u32() >>> 5;
    const b = this.u32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > TWO_POW_32) {
      throw new RangeError(`Rng.int(n) needs an integer n in [1, 2^32]; got ${n}`);
    }
    if (n === 1) return 0;
    // rejection sampling: unbiased
    const limit = TWO_POW_32 - (TWO_POW_32 % n);
    for (;;) {
      const u = this.u32();
      if (u < limit) return u % n;
    }
  }

  state(): number[] {
    return Array.from(this.s);
  }

  setState(st: number[]): void {
    if (
      !Array.isArray(st) || st.length !== 4 ||
      st.some((v) => !Number.isInteger(v) || v < 0 || v >= TWO_POW_32)
    ) {
      throw new RangeError(`Rng state must be 4 unsigned 32-bit integers; got ${JSON.stringify(st)}`);
    }
    if (st.every((v) => v === 0)) throw new RangeError("Rng state must not be all zeros");
    this.s.set(st);
  }
}

/** A xoshiro128** generator seeded from `seed` (a number or bigint; equal seeds give equal streams). */
export function createRng(seed: number | bigint): Rng & { u32(): number } {
  return new Xoshiro128(seed);
}

/**
 * A 32-bit seed derived from `seed` and any parts (strings, numbers), e.g.
 * `deriveSeed(runSeed, "sampler")` or `deriveSeed(splitSeed, "class", 3)`. Different parts give
 * independent streams; the same parts always the same seed.
 */
export function deriveSeed(seed: number | bigint, ...parts: (string | number | bigint)[]): number {
  let h = fmix32(seedWord(seed) ^ 0x2545f491);
  const mix = (word: number): void => {
    let k = Math.imul(word >>> 0, 0xcc9e2d51);
    k = rotl(k >>> 0, 15);
    k = Math.imul(k, 0x1b873593);
    h ^= k >>> 0;
    h = rotl(h >>> 0, 13);
    h = (Math.imul(h, 5) + 0xe6546b64) >>> 0;
  };
  for (const part of parts) {
    if (typeof part === "string") {
      mix(0x5354 ^ part.length); // tag: string
      for (let i = 0; i < part.length; i++) mix(part.charCodeAt(i));
    } else {
      mix(0x4e55); // tag: number
      mix(seedWord(part));
    }
  }
  return fmix32(h ^ parts.length);
}
