/**
 * Plots for the MoGE experiments, in plain TypeScript: panel grids of r × c
 * maps as PNG or SVG (the paper's Fig. 2, the average routing map per class
 * for MoE and MoGE), bar charts (expert loads) and line charts (overhead
 * against E, Appendix A.1). Output is deterministic: the same input gives the
 * same bytes.
 *
 * Colours come from matplotlib's viridis (CC0; 17 of its 256 entries,
 * interpolated linearly) or a gray ramp. All panels share one colour scale
 * (min/max over all values unless given), so panels can be compared.
 *
 * @module
 */

import { encodePngCompressed } from "./png.ts";
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

/** Options of {@linkcode barChartSvg} and {@linkcode lineChartSvg}. */
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
  return await encodePngCompressed(width, height, rgba);
}

/** Escapes text for SVG/XML content and attribute values. */
function esc(s: string): string {
  return String(s).replace(
    /[&<>"']/g,
    (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[ch]!,
  );
}

/** Coordinates with at most 2 decimals (deterministic, compact). */
function n(x: number): string {
  return String(Math.round(x * 100) / 100);
}

/** Tick label: at most 6 significant digits. */
function label(x: number): string {
  return String(Number(x.toPrecision(6)));
}

function hex([r, g, b]: [number, number, number]): string {
  return "#" + [r, g, b].map((v) => v.toString(16).padStart(2, "0")).join("");
}

const FONT = 'font-family="sans-serif"';

/**
 * Renders r × c maps as a grid of titled panels into an SVG document: one
 * `<rect class="cell">` per map entry (shared colour scale), the panel titles
 * and the overall title as `<text>`, and a colour bar (`<rect
 * class="colorbar">` with a gradient) labelled with the scale's min and max.
 *
 * @param panels the maps, with optional titles
 * @param options cell size, columns, colour map, scale, overall title
 * @returns the SVG document as a string
 *
 * @example
 * ```ts
 * import { heatmapSvg } from "./heatmap.ts";
 * const svg = heatmapSvg([
 *   { title: "MoE, class 0", values: [0.1, 0.5, 0.2, 0.2], rows: 2, cols: 2 },
 *   { title: "MoGE, class 0", values: [0.7, 0.1, 0.1, 0.1], rows: 2, cols: 2 },
 * ], { cell: 20, title: "average routing map" });
 * // Deno.writeTextFileSync("/tmp/maps.svg", svg);
 * console.log(svg.startsWith("<svg")); // true
 * ```
 */
export function heatmapSvg(panels: HeatmapPanel[], options: HeatmapOptions = {}): string {
  const L = layoutPanels("heatmapSvg", panels, options);
  const { cell, gap } = L;
  const hasTitles = panels.some((p) => p.title);
  const titleH = hasTitles ? 16 : 0;
  const headH = options.title ? 24 : 0;
  const barH = 12, barBlock = barH + 24;
  const rowsOfPanels = Math.ceil(panels.length / L.columns);
  const slotH = L.panelH + titleH;
  const width = Math.max(L.width, 160);
  const height = headH + rowsOfPanels * slotH + (rowsOfPanels + 1) * gap + barBlock;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
      `viewBox="0 0 ${width} ${height}">`,
  );
  const stops = Array.from({ length: 11 }, (_, k) => {
    const t = k / 10;
    return `<stop offset="${n(t)}" stop-color="${hex(mapColor(t, L.colormap))}"/>`;
  });
  out.push(`<defs><linearGradient id="cbar">${stops.join("")}</linearGradient></defs>`);
  if (options.title) {
    out.push(
      `<text x="${n(width / 2)}" y="17" text-anchor="middle" font-size="14" ${FONT}>${
        esc(options.title)
      }</text>`,
    );
  }
  panels.forEach((p, k) => {
    const x0 = gap + (k % L.columns) * (L.panelW + gap);
    const y0 = headH + gap + Math.floor(k / L.columns) * (slotH + gap);
    out.push(`<g class="panel">`);
    if (p.title) {
      out.push(
        `<text x="${n(x0 + (p.cols * cell) / 2)}" y="${n(y0 + titleH - 4)}" ` +
          `text-anchor="middle" font-size="11" ${FONT}>${esc(p.title)}</text>`,
      );
    }
    for (let r = 0; r < p.rows; r++) {
      for (let c = 0; c < p.cols; c++) {
        const v = p.values[r * p.cols + c];
        out.push(
          `<rect class="cell" x="${x0 + c * cell}" y="${y0 + titleH + r * cell}" ` +
            `width="${cell}" height="${cell}" fill="${hex(mapColor(scaleOf(L, v), L.colormap))}">` +
            `<title>(${r}, ${c}): ${label(v)}</title></rect>`,
        );
      }
    }
    out.push(`</g>`);
  });
  const by = height - barBlock + 4, bw = Math.min(width - 2 * gap - 80, 240);
  const bx = (width - bw) / 2;
  out.push(
    `<rect class="colorbar" x="${n(bx)}" y="${by}" width="${n(bw)}" height="${barH}" ` +
      `fill="url(#cbar)" stroke="#444" stroke-width="0.5"/>`,
  );
  out.push(
    `<text x="${n(bx - 4)}" y="${by + barH - 2}" text-anchor="end" font-size="10" ${FONT}>${
      label(L.lo)
    }</text>`,
    `<text x="${n(bx + bw + 4)}" y="${by + barH - 2}" font-size="10" ${FONT}>${label(L.hi)}</text>`,
  );
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}

/** "Nice" ticks (1, 2, 5 × 10^k steps) covering [lo, hi]. */
function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (hi === lo) {
    const d = lo === 0 ? 1 : Math.abs(lo) / 2;
    lo -= d;
    hi += d;
  }
  const raw = (hi - lo) / count;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / p;
  const step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
  const ticks: number[] = [];
  for (let t = Math.floor(lo / step) * step; t <= hi + step * 1e-9; t += step) {
    ticks.push(Number(t.toPrecision(12)));
  }
  if (ticks[ticks.length - 1] < hi) {
    ticks.push(Number((ticks[ticks.length - 1] + step).toPrecision(12)));
  }
  return ticks;
}

