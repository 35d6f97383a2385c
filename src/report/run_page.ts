/**
 * The report page of a run (`report.html` in its directory): charts of its
 * `metrics.jsonl` for whichever fields it logs (classifier, ViT and
 * language-model runs), the average routing maps per class from
 * `routing_maps.json` (MoGE Fig. 2), its summary and config. While a run has
 * no completed `summary.json` the page reloads itself every 30 s, so it can
 * be watched during training ({@linkcode writeRunReport} is meant to be
 * called after every epoch).
 *
 * @module
 */

import { writeFileAtomic } from "../atomic.ts";
import { finiteOrNull as num } from "../analysis/sweep_metrics.ts";
import { readJsonLinesLenient, readJsonOrNull } from "../sweep/run_files.ts";
import { barChartSpec, lineChartSpec, type LineSeries } from "./charts.ts";
import {
  basename,
  checkDir,
  escapeHtml as esc,
  htmlPage,
  kvTable,
  type PageChart as Chart,
  renderCharts,
  REPORT_FILE,
} from "./html_page.ts";
import { ROUTING_MAPS_FILE, routingMapsChart, type RoutingMapsFile } from "./routing_maps.ts";

type Row = Record<string, unknown>;

function numArray(v: unknown): number[] | undefined {
  return Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === "number")
    ? v as number[]
    : undefined;
}

/** One series per named field that has at least one finite value. */
function seriesOf(
  rows: Row[],
  x: string,
  fields: [string, string][],
): LineSeries[] {
  const out: LineSeries[] = [];
  for (const [field, name] of fields) {
    const points: [number, number][] = [];
    for (const r of rows) {
      const xv = num(r[x]), yv = num(r[field]);
      if (xv !== null && yv !== null) points.push([xv, yv]);
    }
    if (points.length > 0) out.push({ name, points });
  }
  return out;
}

/** Series of a per-layer field: `get(row)` gives one value per layer (or a single number). */
function layerSeries(
  rows: Row[],
  x: string,
  name: string,
  get: (r: Row) => (number | null | undefined)[] | number | undefined,
): LineSeries[] {
  const byLayer = new Map<number, [number, number][]>();
  let layers = 0;
  for (const r of rows) {
    const xv = num(r[x]);
    if (xv === null) continue;
    const v = get(r);
    const list = typeof v === "number" ? [v] : Array.isArray(v) ? v : [];
    layers = Math.max(layers, list.length);
    list.forEach((y, l) => {
      if (num(y) === null) return;
      if (!byLayer.has(l)) byLayer.set(l, []);
      byLayer.get(l)!.push([xv, y as number]);
    });
  }
  return [...byLayer.entries()].sort((a, b) => a[0] - b[0]).map(([l, points]) => ({
    name: layers > 1 ? `${name}, layer ${l}` : name,
    points,
  }));
}

function line(
  charts: Chart[],
  id: string,
  caption: string,
  series: LineSeries[],
  xLabel: string,
  yLabel: string,
): void {
  if (series.length === 0) return;
  charts.push({
    id,
    caption,
    spec: lineChartSpec(series, { xLabel, yLabel, width: 470, height: 260 }),
  });
}

/** Per-layer MoE metrics of the ViT (`trainMoe` / `testMoe`), if any. */
function moeLayers(r: Row, key: string): Row[] | undefined {
  const v = r[key];
  return Array.isArray(v) && v.every((x) => x && typeof x === "object") ? v as Row[] : undefined;
}

