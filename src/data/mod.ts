/**
 * The data sets: Fashion-MNIST and MNIST (downloaded once into a binary
 * cache, or the committed fixture), character-level Moby Dick, batches, and
 * the augmentations of the vision recipe (random crop, flip, padding).
 *
 * @example
 * ```ts
 * import { loadFixture } from "./mod.ts";
 * const data = await loadFixture("fashion-mnist");
 * console.log(data.trainLabels.length);
 * ```
 *
 * @module
 */

/**
 * The tensor types the batch and augmentation signatures name, re-exported so
 * that this entry point documents itself.
 *
 * @example
 * ```ts
 * import type { Tensor2D } from "./mod.ts";
 * const x: Tensor2D | undefined = undefined;
 * console.log(x); // undefined
 * ```
 */
export type { Tensor, Tensor1D, Tensor2D } from "../types.ts";
export { Rng } from "../rng.ts";
export { CacheFileError, defaultCacheDir } from "./cache.ts";
export * from "./images.ts";
export * from "./image_sources.ts";
export * from "./image_batches.ts";
export * from "./text.ts";
export * from "./text_batches.ts";
export * from "./augment.ts";
