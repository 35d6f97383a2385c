/**
 * `deno run -A bench/webgpu_step_counts.ts [targets] [rounds] [modes] [out]`:
 * what one training step costs on the current backend (`MOGE_BACKEND`,
 * default webgpu), "before" (routing planned on the CPU after a readback) and
 * "after" (routing planned on the device inside the one taped pass), for
 * each target (default `classifier:16,classifier:64,classifier:400,vit-tiny,lm-small`):
 *
 * - `classifier:E`: the Fashion-MNIST classifier (MoGE mode, top-1, d_ff 64,
 *   batch 200, C_f 4: the benchmark settings of `bench/setup.ts`);
 * - `vit-tiny`: the ViT preset (2 MoE layers of 32 experts), a batch of
 *   `MOGE_VIT_BATCH` (default 32) random images;
 * - `lm-small`: the LM preset (3 MoE layers of 16 experts), a batch of
 *   `MOGE_LM_BATCH` (default 4) random windows of its 64-token context.
 *
 * Each mode first runs `MOGE_WARMUP` (default 2) untimed steps.
 *
 * Figures per step:
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
 * both alike): `before` is the old step, rebuilt from today's public API as
 * main had it: the classifier routes with the async `route` (router logits,
 * one readback, CPU plan) and recomputes the logits in the tape; the ViT and
 * the LM run an untaped planning pass (`forwardAsync`, one readback per MoE
 * layer) and replay its plans in the taped pass (`forwardWith`): two forward
 * passes. `after` is today's `trainStep` / `vitTrainStep` / `lmTrainStep`
 * (one taped pass; device plan on webgpu, with the routing counts kept on
 * the device). All steps use learning rate 0, so every round sees the same
 * weights. Prints one JSON object per (target, mode); with `out`, also
 * writes `out.json` and `out.md`. Timings are only comparable within one
 * run (the machine may be shared).
 *
 * @module
 */

import { tf } from "../src/deps.ts";
import { trainStep } from "../src/train/classifier_task.ts";
import { disposeRouted } from "../src/moe/moe_layer.ts";
import { applyGradients } from "../src/train/task.ts";
import { AdamW } from "../src/train/optim.ts";
import { writeFileAtomic, writeJsonAtomic } from "../src/atomic.ts";
import { disposeVitOutput, VisionTransformer } from "../src/models/vit.ts";
import { disposeLmRouted, MoeLm, tokenNll } from "../src/models/lm.ts";
import {
  DEFAULT_VIT_CONFIG,
  VIT_PRESETS,
  vitConfigOf,
  vitTrainStep,
} from "../src/train/vit_task.ts";
import { DEFAULT_LM_CONFIG, LM_PRESETS, lmModelConfig, lmTrainStep } from "../src/train/lm_task.ts";
import { regularizerSettings } from "../src/train/moge_settings.ts";
import { smoothedCrossEntropy } from "../src/data/augment.ts";
import { benchBackend, benchBatch, benchModel } from "./setup.ts";

/** A step to measure: runs one training step, returns its stats and a cleanup. */
type Step = () => Promise<{ stats: tf.Tensor1D; done: () => void }>;

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
async function measure(label: string, step: Step): Promise<Record<string, unknown>> {
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
  return {
    routing: label,
    ...counts,
    kernels: profile.kernels.length,
    kernelNames: Object.fromEntries(Object.entries(kernelNames).sort((a, b) => b[1] - a[1])),
    stepMs: [] as number[],
  };
}

/** The before / after steps of a target, and what to free at the end. */
interface Target {
  /** Description fields of the JSON line. */
  info: Record<string, unknown>;
  /** The steps by mode. */
  steps: Record<string, Step>;
  /** Frees the model and its batch. */
  dispose: () => void;
}

