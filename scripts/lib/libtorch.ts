/**
 * Finds (or installs) libtorch 2.11 and prepares `native/.libtorch/`, the view of it that the
 * native build links against and that tests use to run the PyTorch peer.
 *
 * Search order: LIBTORCH (+ LIBTORCH_INCLUDE / LIBTORCH_LIB); a Python that already has torch
 * 2.11.x (HN_PYTHON, then the project's .venv, then python3); otherwise a project-local .venv
 * with the pinned torch from PyPI, installed WITHOUT its CUDA wheel dependencies.
 *
 * On a machine with no NVIDIA driver the CUDA build from PyPI cannot load (even libtorch_cpu.so
 * lists libcudart and libcupti), so the view holds copies of the CPU libraries with their CUDA
 * entries removed (see elf-cpu-view.ts), and a small stub library lets the venv's Python torch
 * import for the parity oracle and the benchmark peer.
 */
import { CUDA_LIB, stripNeeded } from "../elf-cpu-view.ts";

export const TORCH_VERSION = "2.11.0";
const PY_DEPS = ["filelock", "typing-extensions", "sympy", "networkx", "jinja2", "fsspec", "numpy"];
/** The tests read the run folders' event files back with TensorBoard's own reader. */
export const TENSORBOARD_VERSION = "2.21.0";

export const ROOT = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
export const VIEW = `${ROOT}/native/.libtorch`;
export const VENV = `${ROOT}/.venv`;

export interface Libtorch {
  /** directory with lib/ and include/ to give torch-sys as LIBTORCH */
  view: string;
  version: string;
  source: string;
  /** Python with torch importable (through the stub on CPU), or null */
  python: string | null;
  cpuView: boolean;
  /** why this view (`chooseView`); absent in READY files of older builds */
  why?: string;
}

function log(msg: string): void {
  console.error(`[build-native] ${msg}`);
}

export async function run(
  cmd: string[],
  opts: { env?: Record<string, string>; quiet?: boolean; cwd?: string } = {},
): Promise<string> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cmd[0], {
      args: cmd.slice(1),
      env: opts.env,
      cwd: opts.cwd,
      stdout: "piped",
      stderr: opts.quiet ? "piped" : "inherit",
    }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(`'${cmd[0]}' is not installed or not on PATH`, { cause: e });
    }
    throw e;
  }
  const stdout = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    const stderr = opts.quiet ? new TextDecoder().decode(out.stderr) : "";
    throw new Error(`command failed (exit ${out.code}): ${cmd.join(" ")}\n${stderr}${stdout}`.trim());
  }
  return stdout;
}

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.lstat(p);
    return true;
  } catch {
    return false;
  }
}

/** Reads torch's version and folder without importing it (a CUDA build cannot import here). */
async function torchOfPython(python: string): Promise<{ version: string; dir: string } | null> {
  const code = "import importlib.util,os,re;s=importlib.util.find_spec('torch');" +
    "d=os.path.dirname(s.origin) if s and s.origin else None;" +
    "v=re.search(r\"__version__\\s*=\\s*['\\\"]([^'\\\"]+)\",open(os.path.join(d,'version.py')).read()).group(1) if d else '';" +
    "print(v);print(d or '')";
  try {
    const [version, dir] = (await run([python, "-c", code], { quiet: true })).trim().split("\n");
    return version && dir ? { version, dir } : null;
  } catch {
    return null;
  }
}

export function hasNvidiaDriver(): boolean {
  try {
    Deno.statSync("/proc/driver/nvidia/version");
    return true;
  } catch {
    return false;
  }
}

/** What setup and the build do with libtorch on this machine (`chooseView`). */
export interface ViewChoice {
  /** "cpu-only": copies of the CPU libraries without their CUDA entries; "full": every library as is */
  view: "cpu-only" | "full";
  /** install the project venv's torch with PyPI's CUDA wheels (nvidia-*) first (`setup --cuda`) */
  installCudaWheels: boolean;
  /** when set, refuse with this message and change nothing */
  refuse: string | null;
  /** one line for the log and `deno task info` */
  why: string;
}

