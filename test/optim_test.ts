import { AdamW } from "../src/train/optim.ts";
import { simdAdamW, useSimdAdamW } from "../src/ops/adamw_simd.ts";
import { wasmBackendMemory } from "../src/ops/wasm_bytes.ts";
import { tf } from "../src/deps.ts";
import { useBackend } from "../src/backend.ts";
import { availableBackends } from "./backends.ts";
import { assertAllClose, assertClose, deepEqual, equal, ok, throws } from "./asserts.ts";

const backends = await availableBackends();

/** Float64 reference AdamW on plain arrays, straight from the formula. */
function referenceAdamW(
  w: number[],
  gradsPerStep: number[][],
  { lr, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.05 }: {
    lr: number;
    b1?: number;
    b2?: number;
    eps?: number;
    wd?: number;
  },
): number[] {
  w = [...w];
  const m = w.map(() => 0), v = w.map(() => 0);
  gradsPerStep.forEach((g, s) => {
    const t = s + 1;
    for (let i = 0; i < w.length; i++) {
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      const mhat = m[i] / (1 - b1 ** t), vhat = v[i] / (1 - b2 ** t);
      w[i] -= lr * (mhat / (Math.sqrt(vhat) + eps) + wd * w[i]);
    }
  });
  return w;
}

/** Loss whose gradients the tests feed: sum((A w - 1)^2) per variable. */
function gradsOf(vars: Record<string, tf.Variable>): Record<string, tf.Tensor> {
  const list = Object.values(vars);
  const { value, grads } = tf.variableGrads(
    () =>
      tf.addN(list.map((w, i) => tf.sum(tf.square(tf.sub(tf.mul(w, i + 1.5), 1))))) as tf.Scalar,
    list,
  );
  value.dispose();
  const out: Record<string, tf.Tensor> = {};
  for (const [name, w] of Object.entries(vars)) out[name] = grads[w.name];
  return out;
}

