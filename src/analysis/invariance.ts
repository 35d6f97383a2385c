/**
 * The invariance measurement of MoGE (Sec. 2.4, Table 1): the mean IMED
 * between the routing map of each test image and that of a randomly
 * transformed copy.
 *
 * @module
 */

import { tf } from "../deps.ts";
import { affineTransform, type RandomAffineOptions, randomAffineParams } from "./affine.ts";
import { imed } from "./imed.ts";
import type { Layout } from "../moge/layout.ts";
import { Rng } from "../rng.ts";

/**
 * Routing scores z = softmax(W x) of images (no noise, no bias: the vision
 * router), `[N * E]` row-major. `images` are `[N * pixels]` floats in [0, 1].
 *
 * @example
 * ```ts
 * import { routingScores } from "./invariance.ts";
 * const z = await routingScores(new Float32Array([1, 0]), new Float32Array([1, 0, 0, 0]), 2);
 * z.length; // 2
 * ```
 */
export async function routingScores(
  images: Float32Array,
  routerW: Float32Array,
  experts: number,
): Promise<Float32Array> {
  const pixels = routerW.length / experts;
  const n = images.length / pixels;
  const z = tf.tidy(() =>
    tf.softmax(tf.matMul(tf.tensor2d(images, [n, pixels]), tf.tensor2d(routerW, [pixels, experts])))
  );
  const out = (await z.data()) as Float32Array;
  z.dispose();
  return out;
}

/**
 * Applies a seeded random affine transform (torchvision `RandomAffine`
 * semantics) to each image; image i uses the i-th draw of `Rng(seed)`.
 */
export function transformImages(
  images: Float32Array,
  size: number,
  options: RandomAffineOptions,
  seed: number,
): Float32Array {
  const rng = new Rng(seed);
  const pixels = size * size;
  const out = new Float32Array(images.length);
  for (let i = 0; i < images.length / pixels; i++) {
    const params = randomAffineParams(options, size, size, () => rng.next());
    out.set(
      affineTransform(images.subarray(i * pixels, (i + 1) * pixels), size, size, params),
      i * pixels,
    );
  }
  return out;
}

/**
 * Mean (and standard deviation) over images of the squared IMED between the
 * routing maps of the originals and of their transformed copies.
 */
export function meanImed(
  zA: Float32Array,
  zB: Float32Array,
  layout: Layout,
  sigma = 1,
): { mean: number; std: number } {
  const E = layout.rows * layout.cols;
  const n = zA.length / E;
  let s = 0;
  let s2 = 0;
  for (let i = 0; i < n; i++) {
    const d = imed(
      zA.subarray(i * E, (i + 1) * E),
      zB.subarray(i * E, (i + 1) * E),
      layout.rows,
      layout.cols,
      sigma,
    );
    s += d;
    s2 += d * d;
  }
  const mean = s / n;
  return { mean, std: Math.sqrt(Math.max(0, s2 / n - mean * mean)) };
}
