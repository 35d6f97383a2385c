/**
 * Batches of a text corpus for the language models: random training windows,
 * the evaluation windows of a split, and the input / target tensors of one
 * batch.
 *
 * @module
 */

import { tf } from "../deps.ts";
import type { Rng } from "../rng.ts";
import type { Tensor2D } from "../types.ts";
import { checkInteger } from "../validate.ts";

/**
 * Start offsets of `batchSize` random training windows of `T + 1` tokens
 * (inputs `[s, s + T)`, targets `[s + 1, s + T + 1)`), uniform over the
 * split, drawn from `rng`.
 *
 * @example
 * ```ts
 * import { sampleWindows } from "./text_batches.ts";
 * import { Rng } from "../rng.ts";
 * console.log(sampleWindows(1000, 64, 4, new Rng(0))); // 4 offsets in [0, 935]
 * ```
 */
export function sampleWindows(length: number, T: number, batchSize: number, rng: Rng): Int32Array {
  checkInteger("T (context length)", T, 1);
  checkInteger("batchSize", batchSize, 1);
  if (length < T + 1) {
    throw new RangeError(
      `sampleWindows: a split of ${length} tokens is shorter than T + 1 = ${T + 1}`,
    );
  }
  const out = new Int32Array(batchSize);
  for (let b = 0; b < batchSize; b++) out[b] = rng.int(length - T);
  return out;
}

/**
 * Start offsets of the evaluation windows of a split: the split is cut into
 * consecutive, non-overlapping windows `[i·T, i·T + T)` predicting tokens
 * `i·T + 1 ... i·T + T` (the last `(length − 1) mod T` tokens are not
 * scored), and every window starts with an empty context. With `maxWindows`
 * > 0 and more windows than that, `maxWindows` of them evenly spread over
 * the split are kept (window `floor(j·n / maxWindows)` for j = 0, 1, ...),
 * so a partial evaluation still samples the whole split.
 *
 * @example
 * ```ts
 * import { evalWindows } from "./text_batches.ts";
 * console.log(evalWindows(10, 3)); // Int32Array [0, 3, 6]
 * console.log(evalWindows(100, 10, 3)); // Int32Array [0, 30, 60]
 * ```
 */
export function evalWindows(length: number, T: number, maxWindows = 0): Int32Array {
  checkInteger("T (context length)", T, 1);
  checkInteger("maxWindows", maxWindows, 0);
  const n = Math.max(0, Math.floor((length - 1) / T));
  if (maxWindows === 0 || n <= maxWindows) return Int32Array.from({ length: n }, (_, i) => i * T);
  return Int32Array.from({ length: maxWindows }, (_, j) => Math.floor((j * n) / maxWindows) * T);
}

/**
 * The tensors of one batch: `x` `[B, T]` int32 input tokens and `y` `[B, T]`
 * int32 targets (the next tokens). The caller disposes both.
 *
 * @example
 * ```ts
 * import { makeLmBatch } from "./text_batches.ts";
 * import { useBackend } from "../backend.ts";
 * await useBackend("cpu");
 * const { x, y } = makeLmBatch(new Uint16Array([5, 6, 7, 8]), [0, 1], 2);
 * console.log(await x.array(), await y.array()); // [[5, 6], [6, 7]] [[6, 7], [7, 8]]
 * x.dispose();
 * y.dispose();
 * ```
 */
export function makeLmBatch(
  tokens: ArrayLike<number>,
  starts: ArrayLike<number>,
  T: number,
): { x: Tensor2D; y: Tensor2D } {
  checkInteger("T (context length)", T, 1);
  const B = starts.length;
  const x = new Int32Array(B * T);
  const y = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    const s = starts[b];
    if (!Number.isInteger(s) || s < 0 || s + T + 1 > tokens.length) {
      throw new RangeError(
        `makeLmBatch: starts[${b}] = ${s} is invalid: it must be an integer in` +
          ` [0, ${tokens.length - T - 1}] for T = ${T} and ${tokens.length} tokens`,
      );
    }
    for (let t = 0; t < T; t++) {
      x[b * T + t] = tokens[s + t];
      y[b * T + t] = tokens[s + t + 1];
    }
  }
  return { x: tf.tensor2d(x, [B, T], "int32"), y: tf.tensor2d(y, [B, T], "int32") };
}
