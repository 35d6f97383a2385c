/**
 * A routed batch ({@linkcode RoutedBatch}): the plan (a CPU plan, or a
 * device plan's sizes), the row routes that move tokens into expert buffers
 * and back, the one-hot of the choices and the routing noise.
 *
 * @module
 */

import { tf } from "../deps.ts";
import type { Tensor2D } from "../types.ts";
import { type RowRoute, rowRoute } from "./dispatch.ts";
import type { RoutingPlan } from "./routing.ts";
import { disposeDecision, type RouterDecision, type SelectedLogits } from "./routers/mod.ts";

/**
 * The plan of a routed batch: the sizes every path has, and the CPU
 * planner's per-choice arrays and statistics when the plan was made on the
 * CPU (`route` / `routeSync`); a device plan (`routeDevice`) has only the
 * sizes, its indices live in the batch's tensors.
 */
export type RoutedPlan =
  & Pick<RoutingPlan, "N" | "E" | "k" | "capacity" | "slots" | "active">
  & Partial<Omit<RoutingPlan, "N" | "E" | "k" | "capacity" | "slots" | "active">>;

/** One routed batch: the plan, its index tensors, and the noise used. Dispose after the step. */
export interface RoutedBatch<P extends RoutedPlan = RoutedPlan> {
  /** The routing plan: sizes always, the CPU planner's arrays when planned on the CPU. */
  plan: P;
  /** Tokens into expert buffers. */
  dispatch: RowRoute;
  /** Expert buffer rows back to (token, choice) rows. */
  combine: RowRoute;
  /**
   * The "looped" layout: the routed tokens packed expert after expert with
   * no padding (`experts[j]` gets `sizes[j]` rows); absent for "batched".
   */
  packed?: { dispatch: RowRoute; combine: RowRoute; experts: number[]; sizes: number[] };
  /** One-hot of the chosen experts, `[N * k, E]`. */
  chosen: Tensor2D;
  /** Routing noise added to the logits (`[N, E]`), or null at eval. */
  noise: Tensor2D | null;
  /**
   * The router's decision (plan, which choices are real, one-hot, noise);
   * `chosen` and `noise` above are its tensors. Absent for a batch routed
   * elsewhere (top-k only: every choice is real).
   */
  decision?: RouterDecision;
  /**
   * Demand and load per expert, int32 `[2, E]` on the device (`routeDevice`
   * with `stats`), else null. Hand it to a `RoutingStatsLog` (which takes
   * ownership) or it is freed with the batch.
   */
  counts?: Tensor2D | null;
  /**
   * The clean router logits the device plan was made from (`routeDevice`),
   * for the forward pass to reuse; a CPU-planned batch keeps them in
   * `decision`.
   */
  logits?: SelectedLogits | null;
}

/** A batch routed on the CPU (`route`, `routeSync`): its plan has every field. */
export type HostRoutedBatch = RoutedBatch<RoutingPlan>;

/** Frees the tensors of a {@linkcode RoutedBatch}. */
export function disposeRouted(r: RoutedBatch): void {
  if (r.decision) disposeDecision(r.decision);
  tf.dispose([r.dispatch.forward, r.dispatch.backward, r.combine.forward, r.combine.backward]);
  if (r.packed) {
    const { dispatch, combine } = r.packed;
    tf.dispose([dispatch.forward, dispatch.backward, combine.forward, combine.backward]);
  }
  tf.dispose(r.chosen);
  if (r.noise) r.noise.dispose();
  if (r.counts) r.counts.dispose();
  if (r.logits) r.logits.tensor.dispose();
}

/**
 * A CPU-planned plan (`route` / `routeSync`), or a clear error for a device
 * plan (which keeps its per-choice indices and counts on the device).
 *
 * @example
 * ```ts
 * import { hostPlan } from "./moe_layer.ts";
 * const sizes = { N: 1, E: 2, k: 1, capacity: 1, slots: 1, active: Int32Array.of(0, 1) };
 * try {
 *   hostPlan(sizes, "stats");
 * } catch (e) {
 *   console.log((e as Error).message); // "stats: the batch was routed on the device ..."
 * }
 * ```
 */
export function hostPlan(plan: RoutedPlan, what: string): RoutingPlan {
  if (plan.expert === undefined || plan.load === undefined) {
    throw new Error(
      `${what}: the batch was routed on the device (routeDevice), which keeps no CPU plan;` +
        " read its counts through a RoutingStatsLog",
    );
  }
  return plan as RoutingPlan;
}

/**
 * The "looped" layout of a plan: routed choices packed expert after expert
 * (slot order within each expert), with the row routes that move tokens in
 * and results back.
 *
 * @example
 * ```ts
 * import { useBackend } from "../backend.ts";
 * await useBackend("cpu");
 * import { planRouting } from "./routing.ts";
 * import { packedRoutes } from "./routed_batch.ts";
 * const plan = planRouting(new Float32Array([1, 0, 0, 1]), 2, 2, { k: 1, capacityFactor: 0 });
 * console.log(packedRoutes(plan).sizes); // [1, 1]
 * ```
 */
export function packedRoutes(
  plan: RoutingPlan,
): { dispatch: RowRoute; combine: RowRoute; experts: number[]; sizes: number[] } {
  const { N, k, slots, active, bufferOf, load, tokenOfSlot, choiceOfSlot } = plan;
  const experts: number[] = [];
  const sizes: number[] = [];
  const token: number[] = [];
  const choice: number[] = [];
  for (const e of active) {
    if (load[e] === 0) continue;
    experts.push(e);
    sizes.push(load[e]);
    for (let s = 0; s < load[e]; s++) {
      token.push(tokenOfSlot[bufferOf[e] * slots + s]);
      choice.push(choiceOfSlot[bufferOf[e] * slots + s]);
    }
  }
  const R = token.length;
  const rowOfChoice = new Int32Array(N * k).fill(R); // R: dropped -> zero row
  choice.forEach((c, r) => (rowOfChoice[c] = r));
  return {
    dispatch: rowRoute(Int32Array.from(token), rowOfChoice, k),
    combine: rowRoute(rowOfChoice, Int32Array.from(choice), 1),
    experts,
    sizes,
  };
}
