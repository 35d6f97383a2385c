/**
 * The MoE layer with every router of `src/moe/routers`: the layer's output
 * equals a naive per-token loop over the router's plan, and its gradients
 * (output, router penalty, z-loss and R(z) together) match central finite
 * differences with the plan held fixed. The routers alone are checked in
 * routers_cases_test.ts and routers_laws_test.ts; this is the layer around them.
 */

import { tf } from "../src/deps.ts";
import { useBackend } from "../src/backend.ts";
import {
  disposeRouted,
  type HostRoutedBatch,
  type MoeConfig,
  MoeLayer,
} from "../src/moe/moe_layer.ts";
import { ROUTER_NAMES, type RouterInput, type RouterName } from "../src/moe/routers/mod.ts";
import { assertAllClose, ok } from "./asserts.ts";
import { availableBackends } from "./backends.ts";

const [B, T, d, E, k] = [3, 4, 5, 6, 2];
const N = B * T;

/** Options that make each router take its interesting path in training. */
const OPTIONS: Partial<Record<RouterName, Record<string, unknown>>> = {
  ssr: { pSinkhorn: 1 }, // every training step a Sinkhorn step: gates from N·Π, on the tape
  xmoe: { projDim: 3, temperature: "learnable" },
  similarity: { lambda: 0.5 },
  attention: { lambda: 0.7 },
};

function config(router: RouterName, over: Partial<MoeConfig> = {}): MoeConfig {
  return {
    inputDim: d,
    hiddenDim: 4,
    numExperts: E,
    topK: k,
    routingOrder: "softmax-topk",
    routerBias: true,
    activation: "gelu",
    capacityFactor: 1, // some choices dropped: the zero row must be honoured
    loadBalanceWeight: 0.05,
    zLossWeight: 0.01,
    router,
    routerOptions: OPTIONS[router] ?? {},
    ...over,
  };
}

/** A fixed input: tokens and a row-stochastic attention matrix `[B, T, T]`. */
function input(): RouterInput {
  const x = tf.tensor2d(
    Array.from({ length: N * d }, (_, i) => Math.sin(1.7 * i + 0.3)),
    [N, d],
  ); // [N, d]
  const raw = tf.tensor3d(Array.from({ length: B * T * T }, (_, i) => Math.cos(0.9 * i)), [
    B,
    T,
    T,
  ]);
  const attention = tf.softmax(raw) as tf.Tensor3D; // [B, T, T], rows sum to 1
  raw.dispose();
  return { x, sequenceLength: T, attention };
}

function gelu(v: number): number {
  return 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
}

/**
 * y_n = Σ_j [choice (n, j) real and routed] · g[n, j] · FFN_{expert(n, j)}(x_n),
 * in float64, expert after expert, from the layer's parameters and the gates
 * it reports.
 */
async function naiveOutput(
  layer: MoeLayer,
  routed: HostRoutedBatch,
  xs: Float32Array,
  gates: Float32Array,
): Promise<Float64Array> {
  const p: Record<string, Float32Array> = {};
  for (const [name, v] of Object.entries(layer.params)) p[name] = await v.data() as Float32Array;
  const { hiddenDim: f, outputDim: o } = layer.config;
  const { plan } = routed;
  const valid = routed.decision!.valid;
  const empty = plan.active.length * plan.slots;
  const y = new Float64Array(N * o);
  for (let n = 0; n < N; n++) {
    for (let j = 0; j < plan.k; j++) {
      const c = n * plan.k + j;
      if (!valid[c] || plan.slotOfChoice[c] === empty) continue;
      const e = plan.expert[c];
      const h = Array.from({ length: f }, (_, u) => {
        let s = p[`moe.experts.b1.${e}`][u];
        for (let i = 0; i < d; i++) s += xs[n * d + i] * p[`moe.experts.w1.${e}`][i * f + u];
        return gelu(s);
      });
      for (let v = 0; v < o; v++) {
        let s = p[`moe.experts.b2.${e}`][v];
        for (let u = 0; u < f; u++) s += h[u] * p[`moe.experts.w2.${e}`][u * o + v];
        y[n * o + v] += gates[c] * s;
      }
    }
  }
  return y;
}

