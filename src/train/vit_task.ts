/**
 * The ViT task: V-MoE / V-MoGE ({@linkcode VisionTransformer}) on
 * Fashion-MNIST or MNIST with the MoGE vision recipe (Appendix B): label
 * smoothing, random crop with padding and optional horizontal flip,
 * stochastic depth; MoGE adds λ·mean R(z) of every MoE layer (eq. 9). What
 * differs from the other models: the model, the augmented batches, the step
 * (routing in the one taped pass), the evaluation and the per-MoE-layer metrics.
 * The loop (`loop.ts`) does the rest.
 *
 * @module
 */

import { tf } from "../deps.ts";
import { type Dataset, loadFixture } from "../data/images.ts";
import { loadDataset } from "../data/image_sources.ts";
import { makeBatch } from "../data/image_batches.ts";
import { hostPlan, type RegularizerSettings, type RoutedBatch } from "../moe/moe_layer.ts";
import { needsHostPlan } from "../models/transformer.ts";
import type { AdamW } from "./optim.ts";
import { Rng } from "../rng.ts";
import { padImages, randomCropFlip, smoothedCrossEntropy } from "../data/augment.ts";
import { disposeVitOutput, VisionTransformer, type VitOutput } from "../models/vit.ts";
import type { Tensor1D, Tensor2D } from "../types.ts";
import { regularizerSettings } from "./moge_settings.ts";
import { type BaseSummary, type LoopOptions, trainAndEvaluate } from "./loop.ts";
import {
  applyGradients,
  deriveSeed,
  epochBatch,
  epochSchedule,
  intervalMeans,
  RouterFigures,
  RoutingTally,
  type StepRouting,
  stepRouting,
  type Task,
} from "./task.ts";
import {
  DEFAULT_VIT_CONFIG,
  subsetIndices,
  validateVitTrainConfig,
  VIT_FIELDS,
  VIT_PRESETS,
  vitConfigOf,
  type VitRouting,
  type VitTrainConfig,
} from "./vit_config.ts";

export * from "./vit_config.ts";
export { deriveSeed } from "./task.ts";

/** Builds the model of a training config. */
export function buildVit(c: VitTrainConfig): VisionTransformer {
  return new VisionTransformer(vitConfigOf(c), c.seed);
}

/** The regularizer settings of a step: none for MoE when `withReg` is false. */
export function vitRegSettings(
  c: VitTrainConfig,
  sigma: number,
  withReg: boolean,
): RegularizerSettings | null {
  return withReg ? regularizerSettings(c, sigma) : null;
}

/**
 * Resolves the routing option: every value now routes inside the tape, in
 * the one forward pass (the planning pass of "async" is gone: webgpu plans on
 * the device), so all resolve to "sync"; the option stays for old configs.
 */
export function resolveRouting(_r: VitRouting): "sync" {
  return "sync";
}

/** Options of {@linkcode vitTrainStep}. */
export interface VitStepOptions {
  /** Seed of the step's dropout, drop-path and routing noise. */
  seed: number;
  /** The training step (the SSR router decides per step whether it runs Sinkhorn). */
  step?: number;
  /** Regularizer settings (null: no R(z), plain MoE). */
  reg: RegularizerSettings | null;
  /** Learning rate of this step. */
  lr: number;
  /** Label smoothing ε. */
  labelSmoothing: number;
  /** Routing driver (default "auto"). */
  routing?: VitRouting;
  /**
   * The routed batches of every MoE layer, planned before the step
   * ({@linkcode planVitStep}, same seed and step; the step frees them):
   * webgpu with a router other than top-k, which cannot plan in the tape.
   */
  planned?: RoutedBatch[];
}

/**
 * The step's routing planned on the CPU before its taped pass (an untaped
 * forward pass with the step's seeds, one readback per MoE layer), when the
 * backend and router need it (webgpu with a router other than top-k; see
 * `needsHostPlan`); else undefined (the step routes inside the tape).
 */
export async function planVitStep(
  model: VisionTransformer,
  x: Tensor2D,
  o: VitStepOptions,
): Promise<RoutedBatch[] | undefined> {
  if (!needsHostPlan(model.moeLayers.values())) return undefined;
  const r = await model.forwardAsync(x, { training: true, seed: o.seed, reg: o.reg, step: o.step });
  disposeVitOutput(r.output);
  return r.routed;
}

/** The result of one {@linkcode vitTrainStep}. */
export interface VitStepResult {
  /**
   * `[loss, ce, correct, aux_0, reg_0, aux_1, reg_1, ...]`: the objective
   * (smoothed CE + penalties), plain CE, correct predictions, and each MoE
   * layer's L_aux and mean R(z) (0 when not computed). Caller disposes.
   */
  stats: Tensor1D;
  /** Each MoE layer's routing (plan; device counts on webgpu; the loop's tally takes them). */
  plans: StepRouting[];
}

