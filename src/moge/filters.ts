/**
 * The h x h lowpass filters of MoGE (Algorithm 1, step 3).
 *
 * @module
 */

import { checkInteger, checkNumber } from "../validate.ts";

/** An h x h filter, row-major: `filter[a][b]`. */
export type Filter = number[][];

/** The filter shapes MoGE offers. */
export type FilterKind = "gaussian" | "average";

/** The allowed {@linkcode FilterKind} values. */
export const FILTER_KINDS: readonly FilterKind[] = ["gaussian", "average"];

/**
 * Where an h-tap filter has its centre, which matters only for even h:
 *
 * - "floor" (default, the authors' code): the centre is tap ⌊h/2⌋, offsets
 *   −⌊h/2⌋ … h−1−⌊h/2⌋ (h = 2: [−1, 0]). The even-h Gaussian then depends on
 *   σ (h = 2, σ = 1.5: [[.198, .247], [.247, .308]]) and is not symmetric.
 * - "symmetric" (MATLAB's `fspecial`): offsets −(h−1)/2 … (h−1)/2,
 *   half-integers for even h. The h = 2 Gaussian is then the average filter
 *   for every σ, so a σ schedule does nothing at h = 2.
 *
 * For odd h both give the offsets −(h−1)/2 … (h−1)/2.
 */
export type FilterCentre = "floor" | "symmetric";

/** The allowed {@linkcode FilterCentre} values. */
export const FILTER_CENTRES: readonly FilterCentre[] = ["floor", "symmetric"];

/** The offsets of an h-tap filter with the given centre. */
function offsets(h: number, centre: FilterCentre): number[] {
  if (centre !== "floor" && centre !== "symmetric") {
    throw new RangeError(
      `centre = "${String(centre)}" is invalid: allowed are ${FILTER_CENTRES.join(", ")}`,
    );
  }
  const c = centre === "floor" ? Math.floor(h / 2) : (h - 1) / 2;
  return Array.from({ length: h }, (_, i) => i - c);
}

/**
 * The Gaussian lowpass filter of MoGE (Algorithm 1, step 3):
 * H_ab ∝ exp(-(a² + b²) / (2σ²)) over the tap offsets a, b, normalized to
 * sum to 1. For odd h this is MATLAB's `fspecial("gaussian", h, sigma)`; for
 * even h the offsets depend on `centre` (see {@linkcode FilterCentre}).
 *
 * @param h filter size (integer >= 1)
 * @param sigma standard deviation (> 0)
 * @param centre "floor" (default, the authors' code) or "symmetric" (fspecial)
 *
 * @example
 * ```ts
 * import { gaussianFilter } from "./filters.ts";
 * const H = gaussianFilter(3, 1.5);
 * H.flat().reduce((a, b) => a + b); // 1 (up to rounding)
 * gaussianFilter(2, 1.5)[1][1]; // 0.3084 (offsets [-1, 0]: the centre is tap 1)
 * gaussianFilter(2, 1.5, "symmetric")[1][1]; // 0.25 (offsets ±1/2)
 * ```
 */
export function gaussianFilter(h: number, sigma: number, centre: FilterCentre = "floor"): Filter {
  checkInteger("h (filter size)", h, 1);
  checkNumber("sigma", sigma, { min: 0, exclusiveMin: true });
  const o = offsets(h, centre);
  const min = Math.min(...o.map((a) => a * a)) * 2;
  // Subtracting the smallest exponent keeps a tiny sigma from underflowing to 0/0.
  const raw = o.map((a) => o.map((b) => Math.exp(-(a * a + b * b - min) / (2 * sigma) / sigma)));
  const total = raw.flat().reduce((s, v) => s + v, 0);
  return raw.map((row) => row.map((v) => v / total));
}

/**
 * The h x h average filter, H_ab = 1/h² (MoGE's filter ablation; with it the
 * regularizer is (1/h)·ℓ_{2,1} over overlapping windows, eq. 6-7).
 *
 * @example
 * ```ts
 * import { averageFilter } from "./filters.ts";
 * averageFilter(2); // [[0.25, 0.25], [0.25, 0.25]]
 * ```
 */
export function averageFilter(h: number): Filter {
  checkInteger("h (filter size)", h, 1);
  return Array.from({ length: h }, () => Array.from({ length: h }, () => 1 / (h * h)));
}

/**
 * Builds the filter of the given kind (`centre` only matters for an even-h
 * Gaussian).
 *
 * @example
 * ```ts
 * import { makeFilter } from "./filters.ts";
 * makeFilter("average", 3).length; // 3
 * ```
 */
export function makeFilter(
  kind: FilterKind,
  h: number,
  sigma?: number,
  centre: FilterCentre = "floor",
): Filter {
  if (kind === "average") return averageFilter(h);
  if (kind === "gaussian") {
    if (sigma === undefined) {
      throw new RangeError("sigma is required for the gaussian filter (a finite number > 0)");
    }
    return gaussianFilter(h, sigma, centre);
  }
  throw new RangeError(
    `filter = "${String(kind)}" is invalid: allowed are ${FILTER_KINDS.join(", ")}`,
  );
}
