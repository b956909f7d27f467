/**
 * Helpers of the pipeline tests: temp configs on the synthetic loader, safetensors comparison,
 * a tiny PNG writer, and running the CLI as a subprocess.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadConfig, type ResolvedConfig } from "../../ts/pipeline/config.ts";

export const ROOT: string = fileURLToPath(new URL("../../", import.meta.url)).replace(/\/$/, "");

/** The shared data folder: `../shared` next to the project root (as in CI's clone), or $HN_SHARED. */
export const SHARED: string = Deno.env.get("HN_SHARED") ?? join(ROOT, "..", "shared");

/** A synthetic-loader config (4 classes, 32 px) with `extra` YAML appended, written into `dir`. */
export function syntheticYaml(
  opts: { perClass?: number; valPerClass?: number; epochs?: number; hflip?: number; extra?: string } = {},
): string {
  return `name: synth
seed: 7
data:
  loader:
    name: synthetic
    numClasses: 4
    size: 32
    perClass: ${opts.perClass ?? 200}
    valPerClass: ${opts.valPerClass ?? 30}
    testPerClass: 5
  imageSize: 32
  channels: 3
  cacheDir: ${join(ROOT, ".cache", "test-images")}
augment:
  name: standard
  hflip: ${opts.hflip ?? 0}
train:
  epochs: ${opts.epochs ?? 3}
  batchSize: 32
  threads: 2
  optimizer:
    lr: 0.001
${opts.extra ?? ""}`;
}

/** Writes `yaml` to `<dir>/config.yaml` and loads it with `overrides`. */
export async function configIn(dir: string, yaml: string, overrides: string[] = []): Promise<ResolvedConfig> {
  const file = join(dir, "config.yaml");
  await Deno.writeTextFile(file, yaml);
  return await loadConfig(file, overrides);
}

/** Tensors of a safetensors file (F32 only) by name. */
export function readSafetensors(bytes: Uint8Array): Map<string, Float32Array> {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<
    string,
    { dtype: string; data_offsets: [number, number] }
  >;
  const base = 8 + n;
  const out = new Map<string, Float32Array>();
  for (const [name, t] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const [a, b] = t.data_offsets;
    const copy = bytes.slice(base + a, base + b);
    out.set(name, new Float32Array(copy.buffer, 0, (b - a) / 4));
  }
  return out;
}

/** Largest absolute difference between two safetensors files' tensors (Infinity when names differ). */
export async function maxAbsDiff(a: string, b: string): Promise<number> {
  const ta = readSafetensors(await Deno.readFile(a));
  const tb = readSafetensors(await Deno.readFile(b));
  if (ta.size !== tb.size) return Infinity;
  let m = 0;
  for (const [name, x] of ta) {
    const y = tb.get(name);
    if (!y || y.length !== x.length) return Infinity;
    for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  }
  return m;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** An RGB (or gray) PNG of planar u8 pixels `[c, h, w]`. */
export async function encodePng(chw: Uint8Array, c: 1 | 3, h: number, w: number): Promise<Uint8Array> {
  const raw = new Uint8Array(h * (1 + w * c));
  for (let y = 0; y < h; y++) {
    raw[y * (1 + w * c)] = 0;
    for (let x = 0; x < w; x++) {
      for (let ch = 0; ch < c; ch++) raw[y * (1 + w * c) + 1 + x * c + ch] = chw[ch * h * w + y * w + x];
    }
  }
  const z = new Uint8Array(
    await new Response(new Blob([raw]).stream().pipeThrough(new CompressionStream("deflate"))).arrayBuffer(),
  );
  const chunk = (type: string, data: Uint8Array): Uint8Array => {
    const out = new Uint8Array(12 + data.length);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, data.length);
    out.set(new TextEncoder().encode(type), 4);
    out.set(data, 8);
    dv.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
    return out;
  };
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, w);
  dv.setUint32(4, h);
  ihdr.set([8, c === 3 ? 2 : 0, 0, 0, 0], 8);
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", z),
    chunk("IEND", new Uint8Array()),
  ];
  const total = parts.reduce((s, p) => s + p.length, 0);
  const png = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    png.set(p, off);
    off += p.length;
  }
  return png;
}

/** Runs `deno run -A ts/cli.ts ...args` in the repo root; returns code and output. */
export async function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "ts/cli.ts"), ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}
