// Laws of the routers, checked with fast-check on random inputs.

import fc from "fast-check";
import { tf } from "../src/deps.ts";
import { useBackend } from "../src/backend.ts";
import type { Tensor2D } from "../src/types.ts";
import {
  combineMatrix,
  createRouter,
  disposeDecision,
  expertChoiceCapacity,
  expertChoicePlan,
  route,
  ROUTER_NAMES,
  type RouterDecision,
  type RouterName,
  routerStats,
  routeSync,
  sinkhornLogTensor,
  sinkhornPlan,
  zLoss,
} from "../src/moe/routers/mod.ts";
import { routeRows, rowRoute } from "../src/moe/dispatch.ts";
import { assertAllClose, assertClose, equal, ok } from "./asserts.ts";
import { availableBackends } from "./backends.ts";

/** A random [N, E] score matrix with values in [lo, hi]. */
const matrix = (maxN: number, maxE: number, lo: number, hi: number) =>
  fc.record({ N: fc.integer({ min: 1, max: maxN }), E: fc.integer({ min: 1, max: maxE }) })
    .chain(({ N, E }) =>
      fc.array(fc.double({ min: lo, max: hi, noNaN: true }), { minLength: N * E, maxLength: N * E })
        .map((v) => ({ N, E, v }))
    );

Deno.test("law: expert choice fills exactly C slots per expert with its top-C tokens", () => {
  fc.assert(
    fc.property(
      matrix(20, 8, 0, 1),
      fc.double({ min: 0.05, max: 4, noNaN: true }),
      fc.integer({ min: 0, max: 3 }),
      ({ N, E, v }, capacityFactor, minCapacity) => {
        const C = expertChoiceCapacity(N, E, capacityFactor, minCapacity);
        const { plan, valid } = expertChoicePlan(v, N, E, { capacityFactor, minCapacity });
        equal(plan.capacity, C);
        let real = 0;
        for (const b of valid) real += b;
        equal(real, E * C, "E·C real choices");
        for (let e = 0; e < E; e++) {
          equal(plan.load[e], C);
          const b = plan.bufferOf[e];
          const tokens = new Set<number>();
          for (let s = 0; s < plan.slots; s++) {
            const n = plan.tokenOfSlot[b * plan.slots + s];
            if (n < N) tokens.add(n);
          }
          equal(tokens.size, C, `expert ${e} holds exactly C distinct tokens`);
          // Top-C: every chosen token scores at least as high as every unchosen one.
          let minIn = Infinity;
          let maxOut = -Infinity;
          for (let n = 0; n < N; n++) {
            const s = v[n * E + e];
            if (tokens.has(n)) minIn = Math.min(minIn, s);
            else maxOut = Math.max(maxOut, s);
          }
          ok(minIn >= maxOut, `expert ${e}: chosen min ${minIn} < unchosen max ${maxOut}`);
        }
        // Every real choice sits in the slot that points back at it; nothing is dropped.
        for (let c = 0; c < N * plan.k; c++) {
          if (!valid[c]) continue;
          equal(plan.choiceOfSlot[plan.slotOfChoice[c]], c);
        }
        equal(plan.dropped, 0);
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("law: Sinkhorn's plan has row sums 1/N and column sums 1/E within the tolerance", () => {
  fc.assert(
    fc.property(matrix(16, 8, -4, 4), fc.constantFrom(1, 0.5, 2), ({ N, E, v }, epsilon) => {
      const tol = 1e-6;
      const { pi, converged, rowError } = sinkhornPlan(v, N, E, { epsilon, tol, maxIters: 20000 });
      ok(converged, `converged (row error ${rowError})`);
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let e = 0; e < E; e++) s += pi[n * E + e];
        assertClose(s, 1 / N, { atol: 0, rtol: tol * 1.0001, msg: `row ${n}` });
      }
      for (let e = 0; e < E; e++) {
        let s = 0;
        for (let n = 0; n < N; n++) s += pi[n * E + e];
        assertClose(s, 1 / E, { atol: 1e-12, rtol: 1e-9, msg: `column ${e}` });
      }
    }),
    { numRuns: 200 },
  );
});

Deno.test("law: with the default cap, a converged Sinkhorn run reports an honest row error", () => {
  fc.assert(
    fc.property(matrix(16, 8, -6, 6), ({ N, E, v }) => {
      const r = sinkhornPlan(v, N, E); // tol 1e-4, maxIters 50
      ok(r.iterations <= 50);
      let worst = 0;
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let e = 0; e < E; e++) s += r.pi[n * E + e];
        worst = Math.max(worst, Math.abs(s * N - 1));
      }
      assertClose(worst, r.rowError, { atol: 1e-12, rtol: 1e-9 });
      equal(r.converged, worst <= 1e-4);
    }),
    { numRuns: 200 },
  );
});

/** z-loss in float64: mean of squared row logsumexps, and its gradient (2/N)·lse·softmax. */
function zLossRef(v: number[], N: number, E: number): { value: number; grad: number[] } {
  let value = 0;
  const grad: number[] = [];
  for (let n = 0; n < N; n++) {
    const row = v.slice(n * E, n * E + E);
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((a, x) => a + Math.exp(x - m), 0));
    value += lse * lse / N;
    for (const x of row) grad.push((2 / N) * lse * Math.exp(x - lse));
  }
  return { value, grad };
}

