/**
 * Tests of the image Euclidean distance (src/imed.ts): the separable form
 * against the explicit quadratic form, the metric's laws, translation
 * invariance, and the error messages.
 */

import fc from "fast-check";
import { imed, imedBatch, imedMatrix } from "../src/analysis/imed.ts";
import { assertClose, equal, ok, throws } from "./asserts.ts";

/** (a − b)ᵀ G (a − b) with the explicit E × E matrix. */
function explicitImed(a: number[], b: number[], rows: number, cols: number, sigma: number) {
  const E = rows * cols;
  const G = imedMatrix(rows, cols, sigma);
  let s = 0;
  for (let i = 0; i < E; i++) {
    for (let j = 0; j < E; j++) s += (a[i] - b[i]) * G[i * E + j] * (a[j] - b[j]);
  }
  return s;
}

const value = fc.double({ min: -1, max: 1, noNaN: true, noDefaultInfinity: true });
const sigmaArb = fc.double({ min: 0.3, max: 2, noNaN: true });

/** A shape and two maps of that shape. */
const pairArb = fc
  .tuple(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 6 }))
  .chain(([rows, cols]) =>
    fc.record({
      rows: fc.constant(rows),
      cols: fc.constant(cols),
      a: fc.array(value, { minLength: rows * cols, maxLength: rows * cols }),
      b: fc.array(value, { minLength: rows * cols, maxLength: rows * cols }),
      sigma: sigmaArb,
    })
  );

Deno.test("imed: a closed-form value: one unit of mass moved to the next cell", () => {
  // d² = g_00 + g_11 - 2 g_01 = (2 - 2 exp(-1/(2σ²))) / (2πσ²)
  for (const sigma of [0.5, 1, 2]) {
    const expected = (2 - 2 * Math.exp(-1 / (2 * sigma * sigma))) / (2 * Math.PI * sigma * sigma);
    assertClose(imed([1, 0, 0, 0], [0, 1, 0, 0], 2, 2, sigma), expected, { atol: 1e-15 });
  }
  // σ defaults to 1
  equal(imed([1, 0, 0, 0], [0, 0, 1, 0], 2, 2), imed([1, 0, 0, 0], [0, 0, 1, 0], 2, 2, 1));
});

Deno.test("imed: separable d² equals the explicit (a-b)ᵀG(a-b) on small maps", () => {
  fc.assert(
    fc.property(pairArb, ({ a, b, rows, cols, sigma }) => {
      assertClose(imed(a, b, rows, cols, sigma), explicitImed(a, b, rows, cols, sigma), {
        atol: 1e-12,
        rtol: 1e-9,
      });
    }),
    { numRuns: 200 },
  );
});

Deno.test("imed: d²(a, a) = 0", () => {
  fc.assert(
    fc.property(pairArb, ({ a, rows, cols, sigma }) => {
      equal(imed(a, a, rows, cols, sigma), 0);
    }),
  );
});

Deno.test("imed: symmetric, d²(a, b) = d²(b, a)", () => {
  fc.assert(
    fc.property(pairArb, ({ a, b, rows, cols, sigma }) => {
      assertClose(imed(a, b, rows, cols, sigma), imed(b, a, rows, cols, sigma), {
        atol: 1e-15,
        rtol: 1e-12,
      });
    }),
  );
});

Deno.test("imed: non-negative, and d² > 0 for a ≠ b (G positive definite)", () => {
  fc.assert(
    fc.property(pairArb, ({ a, b, rows, cols, sigma }) => {
      const d2 = imed(a, b, rows, cols, sigma);
      ok(d2 >= 0, `d² = ${d2} < 0`);
      const maxDiff = Math.max(...a.map((x, i) => Math.abs(x - b[i])));
      if (maxDiff > 1e-3) ok(d2 > 0, `d² = ${d2} for a ≠ b (max |a - b| = ${maxDiff})`);
    }),
    { numRuns: 200 },
  );
  // G itself is symmetric with a positive diagonal 1 / (2πσ²)
  const G = imedMatrix(3, 4, 0.8);
  for (let i = 0; i < 12; i++) {
    assertClose(G[i * 12 + i], 1 / (2 * Math.PI * 0.64), { atol: 1e-15 });
    for (let j = 0; j < 12; j++) equal(G[i * 12 + j], G[j * 12 + i]);
  }
});

