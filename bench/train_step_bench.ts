/**
 * `deno bench bench/train_step_bench.ts`: one training step of the
 * Fashion-MNIST model, MoE (baseline) against MoGE, for E = 16 ... 1024
 * (top-1, d_ff 64, batch 200), and for d_ff 64 vs 512 at a few E. Each E is a
 * group, so `deno bench` prints MoGE's time relative to MoE's.
 *
 * Backend: `MOGE_BACKEND=webgpu|wasm|cpu` (default auto); E list:
 * `MOGE_BENCH_E=16,32`. Names carry the backend and adapter.
 *
 * @module
 */

import { BENCH, benchBackend, benchBatch, benchModel, warmUp } from "./setup.ts";

const { label } = await benchBackend();
const batch = benchBatch();
const list = (Deno.env.get("MOGE_BENCH_E") ?? "16,32,64,128,256,400,1024").split(",").map(Number);
const cases: [number, number][] = [
  ...list.map((E) => [E, 64] as [number, number]),
  ...list.filter((E) => [32, 128, 400].includes(E)).map((E) => [E, 512] as [number, number]),
];

for (const [E, hidden] of cases) {
  const group = `E=${E} d_ff=${hidden} [${label}]`;
  for (const mode of ["moe", "moge"] as const) {
    const m = benchModel(mode, E, hidden, batch);
    await warmUp(m);
    Deno.bench({
      name: `${
        mode === "moe" ? "MoE" : "MoGE"
      } step (E=${E}, d_ff=${hidden}, batch ${BENCH.batch})`,
      group,
      baseline: mode === "moe",
      n: 10,
      warmup: 2,
      async fn() {
        await m.step();
      },
    });
  }
}
