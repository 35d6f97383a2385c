/**
 * Training V-MoE / V-MoGE ({@linkcode VisionTransformer}) on Fashion-MNIST or
 * MNIST with the MoGE vision recipe (Appendix B): AdamW, cosine schedule with
 * linear warm-up, label smoothing, random crop with padding and optional
 * horizontal flip, stochastic depth; MoGE adds λ·mean R(z) of every MoE layer
 * (eq. 9) with the σ schedule of eq. 8.
 *
 * A run directory holds `config.json`, `metrics.jsonl` (one line per epoch,
 * with per-MoE-layer regularizer, load and drops), `checkpoint/` (every epoch
 * and on stop, atomic; resume is exact) and `summary.json`, as the
 * classifier's `train.ts`.
 *
 * @module
 */

import { tf } from "../deps.ts";
import { type BackendInfo, type BackendRequest, useBackend } from "../backend.ts";
import type { Mode, TrainDataset } from "./classifier_config.ts";
import { type Dataset, makeBatch } from "../data/images.ts";
import type { FilterKind } from "../moge/filters.ts";
import { topographicLayout } from "../moge/layout.ts";
import type { RegularizerSettings, RoutedBatch } from "../moe/moe_layer.ts";
import type { RoutingPlan } from "../moe/routing.ts";
import { AdamW } from "./optim.ts";
import { cosineWithWarmup } from "./lr_schedule.ts";
import { Rng } from "../rng.ts";
import { sigmaSchedule } from "../moge/sigma_schedule.ts";
import { appendJsonLine, writeJsonAtomic } from "../atomic.ts";
import { loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
import { padImages, randomCropFlip, smoothedCrossEntropy } from "../data/augment.ts";
import {
  disposeVitOutput,
  lastEvenBlocks,
  VisionTransformer,
  type VitConfig,
  type VitOutput,
  type VitPool,
} from "../models/vit.ts";
import { checkInteger, checkNumber } from "../validate.ts";
import type { Tensor1D, Tensor2D } from "../types.ts";

/**
 * How MoE routing is planned in a training step: "sync" plans each layer
 * inside the gradient tape with a synchronous readback (cpu, wasm); "async"
 * plans all layers in an awaited pass outside the tape, then replays the
 * plans on the tape (any backend; the only way on webgpu); "auto" is "async"
 * on webgpu and "sync" elsewhere.
 */
export type VitRouting = "auto" | "sync" | "async";

/** Every knob of a ViT training run. */
export interface VitTrainConfig {
  /** "moe": no R(z) in the loss; "moge": loss += λ·Σ_layers mean R(z). */
  mode: Mode;
  /** "fixture" = the small committed Fashion-MNIST subset. */
  dataset: TrainDataset;
  /** Model input side; the 28x28 images are centred on a zero canvas of this size. */
  imageSize: number;
  /** p, the patch side (must divide imageSize). */
  patchSize: number;
  /** d, the token width. */
  embedDim: number;
  /** Transformer blocks. */
  depth: number;
  /** Attention heads. */
  numHeads: number;
  /** MLP / expert hidden width (d -> mlpDim -> d). */
  mlpDim: number;
  /** "cls" (class token, V-MoE) or "mean". */
  pool: VitPool;
  /** "lastN" (V-MoE: MoE in the last N even-numbered blocks), "none", or 0-based "i,j,...". */
  moeBlocks: string;
  /** E per MoE layer. */
  experts: number;
  /** k, experts per token. */
  topK: number;
  /** C_f, the expert capacity factor (0: unlimited). */
  capacityFactor: number;
  /** Weight of each layer's load-balancing loss. */
  loadBalanceWeight: number;
  /** λ, the weight of each layer's batch mean of R(z) (MoGE only). */
  lambda: number;
  /** σ_max of the σ schedule (eq. 8). */
  sigmaMax: number;
  /** σ_min of the σ schedule. */
  sigmaMin: number;
  /** γ of the σ schedule (eq. 8). */
  gamma: number;
  /** "gaussian" or "average". */
  filter: FilterKind;
  /** h, the filter size. */
  filterSize: number;
  /** Dropout rate (embeddings, MLP, attention output). */
  dropout: number;
  /** Dropout on attention weights. */
  attentionDropout: number;
  /** Stochastic depth: largest drop-path rate (linear in depth). */
  dropPath: number;
  /** ε, the label smoothing of the cross-entropy. */
  labelSmoothing: number;
  /** Random crop after zero padding by this many pixels (0: off). */
  cropPadding: number;
  /** Probability of a horizontal flip (0: off; wrong for digits). */
  flipProb: number;
  /** Training epochs. */
  epochs: number;
  /** Images per batch. */
  batchSize: number;
  /** AdamW peak learning rate. */
  learningRate: number;
  /** AdamW decoupled weight decay (not on biases, norms, pos, cls). */
  weightDecay: number;
  /** Length of the linear warm-up in epochs (then cosine decay to 0). */
  warmupEpochs: number;
  /** Train on a fixed class-mixed subset of n images (0: all; see subsetIndices). */
  trainLimit: number;
  /** Evaluate on a fixed class-mixed subset of n test images (0: all). */
  testLimit: number;
  /** Seeds weights, shuffling, augmentation, dropout, drop path and routing noise. */
  seed: number;
  /** The tfjs backend ("auto": webgpu on a hardware GPU, else wasm). */
  backend: BackendRequest;
  /** Routing driver (see VitRouting). */
  routing: VitRouting;
}

/** The allowed values of the enumerated fields. */
export const VIT_CHOICES = {
  mode: ["moe", "moge"],
  dataset: ["fashion-mnist", "mnist", "fixture"],
  pool: ["cls", "mean"],
  filter: ["gaussian", "average"],
  backend: ["auto", "webgpu", "wasm", "cpu"],
  routing: ["auto", "sync", "async"],
} as const;

/**
 * `vit-tiny`, the default: 28x28 inputs, patch 7 (16 patch tokens + the class
 * token), d = 64, 4 blocks, 4 heads, MLP 128, E = 32 top-1 experts in blocks
 * 1 and 3 (V-MoE's "last two even-numbered blocks"), 3 epochs of the full
 * Fashion-MNIST training set.
 */
export const DEFAULT_VIT_CONFIG: VitTrainConfig = {
  mode: "moge",
  dataset: "fashion-mnist",
  imageSize: 28,
  patchSize: 7,
  embedDim: 64,
  depth: 4,
  numHeads: 4,
  mlpDim: 128,
  pool: "cls",
  moeBlocks: "last2",
  experts: 32,
  topK: 1,
  capacityFactor: 4,
  loadBalanceWeight: 0.01,
  lambda: 4e-3,
  sigmaMax: 10,
  sigmaMin: 1.5,
  gamma: 0.3,
  filter: "gaussian",
  filterSize: 3,
  dropout: 0,
  attentionDropout: 0,
  dropPath: 0.1,
  labelSmoothing: 0.1,
  cropPadding: 2,
  flipProb: 0,
  epochs: 3,
  batchSize: 128,
  learningRate: 1e-3,
  weightDecay: 0.05,
  warmupEpochs: 0.3,
  trainLimit: 0,
  testLimit: 0,
  seed: 0,
  backend: "auto",
  routing: "auto",
};

/** Named presets, applied over {@linkcode DEFAULT_VIT_CONFIG}; flags override them. */
export const VIT_PRESETS: Record<string, Partial<VitTrainConfig>> = {
  /** The default (see {@linkcode DEFAULT_VIT_CONFIG}). */
  "vit-tiny": {},
  /**
   * The paper's V-MoE-S / V-MoGE-S shape and CIFAR-100 recipe (Appendix B):
   * 32x32 input (Fashion-MNIST centred on a 32x32 canvas), patch 4, d = 512,
   * 8 blocks, 8 heads, MLP 2048, E = 32 top-1 in blocks 5 and 7, 150 epochs
   * of batch 128. For a GPU (webgpu); on a CPU it runs, slowly.
   */
  "vmoe-s": {
    imageSize: 32,
    patchSize: 4,
    embedDim: 512,
    depth: 8,
    numHeads: 8,
    mlpDim: 2048,
    pool: "cls",
    moeBlocks: "last2",
    experts: 32,
    topK: 1,
    capacityFactor: 4,
    loadBalanceWeight: 0.01,
    lambda: 4e-3,
    sigmaMax: 10,
    sigmaMin: 1.5,
    gamma: 0.3,
    dropPath: 0.1,
    labelSmoothing: 0.1,
    cropPadding: 4,
    epochs: 150,
    batchSize: 128,
    learningRate: 1e-3,
    weightDecay: 0.05,
    warmupEpochs: 10,
  },
  /** Seconds: the committed fixture, a 2-block d = 16 model, E = 9 in block 1. */
  "vit-smoke": {
    dataset: "fixture",
    patchSize: 7,
    embedDim: 16,
    depth: 2,
    numHeads: 2,
    mlpDim: 32,
    moeBlocks: "last1",
    experts: 9,
    epochs: 1,
    batchSize: 100,
    testLimit: 100,
  },
};

/**
 * The paper's values (MoGE Appendix B, CIFAR-100 column for V-MoGE-S, and the
 * authors' code for the MoE settings), by field, for `--help`. Where the text
 * lost an exponent the value is the inferred one.
 */
export const VIT_PAPER_VALUES: Partial<Record<keyof VitTrainConfig, string>> = {
  imageSize: "32 (CIFAR-100)",
  patchSize: "4",
  embedDim: "512",
  depth: "8",
  numHeads: "8",
  mlpDim: "2048 (V-MoE-S)",
  pool: "cls",
  moeBlocks: "last2 (blocks 5, 7 of 8)",
  experts: "32",
  topK: "1",
  capacityFactor: "4.0 (code)",
  loadBalanceWeight: "0.01 (code)",
  lambda: "4e-3 (CIFAR-100 / Tiny-ImageNet)",
  sigmaMax: "10",
  sigmaMin: "1.5",
  gamma: "0.3",
  filter: "gaussian",
  filterSize: "3",
  dropout: "0 (V-MoE)",
  attentionDropout: "0 (V-MoE)",
  dropPath: "0.1",
  labelSmoothing: "0.1",
  cropPadding: "random crop: yes (padding 4 inferred)",
  flipProb: "0.5 on CIFAR-100 (0 for digits)",
  epochs: "150",
  batchSize: "128",
  learningRate: "1e-3 (exponent lost in the text; inferred)",
  weightDecay: "0.05",
  warmupEpochs: "10",
};

/**
 * The 0-based MoE block indices of a `moeBlocks` spec: `"lastN"` (the last N
 * even-numbered blocks, {@linkcode lastEvenBlocks}), `"none"`, or a comma
 * list of indices.
 *
 * @example
 * ```ts
 * import { parseMoeBlocks } from "./vit_task.ts";
 * parseMoeBlocks("last2", 8); // [5, 7]
 * parseMoeBlocks("0,2", 4); // [0, 2]
 * ```
 */
export function parseMoeBlocks(spec: string, depth: number): number[] {
  const s = String(spec).trim();
  if (s === "none" || s === "") return [];
  const last = /^last(\d+)$/.exec(s);
  if (last) {
    const n = Number(last[1]);
    const even = Math.floor(depth / 2); // 1, 3, ... < depth (counted, not listed: depth may be huge)
    if (n > even) {
      throw new RangeError(
        `moeBlocks = "${s}" is invalid: a ${depth}-block model has only ${even} even-numbered blocks`,
      );
    }
    return lastEvenBlocks(depth, n);
  }
  if (!/^\d+(,\d+)*$/.test(s)) {
    throw new RangeError(
      `moeBlocks = "${s}" is invalid: use "lastN" (e.g. last2), "none" or 0-based indices like "1,3"`,
    );
  }
  const blocks = s.split(",").map(Number);
  for (const b of blocks) {
    if (b >= depth) {
      throw new RangeError(`moeBlocks = "${s}" is invalid: block ${b} >= depth ${depth}`);
    }
  }
  if (new Set(blocks).size !== blocks.length) {
    throw new RangeError(`moeBlocks = "${s}" is invalid: a block repeats`);
  }
  return blocks.sort((a, b) => a - b);
}

/** Checks every field, throwing a `RangeError` that names the field, the value and what is allowed. */
export function validateVitTrainConfig(c: VitTrainConfig): void {
  for (const [field, allowed] of Object.entries(VIT_CHOICES)) {
    const v = (c as unknown as Record<string, string>)[field];
    if (!(allowed as readonly string[]).includes(v)) {
      throw new RangeError(`${field} = "${v}" is invalid: allowed are ${allowed.join(", ")}`);
    }
  }
  const int = (name: keyof VitTrainConfig, min: number, max = Infinity) =>
    checkInteger(name, c[name] as number, min, max);
  int("imageSize", 28);
  int("patchSize", 1, c.imageSize);
  if (c.imageSize % c.patchSize !== 0) {
    throw new RangeError(
      `patchSize = ${c.patchSize} is invalid: it must divide imageSize = ${c.imageSize}`,
    );
  }
  int("embedDim", 1);
  int("depth", 1);
  int("numHeads", 1);
  if (c.embedDim % c.numHeads !== 0) {
    throw new RangeError(
      `numHeads = ${c.numHeads} is invalid: it must divide embedDim = ${c.embedDim}`,
    );
  }
  int("mlpDim", 1);
  parseMoeBlocks(c.moeBlocks, c.depth);
  int("experts", 1);
  int("topK", 1, c.experts);
  int("filterSize", 1);
  int("cropPadding", 0);
  int("epochs", 1);
  int("batchSize", 1);
  int("trainLimit", 0);
  int("testLimit", 0);
  int("seed", 0, 2 ** 31 - 1);
  checkNumber("capacityFactor", c.capacityFactor, { min: 0 });
  checkNumber("loadBalanceWeight", c.loadBalanceWeight, { min: 0 });
  checkNumber("lambda", c.lambda, { min: 0 });
  checkNumber("sigmaMin", c.sigmaMin, { min: 0, exclusiveMin: true });
  checkNumber("sigmaMax", c.sigmaMax, { min: c.sigmaMin });
  checkNumber("gamma", c.gamma, { min: 0 });
  for (const f of ["dropout", "attentionDropout", "dropPath"] as const) {
    checkNumber(f, c[f], { min: 0 });
    if (c[f] >= 1) throw new RangeError(`${f} = ${c[f]} is invalid: ${f} must be in [0, 1)`);
  }
  checkNumber("labelSmoothing", c.labelSmoothing, { min: 0, max: 1 });
  checkNumber("flipProb", c.flipProb, { min: 0, max: 1 });
  checkNumber("learningRate", c.learningRate, { min: 0, exclusiveMin: true });
  checkNumber("weightDecay", c.weightDecay, { min: 0 });
  checkNumber("warmupEpochs", c.warmupEpochs, { min: 0, max: c.epochs });
  if (c.mode === "moge" && parseMoeBlocks(c.moeBlocks, c.depth).length > 0) {
    topographicLayout(c.experts, c.filterSize);
  }
}

/** The model shape of a training config (images are 1-channel, 10 classes). */
export function vitConfigOf(c: VitTrainConfig, numClasses = 10, channels = 1): VitConfig {
  return {
    imageSize: c.imageSize,
    channels,
    patchSize: c.patchSize,
    numClasses,
    embedDim: c.embedDim,
    depth: c.depth,
    numHeads: c.numHeads,
    mlpDim: c.mlpDim,
    pool: c.pool,
    moeBlocks: parseMoeBlocks(c.moeBlocks, c.depth),
    experts: c.experts,
    topK: c.topK,
    capacityFactor: c.capacityFactor,
    loadBalanceWeight: c.loadBalanceWeight,
    dropout: c.dropout,
    attentionDropout: c.attentionDropout,
    dropPath: c.dropPath,
  };
}

/** Builds the model of a training config. */
export function buildVit(c: VitTrainConfig): VisionTransformer {
  return new VisionTransformer(vitConfigOf(c), c.seed);
}

/** Derives a 31-bit seed from the run seed, a stream and a counter (resumable from the step alone). */
export function deriveSeed(seed: number, stream: number, counter: number): number {
  const r = new Rng((seed * 0x9e3779b1 + stream * 0x85ebca6b + counter * 0xc2b2ae35) >>> 0);
  return r.seedForTf();
}

/**
 * The images a `limit` selects: all when `limit` is 0 (or >= count), else the
 * first `limit` of a fixed permutation (seed 0x5eed, the same for every run
 * seed), sorted. Fashion-MNIST is stored class by class, so taking the first
 * n images would drop whole classes; this subset mixes them.
 *
 * @example
 * ```ts
 * import { subsetIndices } from "./vit_task.ts";
 * subsetIndices(5, 0); // Int32Array [0, 1, 2, 3, 4]
 * subsetIndices(60000, 3).length; // 3
 * ```
 */
export function subsetIndices(count: number, limit: number): Int32Array {
  checkInteger("count", count, 0);
  checkInteger("limit", limit, 0);
  if (limit === 0 || limit >= count) return Int32Array.from({ length: count }, (_, i) => i);
  return new Rng(0x5eed).permutation(count).slice(0, limit).sort();
}

/** The regularizer settings of a step: λ = 0 and no R(z) for MoE when `withReg` is false. */
export function vitRegSettings(
  c: VitTrainConfig,
  sigma: number,
  withReg: boolean,
): RegularizerSettings | null {
  if (!withReg) return null;
  return {
    lambda: c.mode === "moge" ? c.lambda : 0,
    sigma,
    filterSize: c.filterSize,
    filter: c.filter,
  };
}

/** Resolves "auto" to the driver the current tfjs backend needs. */
export function resolveRouting(r: VitRouting): "sync" | "async" {
  if (r !== "auto") return r;
  return tf.getBackend() === "webgpu" ? "async" : "sync";
}

/** Options of {@linkcode vitTrainStep}. */
export interface VitStepOptions {
  /** Seed of the step's dropout, drop-path and routing noise. */
  seed: number;
  /** Regularizer settings (null: no R(z), plain MoE). */
  reg: RegularizerSettings | null;
  /** Learning rate of this step. */
  lr: number;
  /** Label smoothing ε. */
  labelSmoothing: number;
  /** Routing driver (default "auto"). */
  routing?: VitRouting;
}

/** The result of one {@linkcode vitTrainStep}. */
export interface VitStepResult {
  /**
   * `[loss, ce, correct, aux_0, reg_0, aux_1, reg_1, ...]`: the objective
   * (smoothed CE + penalties), plain CE, correct predictions, and each MoE
   * layer's L_aux and mean R(z) (0 when not computed). Caller disposes.
   */
  stats: Tensor1D;
  /** Each MoE layer's routing plan (load, drops). */
  plans: RoutingPlan[];
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
 * One optimizer step of the ViT: route every MoE layer (in the tape on
 * cpu/wasm, or in a planning pass before it; see {@linkcode VitRouting}),
 * differentiate smoothed CE + Σ_layers penalties, apply AdamW, and free the
 * routed batches. MoE and MoGE run the same code; MoGE's `reg.lambda` > 0.
 */
export async function vitTrainStep(
  model: VisionTransformer,
  opt: AdamW,
  x: Tensor2D,
  y: Tensor1D,
  o: VitStepOptions,
): Promise<VitStepResult> {
  const fwd = { training: true, seed: o.seed, reg: o.reg };
  const mode = resolveRouting(o.routing ?? "auto");
  const planned: RoutedBatch[] | null = mode === "async" ? await model.planRoutes(x, fwd) : null;
  let routed: RoutedBatch[] = planned ?? [];
  try {
    let stats: Tensor1D | null = null;
    const { value, grads } = tf.variableGrads(() => {
      let out: VitOutput;
      if (planned) {
        out = model.forwardReplay(x, fwd, planned);
      } else {
        const r = model.forwardSync(x, fwd);
        routed = r.routed;
        out = r.output;
      }
      const r = lossAndStats(out, y, o.labelSmoothing);
      stats = tf.keep(r.stats);
      return r.loss as tf.Scalar;
    }, Object.values(model.params));
    const byVarName = new Map(Object.entries(model.params).map(([k, v]) => [v.name, k]));
    const named: Record<string, tf.Tensor> = {};
    for (const [k, g] of Object.entries(grads)) if (g) named[byVarName.get(k)!] = g;
    opt.step(named, model.params, o.lr);
    tf.dispose([value, ...Object.values(grads).filter((g) => g)]);
    return { stats: stats!, plans: routed.map((r) => r.plan) };
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
  const loads = blocks.map(() => new Array(c.experts).fill(0));
  const dropped = new Array(L).fill(0);
  let sums = tf.zeros([3 + 2 * L]); // correct, ce·b, (aux·b, reg·b) per layer
  const reg = vitRegSettings({ ...c, mode: "moe" }, sigma, true);
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
    routed.forEach((r, l) => {
      r.plan.load.forEach((v, e) => loads[l][e] += v);
      dropped[l] += r.plan.dropped;
    });
    disposeVitOutput(output);
    model.disposeRouted(routed);
    tf.dispose([x, y]);
  }
  const d = await sums.data();
  sums.dispose();
  return {
    acc: d[0] / n,
    ce: d[1] / n,
    moe: blocks.map((block, l) => ({
      block,
      reg: d[3 + 2 * l + 1] / n,
      aux: d[3 + 2 * l] / n,
      load: loads[l],
      deadExperts: loads[l].filter((v) => v === 0).length,
      dropRate: dropped[l] / (n * model.tokens * c.topK),
    })),
  };
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
  /** Per MoE layer, on the training batches of the epoch. */
  trainMoe: MoeLayerMetrics[];
  /** Per MoE layer, on the test set. */
  testMoe: MoeLayerMetrics[];
}

/** Progress of a run, reported every few steps. */
export interface VitProgress {
  /** Epoch (1-based). */
  epoch: number;
  /** Epochs in the run. */
  epochs: number;
  /** Optimizer steps so far. */
  step: number;
  /** Steps in the run. */
  totalSteps: number;
  /** Mean objective so far this epoch. */
  loss: number;
  /** Training accuracy so far this epoch. */
  acc: number;
  /** Steps per second this epoch. */
  stepsPerSecond: number;
  /** Estimated seconds left. */
  etaSeconds: number;
}

/** What {@linkcode trainVit} returns and writes as `summary.json`. */
export interface VitRunSummary {
  /** The configuration. */
  config: VitTrainConfig;
  /** The backend it ran on. */
  backend: BackendInfo;
  /** Trainable scalars. */
  parameters: number;
  /** 0-based MoE block indices. */
  moeBlocks: number[];
  /** Optimizer steps done. */
  steps: number;
  /** All steps done (false when stopped early). */
  completed: boolean;
  /** Final test accuracy. */
  testAcc: number;
  /** Final test cross-entropy. */
  testCe: number;
  /** Final per-MoE-layer figures on the test set. */
  testMoe: MoeLayerMetrics[];
  /** Wall-clock seconds of training (evaluation excluded). */
  trainSeconds: number;
  /** Mean seconds per training step. */
  meanStepSeconds: number;
  /** The run directory. */
  outDir: string;
}

/** Options of {@linkcode trainVit}. */
export interface VitTrainOptions {
  /** Run directory. */
  outDir: string;
  /** The data (loaded by the caller). */
  data: Dataset;
  /** Continue from `outDir/checkpoint` if it exists. */
  resume?: boolean;
  /** Stop (with a checkpoint) after this many optimizer steps in total. */
  stopAfterSteps?: number;
  /** Stop (with a checkpoint) when aborted. */
  signal?: AbortSignal;
  /** Called every `progressEvery` steps. */
  onProgress?: (p: VitProgress) => void;
  /** Called after each epoch. */
  onEpoch?: (m: VitEpochMetrics) => void;
  /** Steps between progress calls (default 10). */
  progressEvery?: number;
  /** Backend information (if the caller already switched). */
  backendInfo?: BackendInfo;
}

interface VitMeta {
  step: number;
  optStep: number;
  trainSeconds: number;
  stepSeconds: number;
  stepCount: number;
  config: VitTrainConfig;
}

/**
 * Trains the ViT (MoE or MoGE per `cfg.mode`). Shuffling derives from (seed,
 * epoch); augmentation, dropout, drop path and routing noise from (seed,
 * step), so a resumed run continues exactly.
 */
export async function trainVit(cfg: VitTrainConfig, opts: VitTrainOptions): Promise<VitRunSummary> {
  validateVitTrainConfig(cfg);
  const backend = opts.backendInfo ?? await useBackend(cfg.backend);
  const data = opts.data;
  const trainIdx = subsetIndices(data.trainLabels.length, cfg.trainLimit);
  const nTrain = trainIdx.length;
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
  const model = buildVit(cfg);
  const opt = new AdamW({
    learningRate: cfg.learningRate,
    weightDecay: cfg.weightDecay,
    excludeFromWeightDecay: VisionTransformer.excludeFromWeightDecay,
  });
  const blocks = model.moeBlockIndices;
  const L = blocks.length;
  const outDir = opts.outDir;
  await Deno.mkdir(outDir, { recursive: true });
  const ckptDir = `${outDir}/checkpoint`;
  let step = 0;
  let trainSeconds = 0;
  let stepSeconds = 0;
  let stepCount = 0;
  if (opts.resume) {
    const ck = await loadCheckpoint<VitMeta>(ckptDir).catch(
      (e: Error) => {
        if (e instanceof Deno.errors.NotFound) return null;
        throw e;
      },
    );
    if (ck) {
      const meta = ck.meta;
      if (JSON.stringify(meta.config) !== JSON.stringify(cfg)) {
        throw new Error(
          `--resume: the checkpoint in ${ckptDir} was written with a different config`,
        );
      }
      for (const [name, v] of Object.entries(model.params)) {
        const t = ck.tensors[`param/${name}`];
        if (!t) throw new Error(`--resume: checkpoint lacks parameter ${name}`);
        tf.tidy(() => v.assign(tf.tensor(t.values, t.shape)));
      }
      const moments = (kind: "m" | "v") =>
        Object.fromEntries(
          Object.entries(ck.tensors).filter(([k]) => k.startsWith(`opt.${kind}/`)).map((
            [k, t],
          ) => [k.slice(6), tf.tensor(t.values, t.shape)]),
        );
      const m = moments("m");
      const v = moments("v");
      opt.setState({ step: meta.optStep, m, v });
      tf.dispose([...Object.values(m), ...Object.values(v)]);
      ({ step, trainSeconds, stepSeconds, stepCount } = meta);
    }
  }
  await writeJsonAtomic(`${outDir}/config.json`, {
    ...cfg,
    backendInfo: backend,
    moeBlockIndices: blocks,
    parameters: model.parameterCount,
  });

  const save = async () => {
    const tensors: Record<string, tf.Tensor> = {};
    for (const [name, v] of Object.entries(model.params)) tensors[`param/${name}`] = v;
    const st = opt.getState();
    for (const [name, t] of Object.entries(st.m)) tensors[`opt.m/${name}`] = t;
    for (const [name, t] of Object.entries(st.v)) tensors[`opt.v/${name}`] = t;
    const meta: VitMeta = {
      step,
      optStep: st.step,
      trainSeconds,
      stepSeconds,
      stepCount,
      config: cfg,
    };
    await saveCheckpoint(ckptDir, { tensors, meta });
  };

  const trainReg = cfg.mode === "moge";
  let stopped = false;
  let lastTest: VitEvaluation | null = null;
  while (step < totalSteps && !stopped) {
    const epoch = Math.floor(step / stepsPerEpoch);
    const perm = new Rng(deriveSeed(cfg.seed, 1, epoch)).permutation(nTrain);
    const t0 = performance.now();
    let sums = tf.zeros([3 + 2 * L]);
    let seen = 0;
    let epochSteps = 0;
    let epochStepSeconds = 0;
    const loads = blocks.map(() => new Array(cfg.experts).fill(0));
    const dropped = new Array(L).fill(0);
    for (let s = step % stepsPerEpoch; s < stepsPerEpoch; s++) {
      const ts = performance.now();
      const idx = perm.subarray(s * cfg.batchSize, Math.min(nTrain, (s + 1) * cfg.batchSize))
        .map((i) => trainIdx[i]);
      const { x, y } = vitBatch(
        cfg,
        data.trainImages,
        data.trainLabels,
        idx,
        new Rng(deriveSeed(cfg.seed, 3, step)),
      );
      const b = idx.length;
      const { stats, plans } = await vitTrainStep(model, opt, x, y, {
        seed: deriveSeed(cfg.seed, 2, step),
        reg: vitRegSettings(cfg, sigmaAt(step), trainReg),
        lr: lrAt(step),
        labelSmoothing: cfg.labelSmoothing,
        routing: cfg.routing,
      });
      const scale = tf.tensor1d([b, b, 1, ...new Array(2 * L).fill(b)]);
      const nextSums = tf.tidy(() => tf.add(sums, tf.mul(stats, scale)));
      tf.dispose([sums, stats, scale, x, y]);
      sums = nextSums;
      plans.forEach((p, l) => {
        p.load.forEach((v, e) => loads[l][e] += v);
        dropped[l] += p.dropped;
      });
      seen += b;
      step++;
      epochSteps++;
      const now = performance.now();
      epochStepSeconds += (now - ts) / 1000;
      if (opts.onProgress && (step % (opts.progressEvery ?? 10) === 0 || s === stepsPerEpoch - 1)) {
        const d = await sums.data();
        const rate = epochSteps / ((performance.now() - t0) / 1000);
        opts.onProgress({
          epoch: epoch + 1,
          epochs: cfg.epochs,
          step,
          totalSteps,
          loss: d[0] / seen,
          acc: d[2] / seen,
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
    stepSeconds += epochStepSeconds;
    stepCount += epochSteps;
    if (!stopped || step % stepsPerEpoch === 0) {
      lastTest = await evaluateVit(
        model,
        cfg,
        data.testImages,
        data.testLabels,
        sigmaAt(step),
        cfg.testLimit,
      );
      const m: VitEpochMetrics = {
        epoch: epoch + 1,
        step,
        trainLoss: d[0] / seen,
        trainCe: d[1] / seen,
        trainAcc: d[2] / seen,
        testCe: lastTest.ce,
        testAcc: lastTest.acc,
        sigma: sigmaAt(step),
        lr: lrAt(Math.max(0, step - 1)),
        seconds,
        meanStepSeconds: epochStepSeconds / Math.max(1, epochSteps),
        backend: backend.backend,
        trainMoe: blocks.map((block, l) => ({
          block,
          reg: trainReg ? d[3 + 2 * l + 1] / seen : null,
          aux: d[3 + 2 * l] / seen,
          load: loads[l],
          deadExperts: loads[l].filter((v) => v === 0).length,
          dropRate: dropped[l] / (seen * model.tokens * cfg.topK),
        })),
        testMoe: lastTest.moe,
      };
      await appendJsonLine(`${outDir}/metrics.jsonl`, m);
      opts.onEpoch?.(m);
    }
    await save();
  }
  const completed = step >= totalSteps;
  if (!lastTest) {
    lastTest = await evaluateVit(
      model,
      cfg,
      data.testImages,
      data.testLabels,
      sigmaAt(step),
      cfg.testLimit,
    );
  }
  const summary: VitRunSummary = {
    config: cfg,
    backend,
    parameters: model.parameterCount,
    moeBlocks: blocks,
    steps: step,
    completed,
    testAcc: lastTest.acc,
    testCe: lastTest.ce,
    testMoe: lastTest.moe,
    trainSeconds,
    meanStepSeconds: stepCount ? stepSeconds / stepCount : NaN,
    outDir,
  };
  await writeJsonAtomic(`${outDir}/summary.json`, summary);
  opt.dispose();
  model.dispose();
  return summary;
}
