/** `deno task info` (scripts/info.ts) run for real: which libtorch, from where, why, and CUDA. */
import assert from "node:assert/strict";
import { hasNvidiaDriver } from "../../scripts/lib/libtorch.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

Deno.test({
  name: "info: names the libtorch folder, says CPU-only view here, and that auto picks the CPU",
  ignore: hasNvidiaDriver(),
  async fn(): Promise<void> {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${ROOT}scripts/info.ts`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const row = (label: string): string => {
      const line = text.split("\n").find((l) => l.startsWith(label));
      assert.ok(line, `a "${label}" row in:\n${text}`);
      return line.slice(label.length).trim();
    };
    assert.match(row("libtorch "), /native\/\.libtorch \(torch 2\.11\./, "the view folder and version");
    assert.match(row("  kind"), /CPU-only view of a CUDA build/);
    assert.match(row("  from"), /torch\/lib, found via /, "the folder the view was made from, and how");
    assert.match(row("  why"), /no NVIDIA driver/);
    assert.match(row("NVIDIA driver"), /^none/);
    assert.match(row("libtorch CUDA"), /^not usable: /);
    assert.equal(row("device auto"), "cpu");
  },
});