function lossAndStats(out: VitOutput, y: Tensor1D, smoothing: number) {
  const loss = tf.add(smoothedCrossEntropy(out.logits, y, smoothing), out.penalty);
  const ce = smoothedCrossEntropy(out.logits, y, 0);
  const correct = tf.sum(tf.cast(tf.equal(tf.argMax(out.logits, 1), y), "float32"));
  const stats = tf.stack([
    loss,
    ce,
    correct,
    ...out.moe.flatMap((m) => [m.aux, m.reg]),
  ]) as Tensor1D;
  return { loss, stats };
}

/**
 * One optimizer step of the ViT, one forward pass: route every MoE layer in
 * the tape (synchronously on cpu/wasm, on the device on webgpu),
 * differentiate smoothed CE + Σ_layers penalties, apply AdamW, and free the
 * routed batches. MoE and MoGE run the same code; MoGE's `reg.lambda` > 0.
 */
export function vitTrainStep(
  model: VisionTransformer,
  opt: AdamW,
  x: Tensor2D,
  y: Tensor1D,
  o: VitStepOptions,
): VitStepResult {
  const fwd = { training: true, seed: o.seed, reg: o.reg, step: o.step };
  let routed: RoutedBatch[] = o.planned ?? [];
  try {
    let stats: Tensor1D | null = null;
    applyGradients(model.params, opt, () => {
      const r = o.planned
        ? model.forwardWith(x, fwd, (req) => o.planned![req.index])
        : model.forwardSync(x, fwd);
      routed = r.routed;
      const l = lossAndStats(r.output, y, o.labelSmoothing);
      stats = tf.keep(l.stats);
      return l.loss as tf.Scalar;
    }, o.lr);
    return { stats: stats!, plans: stepRouting(routed) };
  } finally {
    model.disposeRouted(routed);
  }
}

/** Makes the tensors of a batch: pixels in [0, 1] `[B, S·S]` (augmented when training) and labels. */
export function vitBatch(
  c: VitTrainConfig,
  images: Uint8Array,
  labels: Uint8Array,
  indices: ArrayLike<number>,
  augment: Rng | null,
): { x: Tensor2D; y: Tensor1D } {
  const { x, y } = makeBatch(images, labels, indices);
  const shape = { height: 28, width: 28, channels: 1 };
  let out = x;
  if (augment && (c.cropPadding > 0 || c.flipProb > 0 || c.imageSize !== 28)) {
    out = randomCropFlip(x, shape, {
      padding: c.cropPadding,
      flipProb: c.flipProb,
      rng: augment,
      outSize: c.imageSize,
    });
  } else if (c.imageSize !== 28) {
    out = padImages(x, shape, c.imageSize);
  }
  if (out !== x) x.dispose();
  return { x: out, y };
}

/** Per-MoE-layer figures of an evaluation or an epoch. */
export interface MoeLayerMetrics {
  /** Block index (0-based). */
  block: number;
  /** Mean R(z) over the tokens (training: null for MoE, which does not compute it). */
  reg: number | null;
  /** Mean L_aux over batches. */
  aux: number;
  /** Tokens each expert processed. */
  load: number[];
  /** Experts that got no token. */
  deadExperts: number;
  /** Dropped fraction of all token choices. */
  dropRate: number;
  /** Dropped (token, choice) pairs. */
  dropped: number;
  /** Tokens left behind (no choice reached an expert). */
  leftBehind: number;
  /** `leftBehind` over all tokens. */
  leftBehindRate: number;
  /**
   * Test set only: the router's mean gate over routed (token, expert) pairs,
   * routing entropy (nats, mean over tokens) and z-loss (whatever its weight).
   */
  router?: { meanGate: number; entropy: number; zLoss: number };
}

/** The result of {@linkcode evaluateVit}. */
export interface VitEvaluation {
  /** Accuracy. */
  acc: number;
  /** Mean plain cross-entropy. */
  ce: number;
  /** Per MoE layer. */
  moe: MoeLayerMetrics[];
}

/**
 * Test-set evaluation (any backend, no tape): accuracy, plain cross-entropy,
 * and per MoE layer the mean R(z) at σ (computed in both modes), L_aux, load
 * and drops.
 */
