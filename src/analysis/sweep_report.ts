/**
 * The report of a sweep: runs that differ only in their seed form a group;
 * per group the mean and 95 % Student-t interval of each final figure; MoE
 * against MoGE paired by seed (mean difference with its interval, paired
 * t-test, Wilcoxon signed-rank test, "MoGE better in k of n seeds");
 * optionally Table 1 over seed pairs; curves over epochs with a band over
 * seeds. Reads what `deno task train` writes (config.json, summary.json,
 * metrics.jsonl) for the classifier, the ViT and the LM.
 *
 * @module
 */

import { type MeanCi, meanCi, pairedTTest, wilcoxonSignedRank } from "./stats.ts";
import type { Table1Column } from "./table1.ts";

/** Which trainer wrote a run. */
export type ModelKind = "classifier" | "vit" | "lm";

/** A parsed JSON object (config.json, summary.json, a metrics.jsonl line). */
export type Json = Record<string, unknown>;

/** One finished run. */
export interface RunRecord {
  /** Directory name in the sweep. */
  id: string;
  /** Run directory. */
  dir: string;
  /** Which trainer wrote it. */
  model: ModelKind;
  /** config.json. */
  config: Json;
  /** summary.json. */
  summary: Json;
  /** metrics.jsonl, one object per line. */
  metrics: Json[];
}

/** A figure read from a run. */
export interface MetricDef {
  /** Key in the report, e.g. "testAcc". */
  key: string;
  /** Label, e.g. "test accuracy (%)". */
  label: string;
  /** Which direction is better. */
  better: "higher" | "lower";
  /** The final value of a run (null when the run lacks it). */
  final: (run: RunRecord) => number | null;
  /** The value on one metrics.jsonl line (for curves), if it has one. */
  curve?: (line: Json) => number | null;
}

