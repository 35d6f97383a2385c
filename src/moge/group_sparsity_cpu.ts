/**
 * The MoGE regularizer (Algorithm 1) and its gradient as one hand-written
 * Float32Array routine each, for the cpu and wasm backends: R(z) is computed
 * in TypeScript on float32 work arrays (per-token sums in float64), and its
 * gradient the same way; the registered kernels of `group_sparsity_kernel.ts`
 * (what `groupSparsity` runs) call them on z where the backend keeps it. This replaces the
 * ~15 small tfjs kernels (square, conv2d, add, sqrt, sum and their
 * gradients) of the op path, whose per-op overhead, not their arithmetic,
 * sets its speed.
 *
 * A separable filter (H = col ⊗ row, as the Gaussian and the average are) is
 * applied as two 1-D passes (2h instead of h² multiply-adds per window); any
 * other h x h filter is applied directly. Separability is tested on H, not
 * assumed. Each pass is a few y += w·x loops over all tokens at once, run by
 * a WebAssembly SIMD function (`axpy_simd.ts`) where the runtime has one.
 * With "valid" padding (Algorithm 1) and SIMD, each token's grid is its map
 * itself, so squaring, masking, the per-token sums and the gradient's
 * products are SIMD passes too; for a separable 3 x 3 filter (the paper's
 * Gaussian) each 1-D pass is one 3-tap SIMD loop (squaring fused into the
 * first), the roots, inverses and mask one more, and the gradient recomputes
 * 1/sqrt(Y + ε) from z rather than keeping a copy per call. Where E is a
 * multiple of 4, fewer loops do the same float32 arithmetic: the forward's
 * column pass, roots, mask and per-token sums are one loop over all tokens,
 * the gradient's column pass, 1/sqrt, mask and dy_n another, and its last
 * pass takes the product with z.
 *
 * `groupSparsityValues` and `groupSparsityGradValues` expose the two passes
 * on plain arrays for the registered kernels of `group_sparsity_kernel.ts`
 * (what `groupSparsity` runs); `cpuGroupSparsity` runs the same passes in
 * a `tf.customGrad`, reading z back (the earlier route, kept for comparison).
 *
 * @module
 */

import { tf } from "../deps.ts";
import type { Filter } from "./filters.ts";
import type { Layout } from "./layout.ts";
import { checkFusedArgs } from "./fused_args.ts";
import { type PaddedWindows, paddedWindows, type Padding } from "./padding.ts";
import type { Tensor, Tensor1D, Tensor2D } from "../types.ts";
import { simdAxpy } from "./axpy_simd.ts";

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
  /** 1 where a grid position is a valid window, else 0 (one token's grid, "valid" padding). */
  mask: Float32Array;
}

/** The plan of the last call (most callers use one map, filter and padding throughout). */
let lastPlan: { key: string; plan: Plan } | null = null;

function makePlan(layout: Layout, H: Filter, padding: Padding): Plan {
  const key = `${layout.rows},${layout.cols},${padding},${H.map((r) => r.join(",")).join(";")}`;
  if (lastPlan?.key === key) return lastPlan.plan;
  const h = H.length;
  const sep = separateFilter(H);
  const win = paddedWindows(layout.rows, layout.cols, h, padding);
  const mask = new Float32Array(layout.rows * layout.cols); // [r·c]
  for (let u = 0; u < win.outRows && u < layout.rows; u++) {
    for (let v = 0; v < win.outCols && v < layout.cols; v++) mask[u * layout.cols + v] = 1;
  }
  const plan = {
    rows: layout.rows,
    cols: layout.cols,
    h,
    ...win,
    H: Float64Array.from(H.flat()),
    sep: sep && { col: Float64Array.from(sep.col), row: Float64Array.from(sep.row) },
    mask,
  };
  lastPlan = { key, plan };
  return plan;
}

/*
 * Layout of the work arrays: each token's map is stored zero-padded, as an
 * (outRows+h−1) x W grid with W = outCols+h−1 (the padding's zeros included),
 * the N grids one after another. A window is then a plain valid correlation
 * on this grid, and a shift by one column or row is a shift of 1 or W in the
 * flat index, so each filter tap is one multiply-add loop over all N tokens
 * at once (hundreds of thousands of iterations, instead of h-long loops).
 * Positions in the last h−1 columns or rows of a grid (and a slack at the
 * end of the arrays) hold values no valid window uses; they are computed and
 * ignored, which is cheaper than skipping them.
 */

