/**
 * The language-model task (MoGE Sec. 3.2): SMoE / MomentumSMoE / AdamSMoE,
 * each with or without the MoGE regularizer, on character-level Moby Dick
 * (`data/text.ts`). What differs from the other models: the model, the
 * batches (random windows), the loss (mean next-token cross-entropy plus
 * Σ_layers λ·mean R(z_l); no load-balancing loss by default), the
 * validation perplexity every `evalEvery` steps with the best weights kept
 * in `best/` (as the paper does), and the final report, which evaluates the
 * best weights on the validation and test splits. The loop (`loop.ts`)
 * does the rest. Units of λ: see `lm_config.ts`.
 *
 * @module
 */

import { tf } from "../deps.ts";
import { disposeLmRouted, MoeLm, perplexity, tokenNll } from "../models/lm.ts";
import { loadTextCorpus, type TextCorpus } from "../data/text.ts";
import { evalWindows, makeLmBatch, sampleWindows } from "../data/text_batches.ts";
import { hostPlan, type RegularizerSettings, type RoutedBatch } from "../moe/moe_layer.ts";
import { needsHostPlan } from "../models/transformer.ts";
import type { AdamW } from "./optim.ts";
import { Rng } from "../rng.ts";
import type { Tensor1D, Tensor2D } from "../types.ts";
import { regularizerSettings } from "./moge_settings.ts";
import { type BaseSummary, type LoopOptions, trainAndEvaluate } from "./loop.ts";
import {
  applyGradients,
  deriveSeed,
  intervalMeans,
  RouterFigures,
  type StepRouting,
  stepRouting,
  type Task,
} from "./task.ts";
import {
  DEFAULT_LM_CONFIG,
  LM_FIELDS,
  LM_PRESETS,
  lmModelConfig,
  type LmTrainConfig,
  validateLmTrainConfig,
} from "./lm_config.ts";

export * from "./lm_config.ts";

/** The result of one {@linkcode lmTrainStep}. */
export interface LmStepResult {
  /** `[loss, ce, Σ_l mean R(z_l)]` of the batch (the caller disposes it). */
  stats: Tensor1D;
  /** Each layer's routing (plan; device counts on webgpu; the loop's tally takes them). */
  plans: StepRouting[];
}

/** Options of {@linkcode lmTrainStep}. */
export interface LmStepOptions {
  /** Seed of the step's dropout and routing noise. */
  seed: number;
  /** Regularizer settings (null: no R(z)). */
  reg: RegularizerSettings | null;
  /** Learning rate of this step. */
  lr: number;
  /** The training step (SSR). */
  step?: number;
  /**
   * Every layer's routed batch, planned before the step
   * ({@linkcode planLmStep}, same seed and step; the step frees them):
   * webgpu with a router other than top-k, which cannot plan in the tape.
   */
  planned?: RoutedBatch[];
}

/**
 * The step's routing planned on the CPU before its taped pass (an untaped
 * forward pass with the step's seeds, one readback per layer), when the
 * backend and router need it (webgpu with a router other than top-k; see
 * `needsHostPlan`); else undefined (the step routes inside the tape).
 */
export async function planLmStep(
  model: MoeLm,
  x: Tensor2D,
  o: LmStepOptions,
): Promise<RoutedBatch[] | undefined> {
  if (!needsHostPlan(model.moes)) return undefined;
  const out = await model.forwardAsync(x, {
    training: true,
    seed: o.seed,
    reg: o.reg,
    step: o.step,
  });
  tf.dispose([out.logits, out.penalty, out.regularizer]);
  return out.routed;
}

/**
 * One optimizer step on a batch: the forward pass inside the gradient tape
 * (routing in the pass: on cpu/wasm synchronously, on webgpu planned on the
 * device without a readback), loss = mean CE + penalties, AdamW.
 */
