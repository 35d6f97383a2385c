/**
 * The report of a sweep: report.json (the groups, the MoE / MoGE
 * comparisons, Table 1 over seeds and the curves) and its report.md (its
 * report.html is `src/report/sweep_page.ts`; both show the tables of
 * `./sweep_tables.ts`).
 *
 * @module
 */

import type { BandCurve } from "./sweep_curves.ts";
import type { GroupPair, RunGroup } from "./sweep_groups.ts";
import type { LearningCurveRow } from "./sweep_learning_curve.ts";
import type { LoadMap } from "./sweep_load_maps.ts";
import type { Table1Summary } from "./sweep_table1.ts";
import { reportIntro, sweepTables } from "./sweep_tables.ts";

/** The whole report (report.json). */
export interface SweepReport {
  /** The sweep directory. */
  sweepDir: string;
  /** ISO date. */
  date: string;
  /** Runs without a complete summary.json (left out). */
  unfinished: string[];
  /** The groups. */
  groups: RunGroup[];
  /** MoE / MoGE comparisons. */
  pairs: GroupPair[];
  /** Table 1 per pair, when measured. */
  table1: Table1Summary[];
  /** Curves: figure key -> one band per group. */
  curves: Record<string, BandCurve[]>;
  /** Test-load share per map position per classifier group (absent in older reports). */
  loadMaps?: LoadMap[];
  /** The headline figure at each quarter of training, per group (absent in older reports). */
  learningCurves?: LearningCurveRow[];
}

/**
 * report.md: the summary, the tables of {@linkcode sweepTables} (groups with
 * mean ± 95 % half-width, the MoE / MoGE comparisons, Table 1 over seeds)
 * and links to the charts.
 *
 * @param report the report
 * @param charts chart file names, relative to report.md
 * @returns the Markdown document
 *
 * @example
 * ```ts
 * import { reportMarkdown } from "./sweep_report.ts";
 * const md = reportMarkdown(
 *   { sweepDir: "runs/x", date: "", unfinished: [], groups: [], pairs: [], table1: [], curves: {} },
 *   ["accuracy_vs_epoch.svg"],
 * );
 * md.startsWith("# Sweep report: runs/x"); // true
 * ```
 */
export function reportMarkdown(report: SweepReport, charts: string[]): string {
  const out: string[] = [];
  out.push(`# Sweep report: ${report.sweepDir}\n`);
  out.push(`${reportIntro(report)}\n`);
  for (const t of sweepTables(report)) {
    out.push(`## ${t.title}\n`);
    if (t.intro) out.push(`${t.intro}\n`);
    out.push(`| ${t.head.join(" | ")} |`);
    out.push(`|${t.head.map(() => "---").join("|")}|`);
    for (const r of t.rows) out.push(`| ${r.join(" | ")} |`);
    out.push("");
  }
  if (charts.length) {
    out.push("## Charts\n");
    for (const c of charts) out.push(`![${c}](${c})\n`);
  }
  return out.join("\n");
}
