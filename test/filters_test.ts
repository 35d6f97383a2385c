import fc from "fast-check";
import { assertAllClose, assertClose, deepEqual, equal, ok, throws } from "./asserts.ts";
import { refAverage, refGaussian } from "./reference.ts";
import { averageFilter, type Filter, gaussianFilter, makeFilter } from "../src/moge/filters.ts";

const sizes = fc.integer({ min: 1, max: 9 });
/** σ spread log-uniformly over [1e-3, 1e3]. */
const sigmas = fc.double({ min: -3, max: 3, noNaN: true }).map((x) => 10 ** x);

function sum(H: Filter): number {
  return H.flat().reduce((a, b) => a + b, 0);
}
function transpose(H: Filter): Filter {
  return H.map((_, i) => H.map((row) => row[i]));
}
function flipRows(H: Filter): Filter {
  return H.slice().reverse();
}
function flipCols(H: Filter): Filter {
  return H.map((row) => row.slice().reverse());
}
function assertFilterClose(actual: Filter, expected: Filter, atol: number, msg = ""): void {
  equal(actual.length, expected.length, `${msg}: rows`);
  for (let a = 0; a < actual.length; a++) {
    assertAllClose(actual[a], expected[a], { atol, rtol: 0, msg: `${msg} row ${a}` });
  }
}

Deno.test("gaussianFilter(3, 1) equals MATLAB's fspecial('gaussian', 3, 1)", () => {
  // fspecial('gaussian', 3, 1): corners 0.0751136, edges 0.1238414, centre 0.2041800.
  const c = 0.0751136, e = 0.1238414, m = 0.20418;
  assertFilterClose(gaussianFilter(3, 1), [[c, e, c], [e, m, e], [c, e, c]], 1e-7, "3x3, σ=1");
});

Deno.test("gaussianFilter(2, 1.5) is centred at tap 1 by default, as the authors' code: [[.198, .247], [.247, .308]]", () => {
  // Offsets [-1, 0]: weights exp(-(a²+b²)/(2·1.5²)) = exp(-2/4.5) = 0.641180 at (-1, -1),
  // exp(-1/4.5) = 0.800737 at (-1, 0) and (0, -1), 1 at (0, 0); total 3.242654.
  const total = Math.exp(-2 / 4.5) + 2 * Math.exp(-1 / 4.5) + 1;
  const expected = [
    [Math.exp(-2 / 4.5) / total, Math.exp(-1 / 4.5) / total],
    [Math.exp(-1 / 4.5) / total, 1 / total],
  ];
  assertFilterClose(gaussianFilter(2, 1.5), expected, 1e-15, "h=2, σ=1.5");
  assertFilterClose(gaussianFilter(2, 1.5), [[0.198, 0.247], [0.247, 0.308]], 1e-3, "rounded");
  assertFilterClose(makeFilter("gaussian", 2, 1.5), expected, 1e-15, "makeFilter");
  // So the h = 2 filter depends on σ (the σ schedule acts at h = 2): σ = 0.5 puts more on tap 1.
  ok(gaussianFilter(2, 0.5)[1][1] > gaussianFilter(2, 1.5)[1][1] + 0.2);
});

Deno.test('gaussianFilter(2, σ, "symmetric") is [[1/4, 1/4], [1/4, 1/4]] for every σ (all offsets ±1/2)', () => {
  for (const sigma of [1e-6, 0.5, 1, 10, 1e6]) {
    assertFilterClose(
      gaussianFilter(2, sigma, "symmetric"),
      [[0.25, 0.25], [0.25, 0.25]],
      1e-15,
      `σ=${sigma}`,
    );
  }
});

Deno.test("odd h: the floor and symmetric centres give the same filter", () => {
  fc.assert(
    fc.property(sizes.map((h) => 2 * Math.ceil(h / 2) - 1), sigmas, (h, sigma) => {
      deepEqual(gaussianFilter(h, sigma, "floor"), gaussianFilter(h, sigma, "symmetric"));
    }),
    { numRuns: 100 },
  );
});

