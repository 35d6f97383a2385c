/**
 * The group-sparse regularizer of MoGE (Algorithm 1).
 *
 * @module
 */

import { tf } from "../deps.ts";
import type { Tensor, Tensor1D, Tensor2D } from "../types.ts";
import { type FilterKind, makeFilter } from "./filters.ts";
import { type Layout, topographicLayout } from "./layout.ts";
import { fusedGroupSparsity } from "./group_sparsity_webgpu.ts";
import { checkFinite, checkInteger, checkNumber } from "../validate.ts";

/** Options of {@linkcode groupSparsity}. */
export interface GroupSparsityOptions {
  /** σ of the Gaussian filter (> 0); required unless `filter` is "average". */
  sigma?: number;
  /** Filter size h (default 3; the authors use 2 for E = 8). */
  filterSize?: number;
  /** "gaussian" (default, the paper's) or "average" (the ablation). */
  filter?: FilterKind;
  /** The r x c map (default: {@linkcode topographicLayout} of E); r * c must equal E. */
  layout?: Layout;
  /** ε inside the root, default 1e-8 (the authors' code). */
  eps?: number;
  /**
   * Scan z for NaN/Infinity and throw a clear error (default true). This
   * reads z back synchronously, which tfjs allows on cpu and wasm; on webgpu
   * the scan is skipped (check with `assertFinite` instead, as the MoE layer
   * does on the scores it reads back for routing).
   */
  checkFinite?: boolean;
  /**
   * On the webgpu backend, compute R(z) and its gradient with two fused
   * WebGPU kernels (one dispatch each, compiled once per map and filter
   * size; σ changes compile nothing) instead of ~15 small tfjs ops. Same
   * values up to float32 rounding. Default true; ignored on other backends,
   * which always use the tfjs ops; `false` forces the ops on webgpu too.
   */
  fused?: boolean;
}

/**
 * The MoGE regularizer R(z) per token (Algorithm 1; eq. 9 adds λ·R to the
 * loss): reshape each token's scores z ∈ R^E row-major to the r x c map Z,
 * square it, convolve with the h x h filter H (valid, stride 1), take
 * sqrt(· + ε) and sum all (r-h+1)(c-h+1) entries. Differentiable through tfjs
 * (on webgpu, by default, with two fused kernels: see `fused`).
 *
 * With the average filter this is (1/h)·‖z‖_{2,1} over the overlapping h x h
 * windows (eq. 6-7, up to ε).
 *
 * @param z routing scores, `[N, E]` float32
 * @returns the `[N]` tensor of R(z) per token
 *
 * @example
 * ```ts
 * import { groupSparsity, tf } from "../../mod.ts";
 * const z = tf.softmax(tf.randomNormal([2, 16])); // [N, E]
 * const r = groupSparsity(z, { sigma: 1.5 }); // [N]
 * console.log(r.shape); // [2]
 * ```
 */
export function groupSparsity(z: Tensor, options: GroupSparsityOptions = {}): Tensor1D {
  const { filterSize: h = 3, filter = "gaussian", eps = 1e-8 } = options;
  if (!(z instanceof tf.Tensor)) {
    throw new TypeError(`groupSparsity: z must be a tf.Tensor of shape [N, E], got ${typeof z}`);
  }
  if (z.rank !== 2) {
    throw new RangeError(
      `groupSparsity: z must have rank 2 ([N, E] routing scores), got shape [${z.shape}]`,
    );
  }
  if (z.dtype !== "float32") {
    throw new TypeError(`groupSparsity: z must be float32, got ${z.dtype}`);
  }
  const [N, E] = z.shape;
  checkInteger("h (filterSize)", h, 1);
  checkNumber("eps", eps, { min: 0 });
  const layout = options.layout ?? topographicLayout(E, h);
  for (const k of ["rows", "cols"] as const) checkInteger(`layout.${k}`, layout[k], 1);
  if (layout.rows * layout.cols !== E) {
    throw new RangeError(
      `groupSparsity: layout ${layout.rows} x ${layout.cols} holds ${layout.rows * layout.cols}` +
        ` experts but z has E = ${E}`,
    );
  }
  if (h > Math.min(layout.rows, layout.cols)) {
    throw new RangeError(
      `groupSparsity: filterSize h = ${h} is larger than the ${layout.rows} x ${layout.cols} map` +
        ` (h must be <= ${Math.min(layout.rows, layout.cols)})`,
    );
  }
  const H = makeFilter(filter, h, options.sigma);
  if ((options.checkFinite ?? true) && tf.getBackend() !== "webgpu") {
    checkFinite("groupSparsity: z", z.dataSync() as Float32Array);
  }
  if ((options.fused ?? true) && tf.getBackend() === "webgpu") {
    return fusedGroupSparsity(z as Tensor2D, layout, H, eps);
  }
  return tf.tidy(() => {
    const q = tf.square(z).reshape([N, layout.rows, layout.cols, 1]); // [N, r, c, 1]
    const k = tf.tensor4d(H.flat(), [h, h, 1, 1]); // [h, h, 1, 1]
    const y = tf.conv2d(q as tf.Tensor4D, k, 1, "valid"); // [N, r-h+1, c-h+1, 1]
    return tf.sum(tf.sqrt(tf.add(y, eps)), [1, 2, 3]) as tf.Tensor1D; // [N]
  });
}

/**
 * Throws a `RangeError` if a tensor holds NaN or ±Infinity (reads it back
 * asynchronously, so it works on every backend, webgpu included).
 *
 * @example
 * ```ts
 * import { assertFinite, tf } from "../../mod.ts";
 * await assertFinite(tf.tensor([1, 2]), "z"); // ok
 * ```
 */
export async function assertFinite(t: Tensor, name = "tensor"): Promise<void> {
  checkFinite(name, (await t.data()) as Float32Array);
}
