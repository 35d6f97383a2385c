/**
 * CPU routing plans for the routers: token choice (top-k with capacity and
 * batch-prioritized routing, by `planRouting` of `../routing.ts`) and expert
 * choice (each expert fills exactly C slots with its top-C tokens; Zhou et al.
 * 2022, flaxformer `ExpertsChooseMaskedRouter`), both as a
 * {@linkcode RoutingPlan} that the layer's dispatch already understands.
 *
 * @module
 */

import { assemblePlan, expertCapacity, planRouting } from "../routing.ts";
import { checkFinite, checkInteger, checkNumber } from "../../validate.ts";
import type { RouterConfig, RouterPlan } from "./router.ts";

/**
 * A token-choice plan: top-k of `scores` per token, V-MoE capacity and
 * batch-prioritized routing (by `planRouting`). With `keep` (`[N * k]`), a
 * choice whose entry is 0 is not a choice this batch (`valid` 0: it takes no
 * capacity, is not counted as demand or as dropped, and has gate 0), as
 * X-MoE's random second-expert policy needs; the others fill capacity in the
 * same batch-priority order.
 *
 * @param scores `[N * E]` selection scores (only their order matters)
 *
 * @example
 * ```ts
 * import { tokenChoicePlan } from "./plan.ts";
 * const { plan } = tokenChoicePlan(new Float32Array([.8, .2, .9, .1]), 2, 2,
 *   { inputDim: 1, numExperts: 2, topK: 1, capacityFactor: 0 });
 * plan.expert; // Int32Array [0, 0]
 * ```
 */
export function tokenChoicePlan(
  scores: ArrayLike<number>,
  N: number,
  E: number,
  config: RouterConfig,
  keep?: Uint8Array,
): RouterPlan {
  const k = config.topK;
  const options = { compact: config.compact, slotMultiple: config.slotMultiple };
  if (!keep) {
    const plan = planRouting(scores, N, E, {
      k,
      capacityFactor: config.capacityFactor,
      capacityRule: config.capacityRule,
      ...options,
    });
    return { plan, valid: new Uint8Array(N * k).fill(1) };
  }
  if (keep.length !== N * k) {
    throw new RangeError(`keep has ${keep.length} entries, expected N * k = ${N * k}`);
  }
  const { expert } = planRouting(scores, N, E, { k, capacityFactor: 0 }); // top-k, no capacity
  const capacity = expertCapacity(N, E, k, config.capacityFactor, config.capacityRule);
  const best = (n: number) => scores[n * E + expert[n * k]];
  const order = Array.from({ length: N }, (_, n) => n).sort((a, b) => best(b) - best(a) || a - b);
  const position = new Int32Array(N * k).fill(-1);
  const load = new Int32Array(E);
  const demand = new Int32Array(E);
  let dropped = 0;
  for (let j = 0; j < k; j++) {
    for (const n of order) {
      const c = n * k + j;
      if (!keep[c]) continue;
      demand[expert[c]]++;
      if (load[expert[c]] < capacity) position[c] = load[expert[c]]++;
      else dropped++;
    }
  }
  const plan = assemblePlan(N, E, k, capacity, expert, position, load, demand, dropped, options);
  return { plan, valid: Uint8Array.from(keep, (v) => (v ? 1 : 0)) };
}

/**
 * Expert-choice capacity `C = max(1, min(N, max(C_min, round(cf·N/E))))` (flaxformer
 * `moe_layers.py:170-178`; the paper's k = n·c/e). Rounds half up (JS
 * `Math.round`), where Python's `round` rounds half to even.
 *
 * @example
 * ```ts
 * import { expertChoiceCapacity } from "./plan.ts";
 * expertChoiceCapacity(4, 3, 1.5, 1); // round(2) = 2
 * expertChoiceCapacity(4, 3, 1.5, 4); // 4: the minimum applies
 * ```
 */
export function expertChoiceCapacity(
  N: number,
  E: number,
  capacityFactor: number,
  minCapacity: number,
): number {
  checkInteger("N (tokens)", N, 1);
  checkInteger("E (experts)", E, 1);
  checkNumber("capacityFactor", capacityFactor, { min: 0, exclusiveMin: true });
  checkInteger("minCapacity", minCapacity, 0);
  return Math.max(1, Math.min(N, Math.max(minCapacity, Math.round(capacityFactor * N / E))));
}

