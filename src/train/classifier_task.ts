/**
 * The classifier task of the Fashion-MNIST experiment (MoGE Sec. 2.4): one
 * MoE layer of E experts and a linear classifier, MoE or MoGE. What differs
 * from the other models: the model, the batches (epochs over a fixed image
 * subset), the step (route, then differentiate CE + penalties), the test-set
 * evaluation and the metrics line. The loop (`loop.ts`) does the rest.
 *
 * @module
 */

import { tf } from "../deps.ts";
import type { Tensor1D, Tensor2D } from "../types.ts";
import { MoeClassifier } from "../models/classifier.ts";
import {
  CLASSIFIER_FIELDS,
  DEFAULT_CONFIG,
  PRESETS,
  type TrainConfig,
  validateConfig,
} from "./classifier_config.ts";
import { type Dataset, loadFixture } from "../data/images.ts";
import { loadDataset } from "../data/image_sources.ts";
import { makeBatch } from "../data/image_batches.ts";
import {
  disposeRouted,
  hostPlan,
  type RegularizerSettings,
  type RoutedBatch,
} from "../moe/moe_layer.ts";
import { needsHostPlan, routeInTape } from "../models/transformer.ts";
import type { AdamW } from "./optim.ts";
import { Rng } from "../rng.ts";
import { regularizerSettings } from "./moge_settings.ts";
import { type BaseSummary, type LoopOptions, trainAndEvaluate } from "./loop.ts";
import {
  applyGradients,
  deriveSeed,
  epochBatch,
  epochSchedule,
  intervalMeans,
  RouterFigures,
  type StepRouting,
  stepRouting,
  type Task,
} from "./task.ts";

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
  /** The router. */
  router: string;
  /** (token, choice) pairs dropped by capacity this epoch. */
  dropped: number;
  /** Training tokens left behind this epoch (no choice reached an expert). */
  leftBehind: number;
  /** `leftBehind` over the epoch's training tokens. */
  leftBehindRate: number;
  /** Mean gate of the routed (image, expert) pairs on the test set. */
  testMeanGate: number;
  /** Routing entropy (nats) on the test set: mean over images of the entropy of z's row. */
  testEntropy: number;
  /** Router z-loss on the test set (whatever its weight). */
  testZLoss: number;
  /** Wall-clock seconds of the epoch's training steps. */
  seconds: number;
  /** The tfjs backend. */
  backend: string;
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
    noiseStd: cfg.noiseScale / cfg.experts,
    capacityFactor: cfg.capacityFactor,
    loadBalanceWeight: cfg.loadBalanceWeight,
    router: cfg.router,
    zLossWeight: cfg.zLossWeight,
  }, cfg.seed);
}

const EVAL_ORDER_SEED = 20250413;

/** Test-set evaluation: accuracy, cross-entropy, mean R(z), expert load. */
export async function evaluate(
  model: MoeClassifier,
  data: Dataset,
  cfg: TrainConfig,
  sigma: number,
): Promise<ClassifierEval> {
  const n = data.testLabels.length;
  const load = new Array(cfg.experts).fill(0);
  let acc: tf.Tensor = tf.scalar(0);
  let ce: tf.Tensor = tf.scalar(0);
  let reg: tf.Tensor = tf.scalar(0);
  // A fixed shuffle: the test set is stored by class, and a batch of one class
  // would overflow its experts' capacity (batch-prioritized routing drops tokens).
  const order = new Rng(EVAL_ORDER_SEED).permutation(n);
  const figures = new RouterFigures(1);
  for (let start = 0; start < n; start += cfg.batchSize) {
    const idx = Array.from(order.subarray(start, Math.min(n, start + cfg.batchSize)));
    const { x, y } = makeBatch(data.testImages, data.testLabels, idx);
    const routed = await model.route(x, false, 0);
    const r = model.forward(x, routed, y, regularizerSettings(cfg, sigma));
    const b = idx.length;
    await figures.add(0, routed.plan, routed.decision?.valid, r);
    const next = tf.tidy(() => [
      tf.add(acc, r.correct),
      tf.add(ce, tf.mul(r.ce, b)),
      tf.add(reg, tf.mul(r.reg, b)),
    ]);
    tf.dispose([acc, ce, reg, x, y, r.loss, r.ce, r.aux, r.reg, r.correct, r.z, r.zLoss]);
    tf.dispose([r.gates, r.routerLogits]);
    [acc, ce, reg] = next;
    hostPlan(routed.plan, "evaluate").load.forEach((v, e) => load[e] += v);
    disposeRouted(routed);
  }
  const [a, c, g] = await Promise.all([acc.data(), ce.data(), reg.data()]);
  tf.dispose([acc, ce, reg]);
  return { acc: a[0] / n, ce: c[0] / n, reg: g[0] / n, load, router: figures.figures(0) };
}

