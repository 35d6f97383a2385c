import { CURVE_FRACTIONS, learningCurves } from "../src/analysis/sweep_learning_curve.ts";
import type { RunGroup } from "../src/analysis/sweep_groups.ts";
import type { RunRecord } from "../src/analysis/sweep_runs.ts";
import { sweepTables } from "../src/analysis/sweep_tables.ts";
import type { SweepReport } from "../src/analysis/sweep_report.ts";
import { assertClose, deepEqual, equal } from "./asserts.ts";

type Line = Record<string, number>;

function run(model: RunRecord["model"], metrics: Line[]): RunRecord {
  return { id: "r", dir: "r", model, config: {}, summary: {}, metrics };
}

function group(model: RunRecord["model"], seeds: number[]): RunGroup {
  return { label: "g", model, config: {}, seeds, runs: [], metrics: {} };
}

Deno.test("learningCurves: windowed accuracy at each quarter and the last quarter's change, by hand", () => {
  // 40 epochs: the window is ceil(40 / 20) = 2 epochs. Seed 0's accuracy is
  // epoch/100 (as a fraction; the report shows %, i.e. `epoch` points), seed 1's
  // is (epoch + 2)/100. At a quarter (epoch 10) seed 0 averages epochs 9 and 10:
  // 9.5 %, seed 1 11.5 %: mean 10.5. Half (20): 19.5 / 21.5 -> 20.5. Three
  // quarters (30): 30.5. End (40): 40.5. Last quarter per seed: 39.5 - 29.5 = 10
  // and 41.5 - 31.5 = 10: mean 10, sd 0, both rose.
  const lines = (offset: number) =>
    Array.from({ length: 40 }, (_, i) => ({ epoch: i + 1, testAcc: (i + 1 + offset) / 100 }));
  const [row] = learningCurves([group("classifier", [0, 1])], [[
    run("classifier", lines(0)),
    run("classifier", lines(2)),
  ]]);
  equal(row.window, 2);
  deepEqual(row.x, [10, 20, 30, 40]);
  const means = row.at.map((c) => c.mean);
  [10.5, 20.5, 30.5, 40.5].forEach((m, j) => assertClose(means[j], m, { atol: 1e-9 }));
  assertClose(row.lastQuarter.mean, 10, { atol: 1e-9 });
  assertClose(row.lastQuarter.halfWidth!, 0, { atol: 1e-9 });
  equal(row.improved, 2);
  equal(row.key, "testAcc");
});

Deno.test("learningCurves: a plateau has a last-quarter interval around 0; the LM counts a fall in perplexity as improving", () => {
  // 8 epochs (window 1), flat after epoch 4 except ±1 point of noise at the end:
  // seed 0 ends at 51, seed 1 at 49, both at 50 at epoch 6 (75 % of 8).
  const flat = (end: number) =>
    [10, 30, 45, 50, 50, 50, 50, end].map((a, i) => ({ epoch: i + 1, testAcc: a / 100 }));
  const [row] = learningCurves([group("classifier", [0, 1])], [[
    run("classifier", flat(51)),
    run("classifier", flat(49)),
  ]]);
  // Changes +1 and -1: mean 0, sd √2, half-width t(0.975, 1)·√2/√2 = 12.706.
  assertClose(row.lastQuarter.mean, 0, { atol: 1e-9 });
  assertClose(row.lastQuarter.halfWidth!, 12.7062, { atol: 1e-3 });
  equal(row.improved, 1);

  // LM: x is the step; validation perplexity falls from 20 to 12 over steps 100..400.
  const lm = [20, 16, 14, 12].map((p, i) => ({ step: 100 * (i + 1), validPpl: p }));
  const [l] = learningCurves([group("lm", [0])], [[run("lm", lm)]]);
  deepEqual(l.x, [100, 200, 300, 400]);
  equal(l.lastQuarter.mean, -2);
  equal(l.improved, 1, "perplexity fell: better");
  equal(l.key, "validPpl");
});

Deno.test("learningCurves: groups with fewer than 4 logged points are left out; the report shows one table per model", () => {
  const short = [1, 2, 3].map((epoch) => ({ epoch, testAcc: 0.5 }));
  equal(learningCurves([group("classifier", [0])], [[run("classifier", short)]]).length, 0);

  const long = [1, 2, 3, 4].map((epoch) => ({ epoch, testAcc: epoch / 10 }));
  const rows = learningCurves([group("classifier", [0])], [[run("classifier", long)]]);
  const report: SweepReport = {
    sweepDir: "x",
    date: "",
    unfinished: [],
    groups: [],
    pairs: [],
    table1: [],
    curves: {},
    learningCurves: rows,
  };
  const tables = sweepTables(report).filter((t) => t.id.startsWith("curve-"));
  equal(tables.length, 0, "no groups, no model: no table");
  const withGroup = sweepTables({
    ...report,
    groups: [{ ...group("classifier", [0]), metrics: {} }],
  }).filter((t) => t.id.startsWith("curve-"));
  equal(withGroup.length, 1);
  equal(withGroup[0].head.length, 2 + CURVE_FRACTIONS.length + 2);
  deepEqual(withGroup[0].rows[0].slice(2, 6), [
    "10.00 (n = 1) (1)",
    "20.00 (n = 1) (2)",
    "30.00 (n = 1) (3)",
    "40.00 (n = 1) (4)",
  ]);
  equal(withGroup[0].rows[0][7], "1 of 1 seeds");
});
