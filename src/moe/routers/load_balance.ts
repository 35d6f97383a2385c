/**
 * Load-balancing losses of the token-choice routers.
 *
 * @module
 */

import { tf } from "../../deps.ts";
import type { Tensor, Tensor2D } from "../../types.ts";

/** cv(v)² = Var(v) / mean(v)² (with a 1e-10 guard). */
function cv2(v: Tensor): Tensor {
  const { mean, variance } = tf.moments(v);
  return tf.div(variance, tf.add(tf.square(mean), 1e-10));
}

/**
 * The load-balancing loss of V-MoE (Riquelme et al. 2021), as MoGE's layer
 * uses it: `L_aux = ½ (L_imp + L_load)`, `L_imp = cv(Σ_x probs)²`,
 * `L_load = cv(Σ_x P_i(x))²` with `P_i(x) = 1 − Φ((η_(k)(x) − (W x)_i) / σ_n)`
 * the chance that expert i stays in the top k under fresh noise (η the noisy
 * logits). Without noise only the importance term is defined and used.
 *
 * @param logits `[N, E]` clean logits
 * @param probs `[N, E]` the importance probabilities
 * @param noisy `[N, E]` noisy logits, or null without noise
 * @param chosen `[N * k, E]` one-hot of the choices
 *
 * @example
 * ```ts
 * import { tf } from "../../deps.ts";
 * import { vmoeLoadBalancingLoss } from "./load_balance.ts";
 * const l = tf.tensor2d([[1, 0], [0, 1]]);
 * vmoeLoadBalancingLoss(l, tf.softmax(l), null, tf.tensor2d([[1, 0], [0, 1]]), 1, 0).print(); // 0
 * ```
 */
export function vmoeLoadBalancingLoss(
  logits: Tensor2D,
  probs: Tensor2D,
  noisy: Tensor2D | null,
  chosen: Tensor2D,
  k: number,
  noiseStd: number,
): Tensor {
  return tf.tidy(() => {
    const imp = cv2(tf.sum(probs, 0)); // [E] -> scalar
    if (!noisy || noiseStd <= 0) return imp;
    const [N, E] = logits.shape;
    const kth = tf.sum(
      tf.mul(noisy, chosen.reshape([N, k, E]).slice([0, k - 1, 0], [-1, 1, -1]).squeeze([1])),
      1,
      true,
    ); // [N, 1]
    const arg = tf.div(tf.sub(kth, logits), noiseStd); // [N, E]
    const pStay = tf.sub(1, tf.mul(0.5, tf.add(1, tf.erf(tf.div(arg, Math.SQRT2))))); // [N, E]
    return tf.mul(0.5, tf.add(imp, cv2(tf.sum(pStay, 0))));
  });
}

/**
 * The GShard / Switch balance loss `E·Σ_e me_e·ce_e` (= `E²·mean_e(me_e·ce_e)`,
 * torchscale X-MoE `routing.py:94-99`): `me` the mean routing probability per
 * expert, `ce` the share of tokens whose top-1 expert is e, before capacity.
 *
 * @param probs `[N, E]`
 * @param top1 `[N, E]` one-hot of each token's first choice
 *
 * @example
 * ```ts
 * import { tf } from "../../deps.ts";
 * import { switchBalanceLoss } from "./load_balance.ts";
 * // Uniform routing gives 1.
 * switchBalanceLoss(tf.tensor2d([[.5, .5], [.5, .5]]), tf.tensor2d([[1, 0], [0, 1]])).print(); // 1
 * ```
 */
export function switchBalanceLoss(probs: Tensor2D, top1: Tensor2D): Tensor {
  const E = probs.shape[1];
  return tf.tidy(() => tf.mul(E, tf.sum(tf.mul(tf.mean(probs, 0), tf.mean(top1, 0)))));
}
