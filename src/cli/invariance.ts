/**
 * `deno task invariance --moe RUN --moge RUN`: the paper's Table 1 and Fig. 2
 * on two trained runs: mean IMED between the routing maps of test images and
 * of their randomly transformed copies, average routing map per class,
 * expert-load histograms and specialization figures.
 *
 * @module
 */

import { tf } from "../deps.ts";
import { describeBackend, useBackend } from "../backend.ts";
import { TABLE1_TRANSFORMS } from "../analysis/affine.ts";
import { writeFileAtomic, writeJsonAtomic } from "../atomic.ts";
import { loadCheckpoint } from "../train/checkpoint.ts";
import type { TrainConfig } from "../train/classifier_config.ts";
import { CLASS_NAMES, type Dataset, loadFixture } from "../data/images.ts";
import { loadDataset } from "../data/image_sources.ts";
import { barChartSpec } from "../report/charts.ts";
import { heatmapPng, heatmapSpec } from "../report/heatmap.ts";
import { writeChart } from "../report/vega.ts";
import { writeInvarianceReport } from "../report/html_report.ts";
import { meanImed, routingScores, transformImages } from "../analysis/invariance.ts";
import { type Layout, topographicLayout } from "../moge/layout.ts";
import { classMeanMaps, type Specialization, specialization } from "../analysis/specialization.ts";
import { numberFlag, parseFlags, runMain, UsageError } from "./args.ts";
import { ProgressLine } from "./progress.ts";

/** A trained classifier run, as the invariance report needs it. */
export interface LoadedRun {
  /** The run directory as given. */
  dir: string;
  /** Its real path (two flags naming one run are refused). */
  realPath: string;
  /** Its config.json. */
  config: TrainConfig;
  /** The router weights `[784, E]`, row-major. */
  routerW: Float32Array;
  /** The squarest layout of E. */
  layout: Layout;
}

/** The model a run's config.json belongs to (the ViT and LM configs have their own fields). */
function modelOf(config: Record<string, unknown>): "classifier" | "vit" | "lm" {
  if ("embedDim" in config || "patchSize" in config) return "vit";
  if ("contextLength" in config || "variant" in config) return "lm";
  return "classifier";
}

/**
 * Loads a classifier run for `--moe` or `--moge` and checks it: config.json
 * is a classifier's, its mode is the flag's, and the checkpoint agrees with it
 * (router weights `[784, E]`, the checkpoint's own config). Throws a
 * {@linkcode UsageError} naming the flag, the run and what is wrong.
 *
 * @example
 * ```ts ignore
 * import { loadRun } from "./invariance.ts";
 * const run = await loadRun("runs/moge-E64-s0", "moge");
 * console.log(run.config.experts, run.layout); // 64 { rows: 8, cols: 8 }
 * ```
 */
export async function loadRun(dir: string, flag: "moe" | "moge"): Promise<LoadedRun> {
  const where = `--${flag} ${dir}`;
  let config: TrainConfig;
  let realPath: string;
  try {
    realPath = await Deno.realPath(dir);
    config = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
  } catch (e) {
    throw new UsageError(`${where}: not a run directory (${(e as Error).message.split("\n")[0]})`);
  }
  if (config === null || typeof config !== "object" || Array.isArray(config)) {
    throw new UsageError(`${where}: config.json is not a JSON object`);
  }
  const model = modelOf(config as unknown as Record<string, unknown>);
  if (model !== "classifier") {
    throw new UsageError(
      `${where} is a ${model} run: invariance compares two runs of the classifier ` +
        `(deno task train --model classifier)`,
    );
  }
  if (config.mode !== "moe" && config.mode !== "moge") {
    throw new UsageError(
      `${where}: config.json has mode ${JSON.stringify(config.mode)}; allowed are moe, moge`,
    );
  }
  if (config.mode !== flag) {
    const other = config.mode === "moe" ? "MoE" : "MoGE";
    throw new UsageError(
      `${where} is a ${other} run (config.json mode "${config.mode}"): pass it as --${config.mode}`,
    );
  }
  if (!Number.isInteger(config.experts) || config.experts < 1) {
    throw new UsageError(
      `${where}: config.json has experts ${
        JSON.stringify(config.experts)
      }; E must be an integer >= 1`,
    );
  }
  const ck = await loadCheckpoint(`${dir}/checkpoint`).catch((e: Error) => {
    throw new UsageError(`${where}: ${e.message.split("\n")[0]}`);
  });
  // The checkpoint's own config (written with every checkpoint) must be the run's.
  const saved = (ck.meta as { config?: Partial<TrainConfig> }).config;
  if (saved && typeof saved === "object") {
    const differ = (["mode", "dataset", "experts", "hiddenDim", "topK"] as const).filter((k) =>
      k in saved && saved[k] !== config[k]
    );
    if (differ.length) {
      throw new UsageError(
        `${where}: config.json disagrees with its checkpoint in ${
          differ.map((k) => `${k} (${JSON.stringify(config[k])} vs ${JSON.stringify(saved[k])})`)
            .join(", ")
        }: the files come from different runs`,
      );
    }
  }
  const w = ck.tensors["param/moe.router.w"];
  if (!w) {
    throw new UsageError(
      `${where}: checkpoint ${ck.path} has no tensor "param/moe.router.w" (the router weights)`,
    );
  }
  if (w.shape.length !== 2 || w.shape[0] !== 784 || w.shape[1] !== config.experts) {
    throw new UsageError(
      `${where}: checkpoint ${ck.path} has router weights "param/moe.router.w" [${w.shape}], ` +
        `but config.json's E = ${config.experts} needs [784,${config.experts}]`,
    );
  }
  // The squarest layout of E (h = 1 accepts any E, so a plain-MoE run with a prime E still works).
  return {
    dir,
    realPath,
    config,
    routerW: w.values as Float32Array,
    layout: topographicLayout(config.experts, 1),
  };
}

