/**
 * Weights files are safetensors only: they hold tensors and nothing that runs. A PyTorch pickle
 * (`torch.save`, a zip or a raw pickle stream) could execute code when loaded, so it is refused
 * before the native loader sees it, with the one-line conversion.
 */
import { DataError } from "./errors.ts";

/** What the first bytes of a file say it is. */
export function weightsKind(head: Uint8Array): "safetensors" | "pytorch-zip" | "pickle" | "unknown" {
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) {
    return "pytorch-zip";
  }
  if (head.length >= 2 && head[0] === 0x80 && head[1] >= 2 && head[1] <= 5) return "pickle";
  // safetensors: an 8-byte little-endian header length, then the JSON header
  if (head.length >= 9 && head[8] === 0x7b) return "safetensors";
  return "unknown";
}

/** Refuses a weights file that is not safetensors, saying how to convert a PyTorch checkpoint. */
export async function checkWeightsFile(path: string): Promise<void> {
  let head: Uint8Array;
  try {
    const f = await Deno.open(path);
    try {
      head = new Uint8Array(16);
      const n = (await f.read(head)) ?? 0;
      head = head.subarray(0, n);
    } finally {
      f.close();
    }
  } catch (err) {
    throw new DataError(`weights ${path}: cannot read the file (${(err as Error).message})`, { cause: err });
  }
  const kind = weightsKind(head);
  if (kind === "safetensors") return;
  const what = kind === "unknown" ? "is not a safetensors file" : "is a PyTorch pickle (torch.save)";
  throw new DataError(
    `weights ${path} ${what}; checkpoints load only as safetensors, which cannot run code. Convert a PyTorch ` +
      `state_dict with: python -c "import torch, safetensors.torch as st; ` +
      `st.save_file(torch.load('${path}', weights_only=True), 'model.safetensors')"`,
  );
}
