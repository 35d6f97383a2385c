/**
 * Group-sparse norms (MoGE eq. 6-7), in plain TypeScript: the reference the
 * property tests compare the tfjs regularizer against.
 *
 * @module
 */

import { checkFinite, checkInteger, checkNumber } from "../validate.ts";

/**
 * The ℓ_{p,q} group norm of MoGE eq. 6:
 * ‖z‖_{p,q} = (Σ_i ‖z_{G_i}‖_p^q)^{1/q}, with p >= 1 and 0 < q <= 1.
 * Groups may overlap. ℓ_{2,1} (eq. 7) is `groupNorm(z, groups, 2, 1)`.
 *
 * @param values the vector z
 * @param groups each group is a list of indices into `values`
 *
 * @example
 * ```ts
 * import { groupNorm } from "./group_norm.ts";
 * groupNorm([3, 4, 0, 1], [[0, 1], [2, 3]], 2, 1); // 5 + 1 = 6
 * ```
 */
export function groupNorm(
  values: ArrayLike<number>,
  groups: readonly (readonly number[])[],
  p = 2,
  q = 1,
): number {
  checkNumber("p", p, { min: 1 });
  checkNumber("q", q, { min: 0, max: 1, exclusiveMin: true });
  checkFinite("values", values);
  let total = 0;
  for (const group of groups) {
    let s = 0;
    for (const i of group) {
      checkInteger("group index", i, 0, values.length - 1);
      s += Math.abs(values[i]) ** p;
    }
    total += s ** (q / p);
  }
  return total ** (1 / q);
}

/**
 * The overlapping h x h windows of a row-major r x c map, as index groups:
 * the P = (r-h+1)(c-h+1) groups whose ℓ_{2,1} norm the average-filter
 * regularizer computes.
 *
 * @example
 * ```ts
 * import { slidingWindows } from "./group_norm.ts";
 * slidingWindows(2, 3, 2); // [[0, 1, 3, 4], [1, 2, 4, 5]]
 * ```
 */
export function slidingWindows(rows: number, cols: number, h: number): number[][] {
  checkInteger("rows", rows, 1);
  checkInteger("cols", cols, 1);
  checkInteger("h", h, 1, Math.min(rows, cols));
  const groups: number[][] = [];
  for (let u = 0; u + h <= rows; u++) {
    for (let v = 0; v + h <= cols; v++) {
      const g: number[] = [];
      for (let a = 0; a < h; a++) for (let b = 0; b < h; b++) g.push((u + a) * cols + v + b);
      groups.push(g);
    }
  }
  return groups;
}
