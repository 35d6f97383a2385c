/**
 * The training loop: one for every model. A {@linkcode Task} says what
 * differs (model, batches, loss, evaluation, metrics); this loop owns what
 * does not: the learning-rate and σ schedules, AdamW, the run directory
 * (config, metrics, checkpoints, best weights, summary), the single resume
 * branch, stopping on a signal or after n steps, and the progress, eval and
 * checkpoint hooks (as google-research/vmoe's `train_and_evaluate` drives
 * every model from a config and periodic actions).
 *
 * Runs are resumable exactly: data order, augmentation, dropout and routing
 * noise derive from (seed, stream, epoch or step), and a checkpoint holds the
 * weights, the optimizer moments and the loop state.
 *
 * @module
 */

import { tf } from "../deps.ts";
import { type BackendInfo, useBackend } from "../backend.ts";
import { AdamW } from "./optim.ts";
import { cosineWithWarmup } from "./lr_schedule.ts";
import { sigmaScheduleOf } from "./moge_settings.ts";
import { changedFields, type CommonSettings } from "./config_fields.ts";
import type { MogeSettings } from "./moge_settings.ts";
import { openRunDir } from "./run_dir.ts";
import { type Best, type ProgressFigures, RoutingTally, type Task } from "./task.ts";

/** Progress of a run, reported every few steps. */
export interface Progress extends ProgressFigures {
  /** Steps taken. */
  step: number;
  /** Steps of the whole run. */
  totalSteps: number;
  /** Current epoch, from 1 (epoch-based tasks). */
  epoch?: number;
  /** Epochs of the run (epoch-based tasks). */
  epochs?: number;
  /** Steps per second in the current interval. */
  stepsPerSecond: number;
  /** Estimated seconds left. */
  etaSeconds: number;
}

/** Periodic actions of the loop. */
export interface TrainHooks<Line> {
  /** Every `progressEvery` steps and at the end of each interval. */
  onProgress?: (p: Progress) => void;
  /** After each evaluation, with its `metrics.jsonl` line. */
  onEval?: (line: Line) => void;
  /** After each checkpoint. */
  onCheckpoint?: (step: number) => void;
  /** After restoring a checkpoint: its step and the metrics lines dropped past it. */
  onResume?: (r: { step: number; droppedMetricsLines: number }) => void;
}

/** Options of {@linkcode trainAndEvaluate}. */
export interface LoopOptions<D, Line> extends TrainHooks<Line> {
  /** Run directory (see `run_dir.ts`). */
  outDir: string;
  /** The data (loaded by the caller, e.g. with the task's `load`). */
  data: D;
  /** Continue from `outDir/checkpoint` (refused when there is none). */
  resume?: boolean;
  /** Replace a run already in `outDir` (a fresh run is refused otherwise). */
  overwrite?: boolean;
  /** Stop (with a checkpoint) after this many optimizer steps in total. */
  stopAfterSteps?: number;
  /** Stop (with a checkpoint) when aborted, e.g. on Ctrl-C. */
  signal?: AbortSignal;
  /** Steps between progress calls (default 10). */
  progressEvery?: number;
  /** Backend information (if the caller already switched). */
  backendInfo?: BackendInfo;
}

/** The part of `summary.json` every task has. */
export interface BaseSummary<C> {
  /** The configuration. */
  config: C;
  /** Backend and adapter. */
  backend: BackendInfo;
  /** Optimizer steps taken. */
  steps: number;
  /** False when stopped early (checkpoint saved). */
  completed: boolean;
  /** Seconds of training steps (all sessions). */
  trainSeconds: number;
  /** The run directory. */
  outDir: string;
}

/** The loop state a checkpoint holds beside the weights and moments. */
interface LoopMeta<C> {
  engine: 1;
  task: string;
  step: number;
  config: C;
  trainSeconds: number;
  evalSeconds: number;
  best: { value: number | null; step: number };
  totals: number[];
  totalSeen: number;
}

/** Reads the loop state of a checkpoint, including those of the per-model loops before it. */
function loopMetaOf<C>(meta: Record<string, unknown>): LoopMeta<C> {
  if (meta.engine === 1) return meta as unknown as LoopMeta<C>;
  const num = (k: string, d: number) => typeof meta[k] === "number" ? meta[k] as number : d;
  return {
    engine: 1,
    task: "",
    step: num("step", 0),
    config: meta.config as C,
    trainSeconds: num("trainSeconds", 0),
    evalSeconds: num("evalSeconds", 0),
    best: { value: meta.bestValidPpl as number | null ?? null, step: num("bestStep", -1) },
    totals: [],
    totalSeen: 0,
  };
}

/**
 * Trains `task`'s model per `cfg`, writing the run directory `opts.outDir`;
 * returns (and writes as `summary.json`) the task's summary.
 *
 * @example
 * ```ts ignore
 * import { trainAndEvaluate } from "./loop.ts";
 * import { classifierTask } from "./classifier_task.ts";
 * import { DEFAULT_CONFIG } from "./classifier_config.ts";
 * const data = await classifierTask.load(DEFAULT_CONFIG, console.log);
 * await trainAndEvaluate(classifierTask, DEFAULT_CONFIG, { outDir: "runs/x", data });
 * ```
 */
export async function trainAndEvaluate<
  C extends CommonSettings & MogeSettings,
  D,
  Ev,
  Line extends { step: number },
  Summary,
