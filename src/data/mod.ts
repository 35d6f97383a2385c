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

export * from "./images.ts";
export * from "./text.ts";
export * from "./augment.ts";
