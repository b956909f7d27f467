/** Shared by the parity tests: the PyTorch peer's Python, raw float files, safetensors, errors. */
const ROOT = new URL("../../", import.meta.url).pathname;

/** The Python that runs the venv's torch (through the CPU stub on machines without a GPU). */
export async function peerPython(): Promise<string | null> {
  try {
    const ready = JSON.parse(await Deno.readTextFile(`${ROOT}native/.libtorch/READY`));
    return ready.python ?? null;
  } catch {
    return null;
  }
}

export async function readF32(path: string): Promise<Float32Array> {
  const b = await Deno.readFile(path);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4).slice();
}

/** Reads an all-F32 safetensors file into name -> data, in header order. */
export async function readSafetensors(path: string): Promise<Map<string, Float32Array>> {
  const b = await Deno.readFile(path);
  const n = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(b.subarray(8, 8 + n)));
  const entries = Object.entries(header).filter(([k]) => k !== "__metadata__") as [
    string,
    { data_offsets: [number, number] },
  ][];
  entries.sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0]);
  const out = new Map<string, Float32Array>();
  for (const [name, meta] of entries) {
    const [s, e] = meta.data_offsets;
    out.set(name, new Float32Array(b.slice(8 + n + s, 8 + n + e).buffer));
  }
  return out;
}

/** ‖a − b‖₂ / ‖b‖₂ (the error measure for gradients). */
export function relL2(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** max |a-b| / max |b|: the relative error the parity thresholds are stated in. */
export function relErr(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return den === 0 ? num : num / den;
}
