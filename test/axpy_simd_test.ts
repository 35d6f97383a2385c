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

Deno.test("tap3 / tap3sq(y, x, s, n, w0, w1, w2) = (w0·x[k] + w1·x[k+s]) + w2·x[k+2s] in float32 (of x² for tap3sq), for strides s of either sign (law: a 3-tap correlation pass in groups of four)", () => {
  const k = simd!;
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 40 }).chain((n) =>
        fc.record({
          n: fc.constant(n),
          x: floats(200),
          w: fc.array(fc.double({ min: -10, max: 10, noNaN: true }), {
            minLength: 3,
            maxLength: 3,
          }),
          s: fc.integer({ min: -25, max: 25 }),
          yAt: fc.integer({ min: 0, max: 30 }),
          square: fc.boolean(),
        })
      ),
      ({ n, x, w, s, yAt, square }) => {
        // x at floats 100..300, the pass starting at float 200: k + 2s stays within ±93 of it.
        const mem = new Float32Array(k.memory.buffer, 0, 400);
        mem.fill(7, 0, 100);
        mem.set(x, 100);
        const xAt = 200;
        (square ? k.tap3sq : k.tap3)(4 * yAt, 4 * xAt, s, n, w[0], w[1], w[2]);
        const [a, b, c] = w.map(Math.fround);
        // Each f32x4 op rounds to float32: sq(v) = v·v, then a·sq, b·sq, their sum, c·sq, the total.
        const v = (i: number) => {
          const xi = x[xAt - 100 + i];
          return square ? Math.fround(xi * xi) : xi;
        };
        const expected = Array.from({ length: n }, (_, i) =>
          Math.fround(
            Math.fround(Math.fround(a * v(i)) + Math.fround(b * v(i + s))) +
              Math.fround(c * v(i + 2 * s)),
          ));
        assertAllClose(mem.subarray(yAt, yAt + n), expected, { atol: 0, rtol: 0 });
        for (let i = yAt + Math.ceil(n / 4) * 4; i < 100; i++) equal(mem[i], 7, `past y: ${i}`);
        for (let i = 0; i < yAt; i++) equal(mem[i], 7, `before y: ${i}`);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("sum(p, n) = Σ_{k<n} p[k] in float64 for n a multiple of 4 (law: a float64 sum of float32 values, exact to float64 rounding)", () => {
  const k = simd!;
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 20 }).chain((g) =>
        fc.record({
          n: fc.constant(4 * g),
          p: floats(4 * g + 4),
          at: fc.integer({ min: 0, max: 9 }),
        })
      ),
      ({ n, p, at }) => {
        const mem = new Float32Array(k.memory.buffer, 0, 200);
        mem.set(p, at);
        let expected = 0;
        for (let i = 0; i < n; i++) expected += p[i];
        // Sums of at most 80 float32 values below 100 in float64: any order is exact to ~1e-13.
        assertAllClose([k.sum(4 * at, n)], [expected], { atol: 1e-11, rtol: 0 });
      },
    ),
    { numRuns: 200 },
  );
  // 1 + 2 + ... + 8 = 36; n = 0 sums nothing.
  new Float32Array(k.memory.buffer, 0, 8).set([1, 2, 3, 4, 5, 6, 7, 8]);
  equal(k.sum(0, 8), 36);
  equal(k.sum(0, 0), 0);
});

Deno.test("rootmask(y, inv, m, n, ε): y ← sqrt(y + ε)·m and inv ← (1/sqrt(y + ε))·m, float32 (law: sqrtinv then two mask products, fused)", () => {
  const k = simd!;
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 40 }).chain((n) =>
        fc.record({
          n: fc.constant(n),
          y: fc.array(fc.double({ min: 0, max: 1e4, noNaN: true }), { minLength: n, maxLength: n }),
          m: fc.array(fc.constantFrom(0, 1), { minLength: n + 4, maxLength: n + 4 }),
          eps: fc.constantFrom(1e-8, 1e-3, 0.5),
        })
      ),
      ({ n, y, m, eps }) => {
        // y at floats 0.., inv at 100.., m at 200..
        const mem = new Float32Array(k.memory.buffer, 0, 300);
        mem.fill(1);
        mem.set(y, 0);
        mem.set(m, 200);
        k.rootmask(0, 400, 800, n, eps);
        const e = Math.fround(eps);
        const r = y.map((v) => Math.fround(Math.sqrt(Math.fround(Math.fround(v) + e))));
        assertAllClose(mem.subarray(0, n), r.map((v, i) => v * m[i]), { atol: 0, rtol: 0 });
        assertAllClose(
          mem.subarray(100, 100 + n),
          r.map((v, i) => Math.fround(1 / v) * m[i]),
          { atol: 0, rtol: 0 },
        );
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("tap3mul(y, x, s, n, w0, w1, w2, z) = ((w0·x[k] + w1·x[k+s]) + w2·x[k+2s])·z[k] in float32, for strides of either sign (law: tap3 then mul, fused)", () => {
  const k = simd!;
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 40 }).chain((n) =>
        fc.record({
          n: fc.constant(n),
          x: floats(200),
          z: floats(44),
          w: fc.array(fc.double({ min: -10, max: 10, noNaN: true }), {
            minLength: 3,
            maxLength: 3,
          }),
          s: fc.integer({ min: -25, max: 25 }),
          yAt: fc.integer({ min: 0, max: 30 }),
        })
      ),
      ({ n, x, z, w, s, yAt }) => {
        // y at floats 0..100, x at 100..300 (the pass starting at 200), z at 320..364.
        const mem = new Float32Array(k.memory.buffer, 0, 400);
        mem.fill(7, 0, 100);
        mem.set(x, 100);
        mem.set(z, 320);
        k.tap3mul(4 * yAt, 4 * 200, s, n, w[0], w[1], w[2], 4 * 320);
        const [a, b, c] = w.map(Math.fround);
        const v = (i: number) => x[100 + i];
        const expected = Array.from({ length: n }, (_, i) =>
          Math.fround(
            Math.fround(
              Math.fround(Math.fround(a * v(i)) + Math.fround(b * v(i + s))) +
                Math.fround(c * v(i + 2 * s)),
            ) * z[i],
          ));
        assertAllClose(mem.subarray(yAt, yAt + n), expected, { atol: 0, rtol: 0 });
        for (let i = yAt + Math.ceil(n / 4) * 4; i < 100; i++) equal(mem[i], 7, `past y: ${i}`);
        for (let i = 0; i < yAt; i++) equal(mem[i], 7, `before y: ${i}`);
      },
    ),
    { numRuns: 300 },
  );
});