/** Sizes of the padded grids of N tokens. */
function grid(p: Plan, N: number) {
  const W = p.outCols + p.h - 1;
  const M = (p.outRows + p.h - 1) * W; // one token's grid
  // The slack: what the shifted reads and writes reach past L, plus 4 for axpy's groups of 4.
  return { W, M, L: N * M, slack: (p.h - 1) * (W + 1) + 4 };
}

/** Whether the passes use the WebAssembly SIMD axpy (where available); see `useSimd`. */
let simdWanted = true;

/**
 * Turns the WebAssembly SIMD inner loop of the cpu/wasm R(z) routine on or
 * off (on by default where the runtime supports it; off, the same loops run
 * in TypeScript) and says whether it is now in use. For tests and
 * benchmarks: both give the same R(z) up to float32 rounding.
 *
 * @example
 * ```ts
 * import { useSimd } from "./group_sparsity_cpu.ts";
 * const active = useSimd(true); // false where WebAssembly SIMD is missing
 * ```
 */
export function useSimd(enabled: boolean): boolean {
  simdWanted = enabled;
  return enabled && simdAxpy() !== null;
}

/** Scratch arrays reused across calls (grown on demand, never shrunk), by slot. */
const pool: Float32Array[] = [0, 1, 2, 3].map(() => new Float32Array(0));

/** Four scratch arrays. */
type Scratch = [Float32Array, Float32Array, Float32Array, Float32Array];

/**
 * Four scratch arrays of `length` floats each: views on the SIMD module's
 * memory when it is in use (grown on demand), else pooled arrays. Array i is
 * zero from index `zeroFrom[i]` on (default 0: all of it); what lies before
 * is left from earlier calls, for arrays the caller overwrites anyway.
 * `inSimd` (default: whether SIMD is wanted) asks for the module's memory.
 */
function scratch(
  length: number,
  zeroFrom: readonly number[] = [0, 0, 0, 0],
  inSimd = simdWanted,
): Scratch {
  const simd = inSimd ? simdAxpy() : null;
  let views: Float32Array[];
  if (simd) {
    const base = tiled?.bytes ?? 0; // the tiled mask lies before
    const bytes = base + 4 * length * 4;
    const have = simd.memory.buffer.byteLength;
    if (have < bytes) simd.memory.grow(Math.ceil((bytes - have) / 65536));
    const buffer = simd.memory.buffer;
    views = [0, 1, 2, 3].map((i) => new Float32Array(buffer, base + i * length * 4, length));
  } else {
    views = [0, 1, 2, 3].map((i) => {
      if (pool[i].length < length) pool[i] = new Float32Array(length);
      return pool[i].subarray(0, length);
    });
  }
  views.forEach((a, i) => a.fill(0, zeroFrom[i]));
  return views as Scratch;
}

/**
 * y[k] = w · y[k] · x[k] for k < n: with the SIMD module when both arrays
 * live in its memory (it may touch up to 3 floats past n, inside the slack),
 * else in TypeScript (a gradient whose forward ran before `useSimd(false)`).
 */
function mulSimd(y: Float32Array, x: Float32Array, w: number, n: number) {
  const simd = simdAxpy();
  if (simd && y.buffer === simd.memory.buffer && x.buffer === simd.memory.buffer) {
    simd.mul(y.byteOffset, x.byteOffset, w, n);
    return;
  }
  for (let k = 0; k < n; k++) y[k] = w * y[k] * x[k];
}

/** Whether the "valid" SIMD path applies: Algorithm 1's padding, where the grid is the map. */
function flatPath(p: Plan): boolean {
  return p.top === 0 && p.left === 0 && p.outRows + p.h - 1 === p.rows &&
    p.outCols + p.h - 1 === p.cols && simdWanted && simdAxpy() !== null;
}

/**
 * y[yo + k] += w · x[xo + k] for 0 <= k < n: with the SIMD module when both
 * arrays live in its memory (it may touch up to 3 floats past n, inside the
 * slack), else in TypeScript.
 */
