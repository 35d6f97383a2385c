/**
 * Pictures of routing maps: heat maps (SVG and pixels) and a dependency-free
 * PNG encoder.
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
export * from "./png.ts";