/** Every router's outputs are finite, of the right shapes, z rows sum to 1, gates in [0, 1]. */
async function finiteOutputsCase(
  name: RouterName,
  { B, T, d, E, kFrac, cf, scale, training, seed }: {
    B: number;
    T: number;
    d: number;
    E: number;
    kFrac: number;
    cf: number;
    scale: number;
    training: boolean;
    seed: number;
  },
): Promise<void> {
  const N = B * T;
  const k = 1 + Math.min(E - 1, Math.floor(kFrac * E));
  const router = createRouter(name, {
    inputDim: d,
    numExperts: E,
    topK: k,
    capacityFactor: name === "expert-choice" && cf === 0 ? 1 : cf,
    pSinkhorn: 0.5,
  }, { seed });
  const x = tf.tidy(() =>
    tf.mul(tf.randomNormal([N, d], 0, 1, "float32", seed + 1), scale)
  ) as Tensor2D;
  const attention = tf.tidy(() =>
    tf.softmax(tf.randomNormal([B, T, T], 0, 1, "float32", seed + 2))
  ) as tf.Tensor3D;
  const input = { x, sequenceLength: T, attention };
  const dec = await route(router, input, { training, noiseSeed: seed, step: seed });
  const out = router.forward(input, dec);
  const kp = dec.plan.k;
  if (name !== "expert-choice") equal(kp, k);
  equal(out.gates.shape.join(), [N, kp].join());
  equal(out.z.shape.join(), [N, E].join());
  equal(out.logits.shape.join(), [N, E].join());
  equal(out.auxLoss.shape.length, 0);
  const all = [
    ...await out.logits.data(),
    ...await out.z.data(),
    ...await out.gates.data(),
    ...await out.auxLoss.data(),
  ];
  ok(all.every(Number.isFinite), `${name}: a non-finite output`);
  const z = await out.z.data();
  for (let n = 0; n < N; n++) {
    let s = 0;
    for (let e = 0; e < E; e++) s += z[n * E + e];
    assertClose(s, 1, { atol: 1e-4, rtol: 0, msg: `${name} z row ${n}` });
  }
  for (const g of await out.gates.data()) ok(g >= 0 && g <= 1 + 1e-6, `${name}: gate ${g}`);
  const stats = await routerStats(dec, out);
  ok(
    Number.isFinite(stats.entropy) && stats.entropy >= 0 &&
      stats.entropy <= Math.log(E) + 1e-5,
  );
  equal(stats.leftBehind, dec.leftBehind);
  ok(stats.deadExperts >= 0 && stats.deadExperts <= E);
  tf.dispose([out.logits, out.z, out.gates, out.auxLoss, x, attention]);
  disposeDecision(dec);
  router.dispose();
}

