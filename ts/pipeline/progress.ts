/**
 * Per-epoch progress: on a terminal, one bar redrawn in place (images/s, loss, ETA); otherwise a
 * plain line about every 10% of the epoch.
 */

/** What the runner tells the progress display. */
export interface Progress {
  start(epoch: number, epochs: number, totalSteps: number, totalImages: number): void;
  update(step: number, images: number, loss: number): void;
  /** clears the bar line (before another line is printed) */
  clear(): void;
  end(): void;
}

function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return "--:--";
  const m = Math.floor(s / 60), sec = Math.floor(s % 60);
  return m >= 60
    ? `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`
    : `${m}:${String(sec).padStart(2, "0")}`;
}

/** Options of `createProgress`. */
export interface ProgressOptions {
  tty?: boolean;
  write?: (s: string) => void;
  now?: () => number;
}

/** A progress display for stdout (bar on a TTY, plain ~10% lines otherwise). */
export function createProgress(opts: ProgressOptions = {}): Progress {
  const tty = opts.tty ?? Deno.stdout.isTerminal();
  const enc = new TextEncoder();
  const write = opts.write ?? ((s: string): void => void Deno.stdout.writeSync(enc.encode(s)));
  const now = opts.now ?? ((): number => performance.now());
  let epoch = 0, epochs = 0, total = 0, t0 = 0, lastTenth = -1, shown = false, lastDraw = 0;
  return {
    start(e, es, totalSteps): void {
      epoch = e;
      epochs = es;
      total = totalSteps;
      t0 = now();
      lastTenth = 0;
      lastDraw = 0;
    },
    update(step, images, loss): void {
      const elapsed = (now() - t0) / 1000;
      const rate = images / Math.max(elapsed, 1e-9);
      const eta = step > 0 ? (elapsed / step) * (total - step) : Infinity;
      const head = `epoch ${epoch}/${epochs}`;
      const tail = `${step}/${total} ${rate.toFixed(1)} img/s loss ${
        Number.isNaN(loss) ? "-" : loss.toFixed(4)
      } ETA ${fmtTime(eta)}`;
      if (tty) {
        const t = now();
        if (step < total && t - lastDraw < 100) return;
        lastDraw = t;
        const width = 30, filled = Math.round((step / Math.max(total, 1)) * width);
        write(`\r\x1b[2K${head} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${tail}`);
        shown = true;
      } else {
        const tenth = Math.floor((step * 10) / Math.max(total, 1));
        if (tenth > lastTenth) {
          lastTenth = tenth;
          write(`${head} ${tenth * 10}% ${tail}\n`);
        }
      }
    },
    clear(): void {
      if (tty && shown) {
        write("\r\x1b[2K");
        shown = false;
      }
    },
    end(): void {
      this.clear();
    },
  };
}
