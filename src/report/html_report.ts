/**
 * The report pages: `report.html`, one self-contained page (inline SVG
 * charts and CSS, no script, no network) for a run directory
 * ({@linkcode writeRunReport}), for a sweep ({@linkcode writeSweepReport},
 * the statistics of `deno task report`) and for the output of the
 * invariance experiment ({@linkcode writeInvarianceReport}). Every chart is
 * a Vega-Lite spec rendered to SVG by Vega in Deno.
 *
 * This module gathers the pages; each lives in its own module: the shell in
 * `./html_page.ts`, the run page in `./run_page.ts`, the sweep page in
 * `./sweep_page.ts`, the invariance page in `./invariance_page.ts`, and the
 * routing maps file in `./routing_maps.ts`.
 *
 * @example
 * ```ts
 * import { writeRunReport } from "./html_report.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/metrics.jsonl`, '{"epoch":1,"testAcc":0.8}\n');
 * console.log(await writeRunReport(dir)); // <dir>/report.html
 * ```
 *
 * @module
 */

export { REPORT_FILE } from "./html_page.ts";
export { ROUTING_MAPS_FILE, type RoutingMapsFile, writeRoutingMaps } from "./routing_maps.ts";
export { buildRunReport, writeRunReport } from "./run_page.ts";
export { type SweepPageOptions, sweepReportHtml, writeSweepReport } from "./sweep_page.ts";
export { writeInvarianceReport } from "./invariance_page.ts";