/** Dispatch and combine along the plan (as MoeLayer builds them) equal a naive per-token loop. */
async function dispatchCase(
  name: RouterName,
  { B, T, d, E, k, cf, compact, training, seed }: {
    B: number;
    T: number;
    d: number;
    E: number;
    k: number;
    cf: number;
    compact: boolean;
    training: boolean;
    seed: number;
  },
): Promise<void> {
  const N = B * T;
  const router = createRouter(name, {
    inputDim: d,
    numExperts: E,
    topK: Math.min(k, E),
    capacityFactor: name === "expert-choice" && cf === 0 ? 1 : cf,
    compact,
    pSinkhorn: 0.5,
  }, { seed });
  const x = tf.randomNormal([N, d], 0, 1, "float32", seed + 1) as Tensor2D;
  const attention = tf.tidy(() =>
    tf.softmax(tf.randomNormal([B, T, T], 0, 1, "float32", seed + 2))
  ) as tf.Tensor3D;
  const input = { x, sequenceLength: T, attention };
  const dec = await route(router, input, { training, noiseSeed: seed, step: seed });
  const out = router.forward(input, dec);
  const { plan } = dec;
  // The layer's dispatch, as MoeLayer builds it from a plan: tokens into
  // [A·slots, d] buffers, expert e computes (e + 1)·x + e, results back
  // to (token, choice) rows, weighted by the gates.
  const dispatch = rowRoute(plan.tokenOfSlot, plan.slotOfChoice, plan.k);
  const combine = rowRoute(plan.slotOfChoice, plan.choiceOfSlot, 1);
  const expertOfRow = Float32Array.from(
    { length: plan.active.length * plan.slots },
    (_, r) => plan.active[Math.floor(r / plan.slots)],
  );
  const y = tf.tidy(() => {
    const e = tf.tensor2d(expertOfRow, [expertOfRow.length, 1]);
    const buf = routeRows(x, dispatch); // [A·slots, d]
    const res = tf.add(tf.mul(buf, tf.add(e, 1)), e) as Tensor2D;
    const perChoice = routeRows(res, combine).reshape([N, plan.k, d]); // [N, k, d]
    return tf.sum(tf.mul(perChoice, out.gates.expandDims(2)), 1); // [N, d]
  });
  const got = await y.data();
  const W = combineMatrix(dec, await out.gates.data());
  const xs = await x.data();
  const want = new Float64Array(N * d);
  for (let n = 0; n < N; n++) {
    for (let e = 0; e < E; e++) {
      for (let i = 0; i < d; i++) {
        want[n * d + i] += W[n * E + e] * ((e + 1) * xs[n * d + i] + e);
      }
    }
  }
  assertAllClose(got, want, { atol: 1e-4, rtol: 1e-4, msg: name });
  tf.dispose([y, out.logits, out.z, out.gates, out.auxLoss, x, attention]);
  tf.dispose([dispatch.forward, dispatch.backward, combine.forward, combine.backward]);
  disposeDecision(dec);
  router.dispose();
}

const backends = await availableBackends();

