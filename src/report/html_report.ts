/**
 * `report.html`: one self-contained page (inline SVG charts and CSS, no
 * script, no network) that shows how a run went, built from the files of its
 * directory: `config.json`, `metrics.jsonl`, `summary.json` and, when
 * present, `routing_maps.json` (the average routing map per class, MoGE
 * Fig. 2). Works for the classifier, ViT and language-model runs: a chart
 * appears only for the fields a run logs. While a run has no completed
 * `summary.json` the page reloads itself every 30 s, so it can be watched
 * during training ({@linkcode writeRunReport} is meant to be called after
 * every epoch).
 *
 * Also a page for a sweep directory (a directory of run directories:
 * {@linkcode writeSweepReport}) and for the output of the invariance
 * experiment ({@linkcode writeInvarianceReport}).
 *
 * Every chart is a Vega-Lite spec (see `./heatmap.ts`) rendered to SVG by
 * Vega in Deno.
 *
 * @module
 */

import { writeFileAtomic, writeJsonAtomic } from "../atomic.ts";
import {
  barChartSpec,
  type HeatmapPanel,
  heatmapSpec,
  lineChartSpec,
  type LineSeries,
} from "./heatmap.ts";
import { renderVegaLite, VEGA_LITE_SCHEMA, type VegaLiteSpec } from "./vega.ts";

/** The file name of the report page in a run, sweep or invariance directory. */
export const REPORT_FILE = "report.html";

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

type Row = Record<string, unknown>;

function num(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

function numArray(v: unknown): number[] | undefined {
  return Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === "number")
    ? v as number[]
    : undefined;
}

function esc(s: string): string {
  return String(s).replace(
    /[&<>"']/g,
    (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch]!,
  );
}

async function readJson(path: string): Promise<unknown> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    if (e instanceof SyntaxError) return undefined; // being rewritten: show what the rest says
    throw e;
  }
}

/**
 * Reads a JSON Lines file, skipping lines that do not parse (a run may be
 * writing its last line) and blank lines.
 *
 * @param path the file
 * @returns the parsed objects, in order ([] when the file does not exist)
 *
 * @example
 * ```ts
 * import { readJsonLines } from "./html_report.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/m.jsonl`, '{"epoch":1}\n{"epoch":2}\n{"epo');
 * console.log((await readJsonLines(`${dir}/m.jsonl`)).length); // 2
 * ```
 */
export async function readJsonLines(path: string): Promise<Record<string, unknown>[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  const rows: Row[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      const v = JSON.parse(line);
      if (v && typeof v === "object" && !Array.isArray(v)) rows.push(v);
    } catch {
      // a torn last line
    }
  }
  return rows;
}

