/**
 * The charts of a sweep report: one SVG line chart per figure, each group's
 * mean over seeds with the two ends of its 95 % interval as thin series.
 *
 * @module
 */

import { lineChartSvg, type LineSeries } from "../report/heatmap.ts";
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
 * An SVG chart of band curves: per group a `<label> (mean)` series and,
 * where the interval exists (two seeds or more), `<label> 95% CI low` and
 * `high` series.
 *
 * @example
 * ```ts
 * import { bandChartSvg } from "./sweep_charts.ts";
 * const svg = bandChartSvg(
 *   [{ label: "mode=moe", x: [1, 2], mean: [80, 85], lo: [78, 84], hi: [82, 86], n: [2, 2] }],
 *   "test accuracy (%)",
 *   "epoch",
 *   "test accuracy (%)",
 * );
 * svg.startsWith("<svg"); // true
 * ```
 */
export function bandChartSvg(curves: BandCurve[], title: string, x: string, y: string): string {
  const series: LineSeries[] = [];
  for (const c of curves) {
    series.push({ name: `${c.label} (mean)`, points: c.x.map((v, i) => [v, c.mean[i]]) });
    for (const [end, ys] of [["low", c.lo], ["high", c.hi]] as const) {
      const pts = c.x.flatMap((v, i) => ys[i] === null ? [] : [[v, ys[i]!] as [number, number]]);
      if (pts.length) series.push({ name: `${c.label} 95% CI ${end}`, points: pts });
    }
  }
  return lineChartSvg(series, { title, xLabel: x, yLabel: y });
}