/** The result of one {@linkcode trainStep}. */
export interface StepResult {
  /** `[loss, ce, aux, reg, correct]` of the batch (loss terms are batch means). */
  stats: Tensor1D;
  /**
   * The batch's routing: the CPU plan (cpu, wasm), or on webgpu the device
   * plan's sizes with its `[2, E]` demand and load counts (caller disposes,
   * or hands them to a `RoutingTally` / `RoutingStatsLog`).
   */
  routing: StepRouting;
}

/**
 * One optimizer step, one forward pass: the router logits are computed once
 * inside the gradient tape and routed there (`routeSync` on cpu and wasm,
 * a synchronous readback; `routeDevice` on webgpu, no readback), then
 * `CE + penalties` is differentiated and AdamW applied. MoE and MoGE run the
 * same code; MoGE's `reg.lambda` is non-zero.
 */
export function trainStep(
  model: MoeClassifier,
  opt: AdamW,
  x: Tensor2D,
  y: Tensor1D,
  o: {
    noiseSeed: number;
    reg: RegularizerSettings | null;
    lr: number;
    step?: number;
    /**
     * The batch routed before the step (`model.route`, same noise seed and
     * step; the step frees it): webgpu with a router other than top-k, which
     * cannot plan inside the tape (see `needsHostPlan`).
     */
    planned?: RoutedBatch;
  },
): StepResult {
  let stats: tf.Tensor1D | null = null;
  let routed: RoutedBatch | null = o.planned ?? null;
  try {
    applyGradients(model.params, opt, () => {
      routed ??= routeInTape(model.moe, { x }, {
        training: true,
        noiseSeed: o.noiseSeed,
        step: o.step,
      });
      const r = model.forward(x, routed, y, o.reg);
      stats = tf.keep(tf.stack([r.loss, r.ce, r.aux, r.reg, r.correct]) as tf.Tensor1D);
      return r.loss as tf.Scalar;
    }, o.lr);
    const [routing] = stepRouting([routed!]);
    return { stats: stats!, routing };
  } finally {
    if (routed) disposeRouted(routed);
  }
}

/** The test-set figures of {@linkcode evaluate}. */
export interface ClassifierEval {
  /** Accuracy. */
  acc: number;
  /** Mean cross-entropy. */
  ce: number;
  /** Mean R(z). */
  reg: number;
  /** Tokens per expert. */
  load: number[];
  /** The router's mean gate, routing entropy and z-loss on the test set. */
  router: { meanGate: number; entropy: number; zLoss: number };
}

/** The classifier's part of `summary.json`. */
export interface ClassifierSummary {
  /** Final test accuracy. */
  testAcc: number;
  /** Final mean R(z) on the test set (at σ_min). */
  testReg: number;
  /** Mean R(z) over all training batches (0 in MoE mode; compare `testReg`). */
  meanTrainReg: number;
  /** The router and its final test-set mean gate, routing entropy and z-loss. */
  router: { name: string; meanGate: number; entropy: number; zLoss: number };
}

/** What {@linkcode train} returns and writes as `summary.json`. */
export type RunSummary = BaseSummary<TrainConfig> & ClassifierSummary;

/** Options of {@linkcode train}. */
export type TrainOptions = LoopOptions<Dataset, EpochMetrics>;

/** The classifier task: `deno task train --model classifier` (the default). */
export const classifierTask: Task<
  TrainConfig,
  Dataset,
  ClassifierEval,
  EpochMetrics,
  ClassifierSummary