Deno.test('gaussianFilter(4, 0.5, "floor") has offsets [-2, -1, 0, 1] (hand-computed)', () => {
  // Weight exp(-(a²+b²)/0.5) = exp(-2(a²+b²)); the peak is at tap (2, 2) (offset 0, 0).
  const H = gaussianFilter(4, 0.5);
  const w = (a: number, b: number) => Math.exp(-2 * (a * a + b * b));
  let total = 0;
  for (const a of [-2, -1, 0, 1]) for (const b of [-2, -1, 0, 1]) total += w(a, b);
  assertClose(H[2][2], 1 / total, { atol: 1e-15 });
  assertClose(H[0][0], w(-2, -2) / total, { atol: 1e-15 });
  assertClose(H[3][1], w(1, -1) / total, { atol: 1e-15 });
  assertClose(H[1][2], H[3][2], { atol: 1e-15 }); // offsets -1 and +1
});

Deno.test('gaussianFilter(4, 0.5, "symmetric") has the half-integer offsets of fspecial (hand-computed)', () => {
  // offsets ±0.5, ±1.5: weights exp(-(a²+b²)/0.5) = exp(-1), exp(-5), exp(-9) by ring.
  const inner = Math.exp(-1), mid = Math.exp(-5), outer = Math.exp(-9);
  const total = 4 * inner + 8 * mid + 4 * outer;
  const H = gaussianFilter(4, 0.5, "symmetric");
  assertClose(H[1][1], inner / total, { atol: 1e-15 });
  assertClose(H[0][1], mid / total, { atol: 1e-15 });
  assertClose(H[0][0], outer / total, { atol: 1e-15 });
  assertClose(H[1][1], 0.241088, { atol: 1e-6 }); // 1 / (4 + 8 e^-4 + 4 e^-8)
});

Deno.test("averageFilter(h) is 1/h² everywhere", () => {
  deepEqual(averageFilter(2), [[0.25, 0.25], [0.25, 0.25]]);
  deepEqual(averageFilter(1), [[1]]);
  for (let h = 1; h <= 7; h++) assertFilterClose(averageFilter(h), refAverage(h), 0, `h=${h}`);
});

const centres = fc.constantFrom("floor" as const, "symmetric" as const);
/** The offset of tap i of an h-tap filter with the given centre. */
const offset = (h: number, centre: "floor" | "symmetric", i: number) =>
  i - (centre === "floor" ? Math.floor(h / 2) : (h - 1) / 2);

Deno.test("gaussianFilter(h, σ, centre) equals exp(−(a²+b²)/(2σ²)) / Σ with that centre's offsets", () => {
  fc.assert(
    fc.property(sizes, fc.double({ min: 0.05, max: 100, noNaN: true }), centres, (h, sigma, c) => {
      assertFilterClose(
        gaussianFilter(h, sigma, c),
        refGaussian(h, sigma, c),
        1e-14,
        `h=${h} σ=${sigma} ${c}`,
      );
    }),
    { numRuns: 200 },
  );
});

Deno.test("the Gaussian filter sums to 1, is positive-or-zero and finite for every σ > 0", () => {
  fc.assert(
    fc.property(sizes, fc.oneof(sigmas, fc.double({ min: 5e-324, max: 1e308, noNaN: true })), (
      h,
      sigma,
    ) => {
      const H = gaussianFilter(h, sigma);
      ok(H.flat().every((v) => Number.isFinite(v) && v >= 0), `h=${h} σ=${sigma}: ${H}`);
      assertClose(sum(H), 1, { atol: 1e-12, rtol: 0, msg: `h=${h} σ=${sigma}` });
    }),
    { numRuns: 300 },
  );
});

Deno.test("the Gaussian filter is invariant under transpose, and under row/column flips unless h is even and centred at ⌊h/2⌋", () => {
  fc.assert(
    fc.property(sizes, sigmas, centres, (h, sigma, c) => {
      const H = gaussianFilter(h, sigma, c);
      assertFilterClose(transpose(H), H, 1e-16, "transpose");
      if (c === "symmetric" || h % 2 === 1) {
        assertFilterClose(flipRows(H), H, 1e-16, "row flip");
        assertFilterClose(flipCols(H), H, 1e-16, "column flip");
      }
    }),
    { numRuns: 200 },
  );
});

