/**
 * Image augmentation and label smoothing for the ViT recipe (MoGE Appendix B:
 * random crop, horizontal flip, label smoothing 0.1).
 *
 * Crops, flips and zero padding of a whole batch are one `tf.gather` of pixel
 * rows with indices computed on the CPU, so they cost one op on every backend
 * (and need no per-image slicing).
 *
 * @module
 */

import { tf } from "../deps.ts";
import type { Rng } from "../rng.ts";
import type { Tensor, Tensor1D, Tensor2D } from "../types.ts";
import { checkInteger, checkNumber } from "../validate.ts";

/**
 * Shape of the images in a batch `[B, height · width · channels]` (row-major, channels last).
 *
 * @example
 * ```ts
 * import type { ImageShape } from "./augment.ts";
 * const mnist: ImageShape = { height: 28, width: 28, channels: 1 };
 * console.log(mnist.height * mnist.width * mnist.channels); // 784
 * ```
 */
export interface ImageShape {
  /** Rows. */
  height: number;
  /** Columns. */
  width: number;
  /** Channels. */
  channels: number;
}

/**
 * Where each output image reads from: `out[b, i, j] = in[b, i + dy[b], j' + dx[b]]`, j' = j or (outW − 1 − j) when flipped.
 *
 * @example
 * ```ts
 * import { cropFlipPlan } from "./augment.ts";
 * import { Rng } from "../rng.ts";
 * const shape = { height: 28, width: 28, channels: 1 };
 * const plan = cropFlipPlan(2, shape, { padding: 4, flipProb: 0.5, rng: new Rng(1) });
 * console.log(plan.dy.length, plan.dx.length, plan.flip.length); // 2 2 2
 * ```
 */
export interface ShiftPlan {
  /** Row offset per image. */
  dy: Int32Array;
  /** Column offset per image. */
  dx: Int32Array;
  /** 1 to mirror the image left-right (after the crop), per image. */
  flip: Uint8Array;
}

function checkShape(shape: ImageShape): void {
  checkInteger("height", shape.height, 1);
  checkInteger("width", shape.width, 1);
  checkInteger("channels", shape.channels, 1);
}

/**
 * Pixel-row gather indices for a {@linkcode ShiftPlan}: index
 * `b·H·W + y·W + x` of the input pixel each output pixel copies, or
 * `B·H·W` (a zero row) when it falls outside the input.
 *
 * @param out output height and width (default: the input's)
 *
 * @example
 * ```ts
 * import { shiftIndices } from "./augment.ts";
 * // One 2x2 image moved down by one row: the top row reads zeros (index 4).
 * const idx = shiftIndices({ height: 2, width: 2, channels: 1 }, {
 *   dy: new Int32Array([-1]), dx: new Int32Array([0]), flip: new Uint8Array([0]),
 * });
 * console.log([...idx]); // [4, 4, 0, 1]
 * ```
 */
export function shiftIndices(
  shape: ImageShape,
  plan: ShiftPlan,
  out: { height: number; width: number } = shape,
): Int32Array {
  checkShape(shape);
  checkInteger("out.height", out.height, 1);
  checkInteger("out.width", out.width, 1);
  const B = plan.dy.length;
  if (plan.dx.length !== B || plan.flip.length !== B) {
    throw new RangeError(
      `shiftIndices: dy, dx and flip must have one entry per image (${B}, ${plan.dx.length}, ${plan.flip.length})`,
    );
  }
  const { height: H, width: W } = shape;
  const zero = B * H * W;
  const idx = new Int32Array(B * out.height * out.width);
  let k = 0;
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < out.height; i++) {
      const y = i + plan.dy[b];
      for (let j = 0; j < out.width; j++) {
        const x = (plan.flip[b] ? out.width - 1 - j : j) + plan.dx[b];
        idx[k++] = y >= 0 && y < H && x >= 0 && x < W ? (b * H + y) * W + x : zero;
      }
    }
  }
  return idx;
}

