/**
 * `deno task gpu:pack [--out DIR]`: writes one folder (default `gpu-pack/`, git-ignored) that a
 * machine with no network, cargo or npm runs as `bash DIR/scripts/gpu-check.sh` (README, "GPU
 * check"). The folder mirrors the repository's layout, so the copied sources find the library
 * where they look for it:
 *
 * - `native/target/release/libhybridnet.so` (+ build-info.json): the built library;
 * - `bin/deno.xz`: this Deno binary, xz -9 (xz or Python's lzma unpacks it there; the compressed
 *   file is cached in `.cache/gpu-pack/`, since compressing takes minutes on two cores);
 * - `deps/npm.tar.xz`: a DENO_DIR holding only the npm cache of zod, yaml and commander, with
 *   `deno.json`/`deno.lock` cut down to those three (typescript, used by `deno task structure`
 *   alone, would add 23 MB), so `--cached-only --frozen` runs offline;
 * - `ts/`, `scripts/gpu-check*`, `tests/gpu/` and every local module these import (from the
 *   module graph), `configs/`;
 * - `peer/hybridnet_seed.py`: the seed's PyTorch model from ../shared/anchors (never committed);
 * - `PACK.json` (what went in, sizes, sha256) and `PACK.txt` (one line for the report).
 *
 * Refuses with an error when the folder would exceed 64 MiB (what the device tool carries, the
 * rest of the working tree included; that total is printed too). The data is generated at run
 * time (the synthetic loader, random batches), so no data file is packed.
 */
import { ROOT } from "./lib/libtorch.ts";

export const LIMIT_BYTES = 64 * 1024 * 1024;
const NPM_PACKAGES = ["zod", "yaml", "commander"];
const SEED_MODEL = `${ROOT}/../shared/anchors/pytorch_seed/hybridnet_seed.py`;
const LIB = `${ROOT}/native/target/release/libhybridnet.so`;

function log(msg: string): void {
  console.error(`[gpu-pack] ${msg}`);
}

