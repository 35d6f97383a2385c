/**
 * Batches of an image data set: the index batches of an epoch (shuffled or
 * in storage order) and the tensors of one batch.
 *
 * @module
 */

import { tf } from "../deps.ts";
import { checkInteger } from "../validate.ts";
import type { Rng } from "../rng.ts";
import type { Tensor1D, Tensor2D } from "../types.ts";
import { type Dataset, PIXELS, type Split, splitOf } from "./images.ts";

/**
 * Cuts the indices of one split into batches: shuffled by `rng` (one epoch's
 * order; pass the same generator each epoch for a new order each time) or in
 * storage order when `rng` is omitted (for evaluation). The last batch is
 * smaller when the batch size does not divide the split, unless
 * `dropRemainder` is set.
 *
 * @example
 * ```ts
 * import { batches } from "./image_batches.ts";
 * import { loadFixture } from "./images.ts";
 * import { Rng } from "../rng.ts";
 * const ds = await loadFixture("fashion-mnist");
 * const epoch = batches(ds, "train", 200, new Rng(0));
 * console.log(epoch.length, epoch[0].length); // 5 200
 * ```
 */
export function batches(
  ds: Dataset,
  split: Split,
  batchSize: number,
  rng?: Rng,
  options: { dropRemainder?: boolean } = {},
): Int32Array[] {
  const { count } = splitOf(ds, split);
  checkInteger("batchSize", batchSize, 1);
  let order: Int32Array;
  if (rng) {
    order = rng.permutation(count);
  } else {
    order = new Int32Array(count);
    for (let i = 0; i < count; i++) order[i] = i;
  }
  const out: Int32Array[] = [];
  for (let start = 0; start < count; start += batchSize) {
    const end = Math.min(count, start + batchSize);
    if (end - start < batchSize && options.dropRemainder) break;
    out.push(order.subarray(start, end));
  }
  return out;
}

/**
 * Builds the tensors of one batch: `x`, `[B, 784]` float32 pixels scaled to
 * [0, 1] (pixel / 255, no other normalization), and `y`, `[B]` int32 labels.
 * The caller disposes both.
 *
 * @param images `N x 784` uint8 pixels (e.g. `ds.trainImages`).
 * @param labels `N` labels.
 * @param indices which images, each an integer in [0, N).
 * @example
 * ```ts
 * import { makeBatch } from "./image_batches.ts";
 * import { loadFixture } from "./images.ts";
 * import { useBackend } from "../backend.ts";
 * await useBackend("cpu");
 * const ds = await loadFixture("mnist");
 * const { x, y } = makeBatch(ds.trainImages, ds.trainLabels, [0, 1, 2]);
 * console.log(x.shape, y.shape); // [3, 784] [3]
 * x.dispose();
 * y.dispose();
 * ```
 */
export function makeBatch(
  images: Uint8Array,
  labels: Uint8Array,
  indices: ArrayLike<number>,
): { x: Tensor2D; y: Tensor1D } {
  const n = labels.length;
  if (images.length !== n * PIXELS) {
    throw new RangeError(
      `makeBatch: images has ${images.length} bytes, but ${n} labels need ${n} x ${PIXELS} =` +
        ` ${n * PIXELS}`,
    );
  }
  const b = indices.length;
  const x = new Float32Array(b * PIXELS);
  const y = new Int32Array(b);
  for (let k = 0; k < b; k++) {
    const i = indices[k];
    if (!Number.isInteger(i) || i < 0 || i >= n) {
      throw new RangeError(
        `makeBatch: indices[${k}] = ${i} is invalid: it must be an integer in [0, ${n - 1}]`,
      );
    }
    const src = i * PIXELS, dst = k * PIXELS;
    for (let p = 0; p < PIXELS; p++) x[dst + p] = images[src + p] / 255;
    y[k] = labels[i];
  }
  return { x: tf.tensor2d(x, [b, PIXELS], "float32"), y: tf.tensor1d(y, "int32") };
}
