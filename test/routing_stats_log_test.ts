import fc from "fast-check";
import { deepEqual, equal, throws } from "./asserts.ts";
import { availableBackends } from "./backends.ts";
import { tf, useBackend } from "../mod.ts";
import { RoutingStatsLog } from "../src/moe/routing_stats_log.ts";
import { planRouting } from "../src/moe/routing.ts";
import {
  disposeDevicePlan,
  planRoutingWebGPU,
  routingCountsWebGPU,
} from "../src/moe/routing_webgpu.ts";

const backends = await availableBackends();

/**
 * Counts every readback (`data`/`dataSync` of the backend: `read`/`readSync`) while f runs; a
 * `read` that calls `readSync` (as the cpu backend's does) counts once.
 */
async function countReads<T>(f: () => Promise<T>): Promise<{ result: T; reads: number }> {
  const backend = tf.backend() as unknown as Record<string, (...a: unknown[]) => unknown>;
  const read = backend.read;
  const readSync = backend.readSync;
  let reads = 0;
  let depth = 0;
  const counted = (f: (...a: unknown[]) => unknown) =>
    function (this: unknown, ...a: unknown[]) {
      if (depth === 0) reads++;
      depth++;
      try {
        return f.apply(this, a);
      } finally {
        depth--;
      }
    };
  backend.read = counted(read);
  backend.readSync = counted(readSync);
  try {
    return { result: await f(), reads };
  } finally {
    delete backend.read;
    delete backend.readSync;
  }
}

for (const backend of backends) {
  Deno.test(`[${backend}] RoutingStatsLog: the sums of the steps' counts, read back once per interval (law: read = Σ added)`, async () => {
    await useBackend(backend);
    const before = tf.memory().numTensors;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 6 }),
        fc.array(
          fc.record({
            N: fc.integer({ min: 1, max: 9 }),
            k: fc.integer({ min: 1, max: 2 }),
            seed: fc.nat(),
          }),
          { minLength: 0, maxLength: 5 },
        ),
        async (E0, steps) => {
          const E = Math.max(E0, 2);
          const log = new RoutingStatsLog(E);
          const demand = new Int32Array(E);
          const load = new Int32Array(E);
          let choices = 0;
          let dropped = 0;
          const { reads } = await countReads(async () => {
            for (const { N, k, seed } of steps) {
              const scores = Array.from({ length: N * E }, (_, i) => Math.sin(seed + i * 1.3));
              const plan = planRouting(scores, N, E, { k, capacityFactor: 0.5 });
              plan.demand.forEach((v, e) => (demand[e] += v));
              plan.load.forEach((v, e) => (load[e] += v));
              choices += N * k;
              dropped += plan.dropped;
              log.add(tf.tensor2d([...plan.demand, ...plan.load], [2, E], "int32"), N * k);
            }
            equal(log.steps, steps.length);
            const s = await log.read();
            equal(s.steps, steps.length);
            equal(s.choices, choices);
            deepEqual(s.demand, demand);
            deepEqual(s.load, load);
            equal(s.dropped, dropped);
            equal(s.dropRate, choices > 0 ? dropped / choices : 0);
            // A new interval starts empty.
            equal((await log.read()).steps, 0);
          });
          // One readback for the whole interval (none for an empty one), then none for the empty read.
          equal(reads, steps.length > 0 ? 1 : 0);
          log.dispose();
        },
      ),
      { numRuns: backend === "webgpu" ? 10 : 40 },
    );
    equal(tf.memory().numTensors, before);
  });

  Deno.test(`[${backend}] RoutingStatsLog refuses counts of the wrong shape (and frees them)`, async () => {
    await useBackend(backend);
    const before = tf.memory().numTensors;
    const log = new RoutingStatsLog(3);
    throws(
      () => log.add(tf.zeros([2, 4], "int32"), 1),
      /^RangeError: RoutingStatsLog\.add: counts must be \[2, 3\], got \[2,4\]$/,
    );
    throws(() => new RoutingStatsLog(0), /E \(experts\) = 0/);
    log.dispose();
    equal(tf.memory().numTensors, before);
  });
}

if (backends.includes("webgpu")) {
  Deno.test("[webgpu] device counts -> RoutingStatsLog: 3 planned steps, 0 readbacks until read(), then 1", async () => {
    await useBackend("webgpu");
    const N = 12, E = 4, k = 2;
    const log = new RoutingStatsLog(E);
    const load = new Int32Array(E);
    let dropped = 0;
    const { reads } = await countReads(async () => {
      for (let step = 0; step < 3; step++) {
        const scores = Float32Array.from({ length: N * E }, (_, i) => Math.cos(step * 5 + i));
        planRouting(scores, N, E, { k, capacityFactor: 1 }).load.forEach((v, e) => (load[e] += v));
        dropped += planRouting(scores, N, E, { k, capacityFactor: 1 }).dropped;
        const st = tf.tensor2d(scores, [N, E]);
        const plan = planRoutingWebGPU(st, { k, capacityFactor: 1 });
        log.add(routingCountsWebGPU(plan), N * k);
        st.dispose();
        disposeDevicePlan(plan);
      }
      return await Promise.resolve(0);
    });
    equal(reads, 0);
    const { result: s, reads: r2 } = await countReads(() => log.read());
    equal(r2, 1);
    deepEqual(s.load, load);
    equal(s.dropped, dropped);
    log.dispose();
  });
}
