/**
 * The argument check shared by the fused R(z) implementations (host
 * routine, registered wasm/cpu kernels, WebGPU kernels): float32 scores
 * `[N, r·c]` on the layout, a square h x h filter that fits the map, ε >= 0.
 *
 * @module
 */

import type { Filter } from "./filters.ts";
import type { Layout } from "./layout.ts";
import type { Tensor2D } from "../types.ts";

/**
 * Throws a `RangeError` naming `fn` and every argument when z is not a
 * float32 `[N, r·c]` matrix on `layout`, H is not a square h x h filter
 * with h <= r, c, or eps is not >= 0.
 *
 * @param fn the caller's name, the message's first word
 * @param z the scores `[N, E]`
 * @param layout the r x c map of the E experts
 * @param H the h x h filter
 * @param eps ε inside the square root
 *
 * @example
 * ```ts
 * import { checkFusedArgs } from "./fused_args.ts";
 * import { gaussianFilter } from "./filters.ts";
 * import { tf } from "../deps.ts";
 * await tf.setBackend("cpu");
 * const z = tf.zeros([2, 16]) as tf.Tensor2D;
 * checkFusedArgs("f", z, { rows: 4, cols: 4 }, gaussianFilter(3, 1.5), 1e-8); // ok
 * ```
 */
export function checkFusedArgs(
  fn: string,
  z: Tensor2D,
  layout: Layout,
  H: Filter,
  eps: number,
): void {
  const h = H.length;
  if (
    z.rank !== 2 || z.dtype !== "float32" || layout.rows * layout.cols !== z.shape[1] ||
    h < 1 || H.some((row) => row.length !== h) || h > Math.min(layout.rows, layout.cols) ||
    !(eps >= 0)
  ) {
    throw new RangeError(
      `${fn}: needs float32 z [N, r·c], an h x h filter with h <= r, c and eps >= 0;` +
        ` got z ${z.dtype} [${z.shape}], layout ${layout.rows} x ${layout.cols},` +
        ` filter ${h} x ${H[0]?.length}, eps ${eps}`,
    );
  }
}
