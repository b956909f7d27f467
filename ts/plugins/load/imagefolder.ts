/**
 * Loader "imagefolder": images in class folders.
 *
 * Layout A (no `splitRatio`): `root/train/<class>/*`, optionally `root/val/<class>/*` and
 * `root/test/<class>/*`. Classes are the folders of `train`; `val`/`test` may lack a class but
 * may not add one.
 *
 * Layout B (`splitRatio` set): `root/<class>/*`, split stratified per class into train
 * (fraction `splitRatio`) and val with `splitSeed`. If `root/train` exists instead, that folder is
 * split and `root/test` (if any) is kept as the test split.
 *
 * Class order: when every class folder is named `N_name` (like `3_monocyte`), by N and the
 * class name is `name`; otherwise alphabetical with the folder name as class name. Files are
 * taken in sorted order, hidden files skipped, extensions matched case-insensitively.
 */
import { join } from "node:path";
import { z } from "zod";
import { createRng, deriveSeed } from "../../pipeline/rng.ts";
import type { Dataset, Loader, PluginModule, Split } from "../../pipeline/types.ts";
import { isDir, orderClassFolders, resolveFrom, stratifiedSplit } from "./common.ts";

export const DEFAULT_IMAGE_EXTENSIONS = ["jpg", "jpeg", "png", "bmp", "gif", "tif", "tiff", "webp"];

export const configSchema = z.object({
  /** dataset folder, relative to the config file's folder */
  root: z.string().min(1),
  /** file extensions (without dot, case-insensitive) that count as images */
  extensions: z.array(z.string().min(1)).min(1).default(DEFAULT_IMAGE_EXTENSIONS),
  /** fraction of each class that goes to train when splitting one folder (layout B) */
  splitRatio: z.number().gt(0).lt(1).nullable().default(null),
  /** seed of the stratified split (independent of the run's seed, so the split stays fixed) */
  splitSeed: z.number().int().default(0),
}).strict();

export type ImageFolderConfig = z.infer<typeof configSchema>;

function listDirs(path: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(path)) {
    if (e.isDirectory && !e.name.startsWith(".")) out.push(e.name);
  }
  return out;
}

function listImages(dir: string, exts: Set<string>): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    if (e.name.startsWith(".") || !(e.isFile || e.isSymlink)) continue;
    const dot = e.name.lastIndexOf(".");
    if (dot < 0 || !exts.has(e.name.slice(dot + 1).toLowerCase())) continue;
    out.push(e.name);
  }
  return out.sort().map((f) => join(dir, f));
}

interface ClassListing {
  classNames: string[];
  folders: string[];
}

function classListing(dir: string): ClassListing {
  const folders = listDirs(dir);
  if (folders.length === 0) throw new Error(`imagefolder: no class folders in ${dir}`);
  const ordered = orderClassFolders(folders);
  const names = ordered.map((o) => o.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) {
    throw new Error(`imagefolder: two class folders in ${dir} give the class name "${dup}"`);
  }
  return { classNames: names, folders: ordered.map((o) => o.folder) };
}

/** Reads `dir/<class>/*` for known classes; `requireAll`: every class folder must exist and be non-empty. */
function readSplit(
  dir: string,
  listing: ClassListing,
  exts: Set<string>,
  requireAll: boolean,
  log: (line: string) => void,
): Split {
  const present = new Set(listDirs(dir));
  for (const f of present) {
    if (!listing.folders.includes(f)) {
      throw new Error(
        `imagefolder: ${join(dir, f)} is a class folder that the train split does not have ` +
          `(classes: ${listing.folders.join(", ")})`,
      );
    }
  }
  const paths: string[] = [];
  const labels: number[] = [];
  listing.folders.forEach((folder, k) => {
    const classDir = join(dir, folder);
    if (!present.has(folder)) {
      if (requireAll) throw new Error(`imagefolder: missing class folder ${classDir}`);
      log(`imagefolder: ${classDir} does not exist; class ${k} has no images in this split`);
      return;
    }
    const files = listImages(classDir, exts);
    if (files.length === 0) {
      const msg = `imagefolder: class folder ${classDir} has no images (extensions: ${[...exts].join(",")})`;
      if (requireAll) throw new Error(msg);
      log(msg);
    }
    for (const f of files) {
      paths.push(f);
      labels.push(k);
    }
  });
  return { source: { kind: "files", paths }, labels: Int32Array.from(labels) };
}

function subset(split: Split, idx: number[]): Split {
  if (split.source.kind !== "files") throw new Error("imagefolder: internal: expected a files source");
  const paths = split.source.paths;
  return {
    source: { kind: "files", paths: idx.map((i) => paths[i]) },
    labels: Int32Array.from(idx, (i) => split.labels[i]),
  };
}

/** Loads an image-folder dataset (see the module doc). */
export function loadImageFolder(
  cfg: ImageFolderConfig,
  configDir: string,
  log: (line: string) => void,
): Dataset {
  const root = resolveFrom(configDir, cfg.root);
  if (!isDir(root)) throw new Error(`imagefolder: root folder ${root} does not exist`);
  const exts = new Set(cfg.extensions.map((e) => e.replace(/^\./, "").toLowerCase()));
  const trainDir = join(root, "train");
  if (cfg.splitRatio === null) {
    if (!isDir(trainDir)) {
      throw new Error(
        `imagefolder: ${trainDir} does not exist; use root/{train,val,test}/<class>/ or set splitRatio ` +
          `to split root/<class>/ into train and val`,
      );
    }
    const listing = classListing(trainDir);
    const ds: Dataset = {
      classNames: listing.classNames,
      train: readSplit(trainDir, listing, exts, true, log),
      description: `imagefolder ${root} (train${isDir(join(root, "val")) ? "/val" : ""}` +
        `${isDir(join(root, "test")) ? "/test" : ""})`,
    };
    for (const s of ["val", "test"] as const) {
      const d = join(root, s);
      if (isDir(d)) ds[s] = readSplit(d, listing, exts, false, log);
    }
    return ds;
  }
  const hasTrain = isDir(trainDir);
  if (hasTrain && isDir(join(root, "val"))) {
    throw new Error(
      `imagefolder: ${root} already has train/ and val/ folders; remove splitRatio to use them`,
    );
  }
  const splitDir = hasTrain ? trainDir : root;
  const listing = classListing(splitDir);
  const all = readSplit(splitDir, listing, exts, true, log);
  const rng = createRng(deriveSeed(cfg.splitSeed, "imagefolder-split"));
  const { train, val } = stratifiedSplit(all.labels, listing.classNames.length, cfg.splitRatio, rng);
  const ds: Dataset = {
    classNames: listing.classNames,
    train: subset(all, train),
    val: subset(all, val),
    description: `imagefolder ${splitDir} split ${cfg.splitRatio}/${+(1 - cfg.splitRatio).toFixed(
      6,
    )} per class (splitSeed ${cfg.splitSeed})`,
  };
  if (hasTrain && isDir(join(root, "test"))) {
    ds.test = readSplit(join(root, "test"), listing, exts, false, log);
  }
  return ds;
}

export const plugin: PluginModule<typeof configSchema, Loader> = {
  name: "imagefolder",
  configSchema,
  create(cfg, ctx): Loader {
    return {
      load: (): Promise<Dataset> =>
        Promise.resolve().then(() => loadImageFolder(cfg, ctx.configDir, ctx.log)),
    };
  },
};
