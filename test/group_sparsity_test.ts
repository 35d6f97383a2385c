import fc from "fast-check";
import { assertAllClose, assertClose, equal, ok, rejects, throws } from "./asserts.ts";
import { availableBackends } from "./backends.ts";
import {
  bruteLayout,
  bruteUsable,
  divisorPairs,
  type Matrix,
  numericGradient,
  refAverage,
  refGaussian,
  refRBatch,
  transformMap,
} from "./reference.ts";
import {
  assertFinite,
  type BackendName,
  groupNorm,
  groupSparsity,
  type GroupSparsityOptions,
  slidingWindows,
  type Tensor,
  tf,
  useBackend,
} from "../mod.ts";

const EPS = 1e-8;
const backends = await availableBackends();

/** Per-backend budget: webgpu here is a slow software adapter (llvmpipe). */
function budget(b: BackendName) {
  const cheap = b === "webgpu";
  return {
    numRuns: cheap ? 5 : 30,
    maxN: cheap ? 2 : 3,
    /** (E, h) cases the properties draw from: every usable one up to 100 off webgpu. */
    cases: cheap
      ? [{ E: 16, h: 3 }, { E: 12, h: 2 }, { E: 36, h: 4 }, { E: 8, h: 2 }, { E: 6, h: 1 }]
      : usableCases(100, 4),
  };
}

/** Every usable (E, h) with E <= maxE, h <= maxH, by brute force. */
function usableCases(maxE: number, maxH: number): { E: number; h: number }[] {
  const out: { E: number; h: number }[] = [];
  for (let h = 1; h <= maxH; h++) {
    for (let E = 1; E <= maxE; E++) if (bruteUsable(E, h)) out.push({ E, h });
  }
  return out;
}

/** R(z) for a row-major [n, E] batch, read back asynchronously; disposes everything. */
async function evalR(
  z: ArrayLike<number>,
  n: number,
  E: number,
  options: GroupSparsityOptions,
): Promise<Float32Array> {
  const zt = tf.tensor2d(Float32Array.from(z), [n, E]);
  try {
    const r = groupSparsity(zt, options);
    equal(r.rank, 1);
    equal(r.shape[0], n);
    const out = (await r.data()) as Float32Array;
    r.dispose();
    return out;
  } finally {
    zt.dispose();
  }
}

/** Float32 values drawn from [-max, max], with exact zeros now and then. */
function scores(length: number, max = 10) {
  return fc.array(
    fc.oneof(
      { weight: 1, arbitrary: fc.constant(0) },
      { weight: 6, arbitrary: fc.double({ min: -max, max, noNaN: true }) },
    ),
    { minLength: length, maxLength: length },
  ).map((a) => Float32Array.from(a));
}

/** A batch: (E, h) from the cases, N tokens, and z. */
function batches(b: BackendName, max = 10) {
  const { cases, maxN } = budget(b);
  return fc.constantFrom(...cases).chain(({ E, h }) =>
    fc.integer({ min: 1, max: maxN }).chain((n) => scores(n * E, max).map((z) => ({ E, h, n, z })))
  );
}

/** A filter choice: average or Gaussian with σ in [0.3, 20]. */
const filters = fc.oneof(
  fc.constant({ filter: "average" as const, sigma: undefined }),
  fc.double({ min: 0.3, max: 20, noNaN: true }).map((sigma) => ({
    filter: "gaussian" as const,
    sigma,
  })),
);

function refFilter(filter: "average" | "gaussian", h: number, sigma?: number): Matrix {
  return filter === "average" ? refAverage(h) : refGaussian(h, sigma!);
}

/** A row-major one-hot [1, E] vector. */
function oneHot(E: number, k: number): Float32Array {
  const z = new Float32Array(E);
  z[k] = 1;
  return z;
}