function num(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

function meanOf(xs: unknown): number | null {
  if (!Array.isArray(xs)) return null;
  const v = xs.map(num).filter((x): x is number => x !== null);
  return v.length ? v.reduce((s, x) => s + x, 0) / v.length : null;
}

function sumOf(xs: unknown): number | null {
  if (!Array.isArray(xs)) return null;
  const v = xs.map(num).filter((x): x is number => x !== null);
  return v.length ? v.reduce((s, x) => s + x, 0) : null;
}

function last(run: RunRecord): Json {
  return run.metrics.at(-1) ?? {};
}

function pct(v: number | null): number | null {
  return v === null ? null : 100 * v;
}

function layers(line: Json, field: string): Json[] {
  const v = line[field];
  return Array.isArray(v) ? v as Json[] : [];
}

const deadVit = (l: Json) => sumOf(layers(l, "trainMoe").map((m) => m.deadExperts));
const dropVit = (l: Json) => pct(meanOf(layers(l, "trainMoe").map((m) => m.dropRate)));

/**
 * The figures of each model: test accuracy (perplexity for the LM), mean
 * R(z) on the test set, dead experts and drop rate of the last epoch (of the
 * last evaluation for the LM; summed over MoE layers for the ViT and LM),
 * training seconds. The first is the one MoE and MoGE are compared on.
 *
 * @example
 * ```ts
 * import { METRICS } from "./sweep_report.ts";
 * METRICS.lm[0].key; // "testPpl"
 * ```
 */
export const METRICS: Record<ModelKind, MetricDef[]> = {
  classifier: [
    {
      key: "testAcc",
      label: "test accuracy (%)",
      better: "higher",
      final: (r) => pct(num(r.summary.testAcc)),
      curve: (l) => pct(num(l.testAcc)),
    },
    {
      key: "testReg",
      label: "mean R(z), test",
      better: "lower",
      final: (r) => num(r.summary.testReg),
      curve: (l) => num(l.testReg),
    },
    {
      key: "deadExperts",
      label: "dead experts",
      better: "lower",
      final: (r) => num(last(r).deadExperts),
      curve: (l) => num(l.deadExperts),
    },
    {
      key: "dropRate",
      label: "dropped (%)",
      better: "lower",
      final: (r) => pct(num(last(r).dropRate)),
      curve: (l) => pct(num(l.dropRate)),
    },
    {
      key: "trainSeconds",
      label: "train time (s)",
      better: "lower",
      final: (r) => num(r.summary.trainSeconds),
    },
  ],
  vit: [
    {
      key: "testAcc",
      label: "test accuracy (%)",
      better: "higher",
      final: (r) => pct(num(r.summary.testAcc)),
      curve: (l) => pct(num(l.testAcc)),
    },
    {
      key: "testReg",
      label: "mean R(z), test (mean over MoE layers)",
      better: "lower",
      final: (r) => meanOf(layers(r.summary, "testMoe").map((m) => m.reg)),
      curve: (l) => meanOf(layers(l, "testMoe").map((m) => m.reg)),
    },
    {
      key: "deadExperts",
      label: "dead experts (all MoE layers)",
      better: "lower",
      final: (r) => deadVit(last(r)),
      curve: deadVit,
    },
    {
      key: "dropRate",
      label: "dropped (%, mean over MoE layers)",
      better: "lower",
      final: (r) => dropVit(last(r)),
      curve: dropVit,
    },
    {
      key: "trainSeconds",
      label: "train time (s)",
      better: "lower",
      final: (r) => num(r.summary.trainSeconds),
    },
  ],
  lm: [
    {
      key: "testPpl",
      label: "test perplexity",
      better: "lower",
      final: (r) => num(r.summary.testPpl),
    },
    {
      key: "validPpl",
      label: "validation perplexity",
      better: "lower",
      final: (r) => num(r.summary.validPpl),
      curve: (l) => num(l.validPpl),
    },
    {
      key: "testReg",
      label: "mean R(z), test (mean over layers)",
      better: "lower",
      final: (r) => meanOf(r.summary.testReg),
      curve: (l) => meanOf(l.validReg),
    },
    {
      key: "deadExperts",
      label: "dead experts (all layers)",
      better: "lower",
      final: (r) => sumOf(last(r).deadExperts),
      curve: (l) => sumOf(l.deadExperts),
    },
    {
      key: "dropRate",
      label: "dropped (%)",
      better: "lower",
      final: (r) => pct(num(last(r).dropRate)),
      curve: (l) => pct(num(l.dropRate)),
    },
    {
      key: "trainSeconds",
      label: "train time (s)",
      better: "lower",
      final: (r) => num(r.summary.trainSeconds),
    },
  ],
};

/** The x of a curve: epochs, or steps for the LM. */
export const CURVE_X: Record<ModelKind, "epoch" | "step"> = {
  classifier: "epoch",
  vit: "epoch",
  lm: "step",
};

/**
 * Which trainer wrote a summary: the LM's has `testPpl`, the ViT's `moeBlocks`.
 *
 * @example
 * ```ts
 * import { modelOf } from "./sweep_report.ts";
 * modelOf({ testPpl: 120 }); // "lm"
 * ```
 */
export function modelOf(summary: Json): ModelKind {
  if ("testPpl" in summary) return "lm";
  if ("moeBlocks" in summary || "testMoe" in summary) return "vit";
  return "classifier";
}

async function readJson(path: string): Promise<Json | null> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new Error(`${path}: ${(e as Error).message}`);
  }
}

/**
 * Loads the finished runs of a sweep directory (the runs of its sweep.json,
 * else every subdirectory with a config.json); unfinished ones are listed
 * apart.
 *
 * @example
 * ```ts ignore
 * import { loadSweepRuns } from "./sweep_report.ts";
 * const { runs, unfinished } = await loadSweepRuns("runs/e64");
 * ```
 */
