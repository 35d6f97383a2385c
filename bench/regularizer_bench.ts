/**
 * `deno bench bench/regularizer_bench.ts`: the MoGE regularizer alone,
 * forward and forward+backward, on `[200, E]` routing scores as E grows,
 * with the default fused implementation (a hand-written routine on cpu and
 * wasm, two WebGPU kernels on webgpu) beside the tfjs-op path
 * (`impl: "ops"`, the reference).
 *
 * Deno runs the benches one after another, which a loaded machine skews.
 * `deno run -A bench/regularizer_bench.ts --ab [reps]` instead alternates
 * forward+backward of the op path, the fused routine with TypeScript loops
 * and the fused routine with its WebAssembly SIMD loops (cpu and wasm) in one
 * process and prints their medians and quartiles per E.
 *
 * @module
 */

import { tf } from "../src/deps.ts";
import { groupSparsity, type GroupSparsityOptions } from "../src/moge/group_sparsity.ts";
import { useSimd } from "../src/moge/group_sparsity_cpu.ts";
import { benchBackend } from "./setup.ts";

const { label, info } = await benchBackend();
const list = (Deno.env.get("MOGE_BENCH_E") ?? "16,32,64,128,256,400,1024").split(",").map(Number);
const base = { sigma: 1.5, filterSize: 3, filter: "gaussian" as const, checkFinite: false };

/** Alternating A/B/C of R(z) forward+backward: medians [quartiles] in ms, per E. */
async function alternate(reps: number): Promise<void> {
  const variants: { name: string; impl: "ops" | "fused"; simd: boolean }[] = [
    { name: "ops", impl: "ops", simd: true },
    ...(info.backend === "webgpu"
      ? []
      : [{ name: "fused, TypeScript loops", impl: "fused" as const, simd: false }]),
    { name: info.backend === "webgpu" ? "fused" : "fused, SIMD loops", impl: "fused", simd: true },
  ];
  for (const E of list) {
    const z = tf.softmax(tf.randomNormal([200, E], 0, 1, "float32", 3)) as tf.Tensor2D; // [N, E]
    const once = async ({ impl, simd }: (typeof variants)[number]) => {
      useSimd(simd);
      const t0 = performance.now();
      const g = tf.grad((t: tf.Tensor) => tf.mean(groupSparsity(t, { ...base, impl })))(z);
      await g.data();
      g.dispose();
      return performance.now() - t0;
    };
    const times = variants.map(() => [] as number[]);
    for (let i = 0; i < 5; i++) for (const v of variants) await once(v);
    for (let i = 0; i < reps; i++) {
      const order = variants.map((_, j) => (i % 2 ? j : variants.length - 1 - j));
      for (const j of order) times[j].push(await once(variants[j]));
    }
    useSimd(true);
    z.dispose();
    const q = (a: number[], p: number) =>
      a.slice().sort((x, y) => x - y)[Math.floor(p * (a.length - 1))];
    const cells = variants.map((v, j) =>
      `${v.name} ${q(times[j], 0.5).toFixed(3)} [${q(times[j], 0.25).toFixed(3)}, ${
        q(times[j], 0.75).toFixed(3)
      }]`
    );
    console.log(`R(z) fwd+bwd, N=200, E=${E} [${label}], ms: ${cells.join(" | ")}`);
  }
}

if (Deno.args[0] === "--ab") {
  await alternate(Number(Deno.args[1] ?? 60));
} else {
  await registerBenches();
}

/** Registers the Deno benches (after a few warm-up calls of each variant). */
async function registerBenches(): Promise<void> {
  for (const E of list) {
    const z = tf.softmax(tf.randomNormal([200, E], 0, 1, "float32", 3)) as tf.Tensor2D; // [N, E]
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
}
