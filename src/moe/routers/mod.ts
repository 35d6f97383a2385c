/**
 * The routers of the related work behind one contract ({@linkcode Router}),
 * plus the ST-MoE router z-loss and routing statistics. Adding a router: one
 * file exporting a factory `(config, init) => Router`, its line in
 * {@linkcode ROUTER_FACTORIES}, its name in the `RouterName` union of
 * `./router.ts`, and in `PROPOSED_ROUTERS` if it is this project's reading of
 * a paper without code.
 *
 * Which tensor z (MoGE's regularizer input) is, per router:
 * - topk: `softmax(L)`, noise-free;
 * - expert-choice: `S = softmax(L)`;
 * - sinkhorn: the rows of Π in training (the plan is read from them), `softmax(L)` at evaluation;
 * - ssr: `Ĝ` = Π with rows normalized (`N·Π` once converged) in Sinkhorn steps, `softmax(L)` otherwise (the map its gates are read from);
 * - xmoe: `softmax(s)` of the (scaled) cosine scores;
 * - similarity, attention: the mixed probabilities `P̃`.
 *
 * @module
 */

export * from "./router.ts";
export type { Tensor, Tensor1D, Tensor2D, Variable } from "../../types.ts";
export type { RoutingPlan } from "../routing.ts";
export * from "./plan.ts";
export * from "./stats.ts";
export * from "./z_loss.ts";
export * from "./load_balance.ts";
export * from "./sinkhorn_transport.ts";
export { topKRouter, type TopKRouterConfig } from "./topk.ts";
export { expertChoiceRouter, type ExpertChoiceRouterConfig } from "./expert_choice.ts";
export { sinkhornRouter, type SinkhornRouterConfig } from "./sinkhorn.ts";
export { ssrRouter, type SsrRouterConfig, ssrSinkhornStep } from "./ssr.ts";
export { xmoeRouter, type XmoeRouterConfig, type XmoeTemperature } from "./xmoe.ts";
export {
  graphRouter,
  type GraphRouterConfig,
  mixProbabilities,
  sequenceLengthOf,
} from "./graph_of_tokens.ts";
export { similarityGraph, similarityRouter, type SimilarityRouterConfig } from "./similarity.ts";
export { attentionRouter } from "./attention.ts";

import type { Router, RouterConfig, RouterInit, RouterName } from "./router.ts";
import { topKRouter } from "./topk.ts";
import { expertChoiceRouter } from "./expert_choice.ts";
import { sinkhornRouter } from "./sinkhorn.ts";
import { ssrRouter } from "./ssr.ts";
import { xmoeRouter } from "./xmoe.ts";
import { similarityRouter } from "./similarity.ts";
import { attentionRouter } from "./attention.ts";

/** A router factory: settings (common plus its own options) and init. */
export type RouterFactory = (
  config: RouterConfig & Record<string, unknown>,
  init?: RouterInit,
) => Router;

/** Every router by name. */
export const ROUTER_FACTORIES: Record<RouterName, RouterFactory> = {
  "topk": topKRouter as RouterFactory,
  "expert-choice": expertChoiceRouter as RouterFactory,
  "sinkhorn": sinkhornRouter as RouterFactory,
  "ssr": ssrRouter as RouterFactory,
  "xmoe": xmoeRouter as RouterFactory,
  "similarity": similarityRouter as RouterFactory,
  "attention": attentionRouter as RouterFactory,
};

/** The router names, `topk` (the default) first. */
export const ROUTER_NAMES: readonly RouterName[] = Object.keys(ROUTER_FACTORIES) as RouterName[];

/** Routers that are this project's proposals (docs/routers.md), not confirmed from the authors' code. */
export const PROPOSED_ROUTERS: readonly RouterName[] = ["ssr", "similarity", "attention"];

/**
 * Creates a router by name (options beyond {@linkcode RouterConfig} are the
 * router's own; see its factory).
 *
 * @example
 * ```ts
 * import { createRouter } from "./mod.ts";
 * const r = createRouter("sinkhorn", { inputDim: 8, numExperts: 4, topK: 1, capacityFactor: 1 });
 * r.name; // "sinkhorn"
 * r.dispose();
 * ```
 */
export function createRouter(
  name: RouterName,
  config: RouterConfig & Record<string, unknown>,
  init: RouterInit = {},
): Router {
  const factory = ROUTER_FACTORIES[name];
  if (!factory) {
    throw new RangeError(`router = "${name}" is invalid: allowed are ${ROUTER_NAMES.join(", ")}`);
  }
  return factory(config, init);
}
