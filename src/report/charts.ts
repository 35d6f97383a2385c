/**
 * Bar charts (e.g. expert loads) and line charts (e.g. training curves, the
 * overhead of MoGE against E, Appendix A.1) as Vega-Lite specs
 * (`barChartSpec`, `lineChartSpec`), and as SVG drawn headless by Vega
 * (`./vega.ts`). Write a chart with its spec beside it with `writeChart`.
 * Output is deterministic: the same input gives the same bytes.
 *
 * @module
 */

import { renderVegaLite, VEGA_LITE_SCHEMA, type VegaLiteSpec } from "./vega.ts";
import { checkFinite, checkInteger, checkNumber } from "../validate.ts";

/** Options of {@linkcode barChartSpec} and {@linkcode lineChartSpec} (and their SVGs). */
export interface ChartOptions {
  /** Chart title. */
  title?: string;
  /** x-axis label. */
  xLabel?: string;
  /** y-axis label. */
  yLabel?: string;
  /** Width in pixels, default 640. */
  width?: number;
  /** Height in pixels, default 400. */
  height?: number;
}

/** A named polyline of {@linkcode lineChartSvg}. */
export interface LineSeries {
  /** Legend entry. */
  name: string;
  /** The [x, y] points, drawn in the given order. */
  points: [number, number][];
}

function checkSize(fn: string, options: ChartOptions): { width: number; height: number } {
  const { width = 640, height = 400 } = options;
  checkInteger(`${fn}: options.width`, width, 120);
  checkInteger(`${fn}: options.height`, height, 100);
  return { width, height };
}

/** Title, size and axis titles shared by the bar and line charts. */
function frame(fn: string, options: ChartOptions): VegaLiteSpec {
  const { width, height } = checkSize(fn, options);
  return {
    $schema: VEGA_LITE_SCHEMA,
    ...(options.title ? { title: options.title } : {}),
    // The plot area; axes, title and legend come on top (Vega's autosize "pad").
    width: Math.max(60, width - 120),
    height: Math.max(40, height - 100),
    config: { view: { stroke: null } },
  };
}

/**
 * The Vega-Lite spec of a bar chart, e.g. the load of each expert: one bar
 * per value, labelled 0, 1, … (or `labels`), in the given order, with a
 * tooltip.
 *
 * @param values bar heights (finite, at least one)
 * @param options title, axis labels, size; `labels` names the bars; `color` fills them
 * @returns the Vega-Lite spec
 *
 * @example
 * ```ts
 * import { barChartSpec } from "./charts.ts";
 * const spec = barChartSpec([0.3, 0.7], { title: "expert load" });
 * console.log((spec.data as { values: unknown[] }).values.length); // 2
 * ```
 */
export function barChartSpec(
  values: number[],
  options: ChartOptions & { labels?: string[]; color?: string } = {},
): VegaLiteSpec {
  const fn = "barChartSpec";
  if (!Array.isArray(values) || values.length === 0) {
    throw new RangeError(`${fn}: values must be a non-empty array of finite numbers`);
  }
  checkFinite(`${fn}: values`, values);
  if (options.labels !== undefined && options.labels.length !== values.length) {
    throw new RangeError(
      `${fn}: options.labels.length = ${options.labels.length} is invalid: it must equal ` +
        `values.length = ${values.length}`,
    );
  }
  const labels = options.labels ?? values.map((_, i) => String(i));
  return {
    ...frame(fn, options),
    data: { values: values.map((v, i) => ({ i, label: labels[i], value: v })) },
    mark: { type: "bar", color: options.color ?? "#3b75af" },
    encoding: {
      x: {
        field: "label",
        type: "ordinal",
        sort: { field: "i" },
        title: options.xLabel ?? null,
        axis: { labelAngle: 0, labelOverlap: true },
      },
      y: { field: "value", type: "quantitative", title: options.yLabel ?? null },
      tooltip: [
        { field: "label", type: "ordinal", title: options.xLabel ?? "bar" },
        { field: "value", type: "quantitative", format: ".6~g" },
      ],
    },
  };
}

/**
 * A bar chart as an SVG document (the chart of {@linkcode barChartSpec},
 * drawn by Vega).
 *
 * @param values bar heights (finite, at least one)
 * @param options title, axis labels, size; `labels` names the bars
 * @returns the SVG document as a string
 *
 * @example
 * ```ts
 * import { barChartSvg } from "./charts.ts";
 * const svg = await barChartSvg([0.30, 0.25, 0.25, 0.20], {
 *   title: "expert load", xLabel: "expert", yLabel: "fraction of tokens",
 * });
 * console.log(svg.startsWith("<svg")); // true
 * ```
 */
