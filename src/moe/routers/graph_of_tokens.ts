/**
 * Routing with a graph of tokens (Nguyen, Tran, Nguyen, Baraniuk 2025,
 * arXiv 2505.00792): a token's expert probabilities are mixed with those of
 * its neighbours, `P̃ = λ·M·P + (1 − λ)·P` with `P = softmax(L)` and M a
 * row-stochastic token graph per sequence (`[B, T, T]`). PROPOSAL: only the
 * abstract was readable; this is this project's reading of it (docs/routers.md).
 * Selection is top-k of P̃ with the layer's capacity and batch-prioritized
 * routing; gates are `P̃[n, idx]` (or renormalized over the k); the V-MoE
 * importance loss is computed on P̃. z = P̃ (rows sum to 1).
 *
 * @module
 */

import { tf } from "../../deps.ts";
import type { Tensor, Tensor2D } from "../../types.ts";
import { checkNumber } from "../../validate.ts";
import { vmoeLoadBalancingLoss } from "./load_balance.ts";
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
  type RouterInput,
  type RouterName,
  type RouterPlan,
  type Tensor3D,
  validateRouterConfig,
} from "./router.ts";

/** Options shared by the graph-of-tokens routers. */
export interface GraphRouterConfig extends RouterConfig {
  /** Weight λ of the graph term (default 1: `P̃ = M·P`). */
  lambda?: number;
  /** Renormalize the k gates of a token to sum 1 (default false). */
  renormalize?: boolean;
  /** Router bias (default false). */
  routerBias?: boolean;
  /** Std of the kernel's normal initialization (default 1/√d). */
  initStd?: number;
}

/**
 * The sequence length of an input: `input.sequenceLength`, or N (one sequence).
 *
 * @example
 * ```ts
 * import { tf } from "../../deps.ts";
 * import { sequenceLengthOf } from "./graph_of_tokens.ts";
 * sequenceLengthOf({ x: tf.zeros([6, 2]) as tf.Tensor2D, sequenceLength: 3 }); // 3
 * ```
 */
export function sequenceLengthOf(input: RouterInput): number {
  const N = input.x.shape[0];
  const T = input.sequenceLength ?? N;
  if (!Number.isInteger(T) || T < 1 || N % T !== 0) {
    throw new RangeError(
      `sequenceLength = ${T} is invalid: it must be a positive integer dividing N = ${N} tokens`,
    );
  }
  return T;
}

/**
 * Mixes expert probabilities over a token graph: `P̃ = λ·M·P + (1 − λ)·P`.
 *
 * @param P `[N, E]`, N = B·T
 * @param M `[B, T, T]` row-stochastic
 * @returns `[N, E]`
 *
 * @example
 * ```ts
 * import { tf } from "../../deps.ts";
 * import { mixProbabilities } from "./graph_of_tokens.ts";
 * const P = tf.tensor2d([[1, 0], [0, 1]]);
 * mixProbabilities(P, tf.fill([1, 2, 2], 0.5) as tf.Tensor3D, 1); // [[.5, .5], [.5, .5]]
 * ```
 */
export function mixProbabilities(P: Tensor2D, M: Tensor3D, lambda: number): Tensor2D {
  const [N, E] = P.shape;
  const [B, T, T2] = M.shape;
  if (B * T !== N || T2 !== T) {
    throw new RangeError(
      `token graph has shape [${M.shape}], expected [B, T, T] with B·T = N = ${N}`,
    );
  }
  return tf.tidy(() => {
    const mixed = tf.matMul(M, P.reshape([B, T, E])).reshape([N, E]); // [N, E]
    return (lambda === 1
      ? mixed
      : tf.add(tf.mul(lambda, mixed), tf.mul(1 - lambda, P))) as Tensor2D;
  });
}

/**
 * A token-choice router over `P̃` for a graph `graph(input, L)` `[B, T, T]`.
 *
 * @example
 * ```ts
 * import { tf } from "../../deps.ts";
 * import { graphRouter } from "./graph_of_tokens.ts";
 * // A graph of self-loops gives plain softmax top-k routing.
 * const r = graphRouter("similarity", { inputDim: 2, numExperts: 2, topK: 1, capacityFactor: 0 }, {},
 *   (input) => tf.eye(input.x.shape[0]).expandDims(0) as tf.Tensor3D);
 * r.dispose();
 * ```
 */
export function graphRouter(
  name: RouterName,
  config: GraphRouterConfig,
  init: RouterInit,
  graph: (input: RouterInput, logits: Tensor2D) => Tensor3D,
  extraParams: (make: ParamMaker) => void = () => {},
): Router {
  validateRouterConfig(config);
  const { inputDim: d, numExperts: E, topK: k } = config;
  const lambda = config.lambda ?? 1;
  checkNumber("lambda", lambda, { min: 0, max: 1 });
  const make = new ParamMaker(init);
  const w = make.normal("w", [d, E], config.initStd ?? 1 / Math.sqrt(d));
  const b = config.routerBias ? make.variable("b", tf.zeros([E])) : null;
  extraParams(make);
  const logits = (x: Tensor2D) => linearLogits(x, w, b);
  const mixed = (input: RouterInput, L: Tensor2D) =>
    mixProbabilities(tf.softmax(L) as Tensor2D, graph(input, L), lambda); // [N, E]

  return {
    name,
    params: make.params,
    nonCausal: false,
    batchDependentInTraining: false,
    select: (input, ctx) => {
      const L = logits(input.x); // [N, E]
      return {
        values: mixed(input, L),
        noise: null,
        mode: ctx.training ? "train" : "eval",
        logits: L,
      };
    },
    plan(values: Float32Array, N: number): RouterPlan {
      return tokenChoicePlan(values, N, E, config);
    },
    forward(input, decision) {
      return tf.tidy(() => {
        const L = logitsOnTape(decision, input.x) ?? logits(input.x); // [N, E]
        const z = mixed(input, L); // P̃ [N, E]
        let gates = pickGates(z, decision.chosen, k); // [N, k]
        if (config.renormalize) gates = tf.div(gates, tf.sum(gates, 1, true)) as Tensor2D;
        const auxLoss: Tensor = vmoeLoadBalancingLoss(L, z, null, decision.chosen, k, 0);
        return { logits: L, z, gates, auxLoss };
      });
    },
    dispose: () => disposeParams(make.params),
  };
}