function classifierTarget(E: number): Target {
  const batch = benchBatch();
  const m = benchModel("moge", E, 64, batch);
  let seed = 100;
  const o = () => ({ noiseSeed: seed++, reg: m.reg, lr: 0 }); // lr 0: the weights stay put
  return {
    info: { model: "classifier", E, topK: 1, hiddenDim: 64, batch: batch.x.shape[0] },
    steps: {
      before: async () => {
        const { noiseSeed, reg, lr } = o();
        const routed = await m.model.route(batch.x, true, noiseSeed);
        let stats: tf.Tensor1D | null = null;
        applyGradients(m.model.params, m.opt, () => {
          const r = m.model.forward(batch.x, routed, batch.y, reg);
          stats = tf.keep(tf.stack([r.loss, r.ce, r.aux, r.reg, r.correct]) as tf.Tensor1D);
          return r.loss as tf.Scalar;
        }, lr);
        disposeRouted(routed);
        return { stats: stats!, done: () => {} };
      },
      after: () => {
        const r = trainStep(m.model, m.opt, batch.x, batch.y, o());
        return Promise.resolve({ stats: r.stats, done: () => r.routing.counts?.dispose() });
      },
    },
    dispose: () => {
      m.dispose();
      tf.dispose([batch.x, batch.y]);
    },
  };
}

function vitTarget(): Target {
  const cfg = { ...DEFAULT_VIT_CONFIG, ...VIT_PRESETS["vit-tiny"], dataset: "fixture" as const };
  const B = Number(Deno.env.get("MOGE_VIT_BATCH") ?? 32);
  const model = new VisionTransformer(vitConfigOf(cfg), 1);
  const opt = new AdamW({
    learningRate: 1e-3,
    excludeFromWeightDecay: VisionTransformer.excludeFromWeightDecay,
  });
  const x = tf.randomUniform([B, 784], 0, 1, "float32", 3) as tf.Tensor2D;
  const y = tf.tensor1d(Array.from({ length: B }, (_, i) => i % 10), "int32");
  const reg = regularizerSettings({ ...cfg, mode: "moge" }, 1.5);
  let seed = 100;
  const loss = (out: { logits: tf.Tensor2D; penalty: tf.Tensor }) => {
    const l = tf.add(smoothedCrossEntropy(out.logits, y, cfg.labelSmoothing), out.penalty);
    return { loss: l as tf.Scalar, stats: tf.keep(tf.stack([l])) as tf.Tensor1D };
  };
  return {
    info: { model: "vit-tiny", E: cfg.experts, moeLayers: model.moeLayers.size, batch: B },
    steps: {
      before: async () => {
        const fwd = { training: true, seed: seed++, reg };
        const planned = await model.forwardAsync(x, fwd); // the planning pass
        disposeVitOutput(planned.output);
        let stats: tf.Tensor1D | null = null;
        applyGradients(model.params, opt, () => {
          const out = model.forwardWith(x, fwd, (req) => planned.routed[req.index]).output;
          const r = loss(out);
          stats = r.stats;
          return r.loss;
        }, 0);
        model.disposeRouted(planned.routed);
        return { stats: stats!, done: () => {} };
      },
      after: () => {
        const r = vitTrainStep(model, opt, x, y, {
          seed: seed++,
          reg,
          lr: 0,
          labelSmoothing: cfg.labelSmoothing,
        });
        const done = () => r.plans.forEach((p) => p.counts?.dispose());
        return Promise.resolve({ stats: r.stats, done });
      },
    },
    dispose: () => {
      model.dispose();
      opt.dispose();
      tf.dispose([x, y]);
    },
  };
}

