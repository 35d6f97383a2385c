/**
 * V-MoE / V-MoGE: a small Vision Transformer whose chosen blocks use the
 * sparse MoE layer (Riquelme et al. 2021, "Scaling Vision with Sparse Mixture
 * of Experts"; MoGE, Kang et al. 2025, Sec. 3 and Appendix B).
 *
 * Patch embedding, learned position embedding, a class token (or mean
 * pooling), pre-norm blocks with multi-head self-attention and an MLP, where
 * the MoE blocks replace the MLP by a {@linkcode MoeLayer} of E experts of the
 * same shape (d -> mlpDim -> d). MoGE adds λ·mean R(z) of every MoE layer's
 * scores to the loss, summed over layers (eq. 9); {@linkcode VitOutput.penalty}
 * is that sum plus each layer's loadBalanceWeight·L_aux.
 *
 * A MoE layer's routing depends on its router input, and that on the
 * layers before it. The forward pass is therefore a generator that yields
 * each MoE layer's router input and receives its {@linkcode RoutedBatch};
 * the drivers of `transformer.ts` run it:
 *
 * - {@linkcode VisionTransformer.forwardSync} (training, any backend): routes
 *   each layer inside the gradient tape as the pass reaches it (`routeSync` on
 *   cpu and wasm, `routeDevice` on webgpu): one forward pass per step;
 * - {@linkcode VisionTransformer.forwardAsync}: one async pass without a tape
 *   (evaluation, any backend; CPU-planned);
 * - {@linkcode VisionTransformer.forwardWith}: any other answer (a replay).
 *
 * @module
 */

import { tf } from "../deps.ts";
import {
  disposeRouted,
  MoeLayer,
  type RegularizerSettings,
  type RoutedBatch,
} from "../moe/moe_layer.ts";
import type { RouterInput } from "../moe/routers/mod.ts";
import { Rng, tfSeed } from "../rng.ts";
import {
  activate,
  driveForward,
  driveForwardAsync,
  layerNorm,
  multiHeadAttention,
  routeInTape,
} from "./transformer.ts";
import type { Tensor, Tensor2D, Variable } from "../types.ts";

export * from "./vit_shape.ts";
import { validateVitConfig, type VitConfig } from "./vit_shape.ts";

/** Options of one forward pass. */
export interface VitForwardOptions {
  /** Training mode: dropout, drop path and routing noise on. */
  training: boolean;
  /**
   * Seed of this pass's randomness (dropout masks, drop-path masks, routing
   * noise), e.g. derived from the run seed and the step. Two passes with the
   * same seed, weights and input compute the same activations. Default 0.
   */
  seed?: number;
  /** The MoGE regularizer's settings for every MoE layer (null: no R(z) at all). */
  reg: RegularizerSettings | null;
  /** Training step (the SSR router decides per step whether it runs Sinkhorn). */
  step?: number;
}

/** What the forward generator yields: one MoE layer asking for its routing. */
export interface VitRouteRequest {
  /** Ordinal of the MoE layer (0 for the first MoE block). */
  index: number;
  /** The block it sits in (0-based). */
  block: number;
  /** The layer. */
  layer: MoeLayer;
  /**
   * Its router input (owned by the generator: do not dispose): the tokens
   * `x` `[B*T, d]`, the sequence length T, and (router "attention") the
   * block's head-averaged attention matrix `[B, T, T]`.
   */
  input: RouterInput;
  /** Route for training (noise on) or evaluation. */
  training: boolean;
  /** Seed of the routing noise. */
  noiseSeed: number;
  /** Training step (SSR), if given. */
  step?: number;
}

/** Per-MoE-layer terms of one forward pass (scalars). */
export interface MoeLayerTerms {
  /** The block (0-based). */
  block: number;
  /** Load-balancing loss L_aux (unweighted). */
  aux: Tensor;
  /** Batch mean of R(z) over the layer's tokens (unweighted; 0 when `reg` is null). */
  reg: Tensor;
  /**
   * In evaluation passes only: the layer's gates `[N, k]`, score map z
   * `[N, E]` and router logits `[N, E]`, for routing statistics.
   */
  router?: { gates: Tensor2D; z: Tensor2D; routerLogits: Tensor2D };
}

/** The result of a forward pass. */
export interface VitOutput {
  /** Class logits `[B, numClasses]`. */
  logits: Tensor2D;
  /** Σ over MoE layers of (loadBalanceWeight·L_aux + λ·mean R(z)) (scalar; 0 without MoE layers). */
  penalty: Tensor;
  /** One entry per MoE layer, in block order. */
  moe: MoeLayerTerms[];
}

