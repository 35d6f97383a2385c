/**
 * The router z-loss of ST-MoE (Zoph et al. 2022; flaxformer `routing.py:757-774`,
 * Megatron-LM `moe_utils.py:153-182`): `L_z = (1/N)·Σ_n (logsumexp_e L[n,e])²`
 * on the raw router logits, which keeps them small for a stable softmax. Its
 * gradient is `∂L_z/∂L[n,e] = (2/N)·lse_n·softmax(L_n)_e`.
 *
 * Weights: 0 by default here; the usual value is 1e-3 (ST-MoE 32B, Megatron's
 * recommended start), 1e-4 in the ST-MoE base config.
 *
 * @module
 */

import { tf } from "../../deps.ts";
import type { Tensor, Tensor1D, Tensor2D } from "../../types.ts";

/** Default z-loss weight (off). */
export const Z_LOSS_WEIGHT_DEFAULT = 0;
/** The documented usual z-loss weight (ST-MoE 32B). */
export const Z_LOSS_WEIGHT_USUAL = 1e-3;

/**
 * The router z-loss of logits `[N, E]`, a scalar. With `mask` (`[N]`, 1 for
 * real tokens, 0 for padding), padding rows are left out of the sum and the
 * count (Megatron's behaviour).
 *
 * @example
 * ```ts
 * import { tf } from "../../deps.ts";
 * import { zLoss } from "./z_loss.ts";
 * // Z-1 (docs/routers.md): lse = [ln 2, 1 + ln 2, ln(e² + 1)], mean of squares 2.6237.
 * zLoss(tf.tensor2d([[0, 0], [1, 1], [2, 0]])).print(); // 2.6237
 * ```
 */
export function zLoss(logits: Tensor2D, mask?: Tensor1D): Tensor {
  return tf.tidy(() => {
    const lse2 = tf.square(tf.logSumExp(logits, 1)); // [N]
    if (!mask) return tf.mean(lse2);
    return tf.div(tf.sum(tf.mul(lse2, mask)), tf.maximum(tf.sum(mask), 1));
  });
}
