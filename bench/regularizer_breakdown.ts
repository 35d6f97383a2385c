/**
 * `deno run -A bench/regularizer_breakdown.ts [rounds]`: where the time of
 * R(z) forward + backward goes on wasm (N = 200, 3x3 Gaussian σ 1.5,
 * "valid"), by timing, alternated in one process, pieces that add up to it:
 * the bare harness (tf.grad of the mean of a row sum and the gradient's
 * readback), a `tf.customGrad` that reads nothing and computes nothing (its
 * value and gradient made from preallocated arrays), the same reading z and
 * the upstream gradient back, the fused routine (`tf.customGrad`) and the
 * registered kernel forward only and with the gradient, and the arithmetic
 * alone on plain arrays (forward; gradient). Prints medians [quartiles] in ms per E (`MOGE_BENCH_E`, default 400).
 *
 * @module
 */

import { tf } from "../src/deps.ts";
import {
  cpuGroupSparsity,
  groupSparsityGradValues,
  groupSparsityValues,
} from "../src/moge/group_sparsity_cpu.ts";
import { kernelGroupSparsity } from "../src/moge/group_sparsity_kernel.ts";
import { groupSparsity } from "../src/moge/group_sparsity.ts";
import { gaussianFilter } from "../src/moge/filters.ts";
import { topographicLayout } from "../src/moge/layout.ts";
import { useBackend } from "../src/backend.ts";
import { alternateTimes } from "./alternate.ts";

const rounds = Number(Deno.args[0] ?? 200);
const list = (Deno.env.get("MOGE_BENCH_E") ?? "400").split(",").map(Number);
await useBackend((Deno.env.get("MOGE_BACKEND") ?? "wasm") as "wasm" | "cpu");
const loadStart = Deno.loadavg();
const q = (a: number[], p: number) =>
  a.slice().sort((x, y) => x - y)[Math.floor(p * (a.length - 1))];
const fmt = (a: number[]) =>
  `${q(a, 0.5).toFixed(3)} [${q(a, 0.25).toFixed(3)}, ${q(a, 0.75).toFixed(3)}]`;
for (const E of list) {
  const N = 200;
  const z = tf.softmax(tf.randomNormal([N, E], 0, 1, "float32", 3)) as tf.Tensor2D; // [N, E]
  const H = gaussianFilter(3, 1.5), layout = topographicLayout(E, 3);
  const r0 = new Float32Array(N), d0 = new Float32Array(N * E);
  const grad = (f: (t: tf.Tensor) => tf.Tensor) => async () => {
    const g = tf.grad((t: tf.Tensor) => tf.mean(f(t)))(z);
    await g.data();
    g.dispose();
  };
  const fwdOnly = (f: (t: tf.Tensor) => tf.Tensor) => async () => {
    const r = f(z);
    await r.data();
    r.dispose();
  };
  const trivial = (read: boolean) => (t: tf.Tensor) =>
    tf.customGrad((x) => {
      if (read) (x as tf.Tensor).dataSync();
      return {
        value: tf.tensor1d(r0),
        gradFunc: (dy: tf.Tensor) => {
          if (read) dy.dataSync();
          return tf.tensor2d(d0, [N, E]);
        },
      };
    })(t) as tf.Tensor;
  const fused = (t: tf.Tensor) => cpuGroupSparsity(t as tf.Tensor2D, layout, H, 1e-8);
  const kernel = (t: tf.Tensor) => kernelGroupSparsity(t as tf.Tensor2D, layout, H, 1e-8);
  const zv = z.dataSync() as Float32Array, dyv = new Float32Array(N).fill(1 / N);
  const rv = groupSparsityValues(zv, N, layout, H, 1e-8, "valid").slice();
  const variants: Record<string, () => Promise<void>> = {
    "harness": grad((t) => tf.sum(t, 1)),
    "customGrad, no reads": grad(trivial(false)),
    "customGrad + reads": grad(trivial(true)),
    "fused fwd+bwd": grad(fused),
    "kernel fwd+bwd": grad(kernel),
    "kernel fwd only": fwdOnly(kernel),
    "groupSparsity fwd+bwd": grad((t) => groupSparsity(t, { sigma: 1.5, checkFinite: false })),
    "customGrad fwd only + read": fwdOnly(trivial(true)),
    "fused fwd only": fwdOnly(fused),
    "forward arithmetic": () =>
      Promise.resolve(void groupSparsityValues(zv, N, layout, H, 1e-8, "valid")),
    "gradient arithmetic": () =>
      Promise.resolve(void groupSparsityGradValues(zv, dyv, rv, N, layout, H, 1e-8, "valid")),
    "z.dataSync": () => Promise.resolve(void z.dataSync()),
    "tensor2d [N,E]": () => Promise.resolve(tf.tensor2d(d0, [N, E]).dispose()),
  };
  const names = Object.keys(variants);
  const times = await alternateTimes(variants, rounds, 10);
  z.dispose();
  console.log(`E=${E} [${tf.getBackend()}]:`);
  for (const k of names) console.log(`  ${k.padEnd(28)} ${fmt(times[k])}`);
}
console.log(`load average at start ${loadStart.join(", ")}, at end ${Deno.loadavg().join(", ")}`);
