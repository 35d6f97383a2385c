import { tf } from "../src/deps.ts";
import { useBackend } from "../src/backend.ts";
import { disposeRouted, type MoeConfig, MoeLayer } from "../src/moe/moe_layer.ts";
import { expertCapacity, planRouting } from "../src/moe/routing.ts";
import { setFusedExperts } from "../src/moe/expert_ffn.ts";
import { smallMatmul, useSmallMatmul } from "../src/ops/small_matmul_simd.ts";
import { wasmBackendMemory } from "../src/ops/wasm_bytes.ts";
import { assertAllClose, deepEqual, equal, ok, throws } from "./asserts.ts";
import { availableBackends } from "./backends.ts";

const base: MoeConfig = {
  inputDim: 6,
  hiddenDim: 5,
  numExperts: 9,
  topK: 2,
  routingOrder: "softmax-topk",
  routerBias: true,
  activation: "gelu",
  capacityFactor: 0,
  loadBalanceWeight: 0.01,
};

function gelu(v: number): number {
  return 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
}

/** The layer's output computed token by token in plain TypeScript. */
async function naiveForward(layer: MoeLayer, x: number[][], order: MoeConfig["routingOrder"]) {
  const p = Object.fromEntries(
    await Promise.all(
      Object.entries(layer.params).map(async ([k, v]) => [k, await v.data()] as const),
    ),
  );
  const { inputDim: d, hiddenDim: f, outputDim: o, numExperts: E, topK: k } = layer.config;
  return x.map((tok) => {
    const logits = Array.from({ length: E }, (_, e) => {
      let s = p["moe.router.b"]?.[e] ?? 0;
      for (let i = 0; i < d; i++) s += tok[i] * p["moe.router.w"][i * E + e];
      return s;
    });
    const max = Math.max(...logits);
    const ex = logits.map((l) => Math.exp(l - max));
    const z = ex.map((v) => v / ex.reduce((a, b) => a + b));
    const top = [...z.keys()].sort((a, b) => z[b] - z[a]).slice(0, k);
    let gates = top.map((e) => z[e]);
    if (order === "topk-softmax") {
      const m = Math.max(...top.map((e) => logits[e]));
      const w = top.map((e) => Math.exp(logits[e] - m));
      gates = w.map((v) => v / w.reduce((a, b) => a + b));
    }
    const y = new Array(o).fill(0);
    top.forEach((e, j) => {
      const h = Array.from({ length: f }, (_, u) => {
        let s = p[`moe.experts.b1.${e}`][u];
        for (let i = 0; i < d; i++) s += tok[i] * p[`moe.experts.w1.${e}`][i * f + u];
        return gelu(s);
      });
      for (let v = 0; v < o; v++) {
        let s = p[`moe.experts.b2.${e}`][v];
        for (let u = 0; u < f; u++) s += h[u] * p[`moe.experts.w2.${e}`][u * o + v];
        y[v] += gates[j] * s;
      }
    });
    return y;
  });
}

