/**
 * `routing_maps.json`: the average routing map per class of a run (MoGE
 * Fig. 2), written during training for the run's report page, and the
 * chart of such maps on a report page (also used for the invariance
 * experiment's `class_maps.json`, which has the same shape).
 *
 * @module
 */

import { writeJsonAtomic } from "../atomic.ts";
import { type HeatmapPanel, heatmapSpec } from "./heatmap.ts";
import type { PageChart } from "./html_page.ts";

/** The file name of the average routing maps per class in a run directory. */
export const ROUTING_MAPS_FILE = "routing_maps.json";

/** The contents of `routing_maps.json` (written by {@linkcode writeRoutingMaps}). */
export interface RoutingMapsFile {
  /** Epoch (or step) the maps were measured at. */
  epoch?: number;
  /** What the maps are, shown above them. */
  title?: string;
  /** Panels per row (default: one row per model, or 10). */
  columns?: number;
  /** One r × c map per panel, e.g. one per class. */
  panels: HeatmapPanel[];
}

/**
 * Writes the average routing maps per class of a run (MoGE Fig. 2) as
 * `routing_maps.json` in its directory, for the run's report page.
 *
 * @param runDir the run directory
 * @param maps one map per class, each rows * cols values, row-major (e.g. `classMeanMaps`)
 * @param rows r of the expert map
 * @param cols c of the expert map
 * @param options epoch, class names (panel titles), title, columns
 * @returns the path written
 *
 * @example
 * ```ts
 * import { writeRoutingMaps } from "./routing_maps.ts";
 * const dir = await Deno.makeTempDir();
 * await writeRoutingMaps(dir, [[0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]], 2, 2, {
 *   epoch: 3, classNames: ["T-shirt", "Trouser"],
 * });
 * ```
 */
export async function writeRoutingMaps(
  runDir: string,
  maps: ArrayLike<number>[],
  rows: number,
  cols: number,
  options: { epoch?: number; classNames?: string[]; title?: string; columns?: number } = {},
): Promise<string> {
  const fn = "writeRoutingMaps";
  if (!Array.isArray(maps) || maps.length === 0) {
    throw new RangeError(`${fn}: maps must be a non-empty array of rows * cols values`);
  }
  const panels: HeatmapPanel[] = maps.map((m, c) => ({
    title: options.classNames?.[c] ?? `class ${c}`,
    values: Array.from(m),
    rows,
    cols,
  }));
  heatmapSpec(panels); // validates rows, cols, lengths and values
  const file: RoutingMapsFile = {
    ...(options.epoch !== undefined ? { epoch: options.epoch } : {}),
    ...(options.title !== undefined ? { title: options.title } : {}),
    ...(options.columns !== undefined ? { columns: options.columns } : {}),
    panels,
  };
  const path = `${runDir}/${ROUTING_MAPS_FILE}`;
  await writeJsonAtomic(path, file);
  return path;
}

/**
 * The chart (id "routing-maps") of the maps of a `routing_maps.json` or
 * `class_maps.json`: a grid of panels, cells sized so a panel is about 96
 * pixels across (3 to 16 pixels a cell).
 *
 * @param maps the parsed file; anything without panels gives no chart
 * @param caption the figure caption
 * @param columns panels per row when the file does not say
 * @returns the chart, or undefined
 *
 * @example
 * ```ts
 * import { routingMapsChart } from "./routing_maps.ts";
 * const chart = routingMapsChart(
 *   { panels: [{ title: "class 0", values: [0.7, 0.1, 0.1, 0.1], rows: 2, cols: 2 }] },
 *   "Average routing map z per class",
 *   10,
 * );
 * console.log(chart?.id); // "routing-maps"
 * ```
 */
export function routingMapsChart(
  maps: RoutingMapsFile | null | undefined,
  caption: string,
  columns: number,
): PageChart | undefined {
  if (!maps || !Array.isArray(maps.panels) || maps.panels.length === 0) return undefined;
  const side = Math.max(...maps.panels.map((p) => Math.max(p.rows, p.cols)));
  return {
    id: "routing-maps",
    caption,
    spec: heatmapSpec(maps.panels, {
      columns: maps.columns ?? columns,
      cell: Math.max(3, Math.min(16, Math.floor(96 / side))),
    }),
  };
}
