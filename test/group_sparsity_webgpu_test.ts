import fc from "fast-check";
import { assertAllClose, equal, ok, throws } from "./asserts.ts";
import { availableBackends } from "./backends.ts";
import { type Matrix, numericGradient, refAverage, refGaussian, refRBatch } from "./reference.ts";
import {
  groupSparsity,
  type GroupSparsityOptions,
  type Layout,
  makeFilter,
  type Tensor,
  type Tensor2D,
  tf,
  useBackend,
} from "../mod.ts";
import { fusedGroupSparsity } from "../src/moge/group_sparsity_webgpu.ts";

/** Shader keys of the fused kernels (tfjs appends its own suffix in the pipeline cache). */
const FORWARD_KEY = "mogeGroupSparsityForward_";
const BACKWARD_KEY = "mogeGroupSparsityBackward_";

/**
 * Maps and filter sizes the properties draw from: square and non-square maps (4x8, 8x16 and a
 * transposed 8x4), odd and even h, h = 1 and h = min(r, c). Small: webgpu here may be llvmpipe.
 */
const CASES: { rows: number; cols: number; h: number }[] = [
  { rows: 4, cols: 4, h: 3 },
  { rows: 4, cols: 8, h: 2 },
  { rows: 4, cols: 8, h: 3 },
  { rows: 8, cols: 4, h: 3 },
  { rows: 8, cols: 16, h: 3 },
  { rows: 8, cols: 16, h: 4 },
  { rows: 6, cols: 6, h: 4 },
  { rows: 2, cols: 4, h: 2 },
  { rows: 3, cols: 5, h: 1 },
  { rows: 5, cols: 6, h: 5 },
];

/** The filter of a test case: average, or Gaussian with σ in [0.3, 20]. */
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

/** The padding of the map. */
const paddings = fc.constantFrom("valid" as const, "same" as const, "full" as const);

/** Float32 scores in [-max, max] with exact zeros now and then. */
function scores(length: number, max = 5) {
  return fc.array(
    fc.oneof(
      { weight: 1, arbitrary: fc.constant(0) },
      { weight: 6, arbitrary: fc.double({ min: -max, max, noNaN: true }) },
    ),
    { minLength: length, maxLength: length },
  ).map((a) => Float32Array.from(a));
}

/** Float32 scores with 0.2 <= |z| <= 2: every window stays away from the sqrt's kink at 0. */
function awayFromZero(length: number) {
  return fc.array(
    fc.tuple(fc.boolean(), fc.double({ min: 0.2, max: 2, noNaN: true })),
    { minLength: length, maxLength: length },
  ).map((a) => Float32Array.from(a, ([neg, v]) => (neg ? -v : v)));
}

/**
 * Runs f while recording the shader key of every program the webgpu backend dispatches
 * (tfjs's own `runWebGPUProgram`, wrapped on the backend instance and restored afterwards).
 */
function dispatches<T>(f: () => T): { result: T; keys: string[] } {
  const backend = tf.backend() as unknown as Record<string, unknown>;
  const original = backend.runWebGPUProgram as (p: { shaderKey: string }, ...r: unknown[]) => T;
  const keys: string[] = [];
  backend.runWebGPUProgram = function (this: unknown, p: { shaderKey: string }, ...r: unknown[]) {
    keys.push(p.shaderKey);
    return original.call(this, p, ...r);
  };
  try {
    return { result: f(), keys };
  } finally {
    delete backend.runWebGPUProgram;
  }
}

/** The compiled pipelines of the fused kernels (tfjs's private cache, keyed by shader key). */
function fusedPipelines(): string[] {
  const cache = (tf.backend() as unknown as { pipelineCache: Record<string, unknown> })
    .pipelineCache;
  return Object.keys(cache).filter((k) => k.startsWith(FORWARD_KEY) || k.startsWith(BACKWARD_KEY));
}

/** R(z) of a row-major [n, E] batch, read back; disposes everything. */
async function evalR(
  z: Float32Array,
  n: number,
  options: GroupSparsityOptions,
): Promise<Float32Array> {
  const zt = tf.tensor2d(z, [n, z.length / n]);
  const r = groupSparsity(zt, options);
  const out = (await r.data()) as Float32Array;
  tf.dispose([zt, r]);
  return out;
}

