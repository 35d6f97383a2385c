import fc from "fast-check";
import { assertAllClose, deepEqual, equal, ok, throws } from "./asserts.ts";
import { availableBackends } from "./backends.ts";
import { numericGradient, refAverage, refGaussian, refRBatch } from "./reference.ts";
import { makeFilter, type Tensor, type Tensor2D, tf, useBackend } from "../mod.ts";
import { cpuGroupSparsity, separateFilter, useSimd } from "../src/moge/group_sparsity_cpu.ts";

const PADDINGS = ["valid", "same", "full"] as const;
const paddings = fc.constantFrom(...PADDINGS);

/** Maps and filter sizes: square and not, odd and even h, h = 1 and h = min(r, c). */
const CASES = [
  { rows: 4, cols: 4, h: 3 },
  { rows: 4, cols: 8, h: 2 },
  { rows: 8, cols: 4, h: 3 },
  { rows: 6, cols: 6, h: 4 },
  { rows: 2, cols: 4, h: 2 },
  { rows: 3, cols: 5, h: 1 },
  { rows: 5, cols: 6, h: 5 },
];

/** Float32 scores with 0.2 <= |z| <= 2: every window stays away from the sqrt's kink at 0. */
function awayFromZero(length: number) {
  return fc.array(
    fc.tuple(fc.boolean(), fc.double({ min: 0.2, max: 2, noNaN: true })),
    { minLength: length, maxLength: length },
  ).map((a) => Float32Array.from(a, ([neg, v]) => (neg ? -v : v)));
}

/** An h x h matrix with entries in [min, 1]. */
function matrix(h: number, min = 0) {
  return fc.array(fc.double({ min, max: 1, noNaN: true }), {
    minLength: h * h,
    maxLength: h * h,
  }).map((a) => Array.from({ length: h }, (_, i) => a.slice(i * h, (i + 1) * h)));
}

/** Multiples of 1/1000 in [-3, 3] (no subnormal products). */
const milli = fc.integer({ min: -3000, max: 3000 }).map((k) => k / 1000);

