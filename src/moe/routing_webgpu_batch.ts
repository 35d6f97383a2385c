/**
 * A device routing plan (`routing_webgpu.ts`) as what the MoE layer consumes:
 * the row routes for `routeRows`, the gates, and a routed batch in the shape
 * `MoeLayer.apply` reads, so a webgpu training step can route inside its one
 * taped forward pass with no readback.
 *
 * @module
 */

import { tf } from "../deps.ts";
import type { Tensor2D } from "../types.ts";
import type { RowRoute } from "./dispatch.ts";
import {
  type DevicePlanOptions,
  type DeviceRoutingPlan,
  planRoutingWebGPU,
  routingCountsWebGPU,
} from "./routing_webgpu.ts";

export type { Tensor2D } from "../types.ts";
export type { RowRoute } from "./dispatch.ts";
export type { DevicePlanOptions, DeviceRoutingPlan } from "./routing_webgpu.ts";

/**
 * The row routes of a device plan for `routeRows` (`dispatch.ts`): `dispatch`
 * moves token rows `[N, d]` into the `[E * slots, d]` buffers, `combine` moves
 * expert output rows back to `[N * k, d_out]` choice rows. They share the
 * plan's tensors (dispose the plan, not the routes).
 *
 * @example
 * ```ts
 * import { tf } from "../deps.ts";
 * import { disposeDevicePlan, planRoutingWebGPU } from "./routing_webgpu.ts";
 * import { deviceRoutes } from "./routing_webgpu_batch.ts";
 * import { routeRows } from "./dispatch.ts";
 * if (tf.getBackend() === "webgpu") {
 *   const x = tf.tensor2d([[1, 1], [2, 2], [3, 3]]); // [N, d]
 *   const plan = planRoutingWebGPU(tf.tensor2d([[.8, .2], [.9, .1], [.3, .7]]), {
 *     k: 1,
 *     capacityFactor: 0.5,
 *   });
 *   const buffers = routeRows(x, deviceRoutes(plan).dispatch); // [[2, 2], [3, 3]]: E = 2 buffers of 1 slot
 *   disposeDevicePlan(plan);
 * }
 * ```
 */
export function deviceRoutes(plan: DeviceRoutingPlan): { dispatch: RowRoute; combine: RowRoute } {
  return {
    dispatch: { forward: plan.tokenOfSlot, backward: plan.slotOfChoice, fan: plan.k },
    combine: { forward: plan.slotOfChoice, backward: plan.choiceOfSlot, fan: 1 },
  };
}

/**
 * The gates of the chosen experts, `[N, k]`, differentiable in the logits:
 * "softmax-topk" (vision, eq. 1-4): softmax(noisy logits) at the chosen
 * experts, not renormalized; "topk-softmax" (language models): softmax over
 * the k chosen noisy logits. The same arithmetic as `MoeLayer.apply`.
 *
 * @param noisy router logits with the routing noise added, `[N, E]`
 * @param chosen one-hot of the choices, `[N * k, E]` (a plan's `chosen`)
 *
 * @example
 * ```ts
 * import { tf } from "../deps.ts";
 * import { routingGates } from "./routing_webgpu_batch.ts";
 * const chosen = tf.tensor2d([[0, 1], [1, 0]]); // token 0 chose expert 1, token 1 expert 0
 * const g = routingGates(tf.tensor2d([[0, 0], [1, 0]]), chosen, 1, "softmax-topk"); // [[.5], [.731]]
 * ```
 */
export function routingGates(
  noisy: Tensor2D,
  chosen: Tensor2D,
  k: number,
  order: "softmax-topk" | "topk-softmax",
): Tensor2D {
  const [N, E] = noisy.shape;
  return tf.tidy(() => {
    const onehot = chosen.reshape([N, k, E]); // [N, k, E]
    if (order === "softmax-topk") {
      return tf.sum(tf.mul(tf.softmax(noisy).expandDims(1), onehot), 2) as Tensor2D; // [N, k]
    }
    return tf.softmax(tf.sum(tf.mul(noisy.expandDims(1), onehot), 2)) as Tensor2D; // [N, k]
  });
}

/**
 * A device-planned batch in the shape `MoeLayer.apply` reads from a routed
 * batch (`plan.N/E/k/slots/active`, `dispatch`, `combine`, `chosen`,
 * `noise`; no `packed`, so the layer runs its "batched" experts), plus the
 * optional `[2, E]` counts for a `RoutingStatsLog`. Dispose it with
 * {@linkcode disposeDeviceRouted} after the backward pass.
 */
export interface DeviceRoutedBatch {
  /** The plan's sizes; all E experts hold a buffer of `slots = capacity` rows. */
  plan: {
    N: number;
    E: number;
    k: number;
    capacity: number;
    slots: number;
    /** 0 .. E-1. */
    active: Int32Array;
  };
  /** Tokens into expert buffers. */
  dispatch: RowRoute;
  /** Expert buffer rows back to (token, choice) rows. */
  combine: RowRoute;
  /** One-hot of the chosen experts, `[N * k, E]`. */
  chosen: Tensor2D;
  /** The routing noise that was added to the logits, or null. */
  noise: Tensor2D | null;
  /** Demand and load `[2, E]` int32, when asked for (`counts: true`), else null. */
  counts: Tensor2D | null;
}

/**
 * Plans a batch on the device and packs it as a {@linkcode DeviceRoutedBatch}
 * (frees the plan's intermediate tensors). `selection` is the router logits
 * plus `noise` (the caller's, kept in the batch for the gates and the loss).
 *
 * @example
 * ```ts
 * import { tf } from "../deps.ts";
 * import { deviceRoutedBatch, disposeDeviceRouted } from "./routing_webgpu_batch.ts";
 * if (tf.getBackend() === "webgpu") {
 *   const logits = tf.tensor2d([[.8, .2], [.9, .1], [.3, .7]]);
 *   const routed = deviceRoutedBatch(logits, null, { k: 1, capacityFactor: 0.5, counts: true });
 *   console.log(routed.plan.slots); // 1
 *   disposeDeviceRouted(routed);
 * }
 * ```
 */
export function deviceRoutedBatch(
  selection: Tensor2D,
  noise: Tensor2D | null,
  options: DevicePlanOptions & { counts?: boolean },
): DeviceRoutedBatch {
  const plan = planRoutingWebGPU(selection, options);
  const counts = options.counts ? routingCountsWebGPU(plan) : null;
  const { N, E, k, capacity, slots } = plan;
  tf.dispose([plan.expert, plan.priority]);
  return {
    plan: { N, E, k, capacity, slots, active: Int32Array.from({ length: E }, (_, e) => e) },
    ...deviceRoutes(plan),
    chosen: plan.chosen,
    noise,
    counts,
  };
}

/**
 * Frees a {@linkcode DeviceRoutedBatch} (its counts too, unless already
 * handed to a `RoutingStatsLog`, which disposes them).
 *
 * @example
 * ```ts
 * import { tf } from "../deps.ts";
 * import { deviceRoutedBatch, disposeDeviceRouted } from "./routing_webgpu_batch.ts";
 * if (tf.getBackend() === "webgpu") {
 *   disposeDeviceRouted(deviceRoutedBatch(tf.tensor2d([[1, 0]]), null, { k: 1, capacityFactor: 1 }));
 * }
 * ```
 */
export function disposeDeviceRouted(r: DeviceRoutedBatch): void {
  tf.dispose([r.dispatch.forward, r.dispatch.backward, r.combine.backward, r.chosen]);
  if (r.noise) r.noise.dispose();
  if (r.counts) r.counts.dispose();
}
