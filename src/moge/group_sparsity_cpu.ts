/**
 * The MoGE regularizer (Algorithm 1) and its gradient as one hand-written
 * Float32Array routine each, for the cpu and wasm backends: z is read back
 * synchronously (both backends allow it), R(z) is computed in plain
 * TypeScript (float64 accumulators) and returned as a tensor, with a
 * `tf.customGrad` whose gradient is computed the same way. This replaces the
 * ~15 small tfjs kernels (square, conv2d, add, sqrt, sum and their
 * gradients) of the op path, whose per-op overhead, not their arithmetic,
 * sets its speed.
 *
 * A separable filter (H = col ⊗ row, as the Gaussian and the average are) is
 * applied as two 1-D passes (2h instead of h² multiply-adds per window); any
 * other h x h filter is applied directly. Separability is tested on H, not
 * assumed.
 *
 * @module
 */

import { tf } from "../deps.ts";
import type { Filter } from "./filters.ts";
import type { Layout } from "./layout.ts";
import { type PaddedWindows, paddedWindows, type Padding } from "./padding.ts";
import type { Tensor, Tensor1D, Tensor2D } from "../types.ts";

/** The backends this routine runs on (they can read a tensor back synchronously). */
export const SYNC_BACKENDS: readonly string[] = ["cpu", "wasm"];

/**
 * A rank-1 factorization H_ab = col_a · row_b, or null when H has none (up to
 * a relative 1e-9 of its largest entry).
 *
 * @example
 * ```ts
 * import { separateFilter } from "./group_sparsity_cpu.ts";
 * separateFilter([[0.25, 0.25], [0.25, 0.25]]); // { col: [0.5, 0.5], row: [0.5, 0.5] }
 * separateFilter([[1, 0], [0, 1]]); // null
 * ```
 */
export function separateFilter(H: Filter): { col: number[]; row: number[] } | null {
  const h = H.length;
  let a0 = 0, b0 = 0;
  for (let a = 0; a < h; a++) {
    for (let b = 0; b < h; b++) if (Math.abs(H[a][b]) > Math.abs(H[a0][b0])) [a0, b0] = [a, b];
  }
  const pivot = H[a0][b0];
  if (pivot === 0) return { col: new Array(h).fill(0), row: new Array(h).fill(0) };
  // H_ab = H_a,b0 · H_a0,b / H_a0,b0 for every a, b exactly when H has rank 1.
  const scale = Math.sqrt(Math.abs(pivot));
  const col = H.map((r) => r[b0] / scale);
  const row = H[a0].map((v) => (v * scale) / pivot);
  const tol = 1e-9 * Math.abs(pivot);
  for (let a = 0; a < h; a++) {
    for (let b = 0; b < h; b++) if (Math.abs(H[a][b] - col[a] * row[b]) > tol) return null;
  }
  return { col, row };
}

/** Everything both passes need about one map, filter and padding. */
interface Plan extends PaddedWindows {
  rows: number;
  cols: number;
  h: number;
  /** H row-major. */
  H: Float64Array;
  /** The 1-D factors of H, when it is separable. */
  sep: { col: Float64Array; row: Float64Array } | null;
}

function makePlan(layout: Layout, H: Filter, padding: Padding): Plan {
  const h = H.length;
  const sep = separateFilter(H);
  return {
    rows: layout.rows,
    cols: layout.cols,
    h,
    ...paddedWindows(layout.rows, layout.cols, h, padding),
    H: Float64Array.from(H.flat()),
    sep: sep && { col: Float64Array.from(sep.col), row: Float64Array.from(sep.row) },
  };
}

/*
 * Layout of the work arrays: token-minor, `[position][token]` (flat index
 * position·N + n). A shift of the map by one column is then a shift of N in
 * the flat index, so each filter tap is one multiply-add over a long
 * contiguous span covering every token at once: loops of thousands of
 * iterations instead of h-long ones, which is what makes plain TypeScript run
 * at the speed of its arithmetic.
 */

/**
 * y = H ⋆ q over all N tokens: y[u, v] = Σ_ab H_ab · q[u−top+a, v−left+b]
 * (entries outside the map are 0). q is `[rows·cols][N]`, y
 * `[outRows·outCols][N]`, t scratch of `[rows·outCols][N]`.
 */
