/**
 * The charts of a sweep report: one chart per figure (an SVG and its
 * Vega-Lite spec), each group's mean over seeds with its 95 % interval as a band.
 *
 * @module
 */

import { heatmapSpec } from "../report/heatmap.ts";
import { VEGA_LITE_SCHEMA, type VegaLiteSpec } from "../report/vega.ts";
import type { BandCurve } from "./sweep_curves.ts";
import { CURVE_X, METRICS } from "./sweep_metrics.ts";
import type { SweepReport } from "./sweep_report.ts";

/** The figures that get a chart, in the order they are drawn. */
export const CHART_KEYS: readonly string[] = ["testAcc", "validPpl", "testReg", "deadExperts"];

const FILE_STEM: Record<string, string> = {
  testAcc: "accuracy",
  validPpl: "perplexity",
  testReg: "reg",
  deadExperts: "dead_experts",
};

/**
 * The file name of a figure's chart: `accuracy_vs_epoch.svg`,
 * `perplexity_vs_step.svg`, `reg_vs_epoch.svg` or `dead_experts_vs_epoch.svg`.
 *
 * @example
 * ```ts
 * import { chartFileName } from "./sweep_charts.ts";
 * chartFileName("validPpl", "step"); // "perplexity_vs_step.svg"
 * ```
 */
export function chartFileName(key: string, x: string): string {
  return `${FILE_STEM[key] ?? key}_vs_${x}.svg`;
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
    x: {
      field: "x",
      type: "quantitative",
      title: x,
      // Whole-number x (epochs, steps) gets whole-number ticks.
      ...(values.every((v) => Number.isInteger(v.x)) ? { axis: { tickMinStep: 1 } } : {}),
    },
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

/** A chart of a sweep report: the figure, its file name, title and spec. */
export interface SweepChart {
  /** Figure key, e.g. "testAcc". */
  key: string;
  /** File name of its SVG, e.g. "accuracy_vs_epoch.svg" (the spec is `.vl.json`). */
  file: string;
  /** Title. */
  title: string;
  /** The band chart ({@linkcode bandChartSpec}). */
  spec: VegaLiteSpec;
}

/**
 * The charts of a report, one per figure of {@linkcode CHART_KEYS} that has
 * curves: each group's mean over seeds with its 95 % band, over epochs (over
 * steps when the sweep has LM runs); then, when the report has load maps, one
 * panel per classifier group of its test-load share per map position.
 *
 * @param report the report (its groups and curves)
 * @returns the charts, in {@linkcode CHART_KEYS} order
 *
 * @example
 * ```ts
 * import { sweepCharts } from "./sweep_charts.ts";
 * const charts = sweepCharts({
 *   sweepDir: "runs/x", date: "", unfinished: [], pairs: [], table1: [],
 *   groups: [{ label: "all runs", model: "classifier", config: {}, seeds: [0], runs: ["a"], metrics: {} }],
 *   curves: { testAcc: [{ label: "all runs", x: [1], mean: [80], lo: [null], hi: [null], n: [1] }] },
 * });
 * charts[0].file; // "accuracy_vs_epoch.svg"
 * ```
 */
export function sweepCharts(report: SweepReport): SweepChart[] {
  const models = [...new Set(report.groups.map((g) => g.model))];
  const units = [...new Set(models.map((m) => CURVE_X[m]))];
  if (units.length > 1) {
    // One x axis per chart: epochs and steps would be drawn on the same scale.
    const shown = units.map((u) =>
      `per ${u}: ${
        report.groups.filter((g) => CURVE_X[g.model] === u).flatMap((g) => g.runs).join(", ")
      }`
    );
    throw new RangeError(
      `runs logged per epoch and per step cannot share charts (${shown.join("; ")}): ` +
        "report them from separate directories",
    );
  }
  const x = units[0] ?? "epoch";
  const charts = CHART_KEYS.filter((key) => report.curves[key]?.length).map((key) => {
    const def = models.map((m) => METRICS[m].find((d) => d.key === key)).find(Boolean)!;
    const title = `${def.label} over seeds (mean and 95 % interval)`;
    return {
      key,
      file: chartFileName(key, x),
      title,
      spec: bandChartSpec(report.curves[key], title, x, def.label),
    };
  });
  const maps = report.loadMaps ?? [];
  if (maps.length) {
    const title = "share of test images per map position (mean over seeds)";
    const panels = maps.map((m) => ({
      title: m.label,
      values: m.share,
      rows: m.rows,
      cols: m.cols,
    }));
    const cell = Math.max(4, Math.min(16, Math.floor(160 / Math.max(...maps.map((m) => m.cols)))));
    charts.push({
      key: "loadMap",
      file: "load_map.svg",
      title,
      spec: heatmapSpec(panels, { cell, title }),
    });
  }
  return charts;
}