> = {
  name: "classifier",
  title: "the MoGE paper's Fashion-MNIST classifier (Sec. 2.4): one MoE layer, E experts",
  defaults: DEFAULT_CONFIG,
  presets: PRESETS,
  fields: CLASSIFIER_FIELDS,
  validate: validateConfig,
  defaultOutDir: (c) => `runs/${c.mode}-E${c.experts}-s${c.seed}`,
  load: (c, log) =>
    c.dataset === "fixture"
      ? loadFixture("fashion-mnist")
      : loadDataset(c.dataset, { onProgress: log }),
  open(cfg, data, backend) {
    const nTrain = cfg.trainLimit > 0
      ? Math.min(cfg.trainLimit, data.trainLabels.length)
      : data.trainLabels.length;
    // --train-limit n: a fixed class-mixed subset (the data are stored by class).
    const pool = cfg.trainLimit > 0
      ? new Rng(EVAL_ORDER_SEED + 1).permutation(data.trainLabels.length).subarray(0, nTrain)
      : Int32Array.from({ length: nTrain }, (_, i) => i);
    const schedule = epochSchedule(nTrain, cfg);
    const { stepsPerEpoch } = schedule;
    const model = buildModel(cfg, data);
    return {
      ...schedule,
      config: cfg,
      model,
      moeLayers: 1,
      excludeFromWeightDecay: (name) => /\.b\d?(\.\d+)?$/.test(name), // biases
      configExtras: () => ({}),
      async step(step, { sigma, lr, opt }) {
        const idx = Array.from(epochBatch(cfg.seed, step, pool, cfg.batchSize));
        const { x, y } = makeBatch(data.trainImages, data.trainLabels, idx);
        const b = idx.length;
        const noiseSeed = deriveSeed(cfg.seed, 2, step);
        // webgpu with a router other than top-k: plan on the CPU first (one readback).
        const planned = needsHostPlan([model.moe])
          ? await model.route(x, true, noiseSeed, step)
          : undefined;
        const { stats, routing } = trainStep(model, opt, x, y, {
          noiseSeed,
          planned,
          // MoE trains without R(z) on the tape (it would cost gradient work for
          // a term weighted 0); its R(z) is measured on the test set instead.
          reg: cfg.mode === "moge" ? regularizerSettings(cfg, sigma) : null,
          lr,
          step,
        });
        const weighted = tf.tidy(() => tf.mul(stats, tf.tensor1d([b, b, b, b, 1]))) as Tensor1D;
        tf.dispose([stats, x, y]);
        return { stats: weighted, count: b, plans: [routing] };
      },
      progress: (d, seen) => ({ loss: d[0] / seen, acc: d[4] / seen }),
      evaluate: (_step, sigma) => evaluate(model, data, cfg, sigma),
      metrics: (iv, ev, { sigma, lr }) => ({
        epoch: iv.step / stepsPerEpoch,
        step: iv.step,
        ...intervalMeans(iv, ["trainLoss", "trainCe", "trainAux", "trainReg", "trainAcc"]),
        testCe: ev.ce,
        testAcc: ev.acc,
        testReg: ev.reg,
        sigma,
        lr,
        load: iv.tally.load[0],
        deadExperts: iv.tally.dead(0),
        dropRate: iv.tally.dropRate(0),
        router: cfg.router,
        dropped: iv.tally.dropped[0],
        leftBehind: iv.tally.leftBehind[0],
        leftBehindRate: iv.tally.leftBehindRate(0),
        testMeanGate: ev.router.meanGate,
        testEntropy: ev.router.entropy,
        testZLoss: ev.router.zLoss,
        seconds: iv.seconds,
        backend: backend.backend,
      }),
      async summary(st, sigma) {
        const last = st.lastEval ?? await evaluate(model, data, cfg, sigma);
        return {
          testAcc: last.acc,
          testReg: last.reg,
          meanTrainReg: st.totalSeen ? (st.totals[3] ?? 0) / st.totalSeen : NaN,
          router: { name: cfg.router, ...last.router },
        };
      },
    };
  },
};

/**
 * Trains the classifier (MoE or MoGE per `cfg.mode`) with the one loop,
 * writing `config.json`, `metrics.jsonl` (one line per epoch), `checkpoint/`
 * (every epoch and on stop, atomically) and `summary.json` into `outDir`.
 *
 * @example
 * ```ts ignore
 * import { train } from "./classifier_task.ts";
 * import { DEFAULT_CONFIG, PRESETS } from "./classifier_config.ts";
 * import { loadFixture } from "../data/images.ts";
 * const data = await loadFixture("fashion-mnist");
 * await train({ ...DEFAULT_CONFIG, ...PRESETS.tiny }, { outDir: "runs/tiny", data });
 * ```
 */
export function train(cfg: TrainConfig, opts: TrainOptions): Promise<RunSummary> {
  return trainAndEvaluate(classifierTask, cfg, opts);
}
