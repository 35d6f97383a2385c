import fc from "fast-check";
import { assertAllClose, equal, ok, throws } from "./asserts.ts";
import { availableBackends } from "./backends.ts";
import { numericGradient, refGaussian, refRBatch } from "./reference.ts";
import { groupSparsity, makeFilter, type Tensor, type Tensor2D, tf, useBackend } from "../mod.ts";
import { cpuGroupSparsity } from "../src/moge/group_sparsity_cpu.ts";
import {
  GROUP_SPARSITY_GRAD_KERNEL,
  GROUP_SPARSITY_KERNEL,
  kernelGroupSparsity,
} from "../src/moge/group_sparsity_kernel.ts";

const PADDINGS = ["valid", "same", "full"] as const;

/**
 * Maps and filter sizes: E a multiple of 4 with h = 3 (the one-loop SIMD
 * passes of the paper's 3 x 3 Gaussian), E not a multiple of 4, even h, h = 1.
 */
const CASES = [
  { rows: 4, cols: 4, h: 3 },
  { rows: 8, cols: 4, h: 3 },
  { rows: 5, cols: 8, h: 3 },
  { rows: 5, cols: 5, h: 3 },
  { rows: 6, cols: 6, h: 2 },
  { rows: 3, cols: 5, h: 1 },
];

/** Float32 scores with 0.2 <= |z| <= 2: every window stays away from the sqrt's kink at 0. */
function awayFromZero(length: number) {
  return fc.array(
    fc.tuple(fc.boolean(), fc.double({ min: 0.2, max: 2, noNaN: true })),
    { minLength: length, maxLength: length },
  ).map((a) => Float32Array.from(a, ([neg, v]) => (neg ? -v : v)));
}

const cpuBackends = (await availableBackends()).filter((x) => x === "cpu" || x === "wasm");