/** Ticks for a log axis: powers of 2 over a narrow range, else powers of 10. */
function logTicks(lo: number, hi: number): number[] {
  const base = Math.log2(hi / lo) <= 12 ? 2 : 10;
  const ticks: number[] = [];
  const k0 = Math.floor(Math.log(lo) / Math.log(base) + 1e-9);
  const k1 = Math.ceil(Math.log(hi) / Math.log(base) - 1e-9);
  for (let k = k0; k <= k1; k++) ticks.push(Math.pow(base, k));
  return ticks;
}

interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

function frameOf(fn: string, options: ChartOptions): Frame {
  const { width = 640, height = 400 } = options;
  checkInteger(`${fn}: options.width`, width, 120);
  checkInteger(`${fn}: options.height`, height, 100);
  return {
    width,
    height,
    left: 64,
    right: width - 16,
    top: options.title ? 36 : 16,
    bottom: height - (options.xLabel ? 48 : 32),
  };
}

function axes(
  F: Frame,
  options: ChartOptions,
  xTicks: { at: number; text: string }[],
  yTicks: { at: number; text: string }[],
): string[] {
  const out: string[] = [];
  out.push(`<rect x="0" y="0" width="${F.width}" height="${F.height}" fill="#ffffff"/>`);
  if (options.title) {
    out.push(
      `<text x="${n(F.width / 2)}" y="22" text-anchor="middle" font-size="15" ${FONT}>${
        esc(options.title)
      }</text>`,
    );
  }
  for (const t of yTicks) {
    out.push(
      `<line x1="${n(F.left)}" y1="${n(t.at)}" x2="${n(F.right)}" y2="${n(t.at)}" ` +
        `stroke="#e0e0e0" stroke-width="1"/>`,
      `<text x="${n(F.left - 6)}" y="${n(t.at + 4)}" text-anchor="end" font-size="11" ${FONT}>${
        esc(t.text)
      }</text>`,
    );
  }
  for (const t of xTicks) {
    out.push(
      `<line x1="${n(t.at)}" y1="${n(F.bottom)}" x2="${n(t.at)}" y2="${n(F.bottom + 4)}" ` +
        `stroke="#333" stroke-width="1"/>`,
      `<text x="${n(t.at)}" y="${n(F.bottom + 17)}" text-anchor="middle" font-size="11" ${FONT}>${
        esc(t.text)
      }</text>`,
    );
  }
  out.push(
    `<path d="M${n(F.left)},${n(F.top)}V${n(F.bottom)}H${n(F.right)}" fill="none" ` +
      `stroke="#333" stroke-width="1"/>`,
  );
  if (options.xLabel) {
    out.push(
      `<text x="${n((F.left + F.right) / 2)}" y="${n(F.height - 10)}" text-anchor="middle" ` +
        `font-size="12" ${FONT}>${esc(options.xLabel)}</text>`,
    );
  }
  if (options.yLabel) {
    const cy = (F.top + F.bottom) / 2;
    out.push(
      `<text x="14" y="${n(cy)}" text-anchor="middle" font-size="12" ` +
        `transform="rotate(-90 14 ${n(cy)})" ${FONT}>${esc(options.yLabel)}</text>`,
    );
  }
  return out;
}

function svgOpen(F: Frame): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${F.width}" height="${F.height}" ` +
    `viewBox="0 0 ${F.width} ${F.height}">`;
}

/**
 * A bar chart as an SVG document, e.g. the load of each expert (fraction of
 * tokens routed to it): one `<rect class="bar">` per value, bars labelled
 * 0, 1, … (or `labels`), y axis with nice ticks starting at 0 (or below, for
 * negative values).
 *
 * @param values bar heights (finite, at least one)
 * @param options title, axis labels, size; `labels` names the bars
 * @returns the SVG document as a string
 *
 * @example
 * ```ts
 * import { barChartSvg } from "./heatmap.ts";
 * const svg = barChartSvg([0.30, 0.25, 0.25, 0.20], {
 *   title: "expert load", xLabel: "expert", yLabel: "fraction of tokens",
 * });
 * console.log(svg.split('class="bar"').length - 1); // 4
 * ```
 */
