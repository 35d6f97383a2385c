/**
 * The report page of a sweep (`report.html`, written by `deno task report`
 * beside report.md and report.json): the statistics of
 * `src/analysis/sweep_report.ts` as one self-contained page. The same
 * tables as report.md (groups with mean ± 95 % interval over seeds, MoGE vs
 * MoE paired by seed with p-values, Table 1 over seeds when measured), the
 * band charts inline, and each group's runs linked to their own pages.
 *
 * @module
 */

import { writeFileAtomic } from "../atomic.ts";
import { sweepCharts } from "../analysis/sweep_charts.ts";
import type { SweepReport } from "../analysis/sweep_report.ts";
import { reportIntro, sweepTables } from "../analysis/sweep_tables.ts";
import {
  basename,
  checkDir,
  escapeHtml as esc,
  htmlPage,
  htmlTable,
  renderCharts,
  REPORT_FILE,
} from "./html_page.ts";
import { writeRunReport } from "./run_page.ts";

/** Options of {@linkcode sweepReportHtml}. */
export interface SweepPageOptions {
  /**
   * The URL of run `id`'s page as seen from the sweep page, or undefined for
   * no link. Default: `<id>/report.html` (the page sits in the sweep directory).
   */
  runLink?: (id: string) => string | undefined;
}

function absolutePath(path: string): string {
  return path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
}

/** The link to run `id`'s page from a page in the sweep directory. */
function siblingRunLink(id: string): string {
  return `${encodeURIComponent(id)}/${REPORT_FILE}`;
}

/** The link from a page in `outDir` to a run page in `sweepDir/<id>`. */
function runLinkFrom(outDir: string, sweepDir: string): (id: string) => string {
  const norm = (p: string) => absolutePath(p).replace(/\/+$/, "").replace(/\/\.(?=\/|$)/g, "");
  if (norm(outDir) === norm(sweepDir)) return siblingRunLink;
  return (id) => encodeURI(`file://${norm(sweepDir)}/${id}/${REPORT_FILE}`);
}

/**
 * Builds the sweep page of a report as an HTML string (see the module doc).
 *
 * @param report the report, as computed by `deno task report` (report.json)
 * @param options where run links point
 * @returns the HTML document
 *
 * @example
 * ```ts
 * import { sweepReportHtml } from "./sweep_page.ts";
 * const html = await sweepReportHtml({
 *   sweepDir: "runs/x", date: "2026-01-01T00:00:00Z", unfinished: [], pairs: [], table1: [],
 *   curves: {},
 *   groups: [{
 *     label: "all runs", model: "lm", config: {}, seeds: [0], runs: ["s0"],
 *     metrics: { testPpl: { values: [120], ci: { n: 1, mean: 120, sd: null, halfWidth: null, lo: null, hi: null, level: 0.95 } } },
 *   }],
 * });
 * console.log(html.includes("120.00 (n = 1)")); // true
 * ```
 */
export async function sweepReportHtml(
  report: SweepReport,
  options: SweepPageOptions = {},
): Promise<string> {
  const link = options.runLink ?? siblingRunLink;
  const sections: string[] = [`<p>${esc(reportIntro(report))}</p>`];
  for (const t of sweepTables(report)) {
    sections.push(
      `<h2 id="${esc(t.id)}">${esc(t.title)}</h2>`,
      t.intro ? `<p>${esc(t.intro)}</p>` : "",
      htmlTable(t),
    );
  }
  const charts = sweepCharts(report).map((c) => ({
    id: c.file.replace(/\.svg$/, ""),
    caption: c.title,
    spec: c.spec,
  }));
  sections.push(`<h2>Charts</h2>`, await renderCharts(charts));
  const runRows = report.groups.map((g) => [
    esc(g.label),
    g.runs.map((id, k) => {
      const href = link(id);
      const text = `${esc(id)} (seed ${g.seeds[k]})`;
      return href === undefined ? text : `<a href="${esc(href)}">${text}</a>`;
    }).join(", "),
  ]);
  sections.push(
    `<h2>Runs</h2>`,
    htmlTable({ head: ["group", "runs"], rows: runRows }, [0, 1]),
  );
  const meta = `${esc(report.sweepDir)} · report of ${esc(report.date)} · written ${
    esc(new Date().toISOString())
  }`;
  return htmlPage(`moge sweep: ${basename(report.sweepDir)}`, meta, sections.join("\n"), false);
}

/**
 * Writes `report.html` for a sweep report into `outDir` (atomically), and
 * refreshes the page of each run of its groups (`writeRunReport`) so that
 * the links work.
 *
 * @param report the report, as computed by `deno task report`
 * @param outDir where to write (default the sweep directory)
 * @returns the path written
 * @throws when `outDir` is not a directory
 *
 * @example
 * ```ts
 * import { writeSweepReport } from "./sweep_page.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.mkdir(`${dir}/s0`);
 * await writeSweepReport({
 *   sweepDir: dir, date: "2026-01-01T00:00:00Z", unfinished: [], pairs: [], table1: [],
 *   curves: {},
 *   groups: [{ label: "all runs", model: "lm", config: {}, seeds: [0], runs: ["s0"], metrics: {} }],
 * });
 * // <dir>/report.html and <dir>/s0/report.html
 * ```
 */
export async function writeSweepReport(
  report: SweepReport,
  outDir: string = report.sweepDir,
): Promise<string> {
  await checkDir("writeSweepReport", outDir);
  for (const g of report.groups) {
    for (const id of g.runs) await writeRunReport(`${report.sweepDir}/${id}`);
  }
  const html = await sweepReportHtml(report, {
    runLink: runLinkFrom(outDir, report.sweepDir),
  });
  const path = `${outDir}/${REPORT_FILE}`;
  await writeFileAtomic(path, html);
  return path;
}
