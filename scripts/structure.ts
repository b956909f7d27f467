/**
 * `deno task structure`: the shape of ts/ as numbers — the module import graph (from `deno info`)
 * with every import that goes up a layer and every cycle, and the longest functions of
 * ts/pipeline. tests/architecture_test.ts asserts the same rules; this prints the summary.
 *
 * Layers, lowest first: native (ABI and handles) → model (options) → pipeline → plugins → cli.
 * Plugins sit above the pipeline's contracts (types.ts) and helpers, and the pipeline reaches
 * the built-in plugins only through the registry (ts/pipeline/registry.ts → ts/plugins/builtins.ts).
 */
import { relative } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

export const ROOT = fileURLToPath(new URL("../", import.meta.url));

/** Layer rank of a module under ts/ (higher may import lower). */
export function layerOf(path: string): { name: string; rank: number } {
  if (path.startsWith("ts/native/")) return { name: "native", rank: 0 };
  if (path.startsWith("ts/model/")) return { name: "model", rank: 1 };
  if (path.startsWith("ts/pipeline/")) return { name: "pipeline", rank: 2 };
  if (path.startsWith("ts/plugins/")) return { name: "plugins", rank: 3 };
  return { name: "top", rank: 4 }; // ts/cli.ts, ts/mod.ts
}

/** Imports that are allowed although they point at a higher layer (each with its reason). */
export const ALLOWED_UPWARD: Record<string, string> = {
  "ts/pipeline/registry.ts -> ts/plugins/builtins.ts":
    "the registry is the pipeline's one door to the built-ins",
};

/** The local module graph of ts/ as `path -> imported paths` (paths relative to the root). */
export async function importGraph(entries = ["ts/cli.ts", "ts/mod.ts"]): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  for (const entry of entries) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", entry],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) throw new Error(`deno info ${entry}: ${new TextDecoder().decode(out.stderr)}`);
    const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
      modules: {
        specifier: string;
        dependencies?: { code?: { specifier: string }; type?: { specifier: string } }[];
      }[];
    };
    for (const m of info.modules) {
      if (!m.specifier.startsWith("file://")) continue;
      const from = relative(ROOT, fileURLToPath(m.specifier));
      if (!from.startsWith("ts/")) continue;
      const deps = new Set(graph.get(from) ?? []);
      for (const d of m.dependencies ?? []) {
        for (const s of [d.code?.specifier, d.type?.specifier]) {
          if (s?.startsWith("file://")) deps.add(relative(ROOT, fileURLToPath(s)));
        }
      }
      graph.set(from, [...deps].sort());
    }
  }
  return graph;
}

/** Imports from a lower layer to a higher one that are not in ALLOWED_UPWARD. */
export function upwardImports(graph: Map<string, string[]>): string[] {
  const out: string[] = [];
  for (const [from, deps] of graph) {
    for (const to of deps) {
      const key = `${from} -> ${to}`;
      if (layerOf(to).rank > layerOf(from).rank && !(key in ALLOWED_UPWARD)) out.push(key);
    }
  }
  return out.sort();
}

/** Every cycle's modules (strongly connected components of more than one module, or a self-import). */
export function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>(), low = new Map<string, number>(), on = new Set<string>();
  const stack: string[] = [], out: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(comp.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}

/** A function (declaration, method, arrow or expression) and its length in lines, first to last. */
export interface FunctionSpan {
  file: string;
  name: string;
  line: number;
  lines: number;
}

/** The functions of one TS file with their line spans. */
export function functionSpans(file: string, text: string): FunctionSpan[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const out: FunctionSpan[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && (node as ts.FunctionLikeDeclaration).body) {
      const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
      const end = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
      const named = node as { name?: ts.Node };
      const name = named.name ? named.name.getText(sf) : `(anonymous at ${start + 1})`;
      out.push({ file, name, line: start + 1, lines: end - start + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/** Every function of the .ts files in `dir` (relative to the root), longest first. */
export function functionsIn(dir: string): FunctionSpan[] {
  const spans: FunctionSpan[] = [];
  for (const e of Deno.readDirSync(`${ROOT}/${dir}`)) {
    if (!e.isFile || !e.name.endsWith(".ts")) continue;
    const file = `${dir}/${e.name}`;
    spans.push(...functionSpans(file, Deno.readTextFileSync(`${ROOT}/${file}`)));
  }
  return spans.sort((a, b) => b.lines - a.lines);
}

if (import.meta.main) {
  const graph = await importGraph();
  const edges = [...graph.values()].reduce((a, d) => a + d.length, 0);
  console.log(`ts/ import graph: ${graph.size} modules, ${edges} local imports`);
  const byLayer = new Map<string, number>();
  for (const m of graph.keys()) byLayer.set(layerOf(m).name, (byLayer.get(layerOf(m).name) ?? 0) + 1);
  console.log(`  modules per layer: ${[...byLayer].map(([k, v]) => `${k} ${v}`).join(", ")}`);
  const up = upwardImports(graph);
  console.log(`  upward imports: ${up.length}${up.map((u) => `\n    ${u}`).join("")}`);
  for (const [k, why] of Object.entries(ALLOWED_UPWARD)) console.log(`  allowed: ${k} (${why})`);
  const cyc = cycles(graph);
  console.log(`  cycles: ${cyc.length}${cyc.map((c) => `\n    ${c.join(" <-> ")}`).join("")}`);
  const fns = functionsIn("ts/pipeline");
  console.log(`ts/pipeline: ${fns.length} functions; the longest:`);
  for (const f of fns.slice(0, 5)) console.log(`  ${f.lines} lines  ${f.file}:${f.line} ${f.name}`);
  for (const f of ["ts/pipeline/runner.ts"]) {
    console.log(`${f}: ${Deno.readTextFileSync(`${ROOT}/${f}`).split("\n").length - 1} lines`);
  }
}