export function barChartSvg(
  values: number[],
  options: ChartOptions & { labels?: string[]; color?: string } = {},
): string {
  const fn = "barChartSvg";
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
  const F = frameOf(fn, options);
  const ticks = niceTicks(Math.min(0, ...values), Math.max(0, ...values));
  const y0 = ticks[0], y1 = ticks[ticks.length - 1];
  const sy = (v: number) => F.bottom - ((v - y0) / (y1 - y0)) * (F.bottom - F.top);
  const slot = (F.right - F.left) / values.length;
  const every = Math.max(1, Math.ceil(values.length / 32)); // at most ~32 x labels
  const xTicks = values.flatMap((_, i) =>
    i % every === 0
      ? [{ at: F.left + (i + 0.5) * slot, text: options.labels?.[i] ?? String(i) }]
      : []
  );
  const yTicks = ticks.map((t) => ({ at: sy(t), text: label(t) }));
  const out = [svgOpen(F), ...axes(F, options, xTicks, yTicks)];
  const color = options.color ?? "#3b75af";
  values.forEach((v, i) => {
    const top = sy(Math.max(v, 0)), base = sy(Math.min(v, 0));
    out.push(
      `<rect class="bar" x="${n(F.left + i * slot + slot * 0.1)}" y="${n(top)}" ` +
        `width="${n(slot * 0.8)}" height="${n(base - top)}" fill="${esc(color)}">` +
        `<title>${esc(options.labels?.[i] ?? String(i))}: ${label(v)}</title></rect>`,
    );
  });
  out.push(`</svg>`);
  return out.join("\n") + "\n";
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
 * A line chart as an SVG document, e.g. the training-time overhead of MoGE
 * against the number of experts E: one `<polyline class="series">` with
 * point markers per series, a legend, nice ticks, and optionally a
 * logarithmic x axis (ticks at powers of 2 over ≤ 12 octaves, else of 10).
 *
 * @param series the named polylines (each with at least one finite point; x > 0 when logX)
 * @param options title, axis labels, size, `logX`
 * @returns the SVG document as a string
 *
 * @example
 * ```ts
 * import { lineChartSvg } from "./heatmap.ts";
 * const svg = lineChartSvg([
 *   { name: "MoGE / MoE time", points: [[8, 1.10], [16, 1.08], [64, 1.05]] },
 * ], { title: "overhead", xLabel: "E", yLabel: "ratio", logX: true });
 * console.log(svg.includes("<polyline")); // true
 * ```
 */
export function lineChartSvg(
  series: LineSeries[],
  options: ChartOptions & { logX?: boolean } = {},
): string {
  const fn = "lineChartSvg";
  if (!Array.isArray(series) || series.length === 0) {
    throw new RangeError(`${fn}: series must be a non-empty array of { name, points }`);
  }
  const logX = options.logX ?? false;
  let xlo = Infinity, xhi = -Infinity, ylo = Infinity, yhi = -Infinity;
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
      ylo = Math.min(ylo, y);
      yhi = Math.max(yhi, y);
    });
  });
  const F = frameOf(fn, options);
  const legendW = 150;
  const plotRight = F.right - legendW;
  const xt = logX ? logTicks(xlo, xhi) : niceTicks(xlo, xhi);
  const yt = niceTicks(ylo, yhi);
  const [xa, xb] = [xt[0], xt[xt.length - 1]];
  const [ya, yb] = [yt[0], yt[yt.length - 1]];
  const fx = logX ? Math.log : (v: number) => v;
  const sx = (v: number) => F.left + ((fx(v) - fx(xa)) / (fx(xb) - fx(xa))) * (plotRight - F.left);
  const sy = (v: number) => F.bottom - ((v - ya) / (yb - ya)) * (F.bottom - F.top);
  const frame = { ...F, right: plotRight };
  const out = [
    svgOpen(F),
    ...axes(
      frame,
      options,
      xt.map((t) => ({ at: sx(t), text: label(t) })),
      yt.map((t) => ({ at: sy(t), text: label(t) })),
    ),
  ];
  series.forEach((s, k) => {
    const color = PALETTE[k % PALETTE.length];
    const pts = s.points.map(([x, y]) => `${n(sx(x))},${n(sy(y))}`).join(" ");
    out.push(
      `<polyline class="series" points="${pts}" fill="none" stroke="${color}" stroke-width="2"/>`,
    );
    for (const [x, y] of s.points) {
      out.push(
        `<circle cx="${n(sx(x))}" cy="${n(sy(y))}" r="3" fill="${color}">` +
          `<title>${esc(s.name)}: (${label(x)}, ${label(y)})</title></circle>`,
      );
    }
    const ly = F.top + 8 + 18 * k;
    out.push(
      `<line x1="${n(plotRight + 16)}" y1="${ly}" x2="${n(plotRight + 36)}" y2="${ly}" ` +
        `stroke="${color}" stroke-width="2"/>`,
      `<text x="${n(plotRight + 42)}" y="${ly + 4}" font-size="11" ${FONT}>${esc(s.name)}</text>`,
    );
  });
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}
