/**
 * Table 1 (IMED under 12 transforms) over the seeds of a MoE / MoGE group
 * pair: per column, mean ± 95 % interval for each model and in how many
 * seeds MoGE's is lower.
 *
 * @module
 */

import { type MeanCi, meanCi, type PairedTTest, pairedTTest } from "./stats.ts";
import type { Table1Column } from "./table1.ts";

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
    t: PairedTTest;
  }[];
}

/**
 * Summarizes Table 1 measured for each seed of a pair: per column, mean IMED
 * ± 95 % interval for each model, and in how many seeds MoGE's is lower.
 *
 * @example
 * ```ts
 * import { summarizeTable1 } from "./sweep_table1.ts";
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