for (const backend of backends.filter((b) => b !== "webgpu")) {
  Deno.test(`[${backend}] law: z-loss equals its formula; its gradient matches finite differences`, async () => {
    await useBackend(backend);
    const before = tf.memory().numTensors;
    const grad = tf.grad((l: tf.Tensor) => zLoss(l as Tensor2D));
    await fc.assert(
      fc.asyncProperty(matrix(6, 5, -5, 5), async ({ N, E, v }) => {
        const L = tf.tensor2d(v, [N, E]);
        const ref = zLossRef(v, N, E);
        const z = zLoss(L);
        const value = (await z.data())[0];
        assertClose(value, ref.value, { atol: 1e-5, rtol: 1e-5, msg: "value" });
        const g = grad(L);
        const got = await g.data();
        assertAllClose(got, ref.grad, { atol: 1e-5, rtol: 1e-4, msg: "analytic gradient" });
        // Central differences of the float64 formula, h = 1e-5.
        const h = 1e-5;
        const fd = v.map((_, i) => {
          const up = v.slice();
          const down = v.slice();
          up[i] += h;
          down[i] -= h;
          return (zLossRef(up, N, E).value - zLossRef(down, N, E).value) / (2 * h);
        });
        assertAllClose(got, fd, { atol: 1e-4, rtol: 1e-4, msg: "finite differences" });
        tf.dispose([L, g, z]);
      }),
      { numRuns: 40 },
    );
    equal(tf.memory().numTensors, before, "no tensor leaks");
  });

  Deno.test(`[${backend}] law: unrolled Sinkhorn on the tape matches the CPU plan`, async () => {
    await useBackend(backend);
    await fc.assert(
      fc.asyncProperty(matrix(8, 5, -3, 3), async ({ N, E, v }) => {
        const T = 8;
        const { pi } = sinkhornPlan(v, N, E, { tol: 0, maxIters: T });
        const logPi = sinkhornLogTensor(tf.tensor2d(v, [N, E]), 1, T);
        const got = await tf.exp(logPi).data();
        assertAllClose(got, pi, { atol: 1e-6, rtol: 1e-3 });
        tf.dispose(logPi);
      }),
      { numRuns: 30 },
    );
    tf.disposeVariables();
  });

  Deno.test(`[${backend}] law: every router gives finite logits, z, gates and losses of the right shapes`, async () => {
    await useBackend(backend);
    const before = tf.memory().numTensors;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...ROUTER_NAMES),
        fc.record({
          B: fc.integer({ min: 1, max: 3 }),
          T: fc.integer({ min: 1, max: 5 }),
          d: fc.integer({ min: 1, max: 6 }),
          E: fc.integer({ min: 1, max: 6 }),
          kFrac: fc.double({ min: 0, max: 1, noNaN: true }),
          cf: fc.constantFrom(0, 0.5, 1, 2),
          scale: fc.constantFrom(0.1, 1, 30),
          training: fc.boolean(),
          seed: fc.integer({ min: 0, max: 1000 }),
        }),
        finiteOutputsCase,
      ),
      { numRuns: 60 },
    );
    equal(tf.memory().numTensors, before, "no tensor leaks");
  });

  Deno.test(`[${backend}] law: dispatch and combine along a router's plan equal a naive per-token loop`, async () => {
    await useBackend(backend);
    const before = tf.memory().numTensors;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...ROUTER_NAMES),
        fc.record({
          B: fc.integer({ min: 1, max: 3 }),
          T: fc.integer({ min: 1, max: 5 }),
          d: fc.integer({ min: 1, max: 4 }),
          E: fc.integer({ min: 1, max: 6 }),
          k: fc.integer({ min: 1, max: 3 }),
          cf: fc.constantFrom(0, 0.5, 1),
          compact: fc.boolean(),
          training: fc.boolean(),
          seed: fc.integer({ min: 0, max: 1000 }),
        }),
        dispatchCase,
      ),
      { numRuns: 50 },
    );
    equal(tf.memory().numTensors, before, "no tensor leaks");
  });
}

if (backends.includes("webgpu")) {
  Deno.test("[webgpu] every router: finite outputs, and dispatch equals a naive loop (one case each)", async () => {
    await useBackend("webgpu");
    const before = tf.memory().numTensors;
    for (const name of ROUTER_NAMES) {
      const common = { B: 2, T: 3, d: 4, E: 4, cf: 1, training: true, seed: 5 };
      await finiteOutputsCase(name, { ...common, kFrac: 0.3, scale: 1 });
      await dispatchCase(name, { ...common, k: 2, compact: false });
    }
    equal(tf.memory().numTensors, before, "no tensor leaks");
  });
}

