/**
 * `deno task build:native`: finds or installs libtorch, builds native/ in release mode, and
 * writes native/target/release/build-info.json. With `--if-stale` it does nothing when the
 * library was built from the current native sources, Rust and C++ (every task that needs the
 * library runs it so). Either way it first makes sure the project venv has the pinned tensorboard
 * (the tests read the runs' event files with it).
 */
import { ensureTensorboard, prepareLibtorch, ROOT, run } from "./lib/libtorch.ts";

const NATIVE = `${ROOT}/native`;
const LIB = `${NATIVE}/target/release/libhybridnet.so`;
const INFO = `${NATIVE}/target/release/build-info.json`;

function log(msg: string): void {
  console.error(`[build-native] ${msg}`);
}

/** Hash of every file that goes into the build: a changed source means a stale library. */
async function sourceHash(): Promise<string> {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const e of Deno.readDirSync(dir)) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory && e.name !== "target" && !e.name.startsWith(".")) walk(p);
      else if (e.isFile && /\.(rs|toml|lock|cpp|h)$/.test(e.name)) files.push(p);
    }
  };
  walk(NATIVE);
  files.sort();
  const h = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(
      (await Promise.all(files.map(async (f) => f + "\0" + await Deno.readTextFile(f)))).join("\0"),
    ),
  );
  return Array.from(new Uint8Array(h), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function isFresh(hash: string): Promise<boolean> {
  try {
    await Deno.stat(LIB);
    const info = JSON.parse(await Deno.readTextFile(INFO));
    return info.sourceHash === hash;
  } catch {
    return false;
  }
}

async function checkTools(): Promise<void> {
  const missing: string[] = [];
  for (
    const [tool, hint] of [["cargo", "install Rust with rustup (https://rustup.rs)"], [
      "python3",
      "install Python 3.9+ (needed to fetch torch from PyPI)",
    ], ["cc", "install a C/C++ compiler (apt-get install build-essential)"]]
  ) {
    try {
      await run([tool, "--version"], { quiet: true });
    } catch {
      missing.push(`${tool}: ${hint}`);
    }
  }
  if (missing.length) throw new Error(`missing tools:\n  ${missing.join("\n  ")}`);
}

if (import.meta.main) {
  const ifStale = Deno.args.includes("--if-stale");
  try {
    // before the freshness check, so an existing venv gets it too; training runs without it
    await ensureTensorboard().catch((e) => log(`warning: ${e instanceof Error ? e.message : e}`));
    const hash = await sourceHash();
    if (ifStale && await isFresh(hash)) Deno.exit(0);
    await checkTools();
    const torch = await prepareLibtorch();
    log(
      `building native/ (release) against ${torch.view} (torch ${torch.version}${
        torch.cpuView ? ", CPU-only view" : ""
      })`,
    );
    const t0 = performance.now();
    const cmd = new Deno.Command("cargo", {
      args: ["build", "--release"],
      cwd: NATIVE,
      env: { LIBTORCH: torch.view, LIBTORCH_BYPASS_VERSION_CHECK: "1", HN_TORCH_VERSION: torch.version },
      stdout: "inherit",
      stderr: "inherit",
    });
    const st = await cmd.output();
    if (!st.success) throw new Error(`cargo build failed (exit ${st.code}); see the compiler output above`);
    await Deno.writeTextFile(
      INFO,
      JSON.stringify(
        { sourceHash: hash, builtAt: new Date().toISOString(), library: LIB, ...torch },
        null,
        2,
      ),
    );
    log(`built ${LIB} in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  } catch (e) {
    console.error(`[build-native] error: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
