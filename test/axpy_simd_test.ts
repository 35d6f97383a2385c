import fc from "fast-check";
import { assertAllClose, equal, ok } from "./asserts.ts";
import { simdAxpy } from "../src/moge/axpy_simd.ts";

const simd = simdAxpy();

Deno.test("simdAxpy() instantiates here (Deno's V8 has WebAssembly SIMD), once", () => {
  ok(simd !== null, "no WebAssembly SIMD");
  equal(simdAxpy(), simd, "the same instance on every call");
});

/** Float32 values in [-100, 100]. */
const floats = (n: number) =>
  fc.array(fc.double({ min: -100, max: 100, noNaN: true }), { minLength: n, maxLength: n })
    .map((a) => Float32Array.from(a));

Deno.test("axpy(y, x, w, n) = y + w·x in float32 for the first n entries, leaves y beyond n + 3 alone (law: a y += w·x pass in groups of four)", () => {
  const k = simd!;
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 70 }).chain((n) =>
        fc.record({
          n: fc.constant(n),
          y: floats(n + 8),
          x: floats(n + 8),
          w: fc.double({ min: -10, max: 10, noNaN: true }),
          yAt: fc.integer({ min: 0, max: 50 }),
          xAt: fc.integer({ min: 0, max: 50 }),
        })
      ),
      ({ n, y, x, w, yAt, xAt }) => {
        // y at float yAt, x at float 200 + xAt: unaligned offsets are allowed.
        const mem = new Float32Array(k.memory.buffer, 0, 400);
        mem.fill(7);
        mem.set(y, yAt);
        mem.set(x, 200 + xAt);
        k.axpy(4 * yAt, 4 * (200 + xAt), w, n);
        const w32 = Math.fround(w);
        // f32x4.mul then f32x4.add: each rounded to float32.
        const expected = Array.from(
          { length: n },
          (_, i) => Math.fround(y[i] + Math.fround(w32 * x[i])),
        );
        assertAllClose(mem.subarray(yAt, yAt + n), expected, { atol: 0, rtol: 0 });
        const untouched = Math.ceil(n / 4) * 4; // groups of four may write up to 3 past n
        for (let i = yAt + untouched; i < yAt + n + 8; i++) equal(mem[i], y[i - yAt], `y[${i}]`);
        for (let i = 0; i < yAt; i++) equal(mem[i], 7, `before y: ${i}`);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("sqrtinv(y, inv, ε, n): y ← sqrt(y + ε) (float32, correctly rounded) and inv ← 1/y", () => {
  const k = simd!;
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 40 }).chain((n) =>
        fc.record({
          n: fc.constant(n),
          y: fc.array(fc.double({ min: 1e-6, max: 1e6, noNaN: true }), {
            minLength: n,
            maxLength: n,
          }).map((a) => Float32Array.from(a)),
          eps: fc.constantFrom(0, 1e-8, 1e-3, 1),
        })
      ),
      ({ n, y, eps }) => {
        const mem = new Float32Array(k.memory.buffer, 0, 200);
        mem.set(y, 0);
        k.sqrtinv(0, 4 * 100, eps, n);
        const e32 = Math.fround(eps);
        const roots = Array.from(y, (v) => Math.fround(Math.sqrt(Math.fround(v + e32))));
        assertAllClose(mem.subarray(0, n), roots, { atol: 0, rtol: 0 });
        assertAllClose(mem.subarray(100, 100 + n), roots.map((r) => Math.fround(1 / r)), {
          atol: 0,
          rtol: 0,
        });
      },
    ),
    { numRuns: 200 },
  );
  // y = 0 with ε = 0: the root is 0 and its inverse +Infinity (as 1/sqrt(0) in float32).
  const mem = new Float32Array(k.memory.buffer, 0, 8);
  mem.fill(0);
  k.sqrtinv(0, 16, 0, 1);
  equal(mem[0], 0);
  equal(mem[4], Infinity);
});

Deno.test("mul(y, x, w, n) = (y ⊙ x)·w in float32 for the first n entries, leaves y beyond n + 3 alone; mul(y, y, 1, n) squares (law: an elementwise product pass in groups of four)", () => {
  const k = simd!;
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 70 }).chain((n) =>
        fc.record({
          n: fc.constant(n),
          y: floats(n + 8),
          x: floats(n + 8),
          w: fc.double({ min: -10, max: 10, noNaN: true }),
          yAt: fc.integer({ min: 0, max: 50 }),
          xAt: fc.integer({ min: 0, max: 50 }),
        })
      ),
      ({ n, y, x, w, yAt, xAt }) => {
        const mem = new Float32Array(k.memory.buffer, 0, 400);
        mem.fill(7);
        mem.set(y, yAt);
        mem.set(x, 200 + xAt);
        k.mul(4 * yAt, 4 * (200 + xAt), w, n);
        const w32 = Math.fround(w);
        // f32x4.mul(y, x) then f32x4.mul(·, w): each rounded to float32.
        const expected = Array.from(
          { length: n },
          (_, i) => Math.fround(Math.fround(y[i] * x[i]) * w32),
        );
        assertAllClose(mem.subarray(yAt, yAt + n), expected, { atol: 0, rtol: 0 });
        const untouched = Math.ceil(n / 4) * 4;
        for (let i = yAt + untouched; i < yAt + n + 8; i++) equal(mem[i], y[i - yAt], `y[${i}]`);
        for (let i = 0; i < yAt; i++) equal(mem[i], 7, `before y: ${i}`);
        // In place, x = y: the square of each entry.
        mem.set(x, 0);
        k.mul(0, 0, 1, n);
        assertAllClose(
          mem.subarray(0, n),
          Array.from(x.subarray(0, n), (v) => Math.fround(v * v)),
          {
            atol: 0,
            rtol: 0,
          },
        );
      },
    ),
    { numRuns: 300 },
  );
});