function axpy(y: Float32Array, yo: number, x: Float32Array, xo: number, w: number, n: number) {
  const simd = simdWanted ? simdAxpy() : null;
  if (simd && y.buffer === simd.memory.buffer && x.buffer === simd.memory.buffer) {
    simd.axpy(y.byteOffset + 4 * yo, x.byteOffset + 4 * xo, w, n);
    return;
  }
  for (let k = 0; k < n; k++) y[yo + k] += w * x[xo + k];
}

/**
 * y = H ⋆ q on the padded grids: y[k] = Σ_ab H_ab · q[k + a·W + b] for
 * 0 <= k < L (separable: t[k] = Σ_b row_b · q[k+b], then y[k] = Σ_a col_a ·
 * t[k + a·W]). q, t and y have L + slack entries; y and t start zeroed.
 */
function correlate(
  p: Plan,
  W: number,
  L: number,
  q: Float32Array,
  y: Float32Array,
  t: Float32Array,
) {
  const h = p.h;
  if (p.sep) {
    const { col, row } = p.sep;
    for (let b = 0; b < h; b++) axpy(t, 0, q, b, row[b], L);
    for (let a = 0; a < h; a++) axpy(y, 0, t, a * W, col[a], L);
    return;
  }
  for (let a = 0; a < h; a++) {
    for (let b = 0; b < h; b++) axpy(y, 0, q, a * W + b, p.H[a * h + b], L);
  }
}

/**
 * The adjoint of {@linkcode correlate}: d[k + a·W + b] += H_ab · g[k]. g must
 * be zero wherever y is not a valid window; d and t start zeroed.
 */
function correlateAdjoint(
  p: Plan,
  W: number,
  L: number,
  g: Float32Array,
  d: Float32Array,
  t: Float32Array,
) {
  const h = p.h;
  if (p.sep) {
    const { col, row } = p.sep;
    for (let a = 0; a < h; a++) axpy(t, a * W, g, 0, col[a], L);
    for (let b = 0; b < h; b++) axpy(d, b, t, 0, row[b], L);
    return;
  }
  for (let a = 0; a < h; a++) {
    for (let b = 0; b < h; b++) axpy(d, a * W + b, g, 0, p.H[a * h + b], L);
  }
}

/**
 * y[k] = sqrt(y[k] + ε) and inv[k] = 1 / y[k] for k < n: with the SIMD module
 * when both arrays live in its memory, else in TypeScript.
 */
function sqrtInv(y: Float32Array, inv: Float32Array, eps: number, n: number) {
  const simd = simdWanted ? simdAxpy() : null;
  if (simd && y.buffer === simd.memory.buffer && inv.buffer === simd.memory.buffer) {
    simd.sqrtinv(y.byteOffset, inv.byteOffset, eps, n);
    return;
  }
  for (let k = 0; k < n; k++) {
    const r = Math.sqrt(y[k] + eps);
    y[k] = r;
    inv[k] = 1 / r;
  }
}

/**
 * R_n = Σ_uv sqrt(Y_uv + ε) for each of the N tokens of z `[N·E]`
 * (row-major `[N, E]`); also returns 1/sqrt(Y + ε) `[N·P]`, the factor the
 * gradient needs.
 */
function forward(p: Plan, z: Float32Array, N: number, eps: number) {
  const { rows, cols, top, left, outRows, outCols } = p;
  const E = rows * cols, P = outRows * outCols;
  const { W, M, L, slack } = grid(p, N);
  if (flatPath(p)) {
    tiledMask(p, N); // before the scratch, which it may move
    // q is overwritten up to L (its slack must be zero); forwardFlat zeroes y and t as needed.
    const [q, y, t] = scratch(L + slack, [L, L, L, L]);
    const flat = forwardFlat(p, z, N, eps, q, y, t);
    // Every score lies in some valid window, so all R_n are finite exactly when
    // z (and z²) is. Otherwise a token's non-finite values may have reached its
    // neighbours' masked positions (0·NaN = NaN): redo it on padded grids,
    // which keep the tokens apart.
    if (flat.r.every(Number.isFinite)) return flat;
  }
  const [q, y, t] = scratch(L + slack); // q: squared scores on the padded grids
  for (let n = 0; n < N; n++) {
    for (let i = 0; i < rows; i++) {
      const src = n * E + i * cols, dst = n * M + (i + top) * W + left;
      for (let j = 0; j < cols; j++) q[dst + j] = z[src + j] * z[src + j];
    }
  }
  correlate(p, W, L, q, y, t);
  sqrtInv(y, q, eps, L); // y: the roots, q: their inverses (at every grid position)
  const inv = new Float32Array(N * P); // [N, P]
  const r = new Float32Array(N); // [N]
  for (let n = 0; n < N; n++) {
    let sum = 0;
    for (let u = 0; u < outRows; u++) {
      const src = n * M + u * W, dst = n * P + u * outCols;
      for (let v = 0; v < outCols; v++) {
        sum += y[src + v];
        inv[dst + v] = q[src + v];
      }
    }
    r[n] = sum;
  }
  return { r, inv, flat: false };
}

