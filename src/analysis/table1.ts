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

/**
 * Table 1 (12 columns) for a MoE run and a MoGE run: both models see the
 * same transformed images. Routing maps are laid out on the squarest grid
 * of E, as in `deno task invariance`.
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
  const limit = opts.limit ?? 0;
  const seed = opts.seed ?? 0;
  const sigma = opts.imedSigma ?? 1;
  if (!Number.isInteger(limit) || limit < 0) {
    throw new RangeError(`table1ForPair: limit = ${limit} must be an integer >= 0`);
  }
  if (!(sigma > 0)) throw new RangeError(`table1ForPair: imedSigma = ${sigma} must be > 0`);
  const runs = [await loadRouter(moeDir), await loadRouter(mogeDir)];
  const { data } = opts;
  const n = limit > 0 ? Math.min(limit, data.testLabels.length) : data.testLabels.length;
  const size = data.imageSize;
  const px = data.testImages.subarray(0, n * size * size);
  const images = new Float32Array(px.length);
  for (let i = 0; i < px.length; i++) images[i] = px[i] / 255;
  const layouts = runs.map((r) => topographicLayout(r.experts, 1));
  const z0 = await Promise.all(runs.map((r) => routingScores(images, r.routerW, r.experts)));
  const out: Table1Column[] = [];
  for (const [i, t] of TABLE1_TRANSFORMS.entries()) {
    const moved = transformImages(images, size, t.options, seed * 1000 + i);
    const d: number[] = [];
    for (const k of [0, 1]) {
      const z1 = await routingScores(moved, runs[k].routerW, runs[k].experts);
      d.push(meanImed(z0[k], z1, layouts[k], sigma).mean);
    }
    out.push({ name: t.name, moe: d[0], moge: d[1] });
  }
  return out;
}
