/**
 * The configuration of a language-model run (MoGE Sec. 3.2, Table 10):
 * SMoE / MomentumSMoE / AdamSMoE, each with or without the MoGE
 * regularizer, on character-level Moby Dick: its fields beyond the shared
 * and MoGE ones, defaults, presets, and the field table with the paper's
 * values.
 *
 * Units of λ: here λ multiplies the batch mean of R(z) over the B·T tokens
 * (summed over layers), next to a mean cross-entropy, so it does not depend
 * on the batch size. The authors' LM code sums R over the tokens of a batch,
 * divides by P = (r − h + 1)(c − h + 1) = 4 for E = 16, and adds it inside
 * an auxiliary loss weighted by 0.01, next to a mean cross-entropy; in
 * batch-mean units their weight is therefore 0.01·λ_paper·N/P for N tokens
 * per forward pass. With λ_paper = 1e-4 and their small model's N = 48 × 256
 * = 12,288 (batch 96 in two halves, 256 tokens each) that is 3.1e-3, so the
 * default here is λ = 3e-3. (Their effective λ grows with their batch; this
 * one does not.)
 *
 * @module
 */

import {
  commonFields,
  type CommonSettings,
  type FieldSpec,
  validateFields,
} from "./config_fields.ts";
import {
  MOGE_DEFAULTS,
  mogeFields,
  type MogeSettings,
  validateMogeLayout,
} from "./moge_settings.ts";
import type { LmConfig } from "../models/lm.ts";
import type { TextDatasetName } from "../data/text.ts";

/** Learning-rate schedule after the warm-up. */
export type LrDecay = "cosine" | "constant";

/**
 * Every knob of a language-model run: the shared settings, MoGE's, the
 * model's ({@linkcode LmConfig} but V, known from the corpus, and AdamSMoE's
 * ε, fixed at 1e-8), and these.
 */
