/**
 * The training configuration of the Fashion-MNIST experiment (MoGE Sec. 2.4),
 * one field per hyperparameter, and its presets.
 *
 * @module
 */

import type { Activation } from "../moe/moe_layer.ts";
import {
  commonFields,
  type CommonSettings,
  epochFields,
  type EpochSettings,
  type FieldSpec,
  validateFields,
} from "./config_fields.ts";
import {
  MOGE_DEFAULTS,
  mogeFields,
  type MogeSettings,
  PAPER_SIGMA,
  validateMogeLayout,
} from "./moge_settings.ts";
import {
  ROUTER_DEFAULTS,
  routerFields,
  type RouterSettings,
  validateRouterSettings,
} from "./router_settings.ts";

export type { Mode } from "./config_fields.ts";
/** Datasets of the image tasks. */
export type TrainDataset = "fashion-mnist" | "mnist" | "fixture";

/** Every knob of a classifier run: the shared settings, MoGE's, and these. */
export interface TrainConfig extends CommonSettings, RouterSettings, MogeSettings, EpochSettings {
  /** "fixture" = the small committed subset (tests) */
  dataset: TrainDataset;
  /** d_ff, each expert is 784 -> d_ff -> 784 (paper: 64) */
  hiddenDim: number;
  /** expert activation */
  activation: Activation;
  /** Routing-noise std in units of 1/E (1: std 1/E, the default; 0: no noise). */
  noiseScale: number;
}

/** The defaults: a real run on the full training set that fits in about five minutes on 2 cores. */
export const DEFAULT_CONFIG: TrainConfig = {
  mode: "moge",
  dataset: "fashion-mnist",
  experts: 64,
  topK: 1,
  hiddenDim: 64,
  activation: "gelu",
  noiseScale: 1,
  capacityFactor: 4,
  loadBalanceWeight: 0.01,
  ...ROUTER_DEFAULTS,
  lambda: 0.1,
  ...MOGE_DEFAULTS,
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
    ...PAPER_SIGMA,
    capacityFactor: 4,
    loadBalanceWeight: 0.01,
  },
  /** A seconds-long smoke run on the committed fixture. */
  tiny: { dataset: "fixture", experts: 16, hiddenDim: 16, epochs: 2, batchSize: 100 },
};

/** The image data sets. */
export const IMAGE_DATASETS = ["fashion-mnist", "mnist", "fixture"] as const;

/** The field table of the classifier: flags, help, bounds (see `config_fields.ts`). */
export const CLASSIFIER_FIELDS: FieldSpec<TrainConfig>[] = [
  ...commonFields<TrainConfig>({ topK: "k, experts per image" }),
  ...routerFields<TrainConfig>(),
  {
    field: "dataset",
    flag: "dataset",
    kind: "choice",
    choices: IMAGE_DATASETS,
    help: "fashion-mnist | mnist | fixture (the small committed subset)",
  },
  {
    field: "hiddenDim",
    flag: "hidden",
    kind: "int",
    min: 1,
    help: "d_ff, expert hidden width (784 -> d_ff -> 784)",
  },
  {
    field: "activation",
    flag: "activation",
    kind: "choice",
    choices: ["gelu", "relu", "tanh"],
    help: "gelu | relu | tanh",
  },
  {
    field: "noiseScale",
    flag: "noise-scale",
    kind: "number",
    min: 0,
    help: "routing-noise std in units of 1/E, training only (0: no noise)",
    paper: "1 (std 1/E)",
  },
  ...mogeFields<TrainConfig>("λ, weight of the batch mean of R(z) (MoGE only)"),
  ...epochFields<TrainConfig>(),
];

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
  validateFields(CLASSIFIER_FIELDS, c);
  validateRouterSettings(c, "classifier");
  validateMogeLayout(c);
}
