/**
 * Panel grids of r × c maps (the paper's Fig. 2, the average routing map
 * per class for MoE and MoGE): as a Vega-Lite spec (`heatmapSpec`, drawn
 * headless by Vega in `./vega.ts`; write it with its spec beside it with
 * `writeChart`) and as a plain raster (one flat square per map entry, no
 * text) encoded as PNG by fast-png. Bar and line charts are in `./charts.ts`.
 * Output is deterministic: the same input gives the same bytes.
 *
 * Raster colours come from matplotlib's viridis (CC0; 17 of its 256 entries,
 * interpolated linearly) or a gray ramp. All panels share one colour scale
 * (min/max over all values unless given), so panels can be compared.
 *
 * @module
 */

import { encodePng } from "./png.ts";
import { renderVegaLite, VEGA_LITE_SCHEMA, type VegaLiteSpec } from "./vega.ts";
import { checkFinite, checkInteger, checkNumber } from "../validate.ts";

/** One r × c map to draw as a panel. */
export interface HeatmapPanel {
  /** Title shown above the panel (SVG only; the PNG has no text). */
  title?: string;
  /** The r × c values, row-major. */
  values: ArrayLike<number>;
  /** r (integer ≥ 1). */
  rows: number;
  /** c (integer ≥ 1). */
  cols: number;
}

/** The colour maps of {@linkcode mapColor}. */
export type Colormap = "viridis" | "gray";

/** Options of {@linkcode heatmapPng}, {@linkcode heatmapRgba} and {@linkcode heatmapSvg}. */
export interface HeatmapOptions {
  /** Pixels per map cell (integer ≥ 1), default 16. */
  cell?: number;
  /** Panels per row of the grid (integer ≥ 1), default min(#panels, 5). */
  columns?: number;
  /** "viridis" (default) or "gray" (black = min, white = max). */
  colormap?: Colormap;
  /** Value mapped to the bottom of the colour scale; default the smallest value. */
  min?: number;
  /** Value mapped to the top of the colour scale; default the largest value. */
  max?: number;
  /** Pixels between panels (integer ≥ 0), default max(2, cell / 2). */
  gap?: number;
  /** Overall title (SVG only). */
  title?: string;
}

// matplotlib viridis entries 0, 16, 32, ..., 240, 255 (of 256).
const VIRIDIS: readonly (readonly [number, number, number])[] = [
  [0.267004, 0.004874, 0.329415],
  [0.282327, 0.094955, 0.417331],
  [0.278826, 0.17549, 0.483397],
  [0.258965, 0.251537, 0.524736],
  [0.229739, 0.322361, 0.545706],
  [0.19943, 0.387607, 0.554642],
  [0.172719, 0.448791, 0.557885],
  [0.149039, 0.508051, 0.55725],
  [0.127568, 0.566949, 0.550556],
  [0.120638, 0.625828, 0.533488],
  [0.157851, 0.683765, 0.501686],
  [0.24607, 0.73891, 0.452024],
  [0.369214, 0.788888, 0.382914],
  [0.515992, 0.831158, 0.294279],
  [0.678489, 0.863742, 0.189503],
  [0.845561, 0.887322, 0.099702],
  [0.993248, 0.906157, 0.143936],
];
const VIRIDIS_AT = VIRIDIS.map((_, k) => Math.min(16 * k, 255) / 255);

/**
 * The colour of t ∈ [0, 1] (clamped) in a colour map, as 8-bit [r, g, b].
 *
 * @param t position on the scale, 0 = bottom, 1 = top
 * @param colormap "viridis" (default) or "gray"
 * @returns [r, g, b], integers in [0, 255]
 *
 * @example
 * ```ts
 * import { mapColor } from "./heatmap.ts";
 * mapColor(0); // [68, 1, 84], viridis' dark purple
 * mapColor(1, "gray"); // [255, 255, 255]
 * ```
 */
export function mapColor(t: number, colormap: Colormap = "viridis"): [number, number, number] {
  checkNumber("mapColor: t", t);
  const u = Math.min(1, Math.max(0, t));
  if (colormap === "gray") {
    const g = Math.round(255 * u);
    return [g, g, g];
  }
  if (colormap !== "viridis") {
    throw new RangeError(
      `colormap = ${String(colormap)} is invalid: colormap must be "viridis" or "gray"`,
    );
  }
  let k = 0;
  while (k < VIRIDIS.length - 2 && u > VIRIDIS_AT[k + 1]) k++;
  const f = (u - VIRIDIS_AT[k]) / (VIRIDIS_AT[k + 1] - VIRIDIS_AT[k]);
  const c = VIRIDIS[k].map((x, i) => Math.round(255 * (x + f * (VIRIDIS[k + 1][i] - x))));
  return c as [number, number, number];
}

interface Layout {
  cell: number;
  gap: number;
  columns: number;
  panelW: number;
  panelH: number;
  width: number;
  height: number;
  lo: number;
  hi: number;
  colormap: Colormap;
}

