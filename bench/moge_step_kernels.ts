/**
 * `deno run -A bench/moge_step_kernels.ts [rounds]`: where the MoGE step's
 * extra time goes. The classifier's wasm training step (batch 200, top-1,
 * C_f 4, d_ff 64, λ 4e-3, σ 1.5, learning rate 0), MoE and MoGE built from
 * the same seed so that they route identically, profiled with `tf.profile`
 * in alternation. Prints, per E (`MOGE_BENCH_E`, default 64,400), the
 * kernels per step and the summed kernel time of each mode, then every
 * kernel name whose count per step differs between the modes, with its
 * count and time per step in each. Kernel times include nested kernels
 * twice (a `tf.customGrad` scope and the kernels inside it); the counts are
 * exact, the times as noisy as the machine.
 *
 * @module
 */

import { tf } from "../src/deps.ts";
import { useBackend } from "../src/backend.ts";
import { benchBatch, benchModel, warmUp } from "./setup.ts";

const rounds = Number(Deno.args[0] ?? 10);
const list = (Deno.env.get("MOGE_BENCH_E") ?? "64,400").split(",").map(Number);
await useBackend("wasm");
const loadStart = Deno.loadavg();
const batch = benchBatch();
for (const E of list) {
  const models = { moe: benchModel("moe", E, 64, batch), moge: benchModel("moge", E, 64, batch) };
  await warmUp(models.moe);
  await warmUp(models.moge);
  type Tally = Record<string, { n: number; ms: number }>;
  const tally: Record<"moe" | "moge", Tally> = { moe: {}, moge: {} };
  for (let r = 0; r < rounds; r++) {
    for (const mode of (r % 2 ? ["moge", "moe"] : ["moe", "moge"]) as ("moe" | "moge")[]) {
      const info = await tf.profile(() => models[mode].step());
      for (const k of info.kernels) {
        const t = tally[mode][k.name] ??= { n: 0, ms: 0 };
        t.n++;
        t.ms += Number(k.kernelTimeMs) || 0;
      }
    }
  }
  const per = (t: Tally, f: "n" | "ms") => Object.values(t).reduce((s, v) => s + v[f], 0) / rounds;
  console.log(
    `E=${E}: kernels per step MoE ${per(tally.moe, "n")}, MoGE ${per(tally.moge, "n")}; ` +
      `kernel ms per step MoE ${per(tally.moe, "ms").toFixed(2)}, MoGE ${
        per(tally.moge, "ms").toFixed(2)
      }`,
  );
  const names = new Set([...Object.keys(tally.moe), ...Object.keys(tally.moge)]);
  for (const name of [...names].sort()) {
    const a = tally.moe[name] ?? { n: 0, ms: 0 }, b = tally.moge[name] ?? { n: 0, ms: 0 };
    if (a.n === b.n) continue;
    console.log(
      `  ${name.padEnd(24)} per step: MoE ${a.n / rounds} kernels ${
        (a.ms / rounds).toFixed(3)
      } ms` +
        ` | MoGE ${b.n / rounds} kernels ${(b.ms / rounds).toFixed(3)} ms`,
    );
  }
  models.moe.dispose();
  models.moge.dispose();
}
console.log(`load average at start ${loadStart.join(", ")}, at end ${Deno.loadavg().join(", ")}`);
batch.x.dispose();
batch.y.dispose();
