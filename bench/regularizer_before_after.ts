/**
 * `deno run -A bench/regularizer_before_after.ts [rev] [rounds]`: R(z)
 * forward + backward alone (N = 200, 3x3 Gaussian σ 1.5, "valid") on wasm,
 * alternating, in one process, the op path, the fused cpu/wasm routine as
 * it was at git revision `rev` (default 4234cfc, before the SIMD "valid"
 * path; f4a3b6c is the last `tf.customGrad` version), the fused routine of
 * the working tree (`cpuGroupSparsity`, tf.customGrad), the registered
 * kernel of the working tree (`kernelGroupSparsity`, what `groupSparsity`
 * runs), and the bare timing harness (tf.grad of the mean of a row sum, and
 * the gradient's readback). Prints medians [quartiles] in ms per E
 * (`MOGE_BENCH_E`, default 16,64,400,1024) and the load average. The old
 * routine is checked out next to the new one (`src/moge/.before_<rev>.ts`,
 * removed afterwards) so its imports resolve.
 *
 * @module
 */

import { tf } from "../src/deps.ts";
import { groupSparsity } from "../src/moge/group_sparsity.ts";
import { cpuGroupSparsity } from "../src/moge/group_sparsity_cpu.ts";
import { kernelGroupSparsity } from "../src/moge/group_sparsity_kernel.ts";
import { gaussianFilter } from "../src/moge/filters.ts";
import { topographicLayout } from "../src/moge/layout.ts";
import { useBackend } from "../src/backend.ts";
import { alternateTimes } from "./alternate.ts";

const rev = Deno.args[0] ?? "4234cfc";
const rounds = Number(Deno.args[1] ?? 100);
const list = (Deno.env.get("MOGE_BENCH_E") ?? "16,64,400,1024").split(",").map(Number);
const old = new URL(`../src/moge/.before_${rev}.ts`, import.meta.url);
const git = new Deno.Command("git", { args: ["show", `${rev}:src/moge/group_sparsity_cpu.ts`] });
const { success, stdout } = await git.output();
if (!success) throw new Error(`git show ${rev}:src/moge/group_sparsity_cpu.ts failed`);
await Deno.writeFile(old, stdout);
let before: typeof cpuGroupSparsity;
try {
  before = (await import(old.href)).cpuGroupSparsity;
} finally {
  await Deno.remove(old);
}
await useBackend("wasm");
const loadStart = Deno.loadavg();
const q = (a: number[], p: number) =>
  a.slice().sort((x, y) => x - y)[Math.floor(p * (a.length - 1))];
const fmt = (a: number[]) =>
  `${q(a, 0.5).toFixed(3)} [${q(a, 0.25).toFixed(3)}, ${q(a, 0.75).toFixed(3)}]`;
for (const E of list) {
  const z = tf.softmax(tf.randomNormal([200, E], 0, 1, "float32", 3)) as tf.Tensor2D; // [N, E]
  const H = gaussianFilter(3, 1.5), layout = topographicLayout(E, 3);
  const timed = (f: (t: tf.Tensor) => tf.Tensor) => async () => {
    const g = tf.grad((t: tf.Tensor) => tf.mean(f(t)))(z);
    await g.data();
    g.dispose();
  };
  const variants: Record<string, () => Promise<void>> = {
    "ops": timed((t) => groupSparsity(t, { sigma: 1.5, checkFinite: false, impl: "ops" })),
    [`fused at ${rev}`]: timed((t) => before(t as tf.Tensor2D, layout, H, 1e-8)),
    "fused now": timed((t) => cpuGroupSparsity(t as tf.Tensor2D, layout, H, 1e-8)),
    "kernel now": timed((t) => kernelGroupSparsity(t as tf.Tensor2D, layout, H, 1e-8)),
    "harness alone": timed((t) => tf.sum(t, 1)),
  };
  const names = Object.keys(variants);
  const times = await alternateTimes(variants, rounds, 5);
  z.dispose();
  console.log(
    `E=${E}: ` + names.map((k) => `${k} ${fmt(times[k])}`).join(" | "),
  );
}
console.log(`load average at start ${loadStart.join(", ")}, at end ${Deno.loadavg().join(", ")}`);
