/**
 * The image data sets of the MoGE Fashion-MNIST experiment (each 28 x 28
 * image is one 784-pixel token, 10 classes): names, shapes and class names,
 * the {@linkcode Dataset} record, its binary cache file, the committed
 * fixtures, and per-split helpers. Where the full data sets come from and
 * how they are split: `image_sources.ts` (`loadDataset`); batching:
 * `image_batches.ts`.
 *
 * Binary file: the cache format of `cache.ts` with magic `MOGEDS01`, format
 * `moge-dataset` version 1, a JSON header (name, split, image size, class
 * names, counts, checksum), then the training images, training labels, test
 * images and test labels as uint8. The full data sets are cached as
 * `CACHEDIR/NAME-v1.bin` (about 55 MB, read in well under a second); the
 * fixtures in `fixtures/NAME-small.bin` use the same format.
 *
 * @module
 */

import { checkInteger } from "../validate.ts";
import {
  cacheFilePath,
  concatBytes,
  decodeCacheFile,
  defaultCacheDir,
  encodeCacheFile,
  readFixture,
} from "./cache.ts";

/**
 * The data sets `loadDataset` (`image_sources.ts`) knows.
 *
 * @example
 * ```ts
 * import { DATASET_NAMES } from "./images.ts";
 * console.log(DATASET_NAMES); // ["fashion-mnist", "mnist"]
 * ```
 */
export const DATASET_NAMES = ["fashion-mnist", "mnist"] as const;

/**
 * One of {@linkcode DATASET_NAMES}.
 *
 * @example
 * ```ts
 * import type { DatasetName } from "./images.ts";
 * const name: DatasetName = "mnist";
 * console.log(name);
 * ```
 */
export type DatasetName = typeof DATASET_NAMES[number];

/**
 * One half of a data set.
 *
 * @example
 * ```ts
 * import { loadFixture, type Split, splitOf } from "./images.ts";
 * const split: Split = "test";
 * console.log(splitOf(await loadFixture("mnist"), split).count); // 200
 * ```
 */
export type Split = "train" | "test";

/**
 * Side of the square images (28).
 *
 * @example
 * ```ts
 * import { IMAGE_SIZE } from "./images.ts";
 * console.log(IMAGE_SIZE); // 28
 * ```
 */
export const IMAGE_SIZE = 28;

/**
 * Pixels per image (784), the token width of the MoGE Fashion-MNIST model.
 *
 * @example
 * ```ts
 * import { PIXELS } from "./images.ts";
 * console.log(PIXELS); // 784
 * ```
 */
export const PIXELS = IMAGE_SIZE * IMAGE_SIZE;

/**
 * Number of classes (10).
 *
 * @example
 * ```ts
 * import { NUM_CLASSES } from "./images.ts";
 * console.log(NUM_CLASSES); // 10
 * ```
 */
export const NUM_CLASSES = 10;

/**
 * Class names by label, per data set.
 *
 * @example
 * ```ts
 * import { CLASS_NAMES } from "./images.ts";
 * console.log(CLASS_NAMES["fashion-mnist"][9]); // "Ankle boot"
 * ```
 */
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

/**
 * A labelled image data set held as raw bytes.
 *
 * @example
 * ```ts
 * import { type Dataset, loadFixture } from "./images.ts";
 * const ds: Dataset = await loadFixture("fashion-mnist");
 * console.log(ds.trainImages.length / ds.trainLabels.length); // 784
 * ```
 */
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

/** The cache format of image data sets (see the module docs). */
const KIND = {
  magic: "MOGEDS01",
  format: "moge-dataset",
  version: 1,
  what: "moge data set file",
} as const;

/**
 * Throws a RangeError naming `name` and the allowed names unless it is a
 * {@linkcode DatasetName}.
 *
 * @example
 * ```ts
 * import { checkDatasetName } from "./images.ts";
 * checkDatasetName("mnist"); // passes; "cifar" would throw
 * ```
 */
