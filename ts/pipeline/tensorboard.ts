/**
 * TensorBoard event files, written by hand: the protobuf messages TensorBoard reads (a subset of
 * `tensorboard/compat/proto/event.proto` and `summary.proto`) and the TFRecord framing around
 * them.
 *
 * - `Event`: wall_time = 1 (double), step = 2 (int64), file_version = 3 (string, "brain.Event:2"
 *   in a file's first event), summary = 5 (`Summary`), session_log = 7 (`SessionLog`).
 * - `Summary`: value = 1 (repeated `Value`); `Value`: tag = 1 (string), simple_value = 2 (float),
 *   image = 4 (`Image`: height = 1, width = 2, colorspace = 3, encoded_image_string = 4).
 * - `SessionLog`: status = 1 (enum; START = 1). A START at step s tells the reader that the
 *   events of step s and later from before it are void (a run resumed from an older checkpoint).
 * - A record: length (uint64 LE), masked CRC-32C of those 8 bytes (uint32 LE), the data, masked
 *   CRC-32C of the data (uint32 LE); mask(crc) = ((crc >>> 15) | (crc << 17)) + 0xa282ead8.
 *
 * `EventWriter` keeps the records of a file in memory and appends them on `flush()`: no file
 * handle stays open between flushes, and a flushed file is always whole records.
 */
import { join } from "node:path";

// ---- CRC-32C ------------------------------------------------------------------------------------

const CRC32C_TABLE: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32C (Castagnoli) of `bytes`. */
export function crc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC32C_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** The TFRecord mask of a CRC-32C. */
export function maskCrc(crc: number): number {
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One TFRecord around `data`. */
export function tfRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(16 + data.length);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskCrc(crc32c(out.subarray(0, 8))), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskCrc(crc32c(data)), true);
  return out;
}

// ---- protobuf -------------------------------------------------------------------------------------

const VARINT = 0, FIXED64 = 1, LEN = 2, FIXED32 = 5;
const utf8 = new TextEncoder();

/** A protobuf message being written, field by field (proto3 wire format). */
export class ProtoWriter {
  #buf = new Uint8Array(64);
  #len = 0;

  #reserve(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const bigger = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + n));
    bigger.set(this.#buf.subarray(0, this.#len));
    this.#buf = bigger;
  }

  #varint(v: number): void {
    if (!(Number.isSafeInteger(v) && v >= 0)) throw new RangeError(`varint: ${v} is not a safe integer ≥ 0`);
    this.#reserve(10);
    while (v >= 0x80) {
      this.#buf[this.#len++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.#buf[this.#len++] = v;
  }

  #tag(field: number, wire: number): void {
    this.#varint(field * 8 + wire);
  }

  /** int32/int64/enum (non-negative values: all this file writes). */
  uint(field: number, v: number): this {
    this.#tag(field, VARINT);
    this.#varint(v);
    return this;
  }

  double(field: number, v: number): this {
    this.#tag(field, FIXED64);
    this.#reserve(8);
    new DataView(this.#buf.buffer).setFloat64(this.#len, v, true);
    this.#len += 8;
    return this;
  }

  float(field: number, v: number): this {
    this.#tag(field, FIXED32);
    this.#reserve(4);
    new DataView(this.#buf.buffer).setFloat32(this.#len, v, true);
    this.#len += 4;
    return this;
  }

  /** bytes, or an embedded message's encoding. */
  bytes(field: number, b: Uint8Array): this {
    this.#tag(field, LEN);
    this.#varint(b.length);
    this.#reserve(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, utf8.encode(s));
  }

  finish(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}

/** A PNG (or other encoded image) for a `Summary.Image`; colorspace 1 gray, 3 RGB, 4 RGBA. */
export interface EncodedImage {
  width: number;
  height: number;
  colorspace: 1 | 2 | 3 | 4;
  encoded: Uint8Array;
}

/** One `Summary.Value`: a scalar or an image. */
export type SummaryValue = { tag: string; value: number } | { tag: string; image: EncodedImage };

/** What one `Event` holds besides its time and step (one of them). */
export type EventBody =
  | { fileVersion: string }
  | { summary: SummaryValue[] }
  | { sessionStart: true };

function encodeValue(v: SummaryValue): Uint8Array {
  const w = new ProtoWriter().string(1, v.tag);
  // simple_value sits in a oneof: 0 is written too (its presence is the value)
  if ("value" in v) return w.float(2, v.value).finish();
  const img = new ProtoWriter()
    .uint(1, v.image.height)
    .uint(2, v.image.width)
    .uint(3, v.image.colorspace)
    .bytes(4, v.image.encoded)
    .finish();
  return w.bytes(4, img).finish();
}

/** An `Event` message. */
export function encodeEvent(wallTime: number, step: number, body: EventBody): Uint8Array {
  const w = new ProtoWriter().double(1, wallTime).uint(2, step);
  if ("fileVersion" in body) w.string(3, body.fileVersion);
  else if ("summary" in body) {
    const summary = new ProtoWriter();
    for (const v of body.summary) summary.bytes(1, encodeValue(v));
    w.bytes(5, summary.finish());
  } else w.bytes(7, new ProtoWriter().uint(1, 1).finish());
  return w.finish();
}

// ---- the writer ----------------------------------------------------------------------------------

export const FILE_VERSION = "brain.Event:2";

function hostname(): string {
  try {
    return Deno.hostname().replace(/[^A-Za-z0-9._-]/g, "_") || "localhost";
  } catch {
    return "localhost"; // no --allow-sys
  }
}

/** Appends events to one new `events.out.tfevents.<unix seconds>.<hostname>` file in a folder. */
export class EventWriter {
  readonly path: string;
  #pending: Uint8Array[] = [];

  private constructor(path: string) {
    this.path = path;
  }

  /**
   * Starts a new event file in `dir` (created when missing) with its file_version event on disk.
   * A name taken in the same second gets a `.2`, `.3`, … suffix, so files sort in start order.
   */
  static async create(dir: string, now: Date = new Date()): Promise<EventWriter> {
    await Deno.mkdir(dir, { recursive: true });
    const base = join(dir, `events.out.tfevents.${Math.floor(now.getTime() / 1000)}.${hostname()}`);
    const first = tfRecord(encodeEvent(now.getTime() / 1000, 0, { fileVersion: FILE_VERSION }));
    for (let k = 1;; k++) {
      const path = k === 1 ? base : `${base}.${k}`;
      try {
        await Deno.writeFile(path, first, { createNew: true });
        return new EventWriter(path);
      } catch (err) {
        if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
      }
    }
  }

  /** Queues one event (written by the next `flush`). */
  add(step: number, body: EventBody, wallTime: number = Date.now() / 1000): void {
    this.#pending.push(tfRecord(encodeEvent(wallTime, step, body)));
  }

  /** Queues the scalars `tag → value` of one step as one event. */
  scalars(step: number, values: Record<string, number>): void {
    const summary = Object.entries(values).map(([tag, value]) => ({ tag, value }));
    if (summary.length > 0) this.add(step, { summary });
  }

  /** Appends the queued events to the file. */
  async flush(): Promise<void> {
    if (this.#pending.length === 0) return;
    const bytes = new Uint8Array(this.#pending.reduce((s, r) => s + r.length, 0));
    let offset = 0;
    for (const r of this.#pending) {
      bytes.set(r, offset);
      offset += r.length;
    }
    this.#pending = [];
    await Deno.writeFile(this.path, bytes, { append: true });
  }
}
