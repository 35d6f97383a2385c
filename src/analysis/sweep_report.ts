/**
 * The report of a sweep: report.json (the groups, the MoE / MoGE
 * comparisons, Table 1 over seeds and the curves) and its report.md.
 *
 * @module
 */

import { type MeanCi, meanCi } from "./stats.ts";
import type { BandCurve } from "./sweep_curves.ts";
import type { GroupPair, RunGroup } from "./sweep_groups.ts";
import { METRICS } from "./sweep_metrics.ts";
import type { Table1Summary } from "./sweep_table1.ts";

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
}

function fmt(v: number | null | undefined, digits = 2): string {
  if (v === null || v === undefined) return "–";
  if (!Number.isFinite(v)) return String(v);
  return v.toFixed(digits);
}

function pval(p: number | null): string {
  if (p === null) return "–";
  return p < 0.001 ? p.toExponential(1) : p.toFixed(3);
}

function ciText(ci: MeanCi | null, digits: number): string {
  if (!ci) return "–";
  return ci.halfWidth === null
    ? `${fmt(ci.mean, digits)} (n = 1)`
    : `${fmt(ci.mean, digits)} ± ${fmt(ci.halfWidth, digits)}`;
}

function digitsOf(key: string): number {
  return key === "testReg" ? 4 : key === "deadExperts" || key === "trainSeconds" ? 1 : 2;
}

/**
 * report.md: groups with mean ± 95 % half-width, the MoE / MoGE comparisons,
 * Table 1 over seeds and links to the charts.
 *
 * @example
 * ```ts ignore
 * import { reportMarkdown } from "./sweep_report.ts";
 * const md = reportMarkdown(report, ["accuracy_vs_epoch.svg"]);
 * ```
 */
export function reportMarkdown(report: SweepReport, charts: string[]): string {
  const out: string[] = [];
  out.push(`# Sweep report: ${report.sweepDir}\n`);
  out.push(
    `${report.groups.reduce((s, g) => s + g.runs.length, 0)} finished runs in ` +
      `${report.groups.length} groups (runs that differ only in the seed).` +
      (report.unfinished.length ? ` Left out (unfinished): ${report.unfinished.join(", ")}.` : "") +
      ` Mean ± half-width of the 95 % Student-t interval over seeds.\n`,
  );
  const models = [...new Set(report.groups.map((g) => g.model))];
  for (const model of models) {
    const defs = METRICS[model];
    const gs = report.groups.filter((g) => g.model === model);
    out.push(`## Groups (${model})\n`);
    out.push(`| group | seeds | ${defs.map((d) => d.label).join(" | ")} |`);
    out.push(`|---|---|${defs.map(() => "---").join("|")}|`);
    for (const g of gs) {
      out.push(
        `| ${g.label} | ${g.seeds.join(", ")} | ${
          defs.map((d) => ciText(g.metrics[d.key].ci, digitsOf(d.key))).join(" | ")
        } |`,
      );
    }
    out.push("");
  }
  for (const p of report.pairs) {
    const moe = report.groups[p.moe], moge = report.groups[p.moge];
    const defs = METRICS[moge.model];
    out.push(`## MoGE (${moge.label}) vs MoE (${moe.label}), paired by seed\n`);
    out.push(
      `Difference = MoGE − MoE; p-values two-sided (paired t-test; Wilcoxon signed-rank, ` +
        `exact for n ≤ 25, zero differences dropped).\n`,
    );
    out.push(
      "| figure | n | MoE | MoGE | difference [95 % CI] | t-test p | Wilcoxon p | MoGE better |",
    );
    out.push("|---|---|---|---|---|---|---|---|");
    for (const m of p.metrics) {
      const d = defs.find((x) => x.key === m.key)!;
      const dg = digitsOf(m.key);
      const ci = m.t.ci;
      out.push(
        `| ${d.label} | ${m.seeds.length} | ${fmt(meanCi(m.moe).mean, dg)} | ${
          fmt(meanCi(m.moge).mean, dg)
        } | ${fmt(m.t.meanDiff, dg)} [${fmt(ci.lo, dg)}, ${fmt(ci.hi, dg)}] | ${pval(m.t.p)} | ${
          pval(m.wilcoxon.p)
        } | ${m.mogeBetter} of ${m.seeds.length} seeds (${d.better} is better) |`,
      );
    }
    out.push("");
  }
  for (const t of report.table1) {
    const moe = report.groups[t.pair.moe], moge = report.groups[t.pair.moge];
    out.push(`## Table 1 over seeds: MoGE (${moge.label}) vs MoE (${moe.label})\n`);
    out.push(
      `Mean squared IMED between the routing maps of test images and of transformed copies ` +
        `(lower = more invariant), mean ± 95 % half-width over seeds ${t.seeds.join(", ")}.\n`,
    );
    out.push(`| model | ${t.columns.map((c) => c.name).join(" | ")} |`);
    out.push(`|---|${t.columns.map(() => "---").join("|")}|`);
    out.push(`| MoE | ${t.columns.map((c) => ciText(c.moeCi, 4)).join(" | ")} |`);
    out.push(`| MoGE | ${t.columns.map((c) => ciText(c.mogeCi, 4)).join(" | ")} |`);
    out.push(
      `| MoGE lower in | ${
        t.columns.map((c) => `${c.mogeLower} of ${t.seeds.length}`).join(" | ")
      } |`,
    );
    out.push(`| paired t p | ${t.columns.map((c) => pval(c.t.p)).join(" | ")} |`);
    out.push("");
  }
  if (charts.length) {
    out.push("## Charts\n");
    for (const c of charts) out.push(`![${c}](${c})\n`);
  }
  return out.join("\n");
}