/** A chart of the page: its id, caption and Vega-Lite spec. */
interface Chart {
  id: string;
  caption: string;
  spec: VegaLiteSpec;
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
      if (xv !== undefined && yv !== undefined) points.push([xv, yv]);
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
    if (xv === undefined) continue;
    const v = get(r);
    const list = typeof v === "number" ? [v] : Array.isArray(v) ? v : [];
    layers = Math.max(layers, list.length);
    list.forEach((y, l) => {
      if (num(y) === undefined) return;
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
function runCharts(rows: Row[], maps: RoutingMapsFile | undefined): Chart[] {
  const charts: Chart[] = [];
  if (rows.length > 0) {
    const x = rows.some((r) => num(r.epoch) !== undefined) ? "epoch" : "step";
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
    line(charts, "reg", "Group-sparsity regularizer R(z) (MoGE eq. 3)", reg, xl, "R(z)");
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
  if (maps && Array.isArray(maps.panels) && maps.panels.length > 0) {
    charts.push({
      id: "routing-maps",
      caption: `${maps.title ?? "Average routing map z per class (MoGE Fig. 2)"}${
        maps.epoch !== undefined ? `, epoch ${maps.epoch}` : ""
      }`,
      spec: heatmapSpec(maps.panels, {
        columns: maps.columns ?? Math.min(maps.panels.length, 10),
        cell: mapCell(maps.panels),
      }),
    });
  }
  return charts;
}

function mapCell(panels: HeatmapPanel[]): number {
  const side = Math.max(...panels.map((p) => Math.max(p.rows, p.cols)));
  return Math.max(3, Math.min(16, Math.floor(96 / side)));
}

const CSS = `
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1300px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#666;font-size:13px}
.charts{display:flex;flex-wrap:wrap;gap:16px}
figure.chart{margin:0;padding:8px;flex:0 1 auto;border:1px solid #ddd;border-radius:6px;background:#fff}
figure.chart figcaption{font-size:13px;color:#444;max-width:640px;margin-bottom:4px}
figure.chart svg{display:block;max-width:100%;height:auto}
table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
code,pre{font-size:12px}
`;

async function renderCharts(charts: Chart[]): Promise<string> {
  const parts: string[] = [];
  for (const c of charts) {
    const svg = await renderVegaLite(c.spec);
    parts.push(
      `<figure class="chart" data-chart="${esc(c.id)}"><figcaption>${
        esc(c.caption)
      }</figcaption>\n${svg}\n</figure>`,
    );
  }
  return parts.length > 0
    ? `<div class="charts">\n${parts.join("\n")}\n</div>`
    : `<p>No metrics yet.</p>`;
}

function fmt(v: unknown): string {
  if (typeof v === "number") {
    return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6)));
  }
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

/** A two-column table of an object's fields (nested objects flattened as a.b). */
function kvTable(obj: unknown, skip: string[] = []): string {
  if (!obj || typeof obj !== "object") return "<p>(none)</p>";
  const rows: string[] = [];
  const walk = (o: Record<string, unknown>, prefix: string) => {
    for (const [k, v] of Object.entries(o)) {
      if (skip.includes(prefix + k)) continue;
      if (v && typeof v === "object" && !Array.isArray(v)) {
        walk(v as Record<string, unknown>, `${prefix}${k}.`);
      } else {
        const cls = typeof v === "number" ? ` class="num"` : "";
        rows.push(`<tr><th>${esc(prefix + k)}</th><td${cls}>${esc(fmt(v))}</td></tr>`);
      }
    }
  };
  walk(obj as Record<string, unknown>, "");
  return `<table>${rows.join("")}</table>`;
}

function page(title: string, meta: string, body: string, refresh: boolean): string {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${refresh ? '<meta http-equiv="refresh" content="30">\n' : ""}<title>${esc(title)}</title>
<style>${CSS}</style></head>
<body>
<h1>${esc(title)}</h1>
<p class="meta">${meta}</p>
${body}
</body></html>
`;
}

function basename(path: string): string {
  const parts = path.replace(/\/+$/, "").split(/[\\/]/);
  return parts[parts.length - 1] || path;
}

async function checkDir(fn: string, dir: string): Promise<void> {
  if (typeof dir !== "string" || dir === "") {
    throw new TypeError(
      `${fn}: dir = ${JSON.stringify(dir)} is invalid: it must be a directory path`,
    );
  }
  let info;
  try {
    info = await Deno.stat(dir);
  } catch {
    throw new Deno.errors.NotFound(`${fn}: dir = ${dir} is invalid: it does not exist`);
  }
  if (!info.isDirectory) {
    throw new TypeError(`${fn}: dir = ${dir} is invalid: it is not a directory`);
  }
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
 * import { buildRunReport } from "./html_report.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/metrics.jsonl`, '{"epoch":1,"testAcc":0.8}\n');
 * const html = await buildRunReport(dir);
 * console.log(html.includes('data-chart="accuracy"')); // true
 * ```
 */
export async function buildRunReport(runDir: string): Promise<string> {
  await checkDir("buildRunReport", runDir);
  const [config, summary, maps, rows] = await Promise.all([
    readJson(`${runDir}/config.json`),
    readJson(`${runDir}/summary.json`),
    readJson(`${runDir}/${ROUTING_MAPS_FILE}`) as Promise<RoutingMapsFile | undefined>,
    readJsonLines(`${runDir}/metrics.jsonl`),
  ]);
  const charts = runCharts(rows, maps);
  const s = summary as Row | undefined;
  const done = s !== undefined && s.completed !== false;
  const last = rows[rows.length - 1];
  const where = last
    ? (num(last.epoch) !== undefined ? `epoch ${last.epoch}` : `step ${last.step}`)
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
  return page(`moge run: ${basename(runDir)}`, meta, body, !done);
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
 * import { writeRunReport } from "./html_report.ts";
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

/**
 * Writes the average routing maps per class of a run (MoGE Fig. 2) as
 * `routing_maps.json` in its directory, for {@linkcode writeRunReport}.
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
 * import { writeRoutingMaps } from "./html_report.ts";
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

async function isRunDir(dir: string): Promise<boolean> {
  for (const f of ["metrics.jsonl", "config.json", "summary.json"]) {
    try {
      await Deno.stat(`${dir}/${f}`);
      return true;
    } catch {
      // next
    }
  }
  return false;
}

/** Config fields whose values differ between runs (what the sweep varied). */
function varied(configs: (Row | undefined)[]): string[] {
  const keys = new Set<string>();
  for (const c of configs) for (const k of Object.keys(c ?? {})) keys.add(k);
  return [...keys].filter((k) => {
    if (k === "backendInfo" || k === "outDir") return false;
    const vals = new Set(configs.map((c) => JSON.stringify(c?.[k])));
    return vals.size > 1;
  }).sort();
}

/**
 * Builds and writes `report.html` for a sweep directory: a directory whose
 * subdirectories are run directories. Writes each run's own report too, and
 * links to them. The sweep page overlays every run's test accuracy, test (or
 * validation) cross-entropy and R(z), and tabulates the config fields that
 * vary with each run's final figures.
 *
 * @param sweepDir the sweep directory
 * @returns the path written
 * @throws when `sweepDir` is not a directory
 *
 * @example
 * ```ts
 * import { writeSweepReport } from "./html_report.ts";
 * const dir = await Deno.makeTempDir();
 * for (const lr of [0.01, 0.001]) {
 *   await Deno.mkdir(`${dir}/lr${lr}`);
 *   await Deno.writeTextFile(`${dir}/lr${lr}/config.json`, JSON.stringify({ lr }));
 *   await Deno.writeTextFile(`${dir}/lr${lr}/metrics.jsonl`, '{"epoch":1,"testAcc":0.5}\n');
 * }
 * console.log(await writeSweepReport(dir)); // <dir>/report.html
 * ```
 */
export async function writeSweepReport(sweepDir: string): Promise<string> {
  await checkDir("writeSweepReport", sweepDir);
  const names: string[] = [];
  for await (const e of Deno.readDir(sweepDir)) {
    if (e.isDirectory && await isRunDir(`${sweepDir}/${e.name}`)) names.push(e.name);
  }
  names.sort();
  const runs = await Promise.all(names.map(async (name) => {
    const dir = `${sweepDir}/${name}`;
    await writeRunReport(dir);
    return {
      name,
      config: await readJson(`${dir}/config.json`) as Row | undefined,
      summary: await readJson(`${dir}/summary.json`) as Row | undefined,
      rows: await readJsonLines(`${dir}/metrics.jsonl`),
    };
  }));
  const charts: Chart[] = [];
  const overlay = (id: string, caption: string, field: string, yLabel: string) => {
    const series: LineSeries[] = [];
    for (const r of runs) {
      const x = r.rows.some((m) => num(m.epoch) !== undefined) ? "epoch" : "step";
      series.push(...seriesOf(r.rows, x, [[field, r.name]]));
    }
    line(charts, id, caption, series, "epoch (or step)", yLabel);
  };
  overlay("test-acc", "Test accuracy of each run", "testAcc", "accuracy");
  overlay("test-ce", "Test cross-entropy of each run", "testCe", "nats");
  overlay("valid-ppl", "Validation perplexity of each run", "validPpl", "perplexity");
  overlay("test-reg", "Test R(z) of each run", "testReg", "R(z)");
  const keys = varied(runs.map((r) => r.config));
  const finals = ["testAcc", "testReg", "testCe", "validPpl", "bestValidPpl"];
  const head = ["run", ...keys, ...finals.map((f) => `final ${f}`), "state"];
  const body = runs.map((r) => {
    const last = r.rows[r.rows.length - 1] ?? {};
    const cells = [
      `<a href="${encodeURIComponent(r.name)}/${REPORT_FILE}">${esc(r.name)}</a>`,
      ...keys.map((k) => esc(r.config?.[k] === undefined ? "" : fmt(r.config[k]))),
      ...finals.map((f) => esc(fmt(num(r.summary?.[f]) ?? num(last[f]) ?? ""))),
      r.summary ? (r.summary.completed === false ? "stopped" : "finished") : "running",
    ];
    return `<tr>${cells.map((c) => `<td>${c}</td>`).join("")}</tr>`;
  });
  const table = `<table><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr>${
    body.join("")
  }</table>`;
  const running = runs.some((r) => !r.summary || r.summary.completed === false);
  const html = page(
    `moge sweep: ${basename(sweepDir)}`,
    `${esc(sweepDir)} · ${runs.length} runs · written ${esc(new Date().toISOString())}`,
    [`<h2>Runs</h2>`, table, `<h2>Charts</h2>`, await renderCharts(charts)].join("\n"),
    running,
  );
  const path = `${sweepDir}/${REPORT_FILE}`;
  await writeFileAtomic(path, html);
  return path;
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
 * import { writeInvarianceReport } from "./html_report.ts";
 * await writeInvarianceReport("runs/moge/invariance");
 * ```
 */
export async function writeInvarianceReport(dir: string): Promise<string> {
  await checkDir("writeInvarianceReport", dir);
  const inv = await readJson(`${dir}/invariance.json`) as Row | undefined;
  if (!inv || !Array.isArray(inv.columns)) {
    throw new Deno.errors.NotFound(
      `writeInvarianceReport: ${dir}/invariance.json is missing or has no "columns"`,
    );
  }
  const maps = await readJson(`${dir}/class_maps.json`) as RoutingMapsFile | undefined;
  const spec = (inv.specialization ?? await readJson(`${dir}/specialization.json`)) as
    | Record<string, Row>
    | undefined;
  const columns = inv.columns as Row[];
  const imed: Row[] = [];
  for (const c of columns) {
    for (const [kind, label] of [["moe", "MoE (ours)"], ["moge", "MoGE (ours)"]] as const) {
      const m = num((c[kind] as Row | undefined)?.mean);
      if (m !== undefined) imed.push({ transform: c.name, model: label, imed: m });
    }
    for (const [key, label] of [["paperMoE", "MoE (paper)"], ["paperMoGE", "MoGE (paper)"]]) {
      const m = num(c[key]);
      if (m !== undefined) imed.push({ transform: c.name, model: label, imed: m });
    }
  }
  const charts: Chart[] = [];
  if (imed.length > 0) {
    charts.push({
      id: "imed",
      caption: "Mean squared IMED between routing maps of an image and its transformed copy " +
        "(lower = more invariant; MoGE Table 1)",
      spec: {
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
      },
    });
  }
  if (maps && Array.isArray(maps.panels) && maps.panels.length > 0) {
    charts.push({
      id: "routing-maps",
      caption: "Average routing map z per class (top row MoE, bottom row MoGE; MoGE Fig. 2)",
      spec: heatmapSpec(maps.panels, { columns: maps.columns ?? 10, cell: mapCell(maps.panels) }),
    });
  }
  for (const [kind, label] of [["moe", "MoE"], ["moge", "MoGE"]]) {
    const load = numArray(spec?.[kind]?.tokensPerExpert);
    if (load) {
      charts.push({
        id: `load-${kind}`,
        caption: `${label}: test images per expert (first choice)`,
        spec: barChartSpec(load, {
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
      Object.keys(spec.moe ?? {}).filter((k) => num(spec.moe[k]) !== undefined).map((k) =>
        `<tr><th>${esc(k)}</th><td class="num">${esc(fmt(spec.moe[k]))}</td><td class="num">${
          esc(fmt(spec.moge?.[k] ?? ""))
        }</td></tr>`
      ).join("")
    }</table>`
    : "";
  const meta = `${esc(dir)} · ${esc(fmt(inv.testImages ?? "?"))} test images · MoGE lower in ${
    esc(fmt(inv.mogeLowerIn ?? "?"))
  } columns · written ${esc(new Date().toISOString())}`;
  const html = page(
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
