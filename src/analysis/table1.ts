/**
 * The MoGE paper's Table 1 for one (MoE, MoGE) pair of classifier runs, as a
 * library: the mean squared IMED between the routing map of each test image
 * and that of a randomly transformed copy, for each of the 12 transforms.
 * `deno task invariance` draws the same measurement with pictures; the
 * sweep report calls this once per seed pair.
 *
 * @module
 */

import { TABLE1_TRANSFORMS } from "./affine.ts";
import { meanImed, routingScores, transformImages } from "./invariance.ts";
import { loadCheckpoint } from "../train/checkpoint.ts";
import { topographicLayout } from "../moge/layout.ts";
import { writeJsonAtomic } from "../atomic.ts";
import { readJsonOrNull } from "../sweep/run_files.ts";

/** The test split that Table 1 is measured on (a `Dataset` from src/data/images.ts fits). */
export interface TestSplit {
  /** Test images, `N x size²` uint8 pixels, image after image. */
  testImages: Uint8Array;
  /** Test labels (their count is N). */
  testLabels: Uint8Array;
  /** Image side. */
  imageSize: number;
}

/** One column of Table 1 for one pair of runs. */
export interface Table1Column {
  /** Transform, e.g. "rotation 5". */
  name: string;
  /** Mean squared IMED of the MoE run. */
  moe: number;
  /** Mean squared IMED of the MoGE run. */
  moge: number;
}

/** Options of {@linkcode table1ForPair}. */
export interface Table1Options {
  /** The data the runs were trained on (its test split is used). */
  data: TestSplit;
  /** Use the first `limit` test images (0: all). */
  limit?: number;
  /** Seed of the random transforms (transform i uses seed·1000 + i, as `deno task invariance`). */
  seed?: number;
  /** σ of the IMED Gaussian (default 1). */
  imedSigma?: number;
}

/**
 * The router weights and experts of a classifier run directory (from its
 * checkpoint).
 *
 * @example
 * ```ts ignore
 * import { loadRouter } from "./table1.ts";
 * const { routerW, experts } = await loadRouter("runs/e64/mode-moge_seed-0");
 * ```
 */
export async function loadRouter(dir: string): Promise<{ routerW: Float32Array; experts: number }> {
  const config = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
  const ck = await loadCheckpoint(`${dir}/checkpoint`);
  const w = ck.tensors["param/moe.router.w"];
  if (!w) throw new Error(`${dir}: the checkpoint has no router weights (param/moe.router.w)`);
  return { routerW: w.values as Float32Array, experts: Number(config.experts) };
}

/** What `table1.json` in a run directory holds: one run's Table 1 figures and how they were measured. */
export interface RunTable1 {
  /** Test images measured (the first `images` of the test split). */
  images: number;
  /** Seed of the random transforms. */
  seed: number;
  /** σ of the IMED Gaussian. */
  imedSigma: number;
  /** The run's optimizer steps when measured (`summary.json`'s `steps`; null without one). */
  steps: number | null;
  /** Mean squared IMED per transform, in the order of `TABLE1_TRANSFORMS`. */
  columns: { name: string; imed: number }[];
}

/** The file in a run directory that keeps its Table 1 figures (see {@linkcode table1ForRun}). */
export const TABLE1_FILE = "table1.json";

/**
 * One run's Table 1 figures: the mean squared IMED of its routing maps under
 * each of the 12 transforms. Measured from the run's checkpoint (its router
 * weights) and kept in the run directory as `table1.json`; later calls with
 * the same images, seed and σ, for the same number of training steps, read
 * that file, so a finished run keeps its figures after its checkpoint is gone
 * (e.g. the small files of a run copied to another machine, where a sweep's
 * other seeds are trained and reported with it).
 *
 * @example
 * ```ts ignore
 * import { table1ForRun } from "./table1.ts";
 * import { loadFixture } from "../data/images.ts";
 * const t = await table1ForRun("runs/s/mode-moge_seed-0",
 *   { data: await loadFixture("fashion-mnist"), limit: 100 });
 * t.columns[0]; // { name: "rotation 5", imed: ... }
 * ```
 */
