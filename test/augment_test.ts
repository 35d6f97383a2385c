import { tf } from "../src/deps.ts";
import { useBackend } from "../src/backend.ts";
import {
  applyShift,
  cropFlipPlan,
  padImages,
  randomCropFlip,
  shiftIndices,
  smoothedCrossEntropy,
} from "../src/data/augment.ts";
import { Rng } from "../src/rng.ts";
import { assertAllClose, assertClose, deepEqual, equal, ok, throws } from "./asserts.ts";
import { availableBackends } from "./backends.ts";

/** Crop-with-padding and flip of one H x W x C image, in plain TypeScript. */
function naiveShift(
  img: number[],
  H: number,
  W: number,
  C: number,
  dy: number,
  dx: number,
  flip: boolean,
  outH = H,
  outW = W,
): number[] {
  const out: number[] = [];
  for (let i = 0; i < outH; i++) {
    for (let j = 0; j < outW; j++) {
      const y = i + dy, x = (flip ? outW - 1 - j : j) + dx;
      for (let c = 0; c < C; c++) {
        out.push(y >= 0 && y < H && x >= 0 && x < W ? img[(y * W + x) * C + c] : 0);
      }
    }
  }
  return out;
}

Deno.test("shiftIndices() points outside pixels at the zero row", () => {
  const idx = shiftIndices({ height: 2, width: 3, channels: 1 }, {
    dy: new Int32Array([1, 0]),
    dx: new Int32Array([0, -1]),
    flip: new Uint8Array([0, 1]),
  });
  // image 0 moved up one row; image 1 flipped, then read one column to the left.
  deepEqual([...idx], [3, 4, 5, 12, 12, 12, 6 + 1, 6 + 0, 12, 6 + 4, 6 + 3, 12]);
  throws(
    () =>
      shiftIndices({ height: 2, width: 2, channels: 1 }, {
        dy: new Int32Array(2),
        dx: new Int32Array(1),
        flip: new Uint8Array(2),
      }),
    /one entry per image/,
  );
});

for (const backend of await availableBackends()) {
  Deno.test(`randomCropFlip() (${backend}) equals a per-image loop, channels and canvas included`, async () => {
    await useBackend(backend);
    const H = 5, W = 4, C = 2, B = 3, S = 6;
    const imgs = Array.from(
      { length: B },
      (_, b) => Array.from({ length: H * W * C }, (_, k) => 1 + b * 100 + k),
    );
    const x = tf.tensor2d(imgs);
    const shape = { height: H, width: W, channels: C };
    const opts = { padding: 2, flipProb: 0.5, outSize: S };
    const plan = cropFlipPlan(B, shape, { ...opts, rng: new Rng(4) });
    const y = randomCropFlip(x, shape, { ...opts, rng: new Rng(4) });
    equal(y.shape.join(), [B, S * S * C].join());
    const expected = imgs.flatMap((img, b) =>
      naiveShift(img, H, W, C, plan.dy[b], plan.dx[b], plan.flip[b] === 1, S, S)
    );
    deepEqual([...await y.data()], expected);
    tf.dispose([x, y]);
  });

  Deno.test(`padImages() (${backend}) centres 28x28 on 32x32 and keeps every pixel`, async () => {
    await useBackend(backend);
    const x = tf.randomUniform([2, 784], 0.5, 1, "float32", 3) as tf.Tensor2D;
    const y = padImages(x, { height: 28, width: 28, channels: 1 }, 32);
    equal(y.shape.join(), "2,1024");
    const v = await y.data() as Float32Array;
    const src = await x.data() as Float32Array;
    assertClose(v.reduce((s, a) => s + a, 0), src.reduce((s, a) => s + a, 0), { rtol: 1e-5 });
    equal(v[0], 0); // corner
    equal(v[2 * 32 + 2], src[0]); // first pixel lands at (2, 2)
    tf.dispose([x, y]);
  });
}

Deno.test("cropFlipPlan() draws offsets in [-p, p], flips at about the given rate, and is seeded", () => {
  const shape = { height: 28, width: 28, channels: 1 };
  const a = cropFlipPlan(2000, shape, { padding: 4, flipProb: 0.5, rng: new Rng(9) });
  const b = cropFlipPlan(2000, shape, { padding: 4, flipProb: 0.5, rng: new Rng(9) });
  deepEqual([...a.dy], [...b.dy]);
  deepEqual([...a.flip], [...b.flip]);
  ok(a.dy.every((v) => v >= -4 && v <= 4) && a.dx.every((v) => v >= -4 && v <= 4));
  equal(new Set(a.dy).size, 9); // every offset occurs
  const flips = a.flip.reduce((s, f) => s + f, 0) / 2000;
  ok(Math.abs(flips - 0.5) < 0.05, `flip rate ${flips}`);
  const none = cropFlipPlan(10, shape, { padding: 0, flipProb: 0, rng: new Rng(1) });
  ok(none.dy.every((v) => v === 0) && none.flip.every((f) => f === 0));
  throws(() => cropFlipPlan(1, shape, { padding: -1, flipProb: 0, rng: new Rng(1) }), /padding/);
  throws(() => cropFlipPlan(1, shape, { padding: 1, flipProb: 2, rng: new Rng(1) }), /flipProb/);
});

Deno.test("applyShift() refuses a batch of the wrong size", async () => {
  await useBackend("cpu");
  const x = tf.zeros([2, 4]) as tf.Tensor2D;
  const plan = { dy: new Int32Array(1), dx: new Int32Array(1), flip: new Uint8Array(1) };
  throws(() => applyShift(x, { height: 2, width: 2, channels: 1 }, plan), /plan is for 1 images/);
  throws(() => applyShift(x, { height: 3, width: 2, channels: 1 }, plan), /expected 3x2x1/);
  x.dispose();
});

Deno.test("smoothedCrossEntropy() is plain CE at ε = 0 and matches the formula for ε > 0", async () => {
  await useBackend("cpu");
  const rows = [[2, -1, 0.5], [0, 0, 3]];
  const labels = [0, 1];
  const logits = tf.tensor2d(rows);
  const y = tf.tensor1d(labels, "int32");
  const plain = tf.losses.softmaxCrossEntropy(tf.oneHot(y, 3), logits);
  const ce0 = smoothedCrossEntropy(logits, y, 0);
  assertClose((await ce0.data())[0], (await plain.data())[0], { atol: 1e-6 });
  const eps = 0.1;
  const expected = rows.map((r, n) => {
    const m = Math.max(...r);
    const lse = m + Math.log(r.reduce((s, v) => s + Math.exp(v - m), 0));
    return r.reduce((s, v, c) => s - ((c === labels[n] ? 1 - eps : 0) + eps / 3) * (v - lse), 0);
  });
  const ce = smoothedCrossEntropy(logits, y, eps);
  assertAllClose(await ce.data(), [(expected[0] + expected[1]) / 2], { atol: 1e-6 });
  throws(() => smoothedCrossEntropy(logits, y, 1.5), /labelSmoothing = 1.5/);
  tf.dispose([logits, y, plain, ce0, ce]);
});