/**
 * Applies a {@linkcode ShiftPlan} to a batch `[B, H·W·C]`, giving
 * `[B, outH·outW·C]` (zeros where the plan reads outside an image).
 *
 * @example
 * ```ts
 * import { tf } from "../deps.ts";
 * import { applyShift } from "./augment.ts";
 * const x = tf.tensor2d([[1, 2, 3, 4]]); // one 2x2 image
 * const y = applyShift(x, { height: 2, width: 2, channels: 1 }, {
 *   dy: new Int32Array([0]), dx: new Int32Array([0]), flip: new Uint8Array([1]),
 * });
 * console.log(await y.data()); // [2, 1, 4, 3]
 * ```
 */
export function applyShift(
  x: Tensor2D,
  shape: ImageShape,
  plan: ShiftPlan,
  out: { height: number; width: number } = shape,
): Tensor2D {
  const { height: H, width: W, channels: C } = shape;
  const [B, pixels] = x.shape;
  if (pixels !== H * W * C) {
    throw new RangeError(
      `applyShift: images have ${pixels} values, expected ${H}x${W}x${C} = ${H * W * C}`,
    );
  }
  if (plan.dy.length !== B) {
    throw new RangeError(
      `applyShift: the plan is for ${plan.dy.length} images, the batch has ${B}`,
    );
  }
  const idx = shiftIndices(shape, plan, out);
  return tf.tidy(() => {
    const rows = tf.concat([x.reshape([B * H * W, C]), tf.zeros([1, C])], 0); // [B·H·W + 1, C]
    return tf.gather(rows, tf.tensor1d(idx, "int32")).reshape([
      B,
      out.height * out.width * C,
    ]) as Tensor2D;
  });
}

/**
 * Options of {@linkcode randomCropFlip}.
 *
 * @example
 * ```ts
 * import type { CropFlipOptions } from "./augment.ts";
 * import { Rng } from "../rng.ts";
 * const o: CropFlipOptions = { padding: 4, flipProb: 0.5, rng: new Rng(0), outSize: 32 };
 * console.log(o.padding); // 4
 * ```
 */
export interface CropFlipOptions {
  /** Zero padding p on every side before the random crop (0: no crop). */
  padding: number;
  /** Probability of a horizontal flip per image (0: never). */
  flipProb: number;
  /** The random generator (one crop offset pair and one flip draw per image). */
  rng: Rng;
  /** Output side: the image is also zero-padded (centred) to this size first (default: unchanged). */
  outSize?: number;
}

/**
 * A random {@linkcode ShiftPlan}: zero-pad by `padding` and crop back at a
 * uniform offset in [0, 2·padding]² (torchvision `RandomCrop(size, padding)`),
 * then mirror with probability `flipProb` (`RandomHorizontalFlip`).
 * With `outSize` > H the image is first centred on an outSize x outSize zero canvas.
 *
 * @example
 * ```ts
 * import { cropFlipPlan } from "./augment.ts";
 * import { Rng } from "../rng.ts";
 * const plan = cropFlipPlan(4, { height: 28, width: 28, channels: 1 }, { padding: 2, flipProb: 0, rng: new Rng(0) });
 * console.log(plan.dy.every((v) => v >= -2 && v <= 2)); // true
 * ```
 */
export function cropFlipPlan(batch: number, shape: ImageShape, o: CropFlipOptions): ShiftPlan {
  checkShape(shape);
  checkInteger("batch", batch, 0);
  checkInteger("padding", o.padding, 0);
  checkNumber("flipProb", o.flipProb, { min: 0, max: 1 });
  const outSize = o.outSize ?? shape.height;
  checkInteger("outSize", outSize, 1);
  const centreY = Math.floor((outSize - shape.height) / 2);
  const centreX = Math.floor((outSize - shape.width) / 2);
  const dy = new Int32Array(batch), dx = new Int32Array(batch), flip = new Uint8Array(batch);
  for (let b = 0; b < batch; b++) {
    // Draw in a fixed order per image so a plan depends only on the generator's state.
    const oy = o.padding > 0 ? o.rng.int(2 * o.padding + 1) - o.padding : 0;
    const ox = o.padding > 0 ? o.rng.int(2 * o.padding + 1) - o.padding : 0;
    const f = o.flipProb > 0 ? o.rng.next() < o.flipProb : false;
    dy[b] = oy - centreY;
    dx[b] = ox - centreX;
    flip[b] = f ? 1 : 0;
  }
  return { dy, dx, flip };
}