/** A forward pass together with the routed batches it used (dispose them after the backward pass). */
export interface RoutedForward {
  /** The model output. */
  output: VitOutput;
  /** One {@linkcode RoutedBatch} per MoE layer, in block order. */
  routed: RoutedBatch[];
}

export { layerNorm, multiHeadAttention } from "./transformer.ts";
export type { AttentionWeights } from "./transformer.ts";

/** Frees the tensors of a {@linkcode VitOutput}. */
export function disposeVitOutput(o: VitOutput): void {
  tf.dispose([o.logits, o.penalty, ...o.moe.flatMap((m) => [m.aux, m.reg])]);
  for (const m of o.moe) if (m.router) tf.dispose(Object.values(m.router));
}

/**
 * A Vision Transformer with MoE blocks. Parameters are tfjs variables in
 * {@linkcode VisionTransformer.params} under stable names: `patch.w [p²C, d]`,
 * `patch.b [d]`, `cls [1, 1, d]` (pool "cls"), `pos [1, T, d]`, per block i
 * `block{i}.ln1.{g,b}`, `block{i}.attn.qkv.{w,b}`, `block{i}.attn.proj.{w,b}`,
 * `block{i}.ln2.{g,b}` and either `block{i}.mlp.fc1.{w,b}`, `block{i}.mlp.fc2.{w,b}`
 * or the MoE layer's `block{i}.moe.*`; then `norm.{g,b}`, `head.{w,b}`.
 *
 * Inputs are images `[B, imageSize² · channels]` (row-major, channels last)
 * with values in [0, 1]; they are mapped to [-1, 1] (V-MoE's `value_range(-1, 1)`).
 *
 * @example
 * ```ts
 * import { type Tensor2D, tf, useBackend } from "../../mod.ts";
 * import { VisionTransformer } from "./vit.ts";
 * await useBackend("cpu");
 * const vit = new VisionTransformer({
 *   imageSize: 8, channels: 1, patchSize: 4, numClasses: 3, embedDim: 8, depth: 2,
 *   numHeads: 2, mlpDim: 16, pool: "cls", moeBlocks: [1], experts: 9, topK: 1,
 *   capacityFactor: 4, loadBalanceWeight: 0.01, dropout: 0, attentionDropout: 0, dropPath: 0,
 * }, 0);
 * const x = tf.randomUniform([2, 64]) as Tensor2D;
 * const { output, routed } = await vit.forwardAsync(x, { training: false, reg: null });
 * console.log(output.logits.shape); // [2, 3]
 * vit.disposeRouted(routed);
 * ```
 */
export class VisionTransformer {
  /** The validated configuration. */
  readonly config: Readonly<VitConfig>;
  /** All trainable parameters by stable name. */
  readonly params: Record<string, Variable>;
  /** The MoE layers by block index. */
  readonly moeLayers: ReadonlyMap<number, MoeLayer>;
  /** Patch tokens per image, (imageSize / patchSize)². */
  readonly patchTokens: number;
  /** Tokens per image in the transformer: patch tokens, plus one for the class token. */
  readonly tokens: number;

