/**
 * Routing statistics shared by every router: load per expert, dead experts,
 * dropped choices and left-behind tokens (flaxformer's
 * `fraction_tokens_left_behind`), mean gate and router confidence
 * (flaxformer's `router_confidence`, the total gate of a token), and the
 * routing entropy (mean over tokens of the entropy of z's row).
 *
 * @module
 */

import type { RouterDecision, RouterOutput, RouterPlan } from "./router.ts";

/** Routing statistics of one batch. */
export interface RouterStats {
  /** Tokens each expert processed, `[E]`. */
  load: Int32Array;
  /** Experts that processed no token. */
  deadExperts: number;
  /** Real (token, choice) pairs dropped because their expert was full. */
  dropped: number;
  /** `dropped` over all real choices. */
  dropRate: number;
  /** Tokens that reached no expert (zero MoE output; the residual carries them). */
  leftBehind: number;
  /** `leftBehind / N`. */
  leftBehindRate: number;
  /** Mean gate over routed (token, expert) pairs. */
  meanGate: number;
  /** Mean over tokens of the total gate of the routed choices (router confidence). */
  confidence: number;
  /** Mean over tokens of the entropy (nats) of z's row, normalized to sum 1. */
  entropy: number;
}

/**
 * Statistics from a plan, its gates (`[N * k]`) and score map z (`[N * E]`).
 *
 * @example
 * ```ts
 * import { statsOf } from "./stats.ts";
 * import { tokenChoicePlan } from "./plan.ts";
 * const r = tokenChoicePlan([.8, .2, .6, .4], 2, 2, { inputDim: 1, numExperts: 2, topK: 1, capacityFactor: 0 });
 * statsOf(r, [.8, .6], [.8, .2, .6, .4]).deadExperts; // 1
 * ```
 */
export function statsOf(
  r: RouterPlan,
  gates: ArrayLike<number>,
  z: ArrayLike<number>,
): RouterStats {
  const { N, E, k, slotOfChoice, active, slots, load, dropped } = r.plan;
  const empty = active.length * slots;
  let real = 0;
  let routedPairs = 0;
  let gateSum = 0;
  let leftBehind = 0;
  for (let n = 0; n < N; n++) {
    let any = false;
    for (let j = 0; j < k; j++) {
      const c = n * k + j;
      if (!r.valid[c]) continue;
      real++;
      if (slotOfChoice[c] === empty) continue;
      any = true;
      routedPairs++;
      gateSum += gates[c];
    }
    if (!any) leftBehind++;
  }
  let deadExperts = 0;
  for (let e = 0; e < E; e++) if (load[e] === 0) deadExperts++;
  let entropy = 0;
  for (let n = 0; n < N; n++) {
    let sum = 0;
    for (let e = 0; e < E; e++) sum += z[n * E + e];
    let h = 0;
    for (let e = 0; e < E; e++) {
      const p = z[n * E + e] / sum;
      if (p > 0) h -= p * Math.log(p);
    }
    entropy += h / N;
  }
  return {
    load,
    deadExperts,
    dropped,
    dropRate: real > 0 ? dropped / real : 0,
    leftBehind,
    leftBehindRate: leftBehind / N,
    meanGate: routedPairs > 0 ? gateSum / routedPairs : 0,
    confidence: gateSum / N,
    entropy,
  };
}

/**
 * {@linkcode statsOf} for a decision and its forward pass (reads gates and z back).
 *
 * @example
 * ```ts
 * import { tf } from "../../deps.ts";
 * import { createRouter, disposeDecision, route, routerStats } from "./mod.ts";
 * const router = createRouter("topk", { inputDim: 4, numExperts: 3, topK: 1, capacityFactor: 0 });
 * const input = { x: tf.randomNormal([6, 4]) as tf.Tensor2D };
 * const d = await route(router, input, { training: false });
 * const out = router.forward(input, d);
 * console.log((await routerStats(d, out)).entropy);
 * disposeDecision(d);
 * ```
 */
export async function routerStats(d: RouterDecision, out: RouterOutput): Promise<RouterStats> {
  const [gates, z] = await Promise.all([out.gates.data(), out.z.data()]);
  return statsOf(d, gates, z);
}
