/**
 * Has training stopped improving? For each group of a sweep, its headline
 * figure (test accuracy; the LM's validation perplexity, the first it logs
 * during training) at each quarter of
 * training, mean over seeds with its 95 % interval, and the change over the
 * last quarter per seed. A single epoch's test accuracy jumps by points
 * from one epoch to the next, so each point is the mean over the last
 * `window` logged points up to it (5 % of the run's points, at least 1).
 *
 * @module
 */

import { type MeanCi, meanCi } from "./stats.ts";
import type { RunGroup } from "./sweep_groups.ts";
import { CURVE_X, finiteOrNull, METRICS } from "./sweep_metrics.ts";
import type { ModelKind, RunRecord } from "./sweep_runs.ts";

/** The quarters of training a learning-curve row reports. */
export const CURVE_FRACTIONS: readonly number[] = [0.25, 0.5, 0.75, 1];

/** One group's learning curve in numbers. */
export interface LearningCurveRow {
  /** Group label. */
  label: string;
  /** Which trainer. */
  model: ModelKind;
  /** The figure's key, e.g. "testAcc". */
  key: string;
  /** The figure's label, e.g. "test accuracy (%)". */
  metric: string;
  /** Which direction is better. */
  better: "higher" | "lower";
  /** Seeds. */
  seeds: number[];
  /** Logged points averaged into each value. */
  window: number;
  /** The epoch (step for the LM) of each point of {@linkcode CURVE_FRACTIONS}, from the first seed. */
  x: number[];
  /** Mean over seeds of each seed's windowed value at each fraction. */
  at: MeanCi[];
  /** Per seed: the value at the end minus the value at 75 %; mean and 95 % interval. */
  lastQuarter: MeanCi;
  /** Seeds whose figure got better over the last quarter. */
  improved: number;
}

/** The logged (x, y) points of one run, sorted by x. */
function points(
  run: RunRecord,
  x: string,
  y: (line: RunRecord["metrics"][number]) => number | null,
) {
  const out: [number, number][] = [];
  for (const line of run.metrics) {
    const xv = finiteOrNull(line[x]), yv = y(line);
    if (xv !== null && yv !== null) out.push([xv, yv]);
  }
  return out.sort((a, b) => a[0] - b[0]);
}

/**
 * One learning-curve row per group whose runs log their headline figure at
 * 4 or more points: the windowed value at a quarter, half, three quarters
 * and the end of each run (the last logged point at or before that fraction
 * of the run's last x), and the change over the last quarter.
 *
 * @param groups the groups
 * @param byGroup each group's runs, in its seed order
 * @returns the rows, in group order
 *
 * @example
 * ```ts
 * import { learningCurves } from "./sweep_learning_curve.ts";
 * const run = (seed: number) => ({
 *   id: `s${seed}`, dir: `s${seed}`, model: "classifier" as const, config: {}, summary: {},
 *   metrics: [1, 2, 3, 4].map((epoch) => ({ epoch, testAcc: 0.1 * epoch + 0.01 * seed })),
 * });
 * const group = { label: "all", model: "classifier" as const, config: {}, seeds: [0, 1], runs: [], metrics: {} };
 * const [row] = learningCurves([group], [[run(0), run(1)]]);
 * row.x; // [1, 2, 3, 4]
 * row.lastQuarter.mean; // 10 (points of accuracy)
 * ```
 */
export function learningCurves(groups: RunGroup[], byGroup: RunRecord[][]): LearningCurveRow[] {
  const rows: LearningCurveRow[] = [];
  groups.forEach((g, gi) => {
    const def = METRICS[g.model].find((m) => m.curve && m.better !== "neither");
    if (!def || def.better === "neither") return;
    const runs = byGroup[gi].map((r) => points(r, CURVE_X[g.model], def.curve!));
    if (!runs.length || runs.some((p) => p.length < 4)) return;
    const window = Math.max(1, Math.ceil(Math.min(...runs.map((p) => p.length)) / 20));
    const valueAt = (p: [number, number][], f: number) => {
      const target = f * p[p.length - 1][0];
      let i = 0;
      while (i + 1 < p.length && p[i + 1][0] <= target) i++;
      const w = p.slice(Math.max(0, i - window + 1), i + 1);
      return { x: p[i][0], y: w.reduce((s, q) => s + q[1], 0) / w.length };
    };
    const perSeed = runs.map((p) => CURVE_FRACTIONS.map((f) => valueAt(p, f)));
    const gains = perSeed.map((v) => v[3].y - v[2].y);
    rows.push({
      label: g.label,
      model: g.model,
      key: def.key,
      metric: def.label,
      better: def.better,
      seeds: g.seeds,
      window,
      x: perSeed[0].map((v) => v.x),
      at: CURVE_FRACTIONS.map((_, j) => meanCi(perSeed.map((v) => v[j].y))),
      lastQuarter: meanCi(gains),
      improved: gains.filter((d) => def.better === "higher" ? d > 0 : d < 0).length,
    });
  });
  return rows;
}