for (const backend of await availableBackends()) {
  for (
    const [order, compactExperts, expertCompute] of [
      ["softmax-topk", false, "looped"],
      ["topk-softmax", false, "looped"],
      ["softmax-topk", false, "fused"],
      ["topk-softmax", false, "fused"],
      ["softmax-topk", false, "batched"],
      ["topk-softmax", true, "batched"],
    ] as const
  ) {
    if (expertCompute === "fused" && backend === "webgpu") continue; // wasm and cpu only
    const what = `${order}, ${expertCompute}${compactExperts ? ", compact" : ""}`;
    Deno.test(`MoeLayer (${backend}, ${what}) output equals a naive per-token loop`, async () => {
      await useBackend(backend);
      const layer = new MoeLayer({ ...base, routingOrder: order, compactExperts, expertCompute }, {
        seed: 3,
      });
      const xs = Array.from(
        { length: 7 },
        (_, n) => Array.from({ length: 6 }, (_, i) => Math.sin(n * 6 + i)),
      );
      const x = tf.tensor2d(xs);
      const logits = layer.logits(x);
      const routed = await layer.route({ x }, { training: false });
      const out = layer.apply({ x }, routed, null);
      const expected = await naiveForward(layer, xs, order);
      assertAllClose(await out.y.data(), expected.flat(), { atol: 1e-4, rtol: 1e-3 });
      equal(routed.plan.dropped, 0);
      tf.dispose([x, logits, out.y, out.z, out.auxLoss, out.regularizer, out.penalty]);
      disposeRouted(routed);
      layer.dispose();
    });
  }

  Deno.test(`MoeLayer (${backend}) gradients reach the router and every used expert`, async () => {
    await useBackend(backend);
    const layer = new MoeLayer({ ...base, compactExperts: backend === "wasm" }, { seed: 5 });
    const x = tf.randomNormal([4, 6], 0, 1, "float32", 7) as tf.Tensor2D; // 8 choices, 9 experts
    const routed = await layer.route({ x }, { training: true, noiseSeed: 11 });
    const { value, grads } = tf.variableGrads(() => {
      const out = layer.apply({ x }, routed, {
        lambda: 0.1,
        sigma: 1.5,
        filterSize: 3,
        filter: "gaussian",
      });
      return tf.add(tf.sum(tf.square(out.y)), out.penalty) as tf.Scalar;
    }, Object.values(layer.params));
    const gradNorm = async (name: string) => {
      const g = grads[layer.params[name].name];
      if (!g) return 0; // not used at all in the forward pass
      return Math.sqrt((await g.data() as Float32Array).reduce((s, a) => s + a * a, 0));
    };
    for (const name of ["moe.router.w", "moe.router.b"]) {
      const n = await gradNorm(name);
      ok(Number.isFinite(n) && n > 0, `gradient of ${name} is ${n}`);
    }
    // Every expert's weights get a gradient exactly when it processed a token.
    for (let e = 0; e < 9; e++) {
      for (const p of ["w1", "b1", "w2", "b2"]) {
        const n = await gradNorm(`moe.experts.${p}.${e}`);
        ok(Number.isFinite(n), `expert ${e} ${p}: gradient ${n}`);
        equal(
          n > 0,
          routed.plan.load[e] > 0,
          `expert ${e} ${p}: load ${routed.plan.load[e]}, |grad| ${n}`,
        );
      }
    }
    ok(routed.plan.load.some((l) => l === 0), "the check is not vacuous: some expert is idle");
    tf.dispose([value, x, ...Object.values(grads)]);
    disposeRouted(routed);
    layer.dispose();
  });

  Deno.test(`MoeLayer (${backend}) keeps tf.memory().numTensors flat over 50 training steps`, async () => {
    await useBackend(backend);
    const layer = new MoeLayer({ ...base, capacityFactor: 1 }, { seed: 5 });
    const opt = tf.train.adam(1e-2);
    const x = tf.randomNormal([16, 6], 0, 1, "float32", 9) as tf.Tensor2D;
    const step = async (i: number) => {
      const routed = await layer.route({ x }, { training: true, noiseSeed: i });
      const loss = opt.minimize(() => {
        const out = layer.apply({ x }, routed, {
          lambda: 0.1,
          sigma: 2,
          filterSize: 3,
          filter: "average",
        });
        return tf.add(tf.mean(tf.square(out.y)), out.penalty) as tf.Scalar;
      }, true);
      loss?.dispose();
      disposeRouted(routed);
    };
    await step(0);
    await step(1);
    const before = tf.memory().numTensors;
    for (let i = 2; i < 52; i++) await step(i);
    equal(tf.memory().numTensors, before);
    opt.dispose();
    x.dispose();
    layer.dispose();
  });
}

Deno.test("expertCapacity() is k·floor(C_f·ceil(N/E))", () => {
  equal(expertCapacity(200, 64, 1, 4), 16); // ceil(3.125) = 4, 4·4
  equal(expertCapacity(200, 400, 1, 4), 4); // ceil(0.5) = 1
  equal(expertCapacity(10, 4, 2, 1.25), 6); // 2·floor(1.25·3) = 2·3
  equal(expertCapacity(10, 4, 1, 0), 10); // no limit
  throws(() => expertCapacity(10, 4, 5, 1), /k \(top-k\) = 5/);
});

Deno.test("planRouting() fills slots by batch priority and drops the overflow", () => {
  // 4 tokens, 2 experts, top-1, capacity 1·floor(1·ceil(4/2)) = 2.
  // Best scores: t0 .6 (e0), t1 .9 (e0), t2 .7 (e0), t3 .8 (e1).
  const scores = [.6, .4, .9, .1, .7, .3, .2, .8];
  const plan = planRouting(scores, 4, 2, { k: 1, capacityFactor: 1, slotMultiple: 1 });
  deepEqual([...plan.expert], [0, 0, 0, 1]);
  equal(plan.capacity, 2);
  // Priority order t1 (.9), t3 (.8), t2 (.7), t0 (.6): expert 0 takes t1, t2; t0 is dropped.
  equal(plan.dropped, 1);
  deepEqual([...plan.load], [2, 1]);
  deepEqual([...plan.demand], [3, 1]);
  equal(plan.slots, 2);
  deepEqual([...plan.tokenOfSlot], [1, 2, 3, 4]); // slot (e1, 1) empty -> N = 4
  deepEqual([...plan.slotOfChoice], [4, 0, 1, 2]); // t0 dropped -> E·slots = 4
});