/**
 * {@linkcode forward} for "valid" padding with the SIMD module: there each
 * token's grid is its r x c map itself (M = E), so z is copied in whole and
 * every step is a SIMD pass over all N·E entries; only the per-token sums
 * loop in TypeScript. `inv` is returned on the whole grid `[N·E]`, zero
 * outside the valid windows.
 */
function forwardFlat(
  p: Plan,
  z: Float32Array,
  N: number,
  eps: number,
  q: Float32Array,
  y: Float32Array,
  t: Float32Array,
) {
  const E = p.rows * p.cols, L = N * E;
  const simd = simdAxpy()!;
  q.set(z);
  const tiled = tiledMask(p, N);
  if (p.h === 3 && p.sep) {
    // Squaring and both 1-D passes as two 3-tap SIMD loops, in the order of
    // `correlate`'s accumulation (the same float32 values); t's slack is zero
    // for the column pass.
    const { col, row } = p.sep;
    t.fill(0, L);
    simd.tap3sq(t.byteOffset, q.byteOffset, 1, L, row[0], row[1], row[2]); // t = row ⋆ (z ⊙ z)
    if (E % 4 === 0) {
      // The column pass, roots, mask and per-token sums in one loop (the same
      // float32 values as the steps below), R_n into y's first N floats.
      simd.rootsum(t.byteOffset, tiled.byteOffset, y.byteOffset, N, E, p.cols, eps, ...col3(col));
      return { r: y.slice(0, N), inv: null, flat: true };
    }
    simd.tap3(y.byteOffset, t.byteOffset, p.cols, L, col[0], col[1], col[2]); // y = col ⋆ t
    // y: the roots, q: their inverses, both zero outside the windows.
    simd.rootmask(y.byteOffset, q.byteOffset, tiled.byteOffset, L, eps);
  } else {
    mulSimd(q, q, 1, L); // q = z ⊙ z
    y.fill(0);
    t.fill(0);
    correlate(p, p.cols, L, q, y, t); // y = H ⋆ q
    sqrtInv(y, q, eps, L); // y: the roots, q: their inverses
    mulSimd(y, tiled, 1, L); // zero outside the windows
    mulSimd(q, tiled, 1, L);
  }
  const r = new Float32Array(N); // [N]
  const E4 = E & ~3;
  for (let n = 0, k = 0; n < N; n++, k += E) {
    let sum = simd.sum(y.byteOffset + 4 * k, E4);
    for (let i = k + E4; i < k + E; i++) sum += y[i];
    r[n] = sum;
  }
  // The 3-tap path keeps no 1/sqrt(Y + ε): `backwardFlat` recomputes it from z
  // (three SIMD passes, cheaper than copying it out of the scratch).
  return { r, inv: p.h === 3 && p.sep ? null : q.slice(0, L), flat: true };
}

/**
 * The mask of the last flat call repeated for its N tokens `[N·E]`, kept at
 * the start of the SIMD module's memory (before the scratch arrays) across calls.
 */
let tiled: { plan: Plan; N: number; bytes: number } | null = null;

/** The three taps of a 3-tap factor, as the SIMD calls take them. */
function col3(w: Float64Array): [number, number, number] {
  return [w[0], w[1], w[2]];
}

