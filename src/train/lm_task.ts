/**
 * Training the MoGE language models (MOGE.md section 3, "Language models";
 * issue 7): SMoE / MomentumSMoE / AdamSMoE, each with or without the MoGE
 * regularizer, on character-level Moby Dick (`lm_data.ts`).
 *
 * The loss of a batch is the mean next-token cross-entropy over its B·T
 * positions plus Σ_layers λ·mean R(z_l) (MoGE; λ = 0 for the plain models,
 * whose R(z) is still logged) and no load-balancing loss by default.
 *
 * Units of λ: here λ multiplies the batch mean of R(z) over the B·T tokens
 * (summed over layers), next to a mean cross-entropy, so it does not depend
 * on the batch size. The authors' LM code (MOGE.md section 2) sums R over
 * the tokens of a batch, divides by P = (r − h + 1)(c − h + 1) = 4 for
 * E = 16, and adds it inside an auxiliary loss weighted by 0.01, next to a
 * mean cross-entropy; in batch-mean units their weight is therefore
 * 0.01·λ_paper·N/P for N tokens per forward pass. With λ_paper = 1e-4 and
 * their small model's N = 48 × 256 = 12,288 (batch 96 in two halves, 256
 * tokens each) that is 3.1e-3, so the default here is λ = 3e-3. (Their
 * effective λ grows with their batch; this one does not.)
 *
 * Optimizer: AdamW (`optim.ts`; weight decay 0 by default, i.e. Adam as in
 * the paper) with a linear warm-up, then cosine decay (or constant, the
 * paper's schedule). Every `evalEvery` steps the validation perplexity is
 * measured (on at most `evalTokens` tokens); the weights with the best
 * validation perplexity are kept in `best/`, as the paper does, and the
 * final report evaluates them on the full validation and test splits.
 *
 * Writes into the run directory: `config.json`, `metrics.jsonl` (one line
 * per evaluation), `checkpoint/` (for `--resume`), `best/` and
 * `summary.json`.
 *
 * @module
 */

