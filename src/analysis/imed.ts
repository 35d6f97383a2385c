/**
 * The image Euclidean distance (IMED) of Wang, Zhang and Feng, "On the
 * Euclidean Distance of Images", IEEE TPAMI 27(8), 2005 (eq. 8 there), which
 * MoGE uses to measure how much a routing map moves under an affine transform
 * of the input (Sec. 2.4, Table 1; README "The invariance experiment"):
 *
 *   d²(a, b) = (a − b)ᵀ G (a − b),
 *   g_ij = exp(−‖P_i − P_j‖² / (2σ²)) / (2πσ²),
 *
 * with P_i = (row, col) the lattice coordinates of the row-major entry i of an
 * r × c map. Unlike the plain Euclidean distance, G lets a unit of mass that
 * moved to a neighbouring cell count as "close".
 *
 * **Squared or not.** Every function here returns d², the quadratic form
 * itself, not its square root d. We name the quantity d² and the
 * paper's Table 1 "IMED" figures are, we believe, the quadratic form: it is
 * what the formula (a − b)ᵀ G (a − b) evaluates to and what IMED code usually
 * computes directly; we cannot confirm it from the paper. Take `Math.sqrt` of
 * the result for the metric d. (The claim checked in Table 1 is a
 * comparison, MoGE below MoE, which the monotone square root does not change
 * for a single pair; for test-set averages the two could in principle
 * disagree.)
 *
 * **Separable computation.** Because ‖P_i − P_j‖² = Δrow² + Δcol², G is the
 * Kronecker product G = (G_r ⊗ G_c) / (2πσ²) of the 1-D Gaussian matrices
 * (G_r)_{ik} = exp(−(i − k)² / (2σ²)) (r × r) and G_c likewise (c × c). With D
 * the r × c map of a − b, d² = Σ D ⊙ (G_r · D · G_c) / (2πσ²): two 1-D passes,
 * O(E·(r + c)) time for E = r·c, instead of the O(E²) explicit quadratic form.
 *
 * @module
 */

import { checkFinite, checkInteger, checkNumber } from "../validate.ts";

/** (G_1d)_{ik} = exp(−(i − k)² / (2σ²)), row-major n × n. */
function gaussian1d(n: number, sigma: number): Float64Array {
  const g = new Float64Array(n * n);
  const s2 = 2 * sigma * sigma;
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) g[i * n + k] = Math.exp(-((i - k) * (i - k)) / s2);
  }
  return g;
}

function checkShape(fn: string, rows: number, cols: number, sigma: number): void {
  checkInteger(`${fn}: rows`, rows, 1);
  checkInteger(`${fn}: cols`, cols, 1);
  checkNumber(`${fn}: sigma`, sigma, { min: 0, exclusiveMin: true });
}

function checkMap(fn: string, name: string, x: ArrayLike<number>, length: number, what: string) {
  if (x === null || typeof x !== "object" || typeof x.length !== "number") {
    throw new TypeError(`${fn}: ${name} must be an array of numbers, got ${String(x)}`);
  }
  if (x.length !== length) {
    throw new RangeError(
      `${fn}: ${name}.length = ${x.length} is invalid: it must equal ${what} = ${length}`,
    );
  }
  checkFinite(`${fn}: ${name}`, x);
}

/**
 * d² for one r × c difference map `diff` (row-major, starting at `offset`),
 * given the 1-D matrices; `tmp` is r × c scratch space.
 */
function quadForm(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  offset: number,
  rows: number,
  cols: number,
  gr: Float64Array,
  gc: Float64Array,
  diff: Float64Array,
  tmp: Float64Array,
): number {
  for (let i = 0; i < rows * cols; i++) diff[i] = a[offset + i] - b[offset + i];
  // Pass 1 (columns): tmp = D · G_c.
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      let s = 0;
      for (let k = 0; k < cols; k++) s += diff[i * cols + k] * gc[k * cols + j];
      tmp[i * cols + j] = s;
    }
  }
  // Pass 2 (rows): (G_r · tmp)[i, j], contracted with D on the fly.
  let total = 0;
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      let s = 0;
      for (let k = 0; k < rows; k++) s += gr[i * rows + k] * tmp[k * cols + j];
      total += diff[i * cols + j] * s;
    }
  }
  return total;
}

/**
 * The squared image Euclidean distance d²(a, b) = (a − b)ᵀ G (a − b) between
 * two r × c maps (Wang, Zhang, Feng, TPAMI 2005, eq. 8; MoGE Table 1), with
 * g_ij = exp(−‖P_i − P_j‖²/(2σ²))/(2πσ²) over the lattice positions P_i =
 * (row, col) of the row-major entries. Returns the square d², not d (see the
 * module docs); computed separably in O(E·(r + c)).
 *
 * G is positive definite, so d² > 0 whenever a ≠ b; round-off that would
 * make a (mathematically ≥ 0) result slightly negative is clamped to 0.
 *
 * @param a first map, row-major, length rows * cols, finite values
 * @param b second map, same shape
 * @param rows r (integer ≥ 1)
 * @param cols c (integer ≥ 1)
 * @param sigma σ of the Gaussian (> 0), default 1
 * @returns d²(a, b) ≥ 0
 *
 * @example
 * ```ts
 * import { imed } from "./imed.ts";
 * const a = [1, 0, 0, 0]; // 2 x 2 maps: all mass in the top-left cell ...
 * const b = [0, 1, 0, 0]; // ... moved one cell to the right
 * const d2 = imed(a, b, 2, 2); // (2 - 2 exp(-1/2)) / (2π) ≈ 0.125
 * console.log(d2.toFixed(4), Math.sqrt(d2).toFixed(4)); // d² and d
 * ```
 */
