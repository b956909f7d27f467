/**
 * Loader "csv": a manifest CSV with a header row.
 *
 * Columns: `path` or `relpath` (image file; relative paths resolve against the manifest's
 * folder), `label` (class index or class name), optional `split` (`train`, `val` or `test`; an
 * empty cell means train). Without a split column every row is train, unless `splitRatio` is set
 * (then train is split stratified into train/val with `splitSeed`).
 *
 * Class names come from the `classes` option, else `classes.csv` next to the manifest
 * (`label,name`), else from the labels (integers: "0".."K-1"; names: sorted unique names).
 * Errors give `file:line`.
 */
import { dirname, join } from "node:path";
import { z } from "zod";
import { createRng, deriveSeed } from "../../pipeline/rng.ts";
import type { Dataset, Loader, PluginModule, Split } from "../../pipeline/types.ts";
import { isFile, resolveFrom, stratifiedSplit } from "./common.ts";

export const configSchema = z.object({
  /** manifest CSV, relative to the config file's folder */
  manifest: z.string().min(1),
  /** class names in label order; null: classes.csv next to the manifest, else from the labels */
  classes: z.array(z.string().min(1)).min(1).nullable().default(null),
  /** check that every image file exists (one stat per row) */
  checkFiles: z.boolean().default(true),
  /** without a split column: fraction of each class kept in train, the rest is val */
  splitRatio: z.number().gt(0).lt(1).nullable().default(null),
  splitSeed: z.number().int().default(0),
}).strict();

export type CsvConfig = z.infer<typeof configSchema>;

/** One parsed record with the (1-based) line it starts on. */
export interface CsvRecord {
  line: number;
  cells: string[];
}

/** RFC 4180 CSV: quoted cells with `""` escapes and embedded newlines; CRLF or LF; blank lines skipped. */
export function parseCsv(text: string, file: string): CsvRecord[] {
  const out: CsvRecord[] = [];
  let i = 0;
  let line = 1;
  if (text.charCodeAt(0) === 0xfeff) i = 1; // BOM
  while (i < text.length) {
    const start = line;
    const cells: string[] = [];
    let cell = "";
    let quoted = false;
    let atCellStart = true;
    let done = false;
    while (!done) {
      if (i >= text.length) {
        if (quoted) throw new Error(`${file}:${start}: unterminated quoted cell`);
        cells.push(cell);
        break;
      }
      const ch = text[i];
      if (quoted) {
        if (ch === '"') {
          if (text[i + 1] === '"') {
            cell += '"';
            i += 2;
          } else {
            quoted = false;
            i++;
          }
        } else {
          if (ch === "\n") line++;
          cell += ch;
          i++;
        }
        continue;
      }
      if (ch === '"' && atCellStart) {
        quoted = true;
        atCellStart = false;
        i++;
      } else if (ch === ",") {
        cells.push(cell);
        cell = "";
        atCellStart = true;
        i++;
      } else if (ch === "\n" || ch === "\r") {
        cells.push(cell);
        i += ch === "\r" && text[i + 1] === "\n" ? 2 : 1;
        line++;
        done = true;
      } else {
        cell += ch;
        atCellStart = false;
        i++;
      }
    }
    if (!(cells.length === 1 && cells[0].trim() === "")) out.push({ line: start, cells });
  }
  return out;
}

function readClassesCsv(path: string): string[] {
  const rows = parseCsv(Deno.readTextFileSync(path), path);
  if (rows.length === 0) throw new Error(`${path}:1: empty classes file (expected a header "label,name")`);
  const header = rows[0].cells.map((h) => h.trim().toLowerCase());
  const li = header.indexOf("label");
  const ni = header.indexOf("name");
  if (li < 0 || ni < 0) throw new Error(`${path}:${rows[0].line}: header needs columns "label" and "name"`);
  const names: string[] = [];
  for (const r of rows.slice(1)) {
    const label = Number(r.cells[li]?.trim());
    const name = r.cells[ni]?.trim() ?? "";
    if (!Number.isInteger(label) || label < 0) {
      throw new Error(`${path}:${r.line}: label "${r.cells[li] ?? ""}" is not a non-negative integer`);
    }
    if (name === "") throw new Error(`${path}:${r.line}: empty class name`);
    if (names[label] !== undefined) throw new Error(`${path}:${r.line}: label ${label} listed twice`);
    names[label] = name;
  }
  for (let k = 0; k < names.length; k++) {
    if (names[k] === undefined) {
      throw new Error(`${path}: label ${k} is missing (labels must be 0..${names.length - 1})`);
    }
  }
  if (names.length === 0) throw new Error(`${path}: no classes listed`);
  return names;
}

const SPLITS = ["train", "val", "test"] as const;
type SplitName = typeof SPLITS[number];

