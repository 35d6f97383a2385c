/**
 * `deno run -A bench/expert_rows.ts`: where the SIMD products of
 * `src/ops/small_matmul_simd.ts` stop paying off. Eight experts of the
 * classifier's shape (784 → 64 → 784, GELU) on n rows each, forward and
 * backward (`expertFfn` under `tf.variableGrads`), with the SIMD products
 * for every n and with tfjs-wasm's matmul, alternated (`alternate.ts`, 15
 * rounds); prints the median time per expert for n = 1 ... 32. The experts
 * use the SIMD products up to `simdRows` rows (`setSimdRows` in
 * expert_ffn.ts); this bench lifts that limit while it runs.
 *
 * @module
 */

import { tf } from "../src/deps.ts";
import { useBackend } from "../src/backend.ts";
import { expertFfn, setSimdRows } from "../src/moe/expert_ffn.ts";
import { useSmallMatmul } from "../src/ops/small_matmul_simd.ts";
import { alternateTimes } from "./alternate.ts";

await useBackend("wasm");
const E = 8;
const experts = Array.from({ length: E }, (_, j) => ({
  w1: tf.variable(tf.randomNormal([784, 64], 0, 0.05, "float32", j + 1)),
  b1: tf.variable(tf.zeros([64])),
  w2: tf.variable(tf.randomNormal([64, 784], 0, 0.05, "float32", j + 100)),
  b2: tf.variable(tf.zeros([784])),
}));
const vars = experts.flatMap((e) => [e.w1, e.b1, e.w2, e.b2]);
const loadStart = Deno.loadavg();
const limit = setSimdRows(Infinity);
const med = (a: number[]) => a.slice().sort((p, q) => p - q)[a.length >> 1];
for (const n of [1, 2, 4, 8, 12, 16, 24, 32]) {
  const x = tf.randomNormal([n * E, 784], 0, 1, "float32", 5) as tf.Tensor2D;
  const run = (simd: boolean) => () => {
    const before = useSmallMatmul(simd);
    const { value, grads } = tf.variableGrads(
      () => tf.sum(expertFfn(x, experts, new Array(E).fill(n), "gelu")) as tf.Scalar,
      vars,
    );
    tf.dispose([value, ...Object.values(grads)]);
    useSmallMatmul(before);
    return Promise.resolve();
  };
  const t = await alternateTimes({ simd: run(true), xnnpack: run(false) }, 15, 2);
  console.log(
    `rows per expert ${n}: SIMD ${(med(t.simd) / E).toFixed(3)} ms per expert, ` +
      `tfjs-wasm matmul ${(med(t.xnnpack) / E).toFixed(3)} ms per expert`,
  );
  x.dispose();
}
setSimdRows(limit);
console.log(`load average at start ${loadStart.join(", ")}, at end ${Deno.loadavg().join(", ")}`);
tf.dispose(vars);
