/**
 * On a machine without a GPU the built library must load and run with no CUDA library present:
 * ldd lists none and every dependency resolves, and a process with a bare environment (no
 * LD_LIBRARY_PATH) loads it and runs a forward pass.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url).pathname;
const LIB = `${ROOT}native/target/release/libhybridnet.so`;
const hasGpu = (() => {
  try {
    Deno.statSync("/proc/driver/nvidia/version");
    return true;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "ldd: libhybridnet needs no CUDA library and every dependency resolves",
  ignore: hasGpu,
  async fn(): Promise<void> {
    const out = await new Deno.Command("ldd", { args: [LIB], stdout: "piped" }).output();
    const text = new TextDecoder().decode(out.stdout);
    assert.ok(out.success, text);
    assert.doesNotMatch(text, /not found/, text);
    assert.doesNotMatch(
      text,
      /libcuda|libcudart|libcupti|libcudnn|libcublas|libnccl|libtorch_cuda|libc10_cuda/,
      text,
    );
    assert.match(text, /libtorch_cpu\.so/, "links the CPU libtorch");
  },
});

Deno.test({
  name: "a bare-environment process loads the library and runs a forward pass",
  ignore: hasGpu,
  async fn(): Promise<void> {
    const script = `import { createModel } from "${ROOT}ts/mod.ts";
using m = createModel({ numClasses: 3, seed: 1 });
const y = await m.forward(new Float32Array(2 * 3 * 32 * 32).fill(0.5), [2, 3, 32, 32]);
console.log(JSON.stringify({ n: y.length, finite: y.every(Number.isFinite) }));`;
    const file = await Deno.makeTempFile({ suffix: ".ts" });
    await Deno.writeTextFile(file, script);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `--config=${ROOT}deno.json`, file],
      clearEnv: true,
      env: {
        HOME: Deno.env.get("HOME") ?? "/root",
        PATH: "/usr/bin:/bin",
        ...(Deno.env.get("DENO_DIR") ? { DENO_DIR: Deno.env.get("DENO_DIR")! } : {}),
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    await Deno.remove(file);
    const err = new TextDecoder().decode(out.stderr);
    assert.ok(out.success, err);
    assert.deepEqual(JSON.parse(new TextDecoder().decode(out.stdout)), { n: 6, finite: true });
  },
});
