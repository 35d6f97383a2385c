/**
 * The entry point of the browser bundle `dist/moge.js` (`deno task bundle`):
 * the whole library (`mod.ts`) plus `setWasmPaths`, which tells the wasm
 * backend where its binaries are served.
 *
 * @module
 */

export * from "../mod.ts";
export { setWasmPaths } from "../src/deps.ts";
// What the page uses beyond the library entry point: the classifier's
// training step, its data and the per-class routing maps.
export { CLASS_NAMES, decodeDataset } from "../src/data/images.ts";
export { makeBatch } from "../src/data/image_batches.ts";
export { DEFAULT_CONFIG, PRESETS } from "../src/train/classifier_config.ts";
export { buildModel, trainStep } from "../src/train/classifier_task.ts";
export { AdamW } from "../src/train/optim.ts";
export { cosineWithWarmup } from "../src/train/lr_schedule.ts";
export { classMeanMaps } from "../src/analysis/specialization.ts";