/** The charts of a run's metrics.jsonl, for whichever fields it logs. */
function runCharts(rows: Row[], maps: RoutingMapsFile | null): Chart[] {
  const charts: Chart[] = [];
  if (rows.length > 0) {
    const x = rows.some((r) => num(r.epoch) !== null) ? "epoch" : "step";
    const xl = x;
    line(
      charts,
      "loss",
      "Loss: training objective and cross-entropy (train), cross-entropy (test / validation)",
      seriesOf(rows, x, [
        ["trainLoss", "train loss"],
        ["trainCe", "train CE"],
        ["testCe", "test CE"],
        ["validCe", "validation CE"],
      ]),
      xl,
      "nats",
    );
    line(
      charts,
      "accuracy",
      "Accuracy (train, with routing noise; test)",
      seriesOf(rows, x, [["trainAcc", "train accuracy"], ["testAcc", "test accuracy"]]),
      xl,
      "accuracy",
    );
    line(
      charts,
      "perplexity",
      "Perplexity (train, dropout on; validation)",
      seriesOf(rows, x, [["trainPpl", "train perplexity"], ["validPpl", "validation perplexity"]]),
      xl,
      "perplexity",
    );
    const reg = [
      ...seriesOf(rows, x, [["trainReg", "train R(z)"], ["testReg", "test R(z)"]]),
      ...layerSeries(rows, x, "validation R(z)", (r) => numArray(r.validReg)),
      ...layerSeries(
        rows,
        x,
        "train R(z)",
        (r) => moeLayers(r, "trainMoe")?.map((m) => num(m.reg)),
      ),
      ...layerSeries(rows, x, "test R(z)", (r) => moeLayers(r, "testMoe")?.map((m) => num(m.reg))),
    ];
    line(charts, "reg", "Group-sparsity regularizer R(z) (MoGE Algorithm 1)", reg, xl, "R(z)");
    line(
      charts,
      "sigma",
      "σ of the Gaussian filter (annealed)",
      seriesOf(rows, x, [["sigma", "σ"]]),
      xl,
      "σ",
    );
    line(charts, "lr", "Learning rate", seriesOf(rows, x, [["lr", "learning rate"]]), xl, "lr");
    const dead = [
      ...layerSeries(rows, x, "dead experts", (r) => {
        const d = r.deadExperts;
        return typeof d === "number" ? d : numArray(d);
      }),
      ...layerSeries(
        rows,
        x,
        "dead experts (train)",
        (r) => moeLayers(r, "trainMoe")?.map((m) => num(m.deadExperts)),
      ),
    ];
    line(charts, "dead", "Dead experts (no token routed to them)", dead, xl, "experts");
    const drop = [
      ...seriesOf(rows, x, [["dropRate", "drop rate"]]),
      ...layerSeries(
        rows,
        x,
        "drop rate (train)",
        (r) => moeLayers(r, "trainMoe")?.map((m) => num(m.dropRate)),
      ),
    ];
    line(charts, "drop", "Drop rate (token choices over capacity)", drop, xl, "fraction");
    // Expert load of the last row that has one.
    for (let i = rows.length - 1; i >= 0; i--) {
      const r = rows[i];
      const at = `${x} ${num(r[x]) ?? "?"}`;
      const loads: number[][] = numArray(r.load)
        ? [r.load as number[]]
        : Array.isArray(r.load) && r.load.every((l) => numArray(l))
        ? r.load as number[][]
        : moeLayers(r, "trainMoe")?.map((m) => numArray(m.load) ?? []).filter((l) =>
          l.length > 0
        ) ?? [];
      if (loads.length === 0) continue;
      loads.forEach((load, l) => {
        charts.push({
          id: loads.length > 1 ? `load-${l}` : "load",
          caption: `Expert load histogram at ${at}${
            loads.length > 1 ? `, layer ${l}` : ""
          }: tokens routed to each expert (row-major on the expert map)`,
          spec: barChartSpec(load, { xLabel: "expert", yLabel: "tokens", width: 470, height: 260 }),
        });
      });
      break;
    }
  }
  const mapsChart = routingMapsChart(
    maps,
    `${maps?.title ?? "Average routing map z per class (MoGE Fig. 2)"}${
      maps?.epoch !== undefined ? `, epoch ${maps.epoch}` : ""
    }`,
    Math.min(maps?.panels?.length ?? 1, 10),
  );
  if (mapsChart) charts.push(mapsChart);
  return charts;
}

/**
 * Builds the report page of a run directory (see the module doc) as a string.
 *
 * @param runDir a run directory (config.json, metrics.jsonl, summary.json, routing_maps.json: any may be missing)
 * @returns the HTML document
 * @throws when `runDir` is not a directory
 *
 * @example
 * ```ts
 * import { buildRunReport } from "./run_page.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/metrics.jsonl`, '{"epoch":1,"testAcc":0.8}\n');
 * const html = await buildRunReport(dir);
 * console.log(html.includes('data-chart="accuracy"')); // true
 * ```
 */
export async function buildRunReport(runDir: string): Promise<string> {
  await checkDir("buildRunReport", runDir);
  const [config, summary, maps, rows] = await Promise.all([
    readJsonOrNull(`${runDir}/config.json`),
    readJsonOrNull(`${runDir}/summary.json`),
    readJsonOrNull(`${runDir}/${ROUTING_MAPS_FILE}`) as Promise<RoutingMapsFile | null>,
    readJsonLinesLenient(`${runDir}/metrics.jsonl`),
  ]);
  const charts = runCharts(rows, maps);
  const s = summary;
  const done = s !== null && s.completed !== false;
  const last = rows[rows.length - 1];
  const where = last
    ? (num(last.epoch) !== null ? `epoch ${last.epoch}` : `step ${last.step}`)
    : "no metrics yet";
  const meta = `${esc(runDir)} · ${esc(where)} · ${
    done ? "finished" : "running or stopped (this page reloads every 30 s)"
  } · written ${esc(new Date().toISOString())}`;
  const body = [
    `<h2>Charts</h2>`,
    await renderCharts(charts),
    s ? `<h2>Summary</h2>${kvTable(s, ["config"])}` : "",
    `<h2>Configuration</h2>${config ? kvTable(config) : "<p>(no config.json)</p>"}`,
  ].join("\n");
  return htmlPage(`moge run: ${basename(runDir)}`, meta, body, !done);
}

/**
 * Writes `report.html` into a run directory (atomically), from its current
 * files: call it at the end of every epoch so the page can be watched.
 *
 * @param runDir the run directory
 * @returns the path written
 *
 * @example
 * ```ts
 * import { writeRunReport } from "./run_page.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/metrics.jsonl`, '{"epoch":1,"trainLoss":2.1,"testCe":2.0}\n');
 * console.log(await writeRunReport(dir)); // <dir>/report.html
 * ```
 */
export async function writeRunReport(runDir: string): Promise<string> {
  const html = await buildRunReport(runDir);
  const path = `${runDir}/${REPORT_FILE}`;
  await writeFileAtomic(path, html);
  return path;
}
