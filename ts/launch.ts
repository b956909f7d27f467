/**
 * The least-privilege launcher of `train`, `eval` and `predict` (deno.json's tasks run it).
 *
 * It parses the arguments with the CLI's own commander program, reads what the config names
 * (without importing any user plugin: its own permissions are wide, so no user code runs here),
 * and starts `ts/cli.ts <command> <the same arguments>` as a child `deno run` that may touch
 * only that:
 *
 * - read: the config file's folder, the user plugin files (and `ts-function` modules), the data
 *   (the loader's root/dir/manifest, or `--data`; a csv manifest's folder and the folders of its
 *   absolute rows), the checkpoint and its run folder, predict's image files, and `ts/`;
 * - write (and read): the folder of run folders (`--out`) or the resumed run, the image cache
 *   (`data.cacheDir`), and for predict a private temp folder (its `TMPDIR`, removed afterwards);
 * - ffi: the native library (see {@link FFI_SCOPED});
 * - env: {@link CHILD_ENV}; sys: `hostname` (TensorBoard file names);
 * - no run, no net, no remote imports, no module downloads (`--no-remote`, `--cached-only`), no
 *   prompts (`--no-prompt`).
 *
 * The child's exit code, stdout and stderr pass through. It runs in its own process group, and
 * SIGINT/SIGTERM (SIGHUP as SIGTERM) reach it once, through here: a Ctrl-C at a terminal would
 * otherwise reach it twice, and a second signal quits a run without its checkpoint.
 *
 * The config is only read here, never resolved: when it cannot be read or parsed, the child gets
 * the grants known so far and the CLI prints its error as it always does (same text, same code).
 */
import type { Command } from "commander";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { buildProgram, reportError } from "./cli.ts";
import { candidatePaths, NATIVE_PATH_ENV } from "./native/ffi.ts";
import { runDirOfCheckpoint } from "./pipeline/commands.ts";
import {
  applyOverrides,
  parseYaml,
  PLUGIN_SECTION_PATHS,
  type RawConfig,
  RawConfigSchema,
} from "./pipeline/config.ts";
import { UsageError } from "./pipeline/errors.ts";
import { isPluginPath, pluginPath } from "./pipeline/registry.ts";
import { parseCsv } from "./plugins/load/csv.ts";

/** The project root (the folder of deno.json). */
export const ROOT: string = fileURLToPath(new URL("../", import.meta.url)).replace(/[\\/]$/, "");

/** The commands this launcher starts. */
export const LAUNCHED = ["train", "eval", "predict"] as const;
export type Launched = typeof LAUNCHED[number];

/**
 * Whether `--allow-ffi` is scoped to the library: yes — native handles are plain integers
 * (`usize` in ts/native/ffi.ts), so no `Deno.UnsafePointer` call needs an unscoped --allow-ffi
 * (denoland/deno#15511), and a plugin's `Deno.dlopen` of any other library is refused.
 */
export const FFI_SCOPED = true;

/**
 * Environment variables the child's code reads: the library override (ts/native/ffi.ts) and the
 * two debug switches the `yaml` package reads on every parse. Nothing else in ts/ or its npm
 * packages reads the environment on these commands' paths (commander's colour variables only
 * matter for help, which the launcher prints itself).
 */
export const CHILD_ENV = [NATIVE_PATH_ENV, "LOG_TOKENS", "LOG_STREAM"];

/** System information the child reads: the host name in TensorBoard event file names. */
export const CHILD_SYS = ["hostname"];

/** What a child run may touch; every path absolute. */
export interface Grants {
  read: string[];
  write: string[];
  /** the library paths; `null`: unscoped (see {@link FFI_SCOPED}) */
  ffi: string[] | null;
  env: string[];
  sys: string[];
}

/** A parsed command line of a launched command, with what it needs besides the grants. */
export interface Plan {
  command: Launched;
  grants: Grants;
  /** predict: make a private temp folder and point the child's TMPDIR at it */
  privateTmp: boolean;
}

