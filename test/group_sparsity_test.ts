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
  refPadAmounts,
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

/** A filter choice: average or Gaussian with σ in [0.3, 20], either centre for even h. */
const filters = fc.oneof(
  fc.constant({ filter: "average" as const, sigma: undefined, filterCentre: undefined }),
  fc.record({
    filter: fc.constant("gaussian" as const),
    sigma: fc.double({ min: 0.3, max: 20, noNaN: true }),
    filterCentre: fc.constantFrom(undefined, "floor" as const, "symmetric" as const),
  }),
);

function refFilter(
  filter: "average" | "gaussian",
  h: number,
  sigma?: number,
  centre: "floor" | "symmetric" = "floor",
): Matrix {
  return filter === "average" ? refAverage(h) : refGaussian(h, sigma!, centre);
}

/** The implementation: the tfjs ops (reference) or the fused routine. */
const impls = fc.constantFrom("ops" as const, "fused" as const);
/** The padding of the map. */
const paddings = fc.constantFrom("valid" as const, "same" as const, "full" as const);
const PADDINGS = ["valid", "same", "full"] as const;

/** How many windows of the padded map hold entry k of a rows x cols map (brute force). */
function windowsHolding(k: number, rows: number, cols: number, h: number, padding: string) {
  const [top, bottom, left, right] = refPadAmounts(h, padding as "valid");
  const [i, j] = [Math.floor(k / cols) + top, (k % cols) + left];
  let count = 0;
  for (let u = 0; u + h <= rows + top + bottom; u++) {
    for (let v = 0; v + h <= cols + left + right; v++) {
      if (u <= i && i < u + h && v <= j && j < v + h) count++;
    }
  }
  return count;
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
    // E = 8 as 2 x 4 with h = 2 (the authors' code): 1 x 3 positions, entry 0 in one of them,
    // at tap (0, 0). Average and symmetric Gaussian: weight 1/4.
    for (const o of [{ filter: "average" }, { filterCentre: "symmetric" }] as const) {
      assertClose(
        (await evalR(oneHot(8, 0), 1, 8, { sigma: 0.7, filterSize: 2, ...o }))[0],
        Math.sqrt(0.25 + EPS) + 2e-4,
      );
    }
    // Default Gaussian (centred at tap 1, offsets [-1, 0]), σ = 0.7: tap (0, 0) is offset
    // (-1, -1), weight exp(-2/0.98) / (exp(-2/0.98) + 2·exp(-1/0.98) + 1) = 0.130 / 1.851.
    const e2 = Math.exp(-2 / 0.98), e1 = Math.exp(-1 / 0.98);
    assertClose(
      (await evalR(oneHot(8, 0), 1, 8, { sigma: 0.7, filterSize: 2 }))[0],
      Math.sqrt(e2 / (e2 + 2 * e1 + 1) + EPS) + 2e-4,
    );
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

  Deno.test(`[${b}] groupSparsity equals Algorithm 1 in plain float64 (square, zero-pad for same/full, correlate, sqrt(+ε), sum), for Gaussian and average filters of any size, both implementations`, async () => {
    await useBackend(b);
    await fc.assert(
      fc.asyncProperty(batches(b), filters, fc.nat(), impls, paddings, async (
        { E, h, n, z },
        f,
        pick,
        impl,
        padding,
      ) => {
        // Any divisor layout wide enough for h, either orientation; else the default one.
        const layouts = divisorPairs(E).flatMap(({ rows, cols }) => [
          { rows, cols },
          { rows: cols, cols: rows },
        ]).filter(({ rows, cols }) => rows >= h && cols >= h);
        const layout = pick % 3 === 0 ? undefined : layouts[pick % layouts.length];
        const { rows, cols } = layout ?? bruteLayout(E);
        const actual = await evalR(z, n, E, { ...f, filterSize: h, layout, impl, padding });
        const H = refFilter(f.filter, h, f.sigma, f.filterCentre);
        const expected = refRBatch(z, n, rows, cols, H, EPS, padding);
        assertAllClose(actual, expected, {
          atol: 1e-6,
          rtol: 1e-5,
          msg: `E=${E} (${rows} x ${cols}) h=${h} ${JSON.stringify(f)} ${impl} ${padding}`,
        });
      }),
      { numRuns },
    );
  });

  Deno.test(`[${b}] tf.grad of Σ R(z) equals central finite differences of Algorithm 1 in float64, both implementations, every padding`, async () => {
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
        fc.record({ z: awayFromZero(n * E), f: filters, impl: impls, padding: paddings }).map((
          r,
        ) => ({ E, h, n, ...r }))
      )
    );
    await fc.assert(
      fc.asyncProperty(arb, async ({ E, h, n, z, f, impl, padding }) => {
        const options = { ...f, filterSize: h, impl, padding };
        const zt = tf.tensor2d(z, [n, E]);
        const grad = tf.grad((x: Tensor) => tf.sum(groupSparsity(x, options)))(zt);
        const actual = await grad.data();
        tf.dispose([zt, grad]);
        const { rows, cols } = bruteLayout(E);
        const H = refFilter(f.filter, h, f.sigma, f.filterCentre);
        const total = (x: number[]) =>
          refRBatch(x, n, rows, cols, H, EPS, padding).reduce((s, v) => s + v, 0);
        const expected = numericGradient(total, z, 1e-3);
        assertAllClose(actual, expected, {
          // Observed float32 error is ~1e-7; the finite-difference error at step 1e-3 is smaller.
          atol: 1e-6,
          rtol: 1e-5,
          msg: `E=${E} h=${h} n=${n} ${JSON.stringify(f)} ${impl} ${padding}`,
        });
      }),
      { numRuns },
    );
  });

  Deno.test(`[${b}] the correlation has (r−h+1)(c−h+1) positions (valid, as many as slidingWindows(r, c, h)), r·c (same), (r+h−1)(c+h−1) (full)`, async () => {
    await useBackend(b);
    const all = b === "webgpu" ? budget(b).cases : usableCases(100, 5);
    for (const { E, h } of all) {
      const { rows, cols } = bruteLayout(E);
      const P = slidingWindows(rows, cols, h).length;
      equal(P, (rows - h + 1) * (cols - h + 1));
      const positions = {
        valid: P,
        same: rows * cols,
        full: (rows + h - 1) * (cols + h - 1),
      };
      for (const padding of PADDINGS) {
        for (const impl of ["ops", "fused"] as const) {
          // With ε = 1, each position of a zero map contributes sqrt(0 + 1) = 1.
          const zeros = await evalR(new Float32Array(E), 1, E, {
            filter: "average",
            filterSize: h,
            eps: 1,
            padding,
            impl,
          });
          equal(zeros[0], positions[padding], `E=${E} h=${h} ${padding} ${impl}`);
        }
      }
    }
  });

  Deno.test(`[${b}] a one-hot z scores (1/h)·(number of h x h windows holding its entry); with "full" padding that is h for every entry (no border effect)`, async () => {
    await useBackend(b);
    const all = b === "webgpu" ? [{ E: 12, h: 2 }] : usableCases(64, 4);
    for (const { E, h } of all) {
      const { rows, cols } = bruteLayout(E);
      const windows = slidingWindows(rows, cols, h);
      const identity = new Float32Array(E * E);
      for (let k = 0; k < E; k++) identity[k * E + k] = 1;
      for (const padding of PADDINGS) {
        for (const impl of ["ops", "fused"] as const) {
          const options = { filter: "average" as const, filterSize: h, eps: 0, padding, impl };
          const r = await evalR(identity, E, E, options);
          const expected = Array.from(
            { length: E },
            (_, k) =>
              padding === "valid"
                ? windows.filter((w) => w.includes(k)).length / h
                : windowsHolding(k, rows, cols, h, padding) / h,
          );
          if (padding === "full") ok(expected.every((v) => v === h), `full: ${expected}`);
          const msg = `E=${E} h=${h} ${padding} ${impl}`;
          assertAllClose(r, expected, { atol: 1e-6, rtol: 1e-6, msg });
        }
      }
    }
  });

  Deno.test(`[${b}] R(z) >= 0`, async () => {
    await useBackend(b);
    await fc.assert(
      fc.asyncProperty(batches(b, 1e3), filters, fc.constantFrom(0, EPS), impls, paddings, async (
        c,
        f,
        eps,
        impl,
        padding,
      ) => {
        const r = await evalR(c.z, c.n, c.E, { ...f, filterSize: c.h, eps, impl, padding });
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
        impls,
        paddings,
        async ({ E, h, n, z }, f, c, impl, padding) => {
          const options = { ...f, filterSize: h, eps: 0, impl, padding };
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

  Deno.test(`[${b}] with a symmetric filter and symmetric padding (valid, full), R is invariant under flipping the map's rows and/or columns, and under transposing it`, async () => {
    await useBackend(b);
    await fc.assert(
      fc.asyncProperty(
        batches(b),
        filters.map((f) => ({ ...f, filterCentre: "symmetric" as const })),
        fc.record({ flipRows: fc.boolean(), flipCols: fc.boolean(), transpose: fc.boolean() }),
        impls,
        fc.constantFrom("valid" as const, "full" as const),
        async ({ E, h, n, z }, f0, how, impl, padding) => {
          const f = { ...f0, impl, padding };
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
        impl: impls,
        padding: paddings,
      })
    );
    await fc.assert(
      fc.asyncProperty(arb, async ({ h, v, f: f0, impl, padding }) => {
        const f = { ...f0, impl, padding };
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

  Deno.test(`[${b}] groupSparsity() returns [N] and leaves no tensor behind but its result, forward and backward, both implementations`, async () => {
    await useBackend(b);
    const z = tf.tensor2d(Float32Array.from({ length: 3 * 16 }, (_, i) => Math.sin(i)), [3, 16]);
    const expected = refRBatch(await z.data(), 3, 4, 4, refGaussian(3, 1.5));
    for (const impl of ["ops", "fused", undefined] as const) {
      for (const padding of PADDINGS) {
        const before = tf.memory().numTensors;
        const r = groupSparsity(z, { sigma: 1.5, impl, padding });
        equal(tf.memory().numTensors, before + 1);
        equal(r.dtype, "float32");
        equal(r.shape.join(), "3");
        if (padding === "valid") {
          assertAllClose(await r.data(), expected, { atol: 1e-6, rtol: 1e-5 });
        }
        r.dispose();
        for (let i = 0; i < 3; i++) {
          const { value, grads } = tf.valueAndGrads((x: Tensor) =>
            tf.sum(groupSparsity(x, { sigma: 1 + i, impl, padding }))
          )([z]);
          await grads[0].data();
          tf.dispose([value, ...grads]);
          equal(tf.memory().numTensors, before, `${impl} ${padding}: leak after step ${i}`);
        }
      }
    }
    // An empty batch gives an empty R (the op path is left out: tfjs-webgpu's conv2d
    // refuses N = 0).
    const empty = tf.zeros([0, 16]);
    const r = groupSparsity(empty, { sigma: 1, impl: "fused" });
    equal(r.shape.join(), "0", "fused: empty batch");
    r.dispose();
    tf.dispose([z, empty]);
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
    refuses(
      z,
      { sigma: 1, padding: "reflect" as "same" },
      /^RangeError: padding = "reflect" is invalid: allowed are valid, same, full$/,
    );
    refuses(
      z,
      { sigma: 1, impl: "gpu" as "ops" },
      /^RangeError: impl = "gpu" is invalid: allowed are ops, fused$/,
    );
    refuses(
      z,
      { sigma: 1, filterCentre: "middle" as "floor" },
      /^RangeError: filterCentre = "middle" is invalid: allowed are floor, symmetric$/,
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

for (const b of backends.filter((x) => x !== "webgpu")) {
  Deno.test(`[${b}] groupSparsity is fused by default on ${b}: its forward runs one registered kernel and no tfjs op (the op path runs conv2d), same R`, async () => {
    await useBackend(b);
    const z = tf.tensor2d(Float32Array.from({ length: 4 * 36 }, (_, i) => Math.cos(i)), [4, 36]);
    const kernels = async (options: GroupSparsityOptions) => {
      let out: Float32Array = new Float32Array();
      const info = await tf.profile(async () => {
        const r = groupSparsity(z, { sigma: 1.5, ...options });
        out = (await r.data()) as Float32Array;
        r.dispose();
      });
      return { names: info.kernelNames, out };
    };
    const byDefault = await kernels({});
    const fused = await kernels({ impl: "fused" });
    const ops = await kernels({ impl: "ops" });
    // One registered kernel (R per token); no tfjs compute kernel runs.
    equal(JSON.stringify(byDefault.names), JSON.stringify(["MogeGroupSparsity"]), "default");
    equal(JSON.stringify(fused.names), JSON.stringify(["MogeGroupSparsity"]), "fused");
    ok(ops.names.includes("Conv2D") && ops.names.length >= 4, `ops: ${ops.names}`);
    assertAllClose(byDefault.out, ops.out, { atol: 1e-6, rtol: 1e-6 });
    z.dispose();
  });

  Deno.test(`[${b}] fused ∂(Σ w_n·R_n)/∂z = op-path gradient, and fused R = op-path R, for every padding, filter centre and ε`, async () => {
    await useBackend(b);
    const arb = batches(b).chain((c) =>
      fc.record({
        w: fc.array(fc.double({ min: -2, max: 2, noNaN: true }), {
          minLength: c.n,
          maxLength: c.n,
        }).map((a) => Float32Array.from(a)),
        f: filters,
        padding: paddings,
        // ε > 0: at ε = 0 a window of zeros has an undefined gradient (0 / 0) on both paths.
        eps: fc.constantFrom(1e-8, 1e-3),
      }).map((r) => ({ ...c, ...r }))
    );
    await fc.assert(
      fc.asyncProperty(arb, async ({ E, h, n, z, w, f, padding, eps }) => {
        const zt = tf.tensor2d(z, [n, E]);
        const wt = tf.tensor1d(w);
        const run = async (impl: "ops" | "fused") => {
          const o = { ...f, filterSize: h, padding, eps, impl };
          const r = groupSparsity(zt, o);
          const g = tf.grad((x: Tensor) => tf.sum(tf.mul(groupSparsity(x, o), wt)))(zt);
          const out = [await r.data(), await g.data()];
          tf.dispose([r, g]);
          return out;
        };
        const [rf, gf] = await run("fused");
        const [ro, go] = await run("ops");
        tf.dispose([zt, wt]);
        const msg = `E=${E} h=${h} n=${n} ${JSON.stringify(f)} ${padding} ε=${eps}`;
        assertAllClose(rf, ro, { atol: 1e-5, rtol: 1e-5, msg: `${msg}: R` });
        // Where z = 0 the gradient is 0 on both paths; elsewhere both are float32 roundings.
        assertAllClose(gf, go, { atol: 1e-5, rtol: 1e-4, msg: `${msg}: gradient` });
      }),
      { numRuns: budget(b).numRuns },
    );
  });
}