function correlate(p: Plan, N: number, q: Float32Array, y: Float32Array, t: Float32Array): void {
  const { rows, cols, h, top, left, outRows, outCols } = p;
  y.fill(0);
  if (p.sep) {
    const { col, row } = p.sep;
    // Horizontal pass: t[i, v] = Σ_b row_b · q[i, v−left+b].
    t.fill(0);
    for (let b = 0; b < h; b++) {
      const w = row[b], shift = b - left;
      const vLo = Math.max(0, -shift), vHi = Math.min(outCols, cols - shift);
      const span = (vHi - vLo) * N;
      for (let i = 0; i < rows; i++) {
        const to = (i * outCols + vLo) * N, qo = (i * cols + vLo + shift) * N;
        for (let k = 0; k < span; k++) t[to + k] += w * q[qo + k];
      }
    }
    // Vertical pass: y[u, v] = Σ_a col_a · t[u−top+a, v].
    for (let a = 0; a < h; a++) {
      const w = col[a], shift = a - top;
      const uLo = Math.max(0, -shift), uHi = Math.min(outRows, rows - shift);
      const span = (uHi - uLo) * outCols * N;
      const yo = uLo * outCols * N, to = (uLo + shift) * outCols * N;
      for (let k = 0; k < span; k++) y[yo + k] += w * t[to + k];
    }
    return;
  }
  const H = p.H;
  for (let a = 0; a < h; a++) {
    const ra = a - top;
    const uLo = Math.max(0, -ra), uHi = Math.min(outRows, rows - ra);
    for (let b = 0; b < h; b++) {
      const w = H[a * h + b], cb = b - left;
      const vLo = Math.max(0, -cb), vHi = Math.min(outCols, cols - cb);
      const span = (vHi - vLo) * N;
      for (let u = uLo; u < uHi; u++) {
        const yo = (u * outCols + vLo) * N, qo = ((u + ra) * cols + vLo + cb) * N;
        for (let k = 0; k < span; k++) y[yo + k] += w * q[qo + k];
      }
    }
  }
}

/**
 * The adjoint of {@linkcode correlate}: d[i, j] = Σ_uv g[u, v] · H[i−u+top, j−v+left]
 * over the windows holding (i, j). g is `[outRows·outCols][N]`, d
 * `[rows·cols][N]`, t scratch of `[rows·outCols][N]`.
 */
function correlateAdjoint(
  p: Plan,
  N: number,
  g: Float32Array,
  d: Float32Array,
  t: Float32Array,
): void {
  const { rows, cols, h, top, left, outRows, outCols } = p;
  d.fill(0);
  if (p.sep) {
    const { col, row } = p.sep;
    // Vertical: t[i, v] = Σ_a col_a · g[i+top−a, v].
    t.fill(0);
    for (let a = 0; a < h; a++) {
      const w = col[a], shift = a - top;
      const uLo = Math.max(0, -shift), uHi = Math.min(outRows, rows - shift);
      const span = (uHi - uLo) * outCols * N;
      const go = uLo * outCols * N, to = (uLo + shift) * outCols * N;
      for (let k = 0; k < span; k++) t[to + k] += w * g[go + k];
    }
    // Horizontal: d[i, j] = Σ_b row_b · t[i, j+left−b].
    for (let b = 0; b < h; b++) {
      const w = row[b], shift = b - left;
      const vLo = Math.max(0, -shift), vHi = Math.min(outCols, cols - shift);
      const span = (vHi - vLo) * N;
      for (let i = 0; i < rows; i++) {
        const to = (i * outCols + vLo) * N, dO = (i * cols + vLo + shift) * N;
        for (let k = 0; k < span; k++) d[dO + k] += w * t[to + k];
      }
    }
    return;
  }
  const H = p.H;
  for (let a = 0; a < h; a++) {
    const ra = a - top;
    const uLo = Math.max(0, -ra), uHi = Math.min(outRows, rows - ra);
    for (let b = 0; b < h; b++) {
      const w = H[a * h + b], cb = b - left;
      const vLo = Math.max(0, -cb), vHi = Math.min(outCols, cols - cb);
      const span = (vHi - vLo) * N;
      for (let u = uLo; u < uHi; u++) {
        const go = (u * outCols + vLo) * N, dO = ((u + ra) * cols + vLo + cb) * N;
        for (let k = 0; k < span; k++) d[dO + k] += w * g[go + k];
      }
    }
  }
}

/** Scratch arrays reused across calls (grown on demand, never shrunk), by slot. */
const pool: Float32Array[] = [new Float32Array(0), new Float32Array(0), new Float32Array(0)];

/** A scratch array of at least `length` floats (contents undefined). */
function scratch(slot: 0 | 1 | 2, length: number): Float32Array {
  if (pool[slot].length < length) pool[slot] = new Float32Array(length);
  return pool[slot].subarray(0, length);
}

/**
 * R_n = Σ_uv sqrt(Y_uv + ε) for each of the N tokens of z `[N·E]`
 * (token-major, as tfjs stores `[N, E]`); also returns the roots
 * sqrt(Y + ε) `[P][N]`, which the gradient divides by.
 */
