/**
 * MoGE in the browser: builds dist/ (`deno task bundle`: the library as one
 * ES module, the page, the fixture data, the wasm binaries), serves it on
 * 127.0.0.1, opens it in headless Chromium and checks that MoE and MoGE
 * training steps run in the tab, that the loss falls, that the routing maps
 * are drawn, and that no console error happened. Skipped (with a message)
 * when no Chromium is installed.
 */

import { Browser, findChromium, NO_CHROMIUM } from "./chromium.ts";
import { deepEqual, equal, ok } from "./asserts.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const DIST = `${ROOT}dist`;

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  wasm: "application/wasm",
  bin: "application/octet-stream",
};

/** A static file server for dist/ on 127.0.0.1 (a free port); logs the paths asked for. */
function serveDist(asked: string[]): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const path = new URL(req.url).pathname.replace(/^\/$/, "/index.html");
    asked.push(path);
    if (path.includes("..")) return new Response("bad path", { status: 400 });
    try {
      const body = await Deno.readFile(DIST + path);
      const ext = path.split(".").pop() ?? "";
      return new Response(body, {
        headers: { "content-type": TYPES[ext] ?? "application/octet-stream" },
      });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

Deno.test({
  name: "web page: MoE and MoGE train in headless Chromium (wasm), the loss falls, maps drawn",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const chromium = findChromium();
    if (!chromium) {
      console.log(NO_CHROMIUM);
      return;
    }
    const build = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${ROOT}web/build.ts`],
      cwd: ROOT,
    }).output();
    ok(build.success, `deno task bundle failed: ${new TextDecoder().decode(build.stderr)}`);
    for (const f of ["moge.js", "index.html", "app.js", "tfjs-backend-wasm.wasm"]) {
      ok((await Deno.stat(`${DIST}/${f}`)).size > 0, `dist/${f} built`);
    }
    const asked: string[] = [];
    const server = serveDist(asked);
    const browser = await Browser.launch(chromium, 1240, 760);
    try {
      const url = `http://127.0.0.1:${server.addr.port}/index.html?epochs=6`;
      await browser.goto(url, 60_000);
      // 6 epochs of 10 steps per model; a screenshot after 24 steps, mid-training.
      type State = {
        backend: { backend: string } | null;
        steps: { moe: number; moge: number };
        losses: { moe: number[]; moge: number[] };
        tensors: number[];
        done: boolean;
        error: string | null;
      };
      const read = () =>
        browser.evaluate<State>("JSON.parse(JSON.stringify(globalThis.mogeState))");
      await browser.waitFor(
        "globalThis.mogeState && (mogeState.error || mogeState.steps.moge >= 24)",
        240_000,
      );
      let s = await read();
      equal(s.error, null, "no error on the page");
      if (Deno.env.get("MOGE_SCREENSHOTS")) {
        await Deno.writeFile(`${ROOT}docs/web_training.png`, await browser.screenshot(false));
      }
      await browser.waitFor("mogeState.error || mogeState.done", 300_000);
      s = await read();
      equal(s.error, null, "no error on the page");
      // Headless Chromium here has no WebGPU adapter (--disable-gpu): auto picks wasm.
      ok(["wasm", "webgpu"].includes(s.backend!.backend), `backend ${s.backend!.backend}`);
      equal(s.steps.moe, 60);
      equal(s.steps.moge, 60);
      for (const kind of ["moe", "moge"] as const) {
        const l = s.losses[kind];
        ok(l.every(Number.isFinite), `${kind}: finite losses`);
        const first = mean(l.slice(0, 5)), last = mean(l.slice(-5));
        // Chance level on 10 classes is CE ln 10 ≈ 2.30; a falling loss ends well below its start.
        ok(last < 0.8 * first, `${kind}: loss fell from ${first.toFixed(3)} to ${last.toFixed(3)}`);
      }
      // The routing maps were drawn: the canvases are not blank white.
      const colored = await browser.evaluate<number[]>(
        `[...document.querySelectorAll("canvas.maps")]
        .map((c) => { const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
          let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 200 && d[i + 2] > 60) n++;
          return n; })`,
      );
      equal(colored.length, 2);
      for (const n of colored) ok(n > 500, `a map canvas has ${n} coloured pixels`);
      // No tensor leak: after the first step (optimizer state created), the count is flat.
      deepEqual(new Set(s.tensors.slice(1)).size, 1, `tensors per step: ${s.tensors.join(",")}`);
      deepEqual(browser.problems, [], "no console errors");
      if (s.backend!.backend === "wasm") {
        ok(
          asked.some((p) => p.endsWith(".wasm")),
          "the wasm binary was fetched from beside the page",
        );
      }
    } finally {
      await browser.close();
      await server.shutdown();
    }
  },
});