export interface LmTrainConfig
  extends CommonSettings, MogeSettings, Omit<LmConfig, "vocabSize" | "adamEps"> {
  /** "moby-dick" (npm) or "fixture" (committed slice). */
  dataset: TextDatasetName;
  /** Optimizer steps. */
  steps: number;
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
  ...MOGE_DEFAULTS,
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
    // Over the defaults, which already hold the paper's shape (3 layers,
    // d = 128, 8 heads, E = 16, k = 2, d_ff 128), λ, σ schedule, μ and γ:
    contextLength: 256,
    dropout: 0.7,
    capacityFactor: 0,
    batchSize: 96,
    learningRate: 1e-3,
    warmupSteps: 3000,
    lrDecay: "constant",
    steps: 60000,
    evalEvery: 1000,
    evalTokens: 0,
    finalEvalTokens: 0,
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

const LM_PAPER: Partial<Record<keyof LmTrainConfig, string>> = {
  experts: "16",
  topK: "1 or 2",
  capacityFactor: "0 (no dropping)",
  loadBalanceWeight: "0",
  batchSize: "96",
  learningRate: "1e-3 (Adam)",
  weightDecay: "0 (Adam)",
};

const num = (
  field: keyof LmTrainConfig & string,
  flag: string,
  kind: "int" | "number",
  min: number,
  help: string,
  more: Partial<FieldSpec<LmTrainConfig>> = {},
): FieldSpec<LmTrainConfig> => ({ field, flag, kind, min, help, ...more });

/** The field table of the language models: flags, help, bounds and the paper's values. */
export const LM_FIELDS: FieldSpec<LmTrainConfig>[] = [
  ...commonFields<LmTrainConfig>({
    mode: "moe | moge (SMoE vs SMoGE: MoGE adds λ·Σ_l mean R(z_l))",
    capacityFactor: "C_f, expert capacity factor (0: no limit)",
    weightDecay: "AdamW decoupled weight decay (0: Adam)",
  }).map((f) => ({ ...f, paper: LM_PAPER[f.field] })),
  {
    field: "variant",
    flag: "moe-variant",
    kind: "choice",
    choices: ["smoe", "momentum", "adam"],
    help: "smoe | momentum | adam (Teo & Nguyen 2024)",
  },
  {
    field: "dataset",
    flag: "dataset",
    kind: "choice",
    choices: ["moby-dick", "fixture"],
    help: "moby-dick | fixture (the small committed slice)",
  },
  num("layers", "layers", "int", 1, "Transformer blocks, each with a MoE feed-forward", {
    paper: "3 (small)",
  }),
  num("hidden", "hidden", "int", 1, "model width d", { paper: "128" }),
  num("heads", "heads", "int", 1, "attention heads", { paper: "8", max: (c) => c.hidden }),
  num("expertHidden", "expert-hidden", "int", 1, "d_ff, expert hidden width (d -> d_ff -> d)", {
    paper: "128 (authors' config)",
  }),
  {
    field: "activation",
    flag: "activation",
    kind: "choice",
    choices: ["gelu", "relu", "tanh"],
    help: "gelu | relu | tanh",
  },
  num("contextLength", "context", "int", 1, "T, characters per training / evaluation window", {
    paper: "256 words",
  }),
  num("dropout", "dropout", "number", 0, "dropout rate", { max: 0.95, paper: "0.7" }),
  num("noiseStd", "noise", "number", 0, "routing-noise std in training", { paper: "0" }),
  num("mu", "moe-mu", "number", 0, "μ, MomentumSMoE heavy-ball momentum", { max: 1, paper: "0.7" }),
  num("momentumGamma", "moe-gamma", "number", 0, "γ, MomentumSMoE step size", {
    exclusiveMin: true,
    paper: "0.8 (small), 1.0 (medium)",
  }),
  num("adamBeta1", "moe-beta1", "number", 0, "β1, AdamSMoE first-moment decay", { max: 1 }),
  num("adamBeta2", "moe-beta2", "number", 0, "β2, AdamSMoE second-moment decay", {
    max: 0.999999,
  }),
  num("adamGamma", "moe-adam-gamma", "number", 0, "AdamSMoE step size", { exclusiveMin: true }),
  num("adamLayers", "moe-adam-layers", "int", 0, "blocks taking the Adam step (then momentum)", {
    max: (c) => c.layers,
  }),
  ...mogeFields<LmTrainConfig>("λ, weight of Σ_l batch-mean R(z_l) (MoGE only)", {
    lambda: "1e-4 in their units = 3.1e-3 here (see below)",
    sigmaMax: "10",
    sigmaMin: "1.5",
    gamma: "0.3",
    filterSize: "3",
  }),
  num("steps", "steps", "int", 1, "optimizer steps", { mutable: true }),
  num("warmupSteps", "warmup-steps", "int", 0, "linear warm-up steps", {
    max: (c) => c.steps,
    paper: "3000",
  }),
  {
    field: "lrDecay",
    flag: "lr-decay",
    kind: "choice",
    choices: ["cosine", "constant"],
    help: "cosine | constant, after the warm-up",
    paper: "constant",
  },
  num("evalEvery", "eval-every", "int", 1, "steps between validation evaluations"),
  num("evalTokens", "eval-tokens", "int", 0, "tokens per periodic validation (0: whole split)", {
    mutable: true,
  }),
  num(
    "finalEvalTokens",
    "final-eval-tokens",
    "int",
    0,
    "tokens per split in the final report (0: whole)",
    {
      mutable: true,
    },
  ),
];

/**
 * Checks every field of a config, throwing a `RangeError` whose message
 * starts with the field name.
 *
 * @example
 * ```ts
 * import { DEFAULT_LM_CONFIG, validateLmTrainConfig } from "./lm_config.ts";
 * validateLmTrainConfig(DEFAULT_LM_CONFIG); // ok
 * ```
 */
export function validateLmTrainConfig(c: LmTrainConfig): void {
  validateFields(LM_FIELDS, c);
  if (c.hidden % c.heads !== 0) {
    throw new RangeError(`heads = ${c.heads} is invalid: hidden = ${c.hidden} must be a multiple`);
  }
  validateMogeLayout(c);
}

/** The model configuration of a run for a vocabulary of `vocabSize` tokens. */
export function lmModelConfig(cfg: LmTrainConfig, vocabSize: number): LmConfig {
  const { contextLength, layers, hidden, heads, experts, topK, expertHidden, activation } = cfg;
  const { capacityFactor, noiseStd, loadBalanceWeight, dropout, variant, mu } = cfg;
  const { momentumGamma, adamBeta1, adamBeta2, adamGamma, adamLayers } = cfg;
  return {
    ...{ vocabSize, contextLength, layers, hidden, heads, experts, topK, expertHidden },
    ...{ activation, capacityFactor, noiseStd, loadBalanceWeight, dropout, variant, mu },
    ...{ momentumGamma, adamBeta1, adamBeta2, adamGamma, adamLayers, adamEps: 1e-8 },
  };
}
