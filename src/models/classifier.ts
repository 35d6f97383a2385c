/**
 * The paper's Fashion-MNIST model (MoGE Sec. 2.4): each 28x28 image is one
 * token of 784 pixels, one MoE layer (E experts, each 784 -> d_ff -> 784),
 * then a linear 784 -> 10 classifier.
 *
 * @module
 */

import { tf } from "../deps.ts";
import { tfSeed } from "../rng.ts";
import type { Tensor, Tensor2D, Variable } from "../types.ts";

import { isUsableE } from "../moge/layout.ts";
import {
  type Activation,
  type HostRoutedBatch,
  MoeLayer,
  type RegularizerSettings,
  type RoutedBatch,
} from "../moe/moe_layer.ts";
import type { RouterName } from "../moe/routers/mod.ts";

/** Shape of the classifier (a subset of the training config). */
export interface ClassifierConfig {
  /** Pixels per image (784 for 28x28). */
  inputDim: number;
  /** Classes (10). */
  numClasses: number;
  /** Experts E. */
  experts: number;
  /** Experts per token k. */
  topK: number;
  /** Expert hidden width d_ff (64 in the paper). */
  hiddenDim: number;
  /** Expert activation. */
  activation: Activation;
  /** Capacity factor C_f (4.0 in the paper). */
  capacityFactor: number;
  /** Load-balancing loss weight (0.01 in the paper). */
  loadBalanceWeight: number;
  /** Routing-noise std (default 1/E, the paper's gate noise 1.0 scaled by 1/E). */
  noiseStd?: number;
  /** The router (default "topk"; "attention" needs an attention layer, which this model has not). */
  router?: RouterName;
  /** The router's own options. */
  routerOptions?: Record<string, unknown>;
  /** Weight of the ST-MoE router z-loss (default 0). */
  zLossWeight?: number;
}

/** Losses and statistics of one batch, as tensors (read them once, together). */
export interface BatchResult {
  /** Total loss: cross-entropy + penalties. */
  loss: Tensor;
  /** Cross-entropy. */
  ce: Tensor;
  /** Load-balancing loss (unweighted). */
  aux: Tensor;
  /** Batch mean of R(z) (unweighted). */
  reg: Tensor;
  /** Correct predictions in the batch. */
  correct: Tensor;
  /** The router's score map z `[N, E]` (top-k: noise-free softmax). */
  z: Tensor2D;
  /** Router z-loss (unweighted; 0 when its weight is 0). */
  zLoss: Tensor;
  /** Gates `[N, k]` of the plan's choices. */
  gates: Tensor2D;
  /** Raw router logits `[N, E]`. */
  routerLogits: Tensor2D;
}

/**
 * MoE layer + linear head. Parameters: the layer's (`moe.*`) and
 * `head.w [d, classes]`, `head.b [classes]`.
 *
 * @example
 * ```ts
 * import { MoeClassifier, type Tensor2D, tf } from "../../mod.ts";
 * const model = new MoeClassifier({
 *   inputDim: 16, numClasses: 3, experts: 9, topK: 1, hiddenDim: 4, activation: "relu",
 *   capacityFactor: 4, loadBalanceWeight: 0.01,
 * }, 1);
 * const x = tf.randomUniform([4, 16]) as Tensor2D;
 * const routed = await model.route(x, false, 0);
 * const out = model.forward(x, routed, tf.tensor1d([0, 1, 2, 0], "int32"), null);
 * console.log(out.ce.shape); // []
 * ```
 */
export class MoeClassifier {
  /** The MoE layer. */
  readonly moe: MoeLayer;
  /** All trainable parameters by stable name. */
  readonly params: Record<string, Variable>;
  /** The configuration. */
  readonly config: ClassifierConfig;

  /** Creates the model's variables, seeded with `seed`. */
  constructor(config: ClassifierConfig, seed: number) {
    if (config.router === "attention") {
      throw new Error(
        'router "attention" reuses the attention matrix of the sublayer before the MoE, and the' +
          " classifier has no attention (one token per image): use it with --model vit or lm",
      );
    }
    this.config = config;
    this.moe = new MoeLayer({
      inputDim: config.inputDim,
      hiddenDim: config.hiddenDim,
      numExperts: config.experts,
      topK: config.topK,
      routingOrder: "softmax-topk",
      routerBias: false,
      activation: config.activation,
      noiseStd: config.noiseStd,
      capacityFactor: config.capacityFactor,
      loadBalanceWeight: config.loadBalanceWeight,
      router: config.router,
      routerOptions: config.routerOptions,
      zLossWeight: config.zLossWeight,
    }, { seed, prefix: "moe" });
    const w = tf.randomNormal(
      [config.inputDim, config.numClasses],
      0,
      1 / Math.sqrt(config.inputDim),
      "float32",
      tfSeed(seed + 1000),
    );
    const b = tf.zeros([config.numClasses]);
    this.params = {
      ...this.moe.params,
      "head.w": tf.variable(w, true, `head.w#${nextId()}`),
      "head.b": tf.variable(b, true, `head.b#${nextId()}`),
    };
    tf.dispose([w, b]);
  }

  /**
   * The routing plan of a batch (outside the gradient tape). The images of
   * the batch are one "sequence" for the graph-of-tokens routers (each
   * image is one token).
   */
  route(
    x: Tensor2D,
    training: boolean,
    noiseSeed: number,
    step?: number,
  ): Promise<HostRoutedBatch> {
    return this.moe.route({ x }, { training, noiseSeed, step });
  }

  /**
   * The differentiable pass: `loss = CE + loadBalanceWeight·L_aux +
   * zLossWeight·L_z + λ·mean R(z)` (eq. 9 with one MoE layer). Pass
   * `reg = null` to skip the regularizer entirely (E without a usable layout).
   */
  forward(
    x: Tensor2D,
    routed: RoutedBatch,
    labels: Tensor,
    reg: RegularizerSettings | null,
  ): BatchResult {
    return tf.tidy(() => {
      const out = this.moe.apply({ x }, routed, reg); // y [N, 784]
      const logits = tf.add(tf.matMul(out.y, this.params["head.w"]), this.params["head.b"]); // [N, 10]
      const onehot = tf.oneHot(labels as tf.Tensor1D, this.config.numClasses);
      const ce = tf.losses.softmaxCrossEntropy(onehot, logits);
      const correct = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), labels), "float32"));
      return {
        loss: tf.add(ce, out.penalty),
        ce,
        aux: out.auxLoss,
        reg: out.regularizer,
        correct,
        z: out.z,
        zLoss: out.zLoss,
        gates: out.gates,
        routerLogits: out.routerLogits,
      };
    });
  }

  /** Whether the MoGE regularizer can be evaluated for this E and filter size. */
  static regularizable(experts: number, filterSize: number): boolean {
    return isUsableE(experts, filterSize);
  }

  /** Frees the parameters. */
  dispose(): void {
    for (const v of Object.values(this.params)) v.dispose();
  }
}

let id = 0;
function nextId(): number {
  return id++;
}
