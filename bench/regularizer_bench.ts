/**
 * `deno bench bench/regularizer_bench.ts`: the MoGE regularizer alone,
 * forward and forward+backward, on `[200, E]` routing scores as E grows.
 * On webgpu it also times the tfjs-op path (`fused: false`) beside the
 * default fused kernels.
 *
 * @module
 */

import { tf } from "../src/deps.ts";
import { groupSparsity, type GroupSparsityOptions } from "../src/moge/group_sparsity.ts";
import { benchBackend } from "./setup.ts";

const { info, label } = await benchBackend();
const list = (Deno.env.get("MOGE_BENCH_E") ?? "16,32,64,128,256,400,1024").split(",").map(Number);

for (const E of list) {
  const z = tf.softmax(tf.randomNormal([200, E], 0, 1, "float32", 3)) as tf.Tensor2D; // [N, E]
  const opts = { sigma: 1.5, filterSize: 3, filter: "gaussian" as const, checkFinite: false };
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
  // `fused` only changes anything on webgpu.
  const variants = info.backend === "webgpu" ? [opts, { ...opts, fused: false }] : [opts];
  for (const o of variants) {
    for (let i = 0; i < 3; i++) {
      await forward(o)();
      await backward(o)();
    }
  }
  const group = `R(z) E=${E} [${label}]`;
  for (const o of variants) {
    const tag = "fused" in o ? " (fused: false)" : "";
    Deno.bench({
      name: `R(z) forward${tag}, N=200, E=${E}`,
      group,
      baseline: tag === "",
      fn: forward(o),
    });
    Deno.bench({ name: `R(z) forward+backward${tag}, N=200, E=${E}`, group, fn: backward(o) });
  }
}
