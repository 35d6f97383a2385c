/**
 * Zero padding of the r x c map before the h x h correlation of Algorithm 1.
 *
 * @module
 */

import { checkInteger } from "../validate.ts";

/**
 * How R(z) pads the r x c map with zeros before correlating it with the
 * h x h filter:
 *
 * - "valid" (default, Algorithm 1): no padding, (r−h+1)(c−h+1) windows; an
 *   entry on the border lies in fewer windows than one inside (a corner in 1,
 *   an interior entry in h²).
 * - "same": tf.conv2d's "same" (⌊(h−1)/2⌋ zeros before, the rest after),
 *   r·c windows; the border deficit shrinks but stays (h = 3: corner 4,
 *   edge 6, interior 9 windows).
 * - "full": h−1 zeros on every side, (r+h−1)(c+h−1) windows; every entry
 *   lies in exactly h² windows, so no position of the map is favoured.
 *
 * "same" and "full" depart from Algorithm 1 (valid correlation).
 */
export type Padding = "valid" | "same" | "full";

/** The allowed {@linkcode Padding} values. */
export const PADDINGS: readonly Padding[] = ["valid", "same", "full"];

/**
 * Where the windows of a padded map lie: window (u, v), for 0 <= u < outRows
 * and 0 <= v < outCols, covers map rows u−top … u−top+h−1 and columns
 * v−left … v−left+h−1 (entries outside the map count as 0).
 */
export interface PaddedWindows {
  /** Zero rows added above the map. */
  top: number;
  /** Zero columns added left of the map. */
  left: number;
  /** Number of window rows. */
  outRows: number;
  /** Number of window columns. */
  outCols: number;
}

/**
 * The padding amounts and window grid of an r x c map under an h x h filter.
 *
 * @example
 * ```ts
 * import { paddedWindows } from "./padding.ts";
 * paddedWindows(4, 4, 3, "valid"); // { top: 0, left: 0, outRows: 2, outCols: 2 }
 * paddedWindows(4, 4, 3, "same"); // { top: 1, left: 1, outRows: 4, outCols: 4 }
 * paddedWindows(4, 4, 3, "full"); // { top: 2, left: 2, outRows: 6, outCols: 6 }
 * ```
 */
export function paddedWindows(
  rows: number,
  cols: number,
  h: number,
  padding: Padding,
): PaddedWindows {
  checkInteger("rows", rows, 1);
  checkInteger("cols", cols, 1);
  checkInteger("h", h, 1);
  if (padding === "valid") return { top: 0, left: 0, outRows: rows - h + 1, outCols: cols - h + 1 };
  if (padding === "same") {
    const before = Math.floor((h - 1) / 2);
    return { top: before, left: before, outRows: rows, outCols: cols };
  }
  if (padding === "full") {
    return { top: h - 1, left: h - 1, outRows: rows + h - 1, outCols: cols + h - 1 };
  }
  throw new RangeError(
    `padding = "${String(padding)}" is invalid: allowed are ${PADDINGS.join(", ")}`,
  );
}
