import { bandCurves } from "../src/analysis/sweep_curves.ts";
import { groupRuns, pairGroups } from "../src/analysis/sweep_groups.ts";
import { loadSweepRuns } from "../src/analysis/sweep_runs.ts";
import { summarizeTable1 } from "../src/analysis/sweep_table1.ts";
import type { SweepReport } from "../src/analysis/sweep_report.ts";
import { sweepTables } from "../src/analysis/sweep_tables.ts";
import { sweepCurves } from "../src/analysis/sweep_curves.ts";
import { escapeHtml } from "../src/report/html_page.ts";
import { sweepReportHtml } from "../src/report/sweep_page.ts";
import { TABLE1_FILE, table1ForPair, table1ForRun } from "../src/analysis/table1.ts";
import { saveCheckpoint } from "../src/train/checkpoint.ts";
import { loadFixture } from "../src/data/images.ts";
import { useBackend } from "../src/backend.ts";
import { tf } from "../src/deps.ts";
import { assertClose, deepEqual, equal, ok, rejects } from "./asserts.ts";

const T_975_2 = 4.302653; // t_{0.975, 2} (t table)
const T_975_1 = 12.706205; // t_{0.975, 1}

type Json = Record<string, unknown>;

async function writeRun(dir: string, config: Json, summary: Json | null, metrics: Json[]) {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(config));
  if (summary) await Deno.writeTextFile(`${dir}/summary.json`, JSON.stringify(summary));
  await Deno.writeTextFile(
    `${dir}/metrics.jsonl`,
    metrics.map((m) => JSON.stringify(m)).join("\n") + "\n",
  );
}

// Classifier fixture: MoE and MoGE, seeds 0, 1, 2, two epochs each.
//   final test accuracy   MoE 0.80 0.82 0.84    MoGE 0.83 0.82 0.88
//   epoch-1 accuracy      MoE 0.50 0.60 0.70    MoGE 0.55 0.60 0.65
//   last dead experts     MoE 5 6 7             MoGE 3 3 3
const ACC = { moe: [0.80, 0.82, 0.84], moge: [0.83, 0.82, 0.88] };
const ACC1 = { moe: [0.5, 0.6, 0.7], moge: [0.55, 0.6, 0.65] };
const DEAD = { moe: [5, 6, 7], moge: [3, 3, 3] };

async function classifierSweep(root: string): Promise<string> {
  const dir = `${root}/cls`;
  for (const mode of ["moe", "moge"] as const) {
    for (const seed of [0, 1, 2]) {
      const config = { mode, experts: 16, epochs: 2, lambda: 0.1, seed };
      await writeRun(`${dir}/mode-${mode}_seed-${seed}`, config, {
        config,
        completed: true,
        testAcc: ACC[mode][seed],
        testReg: 0.1 * (seed + 1),
        trainSeconds: 10 + seed,
      }, [
        { epoch: 1, testAcc: ACC1[mode][seed], deadExperts: 1, dropRate: 0.1, testReg: 0.5 },
        {
          epoch: 2,
          testAcc: ACC[mode][seed],
          deadExperts: DEAD[mode][seed],
          dropRate: 0.05,
          testReg: 0.1 * (seed + 1),
        },
      ]);
    }
  }
  // An unfinished run (summary says completed: false) is left out.
  const cfg = { mode: "moe", experts: 16, epochs: 2, lambda: 0.1, seed: 3 };
  await writeRun(`${dir}/mode-moe_seed-3`, cfg, { completed: false, testAcc: 0.1 }, []);
  return dir;
}

