/**
 * Analysis of trained routers: IMED (the image Euclidean distance), affine
 * transforms of images, the invariance of routing maps (Table 1) and expert
 * specialization, and the statistics of seed sweeps (Student t intervals,
 * paired t-test, Wilcoxon signed-rank) with the sweep report they feed.
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
export * from "./stats.ts";
export * from "./table1.ts";
export * from "./sweep_runs.ts";
export * from "./sweep_metrics.ts";
export * from "./sweep_groups.ts";
export * from "./sweep_curves.ts";
export * from "./sweep_table1.ts";
export * from "./sweep_tables.ts";
export * from "./sweep_charts.ts";
export * from "./sweep_report.ts";
export * from "./sweep_load_maps.ts";
export * from "./sweep_learning_curve.ts";