  /**
   * Builds the model with freshly initialized weights.
   *
   * @param config the model shape
   * @param seed seeds the initial weights
   */
  constructor(config: VitConfig, seed: number) {
    validateVitConfig(config);
    this.config = { ...config, moeBlocks: [...config.moeBlocks] };
    const c = this.config;
    const d = c.embedDim;
    const side = c.imageSize / c.patchSize;
    this.patchTokens = side * side;
    this.tokens = this.patchTokens + (c.pool === "cls" ? 1 : 0);
    const p: Record<string, tf.Variable> = {};
    let s = seed * 7919 + 17;
    const add = (name: string, t: Tensor) => {
      p[name] = tf.variable(t, true, `vit.${name}#${nextId()}`);
      t.dispose();
    };
    const normal = (shape: number[], std: number) =>
      tf.randomNormal(shape, 0, std, "float32", tfSeed(s++));
    const linear = (name: string, fanIn: number, fanOut: number) => {
      add(`${name}.w`, normal([fanIn, fanOut], 1 / Math.sqrt(fanIn))); // LeCun normal
      add(`${name}.b`, tf.zeros([fanOut]));
    };
    const norm = (name: string) => {
      add(`${name}.g`, tf.ones([d]));
      add(`${name}.b`, tf.zeros([d]));
    };
    linear("patch", c.patchSize * c.patchSize * c.channels, d);
    if (c.pool === "cls") add("cls", tf.zeros([1, 1, d]));
    add("pos", normal([1, this.tokens, d], 0.02));
    const moe = new Map<number, MoeLayer>();
    for (let i = 0; i < c.depth; i++) {
      norm(`block${i}.ln1`);
      linear(`block${i}.attn.qkv`, d, 3 * d);
      linear(`block${i}.attn.proj`, d, d);
      norm(`block${i}.ln2`);
      if (c.moeBlocks.includes(i)) {
        const layer = new MoeLayer({
          inputDim: d,
          hiddenDim: c.mlpDim,
          numExperts: c.experts,
          topK: c.topK,
          routingOrder: "softmax-topk",
          routerBias: false,
          activation: c.activation ?? "gelu",
          noiseStd: c.noiseStd,
          capacityFactor: c.capacityFactor,
          loadBalanceWeight: c.loadBalanceWeight,
          compactExperts: c.compactExperts,
          router: c.router,
          routerOptions: c.routerOptions,
          zLossWeight: c.zLossWeight,
        }, { seed: (s += 16) % 2147483647, prefix: `block${i}.moe` });
        Object.assign(p, layer.params);
        moe.set(i, layer);
      } else {
        linear(`block${i}.mlp.fc1`, d, c.mlpDim);
        linear(`block${i}.mlp.fc2`, c.mlpDim, d);
      }
    }
    norm("norm");
    add("head.w", normal([d, c.numClasses], 0.02));
    add("head.b", tf.zeros([c.numClasses]));
    this.params = p;
    this.moeLayers = moe;
  }

  /** Number of trainable scalars. */
  get parameterCount(): number {
    return Object.values(this.params).reduce((n, v) => n + v.size, 0);
  }

  /** The 0-based indices of the MoE blocks, ascending. */
  get moeBlockIndices(): number[] {
    return [...this.moeLayers.keys()].sort((a, b) => a - b);
  }

  /** The weight-decay rule of the ViT recipe: no decay on biases, LayerNorm gains, position embedding and class token. */
  static excludeFromWeightDecay(name: string): boolean {
    return /\.(b\d?|g)(\.\d+)?$/.test(name) || name === "pos" || name === "cls";
  }