async function sh(cmd: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<string> {
  const out = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    stdout: "piped",
    stderr: "piped",
    ...opts,
  })
    .output();
  if (!out.success) {
    throw new Error(`${cmd.join(" ")} failed (exit ${out.code}):\n${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

async function copyFile(from: string, to: string): Promise<void> {
  await Deno.mkdir(to.slice(0, to.lastIndexOf("/")), { recursive: true });
  await Deno.copyFile(from, to);
}

async function copyTree(
  from: string,
  to: string,
  keep: (path: string) => boolean = () => true,
): Promise<void> {
  for await (const e of Deno.readDir(from)) {
    const src = `${from}/${e.name}`, dst = `${to}/${e.name}`;
    if (e.isDirectory) await copyTree(src, dst, keep);
    else if (e.isFile && keep(src)) await copyFile(src, dst);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Files under ROOT that the given entry modules import, transitively (`deno info --json`). */
async function localModules(entries: string[]): Promise<string[]> {
  const files = new Set<string>();
  for (const entry of entries) {
    const info = JSON.parse(await sh([Deno.execPath(), "info", "--json", entry], { cwd: ROOT }));
    for (const m of info.modules ?? []) {
      if (typeof m.local === "string" && m.local.startsWith(`${ROOT}/`) && m.kind !== "npm") {
        files.add(m.local);
      }
      if (m.error) throw new Error(`${entry}: ${m.specifier}: ${m.error}`);
      // only the npm cache travels: a jsr: or https: import would fail offline there
      if (/^(https?|jsr):/.test(m.specifier)) {
        throw new Error(
          `${entry} imports ${m.specifier}, which the pack cannot carry; use node: or npm: imports`,
        );
      }
    }
  }
  return [...files].sort();
}

/** This Deno binary, xz -9, cached by version and size in .cache/gpu-pack/. */
async function compressedDeno(): Promise<string> {
  const exe = Deno.execPath();
  const { size } = await Deno.stat(exe);
  const cached = `${ROOT}/.cache/gpu-pack/deno-${Deno.version.deno}-${size}.xz`;
  if (await exists(cached)) return cached;
  await Deno.mkdir(`${ROOT}/.cache/gpu-pack`, { recursive: true });
  log(
    `compressing ${exe} (${
      (size / 2 ** 20).toFixed(0)
    } MiB) with xz -9; once per Deno version, a few minutes`,
  );
  const tmp = `${cached}.tmp`;
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  const st = await new Deno.Command("xz", {
    args: ["-9", "-T1", "-c", exe],
    stdout: "piped",
    stderr: "inherit",
  })
    .spawn();
  await st.stdout.pipeTo(file.writable);
  if (!(await st.status).success) throw new Error("xz failed");
  await Deno.rename(tmp, cached);
  return cached;
}

/** deno.json and deno.lock with only the npm packages the pack carries. */
async function trimmedConfig(dest: string): Promise<void> {
  const keep = (spec: string): boolean =>
    NPM_PACKAGES.includes(spec.replace(/^npm:/, "").replace(/@[^@]*$/, ""));
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`));
  const imports = Object.fromEntries(
    Object.entries(config.imports as Record<string, string>).filter(([k]) => keep(k)),
  );
  await Deno.writeTextFile(`${dest}/deno.json`, JSON.stringify({ imports }, null, 2) + "\n");
  const lock = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.lock`));
  lock.specifiers = Object.fromEntries(Object.entries(lock.specifiers ?? {}).filter(([k]) => keep(k)));
  lock.npm = Object.fromEntries(Object.entries(lock.npm ?? {}).filter(([k]) => keep(k)));
  if (lock.workspace?.dependencies) lock.workspace.dependencies = lock.workspace.dependencies.filter(keep);
  const missing = NPM_PACKAGES.filter((p) => !Object.keys(lock.npm).some((k) => k.startsWith(`${p}@`)));
  if (missing.length) throw new Error(`deno.lock has no entry for ${missing.join(", ")}`);
  await Deno.writeTextFile(`${dest}/deno.lock`, JSON.stringify(lock, null, 2) + "\n");
}

/** A tar.xz of a DENO_DIR holding only the locked versions of NPM_PACKAGES. */
async function npmCache(dest: string, lockedVersions: string[]): Promise<void> {
  const denoInfo = JSON.parse(await sh([Deno.execPath(), "info", "--json"], { cwd: ROOT }));
  const registry = `${denoInfo.npmCache}/registry.npmjs.org`;
  const stage = await Deno.makeTempDir({ prefix: "hn-gpu-pack-npm-" });
  try {
    for (const spec of lockedVersions) {
      const at = spec.lastIndexOf("@");
      const [name, version] = [spec.slice(0, at), spec.slice(at + 1)];
      const dir = `${registry}/${name}/${version}`;
      if (!(await exists(dir))) {
        throw new Error(`${dir} is missing: run any deno task once with network first`);
      }
      await copyTree(dir, `${stage}/npm/registry.npmjs.org/${name}/${version}`);
      await copyFile(
        `${registry}/${name}/registry.json`,
        `${stage}/npm/registry.npmjs.org/${name}/registry.json`,
      );
    }
    await Deno.mkdir(`${dest}/deps`, { recursive: true });
    await sh(["tar", "-cJf", `${dest}/deps/npm.tar.xz`, "-C", stage, "npm"], { env: { XZ_OPT: "-9 -T1" } });
  } finally {
    await Deno.remove(stage, { recursive: true });
  }
}

async function sha256(path: string): Promise<string> {
  const h = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(h), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function listFiles(dir: string, prefix = ""): Promise<{ path: string; bytes: number }[]> {
  const out: { path: string; bytes: number }[] = [];
  for await (const e of Deno.readDir(`${dir}/${prefix}`)) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory) out.push(...await listFiles(dir, rel));
    else out.push({ path: rel, bytes: (await Deno.stat(`${dir}/${rel}`)).size });
  }
  return out.sort((a, b) => a.path.localeCompare(b.path));
}

/** Bytes of the tracked and untracked-not-ignored files (they travel with the pack). */
async function workingTreeBytes(): Promise<number> {
  const names =
    (await sh(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: ROOT }))
      .split("\0").filter(Boolean);
  let total = 0;
  for (const n of names) total += (await Deno.stat(`${ROOT}/${n}`).catch(() => ({ size: 0 }))).size;
  return total;
}

export interface PackResult {
  dir: string;
  bytes: number;
  files: { path: string; bytes: number }[];
}

/** Builds the pack into `dir` (replaced if it is a previous pack); throws above `limitBytes`. */
export async function buildPack(dir: string, limitBytes = LIMIT_BYTES): Promise<PackResult> {
  if (!(await exists(LIB))) throw new Error(`${LIB} is missing: run deno task build:native`);
  if (!(await exists(SEED_MODEL))) throw new Error(`${SEED_MODEL} is missing (the PyTorch peer's model)`);
  if (await exists(dir)) {
    if (!(await exists(`${dir}/PACK.json`))) {
      throw new Error(`${dir} exists and is not a pack; not touching it`);
    }
    await Deno.remove(dir, { recursive: true });
  }
  await Deno.mkdir(dir, { recursive: true });

  await copyFile(LIB, `${dir}/native/target/release/libhybridnet.so`);
  await copyFile(
    `${ROOT}/native/target/release/build-info.json`,
    `${dir}/native/target/release/build-info.json`,
  );
  const deno = await compressedDeno();
  await copyFile(deno, `${dir}/bin/deno.xz`);
  await trimmedConfig(dir);
  const lock = JSON.parse(await Deno.readTextFile(`${dir}/deno.lock`));
  await npmCache(dir, Object.keys(lock.npm));

  const checkDir = `${ROOT}/scripts/gpu-check`;
  const entries = [...Deno.readDirSync(checkDir)].filter((e) => e.name.endsWith(".ts")).map((e) =>
    `${checkDir}/${e.name}`
  );
  const gpuTests = `${ROOT}/tests/gpu`;
  if (await exists(gpuTests)) {
    for (const e of Deno.readDirSync(gpuTests)) {
      if (e.name.endsWith("_test.ts")) entries.push(`${gpuTests}/${e.name}`);
    }
    await copyTree(gpuTests, `${dir}/tests/gpu`);
  } else log("warning: tests/gpu/ does not exist yet; the check will say so");
  entries.push(`${ROOT}/ts/cli.ts`);
  await copyTree(`${ROOT}/ts`, `${dir}/ts`); // whole: the registry imports plugins by name
  await copyTree(`${ROOT}/configs`, `${dir}/configs`);
  await copyTree(checkDir, `${dir}/scripts/gpu-check`, (p) => !p.includes("__pycache__"));
  await copyFile(`${ROOT}/scripts/gpu-check.sh`, `${dir}/scripts/gpu-check.sh`);
  await Deno.chmod(`${dir}/scripts/gpu-check.sh`, 0o755);
  for (const f of await localModules(entries)) await copyFile(f, `${dir}/${f.slice(ROOT.length + 1)}`);
  await copyFile(SEED_MODEL, `${dir}/peer/hybridnet_seed.py`);

  const commit = (await sh(["git", "rev-parse", "--short", "HEAD"], { cwd: ROOT })).trim();
  const dirty =
    (await sh(["git", "status", "--porcelain", "--", "ts", "native", "scripts", "tests"], { cwd: ROOT }))
      .trim() !== "";
  const created = new Date().toISOString().slice(0, 19) + "Z";
  const build = JSON.parse(await Deno.readTextFile(`${ROOT}/native/target/release/build-info.json`));
  await Deno.writeTextFile(
    `${dir}/PACK.txt`,
    `Pack created ${created} from commit ${commit}${dirty ? " (with uncommitted changes)" : ""}, ` +
      `library built ${build.builtAt} against torch ${build.version}, Deno ${Deno.version.deno}.`,
  );
  const files = await listFiles(dir);
  const manifest = {
    created,
    commit,
    dirty,
    deno: Deno.version.deno,
    torchBuiltAgainst: build.version,
    libraryBuiltAt: build.builtAt,
    npm: Object.keys(lock.npm),
    files: await Promise.all(
      files.map(async (f) => ({
        ...f,
        sha256: f.bytes > 1 << 20 ? await sha256(`${dir}/${f.path}`) : undefined,
      })),
    ),
  };
  await Deno.writeTextFile(`${dir}/PACK.json`, JSON.stringify(manifest, null, 2) + "\n");
  const all = await listFiles(dir);
  const bytes = all.reduce((s, f) => s + f.bytes, 0);
  if (bytes > limitBytes) {
    throw new Error(
      `the pack is ${(bytes / 2 ** 20).toFixed(1)} MiB, over the ${
        (limitBytes / 2 ** 20).toFixed(0)
      } MiB the device tool carries; ` +
        `largest files: ${
          all.sort((a, b) => b.bytes - a.bytes).slice(0, 5).map((f) =>
            `${f.path} ${(f.bytes / 2 ** 20).toFixed(1)} MiB`
          )
            .join(", ")
        }`,
    );
  }
  return { dir, bytes, files: all };
}

