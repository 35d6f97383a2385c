/**
 * Top-k routing with expert capacity and batch-prioritized routing (V-MoE,
 * Riquelme et al. 2021, as used by MoGE), planned on the CPU from the scores
 * read back once per step. `routing_webgpu.ts` makes the same plan on the
 * device, without the readback.
 *
 * The plan is plain integers: which expert each (token, choice) goes to, which
 * slot of that expert's buffer it fills, or that it was dropped. The layer
 * turns it into gathers, so no top-k or sort ever sits on the gradient tape.
 *
 * @module
 */

import { checkFinite, checkInteger, checkNumber } from "../validate.ts";

/** Where every (token, choice) of a batch goes. Arrays of choices are `[N * k]`, token-major. */
export interface RoutingPlan {
  /** Tokens in the batch. */
  N: number;
  /** Experts. */
  E: number;
  /** Choices per token. */
  k: number;
  /** Expert capacity C_e from {@linkcode expertCapacity} (N when there is no capacity limit). */
  capacity: number;
  /** Slots per expert buffer actually used this batch (<= capacity): the dispatch tensor is `[A, slots, d]`. */
  slots: number;
  /**
   * The experts that hold buffers, in order: with `compact`, only those that
   * received a token (A <= min(E, N·k)); otherwise all E.
   */
  active: Int32Array;
  /** Buffer index of each expert in `active`, or -1 (`[E]`). */
  bufferOf: Int32Array;
  /** Expert of choice j of token n at `[n * k + j]` (its j-th largest score). */
  expert: Int32Array;
  /** Flat buffer position `bufferOf[e] * slots + s` of each choice, or `A * slots` when dropped. */
  slotOfChoice: Int32Array;
  /** Token in each buffer position (`[A * slots]`), or `N` for an empty slot. */
  tokenOfSlot: Int32Array;
  /** Choice index `n * k + j` in each buffer position, or `N * k` for an empty slot. */
  choiceOfSlot: Int32Array;
  /** Tokens each expert received (after capacity), `[E]`. */
  load: Int32Array;
  /** Tokens that chose each expert (before capacity), `[E]`. */
  demand: Int32Array;
  /** Number of (token, choice) pairs dropped because their expert was full. */
  dropped: number;
}

/**
 * How the expert capacity C_e is computed from the capacity factor C_f.
 *
 * - `"tutel"` (default): C_e = k · floor(C_f · ceil(N / E)), Tutel's
 *   formula (`top_k * int(capacity_factor * ceil(num_tokens / num_experts))`).
 * - `"vmoe"`: C_e = ceil(k · N · C_f / E) rounded up to a multiple of 4,
 *   V-MoE's `compute_capacity` (vmoe/nn/routing.py, with `multiple_of = 4`).
 *
 * Both are then clamped to [1, N] here (see {@linkcode expertCapacity}).
 */
export type CapacityRule = "tutel" | "vmoe";

/** The allowed capacity rules. */
export const CAPACITY_RULES: readonly CapacityRule[] = ["tutel", "vmoe"];

/**
 * Expert capacity C_e: by default Tutel's k · floor(C_f · ceil(N / E)); with
 * `rule = "vmoe"`, V-MoE's ceil(k · N · C_f / E) rounded up to a multiple of 4.
 * `capacityFactor` 0 or Infinity means no limit (C_e = N).
 *
 * The result is clamped to [1, N]:
 * - at most N, because a token picks an expert at most once, so no expert can
 *   receive more than N choices (a larger buffer never fills);
 * - at least 1, unlike Tutel, whose formula gives 0 when C_f · ceil(N/E) < 1
 *   (e.g. N = 7, E = 16, k = 1, C_f = 0.5) and then drops every token: the
 *   layer's output and the gradients of its router and experts would all be
 *   zero, so training would run while the MoE layer learns nothing. A positive
 *   C_f asks for some capacity; with 1, each expert still takes its
 *   highest-priority token. (V-MoE's rounding never gives 0 for C_f > 0.)
 *
 * @example
 * ```ts
 * import { expertCapacity } from "./routing.ts";
 * expertCapacity(200, 64, 1, 4); // 16 = 1 · floor(4 · ceil(200 / 64))
 * expertCapacity(200, 64, 1, 4, "vmoe"); // 16 = ceil(1 · 200 · 4 / 64) = 13, up to a multiple of 4
 * expertCapacity(7, 16, 1, 0.5); // 1: Tutel's floor(0.5 · 1) = 0, clamped to 1
 * ```
 */
export function expertCapacity(
  N: number,
  E: number,
  k: number,
  capacityFactor: number,
  rule: CapacityRule = "tutel",
): number {
  checkInteger("N (tokens)", N, 1);
  checkInteger("E (experts)", E, 1);
  checkInteger("k (top-k)", k, 1, E);
  checkNumber("capacityFactor", capacityFactor === Infinity ? 0 : capacityFactor, { min: 0 });
  if (!CAPACITY_RULES.includes(rule)) {
    throw new RangeError(
      `capacity rule = "${rule}" is invalid: allowed are ${CAPACITY_RULES.join(", ")}`,
    );
  }
  if (capacityFactor === 0 || capacityFactor === Infinity) return N;
  const raw = rule === "tutel"
    ? k * Math.floor(capacityFactor * Math.ceil(N / E))
    : 4 * Math.ceil(Math.ceil((k * N * capacityFactor) / E) / 4);
  return Math.max(1, Math.min(N, raw));
}