for (const backend of backends) {
  Deno.test(`optim [${backend}]: first two steps match hand-computed values`, async () => {
    await useBackend(backend);
    const w = tf.variable(tf.tensor1d([1, -2]));
    const b = tf.variable(tf.tensor1d([0.5]));
    const opt = new AdamW({ learningRate: 0.1, excludeFromWeightDecay: (n) => n === "b" });
    const g1 = { w: tf.tensor1d([0.5, 0.25]), b: tf.tensor1d([-3]) };
    opt.step(g1, { w, b });
    // t = 1: m̂ = g, v̂ = g², so the Adam part is sign(g); decay 0.05·w (w only):
    // w = [1 - 0.1·(1 + 0.05), -2 - 0.1·(1 - 0.1)] = [0.895, -2.09]; b = 0.5 + 0.1
    assertAllClose(await w.data(), [0.895, -2.09], { atol: 1e-6 });
    assertAllClose(await b.data(), [0.6], { atol: 1e-6 });
    const g2 = { w: tf.tensor1d([-1, 0.5]), b: tf.tensor1d([1]) };
    opt.step(g2, { w, b }, 0.05);
    // t = 2, w[0]: m = 0.9·0.05 − 0.1 = −0.055, v = 0.999·0.00025 + 0.001 = 0.00124975,
    // m̂ = −0.055/0.19, v̂ = 0.00124975/0.001999,
    // w = 0.895 − 0.05·(m̂/sqrt(v̂) + 0.05·0.895) = 0.9110675...
    const mhat = -0.055 / 0.19, vhat = 0.00124975 / 0.001999;
    const w0 = 0.895 - 0.05 * (mhat / Math.sqrt(vhat) + 0.05 * 0.895);
    assertClose(w0, 0.91106768, { atol: 1e-8, rtol: 0 });
    // w[1]: m = 0.9·0.025 + 0.1·0.5 = 0.0725, v = 0.999·0.0000625 + 0.001·0.25
    const w1 = -2.09 - 0.05 * ((0.0725 / 0.19) / Math.sqrt(0.0003124375 / 0.001999) + 0.05 * -2.09);
    assertAllClose(await w.data(), [w0, w1], { atol: 1e-6 });
    // b (no decay): m = 0.9·(−0.3) + 0.1 = −0.17, v = 0.999·0.009 + 0.001
    const b0 = 0.6 - 0.05 * ((-0.17 / 0.19) / Math.sqrt(0.009991 / 0.001999));
    assertAllClose(await b.data(), [b0], { atol: 1e-6 });
    equal(opt.iterations, 2);
    opt.dispose();
    tf.dispose([w, b, g1.w, g1.b, g2.w, g2.b]);
  });

  Deno.test(`optim [${backend}]: 20 steps match a float64 reference`, async () => {
    await useBackend(backend);
    const init = [0.3, -1.2, 2.0, 0.0, -0.7, 5.0];
    const w = tf.variable(tf.tensor1d(init));
    const opt = new AdamW({ learningRate: 0.01, weightDecay: 0.1 });
    const gradsPerStep: number[][] = [];
    for (let s = 0; s < 20; s++) {
      const g = init.map((_, i) => Math.sin(1.3 * s + i) * (i + 1));
      gradsPerStep.push(g);
      const gt = tf.tensor1d(g);
      opt.step({ w: gt }, { w });
      gt.dispose();
    }
    const ref = referenceAdamW(init, gradsPerStep, { lr: 0.01, wd: 0.1 });
    assertAllClose(await w.data(), ref, { atol: 2e-5, rtol: 1e-5 });
    opt.dispose();
    w.dispose();
  });

  Deno.test(`optim [${backend}]: with weightDecay 0 it matches tf.train.adam`, async () => {
    await useBackend(backend);
    const init = () => ({
      a: tf.variable(tf.tensor2d([[0.5, -1], [2, 0.1]])),
      c: tf.variable(tf.tensor1d([3, -0.25, 0.8])),
    });
    const ours = init(), theirs = init();
    const lr = 0.05;
    const opt = new AdamW({ learningRate: lr, weightDecay: 0, epsilon: 1e-7 });
    const adam = tf.train.adam(lr, 0.9, 0.999, 1e-7);
    for (let s = 0; s < 8; s++) {
      const g1 = gradsOf(ours);
      opt.step(g1, ours);
      tf.dispose(Object.values(g1));
      const g2 = gradsOf(theirs);
      const named: Record<string, tf.Tensor> = {};
      for (const [name, v] of Object.entries(theirs)) named[v.name] = g2[name];
      adam.applyGradients(named as unknown as Record<string, tf.Variable>);
      tf.dispose(Object.values(g2));
    }
    for (const name of ["a", "c"] as const) {
      assertAllClose(await ours[name].data(), await theirs[name].data(), {
        atol: 1e-5,
        rtol: 1e-5,
        msg: name,
      });
    }
    opt.dispose();
    adam.dispose();
    tf.dispose([...Object.values(ours), ...Object.values(theirs)]);
  });

  Deno.test(`optim [${backend}]: state round-trip continues identically`, async () => {
    await useBackend(backend);
    const make = () => ({
      w: tf.variable(tf.tensor2d([[1, 2, 3], [-1, 0.5, 0]])),
      bias: tf.variable(tf.tensor1d([0.1, -0.2])),
    });
    const options = { learningRate: 0.02, excludeFromWeightDecay: (n: string) => n === "bias" };
    const a = make();
    const optA = new AdamW(options);
    for (let s = 0; s < 3; s++) {
      const g = gradsOf(a);
      optA.step(g, a);
      tf.dispose(Object.values(g));
    }
    // Save as plain arrays (as a checkpoint would), then restore into a fresh pair.
    const state = optA.getState();
    equal(state.step, 3);
    deepEqual(Object.keys(state.m).sort(), ["bias", "w"]);
    type Saved = Record<string, { shape: number[]; values: Float32Array }>;
    const save = async (rec: Record<string, tf.Tensor>): Promise<Saved> => {
      const out: Saved = {};
      for (const [k, t] of Object.entries(rec)) {
        out[k] = { shape: t.shape, values: (await t.data()) as Float32Array };
      }
      return out;
    };
    const restore = (saved: Saved): Record<string, tf.Tensor> =>
      Object.fromEntries(
        Object.entries(saved).map(([k, { shape, values }]) => [k, tf.tensor(values, shape)]),
      );
    const savedVars = await save(a);
    const savedM = await save(state.m), savedV = await save(state.v);
    const b = make();
    const restoredVars = restore(savedVars);
    b.w.assign(restoredVars.w as tf.Tensor2D);
    b.bias.assign(restoredVars.bias as tf.Tensor1D);
    const m = restore(savedM), v = restore(savedV);
    const optB = new AdamW(options);
    optB.setState({ step: 3, m, v });
    // setState copied them
    tf.dispose([...Object.values(m), ...Object.values(v), ...Object.values(restoredVars)]);
    equal(optB.iterations, 3);
    for (let s = 0; s < 4; s++) {
      const ga = gradsOf(a), gb = gradsOf(b);
      optA.step(ga, a, 0.01);
      optB.step(gb, b, 0.01);
      tf.dispose([...Object.values(ga), ...Object.values(gb)]);
    }
    deepEqual(Array.from(await b.w.data()), Array.from(await a.w.data()));
    deepEqual(Array.from(await b.bias.data()), Array.from(await a.bias.data()));
    optA.dispose();
    optB.dispose();
    tf.dispose([a.w, a.bias, b.w, b.bias]);
  });

  Deno.test(`optim [${backend}]: no tensor leaks over 50 steps`, async () => {
    await useBackend(backend);
    const vars = {
      w: tf.variable(tf.randomNormal([16, 8], 0, 1, "float32", 1)),
      b: tf.variable(tf.zeros([8])),
    };
    const before = tf.memory().numTensors;
    const opt = new AdamW({ learningRate: 1e-3, excludeFromWeightDecay: (n) => n === "b" });
    const g = gradsOf(vars);
    opt.step(g, vars);
    const afterFirst = tf.memory().numTensors;
    equal(afterFirst, before + 4 + 2, "one m and one v per variable, plus the 2 gradients");
    for (let s = 0; s < 50; s++) opt.step(g, vars, 1e-3 * (1 + s));
    equal(tf.memory().numTensors, afterFirst);
    tf.dispose(Object.values(g));
    opt.dispose();
    equal(tf.memory().numTensors, before);
    tf.dispose(Object.values(vars));
  });
}

