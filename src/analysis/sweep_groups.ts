/**
 * Runs that differ only in their seed form a group (mean and 95 % Student-t
 * interval of each figure); each MoGE group is paired with its MoE group and
 * compared seed by seed (paired t-test, Wilcoxon signed-rank test, "MoGE
 * better in k of n seeds").
 *
 * @module
 */

import {
  type MeanCi,
  meanCi,
  type PairedTTest,
  pairedTTest,
  type WilcoxonResult,
  wilcoxonSignedRank,
} from "./stats.ts";
import { METRICS } from "./sweep_metrics.ts";
import type { Json, ModelKind, RunRecord } from "./sweep_runs.ts";

/** Config fields that do not define a group (the seed, and bookkeeping). */
const NOT_GROUPING = new Set(["seed", "backendInfo", "outDir"]);
/** Fields that only MoGE uses: ignored when looking for the MoE run to pair with. */
const MOGE_ONLY = new Set([
  "lambda",
  "sigmaMax",
  "sigmaMin",
  "gamma",
  "filter",
  "filterSize",
  "padding",
  "filterCentre",
]);

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
 * import { groupRuns } from "./sweep_groups.ts";
 * import { loadSweepRuns } from "./sweep_runs.ts";
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
  // The same config and seed twice (a run linked from two sweeps) would count as two seeds.
  for (const rs of lists) {
    for (let i = 1; i < rs.length; i++) {
      if (Number(rs[i].config.seed) === Number(rs[i - 1].config.seed)) {
        throw new RangeError(
          `runs ${rs[i - 1].dir} and ${rs[i].dir} have the same config and seed ` +
            `${rs[i].config.seed}: a group's statistics take each seed once; keep one of them`,
        );
      }
    }
  }
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
  t: PairedTTest;
  /** Wilcoxon signed-rank test of MoGE − MoE. */
  wilcoxon: WilcoxonResult;
  /** Seeds in which MoGE is strictly better (per the figure's direction; higher for "neither"). */
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
 * import { groupRuns, pairGroups } from "./sweep_groups.ts";
 * import { loadSweepRuns } from "./sweep_runs.ts";
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
      const better = b.filter((v, k) => m.better === "lower" ? v < a[k] : v > a[k]).length;
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
