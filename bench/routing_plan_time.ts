/**
 * `deno run -A bench/routing_plan_time.ts [N:E:k,...] [rounds]`: time to plan
 * one batch's routing on webgpu, device plan (`planRoutingWebGPU`, ended by a
 * 4-byte readback so the GPU work is done) against the CPU plan (awaited
 * readback of the `[N, E]` scores + `planRouting` + upload of the index
 * tensors, as `MoeLayer.route` does), alternated round by round; medians.
 * Defaults: the classifier (200:16:1), vit-tiny (2176:32:1), lm-small
 * (1024:16:2) and a large LM batch (24576:16:2); C_f 1.25.
 *
 * @module
 */

import { tf } from "../src/deps.ts";
import { describeBackend, useBackend } from "../src/backend.ts";
import { planRouting } from "../src/moe/routing.ts";
import { disposeDevicePlan, planRoutingWebGPU } from "../src/moe/routing_webgpu.ts";

const info = await useBackend("webgpu");
const cases = (Deno.args[0] ?? "200:16:1,2176:32:1,1024:16:2,24576:16:2").split(",")
  .map((c) => c.split(":").map(Number));
const rounds = Number(Deno.args[1] ?? 5);
const capacityFactor = 1.25;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

for (const [N, E, k] of cases) {
  const scores = tf.randomNormal([N, E], 0, 1, "float32", 3) as tf.Tensor2D;
  const device = async () => {
    const plan = planRoutingWebGPU(scores, { k, capacityFactor });
    const last = plan.slotOfChoice.slice([0], [1]);
    await last.data();
    tf.dispose(last);
    disposeDevicePlan(plan);
  };
  const cpu = async () => {
    const values = (await scores.data()) as Float32Array;
    const plan = planRouting(values, N, E, { k, capacityFactor });
    const t = [plan.tokenOfSlot, plan.slotOfChoice, plan.choiceOfSlot, plan.expert].map((a) =>
      tf.tensor1d(a, "int32")
    );
    tf.dispose(t);
  };
  await device();
  await cpu(); // warm-up (compiles the shaders)
  const times: Record<string, number[]> = { device: [], cpu: [] };
  for (let r = 0; r < rounds; r++) {
    for (const [name, f] of [["device", device], ["cpu", cpu]] as const) {
      const t0 = performance.now();
      await f();
      times[name].push(performance.now() - t0);
    }
  }
  console.log(JSON.stringify({
    N,
    E,
    k,
    capacityFactor,
    adapter: describeBackend(info),
    deviceMsMedian: +median(times.device).toFixed(1),
    cpuMsMedian: +median(times.cpu).toFixed(1),
    deviceMs: times.device.map((t) => +t.toFixed(1)),
    cpuMs: times.cpu.map((t) => +t.toFixed(1)),
  }));
  scores.dispose();
}