  #p(name: string): tf.Variable {
    const v = this.params[name];
    if (!v) throw new Error(`VisionTransformer: no parameter ${name}`);
    return v;
  }

  /** Patch embedding + class token + position embedding: `[B, HWC]` -> `[B*T, d]`. */
  #embed(x: Tensor2D, dropout: { rate: number; seed: number } | null): Tensor2D {
    const c = this.config;
    const [B, pixels] = x.shape;
    const expected = c.imageSize * c.imageSize * c.channels;
    if (pixels !== expected) {
      throw new RangeError(
        `VisionTransformer: input has ${pixels} values per image, expected ${c.imageSize}x${c.imageSize}x${c.channels} = ${expected}`,
      );
    }
    const p = c.patchSize;
    const side = c.imageSize / p;
    const d = c.embedDim;
    const patches = tf.sub(tf.mul(x, 2), 1) // [0, 1] -> [-1, 1]
      .reshape([B, side, p, side, p * c.channels])
      .transpose([0, 1, 3, 2, 4]) // [B, side, side, p, p*C]
      .reshape([B * this.patchTokens, p * p * c.channels]) as Tensor2D;
    let t = tf.add(tf.matMul(patches, this.#p("patch.w")), this.#p("patch.b"))
      .reshape([B, this.patchTokens, d]);
    if (c.pool === "cls") t = tf.concat([tf.add(tf.zeros([B, 1, d]), this.#p("cls")), t], 1);
    t = tf.add(t, this.#p("pos"));
    if (dropout && dropout.rate > 0) t = tf.dropout(t, dropout.rate, undefined, dropout.seed);
    return t.reshape([B * this.tokens, d]) as Tensor2D;
  }

  /** Stochastic depth: zeroes a residual branch for whole images with probability `rate`, scaling the rest by 1/(1 - rate). */
  #dropPath(branch: Tensor2D, rate: number, seed: number): Tensor2D {
    if (rate <= 0) return branch;
    const [N, d] = branch.shape;
    const B = N / this.tokens;
    const keep = tf.div(
      tf.floor(tf.add(tf.randomUniform([B, 1, 1], 0, 1, "float32", tfSeed(seed)), 1 - rate)),
      1 - rate,
    );
    return tf.mul(branch.reshape([B, this.tokens, d]), keep).reshape([N, d]) as Tensor2D;
  }

  #dense(block: number, x: Tensor2D, name: string): Tensor2D {
    return tf.add(
      tf.matMul(x, this.#p(`block${block}.${name}.w`)),
      this.#p(`block${block}.${name}.b`),
    ) as Tensor2D;
  }

  /**
   * The forward pass as a generator: it yields a {@linkcode VitRouteRequest} for
   * each MoE layer, in block order, and must be sent that layer's
   * {@linkcode RoutedBatch} (planned from the yielded logits) before it goes
   * on. It manages its own tensors (each segment between yields runs in a
   * `tf.tidy`); if a driver abandons it, `return()` frees what it holds. The
   * routed batches stay the driver's to dispose, after the backward pass.
   *
   * Use a driver ({@linkcode VisionTransformer.forwardSync},
   * {@linkcode VisionTransformer.forwardWith},
   * {@linkcode VisionTransformer.forwardAsync}) unless you route differently.
   */
  *forward(
    x: Tensor2D,
    opts: VitForwardOptions,
  ): Generator<VitRouteRequest, VitOutput, RoutedBatch> {
    const c = this.config;
    const training = opts.training;
    const rng = new Rng(opts.seed ?? 0);
    const seed = () => rng.seedForTf();
    const drop = (rate: number) => (training && rate > 0 ? { rate, seed: seed() } : null);
    const dropout = (t: Tensor2D, rate: number) => {
      const dr = drop(rate);
      return dr ? tf.dropout(t, dr.rate, undefined, dr.seed) as Tensor2D : t;
    };
    const dpRate = (i: number) => (training && c.depth > 1 ? c.dropPath * i / (c.depth - 1) : 0);
    const dropPath = (t: Tensor2D, i: number) => {
      const rate = dpRate(i);
      return rate > 0 ? this.#dropPath(t, rate, seed()) : t;
    };

    const terms: MoeLayerTerms[] = [];
    const penalties: Tensor[] = [];
    let pending: Tensor[] = [];
    let h: Tensor2D | null = null;
    let done = false;
    const swap = (next: Tensor2D) => {
      h?.dispose();
      h = next;
    };
    try {
      h = tf.tidy(() => this.#embed(x, drop(c.dropout)));
      let index = 0;
      for (let i = 0; i < c.depth; i++) {
        const cur: Tensor2D = h!;
        const att: { matrix?: tf.Tensor3D } = {};
        const wantsAttention = this.moeLayers.get(i)?.config.router === "attention";
        swap(tf.tidy(() => {
          const a = multiHeadAttention(
            layerNorm(cur, this.#p(`block${i}.ln1.g`), this.#p(`block${i}.ln1.b`)) as Tensor2D,
            this.tokens,
            c.numHeads,
            {
              qkvW: this.#p(`block${i}.attn.qkv.w`),
              qkvB: this.#p(`block${i}.attn.qkv.b`),
              projW: this.#p(`block${i}.attn.proj.w`),
              projB: this.#p(`block${i}.attn.proj.b`),
            },
            drop(c.attentionDropout) ?? undefined,
            wantsAttention ? att : undefined,
          );
          return tf.add(cur, dropPath(dropout(a, c.dropout), i)) as Tensor2D;
        }));
        const layer = this.moeLayers.get(i);
        const mid: Tensor2D = h!;
        if (!layer) {
          swap(tf.tidy(() => {
            const xn = layerNorm(
              mid,
              this.#p(`block${i}.ln2.g`),
              this.#p(`block${i}.ln2.b`),
            ) as Tensor2D;
            const hid = dropout(
              activate(this.#dense(i, xn, "mlp.fc1"), c.activation ?? "gelu") as Tensor2D,
              c.dropout,
            );
            return tf.add(
              mid,
              dropPath(dropout(this.#dense(i, hid, "mlp.fc2"), c.dropout), i),
            ) as Tensor2D;
          }));
          continue;
        }
        const xn = tf.tidy(() =>
          layerNorm(mid, this.#p(`block${i}.ln2.g`), this.#p(`block${i}.ln2.b`)) as Tensor2D
        );
        pending.push(xn);
        if (att.matrix) pending.push(att.matrix);
        const input: RouterInput = { x: xn, sequenceLength: this.tokens, attention: att.matrix };
        const noiseSeed = training ? seed() : 0;
        const routed: RoutedBatch = yield {
          index,
          block: i,
          layer,
          input,
          training,
          noiseSeed,
          step: opts.step,
        };
        if (!routed || !routed.plan) {
          throw new TypeError(`VisionTransformer.forward: block ${i} was sent no RoutedBatch`);
        }
        if (routed.plan.N !== xn.shape[0] || routed.plan.E !== c.experts) {
          throw new RangeError(
            `VisionTransformer.forward: block ${i}: the routed batch is for N = ${routed.plan.N},` +
              ` E = ${routed.plan.E}, but the layer has ${
                xn.shape[0]
              } tokens and ${c.experts} experts`,
          );
        }
        const out = layer.apply(input, routed, opts.reg);
        pending.push(out.y, out.zLoss);
        const router = { gates: out.gates, z: out.z, routerLogits: out.routerLogits };
        if (training) pending.push(...Object.values(router));
        terms.push({
          block: i,
          aux: out.auxLoss,
          reg: out.regularizer,
          ...(training ? {} : { router }),
        });
        penalties.push(out.penalty);
        swap(tf.tidy(() => tf.add(mid, dropPath(dropout(out.y, c.dropout), i)) as Tensor2D));
        tf.dispose(pending);
        pending = [];
        index++;
      }
      const last: Tensor2D = h!;
      const logits = tf.tidy(() => {
        const B = last.shape[0] / this.tokens;
        const normed = layerNorm(last, this.#p("norm.g"), this.#p("norm.b")).reshape([
          B,
          this.tokens,
          c.embedDim,
        ]);
        const pooled = c.pool === "cls"
          ? normed.slice([0, 0, 0], [B, 1, c.embedDim]).reshape([B, c.embedDim])
          : tf.mean(normed, 1);
        return tf.add(
          tf.matMul(pooled as Tensor2D, this.#p("head.w")),
          this.#p("head.b"),
        ) as Tensor2D;
      });
      const penalty = tf.tidy(() => penalties.length ? tf.addN(penalties) : tf.scalar(0));
      done = true;
      return { logits, penalty, moe: terms };
    } finally {
      tf.dispose([...pending, ...penalties]);
      if (h) (h as Tensor2D).dispose();
      if (!done) tf.dispose(terms.flatMap((t) => [t.aux, t.reg]));
    }
  }

  /**
   * Runs {@linkcode VisionTransformer.forward} synchronously, routing each MoE
   * layer with `route` (which must return a RoutedBatch for the request), e.g.
   * replaying batches recorded by {@linkcode VisionTransformer.forwardAsync}.
   */
  forwardWith(
    x: Tensor2D,
    opts: VitForwardOptions,
    route: (req: VitRouteRequest) => RoutedBatch,
  ): RoutedForward {
    const r = driveForward(this.forward(x, opts), route);
    return { output: r.output, routed: r.routed };
  }

  /**
   * The training driver, on every backend: routes each MoE layer inside the
   * gradient tape as the pass reaches it ({@linkcode routeInTape}: `routeSync`
   * on cpu and wasm, `routeDevice` on webgpu, with no readback), so one
   * forward pass inside `tf.variableGrads` makes the step. Free the routed
   * batches after the backward pass.
   */
  forwardSync(x: Tensor2D, opts: VitForwardOptions): RoutedForward {
    return this.forwardWith(x, opts, (req) => routeInTape(req.layer, req.input, req));
  }

  /** One async pass on any backend, without a gradient tape (evaluation; CPU-planned routing). */
  async forwardAsync(x: Tensor2D, opts: VitForwardOptions): Promise<RoutedForward> {
    const r = await driveForwardAsync(
      this.forward(x, opts),
      (req) =>
        req.layer.route(req.input, {
          training: req.training,
          noiseSeed: req.noiseSeed,
          step: req.step,
        }),
      (routed) => this.disposeRouted(routed),
    );
    return { output: r.output, routed: r.routed };
  }

  /** Frees routed batches (after the step's backward pass). */
  disposeRouted(routed: RoutedBatch[]): void {
    for (const r of routed) disposeRouted(r);
  }

  /** Frees the parameters. */
  dispose(): void {
    for (const v of Object.values(this.params)) v.dispose();
  }
}

let idCounter = 0;
function nextId(): number {
  return idCounter++;
}
