/**
 * `deno run -A bench/step_switches.ts [rounds]`: what each recent change to
 * the classifier's wasm training step saves, measured by switching it off.
 * The step (batch 200, top-1, C_f 4, d_ff 64, learning rate 0 so that every
 * step does the same work) runs in three variants, alternated step by step in
 * one process (`alternate.ts`):
 *
 * - `now`: as it runs;
 * - `logits twice`: the router logits that `select` computed on the tape are
 *   dropped before the forward pass, which then computes `X·W` again, as
 *   every step did before (same values and gradients bit for bit:
 *   test/router_logits_reuse_test.ts);
 * - `adamw ts`: AdamW runs its TypeScript loop instead of the SIMD loop
 *   (`useSimdAdamW(false)`; the same numbers bit for bit: test/optim_test.ts);
 * - `experts xnnpack`: experts with few rows multiply with tfjs-wasm's
 *   matmul instead of the SIMD products (`useSmallMatmul(false)`; the same
 *   numbers to float32 rounding: test/moe_layer_test.ts).
 *
 * E from `MOGE_BENCH_E` (default 64,400), MoE and MoGE. Prints median
 * [quartiles] ms per variant and the median [quartiles] of the per-round
 * ratio now / variant.
 *
 * @module
 */

import { tf } from "../src/deps.ts";
import { useBackend } from "../src/backend.ts";
import { disposeRouted, type RoutedBatch } from "../src/moe/moe_layer.ts";
import { routeInTape } from "../src/models/transformer.ts";
import { useSimdAdamW } from "../src/ops/adamw_simd.ts";
import { useSmallMatmul } from "../src/ops/small_matmul_simd.ts";
import { applyGradients } from "../src/train/task.ts";
import { alternateTimes } from "./alternate.ts";
import { benchBatch, benchModel } from "./setup.ts";

const rounds = Number(Deno.args[0] ?? 30);
const list = (Deno.env.get("MOGE_BENCH_E") ?? "64,400").split(",").map(Number);
await useBackend("wasm");
const loadStart = Deno.loadavg();
const q = (a: number[], p: number) =>
  a.slice().sort((x, y) => x - y)[Math.floor(p * (a.length - 1))];
const fmt = (a: number[], d = 1) =>
  `${q(a, 0.5).toFixed(d)} [${q(a, 0.25).toFixed(d)}, ${q(a, 0.75).toFixed(d)}]`;
const batch = benchBatch();
for (const E of list) {
  for (const mode of ["moe", "moge"] as const) {
    const m = benchModel(mode, E, 64, batch);
    let i = 0;
    /** One training step as `trainStep` takes it, with the given switches. */
    const step = (o: { logitsTwice?: boolean; adamwTs?: boolean; xnnpack?: boolean }) => () => {
      const s = i++;
      const simd = useSimdAdamW(!o.adamwTs);
      const small = useSmallMatmul(!o.xnnpack);
      let routed: RoutedBatch | null = null;
      try {
        applyGradients(m.model.params, m.opt, () => {
          routed = routeInTape(m.model.moe, { x: batch.x }, {
            training: true,
            noiseSeed: s,
            step: s,
          });
          if (o.logitsTwice && routed.decision?.logits) {
            routed.decision.logits.tensor.dispose();
            routed.decision.logits = null;
          }
          return m.model.forward(batch.x, routed, batch.y, mode === "moge" ? m.reg : null)
            .loss as tf.Scalar;
        }, 0);
      } finally {
        useSimdAdamW(simd);
        useSmallMatmul(small);
        if (routed) disposeRouted(routed);
      }
      return Promise.resolve();
    };
    const t = await alternateTimes(
      {
        now: step({}),
        "logits twice": step({ logitsTwice: true }),
        "adamw ts": step({ adamwTs: true }),
        "experts xnnpack": step({ xnnpack: true }),
      },
      rounds,
      3,
    );
    const ratio = (k: string) => t.now.map((v, r) => v / t[k][r]);
    console.log(
      `E=${E} ${mode}: now ${fmt(t.now)} ms | logits twice ${fmt(t["logits twice"])} ms, ` +
        `now/it ${fmt(ratio("logits twice"), 3)} | adamw ts ${fmt(t["adamw ts"])} ms, ` +
        `now/it ${fmt(ratio("adamw ts"), 3)} | experts xnnpack ${fmt(t["experts xnnpack"])} ms, ` +
        `now/it ${fmt(ratio("experts xnnpack"), 3)}`,
    );
    m.dispose();
  }
}
console.log(`load average at start ${loadStart.join(", ")}, at end ${Deno.loadavg().join(", ")}`);
batch.x.dispose();
batch.y.dispose();