/** ∂(Σ_n w_n R_n)/∂z of a row-major [n, E] batch, read back; disposes everything. */
async function evalGrad(
  z: Float32Array,
  w: Float32Array,
  options: GroupSparsityOptions,
): Promise<Float32Array> {
  const n = w.length;
  const zt = tf.tensor2d(z, [n, z.length / n]);
  const wt = tf.tensor1d(w);
  const g = tf.grad((x: Tensor) => tf.sum(tf.mul(groupSparsity(x, options), wt)))(zt);
  const out = (await g.data()) as Float32Array;
  tf.dispose([zt, wt, g]);
  return out;
}

const backends = await availableBackends();

Deno.test("[cpu] fusedGroupSparsity refuses to run off webgpu", async () => {
  await useBackend("cpu");
  const z = Float32Array.from({ length: 2 * 32 }, (_, i) => Math.sin(i));
  const zt = tf.tensor2d(z, [2, 32]);
  throws(
    () => fusedGroupSparsity(zt, { rows: 4, cols: 8 }, makeFilter("average", 3), 1e-8),
    /^Error: fusedGroupSparsity: needs the webgpu backend, tfjs runs on "cpu"$/,
  );
  zt.dispose();
});

if (!backends.includes("webgpu")) {
  Deno.test({
    name: "[webgpu] fused groupSparsity: skipped, this runtime has no WebGPU adapter",
    ignore: true,
    fn: () => {},
  });
} else {
  const numRuns = 15;

  Deno.test("[webgpu] fused R(z) = op-path R(z) = Algorithm 1 in float64, for any z, square or non-square map, odd or even h, Gaussian or average filter, ε and padding", async () => {
    await useBackend("webgpu");
    const arb = fc.constantFrom(...CASES).chain((c) =>
      fc.integer({ min: 1, max: 20 }).chain((n) =>
        fc.record({
          z: scores(n * c.rows * c.cols),
          f: filters,
          eps: fc.constantFrom(0, 1e-8, 1e-3),
          padding: paddings,
        }).map((r) => ({ ...c, n, ...r }))
      )
    );
    await fc.assert(
      fc.asyncProperty(arb, async ({ rows, cols, h, n, z, f, eps, padding }) => {
        const layout = { rows, cols };
        const options = { ...f, filterSize: h, layout, eps, padding, checkFinite: false };
        const fused = await evalR(z, n, { ...options, impl: "fused" });
        const ops = await evalR(z, n, { ...options, impl: "ops" });
        const H = refFilter(f.filter, h, f.sigma);
        const expected = refRBatch(z, n, rows, cols, H, eps, padding);
        const msg = `${rows} x ${cols} h=${h} n=${n} ${f.filter} σ=${f.sigma} ε=${eps} ${padding}`;
        assertAllClose(fused, ops, { atol: 1e-6, rtol: 1e-5, msg: `${msg}: fused vs ops` });
        assertAllClose(fused, expected, { atol: 1e-6, rtol: 1e-5, msg: `${msg}: fused vs ref` });
      }),
      { numRuns },
    );
  });

  Deno.test("[webgpu] fused ∂(Σ w_n·R_n)/∂z = op-path gradient = central finite differences of Algorithm 1 in float64, every padding", async () => {
    await useBackend("webgpu");
    const arb = fc.constantFrom(...CASES).chain((c) =>
      fc.integer({ min: 1, max: 3 }).chain((n) =>
        fc.record({
          z: awayFromZero(n * c.rows * c.cols),
          // Upstream gradient per token: the kernel must scale by dy[n], not assume 1.
          w: fc.array(fc.double({ min: -2, max: 2, noNaN: true }), {
            minLength: n,
            maxLength: n,
          }).map((a) => Float32Array.from(a)),
          f: filters,
          padding: paddings,
        }).map((r) => ({ ...c, n, ...r }))
      )
    );
    await fc.assert(
      fc.asyncProperty(arb, async ({ rows, cols, h, n, z, w, f, padding }) => {
        const layout = { rows, cols };
        const options = { ...f, filterSize: h, layout, padding, checkFinite: false };
        const fused = await evalGrad(z, w, { ...options, impl: "fused" });
        const ops = await evalGrad(z, w, { ...options, impl: "ops" });
        const H = refFilter(f.filter, h, f.sigma);
        const total = (x: number[]) =>
          refRBatch(x, n, rows, cols, H, 1e-8, padding).reduce((s, v, i) => s + w[i] * v, 0);
        const expected = numericGradient(total, z, 1e-3);
        const msg = `${rows} x ${cols} h=${h} n=${n} ${f.filter} σ=${f.sigma} ${padding}`;
        assertAllClose(fused, ops, { atol: 1e-6, rtol: 1e-5, msg: `${msg}: fused vs ops` });
        assertAllClose(fused, expected, { atol: 2e-6, rtol: 1e-5, msg: `${msg}: fused vs FD` });
      }),
      { numRuns },
    );
  });

  Deno.test("[webgpu] fusedGroupSparsity with any nonnegative h x h filter, asymmetric too, = Algorithm 1 with that filter, values and gradient (H is not transposed or flipped), every padding", async () => {
    await useBackend("webgpu");
    const arb = fc.constantFrom(...CASES).chain((c) =>
      fc.record({
        z: awayFromZero(2 * c.rows * c.cols),
        H: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), {
          minLength: c.h * c.h,
          maxLength: c.h * c.h,
        }).map((a) => Array.from({ length: c.h }, (_, i) => a.slice(i * c.h, (i + 1) * c.h))),
        padding: paddings,
      }).map((r) => ({ ...c, ...r }))
    );
    await fc.assert(
      fc.asyncProperty(arb, async ({ rows, cols, z, H, padding }) => {
        const E = rows * cols;
        const zt = tf.tensor2d(z, [2, E]);
        const f = (x: Tensor) =>
          fusedGroupSparsity(x as Tensor2D, { rows, cols }, H, 1e-8, padding);
        const r = f(zt);
        const g = tf.grad((x: Tensor) => tf.sum(f(x)))(zt);
        const [rv, gv] = await Promise.all([r.data(), g.data()]);
        tf.dispose([zt, r, g]);
        // The reference sees H as float32, as the kernel does.
        const H32 = H.map((row) => Array.from(Float32Array.from(row)));
        const msg = `${rows} x ${cols} ${padding} H=${JSON.stringify(H)}`;
        const ref = (x: ArrayLike<number>) => refRBatch(x, 2, rows, cols, H32, 1e-8, padding);
        assertAllClose(rv, ref(z), { atol: 1e-5, rtol: 1e-5, msg });
        const total = (x: number[]) => ref(x).reduce((s, v) => s + v);
        assertAllClose(gv, numericGradient(total, z, 1e-3), {
          atol: 1e-5,
          rtol: 1e-4,
          msg: `${msg}: gradient`,
        });
      }),
      { numRuns },
    );
  });

  Deno.test("[webgpu] groupSparsity is fused by default: R is one dispatch and its gradient one more, against 5+ and 14+ on the op path", async () => {
    await useBackend("webgpu");
    const z = tf.tensor2d(Float32Array.from({ length: 3 * 16 }, (_, i) => Math.cos(i)), [3, 16]);
    const count = (options: GroupSparsityOptions) => {
      const fwd = dispatches(() => groupSparsity(z, options));
      const bwd = dispatches(() => tf.grad((x: Tensor) => tf.sum(groupSparsity(x, options)))(z));
      tf.dispose([fwd.result, bwd.result]);
      const ours = (keys: string[], prefix: string) => keys.filter((k) => k.startsWith(prefix));
      return {
        fwd: fwd.keys.length,
        fwdOurs: ours(fwd.keys, FORWARD_KEY).length,
        bwdOurs: ours(bwd.keys, BACKWARD_KEY).length,
        total: bwd.keys.length,
      };
    };
    const byDefault = count({ sigma: 1.5 });
    const fused = count({ sigma: 1.5, impl: "fused" });
    const ops = count({ sigma: 1.5, impl: "ops" });
    equal(JSON.stringify(byDefault), JSON.stringify(fused));
    equal(fused.fwd, 1, "fused forward: one dispatch");
    equal(fused.fwdOurs, 1);
    equal(fused.bwdOurs, 1, "fused backward: one dispatch");
    // tf.grad(Σ R) adds the sum and its gradient: 2 + the two fused kernels.
    equal(fused.total, 4, `fused forward+backward: ${fused.total} dispatches`);
    equal(ops.fwdOurs + ops.bwdOurs, 0, 'impl: "ops" must use the op path');
    ok(ops.fwd >= 5 && ops.total >= 14, `op path: ${ops.fwd} and ${ops.total} dispatches`);
    z.dispose();
  });

  Deno.test("[webgpu] fused shaders compile once per (r, c, h): changing σ, filter kind, ε or N compiles nothing and still gives Algorithm 1", async () => {
    await useBackend("webgpu");
    // 5 x 7 and 7 x 5 maps with h = 3 are used by no other test here.
    const pipelinesOf = (rows: number, cols: number) =>
      fusedPipelines().filter((k) => k.includes(`_${rows}_${cols}_3_`)).length;
    for (const [rows, cols] of [[5, 7], [7, 5]]) {
      const settings: { sigma?: number; filter: "gaussian" | "average"; eps: number; n: number }[] =
        [
          { sigma: 0.5, filter: "gaussian", eps: 1e-8, n: 3 },
          { sigma: 2, filter: "gaussian", eps: 1e-8, n: 3 },
          { sigma: 10, filter: "gaussian", eps: 1e-3, n: 1 },
          { filter: "average", eps: 1e-8, n: 17 },
          { sigma: 0.7, filter: "gaussian", eps: 0, n: 2 },
        ];
      for (const [i, { n, eps, ...f }] of settings.entries()) {
        const E = rows * cols;
        const z = Float32Array.from({ length: n * E }, (_, k) => Math.sin(3 * k + i) + 0.1);
        const options = { ...f, eps, layout: { rows, cols }, impl: "fused" as const };
        const r = await evalR(z, n, options);
        const g = await evalGrad(z, new Float32Array(n).fill(1), options);
        equal(pipelinesOf(rows, cols), 2, `${rows} x ${cols}, setting ${i}: pipelines`);
        const H = refFilter(f.filter, 3, f.sigma);
        const msg = `${rows} x ${cols} ${JSON.stringify(settings[i])}`;
        assertAllClose(r, refRBatch(z, n, rows, cols, H, eps), { atol: 1e-5, rtol: 1e-5, msg });
        const total = (x: number[]) => refRBatch(x, n, rows, cols, H, eps).reduce((s, v) => s + v);
        const fd = numericGradient(total, z, 1e-3);
        assertAllClose(g, fd, { atol: 1e-5, rtol: 1e-4, msg: `${msg}: gradient` });
      }
    }
    equal(fusedPipelines().filter((k) => /_(5_7|7_5)_3_/.test(k)).length, 4);
  });

  Deno.test("[webgpu] repeated fused forward and backward calls leave tf.memory().numTensors flat", async () => {
    await useBackend("webgpu");
    const layout: Layout = { rows: 4, cols: 8 };
    const z = tf.tensor2d(Float32Array.from({ length: 5 * 32 }, (_, i) => Math.sin(i)), [5, 32]);
    const step = async (sigma: number) => {
      const options = { sigma, layout, filterSize: 2, impl: "fused" as const };
      const { value, grads } = tf.valueAndGrads((x: Tensor) => tf.sum(groupSparsity(x, options)))(
        [z],
      );
      const r = tf.tidy(() => groupSparsity(z, options));
      await Promise.all([value.data(), grads[0].data(), r.data()]);
      tf.dispose([value, ...grads, r]);
    };
    await step(1); // compiles
    const before = tf.memory().numTensors;
    for (const sigma of [0.5, 1, 2, 4, 8]) {
      await step(sigma);
      equal(tf.memory().numTensors, before, `σ = ${sigma}`);
    }
    const r = fusedGroupSparsity(z as Tensor2D, layout, makeFilter("gaussian", 2, 1), 1e-8);
    equal(tf.memory().numTensors, before + 1, "fusedGroupSparsity: only its result");
    tf.dispose([r, z]);
  });

  Deno.test("[webgpu] fusedGroupSparsity refuses inputs it cannot run, and an empty batch gives an empty R", async () => {
    await useBackend("webgpu");
    const z = tf.zeros([2, 16]) as Tensor2D;
    const H = makeFilter("average", 3);
    throws(() => fusedGroupSparsity(z, { rows: 4, cols: 8 }, H, 1e-8), /layout 4 x 8/);
    throws(() => fusedGroupSparsity(z, { rows: 2, cols: 8 }, H, 1e-8), /filter 3 x 3/);
    throws(() => fusedGroupSparsity(z, { rows: 4, cols: 4 }, H, -1), /eps -1/);
    const empty = tf.zeros([0, 16]);
    const r = groupSparsity(empty, { sigma: 1, impl: "fused" });
    equal(r.shape.join(), "0");
    tf.dispose([z, empty, r]);
  });
}
