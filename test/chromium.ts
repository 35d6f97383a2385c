/**
 * A headless Chromium for tests, driven over the DevTools protocol (CDP) on
 * a websocket from Deno: launch, open a page, collect console errors,
 * exceptions and network requests, evaluate expressions, take screenshots.
 *
 * `findChromium()` returns undefined when no Chromium is installed (tests
 * then skip with a message); `.ci/run` installs Debian's `chromium`.
 */

/** Paths tried for the browser, or `$CHROMIUM` when set. */
const CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];

/** The Chromium executable, or undefined when none is installed. */
export function findChromium(): string | undefined {
  const env = Deno.env.get("CHROMIUM");
  for (const p of env ? [env] : CANDIDATES) {
    try {
      if (Deno.statSync(p).isFile) return p;
    } catch {
      // next
    }
  }
  return undefined;
}

/** The message a test prints when it skips for want of Chromium. */
export const NO_CHROMIUM =
  "SKIPPED: no Chromium found (/usr/bin/chromium or $CHROMIUM); install it with " +
  "`apt-get install -y chromium` to run the browser tests";

interface Pending {
  resolve: (v: Record<string, unknown>) => void;
  reject: (e: Error) => void;
  method: string;
}

/** A console message, exception or failed load seen on the page. */
export interface PageProblem {
  kind: "console" | "exception" | "log";
  text: string;
}

/** One headless browser with one page (tab). */
export class Browser {
  #proc: Deno.ChildProcess;
  #ws: WebSocket;
  #profile: string;
  #id = 0;
  #pending = new Map<number, Pending>();
  #session = "";
  #listeners: ((method: string, params: Record<string, unknown>) => void)[] = [];
  /** Console errors, uncaught exceptions and error log entries of the page. */
  problems: PageProblem[] = [];
  /** Every console message of the page (any level), as text. */
  console: string[] = [];
  /** URLs the page requested. */
  requests: string[] = [];

