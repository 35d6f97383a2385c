/**
 * Moving token rows into expert buffers and back, by gathers whose gradient
 * is another gather (no scatter or segment-sum, which tfjs's wasm backend
 * lacks).
 *
 * @module
 */

import { tf } from "../deps.ts";
import type { Tensor1D, Tensor2D } from "../types.ts";

/**
 * A row routing, as index tensors: `forward[i]` is the source row of output
 * row i (or `M`, the number of source rows, for a zero row), and
 * `backward[m * fan + f]` lists the output rows that read source row m (or
 * `R`, the number of output rows, for none).
 */
export interface RowRoute {
  /** `[R]` int32: source row of each output row, `M` for a zero row. */
  forward: Tensor1D;
  /** `[M * fan]` int32: output rows that copy each source row, `R` for none. */
  backward: Tensor1D;
  /** How many output rows may read one source row. */
  fan: number;
}

/**
 * Builds a {@linkcode RowRoute} from plain index arrays (uploads them once).
 *
 * @example
 * ```ts
 * import { rowRoute } from "./dispatch.ts";
 * // Output rows [src 1, zero, src 0] from 2 source rows.
 * const route = rowRoute(new Int32Array([1, 2, 0]), new Int32Array([2, 0]), 1);
 * route.forward.dispose(); route.backward.dispose();
 * ```
 */
export function rowRoute(forward: Int32Array, backward: Int32Array, fan: number): RowRoute {
  return {
    forward: tf.tensor1d(forward, "int32"),
    backward: tf.tensor1d(backward, "int32"),
    fan,
  };
}

/** Appends a zero row: `[M, d]` -> `[M + 1, d]`. */
function withZeroRow(x: tf.Tensor2D): tf.Tensor2D {
  return tf.concat([x, tf.zeros([1, x.shape[1]])], 0);
}

/**
 * Gathers rows of `src` (`[M, d]`) along a {@linkcode RowRoute}, giving
 * `[R, d]`; index `M` reads a zero row. Differentiable: the gradient for
 * source row m is the sum of the output gradients of the rows that read it.
 *
 * @example
 * ```ts
 * import { tf } from "../deps.ts";
 * import { routeRows, rowRoute } from "./dispatch.ts";
 * const route = rowRoute(new Int32Array([1, 2, 0]), new Int32Array([2, 0]), 1);
 * const y = routeRows(tf.tensor2d([[1, 2], [3, 4]]), route); // [[3, 4], [0, 0], [1, 2]]
 * ```
 */
export function routeRows(src: Tensor2D, route: RowRoute): Tensor2D {
  const [M, d] = src.shape;
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const x = args[0] as tf.Tensor2D;
    const value = tf.gather(withZeroRow(x), route.forward); // [R, d]
    const gradFunc = (dy: tf.Tensor) => {
      const picked = tf.gather(withZeroRow(dy as tf.Tensor2D), route.backward); // [M * fan, d]
      return route.fan === 1 ? picked : picked.reshape([M, route.fan, d]).sum(1); // [M, d]
    };
    return { value, gradFunc };
  });
  return op(src) as Tensor2D;
}