/** The tiled mask of `p` for N tokens, a view on the SIMD memory (filled when p or N changes). */
function tiledMask(p: Plan, N: number): Float32Array {
  const simd = simdAxpy()!;
  const L = N * p.rows * p.cols;
  if (tiled?.plan !== p || tiled.N !== N) {
    // Moves the scratch arrays: only between calls that read nothing left in them.
    tiled = { plan: p, N, bytes: 4 * (L + 4) };
    const have = simd.memory.buffer.byteLength;
    if (have < tiled.bytes) simd.memory.grow(Math.ceil((tiled.bytes - have) / 65536));
    const mask = new Float32Array(simd.memory.buffer, 0, L + 4);
    for (let n = 0; n < N; n++) mask.set(p.mask, n * p.rows * p.cols);
    mask.fill(0, L);
  }
  return new Float32Array(simd.memory.buffer, 0, L + 4);
}

/** {@linkcode backward} for "valid" padding with the SIMD module (see `forwardFlat`). */
function backwardFlat(
  p: Plan,
  z: Float32Array,
  inv: Float32Array | null,
  eps: number,
  dy: Float32Array,
  N: number,
  view: boolean,
) {
  const E = p.rows * p.cols, L = N * E;
  const { slack } = grid(p, N);
  if (!inv) return backwardTap3(p, z, eps, dy, N, view);
  const simd = simdWanted ? simdAxpy() : null;
  if (!simd) {
    // SIMD turned off since the forward pass: the same steps in TypeScript.
    const [g, d, t, s] = scratch(L + slack, [L, 0, 0, L]);
    for (let n = 0; n < N; n++) s.fill(dy[n], n * E, (n + 1) * E);
    g.set(inv);
    mulSimd(g, s, 1, L); // g[n, ·] = dy_n / sqrt(Y + ε), zero outside the windows
    correlateAdjoint(p, p.cols, L, g, d, t); // d = Hᵀ ⋆ g
    for (let k = 0; k < L; k++) d[k] *= z[k]; // dz = z ⊙ d
    return d.slice(0, L);
  }
  const mask = tiledMask(p, N); // before the scratch, which it may move
  // g and t get a zero head of `head` floats: the adjoint's 3-tap passes read
  // up to (h−1)(W+1) floats before their start.
  const head = (2 * p.cols + 5) & ~3, n = head + L + slack;
  const [G, d, T, s] = scratch(n, [n, n, n, n]);
  const g = G.subarray(head), t = T.subarray(head);
  G.fill(0, 0, head);
  g.fill(0, L);
  g.set(inv);
  if (E % 4 === 0) {
    // g[n, ·] = dy_n / sqrt(Y + ε) ⊙ mask (inv is zero outside the windows already).
    for (let n = 0; n < N; n++) {
      simd.mul(g.byteOffset + 4 * n * E, mask.byteOffset + 4 * n * E, dy[n], E);
    }
  } else {
    for (let n = 0; n < N; n++) s.fill(dy[n], n * E, (n + 1) * E);
    mulSimd(g, s, 1, L); // g[n, ·] = dy_n / sqrt(Y + ε), zero outside the windows
  }
  d.fill(0);
  T.fill(0);
  correlateAdjoint(p, p.cols, L, g, d, t); // d = Hᵀ ⋆ g
  s.set(z);
  mulSimd(d, s, 1, L); // dz = z ⊙ d
  return view ? d.subarray(0, L) : d.slice(0, L);
}

/**
 * {@linkcode backwardFlat} for a separable 3 x 3 filter: 1/sqrt(Y + ε) is
 * recomputed from z as in `forwardFlat` (the same float32 values), then
 * d = Hᵀ ⋆ g runs as two 3-tap SIMD loops reading backwards, in the order of
 * `correlateAdjoint`'s accumulation. Runs with SIMD even when it was turned
 * off after the forward pass (which ran with it).
 */
