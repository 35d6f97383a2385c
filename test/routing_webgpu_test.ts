import fc from "fast-check";
import type { tf as TF } from "../src/deps.ts";
import { deepEqual, equal, throws } from "./asserts.ts";
import { availableBackends } from "./backends.ts";
import { type Tensor, type Tensor2D, tf, useBackend } from "../mod.ts";
import { type CapacityRule, planRouting } from "../src/moe/routing.ts";
import {
  disposeDevicePlan,
  planRoutingWebGPU,
  routingCountsWebGPU,
} from "../src/moe/routing_webgpu.ts";
import { routeRows } from "../src/moe/dispatch.ts";
import {
  disposeRouted,
  MoeLayer,
  type RoutedBatch,
  type RoutingOrder,
} from "../src/moe/moe_layer.ts";
import {
  deviceRoutedBatch,
  deviceRoutes,
  disposeDeviceRouted,
  routingGates,
} from "../src/moe/routing_webgpu_batch.ts";
import { tfSeed } from "../src/rng.ts";

const backends = await availableBackends();

/** The CPU planner's batch-priority order (its sort, reproduced): top score descending, then token index. */
function cpuPriority(scores: Float32Array, N: number, E: number, expert: Int32Array, k: number) {
  const best = Array.from({ length: N }, (_, n) => scores[n * E + expert[n * k]]);
  return Int32Array.from(
    Array.from({ length: N }, (_, n) => n).sort((a, b) => best[b] - best[a] || a - b),
  );
}

/**
 * Scores that tie often: values from a small grid (ties within and across tokens), ±0,
 * subnormals (which a GPU may flush to zero) and arbitrary finite float32s.
 */
function tiedScores(length: number) {
  return fc.array(
    fc.oneof(
      { weight: 4, arbitrary: fc.integer({ min: -3, max: 3 }).map((v) => v / 2) },
      { weight: 1, arbitrary: fc.constantFrom(0, -0, 1e-45, -1e-45, 2e-40, -2e-40) },
      { weight: 3, arbitrary: fc.float({ noNaN: true, noDefaultInfinity: true }) },
    ),
    { minLength: length, maxLength: length },
  ).map((a) => Float32Array.from(a));
}

/**
 * (N, E, k, C_f, rule, scores) with N and E in the given ranges, k <= min(E, 4), every capacity
 * regime (none, tiny, ample) and both capacity rules.
 */
function cases(maxN: number, maxE: number, minN = 1) {
  return fc.record({
    N: fc.integer({ min: minN, max: maxN }),
    E: fc.integer({ min: 1, max: maxE }),
    kFrac: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
    capacityFactor: fc.oneof(
      fc.constantFrom(0, Infinity, 0.5, 1, 1.25, 2),
      fc.double({ min: 0.01, max: 4, noNaN: true }),
    ),
    rule: fc.constantFrom<CapacityRule>("tutel", "vmoe"),
  }).chain((c) => {
    const k = 1 + Math.floor(c.kFrac * Math.min(c.E, 4));
    return tiedScores(c.N * c.E).map((scores) => ({ ...c, k, scores }));
  });
}

