/**
 * The router's logits `L = X·W (+ b)` are computed once per training step:
 * `select` (which the CPU plan reads back) keeps them, and `forward` reuses
 * them when it runs on the same input and the same gradient tape
 * (`logitsOnTape`). The laws checked here:
 *
 * - one router matmul per taped step (two before: select's and forward's);
 * - the step's loss and every gradient are the same numbers, bit for bit, as
 *   with the logits computed again (the reference: `forward` with the
 *   decision's logits removed);
 * - logits selected outside the tape are never reused, inside it (their
 *   gradient would not reach the router's weights) or outside it (the
 *   weights may have changed; moe_layer_routers_test.ts's finite
 *   differences move them between route and apply);
 * - no tensor is left behind over repeated steps.
 */

import { tf } from "../src/deps.ts";
import { useBackend } from "../src/backend.ts";
import { disposeRouted, type MoeConfig, MoeLayer, type RoutedBatch } from "../src/moe/moe_layer.ts";
import { keepRouted } from "../src/models/transformer.ts";
import { logitsOnTape, type RouterInput, type RouterName, tapeId } from "../src/moe/routers/mod.ts";
import { deepEqual, equal, ok } from "./asserts.ts";
import { availableBackends } from "./backends.ts";

const [B, T, d, E, k] = [2, 4, 6, 6, 1];
const N = B * T;

/** The routers whose select computes the linear logits that forward needs. */
const LINEAR: RouterName[] = [
  "topk",
  "expert-choice",
  "sinkhorn",
  "ssr",
  "similarity",
  "attention",
];

function layerOf(router: RouterName): MoeLayer {
  const config: MoeConfig = {
    inputDim: d,
    hiddenDim: 3,
    numExperts: E,
    topK: k,
    routingOrder: "softmax-topk",
    routerBias: true,
    activation: "gelu",
    capacityFactor: 2,
    loadBalanceWeight: 0.05,
    zLossWeight: 0.01,
    router,
    routerOptions: router === "ssr" ? { pSinkhorn: 1 } : {},
  };
  return new MoeLayer(config, { seed: 3 });
}

function input(): RouterInput {
  const x = tf.tensor2d(Array.from({ length: N * d }, (_, i) => Math.sin(0.9 * i + 0.2)), [N, d]);
  const attention = tf.tidy(() =>
    tf.softmax(
      tf.tensor3d(Array.from({ length: B * T * T }, (_, i) => Math.cos(1.3 * i)), [B, T, T]),
    )
  ) as tf.Tensor3D;
  return { x, sequenceLength: T, attention };
}

const REG = { lambda: 0.3, sigma: 1, filterSize: 2, filter: "gaussian" as const };

/**
 * One training step as the models take it on cpu and wasm: routed inside the
 * tape, then the layer's forward. `fresh` drops the selected logits before
 * the forward (the reference: forward computes them again).
 */
function step(layer: MoeLayer, inp: RouterInput, fresh: boolean) {
  let routed: RoutedBatch | null = null;
  const vars = Object.values(layer.params);
  const { value, grads } = tf.variableGrads(() => {
    routed = keepRouted(layer.routeSync(inp, { training: true, noiseSeed: 4, step: 0 }));
    if (fresh && routed.decision?.logits) {
      routed.decision.logits.tensor.dispose();
      routed.decision.logits = null;
    }
    const out = layer.apply(inp, routed, REG);
    return tf.add(tf.sum(tf.square(out.y)), out.penalty) as tf.Scalar;
  }, vars);
  disposeRouted(routed!);
  return { value, grads };
}

/** BatchMatMul kernels of `f` with the router's shapes `[N, d]·[d, E]`. */
async function routerMatmuls(f: () => void): Promise<number> {
  const info = await tf.profile(f);
  return info.kernels.filter((q) =>
    q.name === "BatchMatMul" &&
    JSON.stringify(q.inputShapes.slice(0, 2)) === JSON.stringify([[N, d], [d, E]])
  ).length;
}

for (const backend of (await availableBackends()).filter((b) => b !== "webgpu")) {
  for (const router of LINEAR) {
    Deno.test(`router ${router} (${backend}): one logits matmul per taped step, same loss and gradients`, async () => {
      await useBackend(backend);
      const layer = layerOf(router);
      const inp = input();
      const count = async (fresh: boolean) =>
        await routerMatmuls(() => {
          const { value, grads } = step(layer, inp, fresh);
          tf.dispose([value, ...Object.values(grads)]);
        });
      equal(await count(false), 1, "reused: select's matmul only");
      equal(await count(true), 2, "reference: select's and forward's");

      const a = step(layer, inp, false);
      const b = step(layer, inp, true);
      deepEqual(await a.value.data(), await b.value.data(), "loss");
      for (const name of Object.keys(b.grads)) {
        deepEqual(await a.grads[name].data(), await b.grads[name].data(), `∂/∂${name}`);
      }
      // Not vacuous: the router's weights get a gradient.
      const gw = await a.grads[layer.params["moe.router.w"].name].data();
      ok(gw.some((g) => g !== 0), "the router weights' gradient is all zero");
      tf.dispose([a.value, b.value, ...Object.values(a.grads), ...Object.values(b.grads)]);

      const before = tf.memory().numTensors;
      for (let i = 0; i < 4; i++) {
        const { value, grads } = step(layer, inp, false);
        tf.dispose([value, ...Object.values(grads)]);
      }
      equal(tf.memory().numTensors, before, "tensors left behind");
      tf.dispose([inp.x, inp.attention!]);
      layer.dispose();
    });
  }
}

