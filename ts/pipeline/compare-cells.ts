/**
 * How `compare` runs one (recipe, seed) cell: in this process, or (`--parallel N`) in a child
 * Deno process started on `ts/compare-cell.ts`, so that N runs train at once. A child speaks two
 * tagged JSON lines on stdout: the run folder as soon as it exists (so an interrupted comparison
 * resumes that run) and the cell's final figures. Both paths load the config with the same
 * overrides and run the same `runPipeline`, so a run's figures do not depend on where it ran
 * (given the same `train.threads`).
 */
import { fileURLToPath } from "node:url";
import { loadConfig } from "./config.ts";
import { DataError } from "./errors.ts";
import { runPipeline, type RunResult } from "./runner.ts";
import type { Metrics } from "./types.ts";

/** The final-epoch figures of one run. */
export interface CellResult {
  accuracy: number;
  macroF1: number;
  balancedAccuracy: number;
  macroRecall: number;
  weightedF1: number;
  perClassRecall: number[];
  /** training seconds summed over epochs (survives a resume) */
  trainSeconds: number;
  epochs: number;
  /**
   * How far val macro-F1 moved over the last 3 validated epochs (max - min), null with fewer:
   * under 0.005 the curve has flattened, so a longer run would not change the comparison much.
   * Absent in cells recorded before this field existed.
   */
  lastMove?: number | null;
}

/** max - min of the last 3 values, or null with fewer than 3. */
export function lastMove(values: number[]): number | null {
  if (values.length < 3) return null;
  const tail = values.slice(-3);
  return Math.max(...tail) - Math.min(...tail);
}

/** The figures of a finished run: its last epoch's validation. */
export function cellResult(result: Pick<RunResult, "history">): CellResult {
  const last = result.history.at(-1);
  const val: Metrics | undefined = last?.val?.all;
  if (!last || !val) {
    throw new DataError("compare: a run ended without validation figures (does the data have a val split?)");
  }
  return {
    accuracy: val.accuracy,
    macroF1: val.macroF1,
    balancedAccuracy: val.balancedAccuracy,
    macroRecall: val.macroRecall,
    weightedF1: val.weightedF1,
    perClassRecall: val.perClass.map((c) => c.recall),
    trainSeconds: result.history.reduce((a, h) => a + h.train.seconds, 0),
    epochs: result.history.length,
    lastMove: lastMove(result.history.flatMap((h) => h.val?.all ? [h.val.all.macroF1] : [])),
  };
}

/** One cell's run, as plain data (it crosses to a child process as JSON). */
export interface CellJob {
  /** the config file: the spec's base config, or the run's own config.yaml when resuming */
  config: string;
  /** `--set` overrides on it */
  overrides: string[];
  /** the run folder to resume, if any */
  resumeDir?: string;
  /** folder of the run folders */
  out: string;
  /** print the run's log */
  console: boolean;
}

/** Called once the run folder exists, with the data's class names. */
export type CellStarted = (dir: string, classNames: string[]) => Promise<void>;

/** Runs the cell in this process. */
export async function runCellInProcess(job: CellJob, started: CellStarted): Promise<CellResult> {
  const config = await loadConfig(job.config, job.overrides);
  const result = await runPipeline(config, {
    out: job.out,
    resumeDir: job.resumeDir,
    console: job.console,
    callbacks: [{ onFitStart: (info) => started(info.paths.dir, info.classNames) }],
  });
  return cellResult(result);
}

/** Tags of the child's stdout lines. */
export const CHILD_STARTED = "@@hn-cell-started";
export const CHILD_RESULT = "@@hn-cell-result";

const CHILD_MAIN = fileURLToPath(new URL("../compare-cell.ts", import.meta.url));

/**
 * Runs the cell in a child process (`deno run -A ts/compare-cell.ts JOB`). Its other output is
 * kept (the last lines go into the error when it fails) or, with `job.console`, passed through.
 */
export async function runCellInChild(job: CellJob, started: CellStarted): Promise<CellResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CHILD_MAIN, JSON.stringify(job)],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const kept: string[] = [];
  const keep = (line: string): void => {
    if (job.console) console.error(line);
    kept.push(line);
    if (kept.length > 40) kept.shift();
  };
  let result: CellResult | null = null;
  const readOut = async (): Promise<void> => {
    for await (const line of lines(child.stdout)) {
      if (line.startsWith(CHILD_STARTED + " ")) {
        const s = JSON.parse(line.slice(CHILD_STARTED.length + 1)) as { dir: string; classNames: string[] };
        await started(s.dir, s.classNames);
      } else if (line.startsWith(CHILD_RESULT + " ")) {
        result = JSON.parse(line.slice(CHILD_RESULT.length + 1)) as CellResult;
      } else keep(line);
    }
  };
  const readErr = async (): Promise<void> => {
    for await (const line of lines(child.stderr)) keep(line);
  };
  const [status] = await Promise.all([child.status, readOut(), readErr()]);
  if (!status.success || result === null) {
    throw new Error(
      `compare: the run in a child process failed (exit ${status.code}); its last output:\n${
        kept.join("\n")
      }`,
    );
  }
  return result;
}

/** The lines of a byte stream. */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop()!;
    yield* parts;
  }
  if (rest !== "") yield rest;
}

/**
 * Runs `task` on every item, at most `parallel` at a time, in order of start. After a failure no
 * new item starts; the running ones finish, then the first error is thrown.
 */
export async function pool<T>(items: T[], parallel: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | null = null;
  const worker = async (): Promise<void> => {
    while (failure === null && next < items.length) {
      const item = items[next++];
      try {
        await task(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(parallel, items.length)) }, worker));
  if (failure !== null) throw (failure as { error: unknown }).error;
}
