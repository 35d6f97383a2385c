/**
 * Analysis of trained routers: IMED (the image Euclidean distance), affine
 * transforms of images, the invariance of routing maps (Table 1) and expert
 * specialization.
 *
 * @example
 * ```ts
 * import { meanImed } from "./mod.ts";
 * const z = new Float32Array([0.25, 0.25, 0.25, 0.25]);
 * console.log(meanImed(z, z, { rows: 2, cols: 2 }).mean); // 0
 * ```
 *
 * @module
 */

export * from "./imed.ts";
export * from "./affine.ts";
export * from "./invariance.ts";
export * from "./specialization.ts";