export async function table1ForRun(dir: string, opts: Table1Options): Promise<RunTable1> {
  const limit = opts.limit ?? 0;
  const seed = opts.seed ?? 0;
  const imedSigma = opts.imedSigma ?? 1;
  if (!Number.isInteger(limit) || limit < 0) {
    throw new RangeError(`table1ForRun: limit = ${limit} must be an integer >= 0`);
  }
  if (!(imedSigma > 0)) {
    throw new RangeError(`table1ForRun: imedSigma = ${imedSigma} must be > 0`);
  }
  const { data } = opts;
  const n = limit > 0 ? Math.min(limit, data.testLabels.length) : data.testLabels.length;
  const summary = await readJsonOrNull(`${dir}/summary.json`);
  const steps = typeof summary?.steps === "number" ? summary.steps : null;
  // A missing or unreadable table1.json counts as none.
  const kept = await readJsonOrNull(`${dir}/${TABLE1_FILE}`) as RunTable1 | null;
  const same = kept !== null && kept.images === n && kept.seed === seed &&
    kept.imedSigma === imedSigma && kept.steps === steps &&
    kept.columns?.length === TABLE1_TRANSFORMS.length &&
    kept.columns.every((c, i) => c.name === TABLE1_TRANSFORMS[i].name);
  if (same) return kept;
  const ckExists = await Deno.stat(`${dir}/checkpoint`).then(() => true, () => false);
  if (!ckExists) {
    throw new Error(
      kept
        ? `${dir}: no checkpoint, and its ${TABLE1_FILE} was measured on ${kept.images} images` +
          ` with seed ${kept.seed}, IMED σ ${kept.imedSigma} after ${kept.steps} steps, not ${n},` +
          ` ${seed}, ${imedSigma} after ${steps}: rerun with those --limit and options, or` +
          ` restore the checkpoint`
        : `${dir}: no checkpoint and no ${TABLE1_FILE}: Table 1 needs the run's router weights`,
    );
  }
  const run = await loadRouter(dir);
  const size = data.imageSize;
  const px = data.testImages.subarray(0, n * size * size);
  const images = new Float32Array(px.length);
  for (let i = 0; i < px.length; i++) images[i] = px[i] / 255;
  const layout = topographicLayout(run.experts, 1);
  const z0 = await routingScores(images, run.routerW, run.experts);
  const columns = [];
  for (const [i, t] of TABLE1_TRANSFORMS.entries()) {
    const moved = transformImages(images, size, t.options, seed * 1000 + i);
    const z1 = await routingScores(moved, run.routerW, run.experts);
    columns.push({ name: t.name, imed: meanImed(z0, z1, layout, imedSigma).mean });
  }
  const out: RunTable1 = { images: n, seed, imedSigma, steps, columns };
  await writeJsonAtomic(`${dir}/${TABLE1_FILE}`, out);
  return out;
}

/**
 * Table 1 (12 columns) for a MoE run and a MoGE run: both models see the
 * same transformed images. Routing maps are laid out on the squarest grid
 * of E, as in `deno task invariance`. Each run's figures come from
 * {@linkcode table1ForRun} (kept in its `table1.json`).
 *
 * @example
 * ```ts ignore
 * import { table1ForPair } from "./table1.ts";
 * import { loadFixture } from "../data/images.ts";
 * const cols = await table1ForPair("runs/s/mode-moe_seed-0", "runs/s/mode-moge_seed-0",
 *   { data: await loadFixture("fashion-mnist"), limit: 100 });
 * ```
 */
export async function table1ForPair(
  moeDir: string,
  mogeDir: string,
  opts: Table1Options,
): Promise<Table1Column[]> {
  const moe = await table1ForRun(moeDir, opts);
  const moge = await table1ForRun(mogeDir, opts);
  return moe.columns.map((c, i) => ({ name: c.name, moe: c.imed, moge: moge.columns[i].imed }));
}
