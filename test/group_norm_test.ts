import fc from "fast-check";
import { assertClose, deepEqual, equal, ok, throws } from "./asserts.ts";
import { groupNorm, slidingWindows } from "../src/moge/group_norm.ts";

const values = (n: number) =>
  fc.array(fc.double({ min: -100, max: 100, noNaN: true }), { minLength: n, maxLength: n });
/** A vector with random, possibly overlapping groups over its indices. */
const grouped = fc.integer({ min: 1, max: 12 }).chain((n) =>
  fc.record({
    z: values(n),
    groups: fc.array(fc.uniqueArray(fc.integer({ min: 0, max: n - 1 }), { minLength: 1 }), {
      maxLength: 6,
    }),
  })
);
const ps = fc.oneof(fc.constantFrom(1, 2), fc.double({ min: 1, max: 6, noNaN: true }));
const qs = fc.oneof(fc.constant(1), fc.double({ min: 0.1, max: 1, noNaN: true }));
/** A map r x c with a window size h <= min(r, c). */
const maps = fc.record({
  rows: fc.integer({ min: 1, max: 9 }),
  cols: fc.integer({ min: 1, max: 9 }),
})
  .chain(({ rows, cols }) =>
    fc.record({
      rows: fc.constant(rows),
      cols: fc.constant(cols),
      h: fc.integer({ min: 1, max: Math.min(rows, cols) }),
    })
  );

Deno.test("groupNorm() gives hand-computed ℓ2,1, ℓ1,1 and ℓ2,1/2 values", () => {
  const z = [3, 4, 0, 1];
  const groups = [[0, 1], [2, 3]];
  equal(groupNorm(z, groups), 6); // ‖(3,4)‖₂ + ‖(0,1)‖₂ = 5 + 1
  equal(groupNorm(z, groups, 1, 1), 8); // 7 + 1
  assertClose(groupNorm(z, groups, 2, 0.5), (Math.sqrt(5) + 1) ** 2, { atol: 1e-12 }); // 10.472
  assertClose(groupNorm(z, [[0, 1], [1, 2]], 2, 1), 9, { atol: 1e-12 }); // overlapping: 5 + 4
  equal(groupNorm([-3, 4], [[0, 1]]), 5);
  equal(groupNorm(z, []), 0);
});

Deno.test("slidingWindows() lists the row-major h x h windows", () => {
  deepEqual(slidingWindows(2, 3, 2), [[0, 1, 3, 4], [1, 2, 4, 5]]);
  deepEqual(slidingWindows(3, 3, 3), [[0, 1, 2, 3, 4, 5, 6, 7, 8]]);
  deepEqual(slidingWindows(2, 2, 1), [[0], [1], [2], [3]]);
  equal(slidingWindows(4, 4, 3).length, 4);
  equal(slidingWindows(4, 8, 3).length, 12);
});

Deno.test("slidingWindows(r, c, h) has (r−h+1)(c−h+1) windows, each an h x h block of the map", () => {
  fc.assert(
    fc.property(maps, ({ rows, cols, h }) => {
      const windows = slidingWindows(rows, cols, h);
      equal(windows.length, (rows - h + 1) * (cols - h + 1));
      const origins = new Set<string>();
      for (const w of windows) {
        equal(w.length, h * h);
        const u = Math.floor(w[0] / cols), v = w[0] % cols;
        ok(u + h <= rows && v + h <= cols, `window at (${u}, ${v}) leaves the map`);
        origins.add(`${u},${v}`);
        const block = [];
        for (let a = 0; a < h; a++) for (let b = 0; b < h; b++) block.push((u + a) * cols + v + b);
        deepEqual(w, block);
      }
      equal(origins.size, windows.length, "windows are distinct");
    }),
    { numRuns: 200 },
  );
});

Deno.test("entry (i, j) lies in as many windows as there are valid origins within h−1 of it", () => {
  fc.assert(
    fc.property(maps, ({ rows, cols, h }) => {
      const count = new Array(rows * cols).fill(0);
      for (const w of slidingWindows(rows, cols, h)) for (const i of w) count[i]++;
      const span = (i: number, n: number) => Math.min(i, n - h) - Math.max(0, i - h + 1) + 1;
      for (let i = 0; i < rows; i++) {
        for (let j = 0; j < cols; j++) equal(count[i * cols + j], span(i, rows) * span(j, cols));
      }
    }),
    { numRuns: 200 },
  );
});