import { tf } from "../deps.ts";
import { type BackendInfo, type BackendRequest, useBackend } from "../backend.ts";
import { appendJsonLine, writeJsonAtomic } from "../atomic.ts";
import { loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
import type { Mode } from "./classifier_config.ts";
import type { FilterKind } from "../moge/filters.ts";
import { isUsableE, topographicLayout } from "../moge/layout.ts";
import {
  disposeLmRouted,
  type LmConfig,
  MoeLm,
  type MoeVariant,
  perplexity,
  tokenNll,
} from "../models/lm.ts";
import {
  evalWindows,
  makeLmBatch,
  sampleWindows,
  type TextCorpus,
  type TextDatasetName,
} from "../data/text.ts";
import { cosineWithWarmup } from "./lr_schedule.ts";
import type { Activation, RegularizerSettings, RoutedBatch } from "../moe/moe_layer.ts";
import { AdamW } from "./optim.ts";
import { Rng } from "../rng.ts";
import type { RoutingPlan } from "../moe/routing.ts";
import { sigmaSchedule } from "../moge/sigma_schedule.ts";
import type { Tensor1D, Tensor2D } from "../types.ts";
import { checkInteger, checkNumber } from "../validate.ts";

/** Learning-rate schedule after the warm-up. */
export type LrDecay = "cosine" | "constant";

/** Every knob of a language-model run. */
export interface LmTrainConfig {
  /** "moe": λ = 0 (R(z) still logged); "moge": loss += λ·Σ_l mean R(z_l). */
  mode: Mode;
  /** Smoe | momentum | adam. */
  variant: MoeVariant;
  /** "moby-dick" (npm) or "fixture" (committed slice). */
  dataset: TextDatasetName;
  /** Transformer blocks (paper, small: 3). */
  layers: number;
  /** Model width d (paper: 128). */
  hidden: number;
  /** Attention heads (paper: 8). */
  heads: number;
  /** E per MoE layer (paper: 16). */
  experts: number;
  /** K (paper: 2). */
  topK: number;
  /** D_ff per expert (authors' small config: 128). */
  expertHidden: number;
  /** Expert activation (authors' code: relu). */
  activation: Activation;
  /** T, tokens per training window (paper: 256 words). */
  contextLength: number;
  /** Dropout rate (paper, small: 0.7). */
  dropout: number;
  /** C_f (0: no limit, as the authors' fastmoe layer; lm-small: 2). */
  capacityFactor: number;
  /** Routing noise (0: none, as the authors' SMoE gate). */
  noiseStd: number;
  /** Load-balancing loss weight (MoGE LM recipe: 0). */
  loadBalanceWeight: number;
  /** MomentumSMoE μ (paper, small: 0.7). */
  mu: number;
  /** MomentumSMoE step size γ (paper, small: 0.8). */
  momentumGamma: number;
  /** AdamSMoE β1 (authors' code: 0.9). */
  adamBeta1: number;
  /** AdamSMoE β2 (authors' code: 0.999). */
  adamBeta2: number;
  /** AdamSMoE step size (authors' code: 1.0). */
  adamGamma: number;
  /** Blocks taking the Adam step (authors' code: the first). */
  adamLayers: number;
  /** Λ on the layer sum of batch-mean R(z) (3e-3 ≈ the paper's 1e-4, see above). */
  lambda: number;
  /** Σ_max (paper: 10). */
  sigmaMax: number;
  /** Σ_min (paper: 1.5). */
  sigmaMin: number;
  /** Γ of the σ schedule (paper: 0.3). */
  gamma: number;
  /** Gaussian (paper) | average. */
  filter: FilterKind;
  /** H (paper: 3). */
  filterSize: number;
  /** Optimizer steps. */
  steps: number;
  /** Windows per batch (paper: 96). */
  batchSize: number;
  /** Peak learning rate (paper: Adam 1e-3). */
  learningRate: number;
  /** AdamW decoupled weight decay (paper: 0, plain Adam). */
  weightDecay: number;
  /** Linear warm-up (paper: 3000). */
  warmupSteps: number;
  /** After warm-up: cosine to 0, or constant (paper). */
  lrDecay: LrDecay;
  /** Steps between validation evaluations. */
  evalEvery: number;
  /** Tokens scored per periodic validation (0: the whole split). */
  evalTokens: number;
  /** Tokens scored per split in the final report (0: whole splits). */
  finalEvalTokens: number;
  /** Seeds weights, batches, dropout, routing noise. */
  seed: number;
  /** Auto | webgpu | wasm | cpu. */
  backend: BackendRequest;
}

/**
 * The defaults, `lm-small`: the paper's small model (3 layers, d = 128, 8
 * heads, E = 16, k = 2, d_ff = 128, MoGE λ/σ schedule) on 64-character
 * windows, 300 steps of 16 windows: about 7 minutes on 2 shared CPU cores
 * with the wasm backend. Two departures for the CPU budget: no dropout (the
 * model sees a fraction of an epoch), and capacity factor 2 instead of no
 * limit: without a load-balancing loss the routers concentrate (the busiest
 * expert held 5.6x the balanced load after 30 steps in a trial), which
 * multiplies the expert work of a batched layout and slows the looped one;
 * C_f = 2 caps it at twice the balanced load (the dropped choices keep the
 * residual path, and `metrics.jsonl` logs the drop rate). Evaluation runs
 * without a capacity limit.
 */
export const DEFAULT_LM_CONFIG: LmTrainConfig = {
  mode: "moge",
  variant: "smoe",
  dataset: "moby-dick",
  layers: 3,
  hidden: 128,
  heads: 8,
  experts: 16,
  topK: 2,
  expertHidden: 128,
  activation: "relu",
  contextLength: 64,
  dropout: 0,
  capacityFactor: 2,
  noiseStd: 0,
  loadBalanceWeight: 0,
  mu: 0.7,
  momentumGamma: 0.8,
  adamBeta1: 0.9,
  adamBeta2: 0.999,
  adamGamma: 1,
  adamLayers: 1,
  lambda: 3e-3,
  sigmaMax: 10,
  sigmaMin: 1.5,
  gamma: 0.3,
  filter: "gaussian",
  filterSize: 3,
  steps: 300,
  batchSize: 16,
  learningRate: 2e-3,
  weightDecay: 0,
  warmupSteps: 20,
  lrDecay: "cosine",
  evalEvery: 50,
  evalTokens: 8192,
  finalEvalTokens: 32768,
  seed: 0,
  backend: "auto",
};

/** Named presets; each is applied over the defaults, then flags override it. */
export const LM_PRESETS: Record<string, Partial<LmTrainConfig>> = {
  /** The paper's small model (Table 10), scaled in steps and context to minutes on a CPU. */
  "lm-small": {},
  /**
   * The paper's small setting as far as it carries over (3 layers, d = 128,
   * 8 heads, E = 16, k = 2, dropout 0.7, batch 96, Adam 1e-3 with 3,000
   * warm-up steps, constant after; their T = 256 is words, here characters):
   * days on a CPU.
   */
  "lm-paper": {
    layers: 3,
    hidden: 128,
    heads: 8,
    experts: 16,
    topK: 2,
    expertHidden: 128,
    contextLength: 256,
    dropout: 0.7,
    capacityFactor: 0,
    batchSize: 96,
    learningRate: 1e-3,
    weightDecay: 0,
    warmupSteps: 3000,
    lrDecay: "constant",
    steps: 60000,
    evalEvery: 1000,
    evalTokens: 0,
    finalEvalTokens: 0,
    lambda: 3e-3,
    sigmaMax: 10,
    sigmaMin: 1.5,
    gamma: 0.3,
    mu: 0.7,
    momentumGamma: 0.8,
  },
  /** Seconds on the committed fixture (tests, smoke runs). */
  "lm-tiny": {
    dataset: "fixture",
    layers: 2,
    hidden: 16,
    heads: 2,
    experts: 9,
    topK: 2,
    expertHidden: 16,
    contextLength: 16,
    batchSize: 4,
    steps: 6,
    warmupSteps: 2,
    evalEvery: 3,
    evalTokens: 256,
    finalEvalTokens: 512,
  },
};

/** The enumerated fields of {@linkcode LmTrainConfig}. */
export type LmChoiceField =
  | "mode"
  | "variant"
  | "dataset"
  | "activation"
  | "filter"
  | "lrDecay"
  | "backend";

/** The allowed values of the enumerated fields. */
export const LM_CHOICES: { readonly [K in LmChoiceField]: readonly string[] } = {
  mode: ["moe", "moge"],
  variant: ["smoe", "momentum", "adam"],
  dataset: ["moby-dick", "fixture"],
  activation: ["gelu", "relu", "tanh"],
  filter: ["gaussian", "average"],
  lrDecay: ["cosine", "constant"],
  backend: ["auto", "webgpu", "wasm", "cpu"],
};

/**
 * Checks every field of a config, throwing a `RangeError` whose message
 * starts with the field name.
 *
 * @example
 * ```ts
 * import { DEFAULT_LM_CONFIG, validateLmTrainConfig } from "./lm_task.ts";
 * validateLmTrainConfig(DEFAULT_LM_CONFIG); // ok
 * ```
 */
export function validateLmTrainConfig(c: LmTrainConfig): void {
  for (const [field, allowed] of Object.entries(LM_CHOICES)) {
    const v = (c as unknown as Record<string, string>)[field];
    if (!(allowed as readonly string[]).includes(v)) {
      throw new RangeError(`${field} = "${v}" is invalid: allowed are ${allowed.join(", ")}`);
    }
  }
  const int = (name: keyof LmTrainConfig, min: number, max = Infinity) =>
    checkInteger(name, c[name] as number, min, max);
  int("layers", 1);
  int("hidden", 1);
  int("heads", 1, c.hidden);
  if (c.hidden % c.heads !== 0) {
    throw new RangeError(`heads = ${c.heads} is invalid: hidden = ${c.hidden} must be a multiple`);
  }
  int("experts", 1);
  int("topK", 1, c.experts);
  int("expertHidden", 1);
  int("contextLength", 1);
  int("adamLayers", 0, c.layers);
  int("filterSize", 1);
  int("steps", 1);
  int("batchSize", 1);
  int("warmupSteps", 0, c.steps);
  int("evalEvery", 1);
  int("evalTokens", 0);
  int("finalEvalTokens", 0);
  int("seed", 0, 2 ** 31 - 1);
  checkNumber("dropout", c.dropout, { min: 0, max: 0.95 });
  checkNumber("capacityFactor", c.capacityFactor, { min: 0 });
  checkNumber("noiseStd", c.noiseStd, { min: 0 });
  checkNumber("loadBalanceWeight", c.loadBalanceWeight, { min: 0 });
  checkNumber("mu", c.mu, { min: 0, max: 1 });
  checkNumber("momentumGamma", c.momentumGamma, { min: 0, exclusiveMin: true });
  checkNumber("adamBeta1", c.adamBeta1, { min: 0, max: 1 });
  checkNumber("adamBeta2", c.adamBeta2, { min: 0, max: 0.999999 });
  checkNumber("adamGamma", c.adamGamma, { min: 0, exclusiveMin: true });
  checkNumber("lambda", c.lambda, { min: 0 });
  checkNumber("sigmaMin", c.sigmaMin, { min: 0, exclusiveMin: true });
  checkNumber("sigmaMax", c.sigmaMax, { min: c.sigmaMin });
  checkNumber("gamma", c.gamma, { min: 0 });
  checkNumber("learningRate", c.learningRate, { min: 0, exclusiveMin: true });
  checkNumber("weightDecay", c.weightDecay, { min: 0 });
  if (c.mode === "moge") {
    try {
      topographicLayout(c.experts, c.filterSize);
    } catch (e) {
      throw new RangeError(`experts = ${c.experts} is invalid for MoGE: ${(e as Error).message}`);
    }
  }
}

/** The model configuration of a run for a vocabulary of `vocabSize` tokens. */
export function lmModelConfig(cfg: LmTrainConfig, vocabSize: number): LmConfig {
  return {
    vocabSize,
    contextLength: cfg.contextLength,
    layers: cfg.layers,
    hidden: cfg.hidden,
    heads: cfg.heads,
    experts: cfg.experts,
    topK: cfg.topK,
    expertHidden: cfg.expertHidden,
    activation: cfg.activation,
    capacityFactor: cfg.capacityFactor,
    noiseStd: cfg.noiseStd,
    loadBalanceWeight: cfg.loadBalanceWeight,
    dropout: cfg.dropout,
    variant: cfg.variant,
    mu: cfg.mu,
    momentumGamma: cfg.momentumGamma,
    adamBeta1: cfg.adamBeta1,
    adamBeta2: cfg.adamBeta2,
    adamGamma: cfg.adamGamma,
    adamLayers: cfg.adamLayers,
    adamEps: 1e-8,
  };
}

/** The regularizer settings at σ (null when E has no usable layout: nothing to log). */
export function lmRegSettings(cfg: LmTrainConfig, sigma: number): RegularizerSettings | null {
  if (!isUsableE(cfg.experts, cfg.filterSize)) return null;
  return {
    lambda: cfg.mode === "moge" ? cfg.lambda : 0,
    sigma,
    filterSize: cfg.filterSize,
    filter: cfg.filter,
  };
}

/** Derives a 31-bit seed from the run seed, a stream and a counter (resumable from the step). */
function derive(seed: number, stream: number, counter: number): number {
  return new Rng((seed * 0x9e3779b1 + stream * 0x85ebca6b + counter * 0xc2b2ae35) >>> 0)
    .seedForTf();
}

/** The result of one {@linkcode lmTrainStep}. */
export interface LmStepResult {
  /** `[loss, ce, Σ_l mean R(z_l)]` of the batch (the caller disposes it). */
  stats: Tensor1D;
  /** Each layer's routing plan. */
  plans: RoutingPlan[];
}

/**
 * One optimizer step on a batch: the forward pass inside the gradient tape
 * (on cpu/wasm routing synchronously; on webgpu replaying plans made by an
 * untaped pass with the same seed), loss = mean CE + penalties, AdamW.
 */
export async function lmTrainStep(
  model: MoeLm,
  opt: AdamW,
  x: Tensor2D,
  y: Tensor2D,
  o: { seed: number; reg: RegularizerSettings | null; lr: number },
): Promise<LmStepResult> {
  const opts = { training: true, seed: o.seed, reg: o.reg };
  const plans = tf.getBackend() === "webgpu" ? await model.plan(x, opts) : null;
  let routed: RoutedBatch[] = plans ?? [];
  let stats: tf.Tensor1D | null = null;
  const vars = Object.values(model.params);
  let value: tf.Scalar, grads: tf.NamedTensorMap;
  try {
    ({ value, grads } = tf.variableGrads(() => {
      const out = plans ? model.forwardWithPlans(x, opts, plans) : model.forwardSync(x, opts);
      routed = out.routed;
      const ce = tf.mean(tokenNll(out.logits, y));
      const loss = tf.add(ce, out.penalty) as tf.Scalar;
      stats = tf.keep(tf.stack([loss, ce, tf.sum(out.regularizer)]) as tf.Tensor1D);
      return loss;
    }, vars));
  } catch (e) {
    disposeLmRouted(routed);
    throw e;
  }
  const byVarName = new Map(Object.entries(model.params).map(([k, v]) => [v.name, k]));
  const named = Object.fromEntries(Object.entries(grads).map(([k, g]) => [byVarName.get(k)!, g]));
  opt.step(named, model.params, o.lr);
  tf.dispose([value, ...Object.values(grads)]);
  const planList = routed.map((r) => r.plan);
  disposeLmRouted(routed);
  return { stats: stats!, plans: planList };
}

/** What {@linkcode evaluateLm} measures. */
export interface LmEval {
  /** Mean negative log-likelihood per token (nats). */
  nll: number;
  /** Perplexity exp(nll). */
  ppl: number;
  /** Tokens scored. */
  tokens: number;
  /** Batch-mean R(z) per MoE layer, averaged over the batches. */
  reg: number[];
}

/**
 * Perplexity of a split in eval mode (no dropout, no noise, no capacity
 * limit, so every position sees only its prefix): non-overlapping windows of
 * `contextLength` tokens, each scored from an empty context, at most
 * `maxTokens` scored tokens spread over the split (0: the whole split; see
 * `evalWindows`).
 */
export async function evaluateLm(
  model: MoeLm,
  tokens: Uint16Array,
  o: { batchSize: number; maxTokens: number; reg: RegularizerSettings | null },
): Promise<LmEval> {
  const T = model.config.contextLength;
  const maxWindows = o.maxTokens > 0 ? Math.max(1, Math.floor(o.maxTokens / T)) : 0;
  const starts = evalWindows(tokens.length, T, maxWindows);
  if (starts.length === 0) {
    throw new RangeError(
      `evaluateLm: a split of ${tokens.length} tokens has no window of ${T + 1}`,
    );
  }
  let nll = tf.scalar(0);
  let reg = tf.zeros([model.config.layers]);
  for (let b = 0; b < starts.length; b += o.batchSize) {
    const idx = starts.subarray(b, Math.min(starts.length, b + o.batchSize));
    const { x, y } = makeLmBatch(tokens, idx, T);
    const out = await model.forwardAsync(x, {
      training: false,
      seed: 0,
      reg: o.reg,
      capacityFactor: 0,
    });
    const next = tf.tidy(() => [
      tf.add(nll, tf.sum(tokenNll(out.logits, y))),
      tf.add(reg, tf.mul(out.regularizer, idx.length)),
    ]);
    tf.dispose([nll, reg, x, y, out.logits, out.penalty, out.regularizer]);
    disposeLmRouted(out.routed);
    [nll, reg] = next as [tf.Scalar, tf.Tensor1D];
  }
  const count = starts.length * T;
  const total = (await nll.data())[0];
  const regs = Array.from(await reg.data(), (v) => v / starts.length);
  tf.dispose([nll, reg]);
  return { nll: total / count, ppl: perplexity(total, count), tokens: count, reg: regs };
}

/** One line of `metrics.jsonl`: one validation evaluation. */
export interface LmEvalMetrics {
  /** Optimizer steps taken. */
  step: number;
  /** Mean training loss (CE + penalties) since the previous evaluation. */
  trainLoss: number;
  /** Mean training cross-entropy (nats) since the previous evaluation. */
  trainCe: number;
  /** Exp(mean training CE since the previous evaluation; dropout on). */
  trainPpl: number;
  /** Mean Σ_l R(z_l) since the previous evaluation. */
  trainReg: number;
  /** Validation cross-entropy (nats per token). */
  validCe: number;
  /** Validation perplexity. */
  validPpl: number;
  /** Validation tokens scored. */
  validTokens: number;
  /** Validation batch-mean R(z) per layer. */
  validReg: number[];
  /** Best validation perplexity so far. */
  bestValidPpl: number;
  /** Step of the best validation perplexity. */
  bestStep: number;
  /** σ of the MoGE filter now. */
  sigma: number;
  /** Learning rate of the last step. */
  lr: number;
  /** Tokens per expert per layer since the previous evaluation. */
  load: number[][];
  /** Per layer. */
  deadExperts: number[];
  /** Dropped (token, choice) pairs since the previous evaluation (capacity). */
  dropRate: number;
  /** Largest expert buffer / (N·k/E), mean over steps (1 = balanced). */
  maxSlotsFraction: number;
  /** Training seconds since the previous evaluation. */
  seconds: number;
  /** The tfjs backend. */
  backend: string;
}

/** Progress of a run, reported every few steps. */
export interface LmProgress {
  /** Optimizer steps taken. */
  step: number;
  /** Steps of the whole run. */
  totalSteps: number;
  /** Mean training loss since the last evaluation. */
  loss: number;
  /** exp(mean training cross-entropy) since the last evaluation. */
  ppl: number;
  /** Training speed since the last evaluation. */
  stepsPerSecond: number;
  /** Estimated training time left. */
  etaSeconds: number;
}

/** What {@linkcode trainLm} returns and writes as `summary.json`. */
export interface LmRunSummary {
  /** The run's configuration. */
  config: LmTrainConfig;
  /** The backend it ran on. */
  backend: BackendInfo;
  /** Vocabulary size V. */
  vocabSize: number;
  /** Trainable scalars. */
  parameters: number;
  /** Optimizer steps taken. */
  steps: number;
  /** Whether all steps ran (false when stopped early). */
  completed: boolean;
  /** Step of the best validation perplexity (its weights are in `best/`). */
  bestStep: number;
  /** Training perplexity of the best weights, eval mode, on `trainTokens` tokens spread over the split (null when stopped early). */
  trainPpl: number;
  /** Validation perplexity of the best weights (null when stopped early). */
  validPpl: number;
  /** Test perplexity of the best weights (null when stopped early). */
  testPpl: number;
  /** Training tokens scored. */
  trainTokens: number;
  /** Validation tokens scored. */
  validTokens: number;
  /** Test tokens scored. */
  testTokens: number;
  /** Test batch-mean R(z) per layer. */
  testReg: number[];
  /** Wall-clock of the optimizer steps. */
  trainSeconds: number;
  /** Wall-clock of the evaluations (periodic and final). */
  evalSeconds: number;
  /** The run directory. */
  outDir: string;
}

/** Options of {@linkcode trainLm}. */
export interface LmTrainOptions {
  /** Run directory. */
  outDir: string;
  /** The tokenized corpus (loaded by the caller). */
  corpus: TextCorpus;
  /** Continue from `outDir/checkpoint` if it exists. */
  resume?: boolean;
  /** Stop (with a checkpoint) after this many optimizer steps in total. */
  stopAfterSteps?: number;
  /** Stop (with a checkpoint) when aborted. */
  signal?: AbortSignal;
  /** Called every `progressEvery` steps. */
  onProgress?: (p: LmProgress) => void;
  /** Called after each validation evaluation. */
  onEval?: (m: LmEvalMetrics) => void;
  /** Steps between progress calls (default 10). */
  progressEvery?: number;
  /** Backend information (if the caller already switched). */
  backendInfo?: BackendInfo;
}

interface LmCheckpointMeta {
  step: number;
  optStep: number;
  trainSeconds: number;
  evalSeconds: number;
  bestValidPpl: number;
  bestStep: number;
  config: LmTrainConfig;
}

function setParams(
  model: MoeLm,
  tensors: Record<string, { values: Float32Array | Int32Array; shape: number[] }>,
  prefix: string,
  where: string,
): void {
  for (const [name, v] of Object.entries(model.params)) {
    const t = tensors[`${prefix}${name}`];
    if (!t) throw new Error(`${where} lacks parameter ${name}`);
    tf.tidy(() => v.assign(tf.tensor(t.values, t.shape)));
  }
}

/**
 * Trains a language model per `cfg` (see the module docs), writing its run
 * directory; returns the summary of the best-validation weights.
 */
export async function trainLm(cfg: LmTrainConfig, opts: LmTrainOptions): Promise<LmRunSummary> {
  validateLmTrainConfig(cfg);
  const backend = opts.backendInfo ?? await useBackend(cfg.backend);
  const { corpus, outDir } = opts;
  const T = cfg.contextLength;
  if (corpus.train.length < T + 1 || corpus.valid.length < T + 1 || corpus.test.length < T + 1) {
    throw new RangeError(
      `contextLength = ${T} is invalid for this corpus: every split needs more than T tokens` +
        ` (train ${corpus.train.length}, valid ${corpus.valid.length}, test ${corpus.test.length})`,
    );
  }
  const sigmaAt = sigmaSchedule({
    sigmaMax: cfg.sigmaMax,
    sigmaMin: cfg.sigmaMin,
    gamma: cfg.gamma,
    totalSteps: cfg.steps,
  });
  const cosine = cosineWithWarmup({
    baseLr: cfg.learningRate,
    warmupSteps: cfg.warmupSteps,
    totalSteps: cfg.steps,
  });
  const lrAt = (step: number) =>
    cfg.lrDecay === "cosine" || step < cfg.warmupSteps ? cosine(step) : cfg.learningRate;
  const model = new MoeLm(lmModelConfig(cfg, corpus.vocab.length), cfg.seed);
  const opt = new AdamW({
    learningRate: cfg.learningRate,
    weightDecay: cfg.weightDecay,
    excludeFromWeightDecay: (name: string) => /\.(b\d?|g)$/.test(name) || name.startsWith("emb."),
  });
  await Deno.mkdir(outDir, { recursive: true });
  const ckptDir = `${outDir}/checkpoint`;
  const bestDir = `${outDir}/best`;
  let step = 0;
  let trainSeconds = 0;
  let evalSeconds = 0;
  let bestValidPpl = Infinity;
  let bestStep = -1;
  if (opts.resume) {
    const ck = await loadCheckpoint<LmCheckpointMeta>(ckptDir).catch((e: Error) => {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    });
    if (ck) {
      const meta = ck.meta;
      if (JSON.stringify(meta.config) !== JSON.stringify(cfg)) {
        throw new Error(
          `--resume: the checkpoint in ${ckptDir} was written with a different config`,
        );
      }
      setParams(model, ck.tensors, "param/", `--resume: checkpoint ${ckptDir}`);
      const moments = (kind: "m" | "v") =>
        Object.fromEntries(
          Object.entries(ck.tensors).filter(([k]) => k.startsWith(`opt.${kind}/`))
            .map(([k, t]) => [k.slice(6), tf.tensor(t.values, t.shape)]),
        );
      const m = moments("m"), v = moments("v");
      opt.setState({ step: meta.optStep, m, v });
      tf.dispose([...Object.values(m), ...Object.values(v)]);
      ({ step, trainSeconds, evalSeconds, bestValidPpl, bestStep } = meta);
      if (bestValidPpl === null) bestValidPpl = Infinity; // JSON has no Infinity
    }
  }
  await writeJsonAtomic(`${outDir}/config.json`, { ...cfg, backendInfo: backend });

  const paramTensors = (prefix: string) =>
    Object.fromEntries(Object.entries(model.params).map(([k, v]) => [`${prefix}${k}`, v]));
  const save = async () => {
    const st = opt.getState();
    const tensors: Record<string, tf.Tensor> = paramTensors("param/");
    for (const [name, t] of Object.entries(st.m)) tensors[`opt.m/${name}`] = t;
    for (const [name, t] of Object.entries(st.v)) tensors[`opt.v/${name}`] = t;
    const meta: LmCheckpointMeta = {
      step,
      optStep: st.step,
      trainSeconds,
      evalSeconds,
      bestValidPpl,
      bestStep,
      config: cfg,
    };
    await saveCheckpoint(ckptDir, { tensors, meta });
  };

  const L = cfg.layers, E = cfg.experts;
  let sums = tf.zeros([3]);
  let seen = 0;
  let load = Array.from({ length: L }, () => new Array(E).fill(0));
  let dropped = 0, choices = 0, slotsFrac = 0;
  let intervalSeconds = 0;
  let stopped = false;
  const evalBatch = Math.max(cfg.batchSize, 32);
  while (step < cfg.steps && !stopped) {
    const rng = new Rng(derive(cfg.seed, 1, step));
    const starts = sampleWindows(corpus.train.length, T, cfg.batchSize, rng);
    const { x, y } = makeLmBatch(corpus.train, starts, T);
    const sigma = sigmaAt(step);
    const s0 = performance.now();
    const { stats, plans } = await lmTrainStep(model, opt, x, y, {
      seed: derive(cfg.seed, 2, step),
      reg: lmRegSettings(cfg, sigma),
      lr: lrAt(step),
    });
    const nextSums = tf.add(sums, stats);
    tf.dispose([sums, stats, x, y]);
    sums = nextSums;
    plans.forEach((p, l) => {
      p.load.forEach((v, e) => load[l][e] += v);
      dropped += p.dropped;
      choices += p.N * p.k;
      slotsFrac += p.slots / Math.max(1, (p.N * p.k) / p.E) / plans.length;
    });
    seen++;
    step++;
    const dt = (performance.now() - s0) / 1000;
    trainSeconds += dt;
    intervalSeconds += dt;
    if (opts.onProgress && (step % (opts.progressEvery ?? 10) === 0 || step === cfg.steps)) {
      const d = await sums.data();
      const rate = seen / intervalSeconds;
      opts.onProgress({
        step,
        totalSteps: cfg.steps,
        loss: d[0] / seen,
        ppl: Math.exp(d[1] / seen),
        stepsPerSecond: rate,
        etaSeconds: (cfg.steps - step) / rate,
      });
    }
    if (
      opts.signal?.aborted || (opts.stopAfterSteps !== undefined && step >= opts.stopAfterSteps)
    ) {
      stopped = true;
    }
    if (step % cfg.evalEvery === 0 || step === cfg.steps) {
      const e0 = performance.now();
      const valid = await evaluateLm(model, corpus.valid, {
        batchSize: evalBatch,
        maxTokens: cfg.evalTokens,
        reg: lmRegSettings(cfg, sigmaAt(step)),
      });
      if (valid.ppl < bestValidPpl) {
        bestValidPpl = valid.ppl;
        bestStep = step;
        await saveCheckpoint(bestDir, {
          tensors: paramTensors("param/"),
          meta: { step, validPpl: valid.ppl, validTokens: valid.tokens, config: cfg },
        });
      }
      const d = await sums.data();
      const m: LmEvalMetrics = {
        step,
        trainLoss: d[0] / seen,
        trainCe: d[1] / seen,
        trainPpl: Math.exp(d[1] / seen),
        trainReg: d[2] / seen,
        validCe: valid.nll,
        validPpl: valid.ppl,
        validTokens: valid.tokens,
        validReg: valid.reg,
        bestValidPpl,
        bestStep,
        sigma: sigmaAt(step),
        lr: lrAt(step - 1),
        load,
        deadExperts: load.map((row) => row.filter((v) => v === 0).length),
        dropRate: choices ? dropped / choices : 0,
        maxSlotsFraction: slotsFrac / seen,
        seconds: intervalSeconds,
        backend: backend.backend,
      };
      evalSeconds += (performance.now() - e0) / 1000;
      await appendJsonLine(`${outDir}/metrics.jsonl`, m);
      opts.onEval?.(m);
      sums.dispose();
      sums = tf.zeros([3]);
      seen = 0;
      load = Array.from({ length: L }, () => new Array(E).fill(0));
      dropped = choices = slotsFrac = 0;
      intervalSeconds = 0;
      await save();
    } else if (stopped) {
      await save();
    }
  }
  sums.dispose();
  const completed = step >= cfg.steps;
  const none: LmEval = { nll: NaN, ppl: NaN, tokens: 0, reg: [] };
  let valid = none, test = none, trainEval = none;
  if (completed) {
    // The best-validation weights, evaluated on all three splits.
    const e0 = performance.now();
    const best = await loadCheckpoint(bestDir).catch(() => null);
    if (best) setParams(model, best.tensors, "param/", `best checkpoint ${bestDir}`);
    const reg = lmRegSettings(cfg, sigmaAt(step));
    const final = (tokens: Uint16Array, maxTokens: number) =>
      evaluateLm(model, tokens, { batchSize: evalBatch, maxTokens, reg });
    valid = await final(corpus.valid, cfg.finalEvalTokens);
    test = await final(corpus.test, cfg.finalEvalTokens);
    trainEval = await final(
      corpus.train,
      cfg.finalEvalTokens > 0 ? cfg.finalEvalTokens : corpus.valid.length,
    );
    evalSeconds += (performance.now() - e0) / 1000;
  }
  const summary: LmRunSummary = {
    config: cfg,
    backend,
    vocabSize: corpus.vocab.length,
    parameters: model.parameterCount,
    steps: step,
    completed,
    bestStep,
    trainPpl: trainEval.ppl,
    validPpl: valid.ppl,
    testPpl: test.ppl,
    trainTokens: trainEval.tokens,
    validTokens: valid.tokens,
    testTokens: test.tokens,
    testReg: test.reg,
    trainSeconds,
    evalSeconds,
    outDir,
  };
  await writeJsonAtomic(`${outDir}/summary.json`, summary);
  opt.dispose();
  model.dispose();
  return summary;
}