export function checkDatasetName(name: string): asserts name is DatasetName {
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
 * The path of a data set's binary cache file, `CACHEDIR/NAME-v1.bin`.
 *
 * @example
 * ```ts
 * import { cachePath } from "./images.ts";
 * console.log(cachePath("mnist", "/tmp/c")); // "/tmp/c/mnist-v1.bin"
 * ```
 */
export function cachePath(name: DatasetName, cacheDir: string = defaultCacheDir()): string {
  checkDatasetName(name);
  return cacheFilePath(cacheDir, name, KIND);
}

/** The image header fields after `format` and `version` (see the module docs). */
interface DatasetFields {
  name: DatasetName;
  split: string;
  imageSize: number;
  numClasses: number;
  classNames: string[];
  nTrain: number;
  nTest: number;
}

/**
 * A {@linkcode Dataset} from its four arrays, with the fixed image size and
 * class count, and the class names of `name` unless others are given.
 *
 * @example
 * ```ts
 * import { datasetOf } from "./images.ts";
 * const empty = new Uint8Array(0);
 * const ds = datasetOf("mnist", [empty, empty, empty, empty], "nothing");
 * console.log(ds.classNames.length, ds.imageSize); // 10 28
 * ```
 */
export function datasetOf(
  name: DatasetName,
  [trainImages, trainLabels, testImages, testLabels]: readonly [
    Uint8Array,
    Uint8Array,
    Uint8Array,
    Uint8Array,
  ],
  split: string,
  classNames: readonly string[] = CLASS_NAMES[name],
): Dataset {
  return {
    name,
    trainImages,
    trainLabels,
    testImages,
    testLabels,
    imageSize: IMAGE_SIZE,
    numClasses: NUM_CLASSES,
    classNames,
    split,
  };
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
  checkDatasetName(ds.name);
  const nTrain = ds.trainLabels.length, nTest = ds.testLabels.length;
  if (ds.trainImages.length !== nTrain * PIXELS || ds.testImages.length !== nTest * PIXELS) {
    throw new RangeError(
      `encodeDataset: ${ds.trainImages.length} / ${ds.testImages.length} train / test pixels do` +
        ` not match ${nTrain} / ${nTest} labels x ${PIXELS} pixels`,
    );
  }
  const fields: DatasetFields = {
    name: ds.name,
    split: ds.split,
    imageSize: IMAGE_SIZE,
    numClasses: NUM_CLASSES,
    classNames: [...ds.classNames],
    nTrain,
    nTest,
  };
  const payload = concatBytes([ds.trainImages, ds.trainLabels, ds.testImages, ds.testLabels]);
  return encodeCacheFile(KIND, { ...fields }, payload);
}

/**
 * Parses the binary cache format, checking magic, header, size, checksum and
 * labels; `source` (a path) is named in errors, which are
 * `CacheFileError`s (`cache.ts`). The returned arrays are views into `bytes`.
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
  const { header, payload, bad } = decodeCacheFile<DatasetFields>(bytes, source, KIND, (h, bad) => {
    if (
      !DATASET_NAMES.includes(h.name) || h.imageSize !== IMAGE_SIZE ||
      h.numClasses !== NUM_CLASSES || !Number.isInteger(h.nTrain) ||
      !Number.isInteger(h.nTest) || h.nTrain < 0 || h.nTest < 0 ||
      !Array.isArray(h.classNames) || h.classNames.length !== NUM_CLASSES
    ) {
      throw bad(`unexpected header ${JSON.stringify(h).slice(0, 300)}`);
    }
    return (h.nTrain + h.nTest) * (PIXELS + 1);
  });
  const { nTrain, nTest } = header;
  let at = 0;
  const take = (n: number) => payload.subarray(at, at += n);
  const trainImages = take(nTrain * PIXELS), trainLabels = take(nTrain);
  const testImages = take(nTest * PIXELS), testLabels = take(nTest);
  for (const labels of [trainLabels, testLabels]) {
    const i = labels.findIndex((l) => l >= NUM_CLASSES);
    if (i >= 0) throw bad(`label ${i} is ${labels[i]}, not in 0..9`);
  }
  return datasetOf(
    header.name,
    [trainImages, trainLabels, testImages, testLabels],
    header.split,
    header.classNames,
  );
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
  checkDatasetName(name);
  const url = fixtureUrl(name);
  const bytes = await readFixture(url);
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
