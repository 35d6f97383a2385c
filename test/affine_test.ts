/**
 * Tests of the torchvision-style affine transforms (src/affine.ts): exact
 * identities, the 90-degree rotation, integer translations with fill, the
 * seeded parameter draws, Table 1's columns and the error messages.
 */

import fc from "fast-check";
import {
  type AffineParams,
  affineTransform,
  inverseAffineMatrix,
  randomAffine,
  randomAffineParams,
  TABLE1_TRANSFORMS,
} from "../src/analysis/affine.ts";
import { assertAllClose, assertClose, deepEqual, equal, ok, throws } from "./asserts.ts";

const ID: AffineParams = { angle: 0, translate: [0, 0], scale: 1, shear: [0, 0] };

/** A small seeded uniform [0, 1) generator (mulberry32). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Element-wise ===: exact equality of values (-0 === 0). */
function sameValues(actual: ArrayLike<number>, expected: ArrayLike<number>): void {
  equal(actual.length, expected.length, "length");
  for (let i = 0; i < actual.length; i++) {
    ok(actual[i] === expected[i], `[${i}]: expected ${expected[i]}, got ${actual[i]}`);
  }
}

/** An image arbitrary: [width, height, pixels]. */
const imageArb = fc
  .tuple(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 9 }))
  .chain(([w, h]) =>
    fc.tuple(
      fc.constant(w),
      fc.constant(h),
      fc.array(fc.float({ min: -10, max: 10, noNaN: true }), {
        minLength: w * h,
        maxLength: w * h,
      }),
    )
  );

Deno.test("affineTransform: identity parameters give the image back exactly (bilinear and nearest)", () => {
  fc.assert(
    fc.property(imageArb, fc.float({ min: -5, max: 5, noNaN: true }), ([w, h, px], fill) => {
      const img = Float32Array.from(px);
      sameValues(affineTransform(img, w, h, ID, fill), img);
      sameValues(affineTransform(img, w, h, ID, fill, "nearest"), img);
    }),
  );
  // Uint8Array input, float output
  const u8 = Uint8Array.from([0, 17, 255, 3, 4, 5]);
  deepEqual(affineTransform(u8, 3, 2, ID), Float32Array.from(u8));
});

Deno.test("affineTransform: scale 1 and shear 0 are identities (explicitly given, -0 included)", () => {
  const img = Float32Array.from({ length: 35 }, (_, i) => (i * 7) % 11);
  deepEqual(affineTransform(img, 7, 5, { ...ID, scale: 1, shear: [0, 0] }), img);
  deepEqual(affineTransform(img, 7, 5, { ...ID, shear: [-0, -0], angle: -0 }), img);
  deepEqual(inverseAffineMatrix([0, 0], ID), [1, 0, 0, 0, 1, 0]);
});

Deno.test("affineTransform: +90 degrees is a clockwise turn (transpose, then flip columns); -90 is counter-clockwise", () => {
  // torchvision's functional.affine: positive angle = clockwise on screen (y down).
  for (const n of [1, 3, 5, 7]) {
    const img = Float32Array.from({ length: n * n }, (_, i) => i + 1);
    const cw = new Float32Array(n * n), ccw = new Float32Array(n * n);
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < n; c++) {
        cw[r * n + c] = img[(n - 1 - c) * n + r]; // transpose, then reverse each row
        ccw[r * n + c] = img[c * n + (n - 1 - r)]; // transpose, then reverse the row order
      }
    }
    assertAllClose(affineTransform(img, n, n, { ...ID, angle: 90 }), cw, {
      atol: 1e-5,
      msg: `cw n=${n}`,
    });
    assertAllClose(affineTransform(img, n, n, { ...ID, angle: -90 }), ccw, {
      atol: 1e-5,
      msg: `ccw n=${n}`,
    });
    assertAllClose(affineTransform(img, n, n, { ...ID, angle: 90 }, 0, "nearest"), cw, {
      msg: "nearest",
    });
  }
  // A vertical bar above the centre ends up to the right of it.
  const bar = Float32Array.from([0, 1, 0, 0, 1, 0, 0, 0, 0]);
  assertAllClose(affineTransform(bar, 3, 3, { ...ID, angle: 90 }), [0, 0, 0, 0, 1, 1, 0, 0, 0], {
    atol: 1e-6,
  });
});