/**
 * The libtorch view for a machine: `driver` (an NVIDIA driver is loaded), `cudaBuild` (the torch
 * found is a CUDA build: it has libtorch_cuda.so), `cudaFlag` (`deno task setup --cuda`). A pure
 * decision, so the table is unit-tested without a GPU or a 3 GB download.
 */
export function chooseView(f: { driver: boolean; cudaBuild: boolean; cudaFlag: boolean }): ViewChoice {
  if (f.cudaFlag && !f.driver) {
    return {
      view: "cpu-only",
      installCudaWheels: false,
      refuse: "setup --cuda needs an NVIDIA driver and this machine has none (/proc/driver/nvidia/version " +
        "is missing): install the driver first, or run `deno task setup` for the CPU-only build",
      why: "no NVIDIA driver",
    };
  }
  if (f.cudaFlag) {
    return {
      view: "full",
      installCudaWheels: true,
      refuse: null,
      why: "setup --cuda with an NVIDIA driver: torch with its CUDA wheels, the real libtorch",
    };
  }
  if (f.cudaBuild && !f.driver) {
    return {
      view: "cpu-only",
      installCudaWheels: false,
      refuse: null,
      why: "a CUDA build of torch and no NVIDIA driver: its CUDA libraries cannot load here",
    };
  }
  return {
    view: "full",
    installCudaWheels: false,
    refuse: null,
    why: f.cudaBuild
      ? "a CUDA build of torch and an NVIDIA driver: the real libtorch"
      : "a CPU build of torch: linked as is (no CUDA)",
  };
}

/**
 * Installs the project venv's torch with PyPI's CUDA wheels (~3 GB of nvidia-*), then reinstalls
 * torch itself: on a CPU machine earlier the venv's libraries were replaced by the CPU-only copies.
 */
export async function installCudaTorch(): Promise<string> {
  if ((await freeGiB(ROOT)) < 8) {
    throw new Error(`less than 8 GiB free under ${ROOT}: torch with its CUDA wheels needs ~5 GiB installed`);
  }
  const python = Deno.env.get("HN_PYTHON") ?? "python3";
  if (!(await exists(`${VENV}/bin/python`))) await run([python, "-m", "venv", VENV]);
  const pip = [
    `${VENV}/bin/python`,
    "-m",
    "pip",
    "install",
    "--disable-pip-version-check",
    "--progress-bar",
    "off",
  ];
  log(`installing torch==${TORCH_VERSION} with its CUDA wheels into ${VENV}`);
  await run([...pip, `torch==${TORCH_VERSION}`, ...PY_DEPS]);
  await run([...pip, "--force-reinstall", "--no-deps", `torch==${TORCH_VERSION}`]);
  return `${VENV}/bin/python`;
}

async function freeGiB(dir: string): Promise<number> {
  const out = await run(["df", "-Pk", dir], { quiet: true });
  return Number(out.trim().split("\n").at(-1)!.split(/\s+/)[3]) / 1024 / 1024;
}

async function makeVenv(): Promise<string> {
  const python = Deno.env.get("HN_PYTHON") ?? "python3";
  if ((await freeGiB(ROOT)) < 4) {
    throw new Error(`less than 4 GiB free under ${ROOT}: torch needs ~2 GiB installed plus build space`);
  }
  log(`creating ${VENV} and installing torch==${TORCH_VERSION} (CPU use: no CUDA wheels)`);
  if (!(await exists(`${VENV}/bin/python`))) await run([python, "-m", "venv", VENV]);
  const pip = [
    `${VENV}/bin/python`,
    "-m",
    "pip",
    "install",
    "--disable-pip-version-check",
    "--progress-bar",
    "off",
  ];
  // --no-deps: PyPI's torch pulls ~3 GB of nvidia-* wheels that a CPU never uses.
  await run([...pip, "--no-deps", `torch==${TORCH_VERSION}`]);
  await run([...pip, ...PY_DEPS, `tensorboard==${TENSORBOARD_VERSION}`]);
  return `${VENV}/bin/python`;
}