Deno.test("slidingWindows() refuses h larger than the map or a bad size", () => {
  throws(
    () => slidingWindows(3, 5, 4),
    /^RangeError: h = 4 is invalid: h must be an integer in \[1, 3\]$/,
  );
  throws(() => slidingWindows(3, 5, 0), /h = 0 is invalid/);
  throws(() => slidingWindows(0, 5, 1), /rows = 0 is invalid/);
  throws(() => slidingWindows(3, 2.5, 1), /cols = 2.5 is invalid/);
});

Deno.test("ℓ2,1 with singleton groups is ℓ1, and ℓp,q with one group of all entries is ℓp", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 12 }).chain(values), ps, qs, (z, p, q) => {
      const singletons = z.map((_, i) => [i]);
      const l1 = z.reduce((s, v) => s + Math.abs(v), 0);
      assertClose(groupNorm(z, singletons, 2, 1), l1, { atol: 1e-9, rtol: 1e-12 });
      const lp = z.reduce((s, v) => s + Math.abs(v) ** p, 0) ** (1 / p);
      assertClose(groupNorm(z, [z.map((_, i) => i)], p, q), lp, { atol: 1e-9, rtol: 1e-9 });
    }),
    { numRuns: 200 },
  );
});

Deno.test("‖c·z‖p,q = |c|·‖z‖p,q (absolute homogeneity)", () => {
  fc.assert(
    fc.property(grouped, fc.double({ min: -10, max: 10, noNaN: true }), ps, qs, (g, c, p, q) => {
      const scaled = g.z.map((v) => c * v);
      const expected = Math.abs(c) * groupNorm(g.z, g.groups, p, q);
      assertClose(groupNorm(scaled, g.groups, p, q), expected, { atol: 1e-9, rtol: 1e-9 });
    }),
    { numRuns: 200 },
  );
});

Deno.test("‖x + y‖p,1 <= ‖x‖p,1 + ‖y‖p,1 (triangle inequality)", () => {
  fc.assert(
    fc.property(grouped, fc.integer(), ps, (g, seed, p) => {
      const y = g.z.map((v, i) => Math.sin(seed + i) * 50 - v / 3);
      const sum = g.z.map((v, i) => v + y[i]);
      const lhs = groupNorm(sum, g.groups, p, 1);
      const rhs = groupNorm(g.z, g.groups, p, 1) + groupNorm(y, g.groups, p, 1);
      ok(lhs <= rhs * (1 + 1e-12) + 1e-12, `${lhs} > ${rhs}`);
    }),
    { numRuns: 200 },
  );
});

Deno.test("‖z‖p,q >= ‖z‖p,1 for q <= 1 (ℓq of the group norms dominates their ℓ1)", () => {
  fc.assert(
    fc.property(grouped, ps, qs, (g, p, q) => {
      const lq = groupNorm(g.z, g.groups, p, q);
      const l1 = groupNorm(g.z, g.groups, p, 1);
      ok(lq >= l1 * (1 - 1e-12), `ℓ${p},${q} = ${lq} < ℓ${p},1 = ${l1}`);
    }),
    { numRuns: 200 },
  );
});

Deno.test("groupNorm() refuses p < 1, q outside (0, 1], non-finite values and bad indices", () => {
  throws(
    () => groupNorm([1, 2], [[0, 1]], 0.5, 1),
    /^RangeError: p = 0.5 is invalid: p must be a finite number >= 1$/,
  );
  throws(
    () => groupNorm([1, 2], [[0, 1]], 2, 1.5),
    /^RangeError: q = 1.5 is invalid: q must be a finite number > 0/,
  );
  throws(() => groupNorm([1, 2], [[0, 1]], 2, 0), /q = 0 is invalid/);
  throws(
    () => groupNorm([1, Number.NaN], [[0, 1]]),
    /^RangeError: values contains NaN at flat index 1: all values must be finite$/,
  );
  throws(() => groupNorm([1, Infinity], [[0]]), /values contains Infinity at flat index 1/);
  throws(
    () => groupNorm([1, 2], [[0, 2]]),
    /^RangeError: group index = 2 is invalid: group index must be an integer in \[0, 1\]$/,
  );
  throws(() => groupNorm([1, 2], [[-1]]), /group index = -1 is invalid/);
  throws(() => groupNorm([1, 2], [[0.5]]), /group index = 0.5 is invalid/);
});
