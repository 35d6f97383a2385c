/**
 * Plain-TypeScript (float64) references for the tests, written from the paper
 * (MoGE, arXiv 2504.09265, Algorithm 1) and the authors' layout rule (README,
 * "Using it as a library"), independent of `src/`: Algorithm 1, its filters,
 * the squarest layout by brute force, map flips and central finite
 * differences.
 *
 * @module
 */

/** An h x h filter or an r x c map, row-major. */
export type Matrix = number[][];

/**
 * The Gaussian lowpass filter of Algorithm 1 step 3, straight from its formula.
 * centre "floor": tap i sits at offset i − ⌊h/2⌋ (the authors' code: h = 2 gives
 * offsets −1, 0); "symmetric": at i − (h−1)/2 (MATLAB's fspecial).
 */
export function refGaussian(
  h: number,
  sigma: number,
  centre: "floor" | "symmetric" = "floor",
): Matrix {
  const off = (i: number) => i - (centre === "floor" ? Math.floor(h / 2) : (h - 1) / 2);
  const raw = Array.from(
    { length: h },
    (_, i) =>
      Array.from(
        { length: h },
        (_, j) => Math.exp(-(off(i) ** 2 + off(j) ** 2) / (2 * sigma ** 2)),
      ),
  );
  let total = 0;
  for (const row of raw) for (const v of row) total += v;
  return raw.map((row) => row.map((v) => v / total));
}

/** The h x h average filter, 1/h² everywhere. */
export function refAverage(h: number): Matrix {
  return Array.from({ length: h }, () => Array.from({ length: h }, () => 1 / (h * h)));
}

/** Zero padding before the correlation: none (Algorithm 1), tf's "same", or h−1 on every side. */
export type RefPadding = "valid" | "same" | "full";

/**
 * The rows x cols map of a flat row-major vector with `top`/`left` zero rows/columns
 * before and `bottom`/`right` after, as a 2-D array.
 */
export function padMap(
  z: ArrayLike<number>,
  rows: number,
  cols: number,
  [top, bottom, left, right]: number[],
): Matrix {
  return Array.from(
    { length: top + rows + bottom },
    (_, i) =>
      Array.from({ length: left + cols + right }, (_, j) => {
        const [r, c] = [i - top, j - left];
        return r >= 0 && r < rows && c >= 0 && c < cols ? z[r * cols + c] : 0;
      }),
  );
}

/**
 * [top, bottom, left, right] zeros of each padding for an h x h filter: "same" as
 * tf.conv2d (total h−1, ⌊(h−1)/2⌋ before), "full" h−1 on every side.
 */
export function refPadAmounts(h: number, padding: RefPadding): number[] {
  if (padding === "valid") return [0, 0, 0, 0];
  if (padding === "full") return [h - 1, h - 1, h - 1, h - 1];
  const before = Math.floor((h - 1) / 2);
  return [before, h - 1 - before, before, h - 1 - before];
}

/**
 * R(z) of Algorithm 1 for one token, in float64: reshape z row-major to
 * rows x cols, (zero-pad it, for "same"/"full"), square, correlate with the
 * h x h filter (valid, stride 1), sqrt(· + eps), sum.
 */
export function refR(
  z: ArrayLike<number>,
  rows: number,
  cols: number,
  filter: Matrix,
  eps = 1e-8,
  padding: RefPadding = "valid",
): number {
  if (z.length !== rows * cols) throw new Error(`refR: ${z.length} != ${rows} x ${cols}`);
  const h = filter.length;
  const Z = padMap(z, rows, cols, refPadAmounts(h, padding));
  let total = 0;
  for (let u = 0; u + h <= Z.length; u++) {
    for (let v = 0; v + h <= Z[0].length; v++) {
      let y = 0;
      for (let a = 0; a < h; a++) {
        for (let b = 0; b < h; b++) y += filter[a][b] * Z[u + a][v + b] ** 2;
      }
      total += Math.sqrt(y + eps);
    }
  }
  return total;
}

/** {@linkcode refR} for each row of a row-major `[N, E]` array. */
export function refRBatch(
  z: ArrayLike<number>,
  n: number,
  rows: number,
  cols: number,
  filter: Matrix,
  eps = 1e-8,
  padding: RefPadding = "valid",
): number[] {
  const E = rows * cols;
  return Array.from(
    { length: n },
    (_, i) => refR(Array.from(z).slice(i * E, (i + 1) * E), rows, cols, filter, eps, padding),
  );
}

/** Every divisor pair r <= c with r * c = E. */
export function divisorPairs(E: number): { rows: number; cols: number }[] {
  const pairs: { rows: number; cols: number }[] = [];
  for (let r = 1; r * r <= E; r++) if (E % r === 0) pairs.push({ rows: r, cols: E / r });
  return pairs;
}

/** The squarest layout by brute force: the divisor pair with the smallest c - r. */
export function bruteLayout(E: number): { rows: number; cols: number } {
  let best = { rows: 1, cols: E };
  for (const p of divisorPairs(E)) if (p.cols - p.rows < best.cols - best.rows) best = p;
  return best;
}

/** Whether E's squarest layout (by brute force) fits an h x h filter. */
export function bruteUsable(E: number, h: number): boolean {
  const { rows, cols } = bruteLayout(E);
  return rows >= h && cols >= h;
}

/** The rows x cols map of a flat row-major vector, flipped and/or transposed. */
export function transformMap(
  z: ArrayLike<number>,
  rows: number,
  cols: number,
  { flipRows = false, flipCols = false, transpose = false } = {},
): number[] {
  const out: number[] = [];
  if (transpose) {
    for (let j = 0; j < cols; j++) {
      for (let i = 0; i < rows; i++) {
        out.push(z[(flipRows ? rows - 1 - i : i) * cols + (flipCols ? cols - 1 - j : j)]);
      }
    }
  } else {
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < cols; j++) {
        out.push(z[(flipRows ? rows - 1 - i : i) * cols + (flipCols ? cols - 1 - j : j)]);
      }
    }
  }
  return out;
}

/** Central finite differences of f at x, in float64. */
export function numericGradient(f: (x: number[]) => number, x: ArrayLike<number>, step = 1e-3) {
  const base = Array.from(x);
  return base.map((_, i) => {
    const plus = base.slice();
    const minus = base.slice();
    plus[i] += step;
    minus[i] -= step;
    return (f(plus) - f(minus)) / (2 * step);
  });
}
