/**
 * The configuration of a ViT run (V-MoE / V-MoGE, MoGE Sec. 3.1 and
 * Appendix B): its fields beyond the shared and MoGE ones, defaults,
 * presets, and the field table with the paper's values.
 *
 * @module
 */

import type { CommonSettings, EpochSettings, FieldSpec } from "./config_fields.ts";
import { commonFields, epochFields, validateFields } from "./config_fields.ts";
import {
  MOGE_DEFAULTS,
  mogeFields,
  type MogeSettings,
  validateMogeLayout,
} from "./moge_settings.ts";
import {
  ROUTER_DEFAULTS,
  routerFields,
  type RouterSettings,
  validateRouterSettings,
} from "./router_settings.ts";
import { IMAGE_DATASETS, type TrainDataset } from "./classifier_config.ts";
import { lastEvenBlocks, type VitConfig, type VitPool } from "../models/vit.ts";
import { Rng } from "../rng.ts";
import { checkInteger } from "../validate.ts";

/**
 * How MoE routing is planned in a training step. Every value now plans each
 * layer inside the gradient tape, in the one forward pass (a synchronous
 * readback on cpu and wasm, a device plan on webgpu); "async" (formerly a
 * planning pass before the tape) is kept so old configs still load.
 */
export type VitRouting = "auto" | "sync" | "async";

/** Every knob of a ViT training run: the shared settings, MoGE's, and these. */
export interface VitTrainConfig
  extends CommonSettings, RouterSettings, MogeSettings, EpochSettings {
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
  /** Evaluate on a fixed class-mixed subset of n test images (0: all). */
  testLimit: number;
  /** Routing driver (see VitRouting). */
  routing: VitRouting;
}

/**
 * `vit-tiny`, the default: 28x28 inputs, patch 7 (16 patch tokens + the class
 * token), d = 64, 4 blocks, 4 heads, MLP 128, E = 32 top-1 experts in blocks
 * 1 and 3 (V-MoE's "last two even-numbered blocks"), 3 epochs of the full
 * Fashion-MNIST training set.
 */
