import {
  cachePath,
  classCounts,
  type Dataset,
  DATASET_NAMES,
  decodeDataset,
  encodeDataset,
  loadFixture,
  PIXELS,
  splitOf,
  subsetPerClass,
} from "../src/data/images.ts";
import { FASHION_MNIST_SPLIT, loadDataset } from "../src/data/image_sources.ts";
import { batches, makeBatch } from "../src/data/image_batches.ts";
import { Rng } from "../src/rng.ts";
import { tf } from "../src/deps.ts";
import { useBackend } from "../src/backend.ts";
import { deepEqual, equal, ok, rejects, throws } from "./asserts.ts";

await useBackend("cpu");

function checkShapes(ds: Dataset, nTrain: number, nTest: number): void {
  equal(ds.trainLabels.length, nTrain);
  equal(ds.testLabels.length, nTest);
  equal(ds.trainImages.length, nTrain * PIXELS);
  equal(ds.testImages.length, nTest * PIXELS);
  equal(ds.imageSize, 28);
  equal(ds.numClasses, 10);
  equal(ds.classNames.length, 10);
  ok(ds.split.length > 20);
}

for (const name of DATASET_NAMES) {
  Deno.test(`data: fixture ${name} has 100 + 20 images per class, pixels 0..255`, async () => {
    const ds = await loadFixture(name);
    equal(ds.name, name);
    checkShapes(ds, 1000, 200);
    deepEqual(classCounts(ds.trainLabels), new Array(10).fill(100));
    deepEqual(classCounts(ds.testLabels), new Array(10).fill(20));
    for (const images of [ds.trainImages, ds.testImages]) {
      let min = 255, max = 0, sum = 0;
      for (const v of images) {
        min = Math.min(min, v);
        max = Math.max(max, v);
        sum += v;
      }
      equal(min, 0);
      equal(max, 255);
      const mean = sum / images.length / 255;
      ok(mean > 0.1 && mean < 0.4, `mean pixel ${mean} looks like ${name}`);
    }
    ok(ds.split.startsWith("the first 100 training and 20 test images of each class"));
  });
}

Deno.test("data: storage order (Fashion-MNIST by class, MNIST in file order)", async () => {
  const fm = await loadFixture("fashion-mnist");
  for (let i = 1; i < fm.trainLabels.length; i++) ok(fm.trainLabels[i] >= fm.trainLabels[i - 1]);
  equal(fm.classNames[9], "Ankle boot");
  const mn = await loadFixture("mnist");
  // the official MNIST files start with these labels
  deepEqual([...mn.trainLabels.subarray(0, 5)], [5, 0, 4, 1, 9]);
  deepEqual([...mn.testLabels.subarray(0, 5)], [7, 2, 1, 0, 4]);
});

Deno.test("data: the binary format round-trips and rejects damage", async () => {
  const ds = await loadFixture("mnist");
  const bytes = encodeDataset(ds);
  const back = decodeDataset(bytes, "mem");
  deepEqual(back.trainImages, ds.trainImages);
  deepEqual(back.testLabels, ds.testLabels);
  equal(back.split, ds.split);
  deepEqual(encodeDataset(back), bytes);
  const flipped = bytes.slice();
  flipped[bytes.length - 5000] ^= 1;
  const badLabel = subsetPerClass(ds, 1, 1);
  badLabel.trainLabels = badLabel.trainLabels.slice();
  badLabel.trainLabels[3] = 10;
  const cases: [Uint8Array, RegExp][] = [
    [bytes.subarray(0, 5), /only 5 bytes/],
    [bytes.subarray(0, bytes.length - 1), /truncated: the header promises/],
    [new Uint8Array([0, ...bytes.subarray(1)]), /not "MOGEDS01"/],
    [flipped, /checksum mismatch/],
    [encodeDataset(badLabel), /label 3 is 10, not in 0..9/],
  ];
  for (const [b, pattern] of cases) throws(() => decodeDataset(b, "x.bin"), pattern);
  throws(() => decodeDataset(bytes.subarray(0, 5), "x.bin"), /x.bin is not a moge data set file/);
});

Deno.test("data: batches cover a split once, shuffled by the seed", async () => {
  const ds = await loadFixture("fashion-mnist");
  const epoch = batches(ds, "train", 300, new Rng(1));
  deepEqual(epoch.map((b) => b.length), [300, 300, 300, 100]);
  const all = epoch.flatMap((b) => [...b]).sort((a, b) => a - b);
  deepEqual(all, Array.from({ length: 1000 }, (_, i) => i));
  deepEqual(batches(ds, "train", 300, new Rng(1)), epoch, "same seed, same order");
  const rng = new Rng(1);
  const e1 = batches(ds, "train", 300, rng), e2 = batches(ds, "train", 300, rng);
  ok(e1[0].join() !== e2[0].join(), "a shared generator gives a new order each epoch");
  // shuffled: the first batch mixes classes
  ok(new Set([...epoch[0]].map((i) => ds.trainLabels[i])).size === 10);
  const evalOrder = batches(ds, "test", 64);
  deepEqual([...evalOrder[0]], Array.from({ length: 64 }, (_, i) => i));
  deepEqual(evalOrder.map((b) => b.length), [64, 64, 64, 8]);
  deepEqual(batches(ds, "test", 64, undefined, { dropRemainder: true }).length, 3);
  throws(() => batches(ds, "train", 0), /batchSize = 0 is invalid/);
  throws(
    () => batches(ds, "val" as "train", 10),
    /split = "val" is invalid: allowed are "train", "test"/,
  );
});