/** Options of `train` as the CLI parses them. */
interface TrainOpts {
  config: string;
  data?: string;
  set: string[];
  resume?: string;
  device?: string;
  name?: string;
  out: string;
}

/** Options of `eval` as the CLI parses them. */
interface EvalOpts {
  checkpoint: string;
  data: string;
  config?: string;
  set: string[];
}

/** Distinct paths, with those under another one of the list dropped. */
export function collapse(paths: string[]): string[] {
  const sorted = [...new Set(paths.map((p) => resolve(p)))].sort();
  const out: string[] = [];
  for (const p of sorted) {
    const last = out.at(-1);
    if (last !== undefined && (p === last || p.startsWith(last.endsWith("/") ? last : last + "/"))) continue;
    out.push(p);
  }
  return out;
}

function exists(p: string): boolean {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * A config (the file's, or `raw` for a bare data folder) with overrides, through the raw schema
 * (defaults filled); null when any step fails: the child then reports it with the CLI's message.
 */
export function readRawConfig(
  file: string | { raw: Record<string, unknown> },
  overrides: string[],
): RawConfig | null {
  try {
    const label = typeof file === "string" ? file : "(--data)";
    const raw = typeof file === "string" ? parseYaml(Deno.readTextFileSync(file), file) : file.raw;
    applyOverrides(raw, overrides, label);
    const parsed = RawConfigSchema.safeParse(raw);
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** Folders of the absolute image paths in a csv manifest (relative ones are under its folder). */
export function manifestDirs(manifest: string): string[] {
  try {
    const rows = parseCsv(Deno.readTextFileSync(manifest), manifest);
    const header = rows[0]?.cells.map((c) => c.trim().toLowerCase()) ?? [];
    const col = header.includes("path") ? header.indexOf("path") : header.indexOf("relpath");
    if (col < 0) return [];
    return collapse(
      rows.slice(1).map((r) => r.cells[col]?.trim() ?? "").filter((p) => isAbsolute(p)).map(dirname),
    );
  } catch {
    return []; // the loader reports it
  }
}

const manifestReads = (m: string): string[] => [dirname(m), ...manifestDirs(m)];

/** What `--data` names: the folder (with its manifest.csv's absolute rows), or a csv manifest's folder. */
export function dataFlagReads(dataFlag: string): string[] {
  const abs = resolve(dataFlag);
  return abs.endsWith(".csv") ? manifestReads(abs) : [abs, ...manifestDirs(join(abs, "manifest.csv"))];
}

/** What a loader section reads: its root/dir/manifest; a user loader's, its options that are existing paths. */
export function loaderReads(loader: Record<string, unknown>, baseDir: string): string[] {
  const name = String(loader.name ?? "");
  const strings = Object.entries(loader).filter((e): e is [string, string] =>
    e[0] !== "name" && typeof e[1] === "string"
  ).map(([k, v]) => [k, resolve(baseDir, v)] as const);
  if (isPluginPath(name)) return strings.map(([, p]) => p).filter(exists);
  return strings.flatMap(([k, p]) =>
    k === "manifest" ? manifestReads(p) : k === "root" || k === "dir" ? [p] : []
  );
}

/** Reads and writes of a run's config: its folder, plugin files, data and cache. */
export function configGrants(
  raw: RawConfig,
  configDir: string,
  dataFlag?: string,
): { read: string[]; write: string[] } {
  const baseDir = raw.baseDir === undefined ? configDir : resolve(configDir, raw.baseDir);
  const read = dataFlag === undefined ? loaderReads(raw.data.loader, baseDir) : dataFlagReads(dataFlag);
  for (const path of Object.values(PLUGIN_SECTION_PATHS)) {
    let section: unknown = raw;
    for (const k of path) section = (section as Record<string, unknown>)[k];
    const { name, module } = section as { name: string; module?: unknown };
    if (isPluginPath(name)) read.push(pluginPath(name, baseDir));
    if (name === "ts-function" && typeof module === "string") read.push(resolve(baseDir, module));
  }
  return { read, write: [resolve(Deno.cwd(), raw.data.cacheDir)] };
}

/** The library paths the child may load (HYBRIDNET_NATIVE_PATH, else the build outputs). */
export function libraryPaths(): string[] {
  return candidatePaths(Deno.env.get(NATIVE_PATH_ENV)).map((p) => resolve(p));
}

function grants(read: string[], write: string[]): Grants {
  return {
    read: collapse([join(ROOT, "ts"), ...read, ...write]),
    write: collapse(write),
    ffi: FFI_SCOPED ? libraryPaths() : null,
    env: [...CHILD_ENV],
    sys: [...CHILD_SYS],
  };
}

/** train: the config (or the resumed run's), its data, plugins and cache; writes under `--out` or the resumed run. */
export function trainPlan(o: TrainOpts): Plan {
  const overrides = [...o.set];
  if (o.device) overrides.push(`device=${o.device}`);
  if (o.name) overrides.push(`name=${o.name}`);
  const file = o.resume ? join(o.resume, "config.yaml") : o.config;
  const read = [dirname(resolve(file))];
  const write = [resolve(o.out), ...(o.resume ? [resolve(o.resume)] : [])];
  if (o.data !== undefined) read.push(...dataFlagReads(o.data));
  const raw = readRawConfig(file, overrides);
  if (raw !== null) {
    const g = configGrants(raw, dirname(resolve(file)), o.data);
    read.push(...g.read);
    write.push(...g.write);
  }
  return { command: "train", grants: grants(read, write), privateTmp: false };
}

/** eval: the checkpoint and its run folder, the config (given, or the run's), the data, plugins and cache. */
export function evalPlan(o: EvalOpts): Plan {
  const runDir = runDirOfCheckpoint(o.checkpoint);
  const file = o.config ?? (runDir ? join(runDir, "config.yaml") : null);
  const read = [resolve(o.checkpoint), ...(runDir ? [runDir] : []), ...dataFlagReads(o.data)];
  const write: string[] = [];
  if (file !== null) read.push(dirname(resolve(file)));
  // a bare data folder: the CLI builds a config around the loader it guesses (which reads --data)
  const raw = readRawConfig(file ?? { raw: { data: { loader: { name: "imagefolder" } } } }, o.set);
  if (raw !== null) {
    const g = configGrants(raw, file !== null ? dirname(resolve(file)) : Deno.cwd(), o.data);
    read.push(...g.read);
    write.push(...g.write);
  }
  return { command: "eval", grants: grants(read, write), privateTmp: false };
}

/** predict: the checkpoint, its run folder (inference.json) and the images; writes only its private temp folder. */
export function predictPlan(images: string[], o: { checkpoint: string }): Plan {
  const runDir = runDirOfCheckpoint(o.checkpoint);
  const read = [resolve(o.checkpoint), ...(runDir ? [runDir] : []), ...images.map((p) => resolve(p))];
  return { command: "predict", grants: grants(read, []), privateTmp: true };
}

/** Parses `args` with the CLI's program; the plan of the command, or an exit code (help, a usage error). */
export async function planFor(args: string[]): Promise<Plan | number> {
  const command = args[0];
  if (!(LAUNCHED as readonly string[]).includes(command)) {
    return reportError(
      new UsageError(
        `ts/launch.ts starts ${LAUNCHED.join(", ")}; got ${command ?? "nothing"}. ` +
          `Run other commands with ts/cli.ts`,
      ),
    );
  }
  const program = buildProgram();
  let plan: Plan | null = null;
  const sub = (name: Launched): Command => program.commands.find((c) => c.name() === name)!;
  sub("train").action((o: TrainOpts) => {
    plan = trainPlan(o);
  });
  sub("eval").action((o: EvalOpts) => {
    plan = evalPlan(o);
  });
  sub("predict").action((images: string[], o: { checkpoint: string }) => {
    plan = predictPlan(images, o);
  });
  try {
    await program.parseAsync(args, { from: "user" });
  } catch (err) {
    const e = err as { code?: string; exitCode?: number };
    if (typeof e.code === "string" && e.code.startsWith("commander.")) {
      return e.code === "commander.helpDisplayed" ? 0 : (e.exitCode ?? 1);
    }
    return reportError(err);
  }
  return plan ?? 0;
}

/** A permission flag's value: paths joined by commas (Deno 2.9 has no escape for a comma inside a path). */
function list(paths: string[]): string {
  const comma = paths.find((p) => p.includes(","));
  if (comma !== undefined) {
    throw new UsageError(
      `cannot grant ${comma}: Deno's permission lists are comma-separated; rename or move it`,
    );
  }
  return paths.join(",");
}

/** The `deno run` arguments of the child: the permission flags, then ts/cli.ts and `args`. */
export function childArgs(g: Grants, args: string[]): string[] {
  const flags = [
    "run",
    "--no-prompt",
    "--no-remote",
    "--cached-only",
    `--config=${join(ROOT, "deno.json")}`,
    `--allow-read=${list(g.read)}`,
    g.ffi === null ? "--allow-ffi" : `--allow-ffi=${list(g.ffi)}`,
    `--allow-env=${g.env.join(",")}`,
    `--allow-sys=${g.sys.join(",")}`,
  ];
  // an empty list would mean "everywhere": a command that writes nothing gets no flag
  if (g.write.length > 0) flags.push(`--allow-write=${list(g.write)}`);
  return [...flags, join(ROOT, "ts", "cli.ts"), ...args];
}

/** Signals passed on to the child, as what (SIGHUP, a closed terminal: the run saves and stops). */
const FORWARDED: [Deno.Signal, Deno.Signal][] = [
  ["SIGINT", "SIGINT"],
  ["SIGTERM", "SIGTERM"],
  ["SIGHUP", "SIGTERM"],
];

/** Runs the child of `plan` with `args`; returns its exit code. */
export async function runChild(plan: Plan, args: string[]): Promise<number> {
  let child: Deno.ChildProcess | null = null;
  let early: Deno.Signal | null = null; // a signal before the child exists: do not start it
  const listeners = FORWARDED.map(([sig, as]) => {
    const fn = (): void => {
      if (child === null) early = as;
      else {
        try {
          child.kill(as);
        } catch { /* already gone */ }
      }
    };
    Deno.addSignalListener(sig, fn);
    return [sig, fn] as const;
  });
  let tmp: string | null = null;
  try {
    const g = plan.grants;
    tmp = plan.privateTmp ? await Deno.makeTempDir({ prefix: "hn-launch-" }) : null;
    const flags = childArgs(
      tmp === null ? g : { ...g, read: [...g.read, tmp], write: [...g.write, tmp] },
      args,
    );
    if (early !== null) return 130;
    child = new Deno.Command(Deno.execPath(), {
      args: flags,
      env: tmp === null ? undefined : { TMPDIR: tmp },
      stdin: "null",
      stdout: "inherit",
      stderr: "inherit",
      // its own process group: a terminal's Ctrl-C reaches it once, from here
      detached: true,
    }).spawn();
    return (await child.status).code; // 128 + n when a signal ended it
  } finally {
    for (const [sig, fn] of listeners) Deno.removeSignalListener(sig, fn);
    if (tmp !== null) await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

/** Plans and runs `args` (`<train|eval|predict> ...`); returns the exit code. */
export async function launch(args: string[]): Promise<number> {
  const plan = await planFor(args);
  if (typeof plan === "number") return plan;
  try {
    return await runChild(plan, args);
  } catch (err) {
    return reportError(err);
  }
}

if (import.meta.main) {
  Deno.exit(await launch(Deno.args));
}