export const DEFAULT_VIT_CONFIG: VitTrainConfig = {
  mode: "moge",
  ...ROUTER_DEFAULTS,
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
  ...MOGE_DEFAULTS,
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
    // Over the defaults, which already hold the paper's MoE, MoGE and optimizer
    // settings (E = 32 top-1 in the last two even blocks, C_f 4, λ 4e-3, drop
    // path 0.1, label smoothing 0.1, batch 128, AdamW 1e-3 / 0.05):
    imageSize: 32,
    patchSize: 4,
    embedDim: 512,
    depth: 8,
    numHeads: 8,
    mlpDim: 2048,
    cropPadding: 4,
    epochs: 150,
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

const VIT_PAPER_COMMON: Partial<Record<string, string>> = {
  experts: "32",
  topK: "1",
  capacityFactor: "4.0 (code)",
  loadBalanceWeight: "0.01 (code)",
  batchSize: "128",
  learningRate: "1e-3 (exponent lost in the text; inferred)",
  weightDecay: "0.05",
};

const int = (
  field: keyof VitTrainConfig & string,
  flag: string,
  min: number,
  help: string,
  paper?: string,
): FieldSpec<VitTrainConfig> => ({ field, flag, kind: "int", min, help, paper });

const rate = (
  field: "dropout" | "attentionDropout" | "dropPath" | "labelSmoothing" | "flipProb",
  flag: string,
  help: string,
  paper: string,
): FieldSpec<VitTrainConfig> => ({ field, flag, kind: "number", min: 0, max: 1, help, paper });

/**
 * The field table of the ViT: flags, help, bounds and the paper's values
 * (MoGE Appendix B, CIFAR-100 column for V-MoGE-S, and the authors' code for
 * the MoE settings; where the text lost an exponent the value is inferred).
 */
export const VIT_FIELDS: FieldSpec<VitTrainConfig>[] = [
  ...commonFields<VitTrainConfig>({
    weightDecay: "AdamW decoupled weight decay (not on biases, norms, pos, cls)",
    loadBalanceWeight: "load-balancing loss weight, per MoE layer",
  }).map((f) => ({ ...f, paper: VIT_PAPER_COMMON[f.field] })),
  ...routerFields<VitTrainConfig>(),
  {
    field: "dataset",
    flag: "dataset",
    kind: "choice",
    choices: IMAGE_DATASETS,
    help: "fashion-mnist | mnist | fixture (the small committed Fashion-MNIST subset)",
  },
  int(
    "imageSize",
    "image-size",
    28,
    "model input side; 28x28 images are centred on a canvas this size",
    "32 (CIFAR-100)",
  ),
  int(
    "patchSize",
    "patch",
    1,
    "patch side p (divides the image size): (size/p)² patch tokens",
    "4",
  ),
  int("embedDim", "embed", 1, "token width d", "512"),
  int("depth", "depth", 1, "transformer blocks", "8"),
  int("numHeads", "heads", 1, "attention heads (divide d)", "8"),
  int("mlpDim", "mlp", 1, "MLP and expert hidden width (d -> mlp -> d)", "2048 (V-MoE-S)"),
  {
    field: "pool",
    flag: "pool",
    kind: "choice",
    choices: ["cls", "mean"],
    help: "cls (class token) | mean (mean of the patch tokens)",
    paper: "cls",
  },
  {
    field: "moeBlocks",
    flag: "moe-blocks",
    kind: "string",
    help:
      "lastN: MoE in the last N even-numbered blocks (1-based; 0-based 1, 3, ...) | none | 0-based list 1,3",
    paper: "last2 (blocks 5, 7 of 8)",
  },
  ...mogeFields<VitTrainConfig>("λ, weight of each MoE layer's batch mean of R(z) (MoGE only)", {
    lambda: "4e-3 (CIFAR-100 / Tiny-ImageNet)",
    sigmaMax: "10",
    sigmaMin: "1.5",
    gamma: "0.3",
    filter: "gaussian",
    filterSize: "3",
  }),
  rate("dropout", "dropout", "dropout rate (embeddings, MLP, attention output)", "0 (V-MoE)"),
  rate(
    "attentionDropout",
    "attention-dropout",
    "dropout rate on the attention weights",
    "0 (V-MoE)",
  ),
  rate(
    "dropPath",
    "drop-path",
    "stochastic depth: drop-path rate of the last block (0 in block 0, linear)",
    "0.1",
  ),
  rate("labelSmoothing", "label-smoothing", "label smoothing ε of the cross-entropy", "0.1"),
  int(
    "cropPadding",
    "crop-padding",
    0,
    "random crop after zero padding by this many pixels (0: off)",
    "random crop: yes (padding 4 inferred)",
  ),
  rate(
    "flipProb",
    "flip-prob",
    "horizontal flip probability (0: off; wrong for digits)",
    "0.5 on CIFAR-100 (0 for digits)",
  ),
  ...epochFields<VitTrainConfig>({ epochs: "150", warmupEpochs: "10" }),
  {
    ...int(
      "testLimit",
      "test-limit",
      0,
      "evaluate on a fixed class-mixed subset of n test images (0: all)",
    ),
    mutable: true,
  },
  {
    field: "routing",
    flag: "routing",
    kind: "choice",
    choices: ["auto", "sync", "async"],
    mutable: true,
    help: "auto | sync | async: all plan MoE routing in the tape (kept for old configs)",
  },
];

/**
 * The 0-based MoE block indices of a `moeBlocks` spec: `"lastN"` (the last N
 * even-numbered blocks, {@linkcode lastEvenBlocks}), `"none"`, or a comma
 * list of indices.
 *
 * @example
 * ```ts
 * import { parseMoeBlocks } from "./vit_config.ts";
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
  validateFields(VIT_FIELDS, c);
  validateRouterSettings(c, "vit");
  checkInteger("patchSize", c.patchSize, 1, c.imageSize);
  if (c.imageSize % c.patchSize !== 0) {
    throw new RangeError(
      `patchSize = ${c.patchSize} is invalid: it must divide imageSize = ${c.imageSize}`,
    );
  }
  if (c.embedDim % c.numHeads !== 0) {
    throw new RangeError(
      `numHeads = ${c.numHeads} is invalid: it must divide embedDim = ${c.embedDim}`,
    );
  }
  for (const f of ["dropout", "attentionDropout", "dropPath"] as const) {
    if (c[f] >= 1) throw new RangeError(`${f} = ${c[f]} is invalid: ${f} must be in [0, 1)`);
  }
  validateMogeLayout(c, parseMoeBlocks(c.moeBlocks, c.depth).length > 0);
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
    router: c.router,
    zLossWeight: c.zLossWeight,
    dropout: c.dropout,
    attentionDropout: c.attentionDropout,
    dropPath: c.dropPath,
  };
}

/**
 * The images a `limit` selects: all when `limit` is 0 (or >= count), else the
 * first `limit` of a fixed permutation (seed 0x5eed, the same for every run
 * seed), sorted. Fashion-MNIST is stored class by class, so taking the first
 * n images would drop whole classes; this subset mixes them.
 *
 * @example
 * ```ts
 * import { subsetIndices } from "./vit_config.ts";
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
