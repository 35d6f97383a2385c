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

/**
 * Y = H ⋆ q for one token: Y_uv = Σ_ab H_ab · q[u−top+a, v−left+b] (entries
 * outside the map are 0), written to y `[outRows·outCols]`; t is scratch of
 * `rows·outCols`.
 */
function correlate(p: Plan, q: Float64Array, y: Float64Array, t: Float64Array): void {
  const { rows, cols, h, top, left, outRows, outCols } = p;
  if (p.sep) {
    const { col, row } = p.sep;
    // Horizontal pass: t[i, v] = Σ_b row_b · q[i, v−left+b].
    for (let i = 0; i < rows; i++) {
      const qi = i * cols, ti = i * outCols;
      for (let v = 0; v < outCols; v++) {
        const j0 = v - left;
        const bLo = j0 < 0 ? -j0 : 0, bHi = Math.min(h, cols - j0);
        let s = 0;
        for (let b = bLo; b < bHi; b++) s += row[b] * q[qi + j0 + b];
        t[ti + v] = s;
      }
    }
    // Vertical pass: y[u, v] = Σ_a col_a · t[u−top+a, v].
    for (let u = 0; u < outRows; u++) {
      const i0 = u - top;
      const aLo = i0 < 0 ? -i0 : 0, aHi = Math.min(h, rows - i0);
      const yu = u * outCols;
      for (let v = 0; v < outCols; v++) y[yu + v] = 0;
      for (let a = aLo; a < aHi; a++) {
        const w = col[a], ta = (i0 + a) * outCols;
        for (let v = 0; v < outCols; v++) y[yu + v] += w * t[ta + v];
      }
    }
    return;
  }
  const H = p.H;
  for (let u = 0; u < outRows; u++) {
    const i0 = u - top;
    const aLo = i0 < 0 ? -i0 : 0, aHi = Math.min(h, rows - i0);
    for (let v = 0; v < outCols; v++) {
      const j0 = v - left;
      const bLo = j0 < 0 ? -j0 : 0, bHi = Math.min(h, cols - j0);
      let s = 0;
      for (let a = aLo; a < aHi; a++) {
        const qa = (i0 + a) * cols + j0, ha = a * h;
        for (let b = bLo; b < bHi; b++) s += H[ha + b] * q[qa + b];
      }
      y[u * outCols + v] = s;
    }
  }
}

/**
 * The adjoint of {@linkcode correlate}: d[i, j] = Σ_uv g_uv · H[i−u+top, j−v+left]
 * over the windows holding (i, j), written to d `[rows·cols]`; t is scratch of
 * `rows·outCols`.
 */
function correlateAdjoint(p: Plan, g: Float64Array, d: Float64Array, t: Float64Array): void {
  const { rows, cols, h, top, left, outRows, outCols } = p;
  if (p.sep) {
    const { col, row } = p.sep;
    // Vertical: t[i, v] = Σ_u col[i−u+top] · g[u, v], over u with 0 <= i−u+top < h.
    t.fill(0, 0, rows * outCols);
    for (let u = 0; u < outRows; u++) {
      const i0 = u - top;
      const aLo = i0 < 0 ? -i0 : 0, aHi = Math.min(h, rows - i0);
      const gu = u * outCols;
      for (let a = aLo; a < aHi; a++) {
        const w = col[a], ti = (i0 + a) * outCols;
        for (let v = 0; v < outCols; v++) t[ti + v] += w * g[gu + v];
      }
    }
    // Horizontal: d[i, j] = Σ_v row[j−v+left] · t[i, v].
    d.fill(0, 0, rows * cols);
    for (let i = 0; i < rows; i++) {
      const ti = i * outCols, di = i * cols;
      for (let v = 0; v < outCols; v++) {
        const j0 = v - left;
        const bLo = j0 < 0 ? -j0 : 0, bHi = Math.min(h, cols - j0);
        const s = t[ti + v];
        for (let b = bLo; b < bHi; b++) d[di + j0 + b] += row[b] * s;
      }
    }
    return;
  }
  const H = p.H;
  d.fill(0, 0, rows * cols);
  for (let u = 0; u < outRows; u++) {
    const i0 = u - top;
    const aLo = i0 < 0 ? -i0 : 0, aHi = Math.min(h, rows - i0);
    for (let v = 0; v < outCols; v++) {
      const j0 = v - left;
      const bLo = j0 < 0 ? -j0 : 0, bHi = Math.min(h, cols - j0);
      const s = g[u * outCols + v];
      for (let a = aLo; a < aHi; a++) {
        const da = (i0 + a) * cols + j0, ha = a * h;
        for (let b = bLo; b < bHi; b++) d[da + b] += H[ha + b] * s;
      }
    }
  }
}

/**
 * R_n = Σ_uv sqrt(Y_uv + ε) for each of the n tokens of z `[n·E]`; also
 * returns 1/sqrt(Y + ε) `[n·P]`, the factor the gradient needs.
 */
function forward(p: Plan, z: Float32Array, n: number, eps: number) {
  const E = p.rows * p.cols, P = p.outRows * p.outCols;
  const q = new Float64Array(E), y = new Float64Array(P), t = new Float64Array(p.rows * p.outCols);
  const r = new Float32Array(n);
  const inv = new Float64Array(n * P);
  for (let k = 0; k < n; k++) {
    const base = k * E;
    for (let i = 0; i < E; i++) q[i] = z[base + i] * z[base + i];
    correlate(p, q, y, t);
    let sum = 0;
    const off = k * P;
    for (let w = 0; w < P; w++) {
      const s = Math.sqrt(y[w] + eps);
      sum += s;
      inv[off + w] = 1 / s;
    }
    r[k] = sum;
  }
  return { r, inv };
}

/**
 * dz[n, i] = dy_n · z[n, i] · Σ_windows∋i H / sqrt(Y + ε): the gradient of
 * {@linkcode forward} (∂sqrt(Y+ε)/∂z_i = H·z_i / sqrt(Y+ε)).
 */
function backward(p: Plan, z: Float32Array, inv: Float64Array, dy: Float32Array, n: number) {
  const E = p.rows * p.cols, P = p.outRows * p.outCols;
  const g = new Float64Array(P), d = new Float64Array(E), t = new Float64Array(p.rows * p.outCols);
  const dz = new Float32Array(n * E);
  for (let k = 0; k < n; k++) {
    const off = k * P, scale = dy[k];
    for (let w = 0; w < P; w++) g[w] = scale * inv[off + w];
    correlateAdjoint(p, g, d, t);
    const base = k * E;
    for (let i = 0; i < E; i++) dz[base + i] = z[base + i] * d[i];
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
  const op = tf.customGrad((x, save) => {
    (save as tf.GradSaveFunc)([x as Tensor]);
    const { r, inv } = forward(plan, (x as Tensor).dataSync() as Float32Array, N, eps);
    return {
      value: tf.tensor1d(r),
      gradFunc: (dy: Tensor1D, [saved]: Tensor[]) => {
        const zv = saved.dataSync() as Float32Array;
        return tf.tensor2d(backward(plan, zv, inv, dy.dataSync() as Float32Array, N), [N, E]);
      },
    };
  });
  return op(z) as Tensor1D;
}
