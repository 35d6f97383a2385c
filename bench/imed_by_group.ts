/**
 * Accuracy against invariance per group of a classifier sweep: for every
 * finished run, its test accuracy and its mean squared IMED over the 12
 * columns of Table 1 (the routing map of each test image against that of its
 * transformed copy); then per group (runs that differ only in the seed) the
 * mean and 95 % Student-t interval of both, and one chart of accuracy against
 * IMED (the λ trade-off curve when the sweep grids λ).
 *
 * Usage:
 *   deno run -A bench/imed_by_group.ts <sweep dir> [--limit 1000] [--out DIR]
 * e.g. `deno run -A bench/imed_by_group.ts runs/lambda --out docs/experiments/lambda`.
 * Writes imed_by_group.json, imed_by_group.md and accuracy_vs_imed.{svg,vl.json}.
 *
 * @module
 */

import { writeFileAtomic, writeJsonAtomic } from "../src/atomic.ts";
import { numberFlag, parseFlags, runMain, UsageError } from "../src/cli/args.ts";
import { meanCi } from "../src/analysis/stats.ts";
import { table1ForPair } from "../src/analysis/table1.ts";
import { loadSweepRuns } from "../src/analysis/sweep_runs.ts";
import { groupRuns } from "../src/analysis/sweep_groups.ts";
import { loadDataset } from "../src/data/image_sources.ts";
import { loadFixture } from "../src/data/images.ts";
import { VEGA_LITE_SCHEMA, writeChart } from "../src/report/vega.ts";
import { useBackend } from "../src/backend.ts";

async function main(): Promise<void> {
  const dir = Deno.args[0];
  if (!dir || dir.startsWith("-")) throw new UsageError("the sweep directory comes first");
  const flags = parseFlags(Deno.args.slice(1), {
    limit: { type: "string" },
    out: { type: "string" },
  });
  const limit = numberFlag("limit", String(flags.limit ?? 1000));
  const out = typeof flags.out === "string" ? flags.out : dir;
  await useBackend("wasm");
  const { runs } = await loadSweepRuns(dir);
  const { groups, byGroup } = groupRuns(runs);
  const dataset = String(runs[0]?.config.dataset ?? "fashion-mnist");
  const data = dataset === "fixture"
    ? await loadFixture("fashion-mnist")
    : await loadDataset(dataset as "fashion-mnist" | "mnist");
  const rows = [];
  for (const [i, g] of groups.entries()) {
    const acc: number[] = [], imed: number[] = [];
    for (const r of byGroup[i]) {
      // A run against itself: table1ForPair's "moe" column is this run's IMED.
      const cols = await table1ForPair(r.dir, r.dir, { data, limit });
      imed.push(cols.reduce((s, c) => s + c.moe, 0) / cols.length);
      acc.push(100 * Number(r.summary.testAcc));
      console.log(`${r.dir}: test accuracy ${acc.at(-1)!.toFixed(2)} %, mean IMED ${imed.at(-1)}`);
    }
    rows.push({ group: g.label, seeds: g.seeds, accuracy: meanCi(acc), imed: meanCi(imed) });
  }
  await Deno.mkdir(out, { recursive: true });
  await writeJsonAtomic(`${out}/imed_by_group.json`, { sweep: dir, limit, rows });
  const f = (m: { mean: number; halfWidth: number | null }, d: number) =>
    `${m.mean.toFixed(d)} ± ${m.halfWidth === null ? "–" : m.halfWidth.toFixed(d)}`;
  const md = [
    `Mean over seeds ± 95 % half-width (Student t); IMED: mean over Table 1's 12 columns, ` +
    `${limit || "all"} test images.`,
    "",
    "| group | seeds | test accuracy (%) | mean IMED (×1e-3) |",
    "| --- | --- | --- | --- |",
    ...rows.map((r) =>
      `| ${r.group} | ${r.seeds.join(", ")} | ${f(r.accuracy, 2)} | ${
        f({
          mean: 1e3 * r.imed.mean,
          halfWidth: r.imed.halfWidth === null ? null : 1e3 * r.imed.halfWidth,
        }, 3)
      } |`
    ),
  ].join("\n") + "\n";
  await writeFileAtomic(`${out}/imed_by_group.md`, md);
  const values = rows.map((r) => ({
    group: r.group,
    acc: r.accuracy.mean,
    accLo: r.accuracy.lo,
    accHi: r.accuracy.hi,
    imed: r.imed.mean,
    imedLo: r.imed.lo,
    imedHi: r.imed.hi,
  }));
  const x = { field: "imed", type: "quantitative", title: "mean IMED (Table 1 columns)" };
  const y = {
    field: "acc",
    type: "quantitative",
    title: "test accuracy (%)",
    scale: { zero: false },
  };
  await writeChart(`${out}/accuracy_vs_imed`, {
    $schema: VEGA_LITE_SCHEMA,
    title: "Accuracy against invariance (mean and 95 % intervals over seeds)",
    width: 420,
    height: 300,
    data: { values },
    layer: [
      { mark: "rule", encoding: { x, y: { ...y, field: "accLo" }, y2: { field: "accHi" } } },
      { mark: "rule", encoding: { y, x: { ...x, field: "imedLo" }, x2: { field: "imedHi" } } },
      { mark: { type: "point", filled: true, size: 60 }, encoding: { x, y } },
      {
        mark: { type: "text", dx: 8, align: "left" },
        encoding: { x, y, text: { field: "group" } },
      },
    ],
  });
  console.log(md);
}

if (import.meta.main) await runMain(main, "deno run -A bench/imed_by_group.ts");
