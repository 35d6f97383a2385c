/**
 * `deno bench bench/regularizer_bench.ts`: the MoGE regularizer alone,
 * forward and forward+backward, on `[200, E]` routing scores as E grows,
 * with the default fused implementation (a hand-written routine on cpu and
 * wasm, two WebGPU kernels on webgpu) beside the tfjs-op path
 * (`impl: "ops"`, the reference). Deno runs the benches one after another;
 * for a before/after figure on a loaded machine, compare medians of
 * alternating runs (see the README).
 *
 * @module
 */

import { tf } from "../src/deps.ts";
import { groupSparsity, type GroupSparsityOptions } from "../src/moge/group_sparsity.ts";
import { benchBackend } from "./setup.ts";

const { label } = await benchBackend();
const list = (Deno.env.get("MOGE_BENCH_E") ?? "16,32,64,128,256,400,1024").split(",").map(Number);

for (const E of list) {
  const z = tf.softmax(tf.randomNormal([200, E], 0, 1, "float32", 3)) as tf.Tensor2D; // [N, E]
  const base = { sigma: 1.5, filterSize: 3, filter: "gaussian" as const, checkFinite: false };
  const forward = (o: GroupSparsityOptions) => async () => {
    const r = tf.tidy(() => tf.mean(groupSparsity(z, o)));
    await r.data();
    r.dispose();
  };
  const backward = (o: GroupSparsityOptions) => async () => {
    const g = tf.grad((t: tf.Tensor) => tf.mean(groupSparsity(t, o)))(z);
    await g.data();
    g.dispose();
  };
  const variants = [
    { tag: "", o: { ...base, impl: "fused" as const } },
    { tag: " (impl: ops)", o: { ...base, impl: "ops" as const } },
  ];
  for (const { o } of variants) {
    for (let i = 0; i < 3; i++) {
      await forward(o)();
      await backward(o)();
    }
  }
  const group = `R(z) E=${E} [${label}]`;
  for (const { tag, o } of variants) {
    Deno.bench({
      name: `R(z) forward${tag}, N=200, E=${E}`,
      group,
      baseline: tag === "",
      fn: forward(o),
    });
    Deno.bench({ name: `R(z) forward+backward${tag}, N=200, E=${E}`, group, fn: backward(o) });
  }
}
