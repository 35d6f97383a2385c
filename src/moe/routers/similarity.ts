/**
 * Similarity-aware routing (Nguyen et al. 2025, arXiv 2505.00792; PROPOSAL,
 * this project's reading of the abstract, docs/routers.md): the token graph is
 * `M[i, j] = softmax_j(⟨u_i, u_j⟩ / τ_s)` over the tokens of the same sequence
 * (the whole batch for a model with one token per example), with later tokens
 * masked on a causal model, and `P̃ = λ·M·P + (1 − λ)·P`. `u` is the tokens
 * (default), the router logits, or a learnable projection `X·W_s`.
 *
 * @module
 */

import { tf } from "../../deps.ts";
import type { Tensor2D, Variable } from "../../types.ts";
import { checkInteger, checkNumber } from "../../validate.ts";
import { graphRouter, type GraphRouterConfig, sequenceLengthOf } from "./graph_of_tokens.ts";
import type { Router, RouterInit, Tensor3D } from "./router.ts";

/** Options of the similarity-aware router. */
export interface SimilarityRouterConfig extends GraphRouterConfig {
  /** What the similarity compares: "tokens" (default), "logits", or "learnable" (`X·W_s`). */
  similarityInput?: "tokens" | "logits" | "learnable";
  /** Width of the learnable projection W_s (default inputDim). */
  similarityDim?: number;
  /** Temperature τ_s (default 1). */
  temperature?: number;
}

/**
 * The token graph `M = softmax_j(⟨u_i, u_j⟩/τ)` per sequence, causal-masked when asked.
 *
 * @param u `[N, m]`, N = B·T
 * @returns `[B, T, T]`
 *
 * @example
 * ```ts
 * import { tf } from "../../deps.ts";
 * import { similarityGraph } from "./similarity.ts";
 * // ⟨u_i, u_j⟩ = [[1, 0], [0, 1]]: softmax rows [.7311, .2689] and [.2689, .7311].
 * similarityGraph(tf.tensor2d([[1, 0], [0, 1]]), 2, 1, false).print();
 * ```
 */
export function similarityGraph(
  u: Tensor2D,
  T: number,
  temperature: number,
  causal: boolean,
): Tensor3D {
  const [N, m] = u.shape;
  return tf.tidy(() => {
    const s = tf.reshape(u, [N / T, T, m]) as Tensor3D; // [B, T, m]
    let sim = tf.div(tf.matMul(s, s, false, true), temperature); // [B, T, T]
    if (causal) {
      const future = tf.sub(1, tf.linalg.bandPart(tf.ones([T, T]), -1, 0)); // 1 above the diagonal
      sim = tf.add(sim, tf.mul(future, -1e9));
    }
    return tf.softmax(sim) as Tensor3D;
  });
}

/**
 * Creates the similarity-aware router (extra parameter `${prefix}.router.sim [d, m]`
 * with `similarityInput: "learnable"`).
 *
 * @example
 * ```ts
 * import { tf } from "../../deps.ts";
 * import { disposeDecision, route } from "./router.ts";
 * import { similarityRouter } from "./similarity.ts";
 * const router = similarityRouter({ inputDim: 4, numExperts: 4, topK: 1, capacityFactor: 0 });
 * const input = { x: tf.randomNormal([6, 4]) as tf.Tensor2D, sequenceLength: 3 };
 * disposeDecision(await route(router, input, { training: false }));
 * ```
 */
export function similarityRouter(config: SimilarityRouterConfig, init: RouterInit = {}): Router {
  const kind = config.similarityInput ?? "tokens";
  if (!["tokens", "logits", "learnable"].includes(kind)) {
    throw new RangeError(
      `similarityInput = "${kind}" is invalid: allowed are tokens, logits, learnable`,
    );
  }
  const tau = config.temperature ?? 1;
  checkNumber("temperature", tau, { min: 0, exclusiveMin: true });
  const m = config.similarityDim ?? config.inputDim;
  checkInteger("similarityDim", m, 1);
  let ws: Variable | null = null;
  return graphRouter("similarity", config, init, (input, L) => {
    const T = sequenceLengthOf(input);
    const u = kind === "tokens"
      ? input.x
      : kind === "logits"
      ? L
      : tf.matMul(input.x, ws as Tensor2D) as Tensor2D;
    return similarityGraph(u, T, tau, config.causal ?? false);
  }, (make) => {
    if (kind === "learnable") {
      ws = make.normal("sim", [config.inputDim, m], 1 / Math.sqrt(config.inputDim));
    }
  });
}
