/**
 * Pictures and pages: routing-map heat maps (SVG and PNG), Vega-Lite charts,
 * and the self-contained report.html of a run, a sweep or the invariance
 * experiment.
 *
 * @example
 * ```ts ignore
 * import * as report from "./mod.ts";
 * console.log(Object.keys(report));
 * ```
 *
 * @module
 */

export * from "./heatmap.ts";
export * from "./charts.ts";
export * from "./png.ts";
export * from "./vega.ts";
export * from "./html_report.ts";
export type * from "../analysis/sweep_report.ts";
export type * from "../analysis/sweep_groups.ts";
export type * from "../analysis/sweep_curves.ts";
export type * from "../analysis/sweep_table1.ts";
export type * from "../analysis/table1.ts";
export type * from "../analysis/sweep_runs.ts";
export type * from "../analysis/stats.ts";
