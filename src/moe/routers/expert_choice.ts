/**
 * Expert Choice routing (Zhou et al., NeurIPS 2022; flaxformer
 * `routing.py:647-717`, `ExpertsChooseMaskedRouter`): affinities
 * `S = softmax(X·W_g + b)` `[N, E]`; each expert takes its top-C tokens,
 * `C = max(1, min(N, max(C_min, round(cf·N/E))))`, so every expert fills exactly C slots and
 * a token gets 0..E experts. The gate of a selected pair is `S[n, e]`, not
 * renormalized. No load-balancing loss (experts fill their buffers by
 * construction). z = S.
 *
 * Non-causal: whether a token is picked depends on every token of the group,
 * later ones included (flaxformer forbids it in decoders), so a causal LM
 * must refuse it (`nonCausal`; creating it with `causal: true` throws).
 *
 * @module
 */

import { tf } from "../../deps.ts";
import type { Tensor2D } from "../../types.ts";
import { checkInteger, checkNumber } from "../../validate.ts";
import { expertChoicePlan } from "./plan.ts";
import {
  disposeParams,
  linearLogits,
  logitsOnTape,
  ParamMaker,
  pickGates,
  type Router,
  type RouterConfig,
  type RouterInit,
  type RouterPlan,
  validateRouterConfig,
} from "./router.ts";

/** Options of the expert-choice router. */
export interface ExpertChoiceRouterConfig extends RouterConfig {
  /** Minimum capacity C_min (default 1; flaxformer uses 4, which makes tiny groups dense). */
  minCapacity?: number;
  /** Router bias (default true, as flaxformer). */
  routerBias?: boolean;
  /** Std of the kernel's normal initialization (default 1/√d; flaxformer 0.02). */
  initStd?: number;
}

/**
 * Creates the expert-choice router. `capacityFactor` is the paper's c (must
 * be > 0); `topK` is ignored.
 *
 * @example
 * ```ts
 * import { tf } from "../../deps.ts";
 * import { disposeDecision, route } from "./router.ts";
 * import { expertChoiceRouter } from "./expert_choice.ts";
 * const router = expertChoiceRouter({ inputDim: 4, numExperts: 4, topK: 1, capacityFactor: 2 });
 * const input = { x: tf.randomNormal([8, 4]) as tf.Tensor2D };
 * const d = await route(router, input, { training: true });
 * d.plan.load; // Int32Array [4, 4, 4, 4]: C = round(2·8/4) slots each
 * disposeDecision(d);
 * ```
 */
export function expertChoiceRouter(
  config: ExpertChoiceRouterConfig,
  init: RouterInit = {},
): Router {
  validateRouterConfig(config);
  if (config.causal) {
    throw new Error(
      'router "expert-choice" cannot be used on a causal model: each expert picks its top-C' +
        " tokens among the whole group, so a token's routing depends on later tokens" +
        " (use topk, sinkhorn, ssr, xmoe, similarity or attention)",
    );
  }
  const { inputDim: d, numExperts: E, capacityFactor } = config;
  checkNumber("capacityFactor (expert choice)", capacityFactor, { min: 0, exclusiveMin: true });
  const minCapacity = config.minCapacity ?? 1;
  checkInteger("minCapacity", minCapacity, 0);
  const make = new ParamMaker(init);
  const w = make.normal("w", [d, E], config.initStd ?? 1 / Math.sqrt(d));
  const b = config.routerBias ?? true ? make.variable("b", tf.zeros([E])) : null;
  const logits = (x: Tensor2D) => linearLogits(x, w, b);

  return {
    name: "expert-choice",
    params: make.params,
    nonCausal: true,
    batchDependentInTraining: true,
    select: (input, ctx) => {
      const L = logits(input.x); // [N, E]
      return {
        values: tf.softmax(L) as Tensor2D, // [N, E]
        noise: null,
        mode: ctx.training ? "train" : "eval",
        logits: L,
      };
    },
    plan(values: Float32Array, N: number): RouterPlan {
      return expertChoicePlan(values, N, E, {
        capacityFactor,
        minCapacity,
        compact: config.compact,
        slotMultiple: config.slotMultiple,
      });
    },
    forward(input, decision) {
      return tf.tidy(() => {
        const L = logitsOnTape(decision, input.x) ?? logits(input.x); // [N, E]
        const S = tf.softmax(L) as Tensor2D; // [N, E]
        return {
          logits: L,
          z: S,
          gates: pickGates(S, decision.chosen, decision.plan.k), // [N, k], 0 on padding
          auxLoss: tf.scalar(0),
        };
      });
    },
    dispose: () => disposeParams(make.params),
  };
}