/** Whether the venv holds the pinned tensorboard (a folder check: no Python start). */
async function venvHasTensorboard(): Promise<boolean> {
  try {
    for (const e of Deno.readDirSync(`${VENV}/lib`)) {
      if (await exists(`${VENV}/lib/${e.name}/site-packages/tensorboard-${TENSORBOARD_VERSION}.dist-info`)) {
        return true;
      }
    }
  } catch { /* no venv yet */ }
  return false;
}

/**
 * Installs the pinned tensorboard into the project venv when it lacks it, creating the venv when
 * there is none (torch may come from another Python). Only tensorboard and its own dependencies:
 * the CPU-only torch install is not touched.
 */
export async function ensureTensorboard(): Promise<void> {
  if (await venvHasTensorboard()) return;
  log(`installing tensorboard==${TENSORBOARD_VERSION} into ${VENV} (the tests read event files with it)`);
  if (!(await exists(`${VENV}/bin/python`))) {
    await run([Deno.env.get("HN_PYTHON") ?? "python3", "-m", "venv", VENV]);
  }
  await run([
    `${VENV}/bin/python`,
    "-m",
    "pip",
    "install",
    "--disable-pip-version-check",
    "--progress-bar",
    "off",
    `tensorboard==${TENSORBOARD_VERSION}`,
  ]);
}

async function findTorch(): Promise<
  { lib: string; include: string; version: string; source: string; python: string | null }
> {
  const env = Deno.env.get("LIBTORCH");
  if (env) {
    const lib = Deno.env.get("LIBTORCH_LIB") ?? `${env}/lib`;
    const include = Deno.env.get("LIBTORCH_INCLUDE") ?? `${env}/include`;
    let version = "unknown";
    try {
      version = (await Deno.readTextFile(`${env}/build-version`)).trim();
    } catch { /* older archives have no build-version */ }
    return { lib, include, version, source: `LIBTORCH=${env}`, python: null };
  }
  const candidates = [Deno.env.get("HN_PYTHON"), `${VENV}/bin/python`, "python3"].filter((p): p is string =>
    !!p
  );
  for (const py of candidates) {
    const t = await torchOfPython(py);
    if (t && t.version.startsWith("2.11.")) {
      return {
        lib: `${t.dir}/lib`,
        include: `${t.dir}/include`,
        version: t.version,
        source: `${py} (torch ${t.version})`,
        python: py,
      };
    }
  }
  const py = await makeVenv();
  const t = await torchOfPython(py);
  if (!t) throw new Error(`torch was installed into ${VENV} but cannot be found there`);
  return {
    lib: `${t.dir}/lib`,
    include: `${t.dir}/include`,
    version: t.version,
    source: `${VENV} (torch ${t.version}, installed now)`,
    python: py,
  };
}

const CPU_LIBS = [
  "libtorch_cpu.so",
  "libtorch.so",
  "libc10.so",
  "libgomp.so.1",
  "libtorch_global_deps.so",
  "libshm.so",
];

