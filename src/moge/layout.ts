/**
 * The topographic layout of MoGE (Algorithm 1, step 1): the E routing scores
 * of a token are laid out row-major on an r x c map.
 *
 * @module
 */

import { checkInteger, checkNumber } from "../validate.ts";

/** An r x c map of experts, r <= c, r * c = E. */
export interface Layout {
  /** Number of rows r (the smaller side). */
  rows: number;
  /** Number of columns c. */
  cols: number;
}

/**
 * The largest E this module accepts: above 2^53 - 1 not every integer is a
 * float, so `rows--` could stop changing `rows` and `E % rows` loses meaning.
 */
const MAX_E = Number.MAX_SAFE_INTEGER;

/** The largest filter size h with h * h <= MAX_E (so a usable E exists). */
const MAX_H = Math.floor(Math.sqrt(MAX_E));

/** A TypeError naming a non-number argument (e.g. the string "16"). */
function checkIsNumber(name: string, value: unknown): void {
  if (typeof value !== "number") {
    throw new TypeError(
      `${name} = ${JSON.stringify(value) ?? String(value)} is a ${typeof value}: ` +
        `${name} must be a number (an integer >= 1)`,
    );
  }
}

/**
 * The divisor pair r <= c of E with the smallest c - r (r = 1 for a prime).
 * E must be a safe integer >= 1 (at most sqrt(E) ~ 9.5e7 steps).
 */
function closestDivisors(E: number): Layout {
  let rows = Math.floor(Math.sqrt(E));
  while (E % rows !== 0) rows--;
  return { rows, cols: E / rows };
}

/**
 * True when E experts can be laid out for an h x h filter (both sides >= h).
 *
 * @example
 * ```ts
 * import { isUsableE } from "./layout.ts";
 * isUsableE(16, 3); // true  (4 x 4)
 * isUsableE(13, 3); // false (1 x 13)
 * ```
 */
export function isUsableE(E: number, h = 3): boolean {
  return Number.isInteger(E) && E >= 1 && E <= MAX_E && closestDivisors(E).rows >= h;
}

/**
 * The usable expert counts nearest to E, below and above (for error messages).
 *
 * @example
 * ```ts
 * import { nearestUsableE } from "./layout.ts";
 * nearestUsableE(13, 3); // { below: 12, above: 15 }
 * ```
 */
export function nearestUsableE(E: number, h = 3): { below: number | null; above: number } {
  checkIsNumber("E", E);
  checkIsNumber("h", h);
  checkInteger("h", h, 1, MAX_H);
  // Every multiple h·m with m >= h is usable (h divides it, h <= sqrt), so the search
  // below takes at most h steps and one above exists up to MAX_E when E <= MAX_E - h.
  checkNumber("E", E, { max: MAX_E - h });
  let below: number | null = null;
  for (let e = Math.floor(E) - 1; e >= h * h; e--) {
    if (isUsableE(e, h)) {
      below = e;
      break;
    }
  }
  let above = Math.max(Math.ceil(E) + 1, h * h);
  while (!isUsableE(above, h)) above++;
  return { below, above };
}

/**
 * The topographic layout of E experts (MoGE, Algorithm 1 step 1; the authors'
 * code): the divisor pair r <= c with r * c = E and the smallest c - r, e.g.
 * 16 -> 4 x 4, 32 -> 4 x 8, 400 -> 20 x 20.
 *
 * Throws a `RangeError` when the map is too small for an h x h filter
 * (r < h, e.g. a prime E gives 1 x E), suggesting the nearest usable E, or
 * when E is not an integer in [1, 2^53 - 1]; a `TypeError` when E or h is
 * not a number (e.g. the string "16").
 *
 * @param E number of experts (integer >= 1)
 * @param h filter size (integer >= 1), default 3
 *
 * @example
 * ```ts
 * import { topographicLayout } from "./layout.ts";
 * topographicLayout(32); // { rows: 4, cols: 8 }
 * topographicLayout(8, 2); // { rows: 2, cols: 4 }
 * ```
 */
export function topographicLayout(E: number, h = 3): Layout {
  checkIsNumber("E", E);
  checkIsNumber("h", h);
  checkInteger("E", E, 1, MAX_E);
  checkInteger("h", h, 1, MAX_H);
  const layout = closestDivisors(E);
  if (layout.rows < h) {
    const { below, above } = E <= MAX_E - h ? nearestUsableE(E, h) : { below: null, above: NaN };
    const why = layout.rows === 1 && E > 1
      ? `E = ${E} is prime, so its only layout is 1 x ${E}`
      : `the squarest layout of E = ${E} is ${layout.rows} x ${layout.cols}`;
    const near = Number.isNaN(above)
      ? "none above it, which is the largest E accepted"
      : below === null
      ? `${above}`
      : `${below} or ${above}`;
    throw new RangeError(
      `${why}, smaller than the ${h} x ${h} filter (h = ${h} needs rows >= ${h}); ` +
        `nearest usable E: ${near}`,
    );
  }
  return layout;
}