export function imed(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  rows: number,
  cols: number,
  sigma = 1,
): number {
  checkShape("imed", rows, cols, sigma);
  const E = rows * cols;
  checkMap("imed", "a", a, E, `rows * cols (${rows} * ${cols})`);
  checkMap("imed", "b", b, E, `rows * cols (${rows} * ${cols})`);
  const gr = gaussian1d(rows, sigma);
  const gc = gaussian1d(cols, sigma);
  const q = quadForm(a, b, 0, rows, cols, gr, gc, new Float64Array(E), new Float64Array(E));
  return Math.max(0, q / (2 * Math.PI * sigma * sigma));
}

/**
 * d² for many pairs at once: `a` and `b` hold N maps each, stacked row-major
 * (`[N, rows * cols]` flattened); entry n of the result is
 * {@linkcode imed}(a_n, b_n). The 1-D Gaussians are built once.
 *
 * @param a N stacked r × c maps, length N * rows * cols
 * @param b N stacked r × c maps, same length as `a`
 * @param rows r (integer ≥ 1)
 * @param cols c (integer ≥ 1)
 * @param sigma σ (> 0), default 1
 * @returns the N values d²(a_n, b_n)
 *
 * @example
 * ```ts
 * import { imedBatch } from "./imed.ts";
 * // two pairs of 2 x 2 maps; the second pair moves the mass diagonally
 * const a = [1, 0, 0, 0, 0, 0, 0, 1];
 * const b = [1, 0, 0, 0, 1, 0, 0, 0];
 * const d2 = imedBatch(a, b, 2, 2); // [0, (2 - 2 exp(-1)) / (2π) ≈ 0.2012]
 * console.log(Array.from(d2, (x) => x.toFixed(4)));
 * ```
 */
export function imedBatch(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  rows: number,
  cols: number,
  sigma = 1,
): Float64Array {
  checkShape("imedBatch", rows, cols, sigma);
  const E = rows * cols;
  if (a === null || typeof a !== "object" || typeof a.length !== "number") {
    throw new TypeError(`imedBatch: a must be an array of numbers, got ${String(a)}`);
  }
  if (a.length % E !== 0) {
    throw new RangeError(
      `imedBatch: a.length = ${a.length} is invalid: it must be a multiple of ` +
        `rows * cols (${rows} * ${cols} = ${E})`,
    );
  }
  checkMap("imedBatch", "b", b, a.length, "a.length");
  checkFinite("imedBatch: a", a);
  const n = a.length / E;
  const gr = gaussian1d(rows, sigma);
  const gc = gaussian1d(cols, sigma);
  const diff = new Float64Array(E);
  const tmp = new Float64Array(E);
  const norm = 2 * Math.PI * sigma * sigma;
  const out = new Float64Array(n);
  for (let p = 0; p < n; p++) {
    out[p] = Math.max(0, quadForm(a, b, p * E, rows, cols, gr, gc, diff, tmp) / norm);
  }
  return out;
}

/**
 * The explicit E × E IMED metric matrix G (E = rows * cols), row-major:
 * g_ij = exp(−‖P_i − P_j‖²/(2σ²))/(2πσ²) with P_i = (⌊i / cols⌋, i mod cols)
 * (Wang, Zhang, Feng, TPAMI 2005, eq. 8). O(E²) memory: meant for tests and
 * small maps; {@linkcode imed} never builds it.
 *
 * @param rows r (integer ≥ 1)
 * @param cols c (integer ≥ 1)
 * @param sigma σ (> 0), default 1
 * @returns G, a symmetric positive definite E × E matrix, row-major
 *
 * @example
 * ```ts
 * import { imedMatrix } from "./imed.ts";
 * const G = imedMatrix(2, 2); // 4 x 4
 * console.log(G[0].toFixed(4)); // 1 / (2π) = 0.1592 on the diagonal
 * ```
 */
export function imedMatrix(rows: number, cols: number, sigma = 1): Float64Array {
  checkShape("imedMatrix", rows, cols, sigma);
  const E = rows * cols;
  const G = new Float64Array(E * E);
  const s2 = 2 * sigma * sigma;
  const norm = Math.PI * s2;
  for (let i = 0; i < E; i++) {
    const ri = Math.floor(i / cols), ci = i % cols;
    for (let j = 0; j < E; j++) {
      const dr = ri - Math.floor(j / cols), dc = ci - (j % cols);
      G[i * E + j] = Math.exp(-(dr * dr + dc * dc) / s2) / norm;
    }
  }
  return G;
}