/** Y[k] = (a·t[k] + b·t[k+s]) + c·t[k+2s] in float32, as `tap3` computes it. */
function tap3At(t: ArrayLike<number>, k: number, s: number, w: number[]): number {
  const [a, b, c] = w.map(Math.fround);
  return Math.fround(
    Math.fround(Math.fround(a * t[k]) + Math.fround(b * t[k + s])) + Math.fround(c * t[k + 2 * s]),
  );
}

/** Token counts, E (a multiple of 4), stride, nonnegative t, a 0/1 mask, 3 weights and ε. */
const rootCase = fc.record({
  ntok: fc.integer({ min: 0, max: 4 }),
  E: fc.constantFrom(4, 8, 12, 16),
  s: fc.integer({ min: 0, max: 8 }),
  t: fc.array(fc.double({ min: 0, max: 100, noNaN: true }), { minLength: 96, maxLength: 96 })
    .map((a) => Float32Array.from(a)),
  m: fc.array(fc.constantFrom(0, 1), { minLength: 64, maxLength: 64 }),
  w: fc.array(fc.double({ min: 0, max: 2, noNaN: true }), { minLength: 3, maxLength: 3 }),
  eps: fc.constantFrom(1e-8, 1e-3, 0.5),
});

Deno.test("rootsum(t, m, out, ntok, E, s, ε, w0, w1, w2): out[n] = float32 of the float64 sum over token n of sqrt(tap3(t) + ε)·m, in `sum`'s lane order (law: tap3, rootmask and sum per token, fused)", () => {
  const k = simd!;
  fc.assert(
    fc.property(rootCase, ({ ntok, E, s, t, m, w, eps }) => {
      // t at floats 0..96, m at 100..164, out at 200.. (7 beyond the ntok results).
      const mem = new Float32Array(k.memory.buffer, 0, 220);
      mem.fill(7);
      mem.set(t, 0);
      mem.set(m, 100);
      k.rootsum(0, 400, 800, ntok, E, s, eps, w[0], w[1], w[2]);
      const e = Math.fround(eps);
      for (let n = 0; n < ntok; n++) {
        // `sum`'s order: two float64 lanes, lanes 0, 1 of each group of 4, then lanes 2, 3.
        let acc0 = 0, acc1 = 0;
        for (let j = n * E; j < (n + 1) * E; j += 4) {
          const v = [0, 1, 2, 3].map((l) =>
            Math.fround(Math.fround(Math.sqrt(Math.fround(tap3At(t, j + l, s, w) + e))) * m[j + l])
          );
          acc0 += v[0], acc1 += v[1];
          acc0 += v[2], acc1 += v[3];
        }
        equal(mem[200 + n], Math.fround(acc0 + acc1), `token ${n}`);
      }
      for (let i = 200 + ntok; i < 220; i++) equal(mem[i], 7, `past out: ${i}`);
    }),
    { numRuns: 300 },
  );
});

Deno.test("rootgrad(t, m, g, dy, ntok, E, s, ε, w0, w1, w2): g[k] = ((1/sqrt(tap3(t) + ε))·m[k])·dy[n] in float32 for k in token n (law: tap3, rootmask and the gradient's dy scaling, fused)", () => {
  const k = simd!;
  fc.assert(
    fc.property(
      rootCase,
      fc.array(fc.double({ min: -3, max: 3, noNaN: true }), { minLength: 4, maxLength: 4 })
        .map((a) => Float32Array.from(a)),
      ({ ntok, E, s, t, m, w, eps }, dy) => {
        // t at floats 0..96, m at 100..164, dy at 180..184, g at 200..264 (7 beyond ntok·E).
        const mem = new Float32Array(k.memory.buffer, 0, 280);
        mem.fill(7);
        mem.set(t, 0);
        mem.set(m, 100);
        mem.set(dy, 180);
        k.rootgrad(0, 400, 800, 720, ntok, E, s, eps, w[0], w[1], w[2]);
        const e = Math.fround(eps);
        const expected = Array.from({ length: ntok * E }, (_, j) => {
          const r = Math.fround(Math.sqrt(Math.fround(tap3At(t, j, s, w) + e)));
          return Math.fround(Math.fround(Math.fround(1 / r) * m[j]) * dy[Math.floor(j / E)]);
        });
        assertAllClose(mem.subarray(200, 200 + ntok * E), expected, { atol: 0, rtol: 0 });
        for (let i = 200 + ntok * E; i < 280; i++) equal(mem[i], 7, `past g: ${i}`);
      },
    ),
    { numRuns: 300 },
  );
});
