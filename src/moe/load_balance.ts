/**
 * The load-balancing loss of V-MoE (Riquelme et al. 2021) computed on the
 * host in float64, forward and backward, for the wasm and cpu backends,
 * where the same loss as tfjs ops costs about 80 small kernels per step:
 *
 *     L_aux = ½ (L_imp + L_load)   (L_imp alone without routing noise)
 *     L_imp  = cv²(Σ_n softmax(Wx_n))              (clean probabilities)
 *     L_load = cv²(Σ_n P_n),  P_ne = 1 − Φ((η_n,(k) − (Wx)_ne) / σ)
 *
 * with cv²(v) = var(v) / (mean(v)² + 1e-10) (population variance), η the
 * noisy logits Wx + noise and η_n,(k) its value at token n's k-th choice.
 * Differentiable with respect to the logits Wx.
 *
 * @module
 */

import { tf } from "../deps.ts";
import type { Tensor, Tensor2D } from "../types.ts";

const CV_EPS = 1e-10;

/**
 * erfc by the Chebyshev fit of Numerical Recipes (`erfcc`, fractional error
 * below 1.2e-7 everywhere): as exact as tfjs's float32 `erf` (Abramowitz &
 * Stegun 7.1.26, absolute error 1.5e-7), at one `exp` per value.
 *
 * @example
 * ```ts
 * import { erfc } from "./load_balance.ts";
 * erfc(0); // 1
 * ```
 */
export function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r = t * Math.exp(
    -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
                  t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
                                  t * (-0.82215223 + t * 0.17087277)))))))),
  );
  return x >= 0 ? r : 2 - r;
}

/** cv²(v) and its gradient d cv² / dv. */
function cv2(v: Float64Array): { value: number; grad: Float64Array } {
  const E = v.length;
  let mean = 0;
  for (let e = 0; e < E; e++) mean += v[e];
  mean /= E;
  let variance = 0;
  for (let e = 0; e < E; e++) variance += (v[e] - mean) ** 2;
  variance /= E;
  const den = mean * mean + CV_EPS;
  const grad = new Float64Array(E);
  // d var/dv_e = 2(v_e − mean)/E, d mean/dv_e = 1/E.
  for (let e = 0; e < E; e++) {
    grad[e] = (2 * (v[e] - mean) / E) / den - variance * (2 * mean / E) / (den * den);
  }
  return { value: variance / den, grad };
}

/**
 * L_aux of the logits `[N, E]` (see the module docs), computed on the host:
 * run it on wasm or cpu (it reads the tensors synchronously).
 *
 * @param logits router logits Wx (+ b), `[N, E]`
 * @param noise the routing noise added to them, `[N, E]`, or null (no load term)
 * @param kthExpert each token's k-th choice (the expert whose noisy logit is η_n,(k)), `[N]`
 * @param noiseStd σ of the noise
 * @example
 * ```ts
 * import { tf } from "../deps.ts";
 * import { useBackend } from "../backend.ts";
 * import { loadBalancingLoss } from "./load_balance.ts";
 * await useBackend("cpu");
 * const logits = tf.tensor2d([[2, 0], [0, 2]]);
 * const loss = loadBalancingLoss(logits, null, new Int32Array([0, 1]), 0.5); // 0: balanced
 * ```
 */
export function loadBalancingLoss(
  logits: Tensor2D,
  noise: Tensor2D | null,
  kthExpert: Int32Array,
  noiseStd: number,
): Tensor {
  const [N, E] = logits.shape;
  if (kthExpert.length !== N) {
    throw new RangeError(
      `loadBalancingLoss: kthExpert has ${kthExpert.length} entries, expected N = ${N}`,
    );
  }
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const L = (args[0] as Tensor).dataSync() as Float32Array;
    const z = new Float64Array(N * E); // softmax(L)
    for (let n = 0; n < N; n++) {
      let max = -Infinity;
      for (let e = 0; e < E; e++) max = Math.max(max, L[n * E + e]);
      let s = 0;
      for (let e = 0; e < E; e++) s += z[n * E + e] = Math.exp(L[n * E + e] - max);
      for (let e = 0; e < E; e++) z[n * E + e] /= s;
    }
    const importance = new Float64Array(E);
    for (let n = 0; n < N; n++) for (let e = 0; e < E; e++) importance[e] += z[n * E + e];
    const imp = cv2(importance);
    let value = imp.value;
    let load: { value: number; grad: Float64Array } | null = null;
    let phi: Float64Array | null = null; // density at each (n, e)
    if (noise) {
      const eta = noise.dataSync() as Float32Array;
      const P = new Float64Array(E);
      phi = new Float64Array(N * E);
      for (let n = 0; n < N; n++) {
        const j = n * E + kthExpert[n];
        const kth = Math.fround(L[j] + eta[j]); // the noisy logit as float32, as the plan saw it
        for (let e = 0; e < E; e++) {
          const a = (kth - L[n * E + e]) / noiseStd;
          // Beyond 8 σ, 1 − Φ(a) < 1e-15 and φ(a) < 1e-14: zero in float32
          // (as in the tfjs ops), and the common case when σ = 1/E is small.
          if (a > 8) continue;
          P[e] += 0.5 * erfc(a / Math.SQRT2); // 1 − Φ(a)
          phi[n * E + e] = Math.exp(-a * a / 2) / Math.sqrt(2 * Math.PI);
        }
      }
      load = cv2(P);
      value = 0.5 * (imp.value + load.value);
    }
    const gradFunc = (dy: Tensor) => {
      const scale = (dy.dataSync() as Float32Array)[0];
      const half = noise ? 0.5 : 1;
      const g = new Float32Array(N * E);
      for (let n = 0; n < N; n++) {
        // Importance through the softmax: z ⊙ (h − <h, z>).
        let dot = 0;
        for (let e = 0; e < E; e++) dot += imp.grad[e] * z[n * E + e];
        for (let e = 0; e < E; e++) {
          g[n * E + e] = half * z[n * E + e] * (imp.grad[e] - dot);
        }
        if (load && phi) {
          // P_ne = 1 − Φ(a_ne), a_ne = (η_n,(k) − L_ne)/σ; dP/dL_ne = φ/σ,
          // dP_ne/dL_n,(k) = −φ_ne/σ (through η_n,(k)).
          let toKth = 0;
          for (let e = 0; e < E; e++) {
            const d = 0.5 * load.grad[e] * phi[n * E + e] / noiseStd;
            g[n * E + e] += d;
            toKth -= d;
          }
          g[n * E + kthExpert[n]] += toKth;
        }
        for (let e = 0; e < E; e++) g[n * E + e] *= scale;
      }
      return [tf.tensor2d(g, [N, E])];
    };
    return { value: tf.scalar(value), gradFunc };
  });
  return op(logits);
}