export function lmTrainStep(
  model: MoeLm,
  opt: AdamW,
  x: Tensor2D,
  y: Tensor2D,
  o: LmStepOptions,
): LmStepResult {
  const opts = { training: true, seed: o.seed, reg: o.reg, step: o.step };
  let routed: RoutedBatch[] = o.planned ?? [];
  let stats: tf.Tensor1D | null = null;
  try {
    applyGradients(model.params, opt, () => {
      const out = o.planned
        ? model.forwardWith(x, opts, (_req, i) => o.planned![i])
        : model.forwardSync(x, opts);
      routed = out.routed;
      const ce = tf.mean(tokenNll(out.logits, y));
      const loss = tf.add(ce, out.penalty) as tf.Scalar;
      stats = tf.keep(tf.stack([loss, ce, tf.sum(out.regularizer)]) as tf.Tensor1D);
      return loss;
    }, o.lr);
  } catch (e) {
    disposeLmRouted(routed);
    throw e;
  }
  const plans = stepRouting(routed);
  disposeLmRouted(routed);
  return { stats: stats!, plans };
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
  /**
   * Per MoE layer: the router's mean gate over routed (token, expert) pairs,
   * routing entropy (nats, mean over tokens) and z-loss (whatever its weight).
   */
  router: { meanGate: number; entropy: number; zLoss: number }[];
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
  const figures = new RouterFigures(model.config.layers);
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
    for (const [l, r] of (out.router ?? []).entries()) {
      await figures.add(
        l,
        hostPlan(out.routed[l].plan, "evaluateLm"),
        out.routed[l].decision?.valid,
        r,
      );
      tf.dispose([r.gates, r.z, r.routerLogits]);
    }
    disposeLmRouted(out.routed);
    [nll, reg] = next as [tf.Scalar, tf.Tensor1D];
  }
  const count = starts.length * T;
  const total = (await nll.data())[0];
  const regs = Array.from(await reg.data(), (v) => v / starts.length);
  tf.dispose([nll, reg]);
  const router = regs.map((_, l) => figures.figures(l));
  return { nll: total / count, ppl: perplexity(total, count), tokens: count, reg: regs, router };
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
  /** The router of every MoE layer. */
  router: string;
  /** Per layer: dropped (token, choice) pairs since the previous evaluation. */
  dropped: number[];
  /** Per layer: training tokens left behind (no choice reached an expert). */
  leftBehind: number[];
  /** Per layer: `leftBehind` over the training tokens. */
  leftBehindRate: number[];
  /** Per layer, on the validation tokens: mean gate, routing entropy, z-loss. */
  validRouter: { meanGate: number; entropy: number; zLoss: number }[];
  /** Largest expert buffer / (N·k/E), mean over steps (1 = balanced). */
  maxSlotsFraction: number;
  /** Training seconds since the previous evaluation. */
  seconds: number;
  /** The tfjs backend. */
  backend: string;
}

/** The language model's part of `summary.json`. */
export interface LmSummary {
  /** Vocabulary size V. */
  vocabSize: number;
  /** Trainable scalars. */
  parameters: number;
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
  /** Wall-clock of the evaluations (periodic and final). */
  evalSeconds: number;
}

/** What {@linkcode trainLm} returns and writes as `summary.json`. */
export type LmRunSummary = BaseSummary<LmTrainConfig> & LmSummary;

/** Options of {@linkcode trainLm}: the loop's, with the corpus as `corpus`. */
export type LmTrainOptions = Omit<LoopOptions<TextCorpus, LmEvalMetrics>, "data"> & {
  /** The tokenized corpus (loaded by the caller). */
  corpus: TextCorpus;
};

const NO_EVAL: LmEval = { nll: NaN, ppl: NaN, tokens: 0, reg: [], router: [] };

