/**
 * The content of a sweep report as text, once for both of its forms
 * (report.md and report.html): the opening summary and the tables (groups
 * with mean ± 95 % half-width, MoGE vs MoE paired by seed with p-values,
 * Table 1 over seeds).
 *
 * @module
 */

import { type MeanCi, meanCi } from "./stats.ts";
import { METRICS } from "./sweep_metrics.ts";
import { CURVE_FRACTIONS } from "./sweep_learning_curve.ts";
import type { SweepReport } from "./sweep_report.ts";

/** One table of the report: a heading, a sentence under it, the header row and the rows. */
export interface ReportTable {
  /** A stable id, e.g. "groups-classifier", "pair-0", "table1-0". */
  id: string;
  /** The heading. */
  title: string;
  /** A sentence under the heading ("" when none). */
  intro: string;
  /** Column headings. */
  head: string[];
  /** Rows of cell text, each as long as `head`. */
  rows: string[][];
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
 * The opening summary of a report: how many runs in how many groups, which
 * were left out, and what the ± means.
 *
 * @param report the report
 * @returns one paragraph of text
 *
 * @example
 * ```ts
 * import { reportIntro } from "./sweep_tables.ts";
 * reportIntro({ sweepDir: "runs/x", date: "", unfinished: ["b"], groups: [], pairs: [], table1: [], curves: {} });
 * // "0 finished runs in 0 groups (runs that differ only in the seed). Left out (unfinished): b. …"
 * ```
 */
export function reportIntro(report: SweepReport): string {
  return `${report.groups.reduce((s, g) => s + g.runs.length, 0)} finished runs in ` +
    `${report.groups.length} groups (runs that differ only in the seed).` +
    (report.unfinished.length ? ` Left out (unfinished): ${report.unfinished.join(", ")}.` : "") +
    ` Mean ± half-width of the 95 % Student-t interval over seeds.`;
}

/**
 * The tables of a report, in order: per model the groups (each figure's
 * mean ± 95 % half-width over seeds), per MoE / MoGE pair the paired
 * comparison (MoGE − MoE with its 95 % interval, paired t-test and Wilcoxon
 * p-values, MoGE better in k of n seeds), and Table 1 over seeds per pair
 * where it was measured.
 *
 * @param report the report
 * @returns the tables
 *
 * @example
 * ```ts
 * import { sweepTables } from "./sweep_tables.ts";
 * const tables = sweepTables({
 *   sweepDir: "runs/x", date: "", unfinished: [], pairs: [], table1: [], curves: {},
 *   groups: [{
 *     label: "all runs", model: "lm", config: {}, seeds: [0], runs: ["s0"],
 *     metrics: { testPpl: { values: [120], ci: { n: 1, mean: 120, sd: null, halfWidth: null, lo: null, hi: null, level: 0.95 } } },
 *   }],
 * });
 * tables[0].rows[0].slice(0, 3); // ["all runs", "0", "120.00 (n = 1)"]
 * ```
 */
export function sweepTables(report: SweepReport): ReportTable[] {
  const tables: ReportTable[] = [];
  const models = [...new Set(report.groups.map((g) => g.model))];
  for (const model of models) {
    const defs = METRICS[model];
    tables.push({
      id: `groups-${model}`,
      title: `Groups (${model})`,
      intro: "",
      head: ["group", "seeds", ...defs.map((d) => d.label)],
      rows: report.groups.filter((g) => g.model === model).map((g) => [
        g.label,
        g.seeds.join(", "),
        ...defs.map((d) => ciText(g.metrics[d.key]?.ci ?? null, digitsOf(d.key))),
      ]),
    });
  }
  for (const model of models) {
    const rows = (report.learningCurves ?? []).filter((r) => r.model === model);
    if (!rows.length) continue;
    const dg = digitsOf(rows[0].key);
    const xName = model === "lm" ? "step" : "epoch";
    const windows = [...new Set(rows.map((r) => r.window))];
    tables.push({
      id: `curve-${model}`,
      title: `Learning curves (${model}): ${rows[0].metric} during training`,
      intro: `Mean ± 95 % half-width over seeds of each seed's ${rows[0].metric}` +
        (windows.length === 1 && windows[0] === 1
          ? " at the last logged point up to each quarter of training"
          : `, averaged over the last ${windows.join(" / ")} logged points up to each quarter of ` +
            "training") +
        ` (${xName} in brackets). Last quarter: end − 75 % per seed, mean [95 % CI]. ` +
        "Under a cosine schedule the learning rate is small in the last quarter: a small change " +
        "there says as much about the schedule as about convergence.",
      head: [
        "group",
        "seeds",
        ...CURVE_FRACTIONS.map((f) => (f === 1 ? "end" : `${f * 100} %`)),
        "last quarter [95 % CI]",
        `${rows[0].better === "higher" ? "rose" : "fell"} in`,
      ],
      rows: rows.map((r) => [
        r.label,
        r.seeds.join(", "),
        ...r.at.map((ci, j) => `${ciText(ci, dg)} (${r.x[j]})`),
        `${fmt(r.lastQuarter.mean, dg)} [${fmt(r.lastQuarter.lo, dg)}, ${
          fmt(r.lastQuarter.hi, dg)
        }]`,
        `${r.improved} of ${r.seeds.length} seeds`,
      ]),
    });
  }
  report.pairs.forEach((p, i) => {
    const moe = report.groups[p.moe], moge = report.groups[p.moge];
    const defs = METRICS[moge.model];
    tables.push({
      id: `pair-${i}`,
      title: `MoGE (${moge.label}) vs MoE (${moe.label}), paired by seed`,
      intro: "Difference = MoGE − MoE; p-values two-sided (paired t-test; Wilcoxon signed-rank, " +
        "exact for n ≤ 25, zero differences dropped).",
      head: [
        "figure",
        "n",
        "MoE",
        "MoGE",
        "difference [95 % CI]",
        "t-test p",
        "Wilcoxon p",
        "MoGE better",
      ],
      rows: p.metrics.map((m) => {
        const d = defs.find((x) => x.key === m.key)!;
        const dg = digitsOf(m.key);
        const ci = m.t.ci;
        return [
          d.label,
          String(m.seeds.length),
          fmt(meanCi(m.moe).mean, dg),
          fmt(meanCi(m.moge).mean, dg),
          `${fmt(m.t.meanDiff, dg)} [${fmt(ci.lo, dg)}, ${fmt(ci.hi, dg)}]`,
          pval(m.t.p),
          pval(m.wilcoxon.p),
          d.better === "neither"
            ? `higher in ${m.mogeBetter} of ${m.seeds.length} seeds`
            : `${m.mogeBetter} of ${m.seeds.length} seeds (${d.better} is better)`,
        ];
      }),
    });
  });
  report.table1.forEach((t, i) => {
    const moe = report.groups[t.pair.moe], moge = report.groups[t.pair.moge];
    tables.push({
      id: `table1-${i}`,
      title: `Table 1 over seeds: MoGE (${moge.label}) vs MoE (${moe.label})`,
      intro: "Mean squared IMED between the routing maps of test images and of transformed " +
        "copies (lower = more invariant), mean ± 95 % half-width over seeds " +
        `${t.seeds.join(", ")}.`,
      head: ["model", ...t.columns.map((c) => c.name)],
      rows: [
        ["MoE", ...t.columns.map((c) => ciText(c.moeCi, 4))],
        ["MoGE", ...t.columns.map((c) => ciText(c.mogeCi, 4))],
        ["MoGE lower in", ...t.columns.map((c) => `${c.mogeLower} of ${t.seeds.length}`)],
        ["paired t p", ...t.columns.map((c) => pval(c.t.p))],
      ],
    });
  });
  return tables;
}
