/**
 * `deno bench bench/regularizer_bench.ts`: the MoGE regularizer alone,
 * forward and forward+backward, on `[200, E]` routing scores as E grows.
 *
 * @module
 */

import { tf } from "../src/deps.ts";
import { groupSparsity } from "../src/group_sparsity.ts";
import { benchBackend } from "./setup.ts";

const { label } = await benchBackend();
const list = (Deno.env.get("MOGE_BENCH_E") ?? "16,32,64,128,256,400,1024").split(",").map(Number);

for (const E of list) {
  const z = tf.softmax(tf.randomNormal([200, E], 0, 1, "float32", 3)) as tf.Tensor2D; // [N, E]
  const opts = { sigma: 1.5, filterSize: 3, filter: "gaussian" as const, checkFinite: false };
  const forward = async () => {
    const r = tf.tidy(() => tf.mean(groupSparsity(z, opts)));
    await r.data();
    r.dispose();
  };
  const backward = async () => {
    const g = tf.grad((t: tf.Tensor) => tf.mean(groupSparsity(t, opts)))(z);
    await g.data();
    g.dispose();
  };
  for (let i = 0; i < 3; i++) {
    await forward();
    await backward();
  }
  const group = `R(z) E=${E} [${label}]`;
  Deno.bench({ name: `R(z) forward, N=200, E=${E}`, group, baseline: true, fn: forward });
  Deno.bench({ name: `R(z) forward+backward, N=200, E=${E}`, group, fn: backward });
}