/** Loads a manifest dataset (see the module doc). */
export function loadCsv(cfg: CsvConfig, configDir: string, log: (line: string) => void): Dataset {
  const manifest = resolveFrom(configDir, cfg.manifest);
  if (!isFile(manifest)) throw new Error(`csv: manifest ${manifest} does not exist`);
  const baseDir = dirname(manifest);
  const rows = parseCsv(Deno.readTextFileSync(manifest), manifest);
  if (rows.length === 0) throw new Error(`${manifest}:1: empty manifest (expected a header row)`);
  const header = rows[0].cells.map((h) => h.trim().toLowerCase());
  const pathCol = header.indexOf("path") >= 0 ? header.indexOf("path") : header.indexOf("relpath");
  const labelCol = header.indexOf("label");
  const splitCol = header.indexOf("split");
  if (pathCol < 0 || labelCol < 0) {
    throw new Error(
      `${manifest}:${rows[0].line}: header needs a "path" (or "relpath") and a "label" column; got ` +
        `"${rows[0].cells.join(",")}"`,
    );
  }
  let classNames: string[] | null = cfg.classes;
  const classesCsv = join(baseDir, "classes.csv");
  if (classNames === null && isFile(classesCsv)) classNames = readClassesCsv(classesCsv);

  const body = rows.slice(1);
  // first pass: raw labels (to derive classes when none are given)
  const rawLabels = body.map((r) => (r.cells[labelCol] ?? "").trim());
  const isIntLabel = (s: string): boolean => /^\d+$/.test(s);
  if (classNames === null) {
    if (rawLabels.every(isIntLabel)) {
      const max = rawLabels.reduce((m, s) => Math.max(m, Number(s)), -1);
      classNames = Array.from({ length: max + 1 }, (_, k) => String(k));
    } else {
      classNames = [...new Set(rawLabels.filter((s) => !isIntLabel(s)))].sort();
    }
    log(`csv: no classes option or ${classesCsv}; classes taken from the labels: ${classNames.join(", ")}`);
  }
  const nameIndex = new Map(classNames.map((n, k) => [n, k]));
  const parts: Record<SplitName, { paths: string[]; labels: number[] }> = {
    train: { paths: [], labels: [] },
    val: { paths: [], labels: [] },
    test: { paths: [], labels: [] },
  };
  body.forEach((r, j) => {
    const where = `${manifest}:${r.line}`;
    if (r.cells.length !== header.length) {
      throw new Error(`${where}: ${r.cells.length} cells, the header has ${header.length}`);
    }
    const p = r.cells[pathCol].trim();
    if (p === "") throw new Error(`${where}: empty path`);
    const raw = rawLabels[j];
    let label: number;
    if (isIntLabel(raw)) {
      label = Number(raw);
      if (label >= classNames.length) {
        throw new Error(`${where}: label ${label} is out of range (${classNames.length} classes)`);
      }
    } else {
      const k = nameIndex.get(raw);
      if (k === undefined) {
        throw new Error(
          `${where}: label "${raw}" is neither a class index nor a class name (${classNames.join(", ")})`,
        );
      }
      label = k;
    }
    let split: SplitName = "train";
    if (splitCol >= 0) {
      const s = r.cells[splitCol].trim().toLowerCase();
      if (s !== "") {
        if (!(SPLITS as readonly string[]).includes(s)) {
          throw new Error(`${where}: split "${r.cells[splitCol]}" is not one of train, val, test`);
        }
        split = s as SplitName;
      }
    }
    const abs = resolveFrom(baseDir, p);
    if (cfg.checkFiles && !isFile(abs)) throw new Error(`${where}: image file ${abs} does not exist`);
    parts[split].paths.push(abs);
    parts[split].labels.push(label);
  });
  if (parts.train.paths.length === 0) throw new Error(`${manifest}: no train rows`);
  const toSplit = (p: { paths: string[]; labels: number[] }): Split => ({
    source: { kind: "files", paths: p.paths },
    labels: Int32Array.from(p.labels),
  });
  const ds: Dataset = { classNames, train: toSplit(parts.train), description: `csv manifest ${manifest}` };
  if (cfg.splitRatio !== null) {
    if (splitCol >= 0 && parts.val.paths.length > 0) {
      throw new Error(`${manifest}: the manifest already has val rows; remove splitRatio`);
    }
    const rng = createRng(deriveSeed(cfg.splitSeed, "csv-split"));
    const { train, val } = stratifiedSplit(parts.train.labels, classNames.length, cfg.splitRatio, rng);
    const pick = (idx: number[]): { paths: string[]; labels: number[] } => ({
      paths: idx.map((i) => parts.train.paths[i]),
      labels: idx.map((i) => parts.train.labels[i]),
    });
    ds.train = toSplit(pick(train));
    ds.val = toSplit(pick(val));
    ds.description += ` (train split ${cfg.splitRatio} per class, splitSeed ${cfg.splitSeed})`;
  } else if (parts.val.paths.length > 0) {
    ds.val = toSplit(parts.val);
  }
  if (parts.test.paths.length > 0) ds.test = toSplit(parts.test);
  return ds;
}

export const plugin: PluginModule<typeof configSchema, Loader> = {
  name: "csv",
  configSchema,
  create(cfg, ctx): Loader {
    return {
      load: (): Promise<Dataset> => Promise.resolve().then(() => loadCsv(cfg, ctx.configDir, ctx.log)),
    };
  },
};