Deno.test("the Gaussian filter peaks at the centre and decreases with distance from it", () => {
  fc.assert(
    fc.property(sizes, sigmas, centres, (h, sigma, c) => {
      const H = gaussianFilter(h, sigma, c);
      const d2 = (i: number) => offset(h, c, i) ** 2;
      for (let a = 0; a < h; a++) {
        for (let b = 0; b < h; b++) {
          for (let a2 = 0; a2 < h; a2++) {
            for (let b2 = 0; b2 < h; b2++) {
              if (d2(a) + d2(b) < d2(a2) + d2(b2)) {
                ok(H[a][b] >= H[a2][b2], `h=${h} σ=${sigma}: H[${a}][${b}] < H[${a2}][${b2}]`);
              }
            }
          }
        }
      }
    }),
    { numRuns: 100 },
  );
});

Deno.test("the Gaussian filter tends to the average filter as σ → ∞ (σ >= 1e4)", () => {
  fc.assert(
    fc.property(
      sizes,
      fc.double({ min: 4, max: 300, noNaN: true }).map((x) => 10 ** x),
      centres,
      (h, sigma, c) => {
        // 1 - exp(-d²/(2σ²)) <= d²/(2σ²) <= (2h²)/(2e8) for σ >= 1e4 (|offset| <= h).
        assertFilterClose(gaussianFilter(h, sigma, c), averageFilter(h), 1e-7, `h=${h} σ=${sigma}`);
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("the Gaussian filter tends to a centred delta as σ → 0 (for even h: 1 at tap ⌊h/2⌋, or four 1/4 when symmetric)", () => {
  fc.assert(
    fc.property(
      sizes,
      fc.double({ min: -320, max: -1.5, noNaN: true }).map((x) => Math.max(10 ** x, 5e-324)),
      centres,
      (h, sigma, c) => {
        const centre = (i: number) => Math.abs(offset(h, c, i)) < 1;
        const share = c === "symmetric" && h % 2 === 0 ? 0.25 : 1;
        const expected = Array.from(
          { length: h },
          (_, a) =>
            Array.from(
              { length: h },
              (_, b) => (centre(a) && centre(b) ? share : 0),
            ),
        );
        // Off-centre weights are at most exp(-1/(2σ²)) <= exp(-500) relative to the centre.
        assertFilterClose(gaussianFilter(h, sigma, c), expected, 1e-12, `h=${h} σ=${sigma} ${c}`);
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("makeFilter() builds the named filter", () => {
  deepEqual(makeFilter("average", 3), averageFilter(3));
  deepEqual(makeFilter("gaussian", 3, 1.5), gaussianFilter(3, 1.5));
  deepEqual(makeFilter("gaussian", 2, 1.5, "symmetric"), gaussianFilter(2, 1.5, "symmetric"));
  deepEqual(makeFilter("average", 2, undefined, "symmetric"), averageFilter(2));
});

Deno.test("makeFilter() and the filters refuse bad sizes, σ and kinds with clear messages", () => {
  throws(
    () => makeFilter("gaussian", 3),
    /^RangeError: sigma is required for the gaussian filter \(a finite number > 0\)$/,
  );
  throws(
    () => makeFilter("box" as "average", 3),
    /^RangeError: filter = "box" is invalid: allowed are gaussian, average$/,
  );
  throws(
    () => gaussianFilter(3, 0),
    /^RangeError: sigma = 0 is invalid: sigma must be a finite number > 0$/,
  );
  throws(() => gaussianFilter(3, -1), /sigma = -1 is invalid/);
  throws(() => gaussianFilter(3, Number.NaN), /sigma = NaN is invalid/);
  throws(() => gaussianFilter(3, Infinity), /sigma = Infinity is invalid/);
  throws(() => makeFilter("gaussian", 3, 0), /sigma = 0 is invalid/);
  throws(
    () => gaussianFilter(2, 1, "middle" as "floor"),
    /^RangeError: centre = "middle" is invalid: allowed are floor, symmetric$/,
  );
  throws(
    () => gaussianFilter(0, 1),
    /^RangeError: h \(filter size\) = 0 is invalid: .* integer >= 1$/,
  );
  throws(() => averageFilter(2.5), /h \(filter size\) = 2.5 is invalid/);
  throws(() => makeFilter("average", -1), /h \(filter size\) = -1 is invalid/);
});