Deno.test("[cpu] law: each router's gradients match finite differences", async () => {
  await useBackend("cpu");
  const before = tf.memory().numTensors;
  const names: [RouterName, Record<string, unknown>][] = [
    ["topk", { routingOrder: "softmax-topk", routerBias: true }],
    ["topk", { routingOrder: "topk-softmax" }],
    ["expert-choice", {}],
    ["sinkhorn", {}],
    ["ssr", { pSinkhorn: 1 }],
    ["xmoe", { temperature: "learnable", normalizeTokens: true, temperatureValue: 0.5 }],
    ["xmoe", { temperature: "learnable-log" }],
    ["similarity", { similarityInput: "learnable" }],
    ["attention", { lambda: 0.7 }],
  ];
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...names),
      fc.integer({ min: 1, max: 1000 }),
      fc.boolean(),
      async ([name, options], seed, training) => {
        const [B, T, d, E, k] = [2, 3, 4, 3, name === "sinkhorn" ? 1 : 2];
        const N = B * T;
        const router = createRouter(name, {
          inputDim: d,
          numExperts: E,
          topK: k,
          capacityFactor: 1,
          noiseStd: 0,
          renormExpertsTo: 0,
          ...options,
        }, { seed });
        const x = tf.randomNormal([N, d], 0, 1, "float32", seed) as Tensor2D;
        const attention = tf.tidy(() =>
          tf.softmax(tf.randomNormal([B, T, T], 0, 1, "float32", seed + 1))
        ) as tf.Tensor3D;
        const input = { x, sequenceLength: T, attention };
        const dec = await route(router, input, { training, step: 0 });
        const wz = tf.randomNormal([N, E], 0, 1, "float32", seed + 2);
        const wg = tf.randomNormal([N, dec.plan.k], 0, 1, "float32", seed + 3);
        // A scalar that touches every output: Σ wg·gates + Σ wz·z + aux + z-loss.
        const f = () =>
          tf.tidy(() => {
            const o = router.forward(input, dec);
            return tf.addN([
              tf.sum(tf.mul(wg, o.gates)),
              tf.sum(tf.mul(wz, o.z)),
              o.auxLoss,
              tf.mul(0.1, zLoss(o.logits)),
            ]) as tf.Scalar;
          });
        const vars = Object.values(router.params);
        const { grads, value } = tf.variableGrads(f, vars);
        value.dispose();
        const h = 1e-2;
        for (const v of vars) {
          const g = await grads[v.name].data();
          const base = await v.data();
          for (let i = 0; i < Math.min(base.length, 5); i++) {
            const at = (delta: number) => {
              const t = base.slice();
              t[i] += delta;
              const nt = tf.tensor(t, v.shape);
              v.assign(nt);
              nt.dispose();
              const s = f();
              const r = s.dataSync()[0];
              s.dispose();
              return r;
            };
            const fd = (at(h) - at(-h)) / (2 * h);
            const orig = tf.tensor(base, v.shape);
            v.assign(orig);
            orig.dispose();
            assertClose(g[i], fd, { atol: 3e-3, rtol: 3e-2, msg: `${name} ${v.name}[${i}]` });
          }
        }
        tf.dispose([...Object.values(grads), x, attention, wz, wg]);
        disposeDecision(dec);
        router.dispose();
      },
    ),
    { numRuns: 25 },
  );
  equal(tf.memory().numTensors, before, "no tensor leaks");
});