  private constructor(proc: Deno.ChildProcess, ws: WebSocket, profile: string) {
    this.#proc = proc;
    this.#ws = ws;
    this.#profile = profile;
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data as string);
      if (msg.id !== undefined) {
        const p = this.#pending.get(msg.id);
        if (!p) return;
        this.#pending.delete(msg.id);
        if (msg.error) p.reject(new Error(`${p.method}: ${JSON.stringify(msg.error)}`));
        else p.resolve(msg.result ?? {});
      } else if (msg.method) {
        this.#event(msg.method, msg.params ?? {});
      }
    };
  }

  /** Launches headless Chromium with a fresh profile and opens a blank page. */
  static async launch(executable: string, width = 1280, height = 900): Promise<Browser> {
    const profile = await Deno.makeTempDir({ prefix: "moge-chromium-" });
    const proc = new Deno.Command(executable, {
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--enable-unsafe-swiftshader",
        `--user-data-dir=${profile}`,
        "--remote-debugging-port=0",
        `--window-size=${width},${height}`,
        "about:blank",
      ],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    // Chromium prints "DevTools listening on ws://..." on stderr when ready.
    const reader = proc.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    const deadline = Date.now() + 30_000;
    let url: string | undefined;
    while (!url) {
      const timer = new Promise<{ done: true; value: undefined }>((r) =>
        setTimeout(() => r({ done: true, value: undefined }), Math.max(0, deadline - Date.now()))
      );
      const { done, value } = await Promise.race([reader.read(), timer]);
      if (done) {
        try {
          proc.kill();
        } catch { /* exited */ }
        await Deno.remove(profile, { recursive: true }).catch(() => {});
        throw new Error(`Chromium did not start (stderr: ${text.slice(-2000)})`);
      }
      text += value;
      url = text.match(/DevTools listening on (ws:\/\/\S+)/)?.[1];
    }
    // Keep draining stderr so the browser never blocks on a full pipe.
    (async () => {
      try {
        while (!(await reader.read()).done) { /* discard */ }
      } catch { /* closed */ }
    })();
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error(`cannot connect to ${url}`));
    });
    const b = new Browser(proc, ws, profile);
    const { targetId } = await b.send("Target.createTarget", { url: "about:blank" });
    const { sessionId } = await b.send("Target.attachToTarget", { targetId, flatten: true });
    b.#session = sessionId as string;
    await b.send("Runtime.enable");
    await b.send("Log.enable");
    await b.send("Page.enable");
    await b.send("Network.enable");
    await b.send("Emulation.setDeviceMetricsOverride", {
      width,
      height,
      deviceScaleFactor: 1,
      mobile: false,
    });
    return b;
  }

  #event(method: string, params: Record<string, unknown>): void {
    if (method === "Runtime.consoleAPICalled") {
      const args = (params.args as { value?: unknown; description?: string }[]) ?? [];
      const text = args.map((a) => a.value ?? a.description ?? "").join(" ");
      this.console.push(`${params.type}: ${text}`);
      if (params.type === "error" || params.type === "assert") {
        this.problems.push({ kind: "console", text });
      }
    } else if (method === "Runtime.exceptionThrown") {
      const d = params.exceptionDetails as { text?: string; exception?: { description?: string } };
      this.problems.push({
        kind: "exception",
        text: `${d.text ?? ""} ${d.exception?.description ?? ""}`,
      });
    } else if (method === "Log.entryAdded") {
      const e = params.entry as { level: string; text: string; url?: string };
      if (e.level === "error") {
        this.problems.push({ kind: "log", text: `${e.text} ${e.url ?? ""}` });
      }
    } else if (method === "Network.requestWillBeSent") {
      this.requests.push((params.request as { url: string }).url);
    }
    for (const l of this.#listeners) l(method, params);
  }

  /** Sends a CDP command (to the page's session, unless it is a Target./Browser. command). */
  send(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const id = ++this.#id;
    const msg: Record<string, unknown> = { id, method, params };
    if (this.#session && !/^(Target|Browser)\./.test(method)) msg.sessionId = this.#session;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, method });
      this.#ws.send(JSON.stringify(msg));
    });
  }

  /** Navigates and waits for the load event (up to `timeoutMs`). */
  async goto(url: string, timeoutMs = 30_000): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let listener: ((m: string) => void) | undefined;
    const loaded = new Promise<void>((resolve, reject) => {
      listener = (m: string) => {
        if (m === "Page.loadEventFired") resolve();
      };
      this.#listeners.push(listener);
      timer = setTimeout(
        () => reject(new Error(`${url} did not load in ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      await this.send("Page.navigate", { url });
      await loaded;
    } finally {
      clearTimeout(timer);
      this.#listeners = this.#listeners.filter((l) => l !== listener);
    }
  }

  /** Evaluates an expression in the page (awaiting promises) and returns its JSON value. */
  async evaluate<T = unknown>(expression: string): Promise<T> {
    const r = await this.send("Runtime.evaluate", {
      expression,
      returnByValue: true,
      awaitPromise: true,
    });
    if (r.exceptionDetails) {
      throw new Error(`evaluate(${expression}): ${JSON.stringify(r.exceptionDetails)}`);
    }
    return (r.result as { value: T }).value;
  }

  /** Polls `expression` until it is truthy; returns its value. */
  async waitFor<T>(expression: string, timeoutMs: number, everyMs = 250): Promise<T> {
    const end = Date.now() + timeoutMs;
    while (true) {
      const v = await this.evaluate<T>(expression);
      if (v) return v;
      if (Date.now() > end) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${expression}`);
      }
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }

  /** A PNG screenshot of the whole page (or the viewport). */
  async screenshot(fullPage = true): Promise<Uint8Array> {
    const params: Record<string, unknown> = { format: "png" };
    if (fullPage) {
      const m = await this.send("Page.getLayoutMetrics");
      const size = m.cssContentSize as { width: number; height: number };
      params.clip = {
        x: 0,
        y: 0,
        width: Math.ceil(size.width),
        height: Math.min(Math.ceil(size.height), 6000),
        scale: 1,
      };
      params.captureBeyondViewport = true;
    }
    const r = await this.send("Page.captureScreenshot", params);
    return Uint8Array.from(atob(r.data as string), (c) => c.charCodeAt(0));
  }

  /** Closes the browser and deletes its profile. */
  async close(): Promise<void> {
    try {
      await Promise.race([
        this.send("Browser.close"),
        new Promise((r) => setTimeout(r, 3000)),
      ]);
    } catch {
      // already gone
    }
    try {
      this.#ws.close();
    } catch { /* closed */ }
    try {
      this.#proc.kill("SIGKILL");
    } catch { /* exited */ }
    await this.#proc.status;
    await Deno.remove(this.#profile, { recursive: true }).catch(() => {});
  }
}
