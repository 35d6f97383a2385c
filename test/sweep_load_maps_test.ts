import { borderShare, sweepLoadMaps } from "../src/analysis/sweep_load_maps.ts";
import { groupRuns, pairGroups } from "../src/analysis/sweep_groups.ts";
import { loadSweepRuns } from "../src/analysis/sweep_runs.ts";
import { sweepTables } from "../src/analysis/sweep_tables.ts";
import { sweepCharts } from "../src/analysis/sweep_charts.ts";
import type { SweepReport } from "../src/analysis/sweep_report.ts";
import { assertClose, deepEqual, equal, ok } from "./asserts.ts";

Deno.test("borderShare: the load on the outer ring of the r x c map over the whole load", () => {
  // E = 9 is a 3 x 3 map whose only interior position is index 4: border 2 of 8.
  equal(borderShare([0, 0, 0, 0, 6, 0, 0, 0, 2]), 0.25);
  // E = 16 is 4 x 4: 12 border positions of 16, so a uniform load puts 3/4 on the border.
  equal(borderShare(new Array(16).fill(5)), 0.75);
  // E = 20 is 4 x 5: interior is rows 1-2, columns 1-3 (indices 6, 7, 8, 11, 12, 13).
  const load = new Array(20).fill(0);
  load[6] = 3;
  load[0] = 1;
  equal(borderShare(load), 0.25);
  // Every position of a 2-row map is on the border: no figure. Nothing routed: no figure.
  equal(borderShare([1, 2, 3, 4, 5, 6, 7, 8]), null);
  equal(borderShare(new Array(9).fill(0)), null);
  equal(borderShare(undefined), null);
  equal(borderShare([1, "2", 3]), null);
});

type Json = Record<string, unknown>;

async function writeRun(dir: string, config: Json, load: number[], acc: number) {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(config));
  await Deno.writeTextFile(
    `${dir}/summary.json`,
    JSON.stringify({ config, completed: true, testAcc: acc, testReg: 0.5, trainSeconds: 1 }),
  );
  await Deno.writeTextFile(
    `${dir}/metrics.jsonl`,
    JSON.stringify({ epoch: 1, testAcc: acc, deadExperts: 0, dropRate: 0, testReg: 0.5, load }) +
      "\n",
  );
}

Deno.test("sweepLoadMaps: each group's mean test-load share per map position; MoGE with other padding pairs with MoE", async () => {
  const root = await Deno.makeTempDir();
  try {
    const centre = [0, 0, 0, 0, 4, 0, 0, 0, 0];
    const ring = [1, 1, 1, 1, 0, 1, 1, 1, 1];
    const base = { experts: 9, epochs: 1, lambda: 0.1 };
    // MoE with valid padding: both seeds route everything to the centre.
    for (const seed of [0, 1]) {
      await writeRun(
        `${root}/moe_${seed}`,
        { ...base, mode: "moe", padding: "valid", seed },
        centre,
        0.8,
      );
    }
    // MoGE with full padding: seed 0 all on the ring, seed 1 all in the centre.
    await writeRun(
      `${root}/moge_0`,
      { ...base, mode: "moge", padding: "full", seed: 0 },
      ring,
      0.7,
    );
    await writeRun(
      `${root}.other/moge_1`,
      { ...base, mode: "moge", padding: "full", seed: 1 },
      centre,
      0.9,
    );
    // That MoGE seed-1 run lives elsewhere and is linked in (runs of two sweeps compared).
    await Deno.symlink(`${root}.other/moge_1`, `${root}/moge_1`);
    const { groups, byGroup } = groupRuns((await loadSweepRuns(root)).runs);
    equal(byGroup.flat().length, 4);
    const maps = sweepLoadMaps(groups, byGroup);
    equal(maps.length, 2);
    const moge = maps.find((m) => m.label.includes("moge"))!;
    equal(moge.rows, 3);
    equal(moge.runs, 2);
    // Mean of the shares: centre (0 + 1) / 2 = 0.5, each ring position (1/8 + 0) / 2 = 1/16.
    moge.share.forEach((s, i) => assertClose(s, i === 4 ? 0.5 : 1 / 16, { atol: 1e-12 }));
    deepEqual(maps.find((m) => m.label.includes("moe"))!.share, centre.map((v) => v / 4));

    // padding is a MoGE-only setting, so the two groups are compared seed by seed.
    const pairs = pairGroups(groups);
    equal(pairs.length, 1);
    const border = pairs[0].metrics.find((m) => m.key === "borderShare")!;
    deepEqual(border.moe, [0, 0]);
    deepEqual(border.moge, [100, 0]);
    equal(border.mogeBetter, 1); // higher in seed 0 only (strictly)
    const report: SweepReport = {
      sweepDir: root,
      date: "",
      unfinished: [],
      groups,
      pairs,
      table1: [],
      curves: {},
      loadMaps: maps,
    };
    const row = sweepTables(report).find((t) => t.id === "pair-0")!.rows.find((r) =>
      r[0].startsWith("test images on the map's border")
    )!;
    equal(row.at(-1), "higher in 1 of 2 seeds"); // a descriptive figure: neither direction is better
    const chart = sweepCharts(report).find((c) => c.key === "loadMap")!;
    equal(chart.file, "load_map.svg");
    ok(JSON.stringify(chart.spec).includes('"panel"'));
  } finally {
    await Deno.remove(root, { recursive: true });
    await Deno.remove(`${root}.other`, { recursive: true });
  }
});
