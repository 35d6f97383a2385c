/**
 * The charts of a sweep report: one chart per figure (an SVG and its
 * Vega-Lite spec), each group's mean over seeds with its 95 % interval as a band.
 *
 * @module
 */

import { VEGA_LITE_SCHEMA, type VegaLiteSpec } from "../report/vega.ts";
import type { BandCurve } from "./sweep_curves.ts";

/** The figures that get a chart, in the order they are drawn. */
export const CHART_KEYS: readonly string[] = ["testAcc", "validPpl", "deadExperts"];

/**
 * The file name of a figure's chart: `accuracy_vs_epoch.svg`,
 * `perplexity_vs_step.svg` or `dead_experts_vs_epoch.svg`.
 *
 * @example
 * ```ts
 * import { chartFileName } from "./sweep_charts.ts";
 * chartFileName("validPpl", "step"); // "perplexity_vs_step.svg"
 * ```
 */
export function chartFileName(key: string, x: string): string {
  return `${
    key === "testAcc" ? "accuracy" : key === "validPpl" ? "perplexity" : "dead_experts"
  }_vs_${x}.svg`;
}

/**
 * A Vega-Lite spec of band curves: per group the mean over seeds as a line
 * and, where the interval exists (two seeds or more), its 95 % interval as an
 * error band under it.
 *
 * @example
 * ```ts
 * import { bandChartSpec } from "./sweep_charts.ts";
 * const spec = bandChartSpec(
 *   [{ label: "mode=moe", x: [1, 2], mean: [80, 85], lo: [78, 84], hi: [82, 86], n: [2, 2] }],
 *   "test accuracy (%)",
 *   "epoch",
 *   "test accuracy (%)",
 * );
 * console.log(Object.keys(spec)); // ["$schema", "title", ...]
 * ```
 */
export function bandChartSpec(
  curves: BandCurve[],
  title: string,
  x: string,
  y: string,
): VegaLiteSpec {
  const values = curves.flatMap((c) =>
    c.x.map((v, i) => ({ group: c.label, x: v, mean: c.mean[i], lo: c.lo[i], hi: c.hi[i] }))
  );
  const encoding = {
    x: { field: "x", type: "quantitative", title: x },
    color: { field: "group", type: "nominal", title: null },
  };
  return {
    $schema: VEGA_LITE_SCHEMA,
    title,
    width: 480,
    height: 280,
    data: { values },
    layer: [
      {
        mark: { type: "errorband", opacity: 0.25 },
        transform: [{ filter: "datum.lo !== null" }],
        encoding: {
          ...encoding,
          y: { field: "lo", type: "quantitative", title: y, scale: { zero: false } },
          y2: { field: "hi" },
        },
      },
      {
        mark: { type: "line", point: true },
        encoding: { ...encoding, y: { field: "mean", type: "quantitative", title: y } },
      },
    ],
  };
}
