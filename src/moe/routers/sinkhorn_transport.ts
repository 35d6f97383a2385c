/**
 * Entropic optimal transport between N tokens (mass 1/N each) and E experts
 * (mass 1/E each) with cost −L, solved by Sinkhorn iterations in the log
 * domain (Megatron-LM `moe_utils.py:185-207` in multiplicative form; ε = 1
 * reproduces it): `f ← log(1/N) − logsumexp_e(L/ε + g)`,
 * `g ← log(1/E) − logsumexp_n(L/ε + f)`, `Π = exp(L/ε + f ⊕ g)`.
 *
 * Two forms: {@linkcode sinkhornPlan} on the CPU in float64 with a tolerance
 * and an iteration cap (selection only, no gradient: Megatron's router), and
 * {@linkcode sinkhornLogTensor}, a fixed number of unrolled iterations on the
 * tape (gradients flow through them: SSR's gates).
 *
 * @module
 */

import { tf } from "../../deps.ts";
import type { Tensor2D } from "../../types.ts";
import { checkFinite, checkInteger, checkNumber } from "../../validate.ts";

/** Options of {@linkcode sinkhornPlan}. */
export interface SinkhornOptions {
  /** Entropic regularization ε (logits are divided by it); default 1 (Megatron). */
  epsilon?: number;
  /**
   * Stop when every row sum is within `tol` of 1/N, relative (`N·|Σ_e Π_ne − 1/N| ≤ tol`);
   * default 1e-4. Column sums are exact after each iteration. (Megatron stops
   * on the mean change of the column scaling, also 1e-4; this criterion bounds
   * the marginals directly.) 0 runs exactly `maxIters` iterations.
   */
  tol?: number;
  /** Iteration cap (default 50; a deliberate deviation from Megatron, which has none). */
  maxIters?: number;
}

/** The transport plan and how the iterations ended. */
export interface SinkhornResult {
  /** Π `[N * E]` row-major: columns sum to 1/E, rows to 1/N within `tol`. */
  pi: Float64Array;
  /** Iterations run. */
  iterations: number;
  /** Whether the row sums reached `tol` before the cap. */
  converged: boolean;
  /** Largest relative row-sum error `N·|Σ_e Π_ne − 1/N|` at the end. */
  rowError: number;
}

/**
 * Balanced transport plan of logits `L` (`[N * E]`, row-major), log-domain Sinkhorn on the CPU.
 *
 * @example
 * ```ts
 * import { sinkhornPlan } from "./sinkhorn_transport.ts";
 * // SB-1 (docs/routers.md): the plan moves token 2 to expert 1, for a 2:2 load.
 * const { pi } = sinkhornPlan([2, 0, 1.5, 0, 1, 0, 0, 0.5], 4, 2);
 * pi[4] < pi[5]; // true
 * ```
 */
export function sinkhornPlan(
  L: ArrayLike<number>,
  N: number,
  E: number,
  options: SinkhornOptions = {},
): SinkhornResult {
  const { epsilon = 1, tol = 1e-4, maxIters = 50 } = options;
  checkInteger("N (tokens)", N, 1);
  checkInteger("E (experts)", E, 1);
  checkNumber("epsilon", epsilon, { min: 0, exclusiveMin: true });
  checkNumber("tol", tol, { min: 0 });
  checkInteger("maxIters", maxIters, 1);
  if (L.length !== N * E) {
    throw new RangeError(`Sinkhorn logits have ${L.length} values, expected N * E = ${N * E}`);
  }
  checkFinite("Sinkhorn logits", L);
  const s = Float64Array.from(L, (v) => v / epsilon); // [N, E]
  const f = new Float64Array(N);
  const g = new Float64Array(E);
  const logA = -Math.log(N);
  const logB = -Math.log(E);
  const col = new Float64Array(E); // column maxima of s + f
  const colSum = new Float64Array(E);
  const pi = new Float64Array(N * E); // holds exp(s + f − col) during the column pass, then Π
  let iterations = 0;
  let rowError = Infinity;
  while (iterations < maxIters) {
    iterations++;
    // Row update: f_n = log(1/N) − logsumexp_e(s_ne + g_e).
    for (let n = 0; n < N; n++) {
      let m = -Infinity;
      for (let e = 0; e < E; e++) m = Math.max(m, s[n * E + e] + g[e]);
      let sum = 0;
      for (let e = 0; e < E; e++) sum += Math.exp(s[n * E + e] + g[e] - m);
      f[n] = logA - (m + Math.log(sum));
    }
    // Column update: g_e = log(1/E) − logsumexp_n(s_ne + f_n), row-major passes.
    col.fill(-Infinity);
    colSum.fill(0);
    for (let n = 0; n < N; n++) {
      for (let e = 0; e < E; e++) col[e] = Math.max(col[e], s[n * E + e] + f[n]);
    }
    for (let n = 0; n < N; n++) {
      for (let e = 0; e < E; e++) {
        const t = Math.exp(s[n * E + e] + f[n] - col[e]);
        pi[n * E + e] = t;
        colSum[e] += t;
      }
    }
    for (let e = 0; e < E; e++) g[e] = logB - (col[e] + Math.log(colSum[e]));
    // Π = exp(s + f + g) = t · (1/E) / colSum: no further exp.
    rowError = 0;
    for (let n = 0; n < N; n++) {
      let sum = 0;
      for (let e = 0; e < E; e++) {
        const v = pi[n * E + e] / (E * colSum[e]);
        pi[n * E + e] = v;
        sum += v;
      }
      rowError = Math.max(rowError, Math.abs(sum * N - 1));
    }
    if (tol > 0 && rowError <= tol) break;
  }
  return { pi, iterations, converged: tol > 0 && rowError <= tol, rowError };
}

/**
 * log Π of logits `L` `[N, E]` after `iterations` unrolled log-domain
 * Sinkhorn iterations (row then column update), differentiable.
 *
 * @example
 * ```ts
 * import { tf } from "../../deps.ts";
 * import { sinkhornLogTensor } from "./sinkhorn_transport.ts";
 * const logPi = sinkhornLogTensor(tf.tensor2d([[2, 0], [1.5, 0], [1, 0], [0, 0.5]]), 1, 10);
 * tf.exp(logPi).sum(0).print(); // [0.5, 0.5]
 * ```
 */
export function sinkhornLogTensor(L: Tensor2D, epsilon: number, iterations: number): Tensor2D {
  checkNumber("epsilon", epsilon, { min: 0, exclusiveMin: true });
  checkInteger("iterations", iterations, 1);
  const [N, E] = L.shape;
  return tf.tidy(() => {
    const s = epsilon === 1 ? L : tf.div(L, epsilon); // [N, E]
    let f: tf.Tensor = tf.zeros([N, 1]);
    let g: tf.Tensor = tf.zeros([1, E]);
    for (let t = 0; t < iterations; t++) {
      f = tf.sub(-Math.log(N), tf.logSumExp(tf.add(s, g), 1, true)); // [N, 1]
      g = tf.sub(-Math.log(E), tf.logSumExp(tf.add(s, f), 0, true)); // [1, E]
    }
    return tf.add(tf.add(s, f), g) as Tensor2D; // [N, E]
  });
}