function layoutPanels(fn: string, panels: HeatmapPanel[], options: HeatmapOptions): Layout {
  if (!Array.isArray(panels) || panels.length === 0) {
    throw new RangeError(`${fn}: panels must be a non-empty array of { values, rows, cols }`);
  }
  const { cell = 16, colormap = "viridis" } = options;
  checkInteger(`${fn}: options.cell`, cell, 1);
  const gap = options.gap ?? Math.max(2, Math.round(cell / 2));
  checkInteger(`${fn}: options.gap`, gap, 0);
  const columns = options.columns ?? Math.min(panels.length, 5);
  checkInteger(`${fn}: options.columns`, columns, 1);
  if (colormap !== "viridis" && colormap !== "gray") {
    throw new RangeError(
      `${fn}: options.colormap = ${String(colormap)} is invalid: it must be "viridis" or "gray"`,
    );
  }
  let lo = Infinity, hi = -Infinity, maxR = 0, maxC = 0;
  panels.forEach((p, k) => {
    const name = `${fn}: panels[${k}]`;
    checkInteger(`${name}.rows`, p.rows, 1);
    checkInteger(`${name}.cols`, p.cols, 1);
    if (!p.values || p.values.length !== p.rows * p.cols) {
      throw new RangeError(
        `${name}.values.length = ${p.values?.length} is invalid: it must equal rows * cols ` +
          `(${p.rows} * ${p.cols} = ${p.rows * p.cols})`,
      );
    }
    checkFinite(`${name}.values`, p.values);
    for (let i = 0; i < p.values.length; i++) {
      lo = Math.min(lo, p.values[i]);
      hi = Math.max(hi, p.values[i]);
    }
    maxR = Math.max(maxR, p.rows);
    maxC = Math.max(maxC, p.cols);
  });
  if (options.min !== undefined) checkNumber(`${fn}: options.min`, options.min);
  if (options.max !== undefined) checkNumber(`${fn}: options.max`, options.max);
  lo = options.min ?? lo;
  hi = options.max ?? hi;
  if (!(hi >= lo)) {
    throw new RangeError(`${fn}: options.max = ${hi} is invalid: it must be >= min = ${lo}`);
  }
  const rowsOfPanels = Math.ceil(panels.length / columns);
  const panelW = maxC * cell, panelH = maxR * cell;
  const nCols = Math.min(columns, panels.length);
  return {
    cell,
    gap,
    columns,
    panelW,
    panelH,
    width: nCols * panelW + (nCols + 1) * gap,
    height: rowsOfPanels * panelH + (rowsOfPanels + 1) * gap,
    lo,
    hi,
    colormap,
  };
}

function scaleOf(L: Layout, v: number): number {
  return L.hi > L.lo ? (v - L.lo) / (L.hi - L.lo) : 0.5;
}

/**
 * Renders r × c maps as a grid of panels into an RGBA image (white
 * background, `options.columns` panels per row, one `cell` × `cell` square
 * per map entry, shared colour scale). {@linkcode heatmapPng} encodes it.
 *
 * @param panels the maps (titles are ignored here)
 * @param options cell size, columns, colour map, scale
 * @returns { width, height, rgba } with width * height * 4 bytes
 *
 * @example
 * ```ts
 * import { heatmapRgba } from "./heatmap.ts";
 * const img = heatmapRgba([{ values: [0, 1, 2, 3], rows: 2, cols: 2 }], { cell: 4, gap: 0 });
 * console.log(img.width, img.height); // 8 8
 * ```
 */
export function heatmapRgba(
  panels: HeatmapPanel[],
  options: HeatmapOptions = {},
): { width: number; height: number; rgba: Uint8Array } {
  const L = layoutPanels("heatmapRgba", panels, options);
  const { width, height, cell, gap } = L;
  const rgba = new Uint8Array(width * height * 4).fill(255);
  panels.forEach((p, k) => {
    const x0 = gap + (k % L.columns) * (L.panelW + gap);
    const y0 = gap + Math.floor(k / L.columns) * (L.panelH + gap);
    for (let r = 0; r < p.rows; r++) {
      for (let c = 0; c < p.cols; c++) {
        const [R, G, B] = mapColor(scaleOf(L, p.values[r * p.cols + c]), L.colormap);
        for (let y = y0 + r * cell; y < y0 + (r + 1) * cell; y++) {
          for (let x = x0 + c * cell; x < x0 + (c + 1) * cell; x++) {
            const o = (y * width + x) * 4;
            rgba[o] = R;
            rgba[o + 1] = G;
            rgba[o + 2] = B;
          }
        }
      }
    }
  });
  return { width, height, rgba };
}

/**
 * Renders r × c maps as a grid of panels into a PNG file (see
 * {@linkcode heatmapRgba} for the layout; titles are not drawn: use
 * {@linkcode heatmapSvg} for a titled figure). Compressed, hence async.
 *
 * @param panels the maps
 * @param options cell size, columns, colour map, scale
 * @returns the PNG file bytes
 *
 * @example
 * ```ts
 * import { heatmapPng } from "./heatmap.ts";
 * const png = await heatmapPng([
 *   { values: [0.1, 0.5, 0.2, 0.2], rows: 2, cols: 2 },
 *   { values: [0.7, 0.1, 0.1, 0.1], rows: 2, cols: 2 },
 * ], { cell: 20 });
 * // await Deno.writeFile("/tmp/maps.png", png);
 * console.log(png.length);
 * ```
 */