Deno.test("logits selected outside the tape are not reused inside it (the router keeps its gradient)", async () => {
  await useBackend("cpu");
  const layer = layerOf("topk");
  const inp = input();
  const routed = await layer.route(inp, { training: true, noiseSeed: 4, step: 0 });
  // Off the tape the weights may change between route and apply: never kept, never reused.
  equal(routed.decision?.logits ?? null, null, "route() off the tape keeps no logits");
  equal(logitsOnTape(routed.decision!, inp.x), null, "no tape: not reused");
  const { value, grads } = tf.variableGrads(() => {
    const out = layer.apply(inp, routed, REG);
    return tf.add(tf.sum(tf.square(out.y)), out.penalty) as tf.Scalar;
  }, Object.values(layer.params));
  const gw = await grads[layer.params["moe.router.w"].name].data();
  ok(gw.some((g) => g !== 0), "the router weights' gradient is all zero");
  const other = tf.tensor2d(await inp.x.data(), [N, d]); // same values, another tensor
  const probe = tf.variableGrads(() => {
    const taped = layer.routeSync(inp, { training: true, noiseSeed: 4, step: 0 });
    ok(logitsOnTape(taped.decision!, inp.x) !== null, "same input, same tape: reused");
    equal(logitsOnTape(taped.decision!, other), null, "another input tensor: not reused");
    disposeRouted(taped);
    return tf.sum(layer.params["moe.router.w"]) as tf.Scalar;
  }, [layer.params["moe.router.w"]]);
  tf.dispose([probe.value, ...Object.values(probe.grads)]);
  tf.dispose([value, other, ...Object.values(grads), inp.x, inp.attention!]);
  disposeRouted(routed);
  layer.dispose();
});

Deno.test("tapeId: 0 off the tape, one id through nested gradients, a new id for the next tape", () => {
  const seen: number[] = [];
  equal(tapeId(), 0);
  const f = (x: tf.Tensor) => {
    seen.push(tapeId());
    return tf.grad((y: tf.Tensor) => {
      seen.push(tapeId());
      return y.square();
    })(x).mul(x);
  };
  tf.tidy(() => {
    tf.grad(f)(tf.scalar(2));
    tf.grad(f)(tf.scalar(3));
  });
  equal(tapeId(), 0);
  ok(seen.every((s) => s > 0), `ids ${seen}`);
  equal(seen[0], seen[1], "nested tf.grad records on the outer tape");
  ok(seen[2] !== seen[0], "the next tf.grad call is another tape");
});

if ((await availableBackends()).includes("webgpu")) {
  Deno.test("router topk (webgpu, routed on the device): one logits matmul per taped step, same loss and gradients", async () => {
    await useBackend("webgpu");
    const layer = layerOf("topk");
    const inp = input();
    const deviceStep = (fresh: boolean) => {
      let routed: RoutedBatch | null = null;
      const { value, grads } = tf.variableGrads(() => {
        routed = keepRouted(layer.routeDevice(inp, { training: true, noiseSeed: 4 }));
        if (fresh && routed.logits) {
          routed.logits.tensor.dispose();
          routed.logits = null;
        }
        const out = layer.apply(inp, routed, REG);
        return tf.add(tf.sum(tf.square(out.y)), out.penalty) as tf.Scalar;
      }, Object.values(layer.params));
      disposeRouted(routed!);
      return { value, grads };
    };
    for (const fresh of [false, true]) {
      const n = await routerMatmuls(() => {
        const { value, grads } = deviceStep(fresh);
        tf.dispose([value, ...Object.values(grads)]);
      });
      equal(n, fresh ? 2 : 1, fresh ? "reference" : "reused");
    }
    const a = deviceStep(false);
    const b = deviceStep(true);
    deepEqual(await a.value.data(), await b.value.data(), "loss");
    for (const name of Object.keys(b.grads)) {
      deepEqual(await a.grads[name].data(), await b.grads[name].data(), `∂/∂${name}`);
    }
    tf.dispose([a.value, b.value, ...Object.values(a.grads), ...Object.values(b.grads)]);
    tf.dispose([inp.x, inp.attention!]);
    layer.dispose();
  });
}