/** Symbols libtorch_python needs from the CUDA libraries, as nm lists them. */
async function missingPythonSymbols(viewLib: string): Promise<string[]> {
  const defined = new Set<string>();
  const nm = async (f: string, flag: string): Promise<string[]> =>
    (await run(["nm", "-D", flag, f], { quiet: true })).split("\n").map((l) =>
      l.trim().split(/\s+/).at(-1)!.replace(/@.*/, "")
    ).filter(Boolean);
  for (const f of [...CPU_LIBS.map((l) => `${viewLib}/${l}`), `${viewLib}/libtorch_python.so`]) {
    if (await exists(f)) { for (const s of await nm(f, "--defined-only")) defined.add(s); }
  }
  const libc = [
    "/lib/x86_64-linux-gnu/libstdc++.so.6",
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/lib/x86_64-linux-gnu/libm.so.6",
    "/lib/x86_64-linux-gnu/libgcc_s.so.1",
  ];
  for (const f of libc) {
    if (await exists(f)) {
      for (const s of await nm(f, "--defined-only")) defined.add(s);
    }
  }
  const undef = await nm(`${viewLib}/libtorch_python.so`, "--undefined-only");
  const skip = new Set(["__tls_get_addr", "Value", "offset"]);
  return [...new Set(undef)].filter((s) =>
    !defined.has(s) && !skip.has(s) && !/^(_?Py|_ITM|__gmon|_Jv|_ZTH)/.test(s)
  ).sort();
}

/**
 * A stub for the CUDA-only symbols libtorch_python binds eagerly, so `import torch` works on a
 * CPU: type_info objects are real (pybind11 hashes them), every function returns 0 (so
 * torch.cuda.device_count() is 0). Only the Python peer loads it (LD_PRELOAD), never our library.
 */
function stubSource(symbols: string[]): string {
  const lines = [
    "/* generated by scripts/lib/libtorch.ts: CUDA-only symbols of libtorch_python, for CPU use */",
    "static void* slot[8];",
    "extern void* _ZTVN10__cxxabiv117__class_type_infoE[];",
    "struct ti { void* vp; const char* name; };",
  ];
  for (const s of symbols) {
    if (s.startsWith("_ZTI")) {
      lines.push(`struct ti ${s} = { &_ZTVN10__cxxabiv117__class_type_infoE[2], "${s.slice(4)}" };`);
    } else if (s.startsWith("_ZTV") || s.startsWith("_ZTS")) {
      lines.push(`__attribute__((aligned(16))) void* ${s}[64];`);
    } else if (s === "_ZN4c10d15get_gil_checkerEv") lines.push(`void* ${s}(void) { return &slot[0]; }`);
    else lines.push(`long ${s}(void) { return 0; }`);
  }
  return lines.join("\n") + "\n";
}

/**
 * The view of `native/.libtorch` (cached in its READY file). `rebuild` ignores the cache and
 * `python` is asked first (setup --cuda: the venv it has just installed).
 */
export async function prepareLibtorch(o: { rebuild?: boolean; python?: string } = {}): Promise<Libtorch> {
  const ready = `${VIEW}/READY`;
  if (o.python) Deno.env.set("HN_PYTHON", o.python);
  if (!o.rebuild && await exists(ready)) {
    const info = JSON.parse(await Deno.readTextFile(ready)) as Libtorch;
    if (await exists(`${info.view}/lib/libtorch_cpu.so`)) return info;
  }
  const t = await findTorch();
  log(`libtorch: ${t.source}; lib ${t.lib}`);
  if (!t.version.startsWith("2.11.") && t.version !== "unknown") {
    log(`warning: tch 0.24 expects libtorch 2.11.x, found ${t.version}`);
  }
  const isCudaBuild = await exists(`${t.lib}/libtorch_cuda.so`);
  const choice = chooseView({ driver: hasNvidiaDriver(), cudaBuild: isCudaBuild, cudaFlag: false });
  log(`libtorch view: ${choice.view} (${choice.why})`);
  const cpuView = choice.view === "cpu-only";
  await Deno.remove(VIEW, { recursive: true }).catch(() => {});
  await Deno.mkdir(`${VIEW}/lib`, { recursive: true });
  await Deno.symlink(t.include, `${VIEW}/include`);
  if (!cpuView) {
    for (const e of Deno.readDirSync(t.lib)) {
      await Deno.symlink(`${t.lib}/${e.name}`, `${VIEW}/lib/${e.name}`);
    }
  } else {
    log("no NVIDIA driver: making a CPU-only view of the CUDA build (copies without CUDA entries)");
    for (const name of [...CPU_LIBS, "libtorch_python.so"]) {
      const src = `${t.lib}/${name}`;
      if (!(await exists(src))) continue;
      const bytes = await Deno.readFile(src);
      const removed = stripNeeded(bytes, (n) => CUDA_LIB.test(n));
      // libtorch_python goes to a side folder: torch-sys must not link it
      const dst = name === "libtorch_python.so" ? `${VIEW}/python/${name}` : `${VIEW}/lib/${name}`;
      await Deno.mkdir(dst.replace(/\/[^/]+$/, ""), { recursive: true });
      if (removed.length === 0) await Deno.symlink(src, dst);
      else {
        await Deno.writeFile(dst, bytes, { mode: 0o755 });
        log(`  ${name}: dropped ${removed.join(", ")}`);
      }
    }
  }
  let python: string | null = null;
  if (t.python) {
    python = cpuView ? await preparePythonOnCpu(t.python, t.lib) : t.python;
  }
  const info: Libtorch = {
    view: VIEW,
    version: t.version,
    source: t.source,
    python,
    cpuView,
    why: choice.why,
  };
  await Deno.writeTextFile(ready, JSON.stringify(info, null, 2));
  return info;
}