Deno.test("planRouting() places all first choices before any second choice", () => {
  // 3 tokens, 3 experts, top-2, capacity factor 1/3: C = 2·floor(1/3·1) = 0 -> clamped to 1.
  // t0 prefers e0 then e1; t1 prefers e1 then e0; t2 prefers e1 then e2.
  const scores = [.5, .3, .2, .35, .6, .05, .1, .45, .45];
  const plan = planRouting(scores, 3, 3, { k: 2, capacityFactor: 1 / 3, slotMultiple: 1 });
  equal(plan.capacity, 1);
  // First choices by priority t1 (.6), t0 (.5), t2 (.45): e1 <- t1, e0 <- t0, t2's e1 is full.
  // Second choices: t1 -> e0 full, t0 -> e1 full, t2 -> e2 free (tie .45/.45 broken by index: e1 first).
  deepEqual([...plan.expert], [0, 1, 1, 0, 1, 2]);
  deepEqual([...plan.load], [1, 1, 1]);
  equal(plan.dropped, 3);
  deepEqual([...plan.tokenOfSlot], [0, 1, 2]);
});

Deno.test("planRouting() with compact gives buffers only to experts that received a token", () => {
  // 3 tokens, 4 experts, top-1: experts 1 and 3 get tokens; 0 and 2 get none.
  const scores = [0, .9, 0, .1, 0, .2, 0, .8, 0, .7, 0, .3];
  const plan = planRouting(scores, 3, 4, { k: 1, capacityFactor: 0, compact: true });
  deepEqual([...plan.active], [1, 3]);
  deepEqual([...plan.bufferOf], [-1, 0, -1, 1]);
  equal(plan.slots, 2); // expert 1 holds tokens 0 and 2
  // Priority t0 (.9), t1 (.8), t2 (.7): buffer 0 = expert 1 <- t0, t2; buffer 1 = expert 3 <- t1.
  deepEqual([...plan.tokenOfSlot], [0, 2, 1, 3]);
  deepEqual([...plan.slotOfChoice], [0, 2, 1]);
});

Deno.test("MoeLayer refuses a bad config with a message naming the field", () => {
  throws(() => new MoeLayer({ ...base, topK: 10 }), /topK = 10 is invalid/);
  throws(
    () => new MoeLayer({ ...base, routingOrder: "bogus" as "softmax-topk" }),
    /routingOrder = "bogus"/,
  );
  throws(() => new MoeLayer({ ...base, capacityFactor: -1 }), /capacityFactor = -1/);
});

Deno.test("MoeLayer with seed 0 is reproducible (tfjs treats a seed of 0 as no seed)", async () => {
  await useBackend("cpu");
  const a = new MoeLayer(base, { seed: 0 });
  const b = new MoeLayer(base, { seed: 0 });
  for (const name of Object.keys(a.params)) {
    deepEqual(await a.params[name].data(), await b.params[name].data(), name);
  }
  a.dispose();
  b.dispose();
});