Deno.test("optim: variables without a gradient are left alone", async () => {
  await useBackend("cpu");
  const vars = { w: tf.variable(tf.tensor1d([1])), frozen: tf.variable(tf.tensor1d([7])) };
  const opt = new AdamW({ learningRate: 0.1 });
  const g = tf.tensor1d([1]);
  opt.step({ w: g }, vars);
  deepEqual(Array.from(await vars.frozen.data()), [7]);
  // Its moments exist (zero) so that the optimizer state does not grow later.
  deepEqual(Object.keys(opt.getState().m).sort(), ["frozen", "w"]);
  deepEqual(Array.from(await opt.getState().m.frozen.data()), [0]);
  opt.dispose();
  tf.dispose([g, vars.w, vars.frozen]);
});

Deno.test("optim: bad options, gradients and states are refused with clear errors", async () => {
  await useBackend("cpu");
  throws(() => new AdamW({ learningRate: 0 }), /learningRate = 0 is invalid/);
  throws(
    () => new AdamW({ learningRate: 1, beta1: 1 }),
    /beta1 = 1 is invalid: beta1 must be in \[0, 1\)/,
  );
  throws(() => new AdamW({ learningRate: 1, beta2: -0.1 }), /beta2 = -0.1 is invalid/);
  throws(() => new AdamW({ learningRate: 1, epsilon: 0 }), /epsilon = 0 is invalid/);
  throws(() => new AdamW({ learningRate: 1, weightDecay: -1 }), /weightDecay = -1 is invalid/);
  const opt = new AdamW({ learningRate: 0.1 });
  const w = tf.variable(tf.zeros([2]));
  const g3 = tf.zeros([3]), g2 = tf.zeros([2]);
  throws(() => opt.step({ x: g2 }, { w }), /gradient "x" has no variable: known variables are "w"/);
  throws(
    () => opt.step({ w: g3 }, { w }),
    /gradient "w" has shape \[3\] but its variable has shape \[2\]/,
  );
  throws(() => opt.step({ w: g2 }, { w }, -1), /lr = -1 is invalid/);
  throws(
    () => opt.setState({ step: 1, m: { w: g2 }, v: {} }),
    /state.m names \[w\] and state.v names \[\] must be the same/,
  );
  throws(() => opt.setState({ step: -1, m: {}, v: {} }), /state.step = -1 is invalid/);
  throws(
    () => opt.setState({ step: 1, m: { w: g2 }, v: { w: g3 } }),
    /state.m\["w"\] has shape \[2\] but state.v\["w"\] has shape \[3\]/,
  );
  opt.dispose();
  throws(() => opt.step({ w: g2 }, { w }), /disposed/);
  tf.dispose([w, g2, g3]);
});

