/** `deno task test:native`: the Rust unit and parity tests (cargo test, release profile). */
import { prepareLibtorch, ROOT } from "./lib/libtorch.ts";

const torch = await prepareLibtorch();
const st = await new Deno.Command("cargo", {
  args: ["test", "--release", ...Deno.args],
  cwd: `${ROOT}/native`,
  env: { LIBTORCH: torch.view, LIBTORCH_BYPASS_VERSION_CHECK: "1", HN_TORCH_VERSION: torch.version },
  stdout: "inherit",
  stderr: "inherit",
}).output();
Deno.exit(st.code);