/** The law of the property tests: the device plan of a case equals the CPU plan, field by field. */
async function samePlan(
  { N, E, k, capacityFactor, rule, scores }: {
    N: number;
    E: number;
    k: number;
    capacityFactor: number;
    rule: CapacityRule;
    scores: Float32Array;
  },
): Promise<void> {
  const ref = planRouting(scores, N, E, { k, capacityFactor, capacityRule: rule });
  const cpu = planRouting(scores, N, E, {
    k,
    capacityFactor,
    capacityRule: rule,
    slotMultiple: ref.capacity,
  });
  equal(cpu.slots, cpu.capacity);
  const st = tf.tensor2d(scores, [N, E]);
  const plan = planRoutingWebGPU(st, { k, capacityFactor, capacityRule: rule });
  const counts = routingCountsWebGPU(plan);
  equal(plan.capacity, cpu.capacity);
  equal(plan.slots, cpu.slots);
  deepEqual(new Int32Array(await plan.expert.data()), cpu.expert);
  deepEqual(
    new Int32Array(await plan.priority.data()),
    cpuPriority(scores, N, E, cpu.expert, k),
  );
  deepEqual(new Int32Array(await plan.slotOfChoice.data()), cpu.slotOfChoice);
  deepEqual(new Int32Array(await plan.tokenOfSlot.data()), cpu.tokenOfSlot);
  deepEqual(new Int32Array(await plan.choiceOfSlot.data()), cpu.choiceOfSlot);
  const c = new Int32Array(await counts.data());
  deepEqual(c.slice(0, E), cpu.demand);
  deepEqual(c.slice(E), cpu.load);
  equal(N * k - c.slice(E).reduce((a, b) => a + b, 0), cpu.dropped);
  const onehot = await plan.chosen.array();
  deepEqual(
    onehot,
    Array.from(cpu.expert, (e) => Array.from({ length: E }, (_, i) => +(i === e))),
  );
  tf.dispose([st, counts]);
  disposeDevicePlan(plan);
}

Deno.test("[cpu] planRoutingWebGPU refuses to run off webgpu", async () => {
  await useBackend("cpu");
  const s = tf.tensor2d([[1, 0]]);
  throws(
    () => planRoutingWebGPU(s, { k: 1, capacityFactor: 1 }),
    /^Error: planRoutingWebGPU: needs the webgpu backend, tfjs runs on "cpu"$/,
  );
  s.dispose();
});