for (const b of cpuBackends) {
  Deno.test(`[${b}] kernelGroupSparsity = Algorithm 1 in float64 (values) and its finite differences (gradient), any Gaussian, every padding`, async () => {
    await useBackend(b);
    const arb = fc.constantFrom(...CASES).chain((c) =>
      fc.record({
        z: awayFromZero(3 * c.rows * c.cols),
        sigma: fc.double({ min: 0.3, max: 20, noNaN: true }),
        w: fc.array(fc.double({ min: -2, max: 2, noNaN: true }), { minLength: 3, maxLength: 3 })
          .map((a) => Float32Array.from(a)),
        padding: fc.constantFrom(...PADDINGS),
      }).map((r) => ({ ...c, ...r }))
    );
    await fc.assert(
      fc.asyncProperty(arb, async ({ rows, cols, h, z, sigma, w, padding }) => {
        const E = rows * cols, H = refGaussian(h, sigma);
        const zt = tf.tensor2d(z, [3, E]);
        const wt = tf.tensor1d(w);
        const f = (x: Tensor) =>
          kernelGroupSparsity(x as Tensor2D, { rows, cols }, H, 1e-8, padding);
        const r = f(zt);
        const g = tf.grad((x: Tensor) => tf.sum(tf.mul(f(x), wt)))(zt);
        const [rv, gv] = [await r.data(), await g.data()];
        tf.dispose([zt, wt, r, g]);
        const msg = `${rows} x ${cols} h=${h} σ=${sigma} ${padding}`;
        const ref = (x: ArrayLike<number>) => refRBatch(x, 3, rows, cols, H, 1e-8, padding);
        assertAllClose(rv, ref(z), { atol: 1e-5, rtol: 1e-5, msg });
        const total = (x: number[]) => ref(x).reduce((s, v, i) => s + w[i] * v, 0);
        assertAllClose(gv, numericGradient(total, z, 1e-3), {
          atol: 1e-5,
          rtol: 1e-4,
          msg: `${msg}: gradient`,
        });
      }),
      { numRuns: 40 },
    );
  });

  Deno.test(`[${b}] kernelGroupSparsity gives the very float32 values and gradients of cpuGroupSparsity (the same arithmetic) and matches the op path, at the paper's sizes`, async () => {
    await useBackend(b);
    // E = 16, 64, 400 (multiples of 4: the one-loop passes) and 36, 30 at N = 200 tokens.
    fc.assert(
      fc.property(
        fc.constantFrom(16, 30, 36, 64, 400),
        fc.integer({ min: 1, max: 1000 }),
        fc.constantFrom(...PADDINGS),
        (E, seed, padding) => {
          const z = tf.tidy(() =>
            tf.softmax(tf.randomNormal([200, E], 0, 2, "float32", seed))
          ) as Tensor2D; // [N, E]
          const w = tf.randomUniform([200], -1, 2, "float32", seed + 1); // [N]
          const sigma = 1.5, H = makeFilter("gaussian", 3, sigma);
          const layout = { rows: E === 30 ? 5 : Math.sqrt(E) | 0, cols: 0 };
          layout.cols = E / layout.rows;
          const run = (f: (x: Tensor) => Tensor) => {
            const r = f(z);
            const g = tf.grad((x: Tensor) => tf.sum(tf.mul(f(x), w)))(z);
            const out = [r.dataSync().slice(), g.dataSync().slice()];
            tf.dispose([r, g]);
            return out;
          };
          const [rk, gk] = run((x) => kernelGroupSparsity(x as Tensor2D, layout, H, 1e-8, padding));
          const [rc, gc] = run((x) => cpuGroupSparsity(x as Tensor2D, layout, H, 1e-8, padding));
          const [ro, go] = run((x) =>
            groupSparsity(x, { sigma, layout, padding, impl: "ops", checkFinite: false })
          );
          tf.dispose([z, w]);
          const msg = `E=${E} seed=${seed} ${padding}`;
          ok(rk.every((v, i) => Object.is(v, rc[i])), `${msg}: R differs from cpuGroupSparsity`);
          ok(gk.every((v, i) => Object.is(v, gc[i])), `${msg}: dz differs from cpuGroupSparsity`);
          assertAllClose(rk, ro, { atol: 1e-5, rtol: 1e-5, msg: `${msg}: R vs ops` });
          assertAllClose(gk, go, { atol: 1e-5, rtol: 1e-4, msg: `${msg}: dz vs ops` });
        },
      ),
      { numRuns: 12 },
    );
  });

  Deno.test(`[${b}] groupSparsity's default runs R(z) as the registered kernel and its gradient kernel, and leaks no tensor over repeated steps`, async () => {
    await useBackend(b);
    const z = tf.tidy(() => tf.softmax(tf.randomNormal([50, 64], 0, 1, "float32", 7))); // [N, E]
    const step = () => {
      const g = tf.grad((x: Tensor) => tf.mean(groupSparsity(x, { sigma: 1.5 })))(z);
      g.dispose();
    };
    const profile = await tf.profile(step);
    const names = profile.kernels.map((k) => k.name);
    ok(names.includes(GROUP_SPARSITY_KERNEL), `kernels run: ${names.join(", ")}`);
    ok(names.includes(GROUP_SPARSITY_GRAD_KERNEL), `kernels run: ${names.join(", ")}`);
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 20; i++) step();
    for (let i = 0; i < 5; i++) {
      tf.dispose(
        kernelGroupSparsity(
          z as Tensor2D,
          { rows: 8, cols: 8 },
          makeFilter("gaussian", 3, 1.5),
          1e-8,
        ),
      );
    }
    equal(tf.memory().numTensors, before, "tensors after 20 gradient steps and 5 forward calls");
    z.dispose();
  });

  Deno.test(`[${b}] kernelGroupSparsity: a non-finite token leaves its neighbours' values and gradients finite (E = 36 and 25)`, async () => {
    await useBackend(b);
    for (const [rows, cols] of [[6, 6], [5, 5]]) {
      const E = rows * cols, H = makeFilter("gaussian", 3, 1.5);
      const bad = Float32Array.from({ length: 3 * E }, (_, i) => Math.sin(i) + 1.5);
      bad[E + 7] = NaN; // token 1
      const z = tf.tensor2d(bad, [3, E]);
      const w = tf.tensor1d([1, -2, 0.5]);
      const f = (x: Tensor) => kernelGroupSparsity(x as Tensor2D, { rows, cols }, H, 1e-8);
      const r = f(z);
      const g = tf.grad((x: Tensor) => tf.sum(tf.mul(f(x), w)))(z);
      const [rv, gv] = [await r.data(), await g.data()];
      ok(Number.isFinite(rv[0]) && Number.isNaN(rv[1]) && Number.isFinite(rv[2]), `R: ${rv}`);
      ok(gv.subarray(0, E).every(Number.isFinite), `E=${E}: token 0's gradient is not finite`);
      ok(gv.subarray(2 * E).every(Number.isFinite), `E=${E}: token 2's gradient is not finite`);
      // The finite tokens' values and gradients are those of the tokens alone.
      const clean = tf.tensor2d(bad.filter((_, i) => i < E || i >= 2 * E), [2, E]);
      const w2 = tf.tensor1d([1, 0.5]);
      const r2 = f(clean);
      const g2 = tf.grad((x: Tensor) => tf.sum(tf.mul(f(x), w2)))(clean);
      const [rc, gc] = [await r2.data(), await g2.data()];
      assertAllClose([rv[0], rv[2]], rc, { atol: 0, rtol: 0 });
      assertAllClose([...gv.subarray(0, E), ...gv.subarray(2 * E)], gc, { atol: 0, rtol: 0 });
      tf.dispose([z, w, r, g, clean, w2, r2, g2]);
    }
  });

  Deno.test(`[${b}] kernelGroupSparsity refuses inputs it cannot run, with clear errors`, async () => {
    await useBackend(b);
    const z = tf.zeros([2, 16]) as Tensor2D;
    const H = makeFilter("average", 3);
    throws(() => kernelGroupSparsity(z, { rows: 4, cols: 8 }, H, 1e-8), /layout 4 x 8/);
    throws(() => kernelGroupSparsity(z, { rows: 2, cols: 8 }, H, 1e-8), /filter 3 x 3/);
    throws(() => kernelGroupSparsity(z, { rows: 4, cols: 4 }, H, -1), /eps -1/);
    throws(
      () => kernelGroupSparsity(z, { rows: 4, cols: 4 }, H, 1e-8, "mirror" as "same"),
      /^RangeError: padding = "mirror" is invalid: allowed are valid, same, full$/,
    );
    z.dispose();
  });
}

if ((await availableBackends()).includes("webgpu")) {
  Deno.test("[webgpu] kernelGroupSparsity refuses to run on webgpu", async () => {
    await useBackend("webgpu");
    const z = tf.zeros([2, 16]) as Tensor2D;
    throws(
      () => kernelGroupSparsity(z, { rows: 4, cols: 4 }, makeFilter("average", 3), 1e-8),
      /^Error: kernelGroupSparsity: needs the cpu or wasm backend, tfjs runs on "webgpu"$/,
    );
    z.dispose();
  });
}
