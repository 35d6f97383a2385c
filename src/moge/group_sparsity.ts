/**
 * The group-sparse regularizer of MoGE (Algorithm 1).
 *
 * @module
 */

import { tf } from "../deps.ts";
import type { Tensor, Tensor1D, Tensor2D } from "../types.ts";
import { FILTER_CENTRES, type FilterCentre, type FilterKind, makeFilter } from "./filters.ts";
import { type Layout, topographicLayout } from "./layout.ts";
import { paddedWindows, type Padding } from "./padding.ts";
import { fusedGroupSparsity } from "./group_sparsity_webgpu.ts";
import { SYNC_BACKENDS } from "./group_sparsity_cpu.ts";
import { kernelGroupSparsity } from "./group_sparsity_kernel.ts";
import { checkFinite, checkInteger, checkNumber } from "../validate.ts";

/** Options of {@linkcode groupSparsity}. */
export interface GroupSparsityOptions {
  /** σ of the Gaussian filter (> 0); required unless `filter` is "average". */
  sigma?: number;
  /** Filter size h (default 3; the authors use 2 for E = 8). */
  filterSize?: number;
  /** "gaussian" (default, the paper's) or "average" (the ablation). */
  filter?: FilterKind;
  /**
   * Centre of an even-h Gaussian: "floor" (default, the authors' code: tap
   * ⌊h/2⌋, so the h = 2 filter depends on σ) or "symmetric" (MATLAB's
   * fspecial: the h = 2 filter is the average for every σ). No effect for
   * odd h or the average filter. See `FilterCentre`.
   */
  filterCentre?: FilterCentre;
  /**
   * Zero padding of the map: "valid" (default, Algorithm 1), "same" (r·c
   * windows, as tf.conv2d's "same") or "full" (h−1 zeros on every side: every
   * expert lies in exactly h² windows). "same" and "full" depart from
   * Algorithm 1. See `Padding`.
   */
  padding?: Padding;
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
   * How R(z) and its gradient are computed. "fused" (the default on webgpu,
   * cpu and wasm): on webgpu two fused WebGPU kernels (one dispatch each,
   * compiled once per map, filter size and padding; σ changes compile
   * nothing), on cpu and wasm two registered tfjs kernels (R and its
   * gradient) that read z where the backend keeps it and run a hand-written
   * routine each (a separable filter as two 1-D passes, by WebAssembly SIMD
   * loops; see `kernelGroupSparsity`).
   * "ops": ~15 small tfjs ops (square, conv2d, add, sqrt, sum), the
   * reference; the default on any other backend. Same values up to float32
   * rounding.
   */
  impl?: "ops" | "fused";
}

/** The backends with a fused implementation (`impl: "fused"`). */
const FUSED_BACKENDS: readonly string[] = ["webgpu", ...SYNC_BACKENDS];

/**
 * The MoGE regularizer R(z) per token (Algorithm 1; eq. 9 adds λ·R to the
 * loss): reshape each token's scores z ∈ R^E row-major to the r x c map Z,
 * square it, correlate with the h x h filter H (valid, stride 1; as tf.conv2d), take
 * sqrt(· + ε) and sum all (r-h+1)(c-h+1) entries. Differentiable through tfjs
 * (by default with a fused forward and gradient: see `impl`). With `padding`
 * "same" or "full" the map is zero-padded first (a departure from
 * Algorithm 1 that shrinks, or for "full" removes, the border's deficit of
 * windows).
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
  const { filterCentre = "floor", padding = "valid" } = options;
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
  if (!FILTER_CENTRES.includes(filterCentre)) {
    throw new RangeError(
      `filterCentre = "${String(filterCentre)}" is invalid: allowed are ${
        FILTER_CENTRES.join(", ")
      }`,
    );
  }
  const win = paddedWindows(layout.rows, layout.cols, h, padding); // validates padding
  const backend = tf.getBackend();
  const impl = options.impl ?? (FUSED_BACKENDS.includes(backend) ? "fused" : "ops");
  if (impl !== "ops" && impl !== "fused") {
    throw new RangeError(`impl = "${String(impl)}" is invalid: allowed are ops, fused`);
  }
  if (impl === "fused" && !FUSED_BACKENDS.includes(backend)) {
    throw new RangeError(
      `groupSparsity: impl "fused" runs on ${FUSED_BACKENDS.join(", ")}, not on "${backend}"` +
        ` (use impl "ops")`,
    );
  }
  const H = makeFilter(filter, h, options.sigma, filterCentre);
  if ((options.checkFinite ?? true) && backend !== "webgpu") {
    checkFinite("groupSparsity: z", z.dataSync() as Float32Array);
  }
  if (impl === "fused") {
    return backend === "webgpu"
      ? fusedGroupSparsity(z as Tensor2D, layout, H, eps, padding)
      : kernelGroupSparsity(z as Tensor2D, layout, H, eps, padding);
  }
  return tf.tidy(() => {
    const q = tf.square(z).reshape([N, layout.rows, layout.cols, 1]); // [N, r, c, 1]
    const bottom = win.outRows + h - 1 - layout.rows - win.top;
    const right = win.outCols + h - 1 - layout.cols - win.left;
    const padded = padding === "valid"
      ? q
      : tf.pad(q, [[0, 0], [win.top, bottom], [win.left, right], [0, 0]]); // [N, r', c', 1]
    const k = tf.tensor4d(H.flat(), [h, h, 1, 1]); // [h, h, 1, 1]
    const y = tf.conv2d(padded as tf.Tensor4D, k, 1, "valid"); // [N, outRows, outCols, 1]
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
