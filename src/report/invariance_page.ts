/**
 * The report page of the invariance experiment (`deno task invariance`):
 * mean IMED per transform for MoE and MoGE next to the paper's (Table 1),
 * the average routing map per class (Fig. 2), each model's expert load and
 * the specialization figures.
 *
 * @module
 */

import { writeFileAtomic } from "../atomic.ts";
import { finiteOrNull as num } from "../analysis/sweep_metrics.ts";
import { readJsonOrNull } from "../sweep/run_files.ts";
import { barChartSpec } from "./charts.ts";
import {
  checkDir,
  escapeHtml as esc,
  formatValue as fmt,
  htmlPage,
  kvTable,
  type PageChart as Chart,
  renderCharts,
  REPORT_FILE,
} from "./html_page.ts";
import { routingMapsChart, type RoutingMapsFile } from "./routing_maps.ts";
import { VEGA_LITE_SCHEMA, type VegaLiteSpec } from "./vega.ts";

type Row = Record<string, unknown>;

/** Grouped bars: mean IMED per transform, ours and the paper's, MoE and MoGE. */
function imedChartSpec(imed: Row[]): VegaLiteSpec {
  return {
    $schema: VEGA_LITE_SCHEMA,
    data: { values: imed },
    width: { step: 14 },
    height: 260,
    mark: "bar",
    encoding: {
      x: {
        field: "transform",
        type: "nominal",
        sort: null,
        title: null,
        axis: { labelAngle: -40 },
      },
      xOffset: {
        field: "model",
        sort: ["MoE (ours)", "MoGE (ours)", "MoE (paper)", "MoGE (paper)"],
      },
      y: { field: "imed", type: "quantitative", title: "mean IMED" },
      color: {
        field: "model",
        type: "nominal",
        sort: ["MoE (ours)", "MoGE (ours)", "MoE (paper)", "MoGE (paper)"],
        scale: { range: ["#1f77b4", "#ff7f0e", "#aec7e8", "#ffbb78"] },
        legend: { title: null, orient: "top" },
      },
      tooltip: [
        { field: "transform" },
        { field: "model" },
        { field: "imed", type: "quantitative", format: ".4f" },
      ],
    },
    config: { view: { stroke: null } },
  };
}

/**
 * Builds and writes `report.html` for the output directory of the
 * invariance experiment (`deno task invariance`): mean IMED per transform for
 * MoE and MoGE next to the paper's (Table 1), the average routing map per
 * class (Fig. 2, from `class_maps.json`), each model's expert load, and the
 * specialization figures.
 *
 * @param dir the directory holding invariance.json (and class_maps.json, specialization.json)
 * @returns the path written
 * @throws when `dir` is not a directory or has no readable invariance.json
 *
 * @example
 * ```ts ignore
 * import { writeInvarianceReport } from "./invariance_page.ts";
 * await writeInvarianceReport("runs/moge/invariance");
 * ```
 */
export async function writeInvarianceReport(dir: string): Promise<string> {
  await checkDir("writeInvarianceReport", dir);
  const inv = await readJsonOrNull(`${dir}/invariance.json`);
  if (!inv || !Array.isArray(inv.columns)) {
    throw new Deno.errors.NotFound(
      `writeInvarianceReport: ${dir}/invariance.json is missing or has no "columns"`,
    );
  }
  const maps = await readJsonOrNull(`${dir}/class_maps.json`) as RoutingMapsFile | null;
  const spec = (inv.specialization ?? await readJsonOrNull(`${dir}/specialization.json`)) as
    | Record<string, Row>
    | null;
  const columns = inv.columns as Row[];
  const imed: Row[] = [];
  for (const c of columns) {
    for (const [kind, label] of [["moe", "MoE (ours)"], ["moge", "MoGE (ours)"]] as const) {
      const m = num((c[kind] as Row | undefined)?.mean);
      if (m !== null) imed.push({ transform: c.name, model: label, imed: m });
    }
    for (const [key, label] of [["paperMoE", "MoE (paper)"], ["paperMoGE", "MoGE (paper)"]]) {
      const m = num(c[key]);
      if (m !== null) imed.push({ transform: c.name, model: label, imed: m });
    }
  }
  const charts: Chart[] = [];
  if (imed.length > 0) {
    charts.push({
      id: "imed",
      caption: "Mean squared IMED between routing maps of an image and its transformed copy " +
        "(lower = more invariant; MoGE Table 1)",
      spec: imedChartSpec(imed),
    });
  }
  const mapsChart = routingMapsChart(
    maps,
    "Average routing map z per class (top row MoE, bottom row MoGE; MoGE Fig. 2)",
    10,
  );
  if (mapsChart) charts.push(mapsChart);
  for (const [kind, label] of [["moe", "MoE"], ["moge", "MoGE"]]) {
    const load = spec?.[kind]?.tokensPerExpert;
    if (Array.isArray(load) && load.length > 0 && load.every((x) => typeof x === "number")) {
      charts.push({
        id: `load-${kind}`,
        caption: `${label}: test images per expert (first choice)`,
        spec: barChartSpec(load as number[], {
          xLabel: "expert (row-major on the map)",
          yLabel: "images",
          width: 560,
          height: 260,
        }),
      });
    }
  }
  const figures = spec
    ? `<h2>Specialization</h2><table><tr><th>figure</th><th>MoE</th><th>MoGE</th></tr>${
      Object.keys(spec.moe ?? {}).filter((k) => num(spec.moe[k]) !== null).map((k) =>
        `<tr><th>${esc(k)}</th><td class="num">${esc(fmt(spec.moe[k]))}</td><td class="num">${
          esc(fmt(spec.moge?.[k] ?? ""))
        }</td></tr>`
      ).join("")
    }</table>`
    : "";
  const meta = `${esc(dir)} · ${esc(fmt(inv.testImages ?? "?"))} test images · MoGE lower in ${
    esc(fmt(inv.mogeLowerIn ?? "?"))
  } columns · written ${esc(new Date().toISOString())}`;
  const html = htmlPage(
    "moge: routing invariance (Table 1, Fig. 2)",
    meta,
    [
      `<h2>Charts</h2>`,
      await renderCharts(charts),
      figures,
      `<h2>Setup</h2>${kvTable(inv, ["columns", "specialization"])}`,
    ].join("\n"),
    false,
  );
  const path = `${dir}/${REPORT_FILE}`;
  await writeFileAtomic(path, html);
  return path;
}