export async function loadSweepRuns(
  sweepDir: string,
): Promise<{ runs: RunRecord[]; unfinished: string[] }> {
  const manifest = await readJson(`${sweepDir}/sweep.json`);
  let ids: string[];
  if (manifest && Array.isArray(manifest.runs)) {
    ids = (manifest.runs as Json[]).map((r) => String(r.id));
  } else {
    ids = [];
    try {
      for await (const e of Deno.readDir(sweepDir)) {
        if (e.isDirectory && await readJson(`${sweepDir}/${e.name}/config.json`)) ids.push(e.name);
      }
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new RangeError(`${sweepDir}: no such directory (expected a sweep, runs/<name>)`);
      }
      throw e;
    }
    ids.sort();
  }
  const runs: RunRecord[] = [];
  const unfinished: string[] = [];
  for (const id of ids) {
    const dir = `${sweepDir}/${id}`;
    const config = await readJson(`${dir}/config.json`);
    const summary = await readJson(`${dir}/summary.json`);
    if (!config || !summary || summary.completed !== true) {
      unfinished.push(id);
      continue;
    }
    let metrics: Json[] = [];
    try {
      metrics = (await Deno.readTextFile(`${dir}/metrics.jsonl`)).split("\n")
        .filter((l) => l.trim()).map((l) => JSON.parse(l));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    runs.push({ id, dir, model: modelOf(summary), config, summary, metrics });
  }
  return { runs, unfinished };
}

/** Config fields that do not define a group (the seed, and bookkeeping). */
const NOT_GROUPING = new Set(["seed", "backendInfo", "outDir"]);
/** Fields that only MoGE uses: ignored when looking for the MoE run to pair with. */
const MOGE_ONLY = new Set(["lambda", "sigmaMax", "sigmaMin", "gamma", "filter", "filterSize"]);

function configKey(config: Json, drop: Set<string>): string {
  const keys = Object.keys(config).filter((k) => !drop.has(k)).sort();
  return JSON.stringify(keys.map((k) => [k, config[k]]));
}

/** A figure over the seeds of a group. */
export interface GroupMetric {
  /** Per seed (in the group's seed order; null where the run lacks it). */
  values: (number | null)[];
  /** Mean and 95 % interval of the non-null values (null when there are none). */
  ci: MeanCi | null;
}

/** Runs that differ only in their seed. */
export interface RunGroup {
  /** The config values that tell this group from the others, e.g. "mode=moge". */
  label: string;
  /** Which trainer. */
  model: ModelKind;
  /** The shared config (seed removed). */
  config: Json;
  /** Seeds, ascending. */
  seeds: number[];
  /** Run ids, in seed order. */
  runs: string[];
  /** Figure key -> values and interval. */
  metrics: Record<string, GroupMetric>;
}

/**
 * Groups runs by their config without the seed, labels each group by the
 * fields that differ between groups, and summarizes every figure.
 *
 * @example
 * ```ts ignore
 * import { groupRuns, loadSweepRuns } from "./sweep_report.ts";
 * const groups = groupRuns((await loadSweepRuns("runs/e64")).runs);
 * ```
 */
export function groupRuns(runs: RunRecord[]): { groups: RunGroup[]; byGroup: RunRecord[][] } {
  const map = new Map<string, RunRecord[]>();
  for (const r of runs) {
    const k = r.model + configKey(r.config, NOT_GROUPING);
    map.set(k, [...(map.get(k) ?? []), r]);
  }
  const lists = [...map.values()].map((rs) =>
    rs.sort((a, b) => Number(a.config.seed) - Number(b.config.seed))
  );
  // Fields whose values differ between groups name the groups.
  const fields = new Set<string>();
  for (const rs of lists) for (const k of Object.keys(rs[0].config)) fields.add(k);
  const differing = [...fields].filter((f) =>
    !NOT_GROUPING.has(f) &&
    new Set(lists.map((rs) => JSON.stringify(rs[0].config[f]))).size > 1
  );
  const groups = lists.map((rs) => {
    const model = rs[0].model;
    const config = { ...rs[0].config };
    delete config.seed;
    const metrics: Record<string, GroupMetric> = {};
    for (const m of METRICS[model]) {
      const values = rs.map((r) => m.final(r));
      const present = values.filter((v): v is number => v !== null);
      metrics[m.key] = { values, ci: present.length ? meanCi(present) : null };
    }
    const label = differing.map((f) => `${f}=${String(rs[0].config[f])}`).join(", ") ||
      (lists.length === 1 ? "all runs" : model);
    return {
      label,
      model,
      config,
      seeds: rs.map((r) => Number(r.config.seed)),
      runs: rs.map((r) => r.id),
      metrics,
    };
  });
  return { groups, byGroup: lists };
}

