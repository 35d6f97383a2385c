/**
 * Where on the expert map the test images go: each classifier group's share
 * of the last evaluation's test load per map position (mean over seeds), and
 * the share on the map's border ring. Algorithm 1's "valid" windows cover a
 * border expert fewer times than an interior one, so MoGE's pull toward the
 * edges (or away from them, with other padding) shows here.
 *
 * @module
 */

import { topographicLayout } from "../moge/layout.ts";
import type { RunGroup } from "./sweep_groups.ts";
import type { RunRecord } from "./sweep_runs.ts";

/** A group's mean test-load share per map position. */
export interface LoadMap {
  /** Group label. */
  label: string;
  /** Map rows r. */
  rows: number;
  /** Map columns c. */
  cols: number;
  /** Mean over seeds of each expert's share of the test images, `[r * c]`, row-major, sums to 1. */
  share: number[];
  /** Runs averaged. */
  runs: number;
}

/** A load vector as numbers, or null when it is missing, empty or all zero. */
function loadOf(v: unknown): number[] | null {
  if (!Array.isArray(v) || v.length === 0) return null;
  if (!v.every((x) => typeof x === "number" && Number.isFinite(x) && x >= 0)) return null;
  return v.reduce((s, x) => s + x, 0) > 0 ? v as number[] : null;
}

/**
 * Share of a load vector on the border ring of its E = r × c map (row 0,
 * row r − 1, column 0, column c − 1 of {@linkcode topographicLayout}); null
 * when the map has fewer than 3 rows (every position is on the border) or
 * the load is missing or all zero.
 *
 * @param load images (or tokens) per expert, `[E]`
 * @returns the border's share in [0, 1], or null
 *
 * @example
 * ```ts
 * import { borderShare } from "./sweep_load_maps.ts";
 * // E = 9 is a 3 x 3 map: 8 border positions and the centre (index 4).
 * borderShare([0, 0, 0, 0, 6, 0, 0, 0, 2]); // 0.25
 * ```
 */
export function borderShare(load: unknown): number | null {
  const l = loadOf(load);
  if (!l) return null;
  const { rows, cols } = topographicLayout(l.length, 1);
  if (rows < 3) return null;
  let border = 0, total = 0;
  l.forEach((v, i) => {
    const r = Math.floor(i / cols), c = i % cols;
    total += v;
    if (r === 0 || r === rows - 1 || c === 0 || c === cols - 1) border += v;
  });
  return border / total;
}

/**
 * Each classifier group's mean over its runs of the last metrics line's
 * test-load share per expert, laid out on the r × c map. Groups of other
 * models, or whose runs have no load, are left out.
 *
 * @param groups the groups of a sweep
 * @param byGroup each group's runs
 * @returns one map per classifier group with a load
 *
 * @example
 * ```ts ignore
 * import { groupRuns } from "./sweep_groups.ts";
 * import { loadSweepRuns } from "./sweep_runs.ts";
 * import { sweepLoadMaps } from "./sweep_load_maps.ts";
 * const { groups, byGroup } = groupRuns((await loadSweepRuns("runs/padding")).runs);
 * sweepLoadMaps(groups, byGroup)[0].share.length; // E
 * ```
 */
export function sweepLoadMaps(groups: RunGroup[], byGroup: RunRecord[][]): LoadMap[] {
  const out: LoadMap[] = [];
  groups.forEach((g, gi) => {
    if (g.model !== "classifier") return;
    const loads = byGroup[gi].map((r) => loadOf(r.metrics.at(-1)?.load)).filter((l) => l !== null);
    if (!loads.length || loads.some((l) => l.length !== loads[0].length)) return;
    const E = loads[0].length;
    const share = new Array<number>(E).fill(0);
    for (const l of loads) {
      const total = l.reduce((s, x) => s + x, 0);
      l.forEach((v, e) => share[e] += v / total / loads.length);
    }
    const { rows, cols } = topographicLayout(E, 1);
    out.push({ label: g.label, rows, cols, share, runs: loads.length });
  });
  return out;
}