/** Options of {@linkcode planRouting}. */
export interface PlanOptions {
  /** Choices per token (top-k), 1 <= k <= E. */
  k: number;
  /** Capacity factor C_f (0 or Infinity: no limit). */
  capacityFactor: number;
  /** How C_e follows from C_f (default "tutel"; see {@linkcode CapacityRule}). */
  capacityRule?: CapacityRule;
  /** Round the buffer size up to a multiple of this (fewer distinct shapes for webgpu). Default 1. */
  slotMultiple?: number;
  /** Give buffers only to experts that received a token (default false: all E). */
  compact?: boolean;
}

/**
 * Plans top-k routing with batch-prioritized capacity (V-MoE): each token's
 * k experts are its k largest scores (ties: lower expert index first); tokens are ranked by their largest
 * score, highest first (ties: lower token index first), and fill expert slots
 * in that order, all first choices before any second choice. A choice whose
 * expert is full is dropped.
 *
 * @param scores the `[N, E]` selection scores, row-major (probabilities or
 *   logits: only their order matters), noise included when training
 *
 * @example
 * ```ts
 * import { planRouting } from "./routing.ts";
 * // 3 tokens, 2 experts, top-1, capacity 1: token 1 (score .9) beats token 0 (.8) for expert 0.
 * const plan = planRouting(new Float32Array([.8, .2, .9, .1, .3, .7]), 3, 2, { k: 1, capacityFactor: 0.5 });
 * plan.expert; // Int32Array [0, 0, 1]
 * plan.dropped; // 1 (token 0)
 * ```
 */
export function planRouting(
  scores: ArrayLike<number>,
  N: number,
  E: number,
  options: PlanOptions,
): RoutingPlan {
  const { k, capacityFactor, capacityRule = "tutel", slotMultiple = 1, compact = false } = options;
  checkInteger("E (experts)", E, 1);
  checkInteger("k (top-k)", k, 1, E);
  checkInteger("slotMultiple", slotMultiple, 1);
  if (scores.length !== N * E) {
    throw new RangeError(`routing scores have ${scores.length} values, expected N * E = ${N * E}`);
  }
  checkFinite("routing scores", scores);
  const capacity = expertCapacity(N, E, k, capacityFactor, capacityRule);

  // Top-k per token (k is small: partial selection).
  const expert = new Int32Array(N * k);
  const best = new Float64Array(N);
  const taken = new Uint8Array(E);
  for (let n = 0; n < N; n++) {
    taken.fill(0);
    for (let j = 0; j < k; j++) {
      let arg = -1;
      let max = -Infinity;
      for (let e = 0; e < E; e++) {
        const s = scores[n * E + e];
        if (!taken[e] && (arg < 0 || s > max)) {
          max = s;
          arg = e;
        }
      }
      taken[arg] = 1;
      expert[n * k + j] = arg;
      if (j === 0) best[n] = max;
    }
  }

  // Batch priority: by largest score, descending; stable on token index.
  const order = Array.from({ length: N }, (_, n) => n).sort((a, b) => best[b] - best[a] || a - b);
  const position = new Int32Array(N * k).fill(-1);
  const demand = new Int32Array(E);
  const load = new Int32Array(E);
  let dropped = 0;
  for (let j = 0; j < k; j++) {
    for (const n of order) {
      const e = expert[n * k + j];
      demand[e]++;
      if (load[e] < capacity) position[n * k + j] = load[e]++;
      else dropped++;
    }
  }

  return assemblePlan(N, E, k, capacity, expert, position, load, demand, dropped, {
    compact,
    slotMultiple,
  });
}

/**
 * Builds the buffer layout of a {@linkcode RoutingPlan} from each choice's
 * expert and position in that expert's buffer (-1: not routed).
 *
 * @example
 * ```ts
 * import { assemblePlan } from "./routing.ts";
 * // 2 tokens, 1 choice each, both to expert 1 (slots 0 and 1).
 * const plan = assemblePlan(2, 2, 1, 2, new Int32Array([1, 1]), new Int32Array([0, 1]),
 *   new Int32Array([0, 2]), new Int32Array([0, 2]), 0, {});
 * plan.tokenOfSlot; // Int32Array [2, 2, 0, 1]
 * ```
 */
export function assemblePlan(
  N: number,
  E: number,
  k: number,
  capacity: number,
  expert: Int32Array,
  position: Int32Array,
  load: Int32Array,
  demand: Int32Array,
  dropped: number,
  options: { compact?: boolean; slotMultiple?: number },
): RoutingPlan {
  const { compact = false, slotMultiple = 1 } = options;
  let maxLoad = 0;
  for (let e = 0; e < E; e++) maxLoad = Math.max(maxLoad, load[e]);
  const slots = Math.min(capacity, Math.ceil(Math.max(1, maxLoad) / slotMultiple) * slotMultiple);
  const bufferOf = new Int32Array(E).fill(-1);
  const active: number[] = [];
  for (let e = 0; e < E; e++) {
    if (!compact || load[e] > 0) {
      bufferOf[e] = active.length;
      active.push(e);
    }
  }
  const A = active.length;
  const slotOfChoice = new Int32Array(N * k).fill(A * slots);
  const tokenOfSlot = new Int32Array(A * slots).fill(N);
  const choiceOfSlot = new Int32Array(A * slots).fill(N * k);
  for (let c = 0; c < N * k; c++) {
    if (position[c] < 0) continue;
    const flat = bufferOf[expert[c]] * slots + position[c];
    slotOfChoice[c] = flat;
    tokenOfSlot[flat] = Math.floor(c / k);
    choiceOfSlot[flat] = c;
  }
  return {
    N,
    E,
    k,
    capacity,
    slots,
    active: Int32Array.from(active),
    bufferOf,
    expert,
    slotOfChoice,
    tokenOfSlot,
    choiceOfSlot,
    load,
    demand,
    dropped,
  };
}