/**
 * Checks that two runs can be compared column by column: two different runs
 * with the same E (so the same map), the same data set and the same expert
 * shape. Throws a {@linkcode UsageError} naming what differs.
 *
 * @example
 * ```ts ignore
 * import { checkRunPair, loadRun } from "./invariance.ts";
 * checkRunPair(await loadRun("runs/moe-E64-s0", "moe"), await loadRun("runs/moge-E64-s0", "moge"));
 * ```
 */
export function checkRunPair(moe: LoadedRun, moge: LoadedRun): void {
  if (moe.realPath === moge.realPath) {
    throw new UsageError(
      `--moe and --moge name the same run (${moe.realPath}): give one MoE and one MoGE run`,
    );
  }
  const differ: string[] = [];
  const a = moe.config, b = moge.config;
  if (a.experts !== b.experts) {
    differ.push(
      `E (${a.experts} vs ${b.experts}: a ${moe.layout.rows}x${moe.layout.cols} map vs a ` +
        `${moge.layout.rows}x${moge.layout.cols} one)`,
    );
  }
  if (a.dataset !== b.dataset) differ.push(`data set (${a.dataset} vs ${b.dataset})`);
  for (const k of ["hiddenDim", "topK"] as const) {
    if (a[k] !== b[k]) differ.push(`${k} (${a[k]} vs ${b[k]})`);
  }
  if (differ.length) {
    throw new UsageError(
      `the runs differ in ${differ.join(", ")}: Table 1 compares an MoE and a MoGE run ` +
        `of the same model and data, differing only in the mode`,
    );
  }
}

/** The largest --seed: the transforms of column i use seed · 1000 + i, a 31-bit tfjs seed. */
const MAX_SEED = Math.floor((2 ** 31 - 1 - 11) / 1000);

function toFloat(images: Uint8Array): Float32Array {
  const out = new Float32Array(images.length);
  for (let i = 0; i < images.length; i++) out[i] = images[i] / 255;
  return out;
}

