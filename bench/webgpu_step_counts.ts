/**
 * `deno run -A bench/webgpu_step_counts.ts [E,...] [rounds] [modes]`: what one training
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
 * - step time: median wall-clock over `rounds` steps (default 3), each ended
 *   by one readback of the step's loss statistics (as a training loop's
 *   logging would), which is not counted above.
 *
 * Modes (default both, alternated round by round so that load drifts hit
 * both alike): `cpu-plan` is today's `trainStep` (router logits, one
 * readback, CPU plan, then the taped pass); `device-plan` is
 * {@linkcode deviceTrainStep} (routing planned on the device inside the one
 * taped pass). The counted step is the step function alone. Prints one JSON
 * object per (E, mode). Timings are only comparable within one run (the
 * machine may be shared).
 *
 * @module
 */

import { tf } from "../src/deps.ts";
import { type StepResult, trainStep } from "../src/train/classifier_task.ts";
import type { MoeClassifier } from "../src/models/classifier.ts";
import type { RoutedBatch } from "../src/moe/moe_layer.ts";
import type { AdamW } from "../src/train/optim.ts";
import type { RegularizerSettings } from "../src/moe/moe_layer.ts";
import { tfSeed } from "../src/rng.ts";
import {
  type DeviceRoutedBatch,
  deviceRoutedBatch,
  disposeDeviceRouted,
} from "../src/moe/routing_webgpu_batch.ts";
import { benchBackend, benchBatch, benchModel, warmUp } from "./setup.ts";

/**
 * The classifier's training step with the routing planned on the device,
 * inside the gradient tape, in the one forward pass (no readback): what
 * `trainStep` would do on webgpu with `MoeLayer` using `deviceRoutedBatch`.
 * Same noise draw as `MoeLayer.route` (seeded `randomNormal([N, E])`).
 *
 * @example
 * ```ts
 * // See the main block of this file.
 * ```
 */
export function deviceTrainStep(
  model: MoeClassifier,
  opt: AdamW,
  x: tf.Tensor2D,
  y: tf.Tensor1D,
  o: { noiseSeed: number; reg: RegularizerSettings | null; lr: number },
): { stats: tf.Tensor1D; routed: DeviceRoutedBatch } {
  const layer = model.moe;
  const { topK: k, capacityFactor, noiseStd, numExperts: E } = layer.config;
  let stats: tf.Tensor1D | null = null;
  let routed: DeviceRoutedBatch | null = null;
  const vars = Object.values(model.params);
  const { value, grads } = tf.variableGrads(() => {
    const logits = layer.logits(x); // [N, E]
    const noise = noiseStd > 0
      ? tf.randomNormal([x.shape[0], E], 0, noiseStd, "float32", tfSeed(o.noiseSeed)) as tf.Tensor2D
      : null;
    const selection = noise ? tf.add(logits, noise) as tf.Tensor2D : logits; // [N, E]
    const r0 = deviceRoutedBatch(selection, noise, { k, capacityFactor, counts: true });
    tf.keep(r0.dispatch.forward);
    tf.keep(r0.dispatch.backward);
    tf.keep(r0.combine.backward);
    tf.keep(r0.chosen);
    if (r0.noise) tf.keep(r0.noise);
    if (r0.counts) tf.keep(r0.counts);
    routed = r0;
    const r = model.forward(x, r0 as unknown as RoutedBatch, y, o.reg);
    stats = tf.keep(tf.stack([r.loss, r.ce, r.aux, r.reg, r.correct]) as tf.Tensor1D);
    return r.loss as tf.Scalar;
  }, vars);
  const byVarName = new Map(Object.entries(model.params).map(([k, v]) => [v.name, k]));
  const named = Object.fromEntries(Object.entries(grads).map(([k, g]) => [byVarName.get(k)!, g]));
  opt.step(named, model.params, o.lr);
  tf.dispose([value, ...Object.values(grads)]);
  return { stats: stats!, routed: routed! };
}

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

/** One step's figures, for a routing mode. */
async function measure(
  label: string,
  step: () => Promise<{ stats: tf.Tensor1D; done: () => void }>,
  steps: number,
): Promise<Record<string, unknown>> {
  // 1. Reads, writes and dispatches of one step (the step's own stats readback not included).
  const { result, counts } = await countStep(() => step());
  await result.stats.data();
  result.stats.dispose();
  result.done();
  // 2. tfjs kernels of one step (the profiler reads outputs back: not counted in 1).
  let profiled: { stats: tf.Tensor1D; done: () => void } | null = null;
  const profile = await tf.profile(async () => {
    profiled = await step();
  });
  await profiled!.stats.data();
  profiled!.stats.dispose();
  profiled!.done();
  const kernelNames: Record<string, number> = {};
  for (const k of profile.kernels) kernelNames[k.name] = (kernelNames[k.name] ?? 0) + 1;
  // 3. Step times, each ended by the stats readback.
  const times: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    const r = await step();
    await r.stats.data();
    r.stats.dispose();
    r.done();
    times.push(performance.now() - t0);
  }
  return {
    routing: label,
    ...counts,
    kernels: profile.kernels.length,
    kernelNames: Object.fromEntries(Object.entries(kernelNames).sort((a, b) => b[1] - a[1])),
    stepMs: times.map(Math.round),
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

if (import.meta.main) {
  const { info, label } = await benchBackend(Deno.env.get("MOGE_BACKEND") ?? "webgpu");
  const list = (Deno.args[0] ?? "16,64").split(",").map(Number);
  const rounds = Number(Deno.args[1] ?? 3);
  const modes = (Deno.args[2] ?? "cpu-plan,device-plan").split(",");
  const batch = benchBatch();
  for (const E of list) {
    const m = benchModel("moge", E, 64, batch);
    await warmUp(m, 2);
    let seed = 100;
    const o = () => ({ noiseSeed: seed++, reg: m.reg, lr: 0 }); // lr 0: the weights stay put
    const run = {
      "cpu-plan": async () => {
        const r: StepResult = await trainStep(m.model, m.opt, batch.x, batch.y, o());
        return { stats: r.stats, done: () => {} };
      },
      "device-plan": () => {
        const r = deviceTrainStep(m.model, m.opt, batch.x, batch.y, o());
        return Promise.resolve({ stats: r.stats, done: () => disposeDeviceRouted(r.routed) });
      },
    } as Record<string, () => Promise<{ stats: tf.Tensor1D; done: () => void }>>;
    for (const mode of modes) {
      const r = await run[mode]();
      await r.stats.data();
      r.stats.dispose();
      r.done(); // warm-up (compiles the mode's shaders)
    }
    // Alternate the modes round by round, so that load drifts hit both alike.
    const results: Record<string, Record<string, unknown>> = {};
    for (let round = 0; round < rounds; round++) {
      for (const mode of modes) {
        if (round === 0) {
          results[mode] = await measure(mode, run[mode], 1);
          continue;
        }
        const t0 = performance.now();
        const r = await run[mode]();
        await r.stats.data();
        r.stats.dispose();
        r.done();
        (results[mode].stepMs as number[]).push(Math.round(performance.now() - t0));
      }
    }
    for (const mode of modes) {
      const r = results[mode];
      console.log(JSON.stringify({
        model: "classifier",
        E,
        topK: 1,
        hiddenDim: 64,
        batch: batch.x.shape[0],
        backend: info.backend,
        adapter: label,
        ...r,
        stepMsMedian: Math.round(median(r.stepMs as number[])),
      }));
    }
    m.dispose();
  }
  tf.dispose([batch.x, batch.y]);
}