Deno.test("imed: shifting both maps by the same integer offset (zero padding, support inside) leaves d² unchanged", () => {
  // Maps with support on a k x l block, placed at two offsets on a larger lattice.
  const arb = fc.record({
    k: fc.integer({ min: 1, max: 3 }),
    l: fc.integer({ min: 1, max: 3 }),
    dr: fc.integer({ min: 0, max: 4 }),
    dc: fc.integer({ min: 0, max: 5 }),
    seedVals: fc.array(value, { minLength: 18, maxLength: 18 }),
    sigma: sigmaArb,
  });
  fc.assert(
    fc.property(arb, ({ k, l, dr, dc, seedVals, sigma }) => {
      const rows = 8, cols = 9;
      const place = (vals: number[], r0: number, c0: number) => {
        const m = new Array(rows * cols).fill(0);
        for (let i = 0; i < k; i++) {
          for (let j = 0; j < l; j++) m[(r0 + i) * cols + c0 + j] = vals[i * l + j];
        }
        return m;
      };
      const va = seedVals.slice(0, 9), vb = seedVals.slice(9);
      // Original at (1, 1); shifted by (dr, dc), still at least one cell off the border.
      const before = imed(place(va, 1, 1), place(vb, 1, 1), rows, cols, sigma);
      const after = imed(place(va, 1 + dr, 1 + dc), place(vb, 1 + dr, 1 + dc), rows, cols, sigma);
      assertClose(after, before, { atol: 1e-14, rtol: 1e-10 });
    }),
  );
});

Deno.test("imedBatch: entry n equals imed of pair n", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 4 }),
      fc.integer({ min: 1, max: 4 }),
      fc.integer({ min: 0, max: 5 }),
      sigmaArb,
      fc.array(value, { minLength: 2 * 16 * 5, maxLength: 2 * 16 * 5 }),
      (rows, cols, n, sigma, vals) => {
        const E = rows * cols;
        const a = vals.slice(0, n * E), b = vals.slice(n * E, 2 * n * E);
        const batch = imedBatch(a, b, rows, cols, sigma);
        equal(batch.length, n);
        for (let p = 0; p < n; p++) {
          const single = imed(
            a.slice(p * E, (p + 1) * E),
            b.slice(p * E, (p + 1) * E),
            rows,
            cols,
            sigma,
          );
          assertClose(batch[p], single, { atol: 1e-15, rtol: 1e-12 });
        }
      },
    ),
  );
});

Deno.test("imed: bad input throws an error naming the value and what is allowed", () => {
  throws(() => imed([1, 2, 3], [1, 2, 3, 4], 2, 2), /a\.length = 3 .*rows \* cols \(2 \* 2\) = 4/);
  throws(() => imed([1, 2, 3, 4], [1, 2], 2, 2), /b\.length = 2/);
  throws(() => imed([1, NaN, 0, 0], [0, 0, 0, 0], 2, 2), /imed: a contains NaN at flat index 1/);
  throws(
    () => imed([0, 0, 0, 0], [0, 0, Infinity, 0], 2, 2),
    /b contains Infinity at flat index 2/,
  );
  throws(() => imed([0, 0, 0, 0], [0, 0, 0, 0], 2, 2, 0), /sigma = 0 is invalid: .* > 0/);
  throws(() => imed([0, 0, 0, 0], [0, 0, 0, 0], 2, 2, -1), /sigma = -1 is invalid/);
  throws(() => imed([0, 0, 0, 0], [0, 0, 0, 0], 2, 2, NaN), /sigma = NaN is invalid/);
  throws(() => imed([0, 0], [0, 0], 2.5, 1), /rows = 2\.5 is invalid: .*integer >= 1/);
  throws(() => imed([], [], 0, 1), /rows = 0 is invalid/);
  throws(() => imedBatch([0, 0, 0], [0, 0, 0], 2, 2), /a\.length = 3 .*multiple of rows \* cols/);
  throws(() => imedBatch([0, 0, 0, 0], [0, 0, 0], 2, 2), /b\.length = 3 .*a\.length = 4/);
  throws(() => imedMatrix(2, 0), /cols = 0 is invalid/);
});
