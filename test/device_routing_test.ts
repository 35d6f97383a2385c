// Routing in the one taped pass: MoeLayer.routeDevice (webgpu) against the CPU-planned path,
// the training steps of the three models without readbacks on webgpu, and the loop's tally
// of device counts against the tally of CPU plans.
import fc from "fast-check";
import { tf } from "../src/deps.ts";
import { useBackend } from "../src/backend.ts";
import {
  disposeRouted,
  MoeLayer,
  type RegularizerSettings,
  type RoutedBatch,
} from "../src/moe/moe_layer.ts";
import { keepRouted } from "../src/models/transformer.ts";
import { RoutingTally } from "../src/train/task.ts";
import { MoeClassifier } from "../src/models/classifier.ts";
import { trainStep } from "../src/train/classifier_task.ts";
import { VisionTransformer } from "../src/models/vit.ts";
import { planVitStep, vitTrainStep } from "../src/train/vit_task.ts";
import { MoeLm } from "../src/models/lm.ts";
import { lmTrainStep, planLmStep } from "../src/train/lm_task.ts";
import { AdamW } from "../src/train/optim.ts";
import { assertAllClose, deepEqual, equal, ok, throws } from "./asserts.ts";
import { availableBackends } from "./backends.ts";

const backends = await availableBackends();
const reg: RegularizerSettings = { lambda: 0.1, sigma: 1, filterSize: 3, filter: "gaussian" };

/** Counts the backend's readbacks (`read` / `readSync`; nested calls once) while f runs. */
function countReads<T>(f: () => T): { result: T; reads: number } {
  const backend = tf.backend() as unknown as Record<string, (...a: unknown[]) => unknown>;
  let reads = 0;
  let depth = 0;
  for (const name of ["read", "readSync"]) {
    const original = backend[name];
    backend[name] = function (this: unknown, ...a: unknown[]) {
      if (depth === 0) reads++;
      depth++;
      try {
        return original.apply(this, a);
      } finally {
        depth--;
      }
    };
  }
  try {
    return { result: f(), reads };
  } finally {
    delete backend.read;
    delete backend.readSync;
  }
}

Deno.test("RoutingTally: device counts read back once equal the CPU plans added step by step", async () => {
  // Law: for any batches, tallying [demand; load] count tensors through the device log and
  // flushing once gives the same load, drops and choices as adding the CPU plans.
  await useBackend("cpu");
  const layer = new MoeLayer({
    inputDim: 6, // router weights = identity below: the logits are the inputs
    hiddenDim: 1,
    numExperts: 6,
    topK: 2,
    routingOrder: "softmax-topk",
    routerBias: false,
    activation: "relu",
    capacityFactor: 0.5,
    loadBalanceWeight: 0,
  });
  layer.params["moe.router.w"].assign(tf.eye(6));
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.array(fc.float({ noNaN: true, min: -4, max: 4 }), {
          minLength: 6 * 5,
          maxLength: 6 * 5,
        }),
        {
          minLength: 1,
          maxLength: 4,
        },
      ),
      async (batches) => {
        const host = new RoutingTally(1, 6);
        const device = new RoutingTally(1, 6);
        for (const scores of batches) {
          const logits = tf.tensor2d(scores, [5, 6]); // [N, E] = x · I
          const r = layer.routeSync({ x: logits }, { training: false });
          logits.dispose();
          const p = r.plan;
          host.add([{ plan: p, counts: null }]);
          const counts = tf.tensor2d([...p.demand, ...p.load], [2, 6], "int32");
          const { N, E, k, capacity, slots, active } = p;
          device.add([{ plan: { N, E, k, capacity, slots, active }, counts }]);
          disposeRouted(r);
        }
        await device.flush();
        deepEqual(device.load, host.load);
        deepEqual(device.dropped, host.dropped);
        deepEqual(device.choices, host.choices);
        device.dispose();
      },
    ),
    { numRuns: 20 },
  );
  throws(
    () =>
      new RoutingTally(1, 6).add([{
        plan: { N: 1, E: 6, k: 1, capacity: 1, slots: 1, active: new Int32Array(6) },
        counts: null,
      }]),
    /device plan came without counts/,
  );
  layer.dispose();
});

