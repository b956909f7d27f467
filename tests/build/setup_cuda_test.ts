/**
 * `deno task setup --cuda` and the libtorch view: the pure decision table of `chooseView` (no GPU,
 * no 3 GB download), and on a machine without a driver the real script refusing before it
 * installs or builds anything.
 */
import assert from "node:assert/strict";
import { chooseView, hasNvidiaDriver } from "../../scripts/lib/libtorch.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

Deno.test("chooseView: the view for each machine, with a reason per row", () => {
  const rows: [
    string,
    { driver: boolean; cudaBuild: boolean; cudaFlag: boolean },
    string,
    boolean,
    boolean,
  ][] = [
    // message, facts, view, installs CUDA wheels, refuses
    [
      "a CUDA build without a driver: the CPU-only view",
      { driver: false, cudaBuild: true, cudaFlag: false },
      "cpu-only",
      false,
      false,
    ],
    [
      "a CUDA build with a driver: the real libtorch",
      { driver: true, cudaBuild: true, cudaFlag: false },
      "full",
      false,
      false,
    ],
    ["a CPU build: linked as is", { driver: false, cudaBuild: false, cudaFlag: false }, "full", false, false],
    [
      "a CPU build with a driver: still as is (no CUDA to use)",
      { driver: true, cudaBuild: false, cudaFlag: false },
      "full",
      false,
      false,
    ],
    [
      "--cuda with a driver: CUDA wheels, then the real libtorch",
      { driver: true, cudaBuild: false, cudaFlag: true },
      "full",
      true,
      false,
    ],
    [
      "--cuda with a driver and a CUDA build: wheels (the venv may lack them), real libtorch",
      { driver: true, cudaBuild: true, cudaFlag: true },
      "full",
      true,
      false,
    ],
    [
      "--cuda without a driver: refused",
      { driver: false, cudaBuild: true, cudaFlag: true },
      "cpu-only",
      false,
      true,
    ],
    [
      "--cuda without a driver, CPU build: refused",
      { driver: false, cudaBuild: false, cudaFlag: true },
      "cpu-only",
      false,
      true,
    ],
  ];
  for (const [msg, facts, view, install, refuse] of rows) {
    const c = chooseView(facts);
    assert.equal(c.view, view, msg);
    assert.equal(c.installCudaWheels, install, msg);
    assert.equal(c.refuse !== null, refuse, msg);
    assert.ok(c.why.length > 0, msg);
  }
  assert.match(
    chooseView({ driver: false, cudaBuild: true, cudaFlag: true }).refuse!,
    /NVIDIA driver.*deno task setup/,
  );
});

Deno.test({
  name: "setup --cuda without a driver exits 1 with the reason, before installing or building",
  ignore: hasNvidiaDriver(),
  async fn(): Promise<void> {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${ROOT}scripts/setup.ts`, "--cuda"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 1, err);
    assert.match(err, /setup --cuda needs an NVIDIA driver and this machine has none/);
    assert.doesNotMatch(err, /installing|build-native/, "nothing was installed or built");
  },
});
