/**
 * The entry point of the browser bundle `dist/moge.js` (`deno task bundle`):
 * the whole library (`mod.ts`) plus `setWasmPaths`, which tells the wasm
 * backend where its binaries are served.
 *
 * @module
 */

export * from "../mod.ts";
export { setWasmPaths } from "../src/deps.ts";
