/**
 * Log lines in the seed's format, to train.log and the console:
 * `2024-10-31 11:28:41,157 - CurriculumTrainer - INFO - Accuracy: 65.58%`.
 */

/** The logger name the seed's logs carry. */
export const LOGGER_NAME = "CurriculumTrainer";

export type Level = "DEBUG" | "INFO" | "WARNING" | "ERROR";

function pad(n: number, w = 2): string {
  return String(n).padStart(w, "0");
}

/** `YYYY-MM-DD HH:MM:SS,mmm` in local time, like Python's logging `asctime`. */
export function formatTimestamp(d: Date): string {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())},${pad(d.getMilliseconds(), 3)}`;
}

/** One log line (no newline). */
export function formatLine(
  message: string,
  level: Level = "INFO",
  d: Date = new Date(),
  name = LOGGER_NAME,
): string {
  return `${formatTimestamp(d)} - ${name} - ${level} - ${message}`;
}

/** A line-oriented logger; `close()` flushes and closes the file. */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  /** `{ console: false }`: train.log only (the caller prints the error itself) */
  error(message: string, opts?: { console?: boolean }): void;
  debug(message: string): void;
  close(): void;
}

/** Options of `createLogger`. */
export interface LoggerOptions {
  /** file appended to (train.log); null: console only */
  file?: string | null;
  /** echo to the console (stderr for warnings and errors) */
  console?: boolean;
  /** write DEBUG lines (hook timings) */
  debug?: boolean;
  /** called before each console line (the progress bar clears its line) */
  beforeConsole?: () => void;
}

/** A logger writing synchronously (a killed run keeps every line written so far). */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const enc = new TextEncoder();
  let file: Deno.FsFile | null = opts.file ? Deno.openSync(opts.file, { append: true, create: true }) : null;
  const write = (level: Level, message: string, toConsole = true): void => {
    if (level === "DEBUG" && !opts.debug) return;
    const lines = message.split("\n").map((m) => formatLine(m, level));
    if (file) file.writeSync(enc.encode(lines.join("\n") + "\n"));
    if (opts.console !== false && toConsole) {
      opts.beforeConsole?.();
      for (const l of lines) (level === "ERROR" || level === "WARNING" ? console.error : console.log)(l);
    }
  };
  return {
    info: (m) => write("INFO", m),
    warn: (m) => write("WARNING", m),
    error: (m, o) => write("ERROR", m, o?.console !== false),
    debug: (m) => write("DEBUG", m),
    close(): void {
      if (file) {
        file.close();
        file = null;
      }
    },
  };
}
