/**
 * Opens a local HTML file in headless Chromium (Debian's `chromium`, or $CHROMIUM) through the
 * DevTools protocol over Deno's own WebSocket: no npm package. Collects console errors, uncaught
 * exceptions and browser log errors (a failed load, a blocked request), evaluates an expression
 * in the loaded page, and takes a full-page PNG screenshot.
 */
import { join } from "node:path";

/** What `openPage` saw. */
export interface PageResult {
  /** console.error/assert calls, uncaught exceptions and error-level browser log entries */
  errors: string[];
  /** the value of the evaluated expression (returned by value) */
  value: unknown;
  /** PNG bytes of the whole page */
  screenshot: Uint8Array;
}

/** The Chromium binary: $CHROMIUM, else `chromium` on PATH; null when neither exists. */
export function chromiumPath(): string | null {
  const env = Deno.env.get("CHROMIUM");
  if (env) return env;
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(join(dir, "chromium")).isFile) return join(dir, "chromium");
    } catch { /* not in this folder */ }
  }
  return null;
}

/** One DevTools connection: numbered commands, event listeners. */
class Cdp {
  #ws: WebSocket;
  #id = 0;
  #pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  #listeners: ((method: string, params: Record<string, unknown>) => void)[] = [];
  closed: Promise<void>;

  constructor(url: string) {
    this.#ws = new WebSocket(url);
    this.closed = new Promise((resolve) => this.#ws.addEventListener("close", () => resolve()));
    this.#ws.addEventListener("message", (e) => {
      const msg = JSON.parse(e.data as string);
      if (msg.id !== undefined) {
        const p = this.#pending.get(msg.id);
        this.#pending.delete(msg.id);
        if (msg.error) p?.reject(new Error(`CDP: ${JSON.stringify(msg.error)}`));
        else p?.resolve(msg.result);
      } else {
        for (const l of this.#listeners) l(msg.method, msg.params ?? {});
      }
    });
  }

  open(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#ws.addEventListener("open", () => resolve());
      this.#ws.addEventListener("error", () => reject(new Error("CDP: websocket error")));
    });
  }

  send<T = Record<string, unknown>>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = ++this.#id;
    this.#ws.send(JSON.stringify({ id, method, params }));
    return new Promise((resolve, reject) =>
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
    );
  }

  on(fn: (method: string, params: Record<string, unknown>) => void): void {
    this.#listeners.push(fn);
  }

  async close(): Promise<void> {
    this.#ws.close();
    await this.closed;
  }
}

/** Reads Chromium's stderr until the DevTools line; keeps draining it afterwards. */
async function devtoolsPort(
  stderr: ReadableStream<Uint8Array>,
): Promise<{ port: number; drained: Promise<string> }> {
  const reader = stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`chromium exited before DevTools started:\n${text}`);
    text += value;
    const m = text.match(/DevTools listening on ws:\/\/[^:]+:(\d+)\//);
    if (m) {
      const drained = (async (): Promise<string> => {
        for (;;) {
          const r = await reader.read();
          if (r.done) return text;
          text += r.value;
        }
      })();
      return { port: Number(m[1]), drained };
    }
  }
}

/** The messages of the error-level events a page produced. */
function collectErrors(cdp: Cdp, errors: string[]): void {
  cdp.on((method, p) => {
    if (method === "Runtime.consoleAPICalled" && (p.type === "error" || p.type === "assert")) {
      const args = (p.args as { value?: unknown; description?: string }[]).map((a) =>
        a.value ?? a.description
      );
      errors.push(`console.${p.type}: ${args.join(" ")}`);
    } else if (method === "Runtime.exceptionThrown") {
      const d = p.exceptionDetails as { text: string; exception?: { description?: string } };
      errors.push(`exception: ${d.exception?.description ?? d.text}`);
    } else if (method === "Log.entryAdded") {
      const e = p.entry as { level: string; text: string; url?: string };
      if (e.level === "error") errors.push(`log: ${e.text}${e.url ? ` (${e.url})` : ""}`);
    }
  });
}

/** Loads `file` (width × height viewport), evaluates `expression`, screenshots the whole page. */
export async function openPage(
  file: string,
  expression: string,
  viewport: { width: number; height: number } = { width: 1200, height: 900 },
): Promise<PageResult> {
  const bin = chromiumPath();
  if (bin === null) throw new Error("chromium not found: apt-get install -y chromium (or set $CHROMIUM)");
  const profile = await Deno.makeTempDir({ prefix: "hn-chromium-" });
  const proc = new Deno.Command(bin, {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--remote-debugging-port=0",
      `--user-data-dir=${profile}`,
      `--window-size=${viewport.width},${viewport.height}`,
      "about:blank",
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let drained: Promise<string> | null = null;
  try {
    const dev = await devtoolsPort(proc.stderr);
    drained = dev.drained;
    const targets = await (await fetch(`http://127.0.0.1:${dev.port}/json/list`)).json() as {
      type: string;
      webSocketDebuggerUrl: string;
    }[];
    const page = targets.find((t) => t.type === "page");
    if (!page) throw new Error("chromium: no page target");
    const cdp = new Cdp(page.webSocketDebuggerUrl);
    await cdp.open();
    try {
      return await drive(cdp, file, expression);
    } finally {
      await cdp.close();
    }
  } finally {
    try {
      proc.kill("SIGTERM");
    } catch { /* already gone */ }
    await proc.status;
    if (drained) await drained;
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
}

/** Navigation, evaluation and screenshot on an open page connection. */
async function drive(cdp: Cdp, file: string, expression: string): Promise<PageResult> {
  const errors: string[] = [];
  collectErrors(cdp, errors);
  await cdp.send("Runtime.enable");
  await cdp.send("Log.enable");
  await cdp.send("Page.enable");
  const loaded = new Promise<void>((resolve) => cdp.on((m) => m === "Page.loadEventFired" && resolve()));
  const nav = await cdp.send<{ errorText?: string }>("Page.navigate", { url: `file://${file}` });
  if (nav.errorText) throw new Error(`chromium: cannot open ${file}: ${nav.errorText}`);
  await loaded;
  const ev = await cdp.send<{ result: { value: unknown }; exceptionDetails?: unknown }>("Runtime.evaluate", {
    expression,
    returnByValue: true,
  });
  if (ev.exceptionDetails) throw new Error(`evaluate: ${JSON.stringify(ev.exceptionDetails)}`);
  const m = await cdp.send<{ cssContentSize: { width: number; height: number } }>("Page.getLayoutMetrics");
  const shot = await cdp.send<{ data: string }>("Page.captureScreenshot", {
    format: "png",
    captureBeyondViewport: true,
    clip: {
      x: 0,
      y: 0,
      width: m.cssContentSize.width,
      height: Math.min(m.cssContentSize.height, 12000),
      scale: 1,
    },
  });
  const screenshot = Uint8Array.from(atob(shot.data), (c) => c.charCodeAt(0));
  return { errors, value: ev.result.value, screenshot };
}

/** Width and height of a PNG (its IHDR); throws when the bytes are not a PNG. */
export function pngSize(png: Uint8Array): { width: number; height: number } {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (png.length < 24 || sig.some((b, i) => png[i] !== b)) throw new Error("not a PNG");
  const dv = new DataView(png.buffer, png.byteOffset, png.byteLength);
  return { width: dv.getUint32(16), height: dv.getUint32(20) };
}
