/**
 * The shell shared by the report pages (run, sweep, invariance): one
 * self-contained HTML document with inline CSS and inline SVG charts, no
 * script and no network; plus the small HTML helpers the pages are built
 * from (escaping, tables, the chart figures).
 *
 * @module
 */

import { renderVegaLite, type VegaLiteSpec } from "./vega.ts";

/** The file name of the report page in a run, sweep or invariance directory. */
export const REPORT_FILE = "report.html";

/** A chart of a page: its id (`data-chart`), caption and Vega-Lite spec. */
export interface PageChart {
  /** Id of the figure, in its `data-chart` attribute. */
  id: string;
  /** Caption above the chart. */
  caption: string;
  /** What to draw. */
  spec: VegaLiteSpec;
}

/** A table of a page: a header row and rows of cell text (escaped when rendered). */
export interface PageTable {
  /** Column headings. */
  head: string[];
  /** Rows of cells, each as long as `head`. */
  rows: string[][];
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

/**
 * Escapes text for HTML content and attribute values.
 *
 * @param s the text
 * @returns the text with `& < > " '` replaced by entities
 *
 * @example
 * ```ts
 * import { escapeHtml } from "./html_page.ts";
 * escapeHtml('T-shirt <top> & "co"'); // "T-shirt &lt;top&gt; &amp; &quot;co&quot;"
 * ```
 */
export function escapeHtml(s: string): string {
  return String(s).replace(
    /[&<>"']/g,
    (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch]!,
  );
}

/**
 * A JSON value as table text: integers as they are, other numbers to 6
 * significant digits, strings as they are, anything else as JSON.
 *
 * @param v the value
 * @returns its text
 *
 * @example
 * ```ts
 * import { formatValue } from "./html_page.ts";
 * formatValue(0.123456789); // "0.123457"
 * formatValue([1, 2]); // "[1,2]"
 * ```
 */
export function formatValue(v: unknown): string {
  if (typeof v === "number") {
    return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6)));
  }
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

/**
 * A two-column table of an object's fields (nested objects flattened as
 * `a.b`; numbers right-aligned).
 *
 * @param obj the object (anything else gives "(none)")
 * @param skip flattened keys to leave out
 * @returns the HTML table
 *
 * @example
 * ```ts
 * import { kvTable } from "./html_page.ts";
 * kvTable({ lr: 0.001, adam: { beta1: 0.9 } }, ["adam.beta1"]);
 * // '<table><tr><th>lr</th><td class="num">0.001</td></tr></table>'
 * ```
 */
export function kvTable(obj: unknown, skip: string[] = []): string {
  if (!obj || typeof obj !== "object") return "<p>(none)</p>";
  const rows: string[] = [];
  const walk = (o: Record<string, unknown>, prefix: string) => {
    for (const [k, v] of Object.entries(o)) {
      if (skip.includes(prefix + k)) continue;
      if (v && typeof v === "object" && !Array.isArray(v)) {
        walk(v as Record<string, unknown>, `${prefix}${k}.`);
      } else {
        const cls = typeof v === "number" ? ` class="num"` : "";
        rows.push(
          `<tr><th>${escapeHtml(prefix + k)}</th><td${cls}>${escapeHtml(formatValue(v))}</td></tr>`,
        );
      }
    }
  };
  walk(obj as Record<string, unknown>, "");
  return `<table>${rows.join("")}</table>`;
}

/**
 * An HTML table of cell text: every cell escaped, except those of the
 * columns in `raw`, which are inserted as they are (links built by the caller).
 *
 * @param table the header and rows
 * @param raw indices of columns whose cells are HTML already
 * @returns the HTML table
 *
 * @example
 * ```ts
 * import { htmlTable } from "./html_page.ts";
 * htmlTable({ head: ["group", "n"], rows: [["mode=moe", "3"]] });
 * // "<table><tr><th>group</th><th>n</th></tr><tr><td>mode=moe</td><td>3</td></tr></table>"
 * ```
 */
export function htmlTable(table: PageTable, raw: number[] = []): string {
  const head = table.head.map((h) => `<th>${escapeHtml(h)}</th>`).join("");
  const rows = table.rows.map((r) =>
    `<tr>${r.map((c, i) => `<td>${raw.includes(i) ? c : escapeHtml(c)}</td>`).join("")}</tr>`
  );
  return `<table><tr>${head}</tr>${rows.join("")}</table>`;
}

/**
 * Renders charts to inline SVG, each in a `<figure class="chart">` with its
 * caption, all in one flex container ("No metrics yet." when there are none).
 *
 * @param charts the charts, in page order
 * @returns the HTML
 *
 * @example
 * ```ts
 * import { renderCharts } from "./html_page.ts";
 * import { barChartSpec } from "./charts.ts";
 * const html = await renderCharts([{ id: "load", caption: "load", spec: barChartSpec([3, 1]) }]);
 * console.log(html.includes('data-chart="load"')); // true
 * ```
 */
export async function renderCharts(charts: PageChart[]): Promise<string> {
  const parts: string[] = [];
  for (const c of charts) {
    const svg = await renderVegaLite(c.spec);
    parts.push(
      `<figure class="chart" data-chart="${escapeHtml(c.id)}"><figcaption>${
        escapeHtml(c.caption)
      }</figcaption>\n${svg}\n</figure>`,
    );
  }
  return parts.length > 0
    ? `<div class="charts">\n${parts.join("\n")}\n</div>`
    : `<p>No metrics yet.</p>`;
}

/**
 * The whole document: title, a line of meta data, the body, and optionally
 * a refresh every 30 s (for a page written while a run is going).
 *
 * @param title the page title (escaped)
 * @param meta the line under the title (HTML)
 * @param body the content (HTML)
 * @param refresh whether the page reloads itself every 30 s
 * @returns the HTML document
 *
 * @example
 * ```ts
 * import { htmlPage } from "./html_page.ts";
 * const doc = htmlPage("moge run: a", "finished", "<p>hello</p>", false);
 * console.log(doc.startsWith("<!DOCTYPE html>")); // true
 * ```
 */
export function htmlPage(title: string, meta: string, body: string, refresh: boolean): string {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${refresh ? '<meta http-equiv="refresh" content="30">\n' : ""}<title>${escapeHtml(title)}</title>
<style>${CSS}</style></head>
<body>
<h1>${escapeHtml(title)}</h1>
<p class="meta">${meta}</p>
${body}
</body></html>
`;
}

/**
 * The last component of a path (trailing slashes ignored).
 *
 * @param path a file or directory path
 * @returns its name
 *
 * @example
 * ```ts
 * import { basename } from "./html_page.ts";
 * basename("runs/e64/"); // "e64"
 * ```
 */
export function basename(path: string): string {
  const parts = path.replace(/\/+$/, "").split(/[\\/]/);
  return parts[parts.length - 1] || path;
}

/**
 * Throws an error naming the function and value unless `dir` is an existing
 * directory.
 *
 * @param fn the caller's name, for the message
 * @param dir the path to check
 * @throws TypeError (not a string, or not a directory), Deno.errors.NotFound
 *
 * @example
 * ```ts
 * import { checkDir } from "./html_page.ts";
 * await checkDir("writeRunReport", await Deno.makeTempDir()); // fine
 * ```
 */
export async function checkDir(fn: string, dir: string): Promise<void> {
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
