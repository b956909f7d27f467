/**
 * One error class per kind of failure the user can fix; the CLI prints each as one message
 * without a stack (anything else is a bug and keeps its stack):
 *
 * - `ConfigError`: a config file or `--set` value that does not validate (one line per issue,
 *   `file: a.b.c — what to change`).
 * - `PluginError`: a plugin that cannot be found or whose options are invalid (section-relative
 *   paths; the config layer turns it into a ConfigError naming the section).
 * - `DataError`: the data (files, splits, labels, checkpoints a command reads) is not usable.
 * - `DivergenceError`: training produced a non-finite loss.
 * - `UsageError`: command-line arguments that do not make sense.
 * - `InterruptedError`: SIGINT/SIGTERM stopped a run after saving a resumable checkpoint (exit 130).
 *
 * Native failures are `NativeError` (ts/native/errors.ts), with a code.
 */
import { isAbsolute, relative } from "node:path";

/** One config problem: dotted path (empty for the whole file) and what to change. */
export interface ConfigIssue {
  path: (string | number)[];
  message: string;
}

/** A config that does not validate, with every issue (never a generic message). */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(readonly file: string, readonly issues: ConfigIssue[], options?: ErrorOptions) {
    super(formatIssues(file, issues), options);
  }

  /** One line per issue: `file: a.b.c — message`. */
  format(): string {
    return formatIssues(this.file, this.issues);
  }
}

/** A path as the user would type it: relative to the working directory when inside it. */
export function displayFile(file: string): string {
  if (!isAbsolute(file)) return file;
  const rel = relative(Deno.cwd(), file);
  return rel.startsWith("..") ? file : rel;
}

/** `file: a.b.c — message` per issue. */
export function formatIssues(file: string, issues: ConfigIssue[]): string {
  return issues
    .map((i) => `${displayFile(file)}: ${i.path.length ? i.path.join(".") : "(root)"} — ${i.message}`)
    .join("\n");
}

/** One problem with a plugin section, with a path relative to the section. */
export interface PluginIssue {
  path: (string | number)[];
  message: string;
}

/** Thrown when a plugin cannot be found or its options are invalid; carries the issues. */
export class PluginError extends Error {
  override readonly name = "PluginError";
  constructor(readonly issues: PluginIssue[], options?: ErrorOptions) {
    super(
      issues.map((i) => (i.path.length > 0 ? `${i.path.join(".")}: ${i.message}` : i.message)).join("; "),
      options,
    );
  }
}

/** A data problem the user must fix (files, splits, labels, a checkpoint a command reads). */
export class DataError extends Error {
  override readonly name = "DataError";
}

/** Training diverged: the loss is no longer a finite number. */
export class DivergenceError extends Error {
  override readonly name = "DivergenceError";
}

/** Command-line arguments that do not make sense (a flag's value, a missing argument). */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** A run stopped by SIGINT/SIGTERM after writing a resumable checkpoint; the message says how to resume. */
export class InterruptedError extends Error {
  override readonly name = "InterruptedError";
}