export async function evaluateVit(
  model: VisionTransformer,
  c: VitTrainConfig,
  images: Uint8Array,
  labels: Uint8Array,
  sigma: number,
  limit = 0,
): Promise<VitEvaluation> {
  const chosen = subsetIndices(labels.length, limit);
  const n = chosen.length;
  const blocks = model.moeBlockIndices;
  const L = blocks.length;
  const tally = new RoutingTally(L, c.experts);
  const figures = new RouterFigures(L);
  let sums = tf.zeros([3 + 2 * L]); // correct, ce·b, (aux·b, reg·b) per layer
  const reg = regularizerSettings({ ...c, mode: "moe" }, sigma);
  for (let start = 0; start < n; start += c.batchSize) {
    const idx = chosen.subarray(start, Math.min(n, start + c.batchSize));
    const { x, y } = vitBatch(c, images, labels, idx, null);
    const { output, routed } = await model.forwardAsync(x, { training: false, reg });
    const b = idx.length;
    const next = tf.tidy(() => {
      const ce = smoothedCrossEntropy(output.logits, y, 0);
      const correct = tf.sum(tf.cast(tf.equal(tf.argMax(output.logits, 1), y), "float32"));
      const row = tf.stack([
        correct,
        tf.mul(ce, b),
        tf.scalar(0),
        ...output.moe.flatMap((m) => [tf.mul(m.aux, b), tf.mul(m.reg, b)]),
      ]);
      return tf.add(sums, row);
    });
    sums.dispose();
    sums = next;
    tally.add(stepRouting(routed));
    for (let l = 0; l < L; l++) {
      const r = output.moe[l].router;
      if (r) {
        await figures.add(l, hostPlan(routed[l].plan, "evaluateVit"), routed[l].decision?.valid, r);
      }
    }
    disposeVitOutput(output);
    model.disposeRouted(routed);
    tf.dispose([x, y]);
  }
  const d = await sums.data();
  sums.dispose();
  const moe = layerMetrics(blocks, tally, d, n, true)
    .map((m, l) => ({ ...m, router: figures.figures(l) }));
  return { acc: d[0] / n, ce: d[1] / n, moe };
}

/** Per-MoE-layer figures from a tally and sums laid out `[..3, (aux·b, reg·b) per layer]`. */
function layerMetrics(
  blocks: number[],
  tally: RoutingTally,
  d: ArrayLike<number>,
  n: number,
  withReg: boolean,
): MoeLayerMetrics[] {
  return blocks.map((block, l) => ({
    block,
    reg: withReg ? d[3 + 2 * l + 1] / n : null,
    aux: d[3 + 2 * l] / n,
    load: tally.load[l],
    deadExperts: tally.dead(l),
    dropRate: tally.dropRate(l),
    dropped: tally.dropped[l],
    leftBehind: tally.leftBehind[l],
    leftBehindRate: tally.leftBehindRate(l),
  }));
}

/** One line of `metrics.jsonl`: one epoch. */
export interface VitEpochMetrics {
  /** Epoch (1-based). */
  epoch: number;
  /** Optimizer steps so far. */
  step: number;
  /** Mean training objective (smoothed CE + penalties). */
  trainLoss: number;
  /** Mean plain training cross-entropy. */
  trainCe: number;
  /** Training accuracy (augmented batches, training mode). */
  trainAcc: number;
  /** Test cross-entropy. */
  testCe: number;
  /** Test accuracy. */
  testAcc: number;
  /** σ of the filter at the end of the epoch. */
  sigma: number;
  /** Learning rate of the last step. */
  lr: number;
  /** Wall-clock seconds of the epoch (training only). */
  seconds: number;
  /** Mean wall-clock seconds per step (batch, step, readback). */
  meanStepSeconds: number;
  /** The tfjs backend. */
  backend: string;
  /** The router of every MoE layer. */
  router: string;
  /** Per MoE layer, on the training batches of the epoch. */
  trainMoe: MoeLayerMetrics[];
  /** Per MoE layer, on the test set. */
  testMoe: MoeLayerMetrics[];
}

/** The ViT's part of `summary.json`. */
export interface VitSummary {
  /** Trainable scalars. */
  parameters: number;
  /** 0-based MoE block indices. */
  moeBlocks: number[];
  /** Final test accuracy. */
  testAcc: number;
  /** Final test cross-entropy. */
  testCe: number;
  /** Final per-MoE-layer figures on the test set. */
  testMoe: MoeLayerMetrics[];
  /** Mean seconds per training step. */
  meanStepSeconds: number;
}

/** What {@linkcode trainVit} returns and writes as `summary.json`. */
export type VitRunSummary = BaseSummary<VitTrainConfig> & VitSummary;

/** Options of {@linkcode trainVit}. */
export type VitTrainOptions = LoopOptions<Dataset, VitEpochMetrics>;

