/**
 * moge: Mixture-of-Experts layers with the MoGE group-sparse routing
 * regularizer (Kang, Li, Tian, Huang, "Mixture of Group Experts for Learning
 * Invariant Representations", arXiv 2504.09265, 2025), on TensorFlow.js
 * (webgpu, wasm or cpu).
 *
 * MoGE lays each token's E routing scores out on an r x c map and penalizes
 * them with a group-sparse norm over overlapping h x h neighbourhoods
 * (Algorithm 1), so that similar inputs are routed to neighbouring experts.
 *
 * This entry point is the library: the regularizer, the layout, the filters,
 * the σ schedule, the MoE layer and the models. The rest has its own:
 * `@moge/moge/train` (the training loop, tasks, run directories, optimizer),
 * `@moge/moge/data` (Fashion-MNIST, MNIST, Moby Dick, augmentation),
 * `@moge/moge/analysis` (IMED, invariance, specialization) and
 * `@moge/moge/report` (heat maps, PNG).
 *
 * @example
 * ```ts
 * import { groupSparsity, sigmaSchedule, tf, useBackend } from "./mod.ts";
 *
 * await useBackend("cpu");
 * const z = tf.softmax(tf.randomNormal([4, 64])); // [N, E] routing scores
 * const sigma = sigmaSchedule({ sigmaMax: 10, sigmaMin: 1.5, gamma: 0.3, totalSteps: 1000 });
 * const r = groupSparsity(z, { sigma: sigma(0) }); // [N]
 * console.log(await r.data());
 * ```
 *
 * @module
 */

import { tf as tfjs } from "./src/deps.ts";

/**
 * The TensorFlow.js namespace (`@tensorflow/tfjs@4.22.0`, with the webgpu and
 * wasm backends registered) that moge runs on. Use it to build tensors for
 * moge, so both share one tfjs engine.
 */
export const tf: typeof tfjs = tfjs;
export type * from "./src/types.ts";
export * from "./src/backend.ts";
export * from "./src/rng.ts";
export * from "./src/moge/layout.ts";
export * from "./src/moge/filters.ts";
export * from "./src/moge/padding.ts";
export * from "./src/moge/group_norm.ts";
export * from "./src/moge/group_sparsity.ts";
export * from "./src/moge/sigma_schedule.ts";
export * from "./src/moe/routing.ts";
export * from "./src/moe/dispatch.ts";
export * from "./src/moe/moe_layer.ts";
export * from "./src/moe/routers/mod.ts";
export * from "./src/models/classifier.ts";
export * from "./src/models/vit.ts";
export * from "./src/models/lm.ts";
