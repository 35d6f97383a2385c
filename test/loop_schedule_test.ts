import { tf } from "../src/deps.ts";
import { useBackend } from "../src/backend.ts";
import { type LoopOptions, trainAndEvaluate } from "../src/train/loop.ts";
import { cosineWithWarmup } from "../src/train/lr_schedule.ts";
import { sigmaScheduleOf } from "../src/train/moge_settings.ts";
import { DEFAULT_CONFIG, type TrainConfig } from "../src/train/classifier_config.ts";
import type { Task } from "../src/train/task.ts";
import { deepEqual, equal } from "./asserts.ts";

// The loop (src/train/loop.ts) owns the σ and learning-rate schedules; the
// tasks only receive the values. These tests drive it with a task that trains
// one scalar and records what each step and evaluation was handed, so they
// fail if the loop hands step s the schedule of another step (e.g. σ(s + 1),
// which would train the authors' first step below σ_max), or if a resumed run
// restarts or skips part of either schedule.

/** What the recording task was handed. */
interface Calls {
  steps: { step: number; sigma: number; lr: number }[];
  evals: { step: number; sigma: number }[];
  lines: { step: number; sigma: number; lr: number }[];
}

/** A task of T steps, 4 per "epoch", 3 of warm-up, that records its calls into `rec`. */
function recordingTask(
  T: number,
  rec: Calls,
): Task<TrainConfig, null, number, Calls["lines"][0], object> {
  return {
    name: "recording",
    title: "records the schedules the loop hands it",
    defaults: DEFAULT_CONFIG,
    presets: {},
    fields: [],
    validate() {},
    defaultOutDir: () => "unused",
    load: () => Promise.resolve(null),
    open(config) {
      const w = tf.variable(tf.scalar(1), true, "w");
      return {
        config,
        model: { params: { w }, dispose: () => w.dispose() },
        totalSteps: T,
        warmupSteps: 3,
        lrDecay: "cosine",
        moeLayers: 0,
        stepsPerEpoch: 4,
        excludeFromWeightDecay: () => false,
        isEvalStep: (step) => step % 4 === 0,
        configExtras: () => ({}),
        step(step, { sigma, lr, opt }) {
          rec.steps.push({ step, sigma, lr });
          const g = tf.scalar(0.5);
          opt.step({ w: g }, { w }, lr);
          g.dispose();
          return Promise.resolve({ stats: tf.tensor1d([1]), count: 1, plans: [] });
        },
        progress: () => ({ loss: 0 }),
        evaluate(step, sigma) {
          rec.evals.push({ step, sigma });
          return Promise.resolve(0);
        },
        metrics: (iv, _ev, { sigma, lr }) => ({ step: iv.step, sigma, lr }),
        summary: () => Promise.resolve({}),
      };
    },
  };
}

const T = 12;
const cfg: TrainConfig = {
  ...DEFAULT_CONFIG,
  backend: "cpu",
  sigmaMax: 10,
  sigmaMin: 2,
  gamma: 0.3,
  learningRate: 1e-2,
};
// The expected schedules, from the two schedule modules (tested by hand values
// in sigma_schedule_test.ts and lr_schedule_test.ts): 0-based step s is the
// authors' step s + 1, which trains at σ((s + 1 − 1)/T) = sigma(s).
const sigma = sigmaScheduleOf(cfg, T);
const lr = cosineWithWarmup({ baseLr: cfg.learningRate, warmupSteps: 3, totalSteps: T });

/** A fresh record of calls. */
const calls = (): Calls => ({ steps: [], evals: [], lines: [] });

/** Runs the recording task into `outDir` (a new run unless `o.resume`). */
function train(outDir: string, rec: Calls, o: Partial<LoopOptions<null, Calls["lines"][0]>> = {}) {
  return trainAndEvaluate(recordingTask(T, rec), cfg, {
    outDir,
    data: null,
    overwrite: !o.resume,
    ...o,
  });
}

Deno.test("trainAndEvaluate hands 0-based step s σ(s) and lr(s): step 0 trains at σ_max and the first warm-up rate", async () => {
  await useBackend("cpu");
  const outDir = await Deno.makeTempDir();
  try {
    const rec = calls();
    await train(outDir, rec, { onEval: (l) => rec.lines.push(l) });
    const s = Array.from({ length: T }, (_, i) => i);
    deepEqual(rec.steps, s.map((i) => ({ step: i, sigma: sigma(i), lr: lr(i) })));
    equal(rec.steps[0].sigma, cfg.sigmaMax, "the first step trains at σ_max");
    equal(rec.steps[0].lr, cfg.learningRate / 3, "the first step is 1/3 of the way up the warm-up");
    // After step s steps an evaluation runs at σ(s) (where the next step would train), and its
    // metrics line reports the rate of the interval's last step, lr(s − 1).
    deepEqual(rec.evals, [4, 8, 12].map((i) => ({ step: i, sigma: sigma(i) })));
    deepEqual(rec.lines, [4, 8, 12].map((i) => ({ step: i, sigma: sigma(i), lr: lr(i - 1) })));
  } finally {
    await Deno.remove(outDir, { recursive: true });
  }
});

Deno.test("trainAndEvaluate stopped after 5 steps and resumed continues both schedules where they stopped", async () => {
  await useBackend("cpu");
  const outDir = await Deno.makeTempDir();
  try {
    const straight = calls(), split = calls();
    await train(outDir, straight);
    const first = await train(outDir, split, { stopAfterSteps: 5 });
    equal(first.completed, false);
    equal(split.steps.length, 5);
    let resumedAt = -1;
    await train(outDir, split, { resume: true, onResume: ({ step }) => resumedAt = step });
    equal(resumedAt, 5);
    deepEqual(split.steps, straight.steps);
    deepEqual(split.evals, straight.evals);
  } finally {
    await Deno.remove(outDir, { recursive: true });
  }
});
