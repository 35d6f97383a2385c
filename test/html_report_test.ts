/**
 * Tests of report.html (src/report/html_report.ts and the page modules it
 * gathers): which charts a run's files give (classifier, ViT and
 * language-model fields, missing fields, a torn last line), the sweep page
 * written by `deno task report` and the invariance page, and, in headless
 * Chromium, that each page loads with no console error and no network
 * request, and that every chart drew (an SVG with a non-empty box and marks).
 * The run fixtures in fixtures/report_sweep are a real tiny run (MoE and
 * MoGE, 6 epochs on the fixture data, cpu) and its invariance output.
 */

import {
  buildRunReport,
  writeInvarianceReport,
  writeRoutingMaps,
  writeRunReport,
} from "../src/report/html_report.ts";
import { readJsonLinesLenient } from "../src/sweep/run_files.ts";
import { Browser, findChromium, NO_CHROMIUM } from "./chromium.ts";
import { deepEqual, equal, ok, rejects } from "./asserts.ts";

const FIXTURE = new URL("../fixtures/report_sweep", import.meta.url).pathname;

/** The data-chart ids of a page, in order. */
function chartIds(html: string): string[] {
  return [...html.matchAll(/<figure class="chart" data-chart="([^"]+)"/g)].map((m) => m[1]);
}

async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isDirectory) await copyDir(`${from}/${e.name}`, `${to}/${e.name}`);
    else await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}