function lmTarget(): Target {
  const cfg = { ...DEFAULT_LM_CONFIG, ...LM_PRESETS["lm-small"] };
  const B = Number(Deno.env.get("MOGE_LM_BATCH") ?? 4);
  const V = 90;
  const T = cfg.contextLength;
  const model = new MoeLm(lmModelConfig(cfg, V), 1);
  const opt = new AdamW({ learningRate: 1e-3 });
  const ids = () => tf.randomUniform([B, T], 0, V, "int32", 5) as tf.Tensor2D;
  const x = ids();
  const y = ids();
  const reg = regularizerSettings({ ...cfg, mode: "moge" }, 1.5);
  let seed = 100;
  return {
    info: { model: "lm-small", E: cfg.experts, moeLayers: cfg.layers, batch: B, context: T },
    steps: {
      before: async () => {
        const opts = { training: true, seed: seed++, reg };
        const planned = await model.forwardAsync(x, opts); // the planning pass
        tf.dispose([planned.logits, planned.penalty, planned.regularizer]);
        let stats: tf.Tensor1D | null = null;
        applyGradients(model.params, opt, () => {
          const out = model.forwardWith(x, opts, (_req, i) => planned.routed[i]);
          const l = tf.add(tf.mean(tokenNll(out.logits, y)), out.penalty) as tf.Scalar;
          stats = tf.keep(tf.stack([l])) as tf.Tensor1D;
          return l;
        }, 0);
        disposeLmRouted(planned.routed);
        return { stats: stats!, done: () => {} };
      },
      after: () => {
        const r = lmTrainStep(model, opt, x, y, { seed: seed++, reg, lr: 0 });
        const done = () => r.plans.forEach((p) => p.counts?.dispose());
        return Promise.resolve({ stats: r.stats, done });
      },
    },
    dispose: () => {
      model.dispose();
      opt.dispose();
      tf.dispose([x, y]);
    },
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function targetOf(name: string): Target {
  if (name.startsWith("classifier:")) return classifierTarget(Number(name.slice(11)));
  if (name === "vit-tiny") return vitTarget();
  if (name === "lm-small") return lmTarget();
  throw new RangeError(
    `target "${name}" is invalid: allowed are classifier:E, vit-tiny, lm-small`,
  );
}

/** A markdown table of the results. */
function table(rows: Record<string, unknown>[], command: string, adapter: string): string {
  const lines = [
    `Adapter: ${adapter}. Command: \`${command}\`.`,
    "",
    "| model | E | routing | dispatches | readbacks | bytes read | kernels | step ms (median) |",
    "|---|---|---|---|---|---|---|---|",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.model} | ${r.E} | ${r.routing} | ${r.dispatches} | ${r.readbacks} | ${r.bytesRead} | ${r.kernels} | ${r.stepMsMedian} |`,
    );
  }
  return lines.join("\n") + "\n";
}

if (import.meta.main) {
  const { info, label } = await benchBackend(Deno.env.get("MOGE_BACKEND") ?? "webgpu");
  const targets = (Deno.args[0] ?? "classifier:16,classifier:64,classifier:400,vit-tiny,lm-small")
    .split(",");
  const rounds = Number(Deno.args[1] ?? 3);
  const modes = (Deno.args[2] ?? "before,after").split(",");
  const out = Deno.args[3];
  const warmUps = Number(Deno.env.get("MOGE_WARMUP") ?? 2);
  const rows: Record<string, unknown>[] = [];
  for (const name of targets) {
    const t = targetOf(name);
    for (const mode of modes) {
      for (let i = 0; i < warmUps; i++) {
        const r = await t.steps[mode](); // warm-up (compiles the mode's shaders)
        await r.stats.data();
        r.stats.dispose();
        r.done();
      }
    }
    const before = tf.memory().numTensors;
    // Alternate the modes round by round, so that load drifts hit both alike.
    const results: Record<string, Record<string, unknown>> = {};
    for (const mode of modes) results[mode] = await measure(mode, t.steps[mode]);
    for (let round = 0; round < rounds; round++) {
      for (const mode of modes) {
        const t0 = performance.now();
        const r = await t.steps[mode]();
        await r.stats.data();
        r.stats.dispose();
        r.done();
        (results[mode].stepMs as number[]).push(Math.round(performance.now() - t0));
      }
    }
    const leaked = tf.memory().numTensors - before;
    for (const mode of modes) {
      const r = results[mode];
      const row = {
        ...t.info,
        backend: info.backend,
        adapter: label,
        ...r,
        stepMsMedian: Math.round(median(r.stepMs as number[])),
        leakedTensors: leaked,
      };
      rows.push(row);
      console.log(JSON.stringify(row));
    }
    t.dispose();
  }
  if (out) {
    const command = `deno run -A bench/webgpu_step_counts.ts ${Deno.args.join(" ")}`;
    await writeJsonAtomic(`${out}.json`, { command, rows });
    await writeFileAtomic(`${out}.md`, table(rows, command, label));
  }
}