for (const backend of backends.filter((b) => b !== "webgpu")) {
  Deno.test(
    `optim [${backend}]: the fused update equals the kernel path to float32 rounding, also on shared memory`,
    async () => {
      await useBackend(backend);
      // Same start, same gradients, 10 steps: fused (one loop over the arrays)
      // against fused: false (tfjs kernels, rounding after every operation).
      const init = Array.from({ length: 301 }, (_, i) => Math.sin(i) * 2);
      const grads = Array.from(
        { length: 10 },
        (_, s) =>
          Array.from({ length: 301 }, (_, i) => Math.cos(i * (s + 1)) * (i % 7 === 0 ? 1e-4 : 1)),
      );
      const run = (fused: boolean) => {
        const [w, b] = tf.tidy(() => [
          tf.variable(tf.tensor1d(init)),
          tf.variable(tf.tensor1d([0.25, -0.5])),
        ]);
        // A clone shares w's memory: the fused update must not write through it.
        const snapshot = w.clone();
        const opt = new AdamW({
          learningRate: 0.01,
          fused,
          excludeFromWeightDecay: (n) => n === "b",
        });
        for (const [s, g] of grads.entries()) {
          const gw = tf.tensor1d(g), gb = tf.tensor1d([g[0], g[1]]);
          opt.step({ w: gw, b: gb }, { w, b }, 0.01 / (s + 1));
          tf.dispose([gw, gb]);
        }
        const out = {
          w: w.dataSync().slice(),
          b: b.dataSync().slice(),
          snap: snapshot.dataSync().slice(),
        };
        opt.dispose();
        tf.dispose([w, b, snapshot]);
        return out;
      };
      const before = tf.memory().numTensors;
      const fused = run(true), kernels = run(false);
      equal(tf.memory().numTensors, before);
      assertAllClose(fused.snap, init, { atol: 1e-6 });
      assertAllClose(fused.w, kernels.w, { atol: 1e-6, rtol: 1e-5 });
      assertAllClose(fused.b, kernels.b, { atol: 1e-6, rtol: 1e-5 });
      // ...and neither equals the start (the update ran).
      ok(Math.abs(fused.w[1] - init[1]) > 1e-3);
    },
  );
}

for (const backend of backends.filter((b) => b !== "webgpu")) {
  Deno.test(
    `optim [${backend}]: a matmul after the fused update sees the new weights (tfjs-wasm caches packed weights by tensor)`,
    async () => {
      await useBackend(backend);
      const w = tf.tidy(() => tf.variable(tf.tensor2d([[1, 2], [3, 4], [5, 6]])));
      const x = tf.tensor2d([[1, -1, 2]]);
      tf.matMul(x, w).dispose(); // the backend may now cache w's packed form
      const opt = new AdamW({ learningRate: 0.5, weightDecay: 0 });
      const g = tf.tensor2d([[1, -1], [1, -1], [1, -1]]);
      opt.step({ w: g }, { w }); // the first Adam step moves every weight by lr·sign(g)
      const wv = Array.from(w.dataSync());
      assertAllClose(wv, [0.5, 2.5, 2.5, 4.5, 4.5, 6.5], { atol: 1e-6 });
      // x·w by hand from the updated weights: [1·.5 − 2.5 + 2·4.5, 1·2.5 − 4.5 + 2·6.5]
      const y = tf.matMul(x, w);
      assertAllClose(await y.data(), [7, 11], { atol: 1e-5 });
      tf.dispose([y, x, g, w]);
      opt.dispose();
    },
  );
}

Deno.test("optim [wasm]: the SIMD loop on tfjs-wasm's memory gives the TypeScript loop's numbers bit for bit", async () => {
  await useBackend("wasm");
  ok(
    simdAdamW(wasmBackendMemory(tf.backend())) !== null,
    "the SIMD loop is available on wasm here",
  );
  // Sizes with every tail length (n mod 4 = 0..3) and one below 4 (TypeScript loop only).
  const shapes: Record<string, number[]> = { a: [1], b: [3], c: [4, 2], d: [7], e: [1027] };
  const run = async (simd: boolean) => {
    const before = useSimdAdamW(simd);
    try {
      const vars: Record<string, tf.Variable> = {};
      let seed = 1;
      for (const [name, shape] of Object.entries(shapes)) {
        vars[name] = tf.variable(
          tf.randomNormal(shape, 0, 1, "float32", seed++),
          true,
          `simd_${simd}_${name}`,
        );
      }
      const opt = new AdamW({
        learningRate: 3e-3,
        weightDecay: 0.05,
        excludeFromWeightDecay: (n) => n === "d",
      });
      equal(opt.simd, simd, "the optimizer runs the SIMD loop when it is on");
      // A second holder of one weight's memory: that variable is updated into a new tensor.
      const shared = vars.e.clone();
      for (let s = 0; s < 5; s++) {
        const g = gradsOf(vars);
        opt.step(g, vars, 3e-3 * (1 + s));
        tf.dispose(Object.values(g));
      }
      const out: Record<string, Float32Array> = {};
      for (const [name, w] of Object.entries(vars)) out[name] = await w.data() as Float32Array;
      const state = opt.getState();
      for (const [name, t] of Object.entries(state.m)) {
        out[`m.${name}`] = await t.data() as Float32Array;
      }
      for (const [name, t] of Object.entries(state.v)) {
        out[`v.${name}`] = await t.data() as Float32Array;
      }
      shared.dispose();
      opt.dispose();
      tf.dispose(Object.values(vars));
      return out;
    } finally {
      useSimdAdamW(before);
    }
  };
  const simd = await run(true), plain = await run(false);
  equal(Object.keys(simd).length, 15, "5 weights, 5 m, 5 v");
  for (const key of Object.keys(plain)) deepEqual(simd[key], plain[key], key);
});