for (const backend of await availableBackends()) {
  Deno.test(
    `MoeLayer (${backend}) load-balancing loss: importance on the clean softmax, load on the noisy logits (V-MoE)`,
    async () => {
      await useBackend(backend);
      // E = 4, N = 4, k = 1, noise std 0.25, router W = I so that the logits are x.
      const layer = new MoeLayer({
        inputDim: 4,
        hiddenDim: 2,
        numExperts: 4,
        topK: 1,
        routingOrder: "softmax-topk",
        routerBias: false,
        activation: "relu",
        noiseStd: 0.25,
        capacityFactor: 0,
        loadBalanceWeight: 0.01,
      }, { seed: 2 });
      layer.params["moe.router.w"].assign(tf.eye(4));
      const L = [[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0], [1, 0, 0, 0]];
      const noiseRows = [[0.3, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]];
      const x = tf.tensor2d(L);
      const noise = tf.tensor2d(noiseRows);
      const logits = layer.logits(x);
      const routed = await layer.route({ x }, { training: true, noise });
      deepEqual(Array.from(routed.plan.expert), [0, 1, 2, 0]);
      const out = layer.apply({ x }, routed, null);
      const got = (await out.auxLoss.data())[0];

      // Float64 reference, V-MoE (vmoe/nn/routing.py):
      //   importance_e = Σ_n softmax(L_n)_e  (clean logits),  L_imp = cv²(importance)
      //   P_ne = 1 − Φ((η_n,(k) − L_ne) / σ), η = L + noise, η_n,(k) the k-th largest of row n
      //   L_load = cv²(Σ_n P_ne),  L_aux = ½ (L_imp + L_load),  cv² = var / mean² (population var)
      const cv2 = (a: number[]) => {
        const mean = a.reduce((s, v) => s + v, 0) / a.length;
        return a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length / mean ** 2;
      };
      const softmax = (r: number[]) => {
        const ex = r.map(Math.exp);
        const s = ex.reduce((a, b) => a + b);
        return ex.map((v) => v / s);
      };
      // erf by its Maclaurin series for |v| <= 2, by the continued fraction of
      // erfc beyond (the series cancels catastrophically for large |v|).
      const erf = (v: number): number => {
        if (v < 0) return -erf(-v);
        if (v > 2) {
          let K = v;
          for (let n = 80; n >= 1; n--) K = v + (n / 2) / K;
          return 1 - Math.exp(-v * v) / (Math.sqrt(Math.PI) * K);
        }
        let sum = 0, term = v;
        for (let n = 0; n < 60; n++) {
          sum += term / (2 * n + 1);
          term *= -v * v / (n + 1);
        }
        return 2 / Math.sqrt(Math.PI) * sum;
      };
      const phi = (v: number) => 0.5 * (1 + erf(v / Math.SQRT2));
      const imp = [0, 1, 2, 3].map((e) => L.reduce((s, r) => s + softmax(r)[e], 0));
      const load = [0, 1, 2, 3].map((e) =>
        L.reduce((s, r, n) => {
          const eta = r.map((v, i) => v + noiseRows[n][i]);
          const kth = Math.max(...eta);
          return s + 1 - phi((kth - r[e]) / 0.25);
        }, 0)
      );
      const expected = 0.5 * (cv2(imp) + cv2(load));
      assertAllClose([expected], [0.2288752], { atol: 5e-7 }); // the value V-MoE gives
      // The old code took the importance from softmax(L + noise): 0.2366979.
      assertAllClose([got], [expected], { atol: 2e-6 });
      tf.dispose([x, noise, logits, out.y, out.z, out.auxLoss, out.regularizer, out.penalty]);
      disposeRouted(routed);
      layer.dispose();
    },
  );
}

for (const backend of (await availableBackends()).filter((b) => b !== "webgpu")) {
  for (const activation of ["gelu", "relu", "tanh"] as const) {
    Deno.test(
      `MoeLayer (${backend}, ${activation}) fused experts: same output, loss and gradients as looped tfjs ops`,
      async () => {
        await useBackend(backend);
        // Same seed, same batch, same noise: "fused" (one kernel for all experts,
        // hand-written backward) against "looped" (tfjs ops and tfjs autodiff).
        const run = async (expertCompute: "fused" | "looped") => {
          const layer = new MoeLayer({ ...base, activation, expertCompute, capacityFactor: 1 }, {
            seed: 5,
          });
          const x = tf.randomNormal([11, 6], 0, 1, "float32", 7) as tf.Tensor2D;
          const routed = await layer.route({ x }, { training: true, noiseSeed: 3 });
          const before = tf.memory().numTensors;
          const { value, grads } = tf.variableGrads(() => {
            const out = layer.apply({ x }, routed, null);
            // A loss that weights every output differently (so no symmetry hides a wrong row).
            const w = tf.range(1, out.y.size + 1).reshape(out.y.shape).div(out.y.size);
            return tf.add(tf.sum(tf.mul(tf.square(out.y), w)), out.penalty) as tf.Scalar;
          }, Object.values(layer.params));
          const g: Record<string, Float32Array> = {};
          for (const [name, v] of Object.entries(layer.params)) {
            if (grads[v.name]) g[name] = await grads[v.name].data() as Float32Array;
          }
          const loss = (await value.data())[0];
          tf.dispose([value, ...Object.values(grads)]);
          const leaked = tf.memory().numTensors - before;
          const dropped = routed.plan.dropped;
          disposeRouted(routed);
          layer.dispose();
          x.dispose();
          return { loss, g, leaked, dropped };
        };
        const fused = await run("fused");
        const looped = await run("looped");
        ok(fused.dropped > 0, "capacity 1 drops some choices (the zero rows are exercised)");
        equal(fused.leaked, 0);
        assertAllClose([fused.loss], [looped.loss], { atol: 1e-5, rtol: 1e-5 });
        deepEqual(Object.keys(fused.g).sort(), Object.keys(looped.g).sort());
        for (const name of Object.keys(looped.g)) {
          assertAllClose(fused.g[name], looped.g[name], { atol: 1e-5, rtol: 1e-4 });
        }
      },
    );
  }
}