Deno.test("report: groups, intervals and the paired comparison match a hand computation", async () => {
  const root = await Deno.makeTempDir();
  try {
    const dir = await classifierSweep(root);
    const { runs, unfinished } = await loadSweepRuns(dir);
    equal(runs.length, 6);
    deepEqual(unfinished, ["mode-moe_seed-3"]);
    const { groups, byGroup } = groupRuns(runs);
    deepEqual(groups.map((g) => g.label), ["mode=moe", "mode=moge"]);
    deepEqual(groups[0].seeds, [0, 1, 2]);
    equal(groups[0].model, "classifier");

    // MoE accuracy 80, 82, 84 %: mean 82, s = 2, half-width t_{.975,2} · 2 / √3 = 4.968275.
    const moeAcc = groups[0].metrics.testAcc.ci!;
    assertClose(moeAcc.mean, 82, { rtol: 1e-12 });
    assertClose(moeAcc.sd!, 2, { rtol: 1e-9 });
    assertClose(moeAcc.halfWidth!, T_975_2 * 2 / Math.sqrt(3), { rtol: 1e-6 });
    // MoGE dead experts 3, 3, 3: mean 3, half-width 0.
    equal(groups[1].metrics.deadExperts.ci!.mean, 3);
    equal(groups[1].metrics.deadExperts.ci!.halfWidth, 0);
    // Mean R(z) 0.1, 0.2, 0.3; train seconds 10, 11, 12; dropped 5 %.
    assertClose(groups[0].metrics.testReg.ci!.mean, 0.2, { rtol: 1e-12 });
    assertClose(groups[0].metrics.trainSeconds.ci!.mean, 11, { rtol: 1e-12 });
    assertClose(groups[0].metrics.dropRate.ci!.mean, 5, { rtol: 1e-12 });

    const pairs = pairGroups(groups);
    equal(pairs.length, 1);
    equal(pairs[0].moe, 0);
    equal(pairs[0].moge, 1);
    const acc = pairs[0].metrics.find((m) => m.key === "testAcc")!;
    // Differences MoGE − MoE: 3, 0, 4 points. Mean 7/3; s² = ((2/3)² + (7/3)² + (5/3)²)/2 = 13/3;
    // se = √(13/9); t = (7/3)/√(13/9) = 7/√13 = 1.941451; df = 2, where the t CDF is
    // ½ + t/(2√(2 + t²)): p = 2(½ − t/(2√(2 + 49/13))) = 1 − 7/√75 = 0.191710.
    // Half-width t_{.975,2} · √(13/9) = 5.171...
    deepEqual(acc.seeds, [0, 1, 2]);
    assertClose(acc.t.meanDiff, 7 / 3, { rtol: 1e-9 });
    assertClose(acc.t.t!, 7 / Math.sqrt(13), { rtol: 1e-9 });
    assertClose(acc.t.p!, 1 - 7 / Math.sqrt(75), { rtol: 1e-7 });
    assertClose(acc.t.ci.halfWidth!, T_975_2 * Math.sqrt(13 / 9), { rtol: 1e-6 });
    // Wilcoxon: the zero is dropped, d = 3, 4 both positive: P(W− ≤ 0) = 1/4, p = 0.5.
    equal(acc.wilcoxon.n, 2);
    equal(acc.wilcoxon.p, 0.5);
    equal(acc.mogeBetter, 2); // seed 1 is a tie
    // Dead experts: differences −2, −3, −4, all better for MoGE (lower is better);
    // Wilcoxon: all 3 negative, p = 2/8.
    const dead = pairs[0].metrics.find((m) => m.key === "deadExperts")!;
    equal(dead.mogeBetter, 3);
    equal(dead.wilcoxon.p, 0.25);

    // Accuracy curve: epoch 1 MoE 50, 60, 70 %: mean 60, band 60 ∓ t_{.975,2} · 10/√3.
    const curves = bandCurves(groups, byGroup, "testAcc");
    deepEqual(curves[0].x, [1, 2]);
    assertClose(curves[0].mean[0], 60, { rtol: 1e-12 });
    assertClose(curves[0].lo[0]!, 60 - T_975_2 * 10 / Math.sqrt(3), { rtol: 1e-6 });
    assertClose(curves[0].mean[1], 82, { rtol: 1e-12 });
    deepEqual(bandCurves(groups, byGroup, "deadExperts")[1].mean, [1, 3]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

const REPORT_CLI = new URL("../src/cli/report.ts", import.meta.url).pathname;

async function runReport(...args: string[]): Promise<Deno.CommandOutput> {
  return await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", REPORT_CLI, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
}

Deno.test("report: the CLI writes report.md, report.html (the same tables), report.json and charts", async () => {
  const root = await Deno.makeTempDir();
  try {
    const dir = await classifierSweep(root);
    const out = await runReport(dir);
    equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const md = await Deno.readTextFile(`${dir}/report.md`);
    ok(md.includes("| mode=moe | 0, 1, 2 | 82.00 ± 4.97 |"), md);
    ok(md.includes("2 of 3 seeds (higher is better)"), md);
    ok(md.includes("Left out (unfinished): mode-moe_seed-3."), md);
    const json = JSON.parse(await Deno.readTextFile(`${dir}/report.json`));
    equal(json.groups.length, 2);
    assertClose(json.pairs[0].metrics[0].t.p, 1 - 7 / Math.sqrt(75), { rtol: 1e-7 });
    // Each chart draws the mean as a line and the 95 % interval (3 seeds) as a band.
    for (const chart of ["accuracy_vs_epoch", "reg_vs_epoch", "dead_experts_vs_epoch"]) {
      const svg = await Deno.readTextFile(`${dir}/${chart}.svg`);
      ok(svg.includes('class="mark-line') && svg.includes('class="mark-area'), chart);
      ok(JSON.parse(await Deno.readTextFile(`${dir}/${chart}.vl.json`)).layer, chart);
    }

    // report.html shows the statistics of report.json: every cell of every table of
    // report.md, the charts inline, and the runs linked to their own pages.
    const html = await Deno.readTextFile(`${dir}/report.html`);
    const tables = sweepTables(json as SweepReport);
    deepEqual(tables.map((t) => t.id), ["groups-classifier", "pair-0"]);
    for (const t of tables) {
      ok(html.includes(`>${escapeHtml(t.title)}</h2>`), t.title);
      for (const r of t.rows) {
        ok(md.includes(`| ${r.join(" | ")} |`), r.join(" | "));
        ok(html.includes(`<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join("")}</tr>`), r[0]);
      }
    }
    // By hand: MoE accuracy 82 ± t_{.975,2} · 2/√3 = 82 ± 4.97; MoGE − MoE accuracy
    // 7/3 ± t_{.975,2} · √(13/9) = 2.333 ± 5.171 = [−2.84, 7.50], t-test p = 1 − 7/√75 =
    // 0.192, Wilcoxon p = 0.5.
    ok(html.includes("<td>mode=moe</td><td>0, 1, 2</td><td>82.00 ± 4.97</td>"), "groups row");
    ok(
      html.includes(
        "<td>test accuracy (%)</td><td>3</td><td>82.00</td><td>84.33</td>" +
          "<td>2.33 [-2.84, 7.50]</td><td>0.192</td><td>0.500</td>",
      ),
      "paired row",
    );
    ok(html.includes("Left out (unfinished): mode-moe_seed-3."));
    equal(html.match(/<figure class="chart"/g)?.length, 3, "the three band charts inline");
    ok(html.includes('<a href="mode-moe_seed-0/report.html">mode-moe_seed-0 (seed 0)</a>'));
    ok((await Deno.stat(`${dir}/mode-moge_seed-2/report.html`)).isFile, "run pages written");
    ok(!/<script|https?:\/\/(?!www\.w3\.org)/.test(html), "no script, no external URL");

    // Written elsewhere (--out), the page links the run pages by absolute file URL.
    const out2 = await runReport(dir, "--out", `${root}/elsewhere`);
    equal(out2.code, 0, new TextDecoder().decode(out2.stderr));
    const html2 = await Deno.readTextFile(`${root}/elsewhere/report.html`);
    ok(html2.includes(`<a href="file://${dir}/mode-moe_seed-0/report.html">`), "absolute link");

    // A directory without runs is a usage error (status 2), not a stack trace.
    const bad = await runReport(`${root}/x`);
    equal(bad.code, 2);
    ok(new TextDecoder().decode(bad.stderr).includes("no such directory"));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("report: bad flags and a run counted twice fail at once with status 2; the sweep directory given again as --out is kept", async () => {
  const root = await Deno.makeTempDir();
  try {
    const dir = await classifierSweep(root);
    const err = (o: Deno.CommandOutput) => new TextDecoder().decode(o.stderr);
    // --out naming a file: one line naming the flag and the path, no report written.
    await Deno.writeTextFile(`${root}/file`, "x");
    const file = await runReport(dir, "--out", `${root}/file`);
    equal(file.code, 2, err(file));
    ok(err(file).includes(`--out "${root}/file"`), err(file));
    await rejects(() => Deno.stat(`${dir}/report.md`));
    // --limit or --backend without --invariance would be ignored: refused instead.
    for (const flag of [["--limit", "10"], ["--backend", "cpu"]]) {
      const o = await runReport(dir, ...flag);
      equal(o.code, 2, err(o));
      ok(err(o).includes("apply to --invariance only"), err(o));
    }
    // One run twice (a copy, or a link from another sweep) is refused, not counted as two seeds.
    const twin = `${root}/twin`;
    await Deno.mkdir(`${twin}/copy`, { recursive: true });
    for (const id of ["mode-moe_seed-0", "mode-moe_seed-1"]) {
      await Deno.symlink(`${dir}/${id}`, `${twin}/${id}`);
    }
    for (const f of ["config.json", "summary.json", "metrics.jsonl"]) {
      await Deno.copyFile(`${dir}/mode-moe_seed-1/${f}`, `${twin}/copy/${f}`);
    }
    const dup = await runReport(twin);
    equal(dup.code, 2, err(dup));
    ok(/runs \S+ and \S+ have the same config and seed 1/.test(err(dup)), err(dup));
    // The sweep directory as its own --out (the default written out): the value is kept,
    // where removing the positional argument by value also removed it.
    const same = await runReport(dir, "--out", dir);
    equal(same.code, 0, err(same));
    ok((await Deno.stat(`${dir}/report.md`)).isFile);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("report.html: Table 1 over seeds, when measured, is a table of the page", async () => {
  const root = await Deno.makeTempDir();
  try {
    const { runs, unfinished } = await loadSweepRuns(await classifierSweep(root));
    const { groups, byGroup } = groupRuns(runs);
    // IMED per seed: MoE 0.2, 0.3 (mean 0.25, s = √0.005, half-width t_{.975,1} · 0.05 = 0.6353);
    // MoGE 0.1, 0.4 (mean 0.25, half-width t_{.975,1} · 0.15 = 1.9059); MoGE lower in seed 0
    // only; differences −0.1, 0.1 have mean 0, so t = 0 and p = 1.
    const table1 = [summarizeTable1({ moe: 0, moge: 1 }, [0, 1], [
      [{ name: "rotation 5", moe: 0.2, moge: 0.1 }],
      [{ name: "rotation 5", moe: 0.3, moge: 0.4 }],
    ])];
    const report: SweepReport = {
      sweepDir: root,
      date: "2026-01-01T00:00:00.000Z",
      unfinished,
      groups,
      pairs: pairGroups(groups),
      table1,
      curves: sweepCurves(groups, byGroup),
    };
    const html = await sweepReportHtml(report, { runLink: () => undefined });
    ok(html.includes(">Table 1 over seeds: MoGE (mode=moge) vs MoE (mode=moe)</h2>"));
    ok(html.includes("<tr><th>model</th><th>rotation 5</th></tr>"));
    ok(html.includes("<tr><td>MoE</td><td>0.2500 ± 0.6353</td></tr>"));
    ok(html.includes("<tr><td>MoGE</td><td>0.2500 ± 1.9059</td></tr>"));
    ok(html.includes("<tr><td>MoGE lower in</td><td>1 of 2</td></tr>"));
    ok(html.includes("<tr><td>paired t p</td><td>1.000</td></tr>"));
    ok(!html.includes("<a href"), "no run links when runLink gives none");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("report: LM runs report perplexity and per-layer figures", async () => {
  const root = await Deno.makeTempDir();
  try {
    for (
      const [seed, ppl, reg, dead] of [[0, 100, [0.1, 0.3], [1, 2]], [1, 110, [0.3, 0.5], [
        0,
        0,
      ]]] as const
    ) {
      const config = { mode: "moge", variant: "smoe", steps: 20, seed };
      await writeRun(`${root}/lm/s${seed}`, config, {
        config,
        completed: true,
        testPpl: ppl,
        validPpl: ppl + 1,
        testReg: reg,
        trainSeconds: 5,
      }, [{ step: 10, validPpl: 200, validReg: reg, deadExperts: dead, dropRate: 0 }, {
        step: 20,
        validPpl: ppl + 1,
        validReg: reg,
        deadExperts: dead,
        dropRate: 0,
      }]);
    }
    const { runs } = await loadSweepRuns(`${root}/lm`);
    const { groups, byGroup } = groupRuns(runs);
    equal(groups.length, 1);
    equal(groups[0].model, "lm");
    equal(groups[0].label, "all runs");
    // Perplexity 100, 110: mean 105, s = √50, half-width t_{.975,1} · √50/√2 = 12.706205 · 5.
    assertClose(groups[0].metrics.testPpl.ci!.mean, 105, { rtol: 1e-12 });
    assertClose(groups[0].metrics.testPpl.ci!.halfWidth!, T_975_1 * 5, { rtol: 1e-6 });
    // R(z): layer means 0.2 and 0.4 -> 0.3; dead experts summed over layers: 3 and 0.
    assertClose(groups[0].metrics.testReg.ci!.mean, 0.3, { rtol: 1e-12 });
    deepEqual(groups[0].metrics.deadExperts.values, [3, 0]);
    equal(groups[0].metrics.testAcc, undefined);
    deepEqual(pairGroups(groups), []);
    const c = bandCurves(groups, byGroup, "validPpl");
    deepEqual(c[0].x, [10, 20]);
    deepEqual(c[0].mean, [200, 106]);
    // LM runs (per step) beside classifier runs (per epoch) cannot share a chart's x axis.
    const mixed = await classifierSweep(root);
    await Deno.symlink(`${root}/lm/s0`, `${mixed}/lm-s0`);
    const out = await runReport(mixed);
    const err = new TextDecoder().decode(out.stderr);
    equal(out.code, 2, err);
    ok(err.includes("logged per epoch and per step cannot share charts"), err);
    ok(err.includes("per step: lm-s0") && err.includes("per epoch: mode-moe_seed-0, "), err);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test({
  name: "report: Table 1 over seed pairs (uniform routing has IMED 0; MoGE lower counted per seed)",
  sanitizeResources: false,
  fn: async () => {
    await useBackend("cpu");
    const root = await Deno.makeTempDir();
    try {
      const E = 16;
      const zero = new Float32Array(784 * E);
      const random = Float32Array.from({ length: 784 * E }, (_, i) => Math.sin(i * 12.9898) * 0.5);
      for (const [name, w] of [["flat", zero], ["sharp", random]] as const) {
        await Deno.mkdir(`${root}/${name}`, { recursive: true });
        await Deno.writeTextFile(`${root}/${name}/config.json`, JSON.stringify({ experts: E }));
        await saveCheckpoint(`${root}/${name}/checkpoint`, {
          tensors: { "param/moe.router.w": { shape: [784, E], dtype: "float32", values: w } },
          meta: {},
        });
      }
      const data = await loadFixture("fashion-mnist");
      const before = tf.memory().numTensors;
      // A zero router routes every image uniformly: z is the same for an image and its copy.
      const flatVsSharp = await table1ForPair(`${root}/flat`, `${root}/sharp`, { data, limit: 20 });
      equal(tf.memory().numTensors, before, "no tensor leak");
      equal(flatVsSharp.length, 12);
      for (const c of flatVsSharp) {
        equal(c.moe, 0, c.name);
        ok(c.moge > 0, c.name);
      }
      const sharpVsFlat = await table1ForPair(`${root}/sharp`, `${root}/flat`, { data, limit: 20 });
      const s = summarizeTable1({ moe: 0, moge: 1 }, [0, 1], [flatVsSharp, sharpVsFlat]);
      for (const [i, c] of s.columns.entries()) {
        equal(c.mogeLower, 1, c.name); // lower in the second seed only
        assertClose(c.moeCi.mean, flatVsSharp[i].moge / 2, { rtol: 1e-12 });
      }
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "report: a run's Table 1 figures are kept in its table1.json and read back without the checkpoint, for the same images, seed, σ and steps only",
  sanitizeResources: false,
  fn: async () => {
    await useBackend("cpu");
    const root = await Deno.makeTempDir();
    try {
      const E = 16, dir = `${root}/run`;
      const w = Float32Array.from({ length: 784 * E }, (_, i) => Math.sin(i * 12.9898) * 0.5);
      await Deno.mkdir(dir, { recursive: true });
      await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ experts: E }));
      await Deno.writeTextFile(
        `${dir}/summary.json`,
        JSON.stringify({ steps: 30, completed: true }),
      );
      await saveCheckpoint(`${dir}/checkpoint`, {
        tensors: { "param/moe.router.w": { shape: [784, E], dtype: "float32", values: w } },
        meta: {},
      });
      const data = await loadFixture("fashion-mnist");
      const measured = await table1ForRun(dir, { data, limit: 20 });
      equal(measured.images, 20);
      equal(measured.steps, 30);
      equal(measured.columns.length, 12);
      ok(measured.columns.every((c) => c.imed > 0));
      deepEqual(JSON.parse(await Deno.readTextFile(`${dir}/${TABLE1_FILE}`)), measured);
      // The pair's columns are the two runs' figures.
      const pair = await table1ForPair(dir, dir, { data, limit: 20 });
      deepEqual(pair.map((c) => c.moe), measured.columns.map((c) => c.imed));
      // Without the checkpoint: the kept figures, bit for bit.
      await Deno.remove(`${dir}/checkpoint`, { recursive: true });
      deepEqual(await table1ForRun(dir, { data, limit: 20 }), measured);
      // Other images, another seed, or a run trained further: refused, naming what differs.
      await rejects(() => table1ForRun(dir, { data, limit: 10 }), /measured on 20 images.*not 10/);
      await rejects(() => table1ForRun(dir, { data, limit: 20, seed: 1 }), /seed 0.*not 20, 1/);
      await Deno.writeTextFile(
        `${dir}/summary.json`,
        JSON.stringify({ steps: 60, completed: true }),
      );
      await rejects(() => table1ForRun(dir, { data, limit: 20 }), /after 30 steps.*after 60/);
      // Neither checkpoint nor figures: said so, not a missing-file error from deep inside.
      await Deno.remove(`${dir}/${TABLE1_FILE}`);
      await rejects(() => table1ForRun(dir, { data, limit: 20 }), /no checkpoint and no table1/);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