Deno.test("affineTransform: 180 degrees about the centre reverses the pixels (even and odd sizes)", () => {
  for (const [w, h] of [[4, 4], [5, 3], [6, 1]]) {
    const img = Float32Array.from({ length: w * h }, (_, i) => i * i);
    assertAllClose(affineTransform(img, w, h, { ...ID, angle: 180 }), img.slice().reverse(), {
      atol: 1e-3,
    });
  }
});

Deno.test("affineTransform: an integer translation shifts pixels, the fill entering at the border", () => {
  fc.assert(
    fc.property(
      imageArb,
      fc.integer({ min: -4, max: 4 }),
      fc.integer({ min: -4, max: 4 }),
      fc.float({ min: -3, max: 3, noNaN: true, noDefaultInfinity: true }),
      ([w, h, px], tx, ty, fill) => {
        const img = Float32Array.from(px);
        const out = affineTransform(img, w, h, { ...ID, translate: [tx, ty] }, fill);
        const fill32 = Math.fround(fill);
        for (let y = 0; y < h; y++) {
          for (let x = 0; x < w; x++) {
            const sx = x - tx, sy = y - ty; // positive tx moves content right, ty down
            const inside = sx >= 0 && sx < w && sy >= 0 && sy < h;
            const want = inside ? img[sy * w + sx] : fill32;
            ok(out[y * w + x] === want, `(${x}, ${y}): expected ${want}, got ${out[y * w + x]}`);
          }
        }
      },
    ),
  );
});

Deno.test("affineTransform: bilinear at half-pixel positions averages neighbours; torchvision's fill rule at the border", () => {
  // Scale 2 about the centre of a 1 x 4 row: output x samples input x / 2.
  const img = Float32Array.from([0, 4, 8, 12]);
  const out = affineTransform(img, 4, 1, { ...ID, scale: 2 });
  // input positions: (j - 1.5) / 2 + 1.5 = 0.75, 1.25, 1.75, 2.25
  assertAllClose(out, [3, 5, 7, 9], { atol: 1e-5 });
  // Translation by half a pixel to the right with fill 10: x = 0 samples -0.5,
  // taps -1 (outside, weight .5) and 0 (inside, weight .5): S = 0, m = .5, out = S·m + (1 - m)·10 = 5.
  const t = affineTransform(Float32Array.from([2, 2, 2]), 3, 1, { ...ID, translate: [0.5, 0] }, 10);
  assertAllClose(t, [0.5 * 2 * 0.5 + 0.5 * 10, 2, 2], { atol: 1e-6 });
});

Deno.test("inverseAffineMatrix: matches torchvision's _get_inverse_affine_matrix on a worked case", () => {
  // angle 30, translate (2, -1), scale 1.5, shear (10, 5), center (3, 4): values from the formula
  const rad = Math.PI / 180, rot = 30 * rad, sx = 10 * rad, sy = 5 * rad;
  const a = Math.cos(rot - sy) / Math.cos(sy);
  const b = -Math.cos(rot - sy) * Math.tan(sx) / Math.cos(sy) - Math.sin(rot);
  const c = Math.sin(rot - sy) / Math.cos(sy);
  const d = -Math.sin(rot - sy) * Math.tan(sx) / Math.cos(sy) + Math.cos(rot);
  const m = inverseAffineMatrix([3, 4], {
    angle: 30,
    translate: [2, -1],
    scale: 1.5,
    shear: [10, 5],
  });
  // The 2 x 2 part inverts [[a, b], [c, d]] * 1.5, and the centre + translation maps back to the centre.
  const fwd = [1.5 * a, 1.5 * b, 1.5 * c, 1.5 * d];
  assertAllClose(
    [
      m[0] * fwd[0] + m[1] * fwd[2],
      m[0] * fwd[1] + m[1] * fwd[3],
      m[3] * fwd[0] + m[4] * fwd[2],
      m[3] * fwd[1] + m[4] * fwd[3],
    ],
    [1, 0, 0, 1],
    { atol: 1e-12 },
  );
  assertClose(m[0] * (3 + 2) + m[1] * (4 - 1) + m[2], 3, { atol: 1e-12 });
  assertClose(m[3] * (3 + 2) + m[4] * (4 - 1) + m[5], 4, { atol: 1e-12 });
});