Deno.test("data: makeBatch gives [B,784] float32 in [0,1] and int32 labels", async () => {
  const ds = await loadFixture("mnist");
  const { images, labels } = splitOf(ds, "train");
  const idx = [7, 0, 999];
  const before = tf.memory().numTensors;
  const { x, y } = makeBatch(images, labels, new Int32Array(idx));
  deepEqual(x.shape, [3, 784]);
  equal(x.dtype, "float32");
  deepEqual(y.shape, [3]);
  equal(y.dtype, "int32");
  const xv = await x.data();
  for (let k = 0; k < 3; k++) {
    for (let p = 0; p < PIXELS; p++) {
      const v = xv[k * PIXELS + p];
      ok(v >= 0 && v <= 1);
      equal(v, Math.fround(images[idx[k] * PIXELS + p] / 255));
    }
  }
  deepEqual([...await y.data()], idx.map((i) => labels[i]));
  tf.dispose([x, y]);
  equal(tf.memory().numTensors, before);
  throws(() => makeBatch(images, labels, [1000]), /indices\[0\] = 1000 is invalid: .*\[0, 999\]/);
  throws(() => makeBatch(images, labels, [1.5]), /indices\[0\] = 1.5 is invalid/);
  throws(() => makeBatch(images.subarray(1), labels, [0]), /images has 783999 bytes/);
  const empty = makeBatch(images, labels, []);
  deepEqual(empty.x.shape, [0, 784]);
  tf.dispose([empty.x, empty.y]);
});

Deno.test("data: bad names are refused with the allowed ones", async () => {
  await rejects(
    loadDataset("cifar" as "mnist"),
    /dataset name = "cifar" is invalid: allowed are "fashion-mnist", "mnist"/,
  );
  await rejects(loadFixture("emnist" as "mnist"), /dataset name = "emnist" is invalid/);
  const mnist = await loadFixture("mnist");
  throws(() => subsetPerClass(mnist, 101, 1), /only 100 images of class 0/);
});

Deno.test({
  name:
    "data: full data sets load with the right split, then from the cache (slow, first run downloads)",
  fn: async () => {
    const cacheDir = await Deno.makeTempDir();
    try {
      for (const name of DATASET_NAMES) {
        const messages: string[] = [];
        const onProgress = (m: string) => messages.push(m);
        const t0 = performance.now();
        const ds = await loadDataset(name, { cacheDir, onProgress });
        const buildMs = performance.now() - t0;
        checkShapes(ds, 60000, 10000);
        deepEqual(
          classCounts(ds.trainLabels),
          name === "fashion-mnist"
            ? new Array(10).fill(6000)
            : [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
        );
        deepEqual(
          classCounts(ds.testLabels),
          name === "fashion-mnist"
            ? new Array(10).fill(1000)
            : [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
        );
        if (name === "fashion-mnist") equal(ds.split, FASHION_MNIST_SPLIT);
        ok(messages.some((m) => m.includes("building")), messages.join("\n"));
        const size = (await Deno.stat(cachePath(name, cacheDir))).size;
        equal(size, encodeDataset(ds).length);

        messages.length = 0;
        const t1 = performance.now();
        const cached = await loadDataset(name, { cacheDir, onProgress });
        const cacheMs = performance.now() - t1;
        ok(messages.length === 1 && messages[0].includes("loaded from cache"), messages.join("\n"));
        // (Its speed is reported below, not asserted: timing belongs in benchmarks.)
        deepEqual(cached.trainLabels, ds.trainLabels);
        deepEqual(cached.testImages, ds.testImages);
        console.log(
          `${name}: first load ${buildMs.toFixed(0)} ms, cached ${cacheMs.toFixed(0)} ms`,
        );

        // the committed fixture is exactly the first 100 / 20 per class of this split
        deepEqual(
          encodeDataset(subsetPerClass(cached, 100, 20)),
          encodeDataset(await loadFixture(name)),
        );

        // a damaged cache is detected and rebuilt
        const path = cachePath(name, cacheDir);
        await Deno.truncate(path, size - 100);
        messages.length = 0;
        const rebuilt = await loadDataset(name, { cacheDir, onProgress });
        ok(
          messages.some((m) => m.includes("unusable") && m.includes("truncated")),
          messages.join("\n"),
        );
        deepEqual(rebuilt.trainLabels, ds.trainLabels);
        equal((await Deno.stat(path)).size, size);
      }
    } finally {
      await Deno.remove(cacheDir, { recursive: true });
    }
  },
});
