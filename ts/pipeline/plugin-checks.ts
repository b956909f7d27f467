/**
 * Checks of what plugins hand back, at the boundary where the pipeline takes it: a sampler's
 * index order and a TS loss's result. A plugin's mistake becomes a `PluginError` that names the
 * plugin (its built-in name or its file) and what it returned, instead of a stack trace from
 * deep inside the loop or a native error about a buffer length.
 */
import { PluginError } from "./errors.ts";

/** How a plugin is named in messages: `sampler "inverse-frequency"` or `sampler /path/to/mine.ts`. */
export function pluginLabel(section: string, name: string): string {
  return /[\\/]|\.(ts|js|mts|mjs)$/.test(name) ? `${section} plugin ${name}` : `${section} plugin "${name}"`;
}

function fail(label: string, message: string): never {
  throw new PluginError([{ path: [], message: `${label}: ${message}` }]);
}

/** A sampler's order for an epoch: an Int32Array, not empty, every index in [0, n). */
export function checkOrder(order: unknown, n: number, label: string, epoch: number): Int32Array {
  if (!(order instanceof Int32Array)) {
    const got = Array.isArray(order) ? "a plain Array" : order === null ? "null" : typeof order;
    fail(label, `sample() must return an Int32Array of training indices; got ${got} (epoch ${epoch + 1})`);
  }
  if (order.length === 0) {
    fail(label, `sample() drew no training images for epoch ${epoch + 1}; an epoch needs at least one`);
  }
  for (let i = 0; i < order.length; i++) {
    const v = order[i];
    if (v < 0 || v >= n) {
      fail(
        label,
        `sample() returned index ${v} at position ${i}; the training split has ${n} images (0..${n - 1})`,
      );
    }
  }
  return order;
}

/** A TS loss's result for a batch of n rows and c classes: a finite-or-not loss and an n×c gradient. */
export function checkLossResult(
  r: unknown,
  n: number,
  c: number,
  label: string,
): { loss: number; grad: Float32Array } {
  const res = r as { loss?: unknown; grad?: unknown } | null;
  if (typeof res !== "object" || res === null || typeof res.loss !== "number") {
    fail(
      label,
      `compute() must return { loss: number, grad: Float32Array }; got ${JSON.stringify(r)?.slice(0, 80)}`,
    );
  }
  if (!(res.grad instanceof Float32Array)) {
    fail(label, `compute() must return grad as a Float32Array of ${n}×${c} values; got ${typeof res.grad}`);
  }
  if (res.grad.length !== n * c) {
    fail(
      label,
      `compute() returned ${res.grad.length} gradient values for a batch of ${n} rows × ${c} classes (${
        n * c
      })`,
    );
  }
  for (let i = 0; i < res.grad.length; i++) {
    if (!Number.isFinite(res.grad[i])) {
      fail(
        label,
        `compute() returned a non-finite gradient (${res.grad[i]}) at row ${Math.floor(i / c)}, class ${
          i % c
        }`,
      );
    }
  }
  return res as { loss: number; grad: Float32Array };
}