for (const backend of await availableBackends()) {
  for (const router of ROUTER_NAMES) {
    Deno.test(`MoeLayer (${backend}, router ${router}) output equals a per-token loop over its plan`, async () => {
      await useBackend(backend);
      const layer = new MoeLayer(config(router), { seed: 7 });
      const inp = input();
      for (const training of [true, false]) {
        const routed = await layer.route(inp, { training, noiseSeed: 5, step: 3 });
        const out = layer.apply(inp, routed, null);
        const gates = await out.gates.data() as Float32Array;
        // The check is not vacuous: some gate is non-zero.
        ok(gates.some((g) => g > 0), `${router}: all gates are 0`);
        const want = await naiveOutput(layer, routed, await inp.x.data() as Float32Array, gates);
        assertAllClose(await out.y.data(), want, {
          atol: 1e-5,
          rtol: 1e-4,
          msg: `${router} training=${training}`,
        });
        tf.dispose(Object.values(out));
        disposeRouted(routed);
      }
      tf.dispose([inp.x, inp.attention!]);
      layer.dispose();
    });
  }
}

for (const router of ROUTER_NAMES) {
  Deno.test(`MoeLayer (cpu, router ${router}) gradients match central finite differences`, async () => {
    await useBackend("cpu");
    const layer = new MoeLayer(config(router), { seed: 11 });
    const inp = input();
    const reg = { lambda: 0.2, sigma: 1, filterSize: 2, filter: "gaussian" as const };
    const routed = await layer.route(inp, { training: true, noiseSeed: 9, step: 3 });
    const w = tf.tensor2d(Array.from({ length: N * d }, (_, i) => Math.cos(0.37 * i)), [N, d]);
    // Loss = Σ y·w + penalty (aux, z-loss and λ·R(z)), the plan held fixed.
    const loss = () =>
      tf.tidy(() => {
        const out = layer.apply(inp, routed, reg);
        return tf.add(tf.sum(tf.mul(out.y, w)), out.penalty) as tf.Scalar;
      });
    const vars = Object.values(layer.params);
    const { value, grads } = tf.variableGrads(loss, vars);
    value.dispose();
    // Every router parameter, and the first weights of one routed expert.
    const e = routed.plan.expert[0];
    const names = Object.keys(layer.params).filter((n) =>
      n.includes(".router.") || n === `moe.experts.w1.${e}` || n === `moe.experts.b2.${e}`
    );
    let checked = 0;
    for (const name of names) {
      const v = layer.params[name];
      const g = await grads[v.name].data();
      const base = await v.data() as Float32Array;
      const count = Math.min(base.length, 8);
      for (let t = 0; t < count; t++) {
        const i = Math.floor((t * base.length) / count);
        // A step small next to the entry itself (X-MoE's τ starts at 0.07).
        const h = Math.max(1e-3, Math.min(1e-2, 0.02 * Math.abs(base[i])));
        const at = async (delta: number) => {
          const moved = base.slice();
          moved[i] += delta;
          v.assign(tf.tensor(moved, v.shape));
          const l = loss();
          const r = (await l.data())[0];
          l.dispose();
          return r;
        };
        const fd = ((await at(h)) - (await at(-h))) / (2 * h);
        v.assign(tf.tensor(base, v.shape));
        // float32 central differences, h <= 1e-2: truncation O(h²) ~ 1e-4,
        // rounding ~ 1e-7·|loss|/h <= 1e-3 for |loss| ~ 10 and h >= 1e-3.
        assertAllClose([g[i]], [fd], {
          atol: 2e-3,
          rtol: 2e-2,
          msg: `${router}: ∂L/∂${name}[${i}]`,
        });
        checked++;
      }
    }
    ok(checked >= 16, `${router}: checked only ${checked} entries`);
    tf.dispose([w, inp.x, inp.attention!, ...Object.values(grads)]);
    disposeRouted(routed);
    layer.dispose();
  });
}