function backwardTap3(
  p: Plan,
  z: Float32Array,
  eps: number,
  dy: Float32Array,
  N: number,
  view: boolean,
) {
  const E = p.rows * p.cols, L = N * E, W = p.cols;
  const { slack } = grid(p, N);
  const simd = simdAxpy()!;
  const { col, row } = p.sep!;
  const mask = tiledMask(p, N); // before the scratch, which it may move
  // g and t get a zero head of `head` floats: the backward passes read up to
  // 2W + 2 floats before their start.
  const head = (2 * W + 5) & ~3, n = head + L + slack;
  const [G, d, T, s] = scratch(n, [n, n, n, n], true);
  const g = G.subarray(head), t = T.subarray(head);
  s.set(z);
  s.fill(0, L);
  t.fill(0, L);
  simd.tap3sq(t.byteOffset, s.byteOffset, 1, L, row[0], row[1], row[2]); // t = row ⋆ (z ⊙ z)
  if (E % 4 === 0) {
    // The same steps as below in fewer loops (the same float32 values): the
    // column pass, 1/sqrt(Y + ε), mask and dy_n in one; the last row pass and ⊙ z in one.
    d.set(dy); // dy in the module's memory, for the time of `rootgrad`
    simd.rootgrad(
      t.byteOffset,
      mask.byteOffset,
      g.byteOffset,
      d.byteOffset,
      N,
      E,
      W,
      eps,
      ...col3(col),
    );
    G.fill(0, 0, head);
    g.fill(0, L);
    T.fill(0, 0, head);
    simd.tap3(t.byteOffset, g.byteOffset, -W, L, col[0], col[1], col[2]); // t[k] = Σ_a col_a g[k − aW]
    simd.tap3mul(d.byteOffset, t.byteOffset, -1, L, ...col3(row), s.byteOffset); // dz = z ⊙ Σ_b row_b t[k − b]
    return view ? d.subarray(0, L) : d.slice(0, L);
  }
  simd.tap3(d.byteOffset, t.byteOffset, W, L, col[0], col[1], col[2]); // d = Y = col ⋆ t
  simd.rootmask(d.byteOffset, g.byteOffset, mask.byteOffset, L, eps); // g = 1/sqrt(Y + ε) ⊙ mask
  G.fill(0, 0, head);
  g.fill(0, L);
  if (E % 4 === 0) {
    // g[n, ·] = dy_n · g[n, ·] ⊙ mask (mask is 0 or 1: g unchanged but for dy_n).
    for (let n = 0; n < N; n++) {
      simd.mul(g.byteOffset + 4 * n * E, mask.byteOffset + 4 * n * E, dy[n], E);
    }
  } else {
    for (let n = 0; n < N; n++) d.fill(dy[n], n * E, (n + 1) * E);
    simd.mul(g.byteOffset, d.byteOffset, 1, L); // g[n, ·] = dy_n / sqrt(Y + ε)
  }
  T.fill(0, 0, head);
  simd.tap3(t.byteOffset, g.byteOffset, -W, L, col[0], col[1], col[2]); // t[k] = Σ_a col_a g[k − aW]
  simd.tap3(d.byteOffset, t.byteOffset, -1, L, row[0], row[1], row[2]); // d[k] = Σ_b row_b t[k − b]
  simd.mul(d.byteOffset, s.byteOffset, 1, L); // dz = z ⊙ d
  return view ? d.subarray(0, L) : d.slice(0, L);
}

/**
 * dz[n, i] = dy_n · z[n, i] · Σ_windows∋i H / sqrt(Y + ε): the gradient of
 * {@linkcode forward} (∂sqrt(Y+ε)/∂z_i = H·z_i / sqrt(Y+ε)).
 */