export async function heatmapPng(
  panels: HeatmapPanel[],
  options: HeatmapOptions = {},
): Promise<Uint8Array> {
  const { width, height, rgba } = heatmapRgba(panels, options);
  return await encodePng(width, height, rgba);
}

/**
 * The Vega-Lite spec of a grid of titled r × c maps (the paper's Fig. 2):
 * one faceted `rect` chart, a panel per map in the given order,
 * `options.columns` panels per row, one `cell` × `cell` square per map entry,
 * a shared colour scale (viridis, or black → white for "gray") over
 * [min, max] with its legend, and a tooltip with each entry's value.
 *
 * @param panels the maps, with optional titles (untitled panels are named "panel k")
 * @param options cell size, columns, colour map, scale, overall title
 * @returns the Vega-Lite spec (render it with {@linkcode heatmapSvg} or `renderVegaLite`)
 *
 * @example
 * ```ts
 * import { heatmapSpec } from "./heatmap.ts";
 * const spec = heatmapSpec([{ title: "MoGE, class 0", values: [0.7, 0.1, 0.1, 0.1], rows: 2, cols: 2 }]);
 * console.log(JSON.stringify(spec).includes("viridis")); // true
 * ```
 */
export function heatmapSpec(panels: HeatmapPanel[], options: HeatmapOptions = {}): VegaLiteSpec {
  const L = layoutPanels("heatmapSpec", panels, options);
  const values: { panel: string; k: number; row: number; col: number; value: number }[] = [];
  const seen = new Set<string>();
  panels.forEach((p, k) => {
    let name = p.title ?? `panel ${k}`;
    if (seen.has(name)) name = `${name} (${k})`; // facets are keyed by name: keep them distinct
    seen.add(name);
    for (let r = 0; r < p.rows; r++) {
      for (let c = 0; c < p.cols; c++) {
        values.push({ panel: name, k, row: r, col: c, value: Number(p.values[r * p.cols + c]) });
      }
    }
  });
  const maxR = Math.round(L.panelH / L.cell), maxC = Math.round(L.panelW / L.cell);
  const range = L.hi > L.lo ? [L.lo, L.hi] : [L.lo - 0.5, L.hi + 0.5];
  return {
    $schema: VEGA_LITE_SCHEMA,
    ...(options.title ? { title: options.title } : {}),
    data: { values },
    columns: L.columns,
    spacing: L.gap,
    facet: {
      field: "panel",
      type: "nominal",
      sort: { field: "k", op: "min" },
      header: { title: null, labelFontSize: 11, labelPadding: 2 },
    },
    spec: {
      width: maxC * L.cell,
      height: maxR * L.cell,
      mark: { type: "rect" },
      encoding: {
        x: { field: "col", type: "ordinal", axis: null, scale: { domain: seq(maxC) } },
        y: { field: "row", type: "ordinal", axis: null, scale: { domain: seq(maxR) } },
        color: {
          field: "value",
          type: "quantitative",
          scale: L.colormap === "gray"
            ? { domain: range, range: ["#000000", "#ffffff"], clamp: true }
            : { domain: range, scheme: "viridis", clamp: true },
          legend: { title: null, orient: "bottom", gradientLength: 240 },
        },
        tooltip: [
          { field: "panel", type: "nominal" },
          { field: "row", type: "ordinal" },
          { field: "col", type: "ordinal" },
          { field: "value", type: "quantitative", format: ".4~g" },
        ],
      },
    },
    config: {
      view: { stroke: null },
      scale: { bandPaddingInner: 0, bandPaddingOuter: 0 },
    },
  };
}

function seq(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/**
 * Renders r × c maps as a grid of titled panels into an SVG document (the
 * chart of {@linkcode heatmapSpec}, drawn by Vega). Asynchronous because
 * Vega is loaded and run on demand.
 *
 * @param panels the maps, with optional titles
 * @param options cell size, columns, colour map, scale, overall title
 * @returns the SVG document as a string
 *
 * @example
 * ```ts
 * import { heatmapSvg } from "./heatmap.ts";
 * const svg = await heatmapSvg([
 *   { title: "MoE, class 0", values: [0.1, 0.5, 0.2, 0.2], rows: 2, cols: 2 },
 *   { title: "MoGE, class 0", values: [0.7, 0.1, 0.1, 0.1], rows: 2, cols: 2 },
 * ], { cell: 20, title: "average routing map" });
 * console.log(svg.startsWith("<svg")); // true
 * ```
 */
export async function heatmapSvg(
  panels: HeatmapPanel[],
  options: HeatmapOptions = {},
): Promise<string> {
  return await renderVegaLite(heatmapSpec(panels, options));
}
