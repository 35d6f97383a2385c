/**
 * Curves over seeds: a figure over epochs (steps for the LM) per group, the
 * mean with its 95 % band at each x.
 *
 * @module
 */

import { meanCi } from "./stats.ts";
import { CHART_KEYS } from "./sweep_charts.ts";
import type { RunGroup } from "./sweep_groups.ts";
import { CURVE_X, finiteOrNull, METRICS } from "./sweep_metrics.ts";
import type { RunRecord } from "./sweep_runs.ts";

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
 * import { bandCurves } from "./sweep_curves.ts";
 * import { groupRuns } from "./sweep_groups.ts";
 * import { loadSweepRuns } from "./sweep_runs.ts";
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
        const x = finiteOrNull(line[xField]);
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

/**
 * The curves of a report: for each figure of `CHART_KEYS` that any group
 * logs, one band per group ({@linkcode bandCurves}).
 *
 * @param groups the groups
 * @param byGroup each group's runs, in its seed order
 * @returns figure key -> bands (figures without curves left out)
 *
 * @example
 * ```ts ignore
 * import { sweepCurves } from "./sweep_curves.ts";
 * import { groupRuns } from "./sweep_groups.ts";
 * import { loadSweepRuns } from "./sweep_runs.ts";
 * const { groups, byGroup } = groupRuns((await loadSweepRuns("runs/e64")).runs);
 * Object.keys(sweepCurves(groups, byGroup)); // ["testAcc", "testReg", "deadExperts"]
 * ```
 */
export function sweepCurves(
  groups: RunGroup[],
  byGroup: RunRecord[][],
): Record<string, BandCurve[]> {
  const curves: Record<string, BandCurve[]> = {};
  for (const key of CHART_KEYS) {
    const c = bandCurves(groups, byGroup, key);
    if (c.length) curves[key] = c;
  }
  return curves;
}