/** The language-model task: `deno task train --model lm`. */
export const lmTask: Task<LmTrainConfig, TextCorpus, LmEval, LmEvalMetrics, LmSummary> = {
  name: "lm",
  title: "a MoE Transformer language model (Sec. 3.2, Table 10) on character-level Moby Dick",
  defaults: DEFAULT_LM_CONFIG,
  presets: LM_PRESETS,
  fields: LM_FIELDS,
  validate: validateLmTrainConfig,
  defaultOutDir: (c) => `runs/lm-${c.variant}-${c.mode}-s${c.seed}`,
  load: (c, log) => loadTextCorpus(c.dataset, { onProgress: log }),
  open(cfg, corpus, backend) {
    const T = cfg.contextLength;
    if (corpus.train.length < T + 1 || corpus.valid.length < T + 1 || corpus.test.length < T + 1) {
      throw new RangeError(
        `contextLength = ${T} is invalid for this corpus: every split needs more than T tokens` +
          ` (train ${corpus.train.length}, valid ${corpus.valid.length}, test ${corpus.test.length})`,
      );
    }
    const model = new MoeLm(lmModelConfig(cfg, corpus.vocab.length), cfg.seed);
    const evalBatch = Math.max(cfg.batchSize, 32);
    const score = (tokens: Uint16Array, maxTokens: number, sigma: number) =>
      evaluateLm(model, tokens, {
        batchSize: evalBatch,
        maxTokens,
        reg: regularizerSettings(cfg, sigma),
      });
    return {
      config: cfg,
      model,
      moeLayers: cfg.layers,
      totalSteps: cfg.steps,
      warmupSteps: cfg.warmupSteps,
      lrDecay: cfg.lrDecay,
      excludeFromWeightDecay: (name) => /\.(b\d?|g)$/.test(name) || name.startsWith("emb."),
      isEvalStep: (step) => step % cfg.evalEvery === 0,
      configExtras: () => ({}),
      async step(step, { sigma, lr, opt }) {
        const rng = new Rng(deriveSeed(cfg.seed, 1, step));
        const starts = sampleWindows(corpus.train.length, T, cfg.batchSize, rng);
        const { x, y } = makeLmBatch(corpus.train, starts, T);
        const so: LmStepOptions = {
          seed: deriveSeed(cfg.seed, 2, step),
          reg: regularizerSettings(cfg, sigma),
          lr,
          step,
        };
        const planned = await planLmStep(model, x, so); // webgpu, routers other than top-k
        const { stats, plans } = lmTrainStep(model, opt, x, y, { ...so, planned });
        tf.dispose([x, y]);
        return { stats, count: 1, plans };
      },
      progress: (d, seen) => ({ loss: d[0] / seen, ppl: Math.exp(d[1] / seen) }),
      evaluate: (_step, sigma) => score(corpus.valid, cfg.evalTokens, sigma),
      score: (ev) => ev.ppl,
      metrics: (iv, valid, { sigma, lr, best }) => ({
        step: iv.step,
        ...intervalMeans(iv, ["trainLoss", "trainCe"]),
        trainPpl: Math.exp(iv.sums[1] / iv.seen),
        trainReg: iv.sums[2] / iv.seen,
        validCe: valid.nll,
        validPpl: valid.ppl,
        validTokens: valid.tokens,
        validReg: valid.reg,
        bestValidPpl: best.value,
        bestStep: best.step,
        sigma,
        lr,
        load: iv.tally.load,
        deadExperts: iv.tally.load.map((_, l) => iv.tally.dead(l)),
        dropRate: iv.tally.dropRate(),
        router: cfg.router,
        dropped: iv.tally.dropped,
        leftBehind: iv.tally.leftBehind,
        leftBehindRate: iv.tally.leftBehind.map((_, l) => iv.tally.leftBehindRate(l)),
        validRouter: valid.router,
        maxSlotsFraction: iv.tally.slotsFraction / iv.steps,
        seconds: iv.seconds,
        backend: backend.backend,
      }),
      async summary(st, sigma) {
        let valid = NO_EVAL, test = NO_EVAL, trainEval = NO_EVAL;
        const e0 = performance.now();
        if (st.completed) {
          // The best-validation weights, evaluated on all three splits.
          await st.run.loadBest(model.params);
          valid = await score(corpus.valid, cfg.finalEvalTokens, sigma);
          test = await score(corpus.test, cfg.finalEvalTokens, sigma);
          const trainTokens = cfg.finalEvalTokens > 0 ? cfg.finalEvalTokens : corpus.valid.length;
          trainEval = await score(corpus.train, trainTokens, sigma);
        }
        return {
          vocabSize: corpus.vocab.length,
          parameters: model.parameterCount,
          bestStep: st.best.step,
          trainPpl: trainEval.ppl,
          validPpl: valid.ppl,
          testPpl: test.ppl,
          trainTokens: trainEval.tokens,
          validTokens: valid.tokens,
          testTokens: test.tokens,
          testReg: test.reg,
          evalSeconds: st.evalSeconds + (performance.now() - e0) / 1000,
        };
      },
    };
  },
};

/**
 * Trains a language model per `cfg` with the one loop, writing its run
 * directory; returns the summary of the best-validation weights.
 *
 * @example
 * ```ts ignore
 * import { DEFAULT_LM_CONFIG, LM_PRESETS, trainLm } from "./lm_task.ts";
 * import { loadTextCorpus } from "../data/text.ts";
 * const corpus = await loadTextCorpus("fixture");
 * await trainLm({ ...DEFAULT_LM_CONFIG, ...LM_PRESETS["lm-tiny"] }, { outDir: "runs/lm", corpus });
 * ```
 */
export function trainLm(cfg: LmTrainConfig, opts: LmTrainOptions): Promise<LmRunSummary> {
  const { corpus, ...rest } = opts;
  return trainAndEvaluate(lmTask, cfg, { ...rest, data: corpus });
}