/** Sizes per top-level entry of the pack (folders summed), largest first. */
export function summary(result: PackResult): string[] {
  const groups = new Map<string, { bytes: number; files: number }>();
  for (const f of result.files) {
    const top = f.path.split("/").slice(
      0,
      f.path.startsWith("native/") ? 4 : f.path.startsWith("scripts/") ? 2 : 1,
    )
      .join("/");
    const g = groups.get(top) ?? { bytes: 0, files: 0 };
    groups.set(top, { bytes: g.bytes + f.bytes, files: g.files + 1 });
  }
  return [...groups].sort((a, b) => b[1].bytes - a[1].bytes).map(([k, g]) =>
    `${(g.bytes / 2 ** 20).toFixed(2).padStart(7)} MiB  ${k}${g.files > 1 ? ` (${g.files} files)` : ""}`
  );
}

if (import.meta.main) {
  const i = Deno.args.indexOf("--out");
  const dir = i >= 0 ? Deno.args[i + 1] : `${ROOT}/gpu-pack`;
  try {
    const result = await buildPack(dir.startsWith("/") ? dir : `${Deno.cwd()}/${dir}`);
    console.log(summary(result).join("\n"));
    const tree = await workingTreeBytes();
    console.log(
      `${(result.bytes / 2 ** 20).toFixed(2).padStart(7)} MiB  total in ${result.dir} (limit 64 MiB); ` +
        `with the working tree that travels beside it (${(tree / 2 ** 20).toFixed(2)} MiB): ${
          ((result.bytes + tree) / 2 ** 20).toFixed(2)
        } MiB`,
    );
    if (result.bytes + tree > LIMIT_BYTES) {
      log("warning: pack + working tree exceed 64 MiB; the run tool will refuse");
    }
    console.log(
      `run it there: bash ${
        result.dir.startsWith(`${ROOT}/`) ? result.dir.slice(ROOT.length + 1) : result.dir
      }/scripts/gpu-check.sh`,
    );
  } catch (e) {
    console.error(`[gpu-pack] error: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
