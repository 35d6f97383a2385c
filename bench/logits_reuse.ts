/**
 * `deno run -A bench/logits_reuse.ts [rounds]`: what computing the router
 * logits once per training step saves. The classifier's wasm training step
 * (batch 200, top-1, C_f 4, d_ff 64, learning rate 0 so that every step does
 * the same work), once as it runs now (the forward pass reuses the logits
 * `select` computed on the tape) and once with the selected logits dropped
 * before the forward pass, which then computes `X·W` again as every step did
 * before (same values and gradients bit for bit: test/router_logits_reuse_test.ts).
 * The two alternate step by step in one process (`alternate.ts`). E from
 * `MOGE_BENCH_E` (default 64,400); prints median [quartiles] ms per variant
 * and the median of the per-round ratios.
 *
 * @module
 */

import { tf } from "../src/deps.ts";
import { useBackend } from "../src/backend.ts";
import { disposeRouted, type RoutedBatch } from "../src/moe/moe_layer.ts";
import { routeInTape } from "../src/models/transformer.ts";
import { applyGradients } from "../src/train/task.ts";
import { alternateTimes } from "./alternate.ts";
import { benchBatch, benchModel } from "./setup.ts";

const rounds = Number(Deno.args[0] ?? 30);
const list = (Deno.env.get("MOGE_BENCH_E") ?? "64,400").split(",").map(Number);
await useBackend("wasm");
const loadStart = Deno.loadavg();
const q = (a: number[], p: number) =>
  a.slice().sort((x, y) => x - y)[Math.floor(p * (a.length - 1))];
const fmt = (a: number[]) =>
  `${q(a, 0.5).toFixed(1)} [${q(a, 0.25).toFixed(1)}, ${q(a, 0.75).toFixed(1)}]`;
const batch = benchBatch();
for (const E of list) {
  for (const mode of ["moe", "moge"] as const) {
    const m = benchModel(mode, E, 64, batch);
    let i = 0;
    /** One training step as `trainStep` takes it; `again`: forward computes the logits again. */
    const step = (again: boolean) => () => {
      const s = i++;
      let routed: RoutedBatch | null = null;
      applyGradients(m.model.params, m.opt, () => {
        routed = routeInTape(m.model.moe, { x: batch.x }, {
          training: true,
          noiseSeed: s,
          step: s,
        });
        if (again && routed.decision?.logits) {
          routed.decision.logits.tensor.dispose();
          routed.decision.logits = null;
        }
        return m.model.forward(batch.x, routed, batch.y, mode === "moge" ? m.reg : null)
          .loss as tf.Scalar;
      }, 0);
      disposeRouted(routed!);
      return Promise.resolve();
    };
    const t = await alternateTimes({ once: step(false), twice: step(true) }, rounds, 3);
    const ratio = t.once.map((v, r) => v / t.twice[r]);
    console.log(
      `E=${E} ${mode}: logits once ${fmt(t.once)} ms | twice (before) ${fmt(t.twice)} ms | ` +
        `once/twice ${q(ratio, 0.5).toFixed(3)} [${q(ratio, 0.25).toFixed(3)}, ${
          q(ratio, 0.75).toFixed(3)
        }]`,
    );
    m.dispose();
  }
}
console.log(`load average at start ${loadStart.join(", ")}, at end ${Deno.loadavg().join(", ")}`);
batch.x.dispose();
batch.y.dispose();
