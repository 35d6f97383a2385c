/**
 * `deno task report <sweep dir>`: statistics over the seeds of a sweep
 * (report.md, report.html, report.json, SVG charts).
 *
 * @module
 */

import { sweepLoadMaps } from "../analysis/sweep_load_maps.ts";
import { writeFileAtomic, writeJsonAtomic } from "../atomic.ts";
import { sweepCharts } from "../analysis/sweep_charts.ts";
import { writeChart } from "../report/vega.ts";
import { writeSweepReport } from "../report/sweep_page.ts";
import { sweepCurves } from "../analysis/sweep_curves.ts";
import { learningCurves } from "../analysis/sweep_learning_curve.ts";
import { groupRuns, pairGroups } from "../analysis/sweep_groups.ts";
import { reportMarkdown, type SweepReport } from "../analysis/sweep_report.ts";
import { loadSweepRuns } from "../analysis/sweep_runs.ts";
import { summarizeTable1, type Table1Summary } from "../analysis/sweep_table1.ts";
import { numberFlag, parseFlags, runMain, UsageError } from "./args.ts";
import { checkOutDir } from "./out_dir_check.ts";

/** The report's flags that take a value (the word after one is not the sweep directory). */
const VALUE_FLAGS = ["--out", "--limit", "--backend"];

function help(): string {
  return `Summarizes a sweep over seeds: per group of runs that differ only in the seed, the mean
and 95 % Student-t interval of each figure; MoGE vs MoE paired by seed (difference with its
interval, paired t-test, Wilcoxon signed-rank test, MoGE better in k of n seeds); curves
over epochs with a 95 % band over seeds.

Usage: deno task report SWEEP_DIR [flags]

  --out DIR          where to write [default SWEEP_DIR]
  --invariance       also measure Table 1 (IMED under 12 transforms) for every MoE / MoGE
                     seed pair of classifier runs (from their checkpoints, slow on the full
                     test set, see --limit; each run keeps its figures in table1.json, which
                     later reports with the same --limit read when the checkpoint is gone)
  --limit N          test images for --invariance (0: all) [default 1000]
  --backend NAME     backend for --invariance: auto | webgpu | wasm | cpu [default auto]
  -h, --help         this text

Writes report.md, report.html (the same tables and the charts on one page, with links to
each run's own report.html, which it refreshes), report.json and
<figure>_vs_<epoch|step>.svg with its Vega-Lite spec <figure>_vs_<epoch|step>.vl.json.`;
}

async function main(): Promise<void> {
  const args = [...Deno.args];
  // By position, not by value: `report runs/x --out runs/x` keeps its --out value.
  const at = args.flatMap((a, i) =>
    !a.startsWith("-") && !VALUE_FLAGS.includes(args[i - 1]) ? [i] : []
  );
  const positional = at.map((i) => args[i]);
  const flags = parseFlags(args.filter((_, i) => !at.includes(i)), {
    help: { type: "boolean", short: "h" },
    out: { type: "string" },
    invariance: { type: "boolean" },
    limit: { type: "string" },
    backend: { type: "string" },
  });
  if (flags.help) {
    console.log(help());
    return;
  }
  if (positional.length !== 1) {
    throw new UsageError(
      positional.length
        ? `one sweep directory expected, got ${positional.join(" ")}`
        : "the sweep directory is required, e.g. deno task report runs/e64",
    );
  }
  const sweepDir = positional[0].replace(/\/+$/, "");
  const outDir = typeof flags.out === "string" ? flags.out : sweepDir;
  const limit = numberFlag("limit", String(flags.limit ?? 1000));
  if (!Number.isInteger(limit) || limit < 0) {
    throw new UsageError(`--limit ${limit}: must be an integer >= 0`);
  }
  if (!flags.invariance && (flags.limit !== undefined || flags.backend !== undefined)) {
    throw new UsageError(
      "--limit and --backend apply to --invariance only: add it or leave them out",
    );
  }
  // Before the runs load and Table 1 runs (minutes): a bad --out fails at once.
  await checkOutDir(outDir, { flag: "--out" });
  let loaded;
  try {
    loaded = await loadSweepRuns(sweepDir);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (!loaded.runs.length) {
    throw new UsageError(
      `${sweepDir}: no finished run (summary.json with completed: true)` +
        (loaded.unfinished.length ? `; unfinished: ${loaded.unfinished.join(", ")}` : ""),
    );
  }
  const { groups, byGroup } = groupRuns(loaded.runs);
  const pairs = pairGroups(groups);

  const table1: Table1Summary[] = [];
  if (flags.invariance) {
    const { useBackend, describeBackend } = await import("../backend.ts");
    const { table1ForPair } = await import("../analysis/table1.ts");
    const { loadFixture } = await import("../data/images.ts");
    const { loadDataset } = await import("../data/image_sources.ts");
    const backend = await useBackend(
      (flags.backend ?? "auto") as "auto" | "webgpu" | "wasm" | "cpu",
    );
    console.log(`invariance: ${describeBackend(backend)}, ${limit || "all"} test images`);
    for (const p of pairs) {
      const moe = groups[p.moe], moge = groups[p.moge];
      if (moge.model !== "classifier") continue;
      const ds = String(moge.config.dataset);
      const data = ds === "fixture"
        ? await loadFixture("fashion-mnist")
        : await loadDataset(ds as "fashion-mnist" | "mnist");
      const seeds = moge.seeds.filter((s) => moe.seeds.includes(s));
      const perSeed = [];
      for (const s of seeds) {
        const a = byGroup[p.moe][moe.seeds.indexOf(s)].dir;
        const b = byGroup[p.moge][moge.seeds.indexOf(s)].dir;
        console.log(`invariance: seed ${s}: ${a} vs ${b}`);
        perSeed.push(await table1ForPair(a, b, { data, limit }));
      }
      if (seeds.length) table1.push(summarizeTable1({ moe: p.moe, moge: p.moge }, seeds, perSeed));
    }
  }

  await Deno.mkdir(outDir, { recursive: true });
  const report: SweepReport = {
    sweepDir,
    date: new Date().toISOString(),
    unfinished: loaded.unfinished,
    groups,
    pairs,
    table1,
    curves: sweepCurves(groups, byGroup),
    loadMaps: sweepLoadMaps(groups, byGroup),
    learningCurves: learningCurves(groups, byGroup),
  };
  const charts = sweepCharts(report);
  for (const c of charts) await writeChart(`${outDir}/${c.file.replace(/\.svg$/, "")}`, c.spec);
  await writeJsonAtomic(`${outDir}/report.json`, report);
  const md = reportMarkdown(report, charts.map((c) => c.file));
  await writeSweepReport(report, outDir);
  // Last: a report.md as new as its run means the whole set was written.
  await writeFileAtomic(`${outDir}/report.md`, md);
  console.log(md);
  console.log(
    `files: ${outDir}/{report.md,report.html,report.json,${charts.map((c) => c.file).join(",")}}`,
  );
}

if (import.meta.main) await runMain(main, "deno task report");