for (const b of backends) {
  const { numRuns } = budget(b);

  Deno.test(`[${b}] groupSparsity() gives hand-computed values for one-hot and zero scores`, async () => {
    await useBackend(b);
    const third = Math.sqrt(1 / 9 + EPS);
    // 4 x 4 map, 3 x 3 average filter, 2 x 2 valid positions: a corner entry lies in 1 window,
    // entry (1, 1) in all 4.
    assertClose((await evalR(oneHot(16, 0), 1, 16, { filter: "average" }))[0], third + 3e-4);
    assertClose((await evalR(oneHot(16, 5), 1, 16, { filter: "average" }))[0], 4 * third);
    assertClose((await evalR(oneHot(16, 15), 1, 16, { filter: "average" }))[0], third + 3e-4);
    // Zero scores: P·sqrt(ε) = 4e-4 per token.
    assertAllClose(await evalR(new Float32Array(32), 2, 16, { sigma: 1 }), [4e-4, 4e-4], {
      atol: 1e-9,
    });
    // Gaussian σ = 1: the corner one-hot meets the filter's corner weight 0.0751136 (fspecial).
    assertClose(
      (await evalR(oneHot(16, 0), 1, 16, { sigma: 1 }))[0],
      Math.sqrt(0.0751136 + EPS) + 3e-4,
    );
    // E = 8 as 2 x 4 with h = 2 (the authors' code): 1 x 3 positions, entry 0 in one of them.
    for (const filter of ["average", "gaussian"] as const) {
      assertClose(
        (await evalR(oneHot(8, 0), 1, 8, { filter, sigma: 0.7, filterSize: 2 }))[0],
        Math.sqrt(0.25 + EPS) + 2e-4,
      );
    }
  });

  Deno.test(`[${b}] groupSparsity with the average filter equals (1/h)·ℓ2,1 over overlapping windows`, async () => {
    await useBackend(b);
    await fc.assert(
      fc.asyncProperty(batches(b), async ({ E, h, n, z }) => {
        const { rows, cols } = bruteLayout(E);
        const windows = slidingWindows(rows, cols, h);
        const exact = await evalR(z, n, E, { filter: "average", filterSize: h, eps: 0 });
        const withEps = await evalR(z, n, E, { filter: "average", filterSize: h });
        for (let i = 0; i < n; i++) {
          const l21 = groupNorm(z.subarray(i * E, (i + 1) * E), windows, 2, 1) / h;
          const msg = `E=${E} h=${h} token ${i}`;
          assertClose(exact[i], l21, { atol: 1e-6, rtol: 1e-5, msg });
          // 0 <= sqrt(y + ε) − sqrt(y) <= sqrt(ε) in each of the P windows.
          const slack = 1e-6 + 1e-5 * l21;
          ok(withEps[i] >= l21 - slack, `${msg}: ${withEps[i]} < ${l21}`);
          ok(withEps[i] <= l21 + windows.length * Math.sqrt(EPS) + slack, `${msg}: ε effect`);
        }
      }),
      { numRuns },
    );
  });

  Deno.test(`[${b}] groupSparsity equals Algorithm 1 in plain float64 (square, correlate valid, sqrt(+ε), sum), for Gaussian and average filters of any size`, async () => {
    await useBackend(b);
    await fc.assert(
      fc.asyncProperty(batches(b), filters, fc.nat(), async ({ E, h, n, z }, f, pick) => {
        // Any divisor layout wide enough for h, either orientation; else the default one.
        const layouts = divisorPairs(E).flatMap(({ rows, cols }) => [
          { rows, cols },
          { rows: cols, cols: rows },
        ]).filter(({ rows, cols }) => rows >= h && cols >= h);
        const layout = pick % 3 === 0 ? undefined : layouts[pick % layouts.length];
        const { rows, cols } = layout ?? bruteLayout(E);
        const actual = await evalR(z, n, E, { ...f, filterSize: h, layout });
        const expected = refRBatch(z, n, rows, cols, refFilter(f.filter, h, f.sigma));
        assertAllClose(actual, expected, {
          atol: 1e-6,
          rtol: 1e-5,
          msg: `E=${E} (${rows} x ${cols}) h=${h} ${f.filter} σ=${f.sigma}`,
        });
      }),
      { numRuns },
    );
  });

  Deno.test(`[${b}] tf.grad of Σ R(z) equals central finite differences of Algorithm 1 in float64`, async () => {
    await useBackend(b);
    // |z| >= 0.2 keeps every window away from the sqrt's kink at 0.
    const awayFromZero = (len: number) =>
      fc.array(
        fc.tuple(fc.boolean(), fc.double({ min: 0.2, max: 2, noNaN: true })),
        { minLength: len, maxLength: len },
      ).map((a) => Float32Array.from(a, ([neg, v]) => (neg ? -v : v)));
    const { cases, maxN } = budget(b);
    const arb = fc.constantFrom(...cases.filter(({ E }) => E <= 36)).chain(({ E, h }) =>
      fc.integer({ min: 1, max: maxN }).chain((n) =>
        fc.record({ z: awayFromZero(n * E), f: filters }).map(({ z, f }) => ({ E, h, n, z, f }))
      )
    );
    await fc.assert(
      fc.asyncProperty(arb, async ({ E, h, n, z, f }) => {
        const options = { ...f, filterSize: h };
        const zt = tf.tensor2d(z, [n, E]);
        const grad = tf.grad((x: Tensor) => tf.sum(groupSparsity(x, options)))(zt);
        const actual = await grad.data();
        tf.dispose([zt, grad]);
        const { rows, cols } = bruteLayout(E);
        const H = refFilter(f.filter, h, f.sigma);
        const total = (x: number[]) => refRBatch(x, n, rows, cols, H).reduce((s, v) => s + v, 0);
        const expected = numericGradient(total, z, 1e-3);
        assertAllClose(actual, expected, {
          // Observed float32 error is ~1e-7; the finite-difference error at step 1e-3 is smaller.
          atol: 1e-6,
          rtol: 1e-5,
          msg: `E=${E} h=${h} n=${n} ${f.filter} σ=${f.sigma}`,
        });
      }),
      { numRuns },
    );
  });

  Deno.test(`[${b}] the valid correlation has (r−h+1)(c−h+1) positions, as many as slidingWindows(r, c, h)`, async () => {
    await useBackend(b);
    const all = b === "webgpu" ? budget(b).cases : usableCases(100, 5);
    for (const { E, h } of all) {
      const { rows, cols } = bruteLayout(E);
      const P = slidingWindows(rows, cols, h).length;
      equal(P, (rows - h + 1) * (cols - h + 1));
      // With ε = 1, each position of a zero map contributes sqrt(0 + 1) = 1.
      const zeros = await evalR(new Float32Array(E), 1, E, {
        filter: "average",
        filterSize: h,
        eps: 1,
      });
      equal(zeros[0], P, `E=${E} h=${h}`);
    }
  });

  Deno.test(`[${b}] a one-hot z scores (1/h)·(number of h x h windows holding its entry)`, async () => {
    await useBackend(b);
    const all = b === "webgpu" ? [{ E: 12, h: 2 }] : usableCases(64, 4);
    for (const { E, h } of all) {
      const { rows, cols } = bruteLayout(E);
      const windows = slidingWindows(rows, cols, h);
      const identity = new Float32Array(E * E);
      for (let k = 0; k < E; k++) identity[k * E + k] = 1;
      const r = await evalR(identity, E, E, { filter: "average", filterSize: h, eps: 0 });
      const expected = Array.from(
        { length: E },
        (_, k) => windows.filter((w) => w.includes(k)).length / h,
      );
      assertAllClose(r, expected, { atol: 1e-6, rtol: 1e-6, msg: `E=${E} h=${h}` });
    }
  });

  Deno.test(`[${b}] R(z) >= 0`, async () => {
    await useBackend(b);
    await fc.assert(
      fc.asyncProperty(batches(b, 1e3), filters, fc.constantFrom(0, EPS), async (c, f, eps) => {
        const r = await evalR(c.z, c.n, c.E, { ...f, filterSize: c.h, eps });
        ok(r.every((v) => v >= 0), `R = ${r}`);
      }),
      { numRuns },
    );
  });

  Deno.test(`[${b}] R(c·z) = |c|·R(z) with ε = 0 (positive homogeneity)`, async () => {
    await useBackend(b);
    await fc.assert(
      fc.asyncProperty(
        batches(b),
        filters,
        fc.double({ min: -8, max: 8, noNaN: true }),
        async ({ E, h, n, z }, f, c) => {
          const options = { ...f, filterSize: h, eps: 0 };
          const r = await evalR(z, n, E, options);
          const scaled = await evalR(z.map((v) => c * v), n, E, options);
          for (let i = 0; i < n; i++) {
            assertClose(scaled[i], Math.abs(c) * r[i], { atol: 1e-5, rtol: 1e-5, msg: `c=${c}` });
          }
        },
      ),
      { numRuns },
    );
  });

  Deno.test(`[${b}] R is invariant under flipping the map's rows and/or columns, and under transposing it`, async () => {
    await useBackend(b);
    await fc.assert(
      fc.asyncProperty(
        batches(b),
        filters,
        fc.record({ flipRows: fc.boolean(), flipCols: fc.boolean(), transpose: fc.boolean() }),
        async ({ E, h, n, z }, f, how) => {
          const { rows, cols } = bruteLayout(E);
          const moved = new Float32Array(n * E);
          for (let i = 0; i < n; i++) {
            moved.set(transformMap(z.subarray(i * E, (i + 1) * E), rows, cols, how), i * E);
          }
          // A transposed map is cols x rows: pass that layout explicitly.
          const layout = how.transpose ? { rows: cols, cols: rows } : undefined;
          const r = await evalR(z, n, E, { ...f, filterSize: h });
          const rMoved = await evalR(moved, n, E, { ...f, filterSize: h, layout });
          assertAllClose(rMoved, r, { atol: 1e-6, rtol: 1e-5, msg: JSON.stringify(how) });
        },
      ),
      { numRuns },
    );
  });

  Deno.test(`[${b}] for equal energy, mass in one h x h window scores lower than the same mass on distant interior entries`, async () => {
    await useBackend(b);
    // 12 x 12 map: an entry at rows/cols h−1 .. 12−h lies in h² windows; the spread
    // positions are h apart (no window holds two of them), the block positions adjacent.
    const m = 12;
    const arb = fc.constantFrom(2, 3).chain((h) =>
      fc.record({
        h: fc.constant(h),
        v: fc.array(fc.double({ min: 0.1, max: 1, noNaN: true }), {
          minLength: 2,
          maxLength: h * h,
        }),
        f: filters,
      })
    );
    await fc.assert(
      fc.asyncProperty(arb, async ({ h, v, f }) => {
        const concentrated = new Float32Array(m * m);
        const spread = new Float32Array(m * m);
        v.forEach((x, k) => {
          const [a, bb] = [Math.floor(k / h), k % h];
          concentrated[(5 + a) * m + 5 + bb] = x;
          spread[(h - 1 + a * h) * m + h - 1 + bb * h] = x;
        });
        const options = { ...f, filterSize: h };
        const [rc] = await evalR(concentrated, 1, m * m, options);
        const [rs] = await evalR(spread, 1, m * m, options);
        ok(rc < rs, `h=${h} ${f.filter}: concentrated ${rc} >= spread ${rs}`);
      }),
      { numRuns },
    );
    // By hand: two unit entries, 3 x 3 average filter, 100 positions. Adjacent at (5, 5), (5, 6):
    // 6 windows hold both (sqrt(2)/3), 6 hold one (1/3), 88 are empty (sqrt(ε)).
    // Apart at (5, 5), (5, 8): 18 windows hold one, 82 are empty.
    const pair = (j: number) => {
      const z = new Float32Array(m * m);
      z[5 * m + 5] = 1;
      z[5 * m + j] = 1;
      return z;
    };
    const [adjacent] = await evalR(pair(6), 1, m * m, { filter: "average" });
    const [apart] = await evalR(pair(8), 1, m * m, { filter: "average" });
    assertClose(adjacent, 2 * Math.SQRT2 + 2 + 88e-4, { atol: 1e-5 });
    assertClose(apart, 6 + 82e-4, { atol: 1e-5 });
  });

  Deno.test(`[${b}] groupSparsity() returns [N] and leaves no tensor behind but its result`, async () => {
    await useBackend(b);
    const z = tf.tensor2d(Float32Array.from({ length: 3 * 16 }, (_, i) => Math.sin(i)), [3, 16]);
    const before = tf.memory().numTensors;
    const r = groupSparsity(z, { sigma: 1.5 });
    equal(tf.memory().numTensors, before + 1);
    equal(r.dtype, "float32");
    equal(r.shape.join(), "3");
    const expected = refRBatch(await z.data(), 3, 4, 4, refGaussian(3, 1.5));
    assertAllClose(await r.data(), expected, { atol: 1e-6, rtol: 1e-5 });
    tf.dispose([z, r]);
  });

  Deno.test(`[${b}] groupSparsity() refuses bad input with clear errors, leaking no tensor`, async () => {
    await useBackend(b);
    const z = tf.tensor2d(Float32Array.from({ length: 32 }, (_, i) => i / 32), [2, 16]);
    const before = tf.memory().numTensors;
    const refuses = (input: Tensor, options: GroupSparsityOptions, re: RegExp) => {
      throws(() => groupSparsity(input, options), re);
      equal(tf.memory().numTensors, before, `leak after ${re}`);
    };
    const rank1 = tf.zeros([16]);
    const rank3 = tf.zeros([1, 4, 4]);
    const ints = tf.zeros([2, 16], "int32");
    const bools = tf.zeros([2, 16], "bool");
    const odd = tf.zeros([1, 8]);
    const prime = tf.zeros([1, 13]);
    const made = tf.memory().numTensors;
    const refusesOn = (input: Tensor, options: GroupSparsityOptions, re: RegExp) => {
      throws(() => groupSparsity(input, options), re);
      equal(tf.memory().numTensors, made, `leak after ${re}`);
    };
    refusesOn(
      rank1,
      { sigma: 1 },
      /^RangeError: groupSparsity: z must have rank 2 \(\[N, E\] routing scores\), got shape \[16\]$/,
    );
    refusesOn(rank3, { sigma: 1 }, /must have rank 2.*got shape \[1,4,4\]/);
    refusesOn(ints, { sigma: 1 }, /^TypeError: groupSparsity: z must be float32, got int32$/);
    refusesOn(bools, { sigma: 1 }, /z must be float32, got bool/);
    refusesOn(
      odd,
      { sigma: 1 },
      /^RangeError: the squarest layout of E = 8 is 2 x 4, smaller than the 3 x 3 filter.*nearest usable E: 9$/,
    );
    refusesOn(prime, { sigma: 1 }, /E = 13 is prime.*nearest usable E: 12 or 15$/);
    tf.dispose([rank1, rank3, ints, bools, odd, prime]);
    throws(
      () => groupSparsity([[1, 2]] as unknown as Tensor, { sigma: 1 }),
      /^TypeError: groupSparsity: z must be a tf.Tensor of shape \[N, E\], got object$/,
    );
    refuses(
      z,
      { sigma: 1, layout: { rows: 3, cols: 5 } },
      /^RangeError: groupSparsity: layout 3 x 5 holds 15 experts but z has E = 16$/,
    );
    refuses(z, { sigma: 1, layout: { rows: 3.2, cols: 5 } }, /layout.rows = 3.2 is invalid/);
    refuses(z, { sigma: 1, layout: { rows: -4, cols: -4 } }, /layout.rows = -4 is invalid/);
    refuses(
      z,
      { sigma: 1, filterSize: 0 },
      /^RangeError: h \(filterSize\) = 0 is invalid: h \(filterSize\) must be an integer >= 1$/,
    );
    refuses(z, { sigma: 1, filterSize: 1.5 }, /h \(filterSize\) = 1.5 is invalid/);
    refuses(
      z,
      { sigma: 1, filterSize: 5 },
      /the squarest layout of E = 16 is 4 x 4, smaller than the 5 x 5 filter/,
    );
    refuses(
      z,
      { sigma: 1, filterSize: 3, layout: { rows: 2, cols: 8 } },
      /^RangeError: groupSparsity: filterSize h = 3 is larger than the 2 x 8 map \(h must be <= 2\)$/,
    );
    refuses(
      z,
      {},
      /^RangeError: sigma is required for the gaussian filter \(a finite number > 0\)$/,
    );
    refuses(
      z,
      { sigma: 0 },
      /^RangeError: sigma = 0 is invalid: sigma must be a finite number > 0$/,
    );
    refuses(z, { sigma: -1 }, /sigma = -1 is invalid/);
    refuses(z, { sigma: Number.NaN }, /sigma = NaN is invalid/);
    refuses(
      z,
      { filter: "box" as "average" },
      /^RangeError: filter = "box" is invalid: allowed are gaussian, average$/,
    );
    refuses(
      z,
      { sigma: 1, eps: -1 },
      /^RangeError: eps = -1 is invalid: eps must be a finite number >= 0$/,
    );
    tf.dispose(z);
  });

  Deno.test(`[${b}] NaN or ±Infinity scores are refused: assertFinite on every backend, groupSparsity off webgpu`, async () => {
    await useBackend(b);
    for (
      const [bad, name] of [[Number.NaN, "NaN"], [Infinity, "Infinity"], [
        -Infinity,
        "-Infinity",
      ]] as const
    ) {
      const values = Float32Array.from({ length: 32 }, (_, i) => i / 32);
      values[19] = bad;
      const z = tf.tensor2d(values, [2, 16]);
      await rejects(
        assertFinite(z, "z"),
        new RegExp(`^RangeError: z contains ${name} at flat index 19: all values must be finite$`),
      );
      if (b !== "webgpu") {
        throws(
          () => groupSparsity(z, { sigma: 1 }),
          new RegExp(
            `^RangeError: groupSparsity: z contains ${name} at flat index 19: all values must be finite$`,
          ),
        );
        // checkFinite: false skips the scan: the bad token's R is not finite, the other's is.
        const r = groupSparsity(z, { sigma: 1, checkFinite: false });
        const [good, poisoned] = await r.data();
        ok(Number.isFinite(good) && !Number.isFinite(poisoned), `${good}, ${poisoned}`);
        r.dispose();
      }
      const first = z.slice([0, 0], [1, 16]);
      await assertFinite(first, "z[0]"); // the good token alone passes
      tf.dispose([first, z]);
    }
  });
}
