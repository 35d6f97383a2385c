/**
 * The Sinkhorn router of Megatron-LM (`router.py:280-311`,
 * `sinkhorn_load_balancing`; the open reference for S-BASE, Clark et al.
 * 2022). Training: the balanced transport plan Π of the logits (log-domain
 * Sinkhorn, ε = 1, tolerance 1e-4, capped at 50 iterations; no gradient)
 * chooses each token's k experts; the gates come from the router's own
 * activations `a(L)` (`sigmoid(L)` for k = 1, `softmax(L)` for k > 1) at those
 * experts, not renormalized. Evaluation: no Sinkhorn, plain top-k of `a(L)`
 * (selected on `log a(L)`, the same order without float32 ties where `a`
 * saturates).
 * The layer's capacity and dropping apply unchanged. No load-balancing loss
 * (Megatron asserts its weight is 0); the z-loss is allowed.
 *
 * z, the map MoGE's regularizer R(z) reads, is the distribution the plan is
 * read from: in training the rows of Π normalized, `softmax(L/ε + g)` (`maxIters`
 * log-domain iterations unrolled on the gradient tape, as SSR's Ĝ); at
 * evaluation `softmax(L)`. Π does not change when a constant is added to a
 * column of L, so R(z) cannot push the per-expert offsets that the column
 * scaling hides in training and that evaluation routes by; on `softmax(L)`,
 * which training never routes by, it did (docs/routers.md).
 *
 * Batch dependence: in training a token's expert depends on every token of
 * the batch through the column scalings (on the LM, later tokens included);
 * evaluation routing is per token and causal.
 *
 * @module
 */

import { tf } from "../../deps.ts";
import type { Tensor2D } from "../../types.ts";
import { tokenChoicePlan } from "./plan.ts";
import {
  disposeParams,
  linearLogits,
  logitsOnTape,
  ParamMaker,
  pickGates,
  type Router,
  type RouterConfig,
  type RouterInit,
  type RouterMode,
  type RouterPlan,
  validateRouterConfig,
} from "./router.ts";
import { sinkhornLogTensor, type SinkhornOptions, sinkhornPlan } from "./sinkhorn_transport.ts";

/** Options of the Sinkhorn router. */
export interface SinkhornRouterConfig extends RouterConfig {
  /** Sinkhorn settings (default ε 1, tol 1e-4, maxIters 50). */
  sinkhorn?: SinkhornOptions;
  /** Router bias (default false, as Megatron). */
  routerBias?: boolean;
  /** Std of the kernel's normal initialization (default 1/√d). */
  initStd?: number;
}

/**
 * Creates the Sinkhorn router.
 *
 * @example
 * ```ts
 * import { tf } from "../../deps.ts";
 * import { disposeDecision, route } from "./router.ts";
 * import { sinkhornRouter } from "./sinkhorn.ts";
 * const router = sinkhornRouter({ inputDim: 4, numExperts: 4, topK: 1, capacityFactor: 0 });
 * const input = { x: tf.randomNormal([8, 4]) as tf.Tensor2D };
 * const d = await route(router, input, { training: true });
 * const { gates } = router.forward(input, d); // sigmoid of the chosen logits, [8, 1]
 * disposeDecision(d);
 * ```
 */
export function sinkhornRouter(config: SinkhornRouterConfig, init: RouterInit = {}): Router {
  validateRouterConfig(config);
  const { inputDim: d, numExperts: E, topK: k } = config;
  const options = config.sinkhorn ?? {};
  sinkhornPlan([0], 1, 1, options); // validates the options
  const make = new ParamMaker(init);
  const w = make.normal("w", [d, E], config.initStd ?? 1 / Math.sqrt(d));
  const b = config.routerBias ? make.variable("b", tf.zeros([E])) : null;
  const logits = (x: Tensor2D) => linearLogits(x, w, b);
  const activation = (L: Tensor2D) => (k === 1 ? tf.sigmoid(L) : tf.softmax(L)) as Tensor2D;
  const epsilon = options.epsilon ?? 1;
  const iterations = options.maxIters ?? 50;
  // Rows of Π normalized: softmax_e(log Π) = softmax(L/ε + g), the iterations unrolled on the tape.
  const transportRows = (L: Tensor2D) =>
    tf.softmax(sinkhornLogTensor(L, epsilon, iterations)) as Tensor2D; // [N, E]
  const logActivation = (L: Tensor2D) =>
    (k === 1 ? tf.logSigmoid(L) : tf.logSoftmax(L)) as Tensor2D;

  return {
    name: "sinkhorn",
    params: make.params,
    nonCausal: false,
    batchDependentInTraining: true,
    select: (input, ctx) => {
      const L = logits(input.x); // [N, E]
      // Evaluation selects on log a(L): the same order as a(L), per token and
      // across tokens (batch priority), but without float32 saturation: σ(L)
      // rounds to exactly 1 for L ≳ 17 (softmax to 0 far below the top), and
      // top-k would then break the tie by the lowest expert index.
      return {
        values: ctx.training ? L : logActivation(L),
        noise: null,
        mode: ctx.training ? "train" : "eval",
        logits: L,
      };
    },
    plan(values: Float32Array, N: number, mode: RouterMode): RouterPlan {
      if (mode === "eval") return tokenChoicePlan(values, N, E, config);
      const { pi } = sinkhornPlan(values, N, E, options); // [N, E]
      return tokenChoicePlan(pi, N, E, config);
    },
    forward(input, decision) {
      return tf.tidy(() => {
        const L = logitsOnTape(decision, input.x) ?? logits(input.x); // [N, E]
        return {
          logits: L,
          // z is the distribution the plan was read from: in training the rows of Π, at evaluation P.
          z: (decision.mode === "eval" ? tf.softmax(L) : transportRows(L)) as Tensor2D,
          gates: pickGates(activation(L), decision.chosen, k), // [N, k]
          auxLoss: tf.scalar(0),
        };
      });
    },
    dispose: () => disposeParams(make.params),
  };
}
