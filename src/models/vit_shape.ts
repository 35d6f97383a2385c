/**
 * The shape and regularization of a V-MoE Vision Transformer
 * ({@linkcode VitConfig}) and their validation.
 *
 * @module
 */

import type { Activation } from "../moe/moe_layer.ts";
import type { RouterName } from "../moe/routers/mod.ts";
import { checkInteger, checkNumber } from "../validate.ts";

/** How the image representation is pooled for the classifier head. */
export type VitPool = "cls" | "mean";
/** The allowed {@linkcode VitPool} values. */
export const VIT_POOLS: readonly VitPool[] = ["cls", "mean"];

/** Shape and regularization of a {@linkcode VisionTransformer}. */
export interface VitConfig {
  /** Input height = width in pixels (images are square). */
  imageSize: number;
  /** Input channels (1 for Fashion-MNIST / MNIST). */
  channels: number;
  /** Patch side p (must divide imageSize); T = (imageSize / p)² patch tokens. */
  patchSize: number;
  /** Output classes. */
  numClasses: number;
  /** Token width d. */
  embedDim: number;
  /** Number of transformer blocks. */
  depth: number;
  /** Attention heads (must divide embedDim). */
  numHeads: number;
  /** MLP hidden width (dense MLPs and every expert: d -> mlpDim -> d). */
  mlpDim: number;
  /** "cls": a class token is prepended and its final state classifies; "mean": mean over patch tokens. */
  pool: VitPool;
  /** 0-based indices of the blocks whose MLP is a MoE layer (see {@linkcode lastEvenBlocks}). */
  moeBlocks: number[];
  /** Experts E per MoE layer. */
  experts: number;
  /** Experts per token k. */
  topK: number;
  /** Capacity factor C_f (0: unlimited). */
  capacityFactor: number;
  /** Load-balancing loss weight per MoE layer. */
  loadBalanceWeight: number;
  /** Routing-noise std (default 1/E). */
  noiseStd?: number;
  /** Give expert buffers only to experts that received tokens (MoeConfig.compactExperts; default false). */
  compactExperts?: boolean;
  /** The router of every MoE layer (default "topk"). */
  router?: RouterName;
  /** The router's own options. */
  routerOptions?: Record<string, unknown>;
  /** Weight of the ST-MoE router z-loss of every MoE layer (default 0). */
  zLossWeight?: number;
  /** Activation of the MLPs and experts (default "gelu", tanh approximation). */
  activation?: Activation;
  /** Dropout rate after the embedding, inside and after the MLP, after the attention projection. */
  dropout: number;
  /** Dropout rate on the attention weights. */
  attentionDropout: number;
  /** Stochastic depth: the largest drop-path rate, rising linearly from 0 in block 0 to this in the last block. */
  dropPath: number;
}

/**
 * The V-MoE placement "MoE in the last n even blocks": of the blocks with
 * even 1-based number (2, 4, 6, ...; 0-based 1, 3, 5, ...) the last n, as
 * 0-based indices. This is `range(1, depth, 2)[-n:]` of V-MoE's configs
 * (google-research/vmoe, `configs/vmoe_paper/common.py`), which MoGE follows
 * ("the last two even-numbered blocks").
 *
 * @example
 * ```ts
 * import { lastEvenBlocks } from "./vit.ts";
 * lastEvenBlocks(8, 2); // [5, 7]  (V-MoE-S)
 * lastEvenBlocks(4, 2); // [1, 3]
 * ```
 */
export function lastEvenBlocks(depth: number, n: number): number[] {
  checkInteger("depth", depth, 1);
  checkInteger("n", n, 0);
  const count = Math.floor(depth / 2); // the odd indices 1, 3, ..., below depth
  const m = Math.min(n, count); // build only the last m (depth may be huge)
  return Array.from({ length: m }, (_, j) => 2 * (count - m + j) + 1);
}

/** Checks a {@linkcode VitConfig}, throwing a `RangeError` that names the first bad field. */
export function validateVitConfig(c: VitConfig): void {
  checkInteger("imageSize", c.imageSize, 1);
  checkInteger("channels", c.channels, 1);
  checkInteger("patchSize", c.patchSize, 1, c.imageSize);
  if (c.imageSize % c.patchSize !== 0) {
    throw new RangeError(
      `patchSize = ${c.patchSize} is invalid: it must divide imageSize = ${c.imageSize}`,
    );
  }
  checkInteger("numClasses", c.numClasses, 2);
  checkInteger("embedDim", c.embedDim, 1);
  checkInteger("depth", c.depth, 1);
  checkInteger("numHeads", c.numHeads, 1);
  if (c.embedDim % c.numHeads !== 0) {
    throw new RangeError(
      `numHeads = ${c.numHeads} is invalid: it must divide embedDim = ${c.embedDim}`,
    );
  }
  checkInteger("mlpDim", c.mlpDim, 1);
  if (!VIT_POOLS.includes(c.pool)) {
    throw new RangeError(`pool = "${c.pool}" is invalid: allowed are ${VIT_POOLS.join(", ")}`);
  }
  if (!Array.isArray(c.moeBlocks)) {
    throw new RangeError(`moeBlocks = ${String(c.moeBlocks)} is invalid: it must be an array`);
  }
  const seen = new Set<number>();
  for (const b of c.moeBlocks) {
    checkInteger("moeBlocks entry", b, 0, c.depth - 1);
    if (seen.has(b)) throw new RangeError(`moeBlocks = [${c.moeBlocks}] is invalid: ${b} repeats`);
    seen.add(b);
  }
  checkInteger("experts", c.experts, 1);
  checkInteger("topK", c.topK, 1, c.experts);
  checkNumber("capacityFactor", c.capacityFactor, { min: 0 });
  checkNumber("loadBalanceWeight", c.loadBalanceWeight, { min: 0 });
  if (c.noiseStd !== undefined) checkNumber("noiseStd", c.noiseStd, { min: 0 });
  for (const f of ["dropout", "attentionDropout", "dropPath"] as const) {
    checkNumber(f, c[f], { min: 0 });
    if (c[f] >= 1) throw new RangeError(`${f} = ${c[f]} is invalid: ${f} must be in [0, 1)`);
  }
}
