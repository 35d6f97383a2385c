/**
 * The configuration of a sparse MoE layer ({@linkcode MoeConfig}) and its
 * validation.
 *
 * @module
 */

import { CAPACITY_RULES, type CapacityRule } from "./routing.ts";
import { ROUTER_NAMES, type RouterName } from "./routers/mod.ts";
import { checkInteger, checkNumber } from "../validate.ts";

/** The order of top-k and softmax in the router. */
export type RoutingOrder = "softmax-topk" | "topk-softmax";
/** Expert hidden activation. */
export type Activation = "gelu" | "relu" | "tanh";

/** Configuration of one MoE layer. */
export interface MoeConfig {
  /** Token width d. */
  inputDim: number;
  /** Expert hidden width d_ff (each expert is d -> d_ff -> d_out). */
  hiddenDim: number;
  /** Output width d_out (default: inputDim). */
  outputDim?: number;
  /** Number of experts E. */
  numExperts: number;
  /** Experts per token k (1 <= k <= E). */
  topK: number;
  /** "softmax-topk" (vision, eq. 1-4) or "topk-softmax" (language models, MoGE Sec. 3.2). */
  routingOrder: RoutingOrder;
  /** Router bias (vision: false; language models: true). */
  routerBias: boolean;
  /** Expert activation. */
  activation: Activation;
  /** Std of the routing noise added to the router logits in training; default 1/E; 0 turns it off. */
  noiseStd?: number;
  /** Capacity factor C_f (0: no capacity limit). */
  capacityFactor: number;
  /** Weight of the load-balancing loss (0: off). */
  loadBalanceWeight: number;
  /**
   * Give expert buffers only to the experts that received tokens, gathering
   * their weights (default false). Saves matmul work when many experts are
   * idle (E > N·k), but tfjs-wasm's gather is slow enough that it cost more
   * than it saved there; try it on webgpu.
   */
  compactExperts?: boolean;
  /**
   * How experts run (default "auto": "fused" on wasm and cpu, "batched" on
   * webgpu). "fused": the "looped" computation as one forward and one
   * backward kernel for all experts (src/moe/expert_ffn.ts). "looped": one
   * 2-D matmul per expert that received tokens, on
   * exactly its tokens (no padding); tfjs-wasm's 2-D matmul is about 8x
   * faster than its batched matmul. "batched": `[A, slots, d]` buffers and
   * batched matmuls over stacked expert weights (GShard / V-MoE style).
   */
  expertCompute?: ExpertCompute;
  /** The router (default "topk", the token-choice top-k router of MoGE and V-MoE). */
  router?: RouterName;
  /** The router's own options (see its factory in `./routers/`), e.g. `{ lambda: 0.5 }`. */
  routerOptions?: Record<string, unknown>;
  /** Weight of the ST-MoE router z-loss (default 0; the usual value is 1e-3). */
  zLossWeight?: number;
  /** The model is a causal decoder: routers whose routing looks ahead (expert choice) refuse it. */
  causal?: boolean;
  /**
   * How the expert capacity C_e follows from C_f (default "tutel"; see
   * `CapacityRule` in routing.ts). Both planners, CPU and device, use it.
   */
  capacityRule?: CapacityRule;
}

/** The allowed activations. */
export const ACTIVATIONS: readonly Activation[] = ["gelu", "relu", "tanh"];
/**
 * How the experts run: "fused" (all experts in one forward and one backward
 * kernel; wasm and cpu), "looped" (tfjs ops expert after expert on exactly
 * its tokens), "batched" (`[A, slots, d]` buffers and batched matmuls), or
 * "auto" (fused on wasm and cpu, batched on webgpu).
 */
export type ExpertCompute = "auto" | "fused" | "looped" | "batched";

/** The allowed expert computations. */
export const EXPERT_COMPUTES: readonly ExpertCompute[] = ["auto", "fused", "looped", "batched"];

/** The allowed routing orders. */
export const ROUTING_ORDERS: readonly RoutingOrder[] = ["softmax-topk", "topk-softmax"];

/** Checks a {@linkcode MoeConfig}, throwing a clear error on the first bad field. */
export function validateMoeConfig(c: MoeConfig): void {
  checkInteger("inputDim", c.inputDim, 1);
  checkInteger("hiddenDim", c.hiddenDim, 1);
  if (c.outputDim !== undefined) checkInteger("outputDim", c.outputDim, 1);
  checkInteger("numExperts", c.numExperts, 1);
  checkInteger("topK", c.topK, 1, c.numExperts);
  if (!ROUTING_ORDERS.includes(c.routingOrder)) {
    throw new RangeError(
      `routingOrder = "${c.routingOrder}" is invalid: allowed are ${ROUTING_ORDERS.join(", ")}`,
    );
  }
  if (!ACTIVATIONS.includes(c.activation)) {
    throw new RangeError(
      `activation = "${c.activation}" is invalid: allowed are ${ACTIVATIONS.join(", ")}`,
    );
  }
  if (c.noiseStd !== undefined) checkNumber("noiseStd", c.noiseStd, { min: 0 });
  checkNumber("capacityFactor", c.capacityFactor === Infinity ? 0 : c.capacityFactor, { min: 0 });
  checkNumber("loadBalanceWeight", c.loadBalanceWeight, { min: 0 });
  if (c.capacityRule !== undefined && !CAPACITY_RULES.includes(c.capacityRule)) {
    throw new RangeError(
      `capacityRule = "${c.capacityRule}" is invalid: allowed are ${CAPACITY_RULES.join(", ")}`,
    );
  }
  if (c.expertCompute !== undefined && !EXPERT_COMPUTES.includes(c.expertCompute)) {
    throw new RangeError(
      `expertCompute = "${c.expertCompute}" is invalid: allowed are ${EXPERT_COMPUTES.join(", ")}`,
    );
  }
  if (c.router !== undefined && !ROUTER_NAMES.includes(c.router)) {
    throw new RangeError(
      `router = "${c.router}" is invalid: allowed are ${ROUTER_NAMES.join(", ")}`,
    );
  }
  if (c.zLossWeight !== undefined) checkNumber("zLossWeight", c.zLossWeight, { min: 0 });
}
