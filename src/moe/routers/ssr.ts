/**
 * Selective Sinkhorn Routing (SSR; Nguyen, Ta, Duc, Nguyen, Tran 2025,
 * arXiv 2511.08972). PROPOSAL: only the abstract was readable; this is the
 * project's proposed reading (docs/routers.md), every knob configurable, not
 * paper-exact.
 *
 * Verified from the abstract: the token-to-expert assignment is an optimal
 * transport problem solved with Sinkhorn, the gates come directly from the
 * transport map, Sinkhorn is used sparingly, and there is no auxiliary loss,
 * no z-loss and no extra parameter.
 *
 * Proposed: in a training step, with probability `pSinkhorn` (default 0.1),
 * a Sinkhorn step: `Π = Sinkhorn(L/ε; 1/N, 1/E; T iterations)` unrolled on the
 * tape (ε 1, T 10), `Ĝ` = Π with each row normalized to sum 1 (= N·Π once
 * Sinkhorn has converged; exact rows also after T capped iterations), each
 * token's top-k of Ĝ, gates
 * `Ĝ[n, idx]` (optionally renormalized over the k). Otherwise, and at
 * evaluation, softmax mode: top-k of `P = softmax(L)` with gates `P[n, idx]`.
 * The layer's capacity and dropping apply. z is the map the gates are read
 * from: Ĝ in Sinkhorn steps, P otherwise.
 *
 * @module
 */

import { tf } from "../../deps.ts";
import type { Tensor2D } from "../../types.ts";
import { Rng } from "../../rng.ts";
import { checkInteger, checkNumber } from "../../validate.ts";
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
import { sinkhornLogTensor, sinkhornPlan } from "./sinkhorn_transport.ts";

/** Options of the SSR router (all proposals). */
export interface SsrRouterConfig extends RouterConfig {
  /** Chance that a training step is a Sinkhorn step (default 0.1; 1: every step, 0: never). */
  pSinkhorn?: number;
  /** Entropic ε (default 1). */
  epsilon?: number;
  /** Unrolled Sinkhorn iterations T (default 10). */
  iterations?: number;
  /** Renormalize the k gates of a token to sum 1 (default false). */
  renormalize?: boolean;
  /** Seed of the per-step draw (default 0). */
  drawSeed?: number;
  /** Router bias (default false). */
  routerBias?: boolean;
  /** Std of the kernel's normal initialization (default 1/√d). */
  initStd?: number;
}

/**
 * Whether training step `step` is a Sinkhorn step: a uniform draw seeded by
 * (`seed`, `step`) below `p`. Deterministic, so every layer and every replay
 * of a step agrees.
 *
 * @example
 * ```ts
 * import { ssrSinkhornStep } from "./ssr.ts";
 * ssrSinkhornStep(12, 0, 1); // true
 * ssrSinkhornStep(12, 0, 0); // false
 * ```
 */
export function ssrSinkhornStep(step: number, seed: number, p: number): boolean {
  checkInteger("step", step, 0);
  if (p >= 1) return true;
  if (p <= 0) return false;
  return new Rng(step * 65536 + (seed % 65536)).next() < p;
}

/**
 * Creates the SSR router (a proposal; see the module docs).
 *
 * @example
 * ```ts
 * import { tf } from "../../deps.ts";
 * import { disposeDecision, route } from "./router.ts";
 * import { ssrRouter } from "./ssr.ts";
 * const router = ssrRouter({ inputDim: 4, numExperts: 4, topK: 1, capacityFactor: 0, pSinkhorn: 1 });
 * const input = { x: tf.randomNormal([8, 4]) as tf.Tensor2D };
 * const d = await route(router, input, { training: true, step: 3 });
 * d.mode; // "train-sinkhorn"
 * const { z } = router.forward(input, d); // Ĝ: Π row-normalized
 * disposeDecision(d);
 * ```
 */
export function ssrRouter(config: SsrRouterConfig, init: RouterInit = {}): Router {
  validateRouterConfig(config);
  const { inputDim: d, numExperts: E, topK: k } = config;
  const p = config.pSinkhorn ?? 0.1;
  checkNumber("pSinkhorn", p, { min: 0, max: 1 });
  const epsilon = config.epsilon ?? 1;
  checkNumber("epsilon", epsilon, { min: 0, exclusiveMin: true });
  const T = config.iterations ?? 10;
  checkInteger("iterations", T, 1);
  const drawSeed = config.drawSeed ?? 0;
  checkInteger("drawSeed", drawSeed, 0);
  const make = new ParamMaker(init);
  const w = make.normal("w", [d, E], config.initStd ?? 1 / Math.sqrt(d));
  const b = config.routerBias ? make.variable("b", tf.zeros([E])) : null;
  const logits = (x: Tensor2D) => linearLogits(x, w, b);
  let counter = 0;
  const gatesOf = (scores: Tensor2D, chosen: Tensor2D) => {
    const g = pickGates(scores, chosen, k); // [N, k]
    return config.renormalize ? tf.div(g, tf.sum(g, 1, true)) as Tensor2D : g;
  };

  return {
    name: "ssr",
    params: make.params,
    nonCausal: false,
    batchDependentInTraining: true,
    select(input, ctx) {
      const L = logits(input.x); // [N, E]
      if (!ctx.training) {
        return { values: tf.softmax(L) as Tensor2D, noise: null, mode: "eval", logits: L };
      }
      const step = ctx.step ?? counter++;
      if (ssrSinkhornStep(step, drawSeed, p)) {
        return { values: L, noise: null, mode: "train-sinkhorn", logits: L };
      }
      return { values: tf.softmax(L) as Tensor2D, noise: null, mode: "train", logits: L };
    },
    plan(values: Float32Array, N: number, mode: RouterMode): RouterPlan {
      if (mode !== "train-sinkhorn") return tokenChoicePlan(values, N, E, config);
      const { pi } = sinkhornPlan(values, N, E, { epsilon, tol: 0, maxIters: T });
      const G = new Float64Array(N * E); // Ĝ: rows of Π normalized to sum 1
      for (let n = 0; n < N; n++) {
        let sum = 0;
        for (let e = 0; e < E; e++) sum += pi[n * E + e];
        for (let e = 0; e < E; e++) G[n * E + e] = pi[n * E + e] / sum;
      }
      return tokenChoicePlan(G, N, E, config);
    },
    forward(input, decision) {
      return tf.tidy(() => {
        const L = logitsOnTape(decision, input.x) ?? logits(input.x); // [N, E]
        const z = decision.mode === "train-sinkhorn"
          ? tf.softmax(sinkhornLogTensor(L, epsilon, T)) as Tensor2D // Ĝ: Π row-normalized [N, E]
          : tf.softmax(L) as Tensor2D; // P [N, E]
        return { logits: L, z, gates: gatesOf(z, decision.chosen), auxLoss: tf.scalar(0) };
      });
    },
    dispose: () => disposeParams(make.params),
  };
}