/**
 * Plans expert-choice routing: expert e takes the C tokens with the largest
 * `S[n, e]` (ties: lower token index first, as `tf.topk`), so every expert
 * fills exactly C slots and a token gets 0..E experts. In the plan each token
 * has `k = max_n (experts that picked n)` choices (at least 1), its real
 * choices first, in expert order; the rest are padding (`valid` 0, never
 * routed). Nothing is dropped (`dropped` 0; `demand` = `load` = C).
 *
 * @param S `[N * E]` affinities `softmax(L)` row-major
 *
 * @example
 * ```ts
 * import { expertChoicePlan } from "./plan.ts";
 * // EC-2 (docs/routers.md): e0 picks token 0, e1 picks token 3; tokens 1 and 2 are left behind.
 * const S = [.8808, .1192, .7311, .2689, .3775, .6225, .2689, .7311];
 * const { plan, valid } = expertChoicePlan(S, 4, 2, { capacityFactor: 0.5, minCapacity: 1 });
 * plan.capacity; // 1
 * ```
 */
export function expertChoicePlan(
  S: ArrayLike<number>,
  N: number,
  E: number,
  options: {
    capacityFactor: number;
    minCapacity: number;
    compact?: boolean;
    slotMultiple?: number;
  },
): RouterPlan {
  if (S.length !== N * E) {
    throw new RangeError(`expert-choice scores have ${S.length} values, expected N * E = ${N * E}`);
  }
  checkFinite("expert-choice scores", S);
  const C = expertChoiceCapacity(N, E, options.capacityFactor, options.minCapacity);
  const picks: number[][] = Array.from({ length: N }, () => []); // experts of each token
  const slotOf: number[][] = Array.from({ length: N }, () => []); // slot of each pick
  const tokens = Array.from({ length: N }, (_, n) => n);
  for (let e = 0; e < E; e++) {
    const order = tokens.slice().sort((a, b) => S[b * E + e] - S[a * E + e] || a - b);
    for (let c = 0; c < C; c++) {
      picks[order[c]].push(e);
      slotOf[order[c]].push(c);
    }
  }
  let k = 1;
  for (const p of picks) k = Math.max(k, p.length);
  const expert = new Int32Array(N * k);
  const position = new Int32Array(N * k).fill(-1);
  const valid = new Uint8Array(N * k);
  for (let n = 0; n < N; n++) {
    picks[n].forEach((e, j) => {
      expert[n * k + j] = e;
      position[n * k + j] = slotOf[n][j];
      valid[n * k + j] = 1;
    });
  }
  const load = new Int32Array(E).fill(C);
  const plan = assemblePlan(N, E, k, C, expert, position, load, load.slice(), 0, options);
  return { plan, valid };
}

/**
 * The token × expert combine matrix `W[n, e] = Σ_{j: expert(n,j) = e, routed} g[n, j]`
 * of a plan and its gates (flaxformer's combine tensor summed over slots):
 * the weight of expert e's output in token n's output.
 *
 * @param gates `[N * k]` gate values, token-major
 * @returns `[N * E]` row-major
 *
 * @example
 * ```ts
 * import { combineMatrix, tokenChoicePlan } from "./plan.ts";
 * const r = tokenChoicePlan([.8, .2], 1, 2, { inputDim: 1, numExperts: 2, topK: 1, capacityFactor: 0 });
 * combineMatrix(r, [.8]); // Float64Array [.8, 0]
 * ```
 */
export function combineMatrix(r: RouterPlan, gates: ArrayLike<number>): Float64Array {
  const { N, E, k, slotOfChoice, expert, active, slots } = r.plan;
  const out = new Float64Array(N * E);
  for (let c = 0; c < N * k; c++) {
    if (!r.valid[c] || slotOfChoice[c] === active.length * slots) continue;
    out[Math.floor(c / k) * E + expert[c]] += gates[c];
  }
  return out;
}
