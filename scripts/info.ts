/** `deno task info`: what the native library found (torch, threads, oneDNN, CUDA, paths, ABI). */
import { nativeInfo } from "../ts/mod.ts";

const info = nativeInfo();
const rows: [string, string][] = [
  ["torch", String(info.torch)],
  ["threads", String(info.threads)],
  ["oneDNN", String(info.mkldnn)],
  [
    "CUDA devices",
    info.cuda_devices.length
      ? info.cuda_devices.map((d) => JSON.stringify(d)).join(", ")
      : `none${info.cuda_error ? ` (${info.cuda_error})` : ""}`,
  ],
  ["library", String(info.library_path)],
  ["ABI version", String(info.abi)],
];
for (const [k, v] of rows) console.log(`${k.padEnd(13)} ${v}`);