Deno.test("randomAffineParams: deterministic for a seeded rng, and within torchvision's ranges", () => {
  fc.assert(
    fc.property(fc.integer(), fc.constantFrom(...TABLE1_TRANSFORMS), (seed, t) => {
      const p1 = randomAffineParams(t.options, 28, 28, mulberry32(seed));
      const p2 = randomAffineParams(t.options, 28, 28, mulberry32(seed));
      deepEqual(p1, p2);
      const deg = typeof t.options.degrees === "number" ? t.options.degrees : 0;
      ok(Math.abs(p1.angle) <= deg);
      const [a, b] = t.options.translate ?? [0, 0];
      ok(Number.isInteger(p1.translate[0]) && Math.abs(p1.translate[0]) <= Math.round(a * 28));
      ok(Number.isInteger(p1.translate[1]) && Math.abs(p1.translate[1]) <= Math.round(b * 28));
      equal(p1.scale, typeof t.options.scale === "number" ? t.options.scale : 1);
      const phi = typeof t.options.shear === "number" ? t.options.shear : 0;
      ok(Math.abs(p1.shear[0]) <= phi);
      equal(p1.shear[1], 0);
      // and the transform itself is deterministic
      const img = Float32Array.from({ length: 28 * 28 }, (_, i) => (i % 29) / 29);
      deepEqual(
        randomAffine(img, 28, 28, t.options, mulberry32(seed)),
        randomAffine(img, 28, 28, t.options, mulberry32(seed)),
      );
    }),
    { numRuns: 50 },
  );
});

Deno.test("randomAffineParams: draws in torchvision's order with U(lo, hi) = lo + (hi - lo)·u and round-half-even", () => {
  const seq = (...us: number[]) => {
    let k = 0;
    return () => us[k++];
  };
  // W = H = 8, translate (0.25, 0.5): tx ~ U(-2, 2) = -2 + 4u, ty ~ U(-4, 4) = -4 + 8u.
  // angle ~ U(-10, 10), u = 0.75 -> 5; tx: u = 0.375 -> -0.5 -> 0 (Python round, no -0);
  // ty: u = 0.8125 -> 2.5 -> 2; scale fixed 0.8 (one draw); shear x ~ U(-15, 15), u = 0 -> -15
  const p = randomAffineParams(
    { degrees: 10, translate: [0.25, 0.5], scale: 0.8, shear: 15 },
    8,
    8,
    seq(0.75, 0.375, 0.8125, 0.3, 0),
  );
  assertClose(p.angle, 5, { atol: 1e-12 });
  ok(Object.is(p.translate[0], 0), `tx = ${p.translate[0]}`);
  equal(p.translate[1], 2);
  assertClose(p.scale, 0.8, { atol: 1e-15 });
  deepEqual(p.shear, [-15, 0]);
  // 1.5 -> 2 and -2.5 -> -2 (half to even)
  const p2 = randomAffineParams({ translate: [0.25, 0.5] }, 8, 8, seq(0.5, 0.875, 0.1875));
  deepEqual(p2.translate, [2, -2]);
  // degrees 0 still draws the angle (as torchvision); no other option draws
  let calls = 0;
  const q = randomAffineParams({}, 10, 10, () => (calls++, 0.9));
  equal(calls, 1);
  deepEqual(q, { angle: 0, translate: [0, 0], scale: 1, shear: [0, 0] });
  // ranges and 4-element shear
  const r = randomAffineParams(
    { degrees: [10, 20], scale: [0.5, 1.5], shear: [0, 10, -10, 0] },
    8,
    8,
    () => 0.5,
  );
  deepEqual(r, { angle: 15, translate: [0, 0], scale: 1, shear: [5, -5] });
});