/**
 * Random crop with zero padding and random horizontal flip of a batch
 * `[B, H·W·C]` (see {@linkcode cropFlipPlan}); gives `[B, S·S·C]`, S = `outSize` ?? H.
 *
 * @example
 * ```ts
 * import { tf } from "../deps.ts";
 * import { randomCropFlip } from "./augment.ts";
 * import { Rng } from "../rng.ts";
 * const x = tf.ones([2, 784]) as tf.Tensor2D;
 * const y = randomCropFlip(x, { height: 28, width: 28, channels: 1 }, { padding: 4, flipProb: 0.5, rng: new Rng(1) });
 * console.log(y.shape); // [2, 784]
 * ```
 */
export function randomCropFlip(x: Tensor2D, shape: ImageShape, o: CropFlipOptions): Tensor2D {
  const plan = cropFlipPlan(x.shape[0], shape, o);
  return applyShift(x, shape, plan, {
    height: o.outSize ?? shape.height,
    width: o.outSize ?? shape.width,
  });
}

/**
 * Centres square images on a larger zero canvas: `[B, H·H·C]` -> `[B, S·S·C]`
 * (e.g. 28 -> 32 for the V-MoE-S patch-4 shape). S = H returns a copy.
 *
 * @example
 * ```ts
 * import { tf } from "../deps.ts";
 * import { padImages } from "./augment.ts";
 * const y = padImages(tf.ones([1, 4]) as tf.Tensor2D, { height: 2, width: 2, channels: 1 }, 4);
 * console.log(await y.data()); // 0 border around a 2x2 block of ones
 * ```
 */
export function padImages(x: Tensor2D, shape: ImageShape, size: number): Tensor2D {
  checkInteger("size", size, Math.max(shape.height, shape.width));
  const B = x.shape[0];
  const cy = Math.floor((size - shape.height) / 2), cx = Math.floor((size - shape.width) / 2);
  return applyShift(x, shape, {
    dy: new Int32Array(B).fill(-cy),
    dx: new Int32Array(B).fill(-cx),
    flip: new Uint8Array(B),
  }, { height: size, width: size });
}

/**
 * Cross-entropy with label smoothing ε (Szegedy et al. 2016; PyTorch's
 * `CrossEntropyLoss(label_smoothing=ε)`): the target is (1 − ε)·onehot + ε/C,
 * the loss its cross-entropy with softmax(logits), averaged over the batch.
 * ε = 0 is plain cross-entropy.
 *
 * @param logits `[B, C]`
 * @param labels `[B]` int32 class indices
 *
 * @example
 * ```ts
 * import { tf } from "../deps.ts";
 * import { smoothedCrossEntropy } from "./augment.ts";
 * const loss = smoothedCrossEntropy(tf.tensor2d([[2, 0, 0]]), tf.tensor1d([0], "int32"), 0.1);
 * console.log(loss.shape); // []
 * ```
 */
export function smoothedCrossEntropy(
  logits: Tensor2D,
  labels: Tensor1D,
  smoothing: number,
): Tensor {
  checkNumber("labelSmoothing", smoothing, { min: 0, max: 1 });
  const C = logits.shape[1];
  return tf.tidy(() => {
    const target = tf.add(tf.mul(tf.oneHot(labels, C).toFloat(), 1 - smoothing), smoothing / C);
    return tf.neg(tf.mean(tf.sum(tf.mul(target, tf.logSoftmax(logits)), 1)));
  });
}
