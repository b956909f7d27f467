/**
 * Helpers shared by the built-in loaders: path resolution, class-folder naming and ordering,
 * and a stratified train/val split.
 */
import { isAbsolute, resolve } from "node:path";
import type { Rng } from "../../pipeline/types.ts";

/** `p` resolved against `baseDir` unless it is absolute. */
export function resolveFrom(baseDir: string, p: string): string {
  return isAbsolute(p) ? p : resolve(baseDir, p);
}

/** True when `path` exists and is a directory. */
export function isDir(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

/** True when `path` exists and is a file. */
export function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

const PREFIX = /^(\d+)_(.+)$/;

/**
 * Orders class folder names and derives class names: when every folder is named `N_name`, they
 * are sorted by the integer N (then by name) and the class name drops the `N_` prefix;
 * otherwise they are sorted alphabetically (code-point order) and the folder name is the class
 * name.
 */
export function orderClassFolders(folders: string[]): { folder: string; name: string }[] {
  const allPrefixed = folders.length > 0 && folders.every((f) => PREFIX.test(f));
  if (allPrefixed) {
    return folders
      .map((folder) => {
        const m = PREFIX.exec(folder)!;
        return { folder, name: m[2], n: Number(m[1]) };
      })
      .sort((a, b) => a.n - b.n || (a.folder < b.folder ? -1 : a.folder > b.folder ? 1 : 0))
      .map(({ folder, name }) => ({ folder, name }));
  }
  return [...folders].sort().map((folder) => ({ folder, name: folder }));
}

/** Fisher-Yates shuffle in place. */
export function shuffleInPlace<T>(a: T[] | Int32Array, rng: Rng): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
}

/**
 * Splits item indices stratified per class: each class's indices (in their given order) are
 * shuffled with `rng` (classes in ascending order, one stream) and the first
 * `round(trainFraction * n)` go to train, the rest to val; a class with at least 2 items keeps
 * at least one in each part. Returned index lists are sorted ascending.
 */
export function stratifiedSplit(
  labels: ArrayLike<number>,
  numClasses: number,
  trainFraction: number,
  rng: Rng,
): { train: number[]; val: number[] } {
  const byClass: number[][] = Array.from({ length: numClasses }, () => []);
  for (let i = 0; i < labels.length; i++) byClass[labels[i]].push(i);
  const train: number[] = [];
  const val: number[] = [];
  for (const idx of byClass) {
    const n = idx.length;
    if (n === 0) continue;
    shuffleInPlace(idx, rng);
    let nTrain = Math.round(trainFraction * n);
    if (n >= 2) nTrain = Math.min(n - 1, Math.max(1, nTrain));
    else nTrain = 1;
    for (let k = 0; k < n; k++) (k < nTrain ? train : val).push(idx[k]);
  }
  train.sort((a, b) => a - b);
  val.sort((a, b) => a - b);
  return { train, val };
}

/** Count of each label in [0, numClasses). */
export function countLabels(labels: ArrayLike<number>, numClasses: number): number[] {
  const counts = new Array<number>(numClasses).fill(0);
  for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
  return counts;
}