>(
  task: Task<C, D, Ev, Line, Summary>,
  cfg: C,
  opts: LoopOptions<D, Line>,
): Promise<BaseSummary<C> & Summary> {
  task.validate(cfg);
  const backend = opts.backendInfo ?? await useBackend(cfg.backend);
  const run = await openRunDir(opts.outDir, opts);
  const s = task.open(cfg, opts.data, backend);
  const { model, totalSteps } = s;
  const sigmaAt = sigmaScheduleOf(cfg, totalSteps);
  const cosine = cosineWithWarmup({
    baseLr: cfg.learningRate,
    warmupSteps: s.warmupSteps,
    totalSteps,
  });
  const lrAt = (step: number) =>
    s.lrDecay === "cosine" || step < s.warmupSteps ? cosine(step) : cfg.learningRate;
  const opt = new AdamW({
    learningRate: cfg.learningRate,
    weightDecay: cfg.weightDecay,
    excludeFromWeightDecay: (name) => s.excludeFromWeightDecay(name),
  });
  try {
    let step = 0, trainSeconds = 0, evalSeconds = 0, totalSeen = 0;
    let totals: number[] = [];
    let best: Best = { value: Infinity, step: -1 };
    if (opts.resume) {
      const meta = loopMetaOf<C>(await run.loadCheckpoint(model.params, opt));
      if (meta.task && meta.task !== task.name) {
        throw new Error(
          `--resume: the checkpoint in ${run.checkpointDir} is of --model ${meta.task}, not ${task.name}`,
        );
      }
      const mutable = new Set(task.fields.filter((f) => f.mutable).map((f) => f.field as string));
      const changed = changedFields(meta.config, cfg).filter((k) => !mutable.has(k));
      if (changed.length) {
        throw new Error(
          `--resume: the checkpoint in ${run.checkpointDir} was written with a different config` +
            ` (${changed.join(", ")})`,
        );
      }
      ({ step, trainSeconds, evalSeconds, totals, totalSeen } = meta);
      best = { value: meta.best.value ?? Infinity, step: meta.best.step };
      const dropped = await run.trimMetrics(step);
      opts.onResume?.({ step, droppedMetricsLines: dropped });
    }
    await run.writeConfig(cfg, { backendInfo: backend, ...s.configExtras() });
    const meta = (): LoopMeta<C> => ({
      engine: 1,
      task: task.name,
      step,
      config: cfg,
      trainSeconds,
      evalSeconds,
      best: { value: Number.isFinite(best.value) ? best.value : null, step: best.step },
      totals,
      totalSeen,
    });
    const every = opts.progressEvery ?? 10;
    let stopped = false;
    let lastEval: Ev | null = null;
    while (step < totalSteps && !stopped) {
      const t0 = performance.now();
      const tally = new RoutingTally(s.moeLayers, cfg.experts);
      let sums: tf.Tensor1D | null = null;
      let seen = 0, steps = 0, seconds = 0;
      let ended = false;
      while (!ended && !stopped) {
        const ts = performance.now();
        const out = await s.step(step, { sigma: sigmaAt(step), lr: lrAt(step), opt });
        const next: tf.Tensor1D = sums ? tf.add(sums, out.stats) : out.stats;
        if (sums) tf.dispose([sums, out.stats]);
        sums = next;
        tally.add(out.plans);
        seen += out.count;
        step++;
        steps++;
        const dt = (performance.now() - ts) / 1000;
        seconds += dt;
        trainSeconds += dt;
        ended = s.isEvalStep(step) || step >= totalSteps;
        if (opts.onProgress && (step % every === 0 || ended)) {
          const rate = steps / ((performance.now() - t0) / 1000);
          const spe = s.stepsPerEpoch;
          opts.onProgress({
            step,
            totalSteps,
            ...(spe ? { epoch: Math.floor((step - 1) / spe) + 1, epochs: totalSteps / spe } : {}),
            ...s.progress(await sums.data() as Float32Array, seen),
            stepsPerSecond: rate,
            etaSeconds: (totalSteps - step) / rate,
          });
        }
        stopped = Boolean(opts.signal?.aborted) ||
          (opts.stopAfterSteps !== undefined && step >= opts.stopAfterSteps);
      }
      const d = await sums!.data() as Float32Array;
      sums!.dispose();
      await tally.flush(); // device routing counts: one readback per layer and interval
      tally.dispose();
      totals = Array.from(d, (v, i) => v + (totals[i] ?? 0));
      totalSeen += seen;
      if (ended) {
        const e0 = performance.now();
        const sigma = sigmaAt(step);
        const ev: Ev = await s.evaluate(step, sigma);
        lastEval = ev;
        if (s.score && s.score(ev) < best.value) {
          best = { value: s.score(ev), step };
          await run.saveBest(model.params, { step, score: best.value, config: cfg });
        }
        const iv = { step, sums: d, seen, steps, tally, seconds, backend: backend.backend };
        const line = s.metrics(iv, ev, { sigma, lr: lrAt(Math.max(0, step - 1)), best });
        evalSeconds += (performance.now() - e0) / 1000;
        await run.appendMetrics(line);
        opts.onEval?.(line);
      }
      await run.saveCheckpoint(model.params, opt, meta());
      opts.onCheckpoint?.(step);
    }
    const completed = step >= totalSteps;
    const state = { step, completed, lastEval, best, totals, totalSeen, trainSeconds, run };
    const own = await s.summary({ ...state, evalSeconds }, sigmaAt(step));
    const summary = {
      config: cfg,
      backend,
      steps: step,
      completed,
      ...own,
      trainSeconds,
      outDir: opts.outDir,
    };
    await run.writeSummary(summary);
    return summary;
  } finally {
    opt.dispose();
    model.dispose();
  }
}
