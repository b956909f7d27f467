/**
 * `deno task lint:native`: clippy on every native target (library, tests, examples) with
 * warnings as errors, in the environment the build and `test-native.ts` use (libtorch's view).
 */
import { prepareLibtorch, ROOT } from "./lib/libtorch.ts";

const torch = await prepareLibtorch();
const st = await new Deno.Command("cargo", {
  args: ["clippy", "--release", "--all-targets", ...Deno.args, "--", "-D", "warnings"],
  cwd: `${ROOT}/native`,
  env: { LIBTORCH: torch.view, LIBTORCH_BYPASS_VERSION_CHECK: "1", HN_TORCH_VERSION: torch.version },
  stdout: "inherit",
  stderr: "inherit",
}).output();
Deno.exit(st.code);