/**
 * Python's torch loads libs from its own folder, so the CPU copies are swapped into the venv only
 * when the venv is ours; a foreign Python is left untouched and the peer is then unavailable.
 */
async function preparePythonOnCpu(python: string, torchLib: string): Promise<string | null> {
  if (!torchLib.startsWith(VENV)) {
    log(`torch of ${python} is a CUDA build and there is no GPU: the PyTorch peer needs the project venv`);
    return null;
  }
  for (const name of ["libtorch_cpu.so", "libtorch.so", "libtorch_global_deps.so", "libtorch_python.so"]) {
    const viewCopy = name === "libtorch_python.so" ? `${VIEW}/python/${name}` : `${VIEW}/lib/${name}`;
    const info = await Deno.lstat(viewCopy).catch(() => null);
    if (info && info.isFile) {
      // hard link when possible (same file system): no second 450 MB copy
      await Deno.remove(`${torchLib}/${name}`);
      await Deno.link(viewCopy, `${torchLib}/${name}`).catch(() =>
        Deno.copyFile(viewCopy, `${torchLib}/${name}`)
      );
    }
  }
  const symbols = await missingPythonSymbols(torchLib);
  const dir = `${VIEW}/python`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/cuda_stub.c`, stubSource(symbols));
  const cc = Deno.env.get("CC") ?? "cc";
  await run([
    cc,
    "-shared",
    "-fPIC",
    "-O1",
    "-o",
    `${dir}/libhn_cuda_stub.so`,
    `${dir}/cuda_stub.c`,
    "-Wl,--no-as-needed",
    "-lstdc++",
  ]);
  const wrapper = `${dir}/python`;
  await Deno.writeTextFile(
    wrapper,
    `#!/bin/sh\n# Python with the venv's torch on a CPU-only machine (see scripts/lib/libtorch.ts)\n` +
      `TORCH_USE_RTLD_GLOBAL=1 LD_PRELOAD="${dir}/libhn_cuda_stub.so\${LD_PRELOAD:+:$LD_PRELOAD}" exec "${python}" "$@"\n`,
    { mode: 0o755 },
  );
  await run([
    wrapper,
    "-c",
    "import torch; assert torch.__version__.startswith('2.11'); assert torch.randn(2,2).sum() == torch.randn(2,2).sum() or True",
  ], { quiet: true });
  log(`PyTorch peer ready: ${wrapper} (${symbols.length} CUDA-only symbols stubbed)`);
  return wrapper;
}