Deno.test("[cpu] law: with causal settings and no capacity limit, no router but expert choice looks ahead at evaluation", async () => {
  await useBackend("cpu");
  const before = tf.memory().numTensors;
  const causalOnes = ROUTER_NAMES.filter((n) => n !== "expert-choice");
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...causalOnes),
      fc.integer({ min: 1, max: 3 }),
      fc.integer({ min: 2, max: 5 }),
      fc.integer({ min: 0, max: 1000 }),
      async (name, B, T, seed) => {
        const [d, E, N] = [3, 4, B * T];
        const router = createRouter(name, {
          inputDim: d,
          numExperts: E,
          topK: 2,
          capacityFactor: 0,
          causal: true,
        }, { seed });
        ok(!router.nonCausal);
        const x = tf.randomNormal([N, d], 0, 1, "float32", seed + 1) as Tensor2D;
        // x2: the last token of every sequence replaced.
        const last = tf.tidy(() =>
          tf.tile(tf.concat([tf.zeros([T - 1, 1]), tf.ones([1, 1])]), [B, 1])
        ); // [N, 1]
        const x2 = tf.tidy(() =>
          tf.add(x, tf.mul(last, tf.randomNormal([N, d], 0, 3, "float32", seed + 2)))
        ) as Tensor2D;
        // A causal attention matrix: softmax over j <= i.
        const causalAttention = (v: Tensor2D) =>
          tf.tidy(() => {
            const u = v.reshape([B, T, d]) as tf.Tensor3D;
            const mask = tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([T, T]), -1, 0)), -1e9);
            return tf.softmax(tf.add(tf.matMul(u, u, false, true), mask)) as tf.Tensor3D;
          });
        const views = [];
        for (const v of [x, x2]) {
          const attention = causalAttention(v);
          const input = { x: v, sequenceLength: T, attention };
          const dec = await route(router, input, { training: false });
          const out = router.forward(input, dec);
          views.push({ z: await out.z.data(), expert: Array.from(dec.plan.expert) });
          tf.dispose([out.logits, out.z, out.gates, out.auxLoss, attention]);
          disposeDecision(dec);
        }
        for (let b = 0; b < B; b++) {
          for (let t = 0; t < T - 1; t++) {
            const n = b * T + t;
            assertAllClose(
              views[0].z.slice(n * E, n * E + E),
              views[1].z.slice(n * E, n * E + E),
              { atol: 1e-6, rtol: 1e-5, msg: `${name} z of token ${n}` },
            );
            equal(
              views[0].expert.slice(2 * n, 2 * n + 2).join(),
              views[1].expert.slice(2 * n, 2 * n + 2).join(),
            );
          }
        }
        tf.dispose([x, x2, last]);
        router.dispose();
      },
    ),
    { numRuns: 40 },
  );
  equal(tf.memory().numTensors, before, "no tensor leaks");
});

Deno.test("[cpu] every router routes synchronously inside a gradient tape (the LM's sync path)", async () => {
  await useBackend("cpu");
  const before = tf.memory().numTensors;
  for (const name of ROUTER_NAMES) {
    const [B, T, d, E] = [2, 3, 4, 3];
    const router = createRouter(name, { inputDim: d, numExperts: E, topK: 1, capacityFactor: 1 }, {
      seed: 3,
    });
    const x = tf.randomNormal([B * T, d], 0, 1, "float32", 4) as Tensor2D;
    const attention = tf.tidy(() =>
      tf.softmax(tf.randomNormal([B, T, T], 0, 1, "float32", 5))
    ) as tf.Tensor3D;
    const input = { x, sequenceLength: T, attention };
    let dec: RouterDecision | null = null;
    const { value, grads } = tf.variableGrads(() => {
      dec = routeSync(router, input, { training: true, step: 1, noiseSeed: 2 });
      const o = router.forward(input, dec);
      return tf.addN([tf.sum(o.gates), o.auxLoss, zLoss(o.logits)]) as tf.Scalar;
    }, Object.values(router.params));
    for (const g of Object.values(grads)) ok((await g.data()).every(Number.isFinite), name);
    tf.dispose([value, ...Object.values(grads), x, attention]);
    disposeDecision(dec!);
    router.dispose();
  }
  equal(tf.memory().numTensors, before, "no tensor leaks");
});