Deno.test("MoeLayer (wasm) fused experts with the SIMD products (few rows, widths multiples of 4): same output, loss and gradients as looped tfjs ops and as tfjs-wasm's matmul", async () => {
  await useBackend("wasm");
  ok(smallMatmul(wasmBackendMemory(tf.backend())), "the SIMD products are available on wasm here");
  // d = d_out = 8 and d_ff = 12: multiples of 4, so experts with at most 8 rows take the SIMD path.
  const run = async (expertCompute: "fused" | "looped", simd: boolean) => {
    const before = useSmallMatmul(simd);
    try {
      const layer = new MoeLayer(
        { ...base, inputDim: 8, hiddenDim: 12, expertCompute, capacityFactor: 1 },
        { seed: 5 },
      );
      const x = tf.randomNormal([11, 8], 0, 1, "float32", 7) as tf.Tensor2D;
      const routed = await layer.route({ x }, { training: true, noiseSeed: 3 });
      const { value, grads } = tf.variableGrads(() => {
        const out = layer.apply({ x }, routed, null);
        const w = tf.range(1, out.y.size + 1).reshape(out.y.shape).div(out.y.size);
        return tf.add(tf.sum(tf.mul(tf.square(out.y), w)), out.penalty) as tf.Scalar;
      }, Object.values(layer.params));
      const g: Record<string, Float32Array> = {};
      for (const [name, v] of Object.entries(layer.params)) {
        if (grads[v.name]) g[name] = await grads[v.name].data() as Float32Array;
      }
      const loss = (await value.data())[0];
      const maxLoad = Math.max(...MoeLayer.stats(routed).load);
      tf.dispose([value, ...Object.values(grads), x]);
      disposeRouted(routed);
      layer.dispose();
      return { loss, g, maxLoad };
    } finally {
      useSmallMatmul(before);
    }
  };
  const simd = await run("fused", true);
  ok(simd.maxLoad <= 8 && simd.maxLoad > 1, `every expert has 2..8 rows (largest ${simd.maxLoad})`);
  for (const other of [await run("looped", true), await run("fused", false)]) {
    assertAllClose([simd.loss], [other.loss], { atol: 1e-5, rtol: 1e-5 });
    deepEqual(Object.keys(simd.g).sort(), Object.keys(other.g).sort());
    for (const name of Object.keys(other.g)) {
      assertAllClose(simd.g[name], other.g[name], { atol: 1e-5, rtol: 1e-4, msg: name });
    }
  }
});

for (const backend of (await availableBackends()).filter((b) => b !== "webgpu")) {
  for (const [topK, training] of [[1, true], [2, true], [2, false]] as const) {
    Deno.test(
      `MoeLayer (${backend}, k=${topK}, ${
        training ? "noise" : "no noise"
      }) host load-balancing loss: same value and router gradient as tfjs ops`,
      async () => {
        await useBackend(backend);
        // The same step with the loss on the host (default on wasm/cpu) and as
        // tfjs ops (setFusedExperts(false)); only the loss reaches the router here.
        const run = async (host: boolean) => {
          setFusedExperts(host);
          const layer = new MoeLayer({ ...base, topK, noiseStd: 0.3 }, { seed: 9 });
          const x = tf.randomNormal([13, 6], 0, 1, "float32", 4) as tf.Tensor2D;
          const routed = await layer.route({ x }, { training, noiseSeed: 8 });
          const w = layer.params["moe.router.w"];
          const { value, grads } = tf.variableGrads(() => {
            const out = layer.apply({ x }, routed, null);
            return out.auxLoss as tf.Scalar;
          }, [w]);
          const result = { loss: (await value.data())[0], g: await grads[w.name].data() };
          tf.dispose([value, grads[w.name], x]);
          disposeRouted(routed);
          layer.dispose();
          setFusedExperts(true);
          return result;
        };
        const host = await run(true);
        const ops = await run(false);
        ok(host.loss > 0);
        assertAllClose([host.loss], [ops.loss], { atol: 1e-6, rtol: 1e-5 });
        assertAllClose(host.g, ops.g, { atol: 1e-6, rtol: 1e-4 });
      },
    );
  }
}