Deno.test("run report: a classifier run gives every chart, its config and summary; reloads only while running", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await copyDir(`${FIXTURE}/moge`, dir);
    const html = await buildRunReport(dir);
    deepEqual(chartIds(html), [
      "loss",
      "accuracy",
      "reg",
      "sigma",
      "lr",
      "dead",
      "drop",
      "load",
      "routing-maps",
    ]);
    ok(html.startsWith("<!DOCTYPE html>"));
    ok(!/<script|https?:\/\/(?!www\.w3\.org)/.test(html), "no script, no external URL");
    ok(html.includes("<th>lambda</th>"), "the config table");
    ok(html.includes("<th>testAcc</th>"), "the summary table");
    ok(!html.includes('http-equiv="refresh"'), "a finished run does not reload");
    equal(html.match(/<svg /g)?.length, 9);
    // 16 experts: the load histogram has 16 bars; routing maps: 10 classes of 4 × 4 cells
    const load = html.split('data-chart="load"')[1].split("</figure>")[0];
    equal(load.match(/<path [^>]*aria-roledescription="bar"/g)?.length, 16);
    const maps = html.split('data-chart="routing-maps"')[1].split("</figure>")[0];
    equal(maps.match(/aria-roledescription="rect mark"/g)?.length, 10 * 16);
    // while running: no summary, the page reloads itself
    await Deno.remove(`${dir}/summary.json`);
    ok((await buildRunReport(dir)).includes('http-equiv="refresh"'));
    const path = await writeRunReport(dir);
    equal(path, `${dir}/report.html`);
    ok((await Deno.readTextFile(path)).includes('data-chart="loss"'));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("run report: missing fields give no chart; a torn last line is skipped; LM and ViT per-layer fields", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // Only the fields of a run without MoE statistics, and a torn line at the end.
    await Deno.writeTextFile(
      `${dir}/metrics.jsonl`,
      '{"epoch":1,"trainLoss":2,"testAcc":0.5}\n{"epoch":2,"trainLoss":1.5,"testAcc":0.6}\n{"epoch":3,"tra',
    );
    equal((await readJsonLinesLenient(`${dir}/metrics.jsonl`)).length, 2);
    let html = await buildRunReport(dir);
    deepEqual(chartIds(html), ["loss", "accuracy"]);
    ok(html.includes("(no config.json)"));
    ok(html.includes("epoch 2"));
    // A language-model run: steps, perplexity, per-layer R(z), dead experts and load.
    const lm = [1, 2].map((k) => ({
      step: 100 * k,
      trainLoss: 3 / k,
      trainCe: 2.9 / k,
      trainPpl: 20 / k,
      validCe: 3.1 / k,
      validPpl: 22 / k,
      validReg: [0.4 / k, 0.5 / k],
      sigma: 3 / k,
      lr: 1e-3,
      load: [[5, 3, 0, 8], [4, 4, 4, 4]],
      deadExperts: [1, 0],
      dropRate: 0.01,
    }));
    await Deno.writeTextFile(`${dir}/metrics.jsonl`, lm.map((r) => JSON.stringify(r)).join("\n"));
    html = await buildRunReport(dir);
    deepEqual(chartIds(html), [
      "loss",
      "perplexity",
      "reg",
      "sigma",
      "lr",
      "dead",
      "drop",
      "load-0",
      "load-1",
    ]);
    ok(html.includes("validation R(z), layer 1"), "one R(z) series per layer");
    ok(html.includes("step 200"));
    // A ViT run: per-layer MoE metrics in trainMoe / testMoe; MoE mode logs reg = null.
    const layer = (reg: number | null) => ({
      block: 1,
      reg,
      aux: 1,
      load: [3, 0, 5, 2],
      deadExperts: 1,
      dropRate: 0,
    });
    const vit = [1, 2].map((epoch) => ({
      epoch,
      trainLoss: 2 / epoch,
      trainAcc: 0.3 * epoch,
      testAcc: 0.3 * epoch,
      sigma: 1,
      lr: 1e-3,
      trainMoe: [layer(null)],
      testMoe: [layer(0.2 / epoch)],
    }));
    await Deno.writeTextFile(`${dir}/metrics.jsonl`, vit.map((r) => JSON.stringify(r)).join("\n"));
    html = await buildRunReport(dir);
    deepEqual(chartIds(html), ["loss", "accuracy", "reg", "sigma", "lr", "dead", "drop", "load"]);
    ok(html.includes("test R(z)") && !html.includes(">train R(z)<"), "null R(z) is left out");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("run report: bad directories and bad routing maps throw errors naming the value", async () => {
  await rejects(() => buildRunReport("/nonexistent/run"), /dir = \/nonexistent\/run is invalid/);
  await rejects(
    () => writeRoutingMaps("/tmp", [[1, 2, 3]], 2, 2),
    /panels\[0\]\.values\.length = 3 is invalid/,
  );
  await rejects(() => writeInvarianceReport(FIXTURE), /invariance\.json is missing/);
});

Deno.test("writeRoutingMaps: written maps show up in the run report with class titles", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeRoutingMaps(dir, [[0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]], 2, 2, {
      epoch: 3,
      classNames: ["T-shirt <top>", "Trouser"],
    });
    const html = await buildRunReport(dir);
    deepEqual(chartIds(html), ["routing-maps"]);
    ok(html.includes("epoch 3"));
    ok(html.includes("T-shirt &lt;top&gt;"), "titles escaped");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * A copy of the fixture with all pages written: the sweep page (and each
 * run's) by `deno task report`, the invariance page by writeInvarianceReport.
 */
async function writeAllPages(): Promise<{ dir: string; pages: Record<string, string> }> {
  const dir = await Deno.makeTempDir();
  await copyDir(FIXTURE, dir);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "report", dir],
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const sweep = `${dir}/report.html`;
  const invariance = await writeInvarianceReport(`${dir}/moge/invariance`);
  return {
    dir,
    pages: { run: `${dir}/moge/report.html`, sweep, invariance },
  };
}

Deno.test("sweep and invariance reports: the statistics of deno task report, runs linked; IMED and maps charts", async () => {
  const { dir, pages } = await writeAllPages();
  try {
    const sweep = await Deno.readTextFile(pages.sweep);
    ok(sweep.includes('<a href="moe/report.html">moe (seed 1)</a>'));
    ok(sweep.includes('<a href="moge/report.html">moge (seed 1)</a>'));
    // The groups are named by what differs (the mode; λ is the same in both).
    ok(sweep.includes("<td>mode=moe</td><td>1</td>"), "groups table");
    ok(!sweep.includes("lambda="), "λ does not name a group");
    ok(sweep.includes("MoGE (mode=moge) vs MoE (mode=moe), paired by seed"), "pair table");
    // The charts are report.md's: one band chart per figure, then the groups' test-load maps
    // (the runs' metrics carry a load), ids after their SVG files.
    deepEqual(chartIds(sweep), [
      "accuracy_vs_epoch",
      "reg_vs_epoch",
      "dead_experts_vs_epoch",
      "load_map",
    ]);
    for (const id of chartIds(sweep)) {
      ok((await Deno.readTextFile(`${dir}/report.md`)).includes(`(${id}.svg)`), id);
    }
    ok((await Deno.stat(`${dir}/moe/report.html`)).isFile, "each run's page written too");
    const inv = await Deno.readTextFile(pages.invariance);
    deepEqual(chartIds(inv), ["imed", "routing-maps", "load-moe", "load-moge"]);
    ok(inv.includes("normalizedMutualInformation"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const chromium = findChromium();

Deno.test({
  name: "report.html in headless Chromium: no console error, no request, every chart drew",
  // Chromium's own threads and the websocket outlive the test body's awaits.
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    if (!chromium) {
      console.log(NO_CHROMIUM);
      return;
    }
    const { dir, pages } = await writeAllPages();
    const browser = await Browser.launch(chromium, 1280, 900);
    try {
      for (const [name, path] of Object.entries(pages)) {
        await t.step(name, async () => {
          browser.problems = [];
          browser.requests = [];
          const url = `file://${path}`;
          await browser.goto(url);
          const charts = await browser.evaluate<
            { id: string; w: number; h: number; marks: number }[]
          >(`[...document.querySelectorAll("figure.chart")].map((f) => {
              const svg = f.querySelector("svg");
              const box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
              return { id: f.dataset.chart, w: box.width, h: box.height,
                marks: svg ? svg.querySelectorAll("path, rect, line").length : 0 };
            })`);
          const html = await Deno.readTextFile(path);
          equal(charts.length, chartIds(html).length, "every chart of the page is in the DOM");
          ok(charts.length >= 3, `${name}: at least 3 charts`);
          for (const c of charts) {
            ok(c.w > 50 && c.h > 50, `${name}/${c.id}: drawn at ${c.w} × ${c.h}`);
            ok(c.marks > 5, `${name}/${c.id}: ${c.marks} marks`);
          }
          deepEqual(browser.problems, [], `${name}: no console errors`);
          deepEqual(browser.requests.filter((u) => u !== url), [], `${name}: no other request`);
          if (name !== "invariance" || Deno.env.get("MOGE_SCREENSHOTS")) {
            const png = await browser.screenshot();
            ok(png.length > 10_000, "a screenshot with content");
            if (Deno.env.get("MOGE_SCREENSHOTS")) {
              await Deno.writeFile(
                new URL(`../docs/report_${name}.png`, import.meta.url),
                png,
              );
            }
          }
        });
      }
    } finally {
      await browser.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