if (backends.includes("webgpu")) {
  Deno.test("MoeLayer.routeDevice (webgpu): output and gradients equal the CPU-planned batch", async () => {
    await useBackend("webgpu");
    for (const order of ["softmax-topk", "topk-softmax"] as const) {
      const layer = new MoeLayer({
        inputDim: 6,
        hiddenDim: 5,
        numExperts: 9,
        topK: 2,
        routingOrder: order,
        routerBias: order === "topk-softmax",
        activation: "gelu",
        noiseStd: 0.3,
        capacityFactor: 0.5, // N = 12: C_e = 2 · floor(0.5 · ceil(12 / 9)) = 2, 9 · 2 = 18 slots < 24 choices
        loadBalanceWeight: 0.01,
      }, { seed: 3 });
      const x = tf.randomNormal([12, 6], 0, 1, "float32", 4) as tf.Tensor2D;
      const before = tf.memory().numTensors;
      const vars = Object.values(layer.params);
      const run = async (device: boolean) => {
        const opts = { training: true, noiseSeed: 17, stats: true }; // the same seeded noise
        let routed: RoutedBatch | null = null;
        if (!device) routed = await layer.route({ x }, opts);
        const { value, grads } = tf.variableGrads(() => {
          routed ??= keepRouted(layer.routeDevice({ x }, opts));
          const out = layer.apply({ x }, routed, reg);
          return tf.add(tf.sum(tf.square(out.y)), out.penalty) as tf.Scalar;
        }, vars);
        const g: Record<string, Float32Array> = {};
        for (const [k, t] of Object.entries(grads)) g[k] = (await t.data()) as Float32Array;
        const loss = (await value.data())[0];
        tf.dispose([value, ...Object.values(grads)]);
        const r = routed!;
        const stats = r.plan.load
          ? [...r.plan.demand!, ...r.plan.load]
          : Array.from(await r.counts!.data());
        disposeRouted(r);
        return { loss, g, stats };
      };
      const cpu = await run(false);
      const dev = await run(true);
      ok(
        cpu.stats.slice(9).reduce((a, b) => a + b, 0) < 24,
        "capacity drops choices (not vacuous)",
      );
      deepEqual(dev.stats, cpu.stats, `${order}: demand and load`);
      assertAllClose([dev.loss], [cpu.loss], { rtol: 1e-5 });
      for (const k of Object.keys(cpu.g)) {
        assertAllClose(dev.g[k], cpu.g[k], { atol: 1e-6, rtol: 1e-4, msg: `${order} ${k}` });
      }
      equal(tf.memory().numTensors, before, "no tensor leaks");
      tf.dispose(x);
      layer.dispose();
    }
  });

  Deno.test("training steps (webgpu) of the classifier, ViT and LM do no readback", async () => {
    await useBackend("webgpu");
    const opt = () => new AdamW({ learningRate: 1e-3 });
    // Classifier: 16 images of 9 pixels, E = 9.
    const clf = new MoeClassifier({
      inputDim: 9,
      numClasses: 3,
      experts: 9,
      topK: 1,
      hiddenDim: 4,
      activation: "relu",
      capacityFactor: 2,
      loadBalanceWeight: 0.01,
    }, 1);
    const o1 = opt();
    const x = tf.randomUniform([16, 9], 0, 1, "float32", 2) as tf.Tensor2D;
    const y = tf.tensor1d(Array.from({ length: 16 }, (_, i) => i % 3), "int32");
    trainStep(clf, o1, x, y, { noiseSeed: 1, reg, lr: 1e-3 }).stats.dispose(); // warm-up
    const c = countReads(() => trainStep(clf, o1, x, y, { noiseSeed: 2, reg, lr: 1e-3 }));
    equal(c.reads, 0, "classifier step readbacks");
    ok(c.result.routing.counts !== null, "the step's routing counts stay on the device");
    c.result.routing.counts!.dispose();
    c.result.stats.dispose();
    // ViT: 2 images 8x8, patch 4, MoE in blocks 1 and 3.
    const vit = new VisionTransformer({
      imageSize: 8,
      channels: 1,
      patchSize: 4,
      numClasses: 3,
      embedDim: 8,
      depth: 4,
      numHeads: 2,
      mlpDim: 8,
      pool: "cls",
      moeBlocks: [1, 3],
      experts: 9,
      topK: 1,
      capacityFactor: 2,
      loadBalanceWeight: 0.01,
      dropout: 0.1,
      attentionDropout: 0,
      dropPath: 0.1,
    }, 1);
    const o2 = opt();
    const xv = tf.randomUniform([2, 64], 0, 1, "float32", 3) as tf.Tensor2D;
    const yv = tf.tensor1d([0, 2], "int32");
    const vo = { seed: 1, reg, lr: 1e-3, labelSmoothing: 0.1 };
    const v = countReads(() => vitTrainStep(vit, o2, xv, yv, vo));
    equal(v.reads, 0, "ViT step readbacks");
    equal(v.result.plans.length, 2);
    v.result.plans.forEach((p) => p.counts!.dispose());
    v.result.stats.dispose();
    // LM: 2 windows of 8 tokens, 2 MoE layers.
    const lm = new MoeLm({
      vocabSize: 12,
      contextLength: 8,
      layers: 2,
      hidden: 8,
      heads: 2,
      experts: 9,
      topK: 2,
      expertHidden: 8,
      activation: "relu",
      capacityFactor: 2,
      noiseStd: 0.1,
      loadBalanceWeight: 0,
      dropout: 0.1,
      variant: "momentum",
      mu: 0.7,
      momentumGamma: 0.8,
      adamBeta1: 0.9,
      adamBeta2: 0.999,
      adamGamma: 1,
      adamLayers: 1,
      adamEps: 1e-8,
    }, 1);
    const o3 = opt();
    const xt = tf.tensor2d(
      [[1, 2, 3, 4, 5, 6, 7, 8], [0, 1, 0, 1, 2, 3, 11, 10]],
      undefined,
      "int32",
    );
    const l = countReads(() => lmTrainStep(lm, o3, xt, xt, { seed: 1, reg, lr: 1e-3 }));
    equal(l.reads, 0, "LM step readbacks");
    l.result.plans.forEach((p) => p.counts!.dispose());
    ok(Number.isFinite((await l.result.stats.data())[0]));
    l.result.stats.dispose();
    tf.dispose([x, y, xv, yv, xt]);
    for (const m of [clf, vit, lm]) m.dispose();
    for (const o of [o1, o2, o3]) o.dispose();
  });

  Deno.test("training steps (webgpu) with a router other than topk plan on the CPU first, then replay", async () => {
    await useBackend("webgpu");
    const vit = new VisionTransformer({
      imageSize: 8,
      channels: 1,
      patchSize: 4,
      numClasses: 3,
      embedDim: 8,
      depth: 2,
      numHeads: 2,
      mlpDim: 8,
      pool: "cls",
      moeBlocks: [1],
      experts: 9,
      topK: 1,
      capacityFactor: 2,
      loadBalanceWeight: 0.01,
      dropout: 0.1,
      attentionDropout: 0,
      dropPath: 0,
      router: "attention",
    }, 1);
    const opt = new AdamW({ learningRate: 1e-3 });
    const xv = tf.randomUniform([2, 64], 0, 1, "float32", 3) as tf.Tensor2D;
    const yv = tf.tensor1d([0, 2], "int32");
    const vo = { seed: 1, reg, lr: 1e-3, labelSmoothing: 0.1 };
    // Without a plan the taped pass cannot route "attention" on webgpu: a clear error.
    throws(() => vitTrainStep(vit, opt, xv, yv, vo), /router "attention" plans on the CPU/);
    const planned = await planVitStep(vit, xv, vo);
    equal(planned?.length, 1, "one CPU plan per MoE layer");
    ok(planned![0].plan.load !== undefined, "a CPU plan (host arrays)");
    const r = vitTrainStep(vit, opt, xv, yv, { ...vo, planned });
    ok(Number.isFinite((await r.stats.data())[0]), "finite loss");
    r.stats.dispose();
    r.plans.forEach((p) => p.counts?.dispose());
    // LM: sinkhorn, planned then replayed.
    const lm = new MoeLm({
      vocabSize: 12,
      contextLength: 8,
      layers: 1,
      hidden: 8,
      heads: 2,
      experts: 9,
      topK: 1,
      expertHidden: 8,
      activation: "relu",
      capacityFactor: 2,
      noiseStd: 0,
      loadBalanceWeight: 0,
      dropout: 0.1,
      variant: "smoe",
      mu: 0.7,
      momentumGamma: 0.8,
      adamBeta1: 0.9,
      adamBeta2: 0.999,
      adamGamma: 1,
      adamLayers: 1,
      adamEps: 1e-8,
      router: "sinkhorn",
    }, 1);
    const o3 = new AdamW({ learningRate: 1e-3 });
    const xt = tf.tensor2d([[1, 2, 3, 4, 5, 6, 7, 8]], undefined, "int32");
    const lo = { seed: 1, reg, lr: 1e-3 };
    const lp = await planLmStep(lm, xt, lo);
    equal(lp?.length, 1);
    const l = lmTrainStep(lm, o3, xt, xt, { ...lo, planned: lp });
    ok(Number.isFinite((await l.stats.data())[0]));
    l.stats.dispose();
    tf.dispose([xv, yv, xt]);
    for (const m of [vit, lm]) m.dispose();
    for (const o of [opt, o3]) o.dispose();
  });
}
