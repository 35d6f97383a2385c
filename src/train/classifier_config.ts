/**
 * The training configuration of the Fashion-MNIST experiment (MoGE Sec. 2.4),
 * one field per hyperparameter, and its presets.
 *
 * @module
 */

import type { BackendRequest } from "../backend.ts";
import type { FilterKind } from "../moge/filters.ts";
import type { Activation } from "../moe/moe_layer.ts";
import { checkInteger, checkNumber } from "../validate.ts";

/** MoE (the baseline) or MoGE (MoE + λ·R(z), eq. 9). */
export type Mode = "moe" | "moge";
/** Datasets `deno task train` can load. */
export type TrainDataset = "fashion-mnist" | "mnist" | "fixture";

/** Every knob of a training run. */
export interface TrainConfig {
  /** "moe": λ = 0 (R(z) still logged); "moge": loss += λ·mean R(z) */
  mode: Mode;
  /** "fixture" = the small committed subset (tests) */
  dataset: TrainDataset;
  /** E, number of experts (paper: 400) */
  experts: number;
  /** k, experts per token (paper: 1) */
  topK: number;
  /** d_ff, each expert is 784 -> d_ff -> 784 (paper: 64) */
  hiddenDim: number;
  /** expert activation */
  activation: Activation;
  /** C_f, expert capacity factor (paper: 4.0) */
  capacityFactor: number;
  /** weight of the load-balancing loss (paper: 0.01) */
  loadBalanceWeight: number;
  /** λ, weight of the batch mean of R(z) (see README for the paper's units) */
  lambda: number;
  /** σ_max of the σ schedule, eq. 8 (paper: 10) */
  sigmaMax: number;
  /** σ_min (paper: 1.5) */
  sigmaMin: number;
  /** γ of the σ schedule (paper: 0.3) */
  gamma: number;
  /** "gaussian" (paper) or "average" */
  filter: FilterKind;
  /** h, filter size (paper: 3) */
  filterSize: number;
  /** training epochs (paper: 150) */
  epochs: number;
  /** images per batch (paper: 200) */
  batchSize: number;
  /** AdamW peak learning rate (paper: 1e-3) */
  learningRate: number;
  /** AdamW decoupled weight decay (paper: 0.05) */
  weightDecay: number;
  /** linear warm-up before the cosine decay (paper: 10) */
  warmupEpochs: number;
  /** Train on a fixed class-mixed subset of n training images (0: all). */
  trainLimit: number;
  /** seeds weights, shuffling and routing noise */
  seed: number;
  /** "auto" = webgpu on a hardware adapter, else wasm */
  backend: BackendRequest;
}

/** The defaults: a real run on the full training set that fits in about five minutes on 2 cores. */
export const DEFAULT_CONFIG: TrainConfig = {
  mode: "moge",
  dataset: "fashion-mnist",
  experts: 64,
  topK: 1,
  hiddenDim: 64,
  activation: "gelu",
  capacityFactor: 4,
  loadBalanceWeight: 0.01,
  lambda: 0.1,
  sigmaMax: 10,
  sigmaMin: 1.5,
  gamma: 0.3,
  filter: "gaussian",
  filterSize: 3,
  epochs: 3,
  batchSize: 200,
  learningRate: 1e-3,
  weightDecay: 0.05,
  warmupEpochs: 0.5,
  trainLimit: 0,
  seed: 0,
  backend: "auto",
};

/** Named presets; each is applied over the defaults, then flags override it. */
export const PRESETS: Record<string, Partial<TrainConfig>> = {
  /** The paper's Sec. 2.4 setting (150 epochs of E = 400: hours to days on a CPU). */
  paper: {
    experts: 400,
    topK: 1,
    hiddenDim: 64,
    epochs: 150,
    batchSize: 200,
    learningRate: 1e-3,
    weightDecay: 0.05,
    warmupEpochs: 10,
    lambda: 4e-3,
    sigmaMax: 10,
    sigmaMin: 1.5,
    gamma: 0.3,
    capacityFactor: 4,
    loadBalanceWeight: 0.01,
  },
  /** A seconds-long smoke run on the committed fixture. */
  tiny: { dataset: "fixture", experts: 16, hiddenDim: 16, epochs: 2, batchSize: 100 },
};

/** The allowed values of the enumerated fields. */
export const CHOICES = {
  mode: ["moe", "moge"],
  dataset: ["fashion-mnist", "mnist", "fixture"],
  activation: ["gelu", "relu", "tanh"],
  filter: ["gaussian", "average"],
  backend: ["auto", "webgpu", "wasm", "cpu"],
} as const;

/**
 * Checks every field of a config, throwing a `RangeError` whose message names
 * the field, the bad value and what is allowed.
 *
 * @example
 * ```ts
 * import { DEFAULT_CONFIG, validateConfig } from "./classifier_config.ts";
 * validateConfig(DEFAULT_CONFIG); // ok
 * ```
 */
export function validateConfig(c: TrainConfig): void {
  for (const [field, allowed] of Object.entries(CHOICES)) {
    const v = (c as unknown as Record<string, string>)[field];
    if (!(allowed as readonly string[]).includes(v)) {
      throw new RangeError(`${field} = "${v}" is invalid: allowed are ${allowed.join(", ")}`);
    }
  }
  const int = (name: keyof TrainConfig, min: number, max = Infinity) =>
    checkInteger(name, c[name] as number, min, max);
  int("experts", 1);
  int("topK", 1, c.experts);
  int("hiddenDim", 1);
  int("filterSize", 1);
  int("epochs", 1);
  int("batchSize", 1);
  int("trainLimit", 0);
  int("seed", 0, 2 ** 31 - 1);
  checkNumber("capacityFactor", c.capacityFactor, { min: 0 });
  checkNumber("loadBalanceWeight", c.loadBalanceWeight, { min: 0 });
  checkNumber("lambda", c.lambda, { min: 0 });
  checkNumber("sigmaMin", c.sigmaMin, { min: 0, exclusiveMin: true });
  checkNumber("sigmaMax", c.sigmaMax, { min: c.sigmaMin });
  checkNumber("gamma", c.gamma, { min: 0 });
  checkNumber("learningRate", c.learningRate, { min: 0, exclusiveMin: true });
  checkNumber("weightDecay", c.weightDecay, { min: 0 });
  checkNumber("warmupEpochs", c.warmupEpochs, { min: 0, max: c.epochs });
}