async function main(): Promise<void> {
  const flags = parseFlags(Deno.args, {
    help: { type: "boolean", short: "h" },
    moe: { type: "string" },
    moge: { type: "string" },
    out: { type: "string" },
    limit: { type: "string" },
    seed: { type: "string" },
    "imed-sigma": { type: "string" },
    backend: { type: "string" },
  });
  if (flags.help) {
    console.log(
      `Measures routing invariance (the MoGE paper's Table 1) and draws Fig. 2 for two runs
of \`deno task train\` (same data; one MoE, one MoGE).

Usage: deno task invariance --moe RUN_DIR --moge RUN_DIR [flags]

  --out DIR          where to write the report [default <moge run>/invariance]
  --limit N          use the first N test images (0: all) [default 0]
  --seed S           seed of the random transforms (same draws for both models) [default 0]
  --imed-sigma S     σ of the IMED Gaussian [default 1]
  --backend NAME     auto | webgpu | wasm | cpu [default auto]
  -h, --help         this text

For every column of Table 1 (rotation 5/10/15°, scale 0.5/0.8/1.1, translation
(0,0.1)/(0.1,0)/(0.1,0.1), shear 5/10/15°; torchvision RandomAffine semantics,
bilinear) it reports the mean squared IMED d² between the routing map z of each
test image and of its transformed copy, for both models, beside the paper's
figures. Writes invariance.json, invariance.md, class_maps.svg/.png (the average
routing map per class, MoE and MoGE), load_moe.svg, load_moge.svg and
specialization.json.`,
    );
    return;
  }
  if (typeof flags.moe !== "string" || typeof flags.moge !== "string") {
    throw new UsageError("both --moe RUN_DIR and --moge RUN_DIR are required");
  }
  const limit = numberFlag("limit", String(flags.limit ?? 0));
  const seed = numberFlag("seed", String(flags.seed ?? 0));
  if (!Number.isInteger(seed) || seed < 0 || seed > MAX_SEED) {
    throw new UsageError(`--seed ${seed}: must be an integer in [0, ${MAX_SEED}]`);
  }
  const imedSigma = numberFlag("imed-sigma", String(flags["imed-sigma"] ?? 1));
  if (!Number.isInteger(limit) || limit < 0) {
    throw new UsageError(`--limit ${limit}: must be an integer >= 0`);
  }
  if (!(imedSigma > 0)) throw new UsageError(`--imed-sigma ${imedSigma}: must be > 0`);
  const runs = { moe: await loadRun(flags.moe, "moe"), moge: await loadRun(flags.moge, "moge") };
  checkRunPair(runs.moe, runs.moge);
  const backend = await useBackend(
    (flags.backend ?? "auto") as "auto" | "webgpu" | "wasm" | "cpu",
  );
  console.log(`backend: ${describeBackend(backend)}`);
  const ds = runs.moe.config.dataset;
  const data: Dataset = ds === "fixture"
    ? await loadFixture("fashion-mnist")
    : await loadDataset(ds);
  const n = limit > 0 ? Math.min(limit, data.testLabels.length) : data.testLabels.length;
  const size = data.imageSize;
  const images = toFloat(data.testImages.subarray(0, n * size * size));
  const labels = data.testLabels.subarray(0, n);
  const outDir = typeof flags.out === "string" ? flags.out : `${runs.moge.dir}/invariance`;
  await Deno.mkdir(outDir, { recursive: true });

  const z0 = {
    moe: await routingScores(images, runs.moe.routerW, runs.moe.config.experts),
    moge: await routingScores(images, runs.moge.routerW, runs.moge.config.experts),
  };
  const line = new ProgressLine();
  const columns = [];
  for (const [i, t] of TABLE1_TRANSFORMS.entries()) {
    line.update(`IMED: ${t.name} (${i + 1}/${TABLE1_TRANSFORMS.length}) on ${n} test images`, true);
    const moved = transformImages(images, size, t.options, seed * 1000 + i);
    const result: Record<string, { mean: number; std: number }> = {};
    for (const kind of ["moe", "moge"] as const) {
      const z1 = await routingScores(moved, runs[kind].routerW, runs[kind].config.experts);
      result[kind] = meanImed(z0[kind], z1, runs[kind].layout, imedSigma);
    }
    columns.push({
      name: t.name,
      family: t.family,
      options: t.options,
      moe: result.moe,
      moge: result.moge,
      mogeLower: result.moge.mean < result.moe.mean,
      paperMoE: t.paperMoE,
      paperMoGE: t.paperMoGE,
    });
  }
  line.done();
  const agree = columns.filter((c) => c.mogeLower).length;

  // Specialization and pictures.
  const spec: Record<string, Specialization> = {};
  const maps: Record<string, number[][]> = {};
  for (const kind of ["moe", "moge"] as const) {
    const { layout, config } = runs[kind];
    spec[kind] = specialization(z0[kind], labels, layout, data.numClasses);
    maps[kind] = classMeanMaps(z0[kind], labels, config.experts, data.numClasses);
  }
  const classNames = CLASS_NAMES[ds === "mnist" ? "mnist" : "fashion-mnist"];
  const panels = (["moe", "moge"] as const).flatMap((kind) =>
    maps[kind].map((values, c) => ({
      title: `${kind === "moe" ? "MoE" : "MoGE"}: ${classNames[c]}`,
      values,
      rows: runs[kind].layout.rows,
      cols: runs[kind].layout.cols,
    }))
  );
  const heatOpts = {
    columns: data.numClasses,
    title: "Average routing map z per class (top row MoE, bottom row MoGE)",
  };
  await writeChart(`${outDir}/class_maps`, heatmapSpec(panels, heatOpts));
  await writeJsonAtomic(`${outDir}/class_maps.json`, { columns: data.numClasses, panels });
  await writeFileAtomic(
    `${outDir}/class_maps.png`,
    await heatmapPng(panels, { ...heatOpts, cell: 12 }),
  );
  for (const kind of ["moe", "moge"] as const) {
    await writeChart(
      `${outDir}/load_${kind}`,
      barChartSpec(spec[kind].tokensPerExpert, {
        title: `${kind === "moe" ? "MoE" : "MoGE"}: test images per expert (first choice)`,
        xLabel: "expert (row-major on the map)",
        yLabel: "images",
      }),
    );
  }

  const report = {
    date: new Date().toISOString(),
    backend,
    runs: { moe: runs.moe.dir, moge: runs.moge.dir },
    testImages: n,
    seed,
    imedSigma,
    imed: "squared image Euclidean distance d² = (a − b)ᵀ G (a − b) between routing maps z",
    columns,
    mogeLowerIn: `${agree} of ${columns.length}`,
    specialization: spec,
  };
  await writeJsonAtomic(`${outDir}/invariance.json`, report);
  await writeJsonAtomic(`${outDir}/specialization.json`, spec);
  const f = (v: number) => v.toFixed(4);
  const md = `# Routing invariance (MoGE Table 1)

Runs: MoE \`${runs.moe.dir}\` (E = ${runs.moe.config.experts}), MoGE \`${runs.moge.dir}\`
(E = ${runs.moge.config.experts}). ${n} test images of ${ds}; transforms seeded with ${seed};
IMED σ = ${imedSigma}; ${describeBackend(backend)}.

Mean squared IMED between the routing map of each image and of its transformed copy
(lower = more invariant). MoGE is lower in **${agree} of ${columns.length}** columns
(the paper: 12 of 12).

| model | ${columns.map((c) => c.name).join(" | ")} |
|---|${columns.map(() => "---").join("|")}|
| MoE (ours) | ${columns.map((c) => f(c.moe.mean)).join(" | ")} |
| MoGE (ours) | ${
    columns.map((c) => `${c.mogeLower ? "**" : ""}${f(c.moge.mean)}${c.mogeLower ? "**" : ""}`)
      .join(" | ")
  } |
| MoE (paper) | ${columns.map((c) => f(c.paperMoE)).join(" | ")} |
| MoGE (paper) | ${columns.map((c) => f(c.paperMoGE)).join(" | ")} |

Specialization on the untransformed test images:

| figure | MoE | MoGE |
|---|---|---|
| dead experts | ${spec.moe.deadExperts} | ${spec.moge.deadExperts} |
| mean routing entropy (nats) | ${f(spec.moe.meanRoutingEntropy)} | ${
    f(spec.moge.meanRoutingEntropy)
  } |
| load entropy (nats) | ${f(spec.moe.loadEntropy)} | ${f(spec.moge.loadEntropy)} |
| I(class; expert) / H(class) | ${f(spec.moe.normalizedMutualInformation)} | ${
    f(spec.moge.normalizedMutualInformation)
  } |
| mean expert purity | ${f(spec.moe.meanPurity)} | ${f(spec.moge.meanPurity)} |
| same-class map distance | ${f(spec.moe.sameClassMapDistance)} | ${
    f(spec.moge.sameClassMapDistance)
  } |
| different-class map distance | ${f(spec.moe.differentClassMapDistance)} | ${
    f(spec.moge.differentClassMapDistance)
  } |

![average routing map per class](class_maps.png)
`;
  await writeFileAtomic(`${outDir}/invariance.md`, md);
  await writeInvarianceReport(outDir);
  console.log(md);
  console.log(
    `files: ${outDir}/{report.html,invariance.json,invariance.md,class_maps.{svg,vl.json,json,png},` +
      `load_moe.{svg,vl.json},load_moge.{svg,vl.json},specialization.json}`,
  );
  tf.disposeVariables();
}

if (import.meta.main) await runMain(main, "deno task invariance");