Deno.test("separateFilter finds H = col ⊗ row for the Gaussian (both centres) and the average filter, and for any outer product", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 7 }),
      fc.double({ min: 0.3, max: 20, noNaN: true }),
      fc.constantFrom("floor" as const, "symmetric" as const),
      (h, sigma, centre) => {
        for (const H of [refGaussian(h, sigma, centre), refAverage(h)]) {
          const sep = separateFilter(H);
          ok(sep !== null, `h=${h} σ=${sigma} ${centre}: not found separable`);
          for (let a = 0; a < h; a++) {
            assertAllClose(sep!.col.map((c) => c * sep!.row[0]), H.map((r) => r[0]), {
              atol: 1e-15,
              rtol: 1e-12,
            });
            assertAllClose(H[a].map((_, b) => sep!.col[a] * sep!.row[b]), H[a], {
              atol: 1e-15,
              rtol: 1e-12,
            });
          }
        }
      },
    ),
    { numRuns: 100 },
  );
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 6 }).chain((h) =>
        fc.tuple(
          fc.array(milli, { minLength: h, maxLength: h }),
          fc.array(milli, { minLength: h, maxLength: h }),
        )
      ),
      ([u, v]) => {
        const H = u.map((a) => v.map((b) => a * b));
        const sep = separateFilter(H);
        ok(sep !== null, `outer product not found separable: ${JSON.stringify(H)}`);
        for (let a = 0; a < u.length; a++) {
          for (let b = 0; b < v.length; b++) {
            ok(Math.abs(sep!.col[a] * sep!.row[b] - H[a][b]) <= 1e-12 * (1 + Math.abs(H[a][b])));
          }
        }
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("separateFilter returns null for filters of rank > 1 (hand-picked)", () => {
  equal(separateFilter([[1, 0], [0, 1]]), null); // the identity has rank 2
  equal(separateFilter([[1, 2], [3, 4]]), null); // det = -2
  equal(separateFilter([[0.2, 0.1, 0.1], [0.1, 0.2, 0.1], [0.1, 0.1, 0.1]]), null);
  // A zero filter is the outer product of zeros.
  deepEqual(separateFilter([[0, 0], [0, 0]]), { col: [0, 0], row: [0, 0] });
});

const cpuBackends = (await availableBackends()).filter((x) => x === "cpu" || x === "wasm");
for (const [b, simd] of cpuBackends.flatMap((b) => [[b, true], [b, false]] as const)) {
  const loops = simd ? "WebAssembly SIMD loops" : "TypeScript loops";
  Deno.test(`[${b}] cpuGroupSparsity (${loops}) with any nonnegative h x h filter, separable (two 1-D passes) or not (the 2-D path), = Algorithm 1 with that filter, values and gradient, every padding`, async () => {
    await useBackend(b);
    equal(useSimd(simd), simd, "WebAssembly SIMD is available here");
    const arb = fc.constantFrom(...CASES).chain((c) =>
      fc.record({
        z: awayFromZero(2 * c.rows * c.cols),
        // Entries >= 0.05: with |z| >= 0.2 every window (each holds an entry of the map) has
        // Y >= 2e-3, away from the sqrt's kink, where finite differences are accurate.
        H: fc.oneof(
          matrix(c.h, 0.05),
          fc.double({ min: 0.3, max: 20, noNaN: true }).map((s) => refGaussian(c.h, s)),
        ),
        w: fc.array(fc.double({ min: -2, max: 2, noNaN: true }), { minLength: 2, maxLength: 2 })
          .map((a) => Float32Array.from(a)),
        padding: paddings,
      }).map((r) => ({ ...c, ...r }))
    );
    await fc.assert(
      fc.asyncProperty(arb, async ({ rows, cols, z, H, w, padding }) => {
        const E = rows * cols;
        const zt = tf.tensor2d(z, [2, E]);
        const wt = tf.tensor1d(w);
        const f = (x: Tensor) => cpuGroupSparsity(x as Tensor2D, { rows, cols }, H, 1e-8, padding);
        const r = f(zt);
        const g = tf.grad((x: Tensor) => tf.sum(tf.mul(f(x), wt)))(zt);
        const [rv, gv] = [await r.data(), await g.data()];
        tf.dispose([zt, wt, r, g]);
        const msg = `${rows} x ${cols} ${padding} H=${JSON.stringify(H)}`;
        const ref = (x: ArrayLike<number>) => refRBatch(x, 2, rows, cols, H, 1e-8, padding);
        assertAllClose(rv, ref(z), { atol: 1e-5, rtol: 1e-5, msg });
        const total = (x: number[]) => ref(x).reduce((s, v, i) => s + w[i] * v, 0);
        assertAllClose(gv, numericGradient(total, z, 1e-3), {
          atol: 1e-5,
          rtol: 1e-4,
          msg: `${msg}: gradient`,
        });
      }),
      { numRuns: 40 },
    ).finally(() => useSimd(true));
  });
}

for (const b of cpuBackends) {
  Deno.test(`[${b}] cpuGroupSparsity: a separable filter and the same filter forced down the 2-D path agree`, async () => {
    await useBackend(b);
    // H + δ·(identity pattern) with δ = 1e-6 breaks separability but moves R by < 1e-5.
    const z = tf.tensor2d(Float32Array.from({ length: 3 * 48 }, (_, i) => Math.sin(i)), [3, 48]);
    for (const padding of PADDINGS) {
      const H = refGaussian(3, 1.2);
      const nudged = H.map((row, a) => row.map((v, c) => v + (a === c ? 1e-6 : 0)));
      equal(separateFilter(nudged), null);
      const r1 = cpuGroupSparsity(z as Tensor2D, { rows: 6, cols: 8 }, H, 1e-8, padding);
      const r2 = cpuGroupSparsity(z as Tensor2D, { rows: 6, cols: 8 }, nudged, 1e-8, padding);
      assertAllClose(await r1.data(), await r2.data(), { atol: 1e-4, rtol: 1e-5, msg: padding });
      tf.dispose([r1, r2]);
    }
    z.dispose();
  });

  Deno.test(`[${b}] cpuGroupSparsity refuses inputs it cannot run, with clear errors`, async () => {
    await useBackend(b);
    const z = tf.zeros([2, 16]) as Tensor2D;
    const H = makeFilter("average", 3);
    throws(() => cpuGroupSparsity(z, { rows: 4, cols: 8 }, H, 1e-8), /layout 4 x 8/);
    throws(() => cpuGroupSparsity(z, { rows: 2, cols: 8 }, H, 1e-8), /filter 3 x 3/);
    throws(() => cpuGroupSparsity(z, { rows: 4, cols: 4 }, H, -1), /eps -1/);
    throws(
      () => cpuGroupSparsity(z, { rows: 4, cols: 4 }, H, 1e-8, "mirror" as "same"),
      /^RangeError: padding = "mirror" is invalid: allowed are valid, same, full$/,
    );
    z.dispose();
  });
}

if ((await availableBackends()).includes("webgpu")) {
  Deno.test("[webgpu] cpuGroupSparsity refuses to run on webgpu", async () => {
    await useBackend("webgpu");
    const z = tf.zeros([2, 16]) as Tensor2D;
    throws(
      () => cpuGroupSparsity(z, { rows: 4, cols: 4 }, makeFilter("average", 3), 1e-8),
      /^Error: cpuGroupSparsity: needs the cpu or wasm backend, tfjs runs on "webgpu"$/,
    );
    z.dispose();
  });
}

for (const b of cpuBackends) {
  Deno.test(`[${b}] the "valid" SIMD path: a gradient whose forward ran with SIMD equals the all-SIMD gradient when SIMD is turned off in between, and a non-finite token leaves its neighbours finite`, async () => {
    await useBackend(b);
    const rows = 5, cols = 5, E = rows * cols; // E = 25: not a multiple of SIMD's 4 lanes
    const H = makeFilter("gaussian", 3, 1.5);
    const z = tf.tensor2d(Float32Array.from({ length: 3 * E }, (_, i) => Math.sin(i) + 1.5), [
      3,
      E,
    ]);
    const w = tf.tensor1d([1, -2, 0.5]);
    const loss = (x: Tensor) =>
      tf.sum(tf.mul(cpuGroupSparsity(x as Tensor2D, { rows, cols }, H, 1e-8), w));
    try {
      useSimd(true);
      const g1 = tf.grad(loss)(z);
      const expected = await g1.data();
      // tf.grad runs the forward, then the gradient; switch SIMD off in between.
      const g2 = tf.grad((x: Tensor) => {
        const l = loss(x);
        useSimd(false);
        return l;
      })(z);
      assertAllClose(await g2.data(), expected, { atol: 1e-6, rtol: 1e-5 });
      tf.dispose([g1, g2]);
      useSimd(true);
      // A NaN in token 1 may reach the masked positions of tokens 0 and 2 on the flat grid;
      // the routine then redoes the forward on padded grids, so only token 1 is NaN.
      const values = await z.data();
      const bad = Float32Array.from(values);
      bad[E + 7] = NaN;
      const zb = tf.tensor2d(bad, [3, E]);
      const r = cpuGroupSparsity(zb, { rows, cols }, H, 1e-8);
      const [r0, r1, r2] = await r.data();
      ok(Number.isFinite(r0) && Number.isNaN(r1) && Number.isFinite(r2), `${r0}, ${r1}, ${r2}`);
      tf.dispose([zb, r]);
    } finally {
      useSimd(true);
      tf.dispose([z, w]);
    }
  });
}
