/**
 * Token-choice top-k routing, MoGE's and V-MoE's router (MoGE eq. 1-4;
 * Riquelme et al. 2021), expressed through the {@linkcode Router} contract:
 * logits `L = X·W (+ b)`, routing noise in training, each token's k largest
 * (noisy) scores with capacity and batch-prioritized routing, and the V-MoE
 * load-balancing loss. Two orders: "softmax-topk" (gates are the softmax of
 * the noisy logits, not renormalized: vision) and "topk-softmax" (gates are
 * the softmax over the k chosen logits: language models).
 *
 * z = softmax(L), noise-free.
 *
 * @module
 */

import { tf } from "../../deps.ts";
import type { Tensor2D } from "../../types.ts";
import { tfSeed } from "../../rng.ts";
import { checkNumber } from "../../validate.ts";
import { vmoeLoadBalancingLoss } from "./load_balance.ts";
import { loadBalancingLoss as hostLoadBalancingLoss } from "../load_balance.ts";
import { expertFfnAvailable, fusedExpertsEnabled } from "../expert_ffn.ts";
import { tokenChoicePlan } from "./plan.ts";
import {
  disposeParams,
  linearLogits,
  logitsOnTape,
  ParamMaker,
  pickGates,
  type Router,
  type RouterConfig,
  type RouterDecision,
  type RouterInit,
  type RouterInput,
  type RouterMode,
  type RouterOutput,
  type RouterPlan,
  type Selection,
  validateRouterConfig,
} from "./router.ts";

/** Options of the top-k router. */
export interface TopKRouterConfig extends RouterConfig {
  /** "softmax-topk" (default) or "topk-softmax". */
  routingOrder?: "softmax-topk" | "topk-softmax";
  /** Router bias (default false). */
  routerBias?: boolean;
  /** Std of the training noise on the logits (default 1/E; 0 off). */
  noiseStd?: number;
  /** Std of the kernel's normal initialization (default 1/√d, as `MoeLayer`). */
  initStd?: number;
  /**
   * Compute the load-balancing loss (default true; false gives 0, for a layer
   * whose load-balancing weight is 0, which saves its kernels).
   */
  auxLoss?: boolean;
}

/**
 * Creates the token-choice top-k router (parameters `${prefix}.router.w [d, E]`
 * and, with a bias, `${prefix}.router.b [E]`, as `MoeLayer` names them).
 *
 * @example
 * ```ts
 * import { tf } from "../../deps.ts";
 * import { disposeDecision, route } from "./router.ts";
 * import { topKRouter } from "./topk.ts";
 * const router = topKRouter({ inputDim: 4, numExperts: 8, topK: 2, capacityFactor: 1 }, { seed: 1 });
 * const input = { x: tf.randomNormal([16, 4]) as tf.Tensor2D };
 * const d = await route(router, input, { training: true, noiseSeed: 7 });
 * const { gates, z, auxLoss } = router.forward(input, d); // gates [16, 2], z [16, 8]
 * disposeDecision(d);
 * ```
 */
export function topKRouter(config: TopKRouterConfig, init: RouterInit = {}): Router {
  validateRouterConfig(config);
  const { inputDim: d, numExperts: E, topK: k } = config;
  const order = config.routingOrder ?? "softmax-topk";
  if (order !== "softmax-topk" && order !== "topk-softmax") {
    throw new RangeError(
      `routingOrder = "${order}" is invalid: allowed are softmax-topk, topk-softmax`,
    );
  }
  const noiseStd = config.noiseStd ?? 1 / E;
  checkNumber("noiseStd", noiseStd, { min: 0 });
  const make = new ParamMaker(init);
  const w = make.normal("w", [d, E], config.initStd ?? 1 / Math.sqrt(d));
  const b = config.routerBias ? make.variable("b", tf.zeros([E])) : null;
  const logits = (x: Tensor2D) => linearLogits(x, w, b);

  return {
    name: "topk",
    params: make.params,
    nonCausal: false,
    batchDependentInTraining: false,
    select(input: RouterInput, ctx): Selection {
      const L = logits(input.x); // [N, E]
      if (ctx.training && ctx.noise) {
        if (!tf.util.arraysEqual(ctx.noise.shape, L.shape)) {
          throw new RangeError(
            `route: the given noise has shape [${ctx.noise.shape}] but the logits are [${L.shape}]`,
          );
        }
      }
      const noise = ctx.training && ctx.noise
        ? ctx.noise.clone() as Tensor2D
        : ctx.training && noiseStd > 0
        ? tf.randomNormal(
          L.shape,
          0,
          noiseStd,
          "float32",
          ctx.noiseSeed === undefined ? undefined : tfSeed(ctx.noiseSeed),
        ) as Tensor2D
        : null;
      return {
        values: noise ? tf.add(L, noise) as Tensor2D : L,
        noise,
        mode: ctx.training ? "train" : "eval",
        logits: L,
      };
    },
    plan(values: Float32Array, N: number, _mode: RouterMode): RouterPlan {
      return tokenChoicePlan(values, N, E, config);
    },
    forward(input: RouterInput, decision: RouterDecision): RouterOutput {
      return tf.tidy(() => {
        const L = logitsOnTape(decision, input.x) ?? logits(input.x); // [N, E]
        const noisy = decision.noise ? tf.add(L, decision.noise) as Tensor2D : L; // [N, E]
        const z = tf.softmax(L) as Tensor2D; // [N, E]
        let gates: Tensor2D; // [N, k]
        if (order === "softmax-topk") {
          const probs = decision.noise ? tf.softmax(noisy) as Tensor2D : z; // [N, E] noisy gate probabilities
          gates = pickGates(probs, decision.chosen, k);
        } else {
          gates = tf.softmax(pickGates(noisy, decision.chosen, k)) as Tensor2D;
        }
        // The importance term uses the clean softmax(L) (V-MoE: importance on
        // the clean probabilities, load on the noisy logits). On wasm and cpu
        // the loss runs on the host (2 kernels instead of ~80).
        const { N } = decision.plan;
        const auxLoss = config.auxLoss === false
          ? tf.scalar(0)
          : expertFfnAvailable() && fusedExpertsEnabled()
          ? hostLoadBalancingLoss(
            L,
            decision.noise,
            Int32Array.from({ length: N }, (_, n) => decision.plan.expert[n * k + k - 1]),
            noiseStd,
          )
          : vmoeLoadBalancingLoss(
            L,
            z,
            decision.noise ? noisy : null,
            decision.chosen,
            k,
            noiseStd,
          );
        return { logits: L, z, gates, auxLoss };
      });
    },
    dispose: () => disposeParams(make.params),
  };
}