function backward(
  p: Plan,
  z: Float32Array,
  { inv, flat }: { inv: Float32Array | null; flat: boolean },
  eps: number,
  dy: Float32Array,
  N: number,
  view: boolean,
) {
  const { rows, cols, top, left, outRows, outCols } = p;
  const E = rows * cols, P = outRows * outCols;
  const { W, M, L, slack } = grid(p, N);
  // g and s are overwritten up to L (their slack must be zero), d and t accumulate.
  if (flat) return backwardFlat(p, z, inv, eps, dy, N, view);
  if (!inv) throw new Error("cpuGroupSparsity: internal: no 1/sqrt(Y + ε) off the flat path");
  const [g, d, t] = scratch(L + slack); // g: zero outside the valid windows
  for (let n = 0; n < N; n++) {
    const scale = dy[n];
    for (let u = 0; u < outRows; u++) {
      const dst = n * M + u * W, src = n * P + u * outCols;
      for (let v = 0; v < outCols; v++) g[dst + v] = scale * inv[src + v];
    }
  }
  correlateAdjoint(p, W, L, g, d, t);
  const dz = new Float32Array(N * E); // [N, E]
  for (let n = 0; n < N; n++) {
    for (let i = 0; i < rows; i++) {
      const o = n * E + i * cols, src = n * M + (i + top) * W + left;
      for (let j = 0; j < cols; j++) dz[o + j] = z[o + j] * d[src + j];
    }
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
  const [N, E] = z.shape;
  checkFusedArgs("cpuGroupSparsity", z, layout, H, eps);
  const plan = makePlan(layout, H, padding);
  const op = tf.customGrad((x) => {
    // The scores and 1/sqrt(Y + ε) stay in this closure for the gradient (no second readback).
    const zv = (x as Tensor).dataSync() as Float32Array; // [N·E]
    const fwd = forward(plan, zv, N, eps);
    return {
      value: tf.tensor1d(fwd.r), // [N]
      gradFunc: (dy: Tensor1D) =>
        // tfjs-wasm copies a new tensor's values into its own heap at once, so a
        // view on the scratch will do there; the cpu backend keeps the array itself.
        tf.tensor2d(
          backward(
            plan,
            zv,
            fwd,
            eps,
            dy.dataSync() as Float32Array,
            N,
            tf.getBackend() === "wasm",
          ),
          [N, E],
        ),
    };
  });
  return op(z) as Tensor1D;
}

/**
 * R(z) per token `[N]` of the scores z `[N·E]` (row-major `[N, E]`, any
 * Float32Array, e.g. a view on tfjs-wasm's heap), computed as
 * {@linkcode cpuGroupSparsity}'s forward pass: the arithmetic of the
 * registered kernel (`group_sparsity_kernel.ts`), without tensors.
 *
 * @example
 * ```ts
 * import { groupSparsityValues } from "./group_sparsity_cpu.ts";
 * import { gaussianFilter } from "./filters.ts";
 * const z = new Float32Array(2 * 16).fill(0.25); // [N = 2, E = 16]
 * groupSparsityValues(z, 2, { rows: 4, cols: 4 }, gaussianFilter(3, 1.5), 1e-8, "valid"); // [N]
 * ```
 */
export function groupSparsityValues(
  z: Float32Array,
  N: number,
  layout: Layout,
  H: Filter,
  eps: number,
  padding: Padding,
): Float32Array {
  return forward(makePlan(layout, H, padding), z, N, eps).r;
}

/**
 * dz = dy_n · ∂R_n/∂z `[N·E]` for the scores z `[N·E]` and the upstream
 * gradient dy `[N]`, as {@linkcode cpuGroupSparsity}'s backward pass, given
 * the forward pass's result r `[N]` instead of what it kept: for "valid"
 * padding and a separable 3 x 3 filter with every r finite, 1/sqrt(Y + ε) is
 * recomputed from z (as the fused backward always does there); elsewhere the
 * forward pass is rerun. The result may be a view on scratch memory that the
 * next call overwrites (copy it out at once).
 *
 * @example
 * ```ts
 * import { groupSparsityGradValues, groupSparsityValues } from "./group_sparsity_cpu.ts";
 * import { gaussianFilter } from "./filters.ts";
 * const H = gaussianFilter(3, 1.5), layout = { rows: 4, cols: 4 };
 * const z = new Float32Array(2 * 16).fill(0.25); // [N = 2, E = 16]
 * const r = groupSparsityValues(z, 2, layout, H, 1e-8, "valid"); // [N]
 * const dy = new Float32Array([1, 1]); // [N]
 * const dz = groupSparsityGradValues(z, dy, r, 2, layout, H, 1e-8, "valid"); // [N·E]
 * ```
 */
export function groupSparsityGradValues(
  z: Float32Array,
  dy: Float32Array,
  r: Float32Array,
  N: number,
  layout: Layout,
  H: Filter,
  eps: number,
  padding: Padding,
): Float32Array {
  const p = makePlan(layout, H, padding);
  // The forward pass's own test: with a non-finite R_n, a token's NaN may have
  // reached its neighbours (0·NaN) on the flat grid, so it used the padded grids.
  if (flatPath(p) && p.h === 3 && p.sep && r.every(Number.isFinite)) {
    return backwardTap3(p, z, eps, dy, N, true);
  }
  return backward(p, z, forward(p, z, N, eps), eps, dy, N, true);
}
