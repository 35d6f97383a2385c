/**
 * `deno task serve [PORT]`: serves `dist/` (built by `deno task bundle`) on
 * http://127.0.0.1:PORT/ (default 8000) with the MIME types the page needs
 * (`application/wasm` for the wasm binaries, `text/javascript` for modules).
 *
 * @module
 */

const DIST = new URL("../dist", import.meta.url).pathname;
const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  wasm: "application/wasm",
};
const port = Number(Deno.args[0] ?? 8000);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`port = ${Deno.args[0]} is invalid: it must be an integer in [0, 65535]`);
  Deno.exit(2);
}
Deno.serve({ hostname: "127.0.0.1", port }, async (req) => {
  const path = new URL(req.url).pathname.replace(/\/$/, "/index.html");
  if (path.split("/").includes("..")) return new Response("bad path", { status: 400 });
  try {
    const body = await Deno.readFile(DIST + path);
    const type = TYPES[path.split(".").pop() ?? ""] ?? "application/octet-stream";
    return new Response(body, { headers: { "content-type": type } });
  } catch {
    return new Response("not found (run deno task bundle first?)", { status: 404 });
  }
});