function forward(p: Plan, z: Float32Array, N: number, eps: number) {
  const E = p.rows * p.cols, P = p.outRows * p.outCols;
  const q = scratch(0, E * N); // [E][N]
  for (let n = 0; n < N; n++) {
    const base = n * E;
    for (let i = 0; i < E; i++) {
      const v = z[base + i];
      q[i * N + n] = v * v;
    }
  }
  const roots = new Float32Array(P * N); // [P][N]
  correlate(p, N, q, roots, scratch(1, p.rows * p.outCols * N));
  const sums = new Float64Array(N);
  for (let w = 0; w < P; w++) {
    const o = w * N;
    for (let n = 0; n < N; n++) {
      const s = Math.sqrt(roots[o + n] + eps);
      roots[o + n] = s;
      sums[n] += s;
    }
  }
  return { r: Float32Array.from(sums), roots };
}

/**
 * dz[n, i] = dy_n · z[n, i] · Σ_windows∋i H / sqrt(Y + ε): the gradient of
 * {@linkcode forward} (∂sqrt(Y+ε)/∂z_i = H·z_i / sqrt(Y+ε)).
 */
function backward(p: Plan, z: Float32Array, roots: Float32Array, dy: Float32Array, N: number) {
  const E = p.rows * p.cols, P = p.outRows * p.outCols;
  const g = scratch(0, P * N); // [P][N]
  for (let w = 0; w < P; w++) {
    const o = w * N;
    for (let n = 0; n < N; n++) g[o + n] = dy[n] / roots[o + n];
  }
  const d = scratch(2, E * N); // [E][N]
  correlateAdjoint(p, N, g, d, scratch(1, p.rows * p.outCols * N));
  const dz = new Float32Array(N * E); // [N, E]
  for (let n = 0; n < N; n++) {
    const base = n * E;
    for (let i = 0; i < E; i++) dz[base + i] = z[base + i] * d[i * N + n];
  }
  return dz;
}

/**
 * R(z) per token (MoGE Algorithm 1) as one hand-written routine on the cpu
 * and wasm backends, with a hand-written gradient (`tf.customGrad`): the
 * same values as the op path of `groupSparsity` up to float32 rounding.
 * `groupSparsity` calls it on cpu and wasm unless `impl: "ops"`; called
 * directly, it checks shapes but does not scan z for NaN/Infinity.
 *
 * R_n = Σ_{u,v} sqrt(Σ_{a,b} H_ab · z[n, (u−top+a)·c + v−left+b]² + ε) over
 * the windows of the padding (see `paddedWindows`; "valid" is Algorithm 1);
 * dR_n/dz[n,i] = z[n,i] · Σ over the windows holding i of H / sqrt(Y_uv + ε).
 *
 * @param z routing scores, `[N, E]` float32, E = r·c
 * @param layout the r x c map (r, c >= h)
 * @param H the h x h filter, row-major (e.g. from `makeFilter`)
 * @param eps ε inside the root (>= 0)
 * @param padding how the map is padded (default "valid")
 * @returns the `[N]` tensor of R(z) per token
 *
 * @example
 * ```ts
 * import { cpuGroupSparsity } from "./group_sparsity_cpu.ts";
 * import { gaussianFilter } from "./filters.ts";
 * import { tf } from "../deps.ts";
 * await tf.setBackend("cpu");
 * const z = tf.softmax(tf.randomNormal([2, 16])) as tf.Tensor2D;
 * const r = cpuGroupSparsity(z, { rows: 4, cols: 4 }, gaussianFilter(3, 1.5), 1e-8);
 * console.log(r.shape); // [2]
 * ```
 */
export function cpuGroupSparsity(
  z: Tensor2D,
  layout: Layout,
  H: Filter,
  eps: number,
  padding: Padding = "valid",
): Tensor1D {
  if (!SYNC_BACKENDS.includes(tf.getBackend())) {
    throw new Error(
      `cpuGroupSparsity: needs the cpu or wasm backend, tfjs runs on "${tf.getBackend()}"`,
    );
  }
  const h = H.length;
  const [N, E] = z.shape;
  if (
    z.rank !== 2 || z.dtype !== "float32" || layout.rows * layout.cols !== E ||
    h < 1 || H.some((row) => row.length !== h) || h > Math.min(layout.rows, layout.cols) ||
    !(eps >= 0)
  ) {
    throw new RangeError(
      `cpuGroupSparsity: needs float32 z [N, r·c], an h x h filter with h <= r, c and eps >= 0;` +
        ` got z ${z.dtype} [${z.shape}], layout ${layout.rows} x ${layout.cols},` +
        ` filter ${h} x ${H[0]?.length}, eps ${eps}`,
    );
  }
  const plan = makePlan(layout, H, padding);
  const op = tf.customGrad((x) => {
    // The scores and sqrt(Y + ε) stay in this closure for the gradient (no second readback).
    const zv = (x as Tensor).dataSync() as Float32Array; // [N·E]
    const { r, roots } = forward(plan, zv, N, eps);
    return {
      value: tf.tensor1d(r), // [N]
      gradFunc: (dy: Tensor1D) =>
        tf.tensor2d(backward(plan, zv, roots, dy.dataSync() as Float32Array, N), [N, E]),
    };
  });
  return op(z) as Tensor1D;
}