if (!backends.includes("webgpu")) {
  Deno.test({
    name: "[webgpu] device routing plan: skipped, this runtime has no WebGPU adapter",
    ignore: true,
    fn: () => {},
  });
} else {
  Deno.test("[webgpu] device plan = CPU plan (slotMultiple = capacity), bit for bit, for any (N, E, k, C_f, rule) and scores with ties, ±0 and subnormals", async () => {
    await useBackend("webgpu");
    const before = tf.memory().numTensors;
    await fc.assert(fc.asyncProperty(cases(40, 20), samePlan), { numRuns: 60 });
    equal(tf.memory().numTensors, before);
  });

  Deno.test("[webgpu] device plan = CPU plan for batches of several sort tiles (129 <= N <= 700)", async () => {
    await useBackend("webgpu");
    await fc.assert(fc.asyncProperty(cases(700, 8, 129), samePlan), { numRuns: 6 });
  });

  Deno.test("[webgpu] a batch larger than one workgroup (N = 300, E = 64, k = 2) plans as on the CPU", async () => {
    // Exercises the priority kernel's tiles (300 > 64 tokens) and the scan's blocks (600 > 128 choices).
    await useBackend("webgpu");
    const N = 300, E = 64, k = 2;
    const scores = Float32Array.from({ length: N * E }, (_, i) => ((i * 7919) % 13) / 4); // many ties
    for (const capacityFactor of [1, 0.3, 0]) {
      const cpu0 = planRouting(scores, N, E, { k, capacityFactor });
      const cpu = planRouting(scores, N, E, { k, capacityFactor, slotMultiple: cpu0.capacity });
      const st = tf.tensor2d(scores, [N, E]);
      const plan = planRoutingWebGPU(st, { k, capacityFactor });
      deepEqual(new Int32Array(await plan.slotOfChoice.data()), cpu.slotOfChoice);
      deepEqual(new Int32Array(await plan.choiceOfSlot.data()), cpu.choiceOfSlot);
      deepEqual(new Int32Array(await plan.tokenOfSlot.data()), cpu.tokenOfSlot);
      st.dispose();
      disposeDevicePlan(plan);
    }
  });

  Deno.test("[webgpu] the device plan follows the capacity decision: N = 7, E = 16, k = 1, C_f = 0.5 gives C = 1 (Tutel: 0), nothing dropped", async () => {
    // Tutel's 1·floor(0.5·ceil(7/16)) = 0 is clamped to 1 (see expertCapacity). Token n's largest
    // score is at expert n, so the 7 tokens choose 7 different experts and each fits its 1 slot.
    await useBackend("webgpu");
    const N = 7, E = 16;
    const st = tf.tensor2d(
      Float32Array.from({ length: N * E }, (_, i) => +(i % E === Math.floor(i / E))),
      [N, E],
    );
    const plan = planRoutingWebGPU(st, { k: 1, capacityFactor: 0.5 });
    equal(plan.capacity, 1);
    deepEqual(Array.from(await plan.slotOfChoice.data()), [0, 1, 2, 3, 4, 5, 6]); // e·1 + 0
    st.dispose();
    disposeDevicePlan(plan);
  });

  Deno.test("[webgpu] the hand-worked example: 3 tokens, 2 experts, top-1, C_f = 0.5", async () => {
    // C = 1·floor(0.5·ceil(3/2)) = 1. Token 1 (top score .9) outranks token 0 (.8) for expert 0,
    // so token 0 is dropped (slot E·C = 2); token 2 takes expert 1's slot (flat 1·1 + 0 = 1).
    await useBackend("webgpu");
    const st = tf.tensor2d([[.8, .2], [.9, .1], [.3, .7]]);
    const plan = planRoutingWebGPU(st, { k: 1, capacityFactor: 0.5 });
    const counts = routingCountsWebGPU(plan);
    deepEqual(Array.from(await plan.priority.data()), [1, 0, 2]);
    deepEqual(Array.from(await plan.slotOfChoice.data()), [2, 0, 1]);
    deepEqual(Array.from(await plan.tokenOfSlot.data()), [1, 2]);
    deepEqual(await counts.array(), [[2, 1], [1, 1]]); // demand, load
    // Dispatch moves token 1 into expert 0's slot and token 2 into expert 1's.
    const x = tf.tensor2d([[1, 1], [2, 2], [3, 3]]);
    const buf = routeRows(x, deviceRoutes(plan).dispatch);
    deepEqual(await buf.array(), [[2, 2], [3, 3]]);
    // Gates: softmax([.8, .2]) at expert 0 = 1 / (1 + e^-0.6) = 0.6457 (token 0; dropped later).
    const g = routingGates(st, plan.chosen, 1, "softmax-topk");
    const g0 = (await g.data())[0];
    equal(Math.abs(g0 - 1 / (1 + Math.exp(-0.6))) < 1e-6, true);
    tf.dispose([st, counts, x, buf, g]);
    disposeDevicePlan(plan);
  });

  Deno.test("[webgpu] routing through the device plan has the same values and gradients as through the CPU plan", async () => {
    await useBackend("webgpu");
    const N = 9, E = 4, k = 2, d = 3;
    const scores = Float32Array.from({ length: N * E }, (_, i) => Math.sin(i * 1.7));
    const xs = tf.tensor2d(Float32Array.from({ length: N * d }, (_, i) => Math.cos(i)), [N, d]);
    const cpu0 = planRouting(scores, N, E, { k, capacityFactor: 1 });
    const cpu = planRouting(scores, N, E, { k, capacityFactor: 1, slotMultiple: cpu0.capacity });
    const st = tf.tensor2d(scores, [N, E]);
    const plan = planRoutingWebGPU(st, { k, capacityFactor: 1 });
    const routes = deviceRoutes(plan);
    const cpuDispatch = {
      forward: tf.tensor1d(cpu.tokenOfSlot, "int32"),
      backward: tf.tensor1d(cpu.slotOfChoice, "int32"),
      fan: k,
    };
    const cpuCombine = {
      forward: tf.tensor1d(cpu.slotOfChoice, "int32"),
      backward: tf.tensor1d(cpu.choiceOfSlot, "int32"),
      fan: 1,
    };
    // y = combine(dispatch(x)²): a nonlinear round trip through the buffers.
    const f = (dispatch: typeof cpuDispatch, combine: typeof cpuCombine) => (x: Tensor) =>
      tf.sum(tf.mul(routeRows(tf.square(routeRows(x as Tensor2D, dispatch)), combine), 1.5));
    const a = tf.valueAndGrad(f(routes.dispatch, routes.combine))(xs);
    const b = tf.valueAndGrad(f(cpuDispatch, cpuCombine))(xs);
    deepEqual(await a.value.data(), await b.value.data());
    deepEqual(await a.grad.data(), await b.grad.data());
    tf.dispose([xs, st, a.value, a.grad, b.value, b.grad]);
    tf.dispose([
      cpuDispatch.forward,
      cpuDispatch.backward,
      cpuCombine.forward,
      cpuCombine.backward,
    ]);
    disposeDevicePlan(plan);
  });

  for (const routingOrder of ["softmax-topk", "topk-softmax"] as RoutingOrder[]) {
    Deno.test(`[webgpu] MoeLayer.apply (${routingOrder}) on a device-planned batch, planned inside the tape, = on the CPU-planned batch: output, losses and every gradient`, async () => {
      await useBackend("webgpu");
      const before = tf.memory().numTensors;
      const N = 13, d = 6, noiseSeed = 5;
      const layer = new MoeLayer({
        inputDim: d,
        hiddenDim: 5,
        numExperts: 9,
        topK: 2,
        routingOrder,
        routerBias: routingOrder === "topk-softmax",
        activation: "gelu",
        capacityFactor: 1,
        loadBalanceWeight: 0.01,
        expertCompute: "batched",
      }, { seed: 3 });
      const reg = { lambda: 0.1, sigma: 1, filterSize: 3, filter: "gaussian" as const };
      const x = tf.randomNormal([N, d], 0, 1, "float32", 11) as Tensor2D;
      const w = tf.randomNormal([N, d], 0, 1, "float32", 12) as Tensor2D;
      const vars = Object.values(layer.params);
      const loss = (routed: RoutedBatch) => {
        const out = layer.apply({ x }, routed, reg);
        return tf.add(tf.sum(tf.mul(out.y, w)), out.penalty) as TF.Scalar;
      };
      // CPU plan: routed outside the tape (one readback), as the classifier does today.
      const cpuRouted = await layer.route({ x }, { training: true, noiseSeed });
      const cpu = tf.variableGrads(() => loss(cpuRouted), vars);
      // Device plan: routed inside the tape from the same logits and noise (the layer's seeded draw).
      let dev: ReturnType<typeof deviceRoutedBatch> | null = null;
      const gpu = tf.variableGrads(() => {
        const logits = layer.logits(x);
        const noise = tf.randomNormal(
          [N, 9],
          0,
          layer.config.noiseStd,
          "float32",
          tfSeed(noiseSeed),
        ) as Tensor2D;
        dev = deviceRoutedBatch(tf.add(logits, noise) as Tensor2D, noise, {
          k: 2,
          capacityFactor: 1,
        });
        for (const t of [dev.dispatch.forward, dev.dispatch.backward, dev.combine.backward]) {
          tf.keep(t);
        }
        tf.keep(dev.chosen);
        tf.keep(noise);
        return loss(dev as unknown as RoutedBatch);
      }, vars);
      deepEqual(await gpu.value.data(), await cpu.value.data());
      for (const [name, g] of Object.entries(cpu.grads)) {
        deepEqual(await gpu.grads[name].data(), await g.data(), `gradient of ${name}`);
      }
      tf.dispose([x, w, cpu.value, gpu.value, ...Object.values(cpu.grads)]);
      tf.dispose(Object.values(gpu.grads));
      disposeRouted(cpuRouted);
      disposeDeviceRouted(dev!);
      layer.dispose();
      equal(tf.memory().numTensors, before);
    });
  }
}
