/**
 * `deno task setup`: everything a fresh machine needs before `deno task train`: libtorch and the
 * native build (scripts/build-native.ts), and the embedded default data set, Fashion-MNIST from
 * the Debian package `dataset-fashion-mnist` (installed when we are root and apt-get exists).
 *
 * `deno task setup --cuda` (a machine with an NVIDIA driver; refused without one) first installs
 * the project venv's torch with PyPI's CUDA wheels (~3 GB) and rebuilds the libtorch view from it,
 * so the library runs on the real libtorch and its CUDA part instead of the CPU-only view.
 */
import { chooseView, hasNvidiaDriver, installCudaTorch, prepareLibtorch } from "./lib/libtorch.ts";

export const FASHION_DIR = "/usr/share/datasets/fashion-mnist";
const APT = "apt-get install -y dataset-fashion-mnist";

async function hasFashion(): Promise<boolean> {
  try {
    await Deno.stat(`${FASHION_DIR}/train-images-idx3-ubyte.gz`);
    return true;
  } catch {
    return false;
  }
}

async function sh(cmd: string[]): Promise<boolean> {
  try {
    const st = await new Deno.Command(cmd[0], {
      args: cmd.slice(1),
      stdout: "inherit",
      stderr: "inherit",
      env: { DEBIAN_FRONTEND: "noninteractive" },
    }).output();
    return st.success;
  } catch {
    return false;
  }
}

/** `--cuda`: refuses without a driver; else installs the CUDA wheels and rebuilds the view. */
async function setupCuda(): Promise<void> {
  const choice = chooseView({ driver: hasNvidiaDriver(), cudaBuild: true, cudaFlag: true });
  if (choice.refuse !== null) {
    console.error(`[setup] ${choice.refuse}`);
    Deno.exit(1);
  }
  const python = await installCudaTorch();
  const view = await prepareLibtorch({ rebuild: true, python });
  console.error(`[setup] libtorch ${view.version} from ${view.source}: ${view.why ?? choice.why}`);
}

if (import.meta.main) {
  if (Deno.args.includes("--cuda")) await setupCuda();
  const build = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./build-native.ts", import.meta.url).pathname],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!build.success) Deno.exit(1);
  if (!(await hasFashion())) {
    const root = Deno.uid?.() === 0;
    if (
      root &&
      (await sh(["apt-get", "install", "-y", "-q", "dataset-fashion-mnist"]) ||
        (await sh(["apt-get", "update", "-q"])) &&
          (await sh(["apt-get", "install", "-y", "-q", "dataset-fashion-mnist"])))
    ) {
      console.error("[setup] installed dataset-fashion-mnist");
    } else {
      console.error(
        `[setup] the default data set is missing: run \`sudo ${APT}\` (Fashion-MNIST IDX files into ${FASHION_DIR})`,
      );
    }
  }
  console.error(`[setup] ready${(await hasFashion()) ? `; default data in ${FASHION_DIR}` : ""}`);
}