/** The ViT task: `deno task train --model vit`. */
export const vitTask: Task<VitTrainConfig, Dataset, VitEvaluation, VitEpochMetrics, VitSummary> = {
  name: "vit",
  title: "V-MoE / V-MoGE, a Vision Transformer with MoE layers (Sec. 3.1, Appendix B)",
  defaults: DEFAULT_VIT_CONFIG,
  presets: VIT_PRESETS,
  fields: VIT_FIELDS,
  validate: validateVitTrainConfig,
  defaultOutDir: (c) => `runs/vit-${c.mode}-s${c.seed}`,
  load: (c, log) =>
    c.dataset === "fixture"
      ? loadFixture("fashion-mnist")
      : loadDataset(c.dataset, { onProgress: log }),
  open(cfg, data, backend) {
    const trainIdx = subsetIndices(data.trainLabels.length, cfg.trainLimit);
    const schedule = epochSchedule(trainIdx.length, cfg);
    const { stepsPerEpoch } = schedule;
    const model = buildVit(cfg);
    const blocks = model.moeBlockIndices;
    const L = blocks.length;
    const trainReg = cfg.mode === "moge";
    const evaluate = (sigma: number) =>
      evaluateVit(model, cfg, data.testImages, data.testLabels, sigma, cfg.testLimit);
    return {
      ...schedule,
      config: cfg,
      model,
      moeLayers: L,
      excludeFromWeightDecay: VisionTransformer.excludeFromWeightDecay,
      configExtras: () => ({ moeBlockIndices: blocks, parameters: model.parameterCount }),
      async step(step, { sigma, lr, opt }) {
        const idx = epochBatch(cfg.seed, step, trainIdx, cfg.batchSize);
        const augment = new Rng(deriveSeed(cfg.seed, 3, step));
        const { x, y } = vitBatch(cfg, data.trainImages, data.trainLabels, idx, augment);
        const b = idx.length;
        const so: VitStepOptions = {
          seed: deriveSeed(cfg.seed, 2, step),
          step,
          reg: vitRegSettings(cfg, sigma, trainReg),
          lr,
          labelSmoothing: cfg.labelSmoothing,
          routing: cfg.routing,
        };
        const planned = await planVitStep(model, x, so); // webgpu, routers other than top-k
        const { stats, plans } = vitTrainStep(model, opt, x, y, { ...so, planned });
        const scale = tf.tensor1d([b, b, 1, ...new Array(2 * L).fill(b)]);
        const weighted = tf.mul(stats, scale) as Tensor1D;
        tf.dispose([stats, scale, x, y]);
        return { stats: weighted, count: b, plans };
      },
      progress: (d, seen) => ({ loss: d[0] / seen, acc: d[2] / seen }),
      evaluate: (_step, sigma) => evaluate(sigma),
      metrics: (iv, ev, { sigma, lr }) => ({
        epoch: iv.step / stepsPerEpoch,
        step: iv.step,
        ...intervalMeans(iv, ["trainLoss", "trainCe", "trainAcc"]),
        testCe: ev.ce,
        testAcc: ev.acc,
        sigma,
        lr,
        seconds: iv.seconds,
        meanStepSeconds: iv.seconds / Math.max(1, iv.steps),
        backend: backend.backend,
        router: cfg.router,
        trainMoe: layerMetrics(blocks, iv.tally, iv.sums, iv.seen, trainReg),
        testMoe: ev.moe,
      }),
      async summary(st, sigma) {
        const last = st.lastEval ?? await evaluate(sigma);
        return {
          parameters: model.parameterCount,
          moeBlocks: blocks,
          testAcc: last.acc,
          testCe: last.ce,
          testMoe: last.moe,
          meanStepSeconds: st.step ? st.trainSeconds / st.step : NaN,
        };
      },
    };
  },
};

/**
 * Trains the ViT (MoE or MoGE per `cfg.mode`) with the one loop. Shuffling
 * derives from (seed, epoch); augmentation, dropout, drop path and routing
 * noise from (seed, step), so a resumed run continues exactly.
 *
 * @example
 * ```ts ignore
 * import { DEFAULT_VIT_CONFIG, trainVit, VIT_PRESETS } from "./vit_task.ts";
 * import { loadFixture } from "../data/images.ts";
 * const data = await loadFixture("fashion-mnist");
 * await trainVit({ ...DEFAULT_VIT_CONFIG, ...VIT_PRESETS["vit-smoke"] }, { outDir: "runs/v", data });
 * ```
 */
export function trainVit(cfg: VitTrainConfig, opts: VitTrainOptions): Promise<VitRunSummary> {
  return trainAndEvaluate(vitTask, cfg, opts);
}