Deno.test("TABLE1_TRANSFORMS: the 12 columns of Table 1, MoGE below MoE in each", () => {
  equal(TABLE1_TRANSFORMS.length, 12);
  deepEqual(TABLE1_TRANSFORMS.map((t) => t.name), [
    "rotation 5",
    "rotation 10",
    "rotation 15",
    "scale 0.5",
    "scale 0.8",
    "scale 1.1",
    "translation (0, 0.1)",
    "translation (0.1, 0)",
    "translation (0.1, 0.1)",
    "shear 5",
    "shear 10",
    "shear 15",
  ]);
  for (const t of TABLE1_TRANSFORMS) ok(t.paperMoGE < t.paperMoE, t.name);
  equal(TABLE1_TRANSFORMS[0].paperMoE, 0.0778);
  equal(TABLE1_TRANSFORMS[11].paperMoGE, 0.0576);
  ok(Object.isFrozen(TABLE1_TRANSFORMS));
});

Deno.test("affineTransform / randomAffineParams: bad params throw errors naming the value", () => {
  const img = new Float32Array(9);
  throws(() => affineTransform(img, 3, 3, { ...ID, angle: NaN }), /params\.angle = NaN is invalid/);
  throws(
    () => affineTransform(img, 3, 3, { ...ID, scale: 0 }),
    /params\.scale = 0 is invalid: .* > 0/,
  );
  throws(() => affineTransform(img, 3, 3, { ...ID, scale: -2 }), /params\.scale = -2 is invalid/);
  throws(
    () => affineTransform(img, 3, 3, { ...ID, translate: [1, Infinity] }),
    /translate\[1\] = Infinity/,
  );
  throws(
    () => affineTransform(img, 3, 3, { ...ID, shear: [1] as unknown as [number, number] }),
    /shear = 1 is invalid: .* pair/,
  );
  throws(
    () => affineTransform(new Float32Array(8), 3, 3, ID),
    /image\.length = 8 is invalid: .*width \* height \(3 \* 3 = 9\)/,
  );
  throws(() => affineTransform(img, 0, 9, ID), /width = 0 is invalid/);
  throws(() => affineTransform([0, NaN, 0, 0], 2, 2, ID), /image contains NaN at flat index 1/);
  throws(() => affineTransform(img, 3, 3, ID, NaN), /fill = NaN is invalid/);
  throws(
    () => affineTransform(img, 3, 3, ID, 0, "bicubic" as "bilinear"),
    /interpolation = bicubic is invalid: it must be "bilinear" or "nearest"/,
  );
  throws(
    () => randomAffineParams({ degrees: -5 }, 8, 8, Math.random),
    /options\.degrees = -5 is invalid: .* >= 0/,
  );
  throws(
    () => randomAffineParams({ scale: 0 }, 8, 8, Math.random),
    /options\.scale = 0 is invalid/,
  );
  throws(
    () => randomAffineParams({ translate: [0.1, 2] }, 8, 8, Math.random),
    /translate\[1\] = 2 is invalid: .*<= 1/,
  );
  throws(
    () => randomAffineParams({ scale: [1.2, 0.8] }, 8, 8, Math.random),
    /options\.scale\[1\] = 0\.8 is invalid: .*>= 1\.2/,
  );
  throws(
    () => randomAffineParams({}, 8, 8, () => 1),
    /rng\(\) returned 1: it must return a number in \[0, 1\)/,
  );
  throws(() => randomAffineParams({}, 8, 8, () => NaN), /rng\(\) returned NaN/);
});