/** MoGE against MoE on one figure, paired by seed. */
export interface PairedMetric {
  /** Figure key. */
  key: string;
  /** Seeds present in both groups (with the figure). */
  seeds: number[];
  /** MoE value per seed. */
  moe: number[];
  /** MoGE value per seed. */
  moge: number[];
  /** Paired t-test of MoGE − MoE (with the 95 % interval of the mean difference). */
  t: ReturnType<typeof pairedTTest>;
  /** Wilcoxon signed-rank test of MoGE − MoE. */
  wilcoxon: ReturnType<typeof wilcoxonSignedRank>;
  /** Seeds in which MoGE is strictly better (per the figure's direction). */
  mogeBetter: number;
}

/** A MoE group and the MoGE group that differs from it only in mode (and MoGE-only settings). */
export interface GroupPair {
  /** Index of the MoE group. */
  moe: number;
  /** Index of the MoGE group. */
  moge: number;
  /** Per figure. */
  metrics: PairedMetric[];
}

/**
 * Pairs each MoGE group with its MoE group (same config but the mode; if none,
 * same config but the mode and MoGE-only settings such as λ and σ) and
 * compares them seed by seed.
 *
 * @example
 * ```ts ignore
 * import { groupRuns, loadSweepRuns, pairGroups } from "./sweep_report.ts";
 * const { groups } = groupRuns((await loadSweepRuns("runs/e64")).runs);
 * const pairs = pairGroups(groups);
 * ```
 */
export function pairGroups(groups: RunGroup[]): GroupPair[] {
  const pairs: GroupPair[] = [];
  const exact = new Set(["mode"]);
  const loose = new Set(["mode", ...MOGE_ONLY]);
  groups.forEach((g, j) => {
    if (g.config.mode !== "moge") return;
    const find = (drop: Set<string>) =>
      groups.findIndex((h) =>
        h.config.mode === "moe" && h.model === g.model &&
        configKey(h.config, drop) === configKey(g.config, drop)
      );
    let i = find(exact);
    if (i < 0) i = find(loose);
    if (i < 0) return;
    const moe = groups[i];
    const metrics: PairedMetric[] = [];
    for (const m of METRICS[g.model]) {
      const seeds: number[] = [], a: number[] = [], b: number[] = [];
      g.seeds.forEach((s, k) => {
        const i2 = moe.seeds.indexOf(s);
        const vb = g.metrics[m.key].values[k];
        const va = i2 >= 0 ? moe.metrics[m.key].values[i2] : null;
        if (va !== null && vb !== null) {
          seeds.push(s);
          a.push(va);
          b.push(vb);
        }
      });
      if (seeds.length === 0) continue;
      const better = b.filter((v, k) => m.better === "higher" ? v > a[k] : v < a[k]).length;
      metrics.push({
        key: m.key,
        seeds,
        moe: a,
        moge: b,
        t: pairedTTest(b, a),
        wilcoxon: wilcoxonSignedRank(b, a),
        mogeBetter: better,
      });
    }
    pairs.push({ moe: i, moge: j, metrics });
  });
  return pairs;
}