export async function barChartSvg(
  values: number[],
  options: ChartOptions & { labels?: string[]; color?: string } = {},
): Promise<string> {
  return await renderVegaLite(barChartSpec(values, options));
}

/**
 * The Vega-Lite spec of a line chart, e.g. the training-time overhead of
 * MoGE against the number of experts E: one line with point markers per
 * series (points joined in the given order), a colour legend, and
 * optionally a logarithmic x axis (base 2 over ≤ 12 octaves, else 10).
 *
 * @param series the named polylines (each with at least one finite point; x > 0 when logX)
 * @param options title, axis labels, size, `logX`
 * @returns the Vega-Lite spec
 *
 * @example
 * ```ts
 * import { lineChartSpec } from "./charts.ts";
 * const spec = lineChartSpec([{ name: "a", points: [[1, 2], [2, 3]] }]);
 * console.log(spec.mark); // { type: "line", point: true }
 * ```
 */
export function lineChartSpec(
  series: LineSeries[],
  options: ChartOptions & { logX?: boolean } = {},
): VegaLiteSpec {
  const fn = "lineChartSpec";
  if (!Array.isArray(series) || series.length === 0) {
    throw new RangeError(`${fn}: series must be a non-empty array of { name, points }`);
  }
  const logX = options.logX ?? false;
  const rows: { series: string; s: number; order: number; x: number; y: number }[] = [];
  let xlo = Infinity, xhi = -Infinity;
  series.forEach((s, k) => {
    if (!Array.isArray(s.points) || s.points.length === 0) {
      throw new RangeError(`${fn}: series[${k}].points must be a non-empty array of [x, y]`);
    }
    s.points.forEach(([x, y], i) => {
      checkNumber(
        `${fn}: series[${k}].points[${i}][0]`,
        x,
        logX ? { min: 0, exclusiveMin: true } : {},
      );
      checkNumber(`${fn}: series[${k}].points[${i}][1]`, y);
      xlo = Math.min(xlo, x);
      xhi = Math.max(xhi, x);
      rows.push({ series: s.name, s: k, order: i, x, y });
    });
  });
  const base = Math.log2(xhi / xlo) <= 12 ? 2 : 10;
  return {
    ...frame(fn, options),
    data: { values: rows },
    mark: { type: "line", point: true },
    encoding: {
      x: {
        field: "x",
        type: "quantitative",
        title: options.xLabel ?? null,
        scale: logX ? { type: "log", base, nice: true } : { zero: false },
        // Whole-number x (epochs, E) gets whole-number ticks.
        ...(rows.every((r) => Number.isInteger(r.x)) ? { axis: { tickMinStep: 1 } } : {}),
      },
      y: {
        field: "y",
        type: "quantitative",
        title: options.yLabel ?? null,
        scale: { zero: false },
      },
      color: {
        field: "series",
        type: "nominal",
        sort: series.map((s) => s.name),
        scale: { range: PALETTE },
        // Full series names; long ones go below the plot, one per line.
        legend: series.some((s) => s.name.length > 24)
          ? { title: null, labelLimit: 0, orient: "bottom", direction: "vertical" }
          : { title: null, labelLimit: 0 },
      },
      order: { field: "order", type: "quantitative" },
      tooltip: [
        { field: "series", type: "nominal" },
        { field: "x", type: "quantitative", format: ".6~g" },
        { field: "y", type: "quantitative", format: ".6~g" },
      ],
    },
  };
}

const PALETTE = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#d62728",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#bcbd22",
  "#17becf",
];

/**
 * A line chart as an SVG document (the chart of {@linkcode lineChartSpec},
 * drawn by Vega).
 *
 * @param series the named polylines (each with at least one finite point; x > 0 when logX)
 * @param options title, axis labels, size, `logX`
 * @returns the SVG document as a string
 *
 * @example
 * ```ts
 * import { lineChartSvg } from "./charts.ts";
 * const svg = await lineChartSvg([
 *   { name: "MoGE / MoE time", points: [[8, 1.10], [16, 1.08], [64, 1.05]] },
 * ], { title: "overhead", xLabel: "E", yLabel: "ratio", logX: true });
 * console.log(svg.startsWith("<svg")); // true
 * ```
 */
export async function lineChartSvg(
  series: LineSeries[],
  options: ChartOptions & { logX?: boolean } = {},
): Promise<string> {
  return await renderVegaLite(lineChartSpec(series, options));
}
