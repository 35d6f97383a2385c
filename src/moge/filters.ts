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
 * The offsets of an h-tap filter, centred symmetrically: -(h-1)/2 ... (h-1)/2
 * (half-integers for even h, as MATLAB's `fspecial`).
 */
function offsets(h: number): number[] {
  return Array.from({ length: h }, (_, i) => i - (h - 1) / 2);
}

/**
 * The rotationally symmetric Gaussian lowpass filter of MoGE (Algorithm 1,
 * step 3; MATLAB `fspecial("gaussian", h, sigma)`):
 * H_ab ∝ exp(-(a² + b²) / (2σ²)), normalized to sum to 1.
 *
 * @param h filter size (integer >= 1; even sizes are centred symmetrically)
 * @param sigma standard deviation (> 0)
 *
 * @example
 * ```ts
 * import { gaussianFilter } from "./filters.ts";
 * const H = gaussianFilter(3, 1.5);
 * H.flat().reduce((a, b) => a + b); // 1 (up to rounding)
 * ```
 */
export function gaussianFilter(h: number, sigma: number): Filter {
  checkInteger("h (filter size)", h, 1);
  checkNumber("sigma", sigma, { min: 0, exclusiveMin: true });
  const o = offsets(h);
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
 * Builds the filter of the given kind.
 *
 * @example
 * ```ts
 * import { makeFilter } from "./filters.ts";
 * makeFilter("average", 3).length; // 3
 * ```
 */
export function makeFilter(kind: FilterKind, h: number, sigma?: number): Filter {
  if (kind === "average") return averageFilter(h);
  if (kind === "gaussian") {
    if (sigma === undefined) {
      throw new RangeError("sigma is required for the gaussian filter (a finite number > 0)");
    }
    return gaussianFilter(h, sigma);
  }
  throw new RangeError(
    `filter = "${String(kind)}" is invalid: allowed are ${FILTER_KINDS.join(", ")}`,
  );
}