/** Table 1 over the seeds of a group pair. */
export interface Table1Summary {
  /** The pair. */
  pair: { moe: number; moge: number };
  /** Seeds measured. */
  seeds: number[];
  /** Per column: values per seed, intervals, and how often MoGE is lower. */
  columns: {
    name: string;
    moe: number[];
    moge: number[];
    moeCi: MeanCi;
    mogeCi: MeanCi;
    mogeLower: number;
    t: ReturnType<typeof pairedTTest>;
  }[];
}

/**
 * Summarizes Table 1 measured for each seed of a pair: per column, mean IMED
 * ± 95 % interval for each model, and in how many seeds MoGE's is lower.
 *
 * @example
 * ```ts
 * import { summarizeTable1 } from "./sweep_report.ts";
 * const s = summarizeTable1({ moe: 0, moge: 1 }, [0, 1], [
 *   [{ name: "rotation 5", moe: 0.2, moge: 0.1 }],
 *   [{ name: "rotation 5", moe: 0.3, moge: 0.4 }],
 * ]);
 * s.columns[0].mogeLower; // 1
 * ```
 */
export function summarizeTable1(
  pair: { moe: number; moge: number },
  seeds: number[],
  perSeed: Table1Column[][],
): Table1Summary {
  if (perSeed.length !== seeds.length || seeds.length === 0) {
    throw new RangeError(
      `summarizeTable1: ${perSeed.length} measurements for ${seeds.length} seeds`,
    );
  }
  const names = perSeed[0].map((c) => c.name);
  return {
    pair,
    seeds,
    columns: names.map((name, i) => {
      const moe = perSeed.map((cols) => cols[i].moe);
      const moge = perSeed.map((cols) => cols[i].moge);
      return {
        name,
        moe,
        moge,
        moeCi: meanCi(moe),
        mogeCi: meanCi(moge),
        mogeLower: moge.filter((v, k) => v < moe[k]).length,
        t: pairedTTest(moge, moe),
      };
    }),
  };
}

/** A curve over seeds: mean and 95 % band per x. */
export interface BandCurve {
  /** Group label. */
  label: string;
  /** x (epoch or step). */
  x: number[];
  /** Mean over the seeds that have this x. */
  mean: number[];
  /** Lower end of the 95 % interval (null with one seed). */
  lo: (number | null)[];
  /** Upper end. */
  hi: (number | null)[];
  /** Seeds at each x. */
  n: number[];
}

/**
 * A figure over epochs (steps for the LM) for each group: mean over seeds
 * with its 95 % interval at each x.
 *
 * @example
 * ```ts ignore
 * import { bandCurves, groupRuns, loadSweepRuns } from "./sweep_report.ts";
 * const { groups, byGroup } = groupRuns((await loadSweepRuns("runs/e64")).runs);
 * const curves = bandCurves(groups, byGroup, "testAcc");
 * ```
 */
export function bandCurves(
  groups: RunGroup[],
  byGroup: RunRecord[][],
  key: string,
): BandCurve[] {
  const out: BandCurve[] = [];
  groups.forEach((g, gi) => {
    const def = METRICS[g.model].find((m) => m.key === key);
    if (!def?.curve) return;
    const xField = CURVE_X[g.model];
    const byX = new Map<number, number[]>();
    for (const r of byGroup[gi]) {
      for (const line of r.metrics) {
        const x = num(line[xField]);
        const y = def.curve(line);
        if (x === null || y === null) continue;
        byX.set(x, [...(byX.get(x) ?? []), y]);
      }
    }
    const xs = [...byX.keys()].sort((a, b) => a - b);
    if (!xs.length) return;
    const cis = xs.map((x) => meanCi(byX.get(x)!));
    out.push({
      label: g.label,
      x: xs,
      mean: cis.map((c) => c.mean),
      lo: cis.map((c) => c.lo),
      hi: cis.map((c) => c.hi),
      n: cis.map((c) => c.n),
    });
  });
  return out;
}

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
