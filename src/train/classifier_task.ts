/**
 * The training loop of the Fashion-MNIST experiment (MoGE Sec. 2.4): MoE or
 * MoGE, AdamW with a cosine schedule, per-epoch metrics, atomic checkpoints
 * and exact resume.
 *
 * @module
 */

import { tf } from "../deps.ts";
import type { Tensor1D, Tensor2D } from "../types.ts";
import { type BackendInfo, useBackend } from "../backend.ts";
import { MoeClassifier } from "../models/classifier.ts";
import { type TrainConfig, validateConfig } from "./classifier_config.ts";
import { type Dataset, makeBatch } from "../data/images.ts";
import { disposeRouted, type RegularizerSettings } from "../moe/moe_layer.ts";
import type { RoutingPlan } from "../moe/routing.ts";
import { AdamW } from "./optim.ts";
import { cosineWithWarmup } from "./lr_schedule.ts";
import { Rng } from "../rng.ts";
import { sigmaSchedule } from "../moge/sigma_schedule.ts";
import { appendJsonLine, writeJsonAtomic } from "../atomic.ts";
import { loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
import { topographicLayout } from "../moge/layout.ts";

/** One line of `metrics.jsonl`: one epoch. */
export interface EpochMetrics {
  /** Epoch number, from 1. */
  epoch: number;
  /** Optimizer steps taken so far. */
  step: number;
  /** Mean training loss (CE + penalties) over the epoch. */
  trainLoss: number;
  /** Mean training cross-entropy. */
  trainCe: number;
  /** Mean load-balancing loss (unweighted). */
  trainAux: number;
  /** Mean R(z) on training batches (unweighted; 0 in MoE mode, where it is not computed). */
  trainReg: number;
  /** Training accuracy over the epoch (with routing noise). */
  trainAcc: number;
  /** Test cross-entropy. */
  testCe: number;
  /** Test accuracy. */
  testAcc: number;
  /** Mean R(z) over the test set at the current σ. */
  testReg: number;
  /** σ of the filter at the end of the epoch. */
  sigma: number;
  /** Learning rate of the last step. */
  lr: number;
  /** Training tokens processed by each expert this epoch. */
  load: number[];
  /** Experts that processed no training token this epoch. */
  deadExperts: number;
  /** Fraction of (token, choice) pairs dropped by capacity. */
  dropRate: number;
  /** Wall-clock seconds of the epoch's training steps. */
  seconds: number;
  /** The tfjs backend. */
  backend: string;
}

/** Progress of a run, reported every few steps. */
export interface Progress {
  /** Current epoch, from 1. */
  epoch: number;
  /** Total epochs. */
  epochs: number;
  /** Steps taken. */
  step: number;
  /** Steps of the whole run. */
  totalSteps: number;
  /** Mean loss so far this epoch. */
  loss: number;
  /** Training accuracy so far this epoch. */
  acc: number;
  /** Speed this epoch. */
  stepsPerSecond: number;
  /** Estimated seconds left. */
  etaSeconds: number;
}

/** What {@linkcode train} returns and writes as `summary.json`. */
export interface RunSummary {
  /** The configuration. */
  config: TrainConfig;
  /** Backend and adapter. */
  backend: BackendInfo;
  /** Steps taken. */
  steps: number;
  /** False when stopped early (checkpoint saved). */
  completed: boolean;
  /** Final test accuracy. */
  testAcc: number;
  /** Final mean R(z) on the test set (at σ_min). */
  testReg: number;
  /** Seconds spent in training steps (all sessions). */
  trainSeconds: number;
  /** Mean R(z) over all training batches (0 in MoE mode; compare `testReg`). */
  meanTrainReg: number;
  /** The run directory. */
  outDir: string;
}

/** Options of {@linkcode train}. */
export interface TrainOptions {
  /** Run directory: config.json, metrics.jsonl, checkpoint/, summary.json. */
  outDir: string;
  /** Continue from `outDir/checkpoint` if it exists. */
  resume?: boolean;
  /** Stop (with a checkpoint) after this many optimizer steps in total. */
  stopAfterSteps?: number;
  /** Stop (with a checkpoint) when aborted, e.g. on Ctrl-C. */
  signal?: AbortSignal;
  /** Called every `progressEvery` steps. */
  onProgress?: (p: Progress) => void;
  /** Called after each epoch. */
  onEpoch?: (m: EpochMetrics) => void;
  /** Steps between progress calls (default 10). */
  progressEvery?: number;
  /** The data (loaded by the caller). */
  data: Dataset;
  /** Backend information (if the caller already switched). */
  backendInfo?: BackendInfo;
}

/** Derives a 31-bit seed from the run seed and a counter (a counter-based RNG: resumable from the step alone). */
function derive(seed: number, stream: number, counter: number): number {
  const r = new Rng((seed * 0x9e3779b1 + stream * 0x85ebca6b + counter * 0xc2b2ae35) >>> 0);
  return r.seedForTf();
}

function regSettings(cfg: TrainConfig, sigma: number): RegularizerSettings | null {
  if (!MoeClassifier.regularizable(cfg.experts, cfg.filterSize)) return null;
  return {
    lambda: cfg.mode === "moge" ? cfg.lambda : 0,
    sigma,
    filterSize: cfg.filterSize,
    filter: cfg.filter,
  };
}

/** Builds the model of a config. */
export function buildModel(cfg: TrainConfig, data: Dataset): MoeClassifier {
  return new MoeClassifier({
    inputDim: data.imageSize * data.imageSize,
    numClasses: data.numClasses,
    experts: cfg.experts,
    topK: cfg.topK,
    hiddenDim: cfg.hiddenDim,
    activation: cfg.activation,
    capacityFactor: cfg.capacityFactor,
    loadBalanceWeight: cfg.loadBalanceWeight,
  }, cfg.seed);
}

const EVAL_ORDER_SEED = 20250413;

/** Test-set evaluation: accuracy, cross-entropy, mean R(z), expert load. */
export async function evaluate(
  model: MoeClassifier,
  data: Dataset,
  cfg: TrainConfig,
  sigma: number,
): Promise<{ acc: number; ce: number; reg: number; load: number[] }> {
  const n = data.testLabels.length;
  const load = new Array(cfg.experts).fill(0);
  let acc: tf.Tensor = tf.scalar(0);
  let ce: tf.Tensor = tf.scalar(0);
  let reg: tf.Tensor = tf.scalar(0);
  // A fixed shuffle: the test set is stored by class, and a batch of one class
  // would overflow its experts' capacity (batch-prioritized routing drops tokens).
  const order = new Rng(EVAL_ORDER_SEED).permutation(n);
  for (let start = 0; start < n; start += cfg.batchSize) {
    const idx = Array.from(order.subarray(start, Math.min(n, start + cfg.batchSize)));
    const { x, y } = makeBatch(data.testImages, data.testLabels, idx);
    const { logits, routed } = await model.route(x, false, 0);
    const r = model.forward(x, logits, routed, y, regSettings(cfg, sigma));
    const b = idx.length;
    const next = tf.tidy(() => [
      tf.add(acc, r.correct),
      tf.add(ce, tf.mul(r.ce, b)),
      tf.add(reg, tf.mul(r.reg, b)),
    ]);
    tf.dispose([acc, ce, reg, x, y, logits, r.loss, r.ce, r.aux, r.reg, r.correct, r.z]);
    [acc, ce, reg] = next;
    routed.plan.load.forEach((v, e) => load[e] += v);
    disposeRouted(routed);
  }
  const [a, c, g] = await Promise.all([acc.data(), ce.data(), reg.data()]);
  tf.dispose([acc, ce, reg]);
  return { acc: a[0] / n, ce: c[0] / n, reg: g[0] / n, load };
}

/** The result of one {@linkcode trainStep}. */
export interface StepResult {
  /** `[loss, ce, aux, reg, correct]` of the batch (loss terms are batch means). */
  stats: Tensor1D;
  /** The routing plan of the batch. */
  plan: RoutingPlan;
}

/**
 * One optimizer step: route the batch (one readback of the router scores),
 * differentiate `CE + penalties` through the routed forward pass, apply AdamW.
 * MoE and MoGE run the same code; MoGE's `reg.lambda` is non-zero.
 */
export async function trainStep(
  model: MoeClassifier,
  opt: AdamW,
  x: Tensor2D,
  y: Tensor1D,
  o: { noiseSeed: number; reg: RegularizerSettings | null; lr: number },
): Promise<StepResult> {
  const { logits: routerLogits, routed } = await model.route(x, true, o.noiseSeed);
  routerLogits.dispose();
  let stats: tf.Tensor1D | null = null;
  const vars = Object.values(model.params);
  const { value, grads } = tf.variableGrads(() => {
    const logits = model.moe.logits(x);
    const r = model.forward(x, logits, routed, y, o.reg);
    stats = tf.keep(tf.stack([r.loss, r.ce, r.aux, r.reg, r.correct]) as tf.Tensor1D);
    return r.loss as tf.Scalar;
  }, vars);
  const byVarName = new Map(Object.entries(model.params).map(([k, v]) => [v.name, k]));
  const named = Object.fromEntries(Object.entries(grads).map(([k, g]) => [byVarName.get(k)!, g]));
  opt.step(named, model.params, o.lr);
  tf.dispose([value, ...Object.values(grads)]);
  disposeRouted(routed);
  return { stats: stats!, plan: routed.plan };
}

/**
 * Trains the classifier (MoE or MoGE per `cfg.mode`), writing
 * `config.json`, `metrics.jsonl` (one line per epoch), `checkpoint/` (every
 * epoch and on stop, atomically) and `summary.json` into `outDir`.
 *
 * Resuming from a checkpoint gives the same weights as an uninterrupted run:
 * shuffling and routing noise derive from (seed, epoch) and (seed, step).
 */
export async function train(cfg: TrainConfig, opts: TrainOptions): Promise<RunSummary> {
  validateConfig(cfg);
  if (cfg.mode === "moge") topographicLayout(cfg.experts, cfg.filterSize);
  const backend = opts.backendInfo ?? await useBackend(cfg.backend);
  const data = opts.data;
  const nTrain = cfg.trainLimit > 0
    ? Math.min(cfg.trainLimit, data.trainLabels.length)
    : data.trainLabels.length;
  // --train-limit n: a fixed class-mixed subset (the data are stored by class).
  const pool = cfg.trainLimit > 0
    ? new Rng(EVAL_ORDER_SEED + 1).permutation(data.trainLabels.length).subarray(0, nTrain)
    : Int32Array.from({ length: nTrain }, (_, i) => i);
  const stepsPerEpoch = Math.ceil(nTrain / cfg.batchSize);
  const totalSteps = stepsPerEpoch * cfg.epochs;
  const sigmaAt = sigmaSchedule({
    sigmaMax: cfg.sigmaMax,
    sigmaMin: cfg.sigmaMin,
    gamma: cfg.gamma,
    totalSteps,
  });
  const lrAt = cosineWithWarmup({
    baseLr: cfg.learningRate,
    warmupSteps: Math.round(cfg.warmupEpochs * stepsPerEpoch),
    totalSteps,
  });
  const model = buildModel(cfg, data);
  const opt = new AdamW({
    learningRate: cfg.learningRate,
    weightDecay: cfg.weightDecay,
    excludeFromWeightDecay: (name: string) => /\.b\d?(\.\d+)?$/.test(name), // biases
  });
  const outDir = opts.outDir;
  await Deno.mkdir(outDir, { recursive: true });
  const ckptDir = `${outDir}/checkpoint`;
  let step = 0;
  let trainSeconds = 0;
  let regSum = 0;
  let regCount = 0;
  if (opts.resume) {
    const ck = await loadCheckpoint(ckptDir).catch((e: Error) => {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    });
    if (ck) {
      const meta = ck.meta as {
        step: number;
        optStep: number;
        trainSeconds: number;
        regSum: number;
        regCount: number;
        config: TrainConfig;
      };
      if (JSON.stringify(meta.config) !== JSON.stringify(cfg)) {
        throw new Error(
          `--resume: the checkpoint in ${ckptDir} was written with a different config`,
        );
      }
      for (const [name, v] of Object.entries(model.params)) {
        const t = ck.tensors[`param/${name}`];
        if (!t) throw new Error(`--resume: checkpoint lacks parameter ${name}`);
        tf.tidy(() => v.assign(tf.tensor(t.values, t.shape as number[])));
      }
      const moments = (kind: "m" | "v") =>
        Object.fromEntries(
          Object.entries(ck.tensors).filter(([k]) => k.startsWith(`opt.${kind}/`)).map((
            [k, t],
          ) => [k.slice(6), tf.tensor(t.values, t.shape as number[])]),
        );
      const m = moments("m");
      const v = moments("v");
      opt.setState({ step: meta.optStep, m, v });
      tf.dispose([...Object.values(m), ...Object.values(v)]);
      ({ step, trainSeconds, regSum, regCount } = meta);
    }
  }
  await writeJsonAtomic(`${outDir}/config.json`, { ...cfg, backendInfo: backend });

  const save = async () => {
    const tensors: Record<string, tf.Tensor> = {};
    for (const [name, v] of Object.entries(model.params)) tensors[`param/${name}`] = v;
    const st = opt.getState();
    for (const [name, t] of Object.entries(st.m)) tensors[`opt.m/${name}`] = t;
    for (const [name, t] of Object.entries(st.v)) tensors[`opt.v/${name}`] = t;
    await saveCheckpoint(ckptDir, {
      tensors,
      meta: {
        step,
        optStep: st.step,
        trainSeconds,
        regSum,
        regCount,
        config: cfg,
        rng: { seed: cfg.seed, step },
      },
    });
  };

  let stopped = false;
  let lastTest = { acc: NaN, ce: NaN, reg: NaN, load: [] as number[] };
  while (step < totalSteps && !stopped) {
    const epoch = Math.floor(step / stepsPerEpoch);
    const perm = new Rng(derive(cfg.seed, 1, epoch)).permutation(nTrain);
    const t0 = performance.now();
    let sums = tf.zeros([5]); // loss, ce, aux, reg, correct
    let seen = 0;
    let epochSteps = 0;
    const load = new Array(cfg.experts).fill(0);
    let dropped = 0;
    for (let s = step % stepsPerEpoch; s < stepsPerEpoch; s++) {
      const idx = Array.from(
        perm.subarray(s * cfg.batchSize, Math.min(nTrain, (s + 1) * cfg.batchSize)),
        (i) => pool[i],
      );
      const { x, y } = makeBatch(data.trainImages, data.trainLabels, idx);
      const b = idx.length;
      const sigma = sigmaAt(step);
      const { stats, plan } = await trainStep(model, opt, x, y, {
        noiseSeed: derive(cfg.seed, 2, step),
        // MoE trains without R(z) on the tape (it would cost gradient work for
        // a term weighted 0); its R(z) is measured on the test set instead.
        reg: cfg.mode === "moge" ? regSettings(cfg, sigma) : null,
        lr: lrAt(step),
      });
      const nextSums = tf.tidy(() => tf.add(sums, tf.mul(stats, tf.tensor1d([b, b, b, b, 1]))));
      tf.dispose([sums, stats, x, y]);
      sums = nextSums;
      plan.load.forEach((v, e) => load[e] += v);
      dropped += plan.dropped;
      seen += idx.length;
      step++;
      epochSteps++;
      const now = performance.now();
      if (opts.onProgress && (step % (opts.progressEvery ?? 10) === 0 || s === stepsPerEpoch - 1)) {
        const d = await sums.data();
        const rate = epochSteps / ((now - t0) / 1000);
        opts.onProgress({
          epoch: epoch + 1,
          epochs: cfg.epochs,
          step,
          totalSteps,
          loss: d[0] / seen,
          acc: d[4] / seen,
          stepsPerSecond: rate,
          etaSeconds: (totalSteps - step) / rate,
        });
      }
      if (
        opts.signal?.aborted || (opts.stopAfterSteps !== undefined && step >= opts.stopAfterSteps)
      ) {
        stopped = true;
        break;
      }
    }
    const d = await sums.data();
    sums.dispose();
    const seconds = (performance.now() - t0) / 1000;
    trainSeconds += seconds;
    regSum += d[3];
    regCount += seen;
    if (!stopped || step % stepsPerEpoch === 0) {
      lastTest = await evaluate(model, data, cfg, sigmaAt(step));
      const m: EpochMetrics = {
        epoch: epoch + 1,
        step,
        trainLoss: d[0] / seen,
        trainCe: d[1] / seen,
        trainAux: d[2] / seen,
        trainReg: d[3] / seen,
        trainAcc: d[4] / seen,
        testCe: lastTest.ce,
        testAcc: lastTest.acc,
        testReg: lastTest.reg,
        sigma: sigmaAt(step),
        lr: lrAt(Math.max(0, step - 1)),
        load,
        deadExperts: load.filter((v) => v === 0).length,
        dropRate: dropped / (seen * cfg.topK),
        seconds,
        backend: backend.backend,
      };
      await appendJsonLine(`${outDir}/metrics.jsonl`, m);
      opts.onEpoch?.(m);
    }
    await save();
  }
  const completed = step >= totalSteps;
  if (Number.isNaN(lastTest.acc)) lastTest = await evaluate(model, data, cfg, sigmaAt(step));
  const summary: RunSummary = {
    config: cfg,
    backend,
    steps: step,
    completed,
    testAcc: lastTest.acc,
    testReg: lastTest.reg,
    trainSeconds,
    meanTrainReg: regCount ? regSum / regCount : NaN,
    outDir,
  };
  await writeJsonAtomic(`${outDir}/summary.json`, summary);
  opt.dispose();
  model.dispose();
  return summary;
}
