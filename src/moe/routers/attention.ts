/**
 * Attention-aware routing (Nguyen et al. 2025, arXiv 2505.00792; PROPOSAL,
 * this project's reading of the abstract, docs/routers.md): the token graph is the head-averaged
 * attention matrix `Ā = (1/H)·Σ_h A_h` `[B, T, T]` of the attention sublayer
 * just before this MoE, passed in `RouterInput.attention`, and
 * `P̃ = λ·Ā·P + (1 − λ)·P`. With causal attention it is causal. Gradients flow
 * into Ā (the caller may pass a detached copy to stop them).
 *
 * @module
 */

import { graphRouter, type GraphRouterConfig, sequenceLengthOf } from "./graph_of_tokens.ts";
import type { Router, RouterInit } from "./router.ts";

/**
 * Creates the attention-aware router (for models with attention: ViT, LM).
 *
 * @example
 * ```ts
 * import { tf } from "../../deps.ts";
 * import { disposeDecision, route } from "./router.ts";
 * import { attentionRouter } from "./attention.ts";
 * const router = attentionRouter({ inputDim: 4, numExperts: 4, topK: 1, capacityFactor: 0 });
 * const attention = tf.fill([2, 3, 3], 1 / 3) as tf.Tensor3D; // [B, T, T]
 * const input = { x: tf.randomNormal([6, 4]) as tf.Tensor2D, sequenceLength: 3, attention };
 * disposeDecision(await route(router, input, { training: false }));
 * ```
 */
export function attentionRouter(config: GraphRouterConfig, init: RouterInit = {}): Router {
  return graphRouter("attention", config, init, (input) => {
    if (!input.attention) {
      throw new Error(
        'router "attention" needs RouterInput.attention, the preceding attention sublayer\'s' +
          " head-averaged matrix [B, T, T] (models without attention cannot use it)",
      );
    }
    const T = sequenceLengthOf(input);
    const [B, T1, T2] = input.attention.shape;
    if (T1 !== T || T2 !== T || B * T !== input.x.shape[0]) {
      throw new RangeError(
        `attention has shape [${input.attention.shape}], expected [B, T, T] = [${
          input.x.shape[0] / T
        }, ${T}, ${T}]`,
      );
    }
    return input.attention;
  });
}
