/**
 * `deno run -A bench/webgpu_step_counts.ts [E,...] [steps]`: what one training
 * step of the Fashion-MNIST classifier (MoGE mode, top-1, d_ff 64, batch 200,
 * C_f 4, the benchmark settings of `bench/setup.ts`) costs on the current
 * backend (`MOGE_BACKEND`, default webgpu), for each E (default 16,64):
 *
 * - readbacks: calls of the backend's `read` / `readSync` (what `data()` and
 *   `dataSync()` reach; a `read` that calls `readSync` counts once), and the
 *   bytes they return;
 * - uploads: calls of the backend's `write` (new tensors from CPU values);
 * - dispatches: WebGPU programs run (`runWebGPUProgram`, one compute pass
 *   each; webgpu only);
 * - kernels: tfjs kernels run, from `tf.profile` (counted in a separate step,
 *   since the profiler reads every kernel's output back);
 * - step time: median wall-clock of `steps` steps (default 3), each ended by
 *   one readback of the step's loss statistics (as a training loop's logging
 *   would), which is not counted above.
 *
 * The counted step is `trainStep` alone, as the training loop calls it. Prints
 * one JSON object per E. Timings are only comparable within one run (the
 * machine may be shared).
 *
 * @module
 */

import { tf } from "../src/deps.ts";
import { trainStep } from "../src/train/classifier_task.ts";
import { benchBackend, benchBatch, benchModel, warmUp } from "./setup.ts";

/** What one step cost. */
export interface StepCounts {
  /** Backend reads (data / dataSync). */
  readbacks: number;
  /** Bytes those reads returned. */
  bytesRead: number;
  /** Backend writes (uploads of CPU values). */
  uploads: number;
  /** Bytes uploaded. */
  bytesUploaded: number;
  /** WebGPU programs dispatched (0 off webgpu). */
  dispatches: number;
  /** Dispatches by shader key (tfjs's program name), most frequent first. */
  programs: Record<string, number>;
}

type Fn = (...a: unknown[]) => unknown;

function byteSize(v: unknown): number {
  if (ArrayBuffer.isView(v)) return v.byteLength;
  if (Array.isArray(v)) return v.reduce((s: number, x) => s + byteSize(x), 0);
  return 0;
}

/**
 * Runs f while counting the backend's reads, writes and WebGPU dispatches
 * (its methods wrapped on the instance, restored afterwards).
 *
 * @example
 * ```ts
 * import { tf } from "../src/deps.ts";
 * import { countStep } from "./webgpu_step_counts.ts";
 * const { counts } = await countStep(async () => await tf.scalar(1).data());
 * console.log(counts.readbacks); // 1
 * ```
 */
export async function countStep<T>(
  f: () => Promise<T>,
): Promise<{ result: T; counts: StepCounts }> {
  const backend = tf.backend() as unknown as Record<string, Fn>;
  const counts: StepCounts = {
    readbacks: 0,
    bytesRead: 0,
    uploads: 0,
    bytesUploaded: 0,
    dispatches: 0,
    programs: {},
  };
  const wrapped: string[] = [];
  let depth = 0;
  const wrap = (name: string, onCall: (args: unknown[], out: unknown) => void) => {
    const original = backend[name];
    if (typeof original !== "function") return;
    wrapped.push(name);
    backend[name] = function (this: unknown, ...args: unknown[]) {
      const outer = depth === 0;
      depth++;
      try {
        const out = original.apply(this, args);
        if (outer) onCall(args, out);
        return out;
      } finally {
        depth--;
      }
    };
  };
  wrap("readSync", (_a, out) => {
    counts.readbacks++;
    counts.bytesRead += byteSize(out);
  });
  wrap("read", (_a, out) => {
    counts.readbacks++;
    Promise.resolve(out).then((v) => (counts.bytesRead += byteSize(v)), () => {});
  });
  wrap("write", (a) => {
    counts.uploads++;
    counts.bytesUploaded += byteSize(a[0]);
  });
  // Dispatches nest inside other backend calls (e.g. a read's copy), so count them apart.
  const run = backend.runWebGPUProgram;
  if (typeof run === "function") {
    wrapped.push("runWebGPUProgram");
    backend.runWebGPUProgram = function (this: unknown, ...args: unknown[]) {
      counts.dispatches++;
      const key = (args[0] as { shaderKey?: string }).shaderKey ?? "?";
      counts.programs[key] = (counts.programs[key] ?? 0) + 1;
      return run.apply(this, args);
    };
  }
  try {
    const result = await f();
    await new Promise((r) => setTimeout(r, 0)); // let pending read byte counts land
    counts.programs = Object.fromEntries(
      Object.entries(counts.programs).sort((a, b) => b[1] - a[1]),
    );
    return { result, counts };
  } finally {
    for (const name of wrapped) delete backend[name];
  }
}

if (import.meta.main) {
  const { info, label } = await benchBackend(Deno.env.get("MOGE_BACKEND") ?? "webgpu");
  const list = (Deno.args[0] ?? "16,64").split(",").map(Number);
  const steps = Number(Deno.args[1] ?? 3);
  const batch = benchBatch();
  for (const E of list) {
    const m = benchModel("moge", E, 64, batch);
    await warmUp(m, 2);
    let seed = 100;
    const step = () =>
      trainStep(m.model, m.opt, batch.x, batch.y, { noiseSeed: seed++, reg: m.reg, lr: 0 });
    // 1. Reads, writes and dispatches of one step.
    const { result, counts } = await countStep(() => step());
    await result.stats.data();
    result.stats.dispose();
    // 2. tfjs kernels of one step (the profiler reads outputs back: not counted in 1).
    let statsOfProfiled: tf.Tensor | null = null;
    const profile = await tf.profile(async () => {
      const r = await step();
      statsOfProfiled = r.stats;
    });
    await statsOfProfiled!.data();
    statsOfProfiled!.dispose();
    // 3. Step time.
    const times: number[] = [];
    for (let i = 0; i < steps; i++) {
      const t0 = performance.now();
      const r = await step();
      await r.stats.data();
      r.stats.dispose();
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    console.log(JSON.stringify({
      model: "classifier",
      E,
      topK: 1,
      hiddenDim: 64,
      batch: batch.x.shape[0],
      backend: info.backend,
      adapter: label,
      ...counts,
      kernels: profile.kernels.length,
      kernelNames: Object.fromEntries(
        Object.entries(
          profile.kernels.reduce((h: Record<string, number>, k) => {
            h[k.name] = (h[k.name] ?? 0) + 1;
            return h;
          }, {}),
        ).sort((a, b) => b[1] - a[1]),
      ),
      stepMsMedian: Math.round(times[Math.floor(times.length / 2)]),
      stepMs: times.map(Math.round),
    }));
    m.dispose();
  }
  tf.dispose([batch.x, batch.y]);
}
