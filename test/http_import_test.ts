import { assertClose, equal, ok } from "./asserts.ts";

/** The repository root: the parent of this file's folder. */
const root = new URL("../", import.meta.url);

/** A plain static file server for the repository, on a loopback port. */
function serveRepository(served: Set<string>): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    if (req.method !== "GET" || path.split("/").includes("..")) {
      return new Response("bad request", { status: 400 });
    }
    try {
      const body = await Deno.readFile(new URL(`.${path}`, root));
      served.add(path);
      const type = path.endsWith(".ts") ? "application/typescript" : "application/octet-stream";
      return new Response(body, { headers: { "content-type": type } });
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.IsADirectory) {
        return new Response("not found", { status: 404 });
      }
      throw e;
    }
  });
}

Deno.test("mod.ts imported by URL, without the repository's import map, computes R(z)", async () => {
  const served = new Set<string>();
  const server = serveRepository(served);
  try {
    const host = `127.0.0.1:${server.addr.port}`;
    const script = `
      import { groupSparsity, tf, useBackend } from "http://${host}/mod.ts";
      await useBackend("cpu");
      const z = tf.tensor2d([[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]]);
      const r = groupSparsity(z, { filter: "average" });
      console.log(JSON.stringify(Array.from(await r.data())));
    `;
    // --no-config: no deno.json, so no import map and no lock file; npm packages come from
    // the global Deno cache (or the registry). Only the loopback server may be imported, and
    // --reload refetches it (a port reused from an earlier run must not hit a stale cache).
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", `--allow-import=${host}`, `--reload=http://${host}/`, "--no-config", "-"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(script));
    await writer.close();
    const { code, stdout, stderr } = await child.output();
    const out = new TextDecoder().decode(stdout);
    const err = new TextDecoder().decode(stderr);
    equal(code, 0, `subprocess failed:\n${err}`);
    for (const file of ["/mod.ts", "/src/deps.ts", "/src/moge/group_sparsity.ts"]) {
      ok(served.has(file), `${file} was not fetched over HTTP (served: ${[...served]})`);
    }
    const values = JSON.parse(out.trim().split("\n").at(-1)!) as number[];
    equal(values.length, 1);
    // One-hot corner on the 4 x 4 map, 3 x 3 average filter: one window holds it.
    assertClose(values[0], Math.sqrt(1 / 9 + 1e-8) + 3 * Math.sqrt(1e-8));
  } finally {
    await server.shutdown();
  }
});
