/**
 * The MoGE language models (MoGE, arXiv 2504.09265, Sec. 3.2 and Table 10; README "Language models"): a
 * decoder-only Transformer (causal multi-head self-attention, pre-norm)
 * whose feed-forward sublayers are sparse MoE layers, in three variants
 * after Teo & Nguyen, "MomentumSMoE: Integrating Momentum into Sparse
 * Mixture of Experts" (NeurIPS 2024, arXiv 2410.14574):
 *
 * Block l (l = 0 ... L−1) maps x_l (`[N, d]`, N = B·T tokens) to x_(l+1):
 *
 *     h_l = x_l + Drop(Attn(LN1(x_l)))          causal self-attention, pre-norm
 *     f_l = Drop(MoE_l(LN2(h_l)))                the MoE sublayer's output
 *
 * then, per variant ({@linkcode residualStep}):
 *
 * - `smoe` (Switch-style SMoE): x_(l+1) = h_l + f_l.
 * - `momentum` (MomentumSMoE, heavy ball; the paper's eq. for MomentumSMoE):
 *   p_l = −f_l + μ·p_(l−1), x_(l+1) = h_l − γ·p_l, with p_(−1) = 0. μ = 0 and
 *   γ = 1 give back `smoe` exactly.
 * - `adam` (AdamSMoE): first and second moments of the "gradient" −f_l,
 *   m_l = β1·m_(l−1) + (1 − β1)·(−f_l), v_l = β2·v_(l−1) + (1 − β2)·f_l⊙f_l
 *   (m_(−1) = v_(−1) = 0, no bias correction), and
 *   x_(l+1) = h_l − γ_A·m_l / sqrt(v_l + ε) for the first `adamLayers` blocks;
 *   later blocks take the heavy-ball step x_(l+1) = h_l − γ·p_l, with p_l
 *   accumulated over all blocks from the first. This is what the authors'
 *   code does (Adam in the first layer only, `layerth < 1`, momentum after);
 *   `adamLayers = L` gives Adam in every block.
 *
 * The authors' code (github.com/rachtsy/MomentumSMoE, `models.py`) writes
 * the momentum with γ folded in and the opposite sign of f:
 * m_l = μ·m_(l−1) + γ·f_l, x_(l+1) = x_l − m_l, which is the update above
 * with m_l = γ·p_l once f_l is replaced by −f_l (a sign the experts' last
 * layer absorbs).
 * Their layers are post-norm; these blocks are pre-norm, as asked.
 *
 * The attention sublayer keeps its plain residual in every variant (the
 * momentum acts on the MoE sublayers, as in the paper). The output is
 * `head(LN_f(x_L))`, logits over the vocabulary.
 *
 * Routing (MoGE Sec. 3.2): "top-k then softmax" (`routingOrder:
 * "topk-softmax"`), router with bias, no routing noise (the authors' SMoE
 * gate `CustomNaiveGate_Balance_SMoE` adds none), no capacity limit by
 * default (their fastmoe layer drops no tokens; evaluation can override the
 * capacity, see {@linkcode LmForwardOptions}; `lm-small` trains with 2), no load-balancing loss by
 * default; the MoGE regularizer takes z = softmax(router logits) over all E
 * experts, and the model's penalty is Σ_layers (λ·mean R(z_l) + w_lb·L_aux,l).
 *
 * The forward pass is a generator ({@linkcode MoeLm.forward}) that yields
 * each layer's router logits and receives its {@linkcode RoutedBatch}; the
 * drivers (`transformer.ts`): {@linkcode MoeLm.forwardSync} (training, any
 * backend: routes inside the gradient tape, `routeSync` on cpu and wasm,
 * `routeDevice` on webgpu; one forward pass), {@linkcode MoeLm.forwardAsync}
 * (any backend, no tape: awaits `route`) and {@linkcode MoeLm.forwardWith}
 * (any other answer, e.g. a replay).
 *
 * @module
 */

import { tf } from "../deps.ts";
import {
  type Activation,
  ACTIVATIONS,
  disposeRouted,
  MoeLayer,
  type RegularizerSettings,
  type RoutedBatch,
} from "../moe/moe_layer.ts";
import type { RouterInput, RouterName } from "../moe/routers/mod.ts";
import { Rng } from "../rng.ts";
import {
  attend,
  driveForward,
  driveForwardAsync,
  keepRouted,
  layerNorm,
  routeInTape,
} from "./transformer.ts";
import type { Tensor, Tensor1D, Tensor2D, Variable } from "../types.ts";
import { checkInteger, checkNumber } from "../validate.ts";
import {
  INITIAL_RESIDUAL_STATE,
  residualStep,
  validateVariant,
  type VariantSettings,
} from "./moe_residual.ts";

export {
  INITIAL_RESIDUAL_STATE,
  MOE_VARIANTS,
  type MoeVariant,
  type ResidualState,
  residualStep,
  type VariantSettings,
} from "./moe_residual.ts";

/** The shape and settings of a {@linkcode MoeLm}. */
export interface LmConfig extends VariantSettings {
  /** Vocabulary size V. */
  vocabSize: number;
  /** Longest context T (size of the learned position table). */
  contextLength: number;
  /** Transformer blocks L (each with one MoE sublayer). */
  layers: number;
  /** Model width d. */
  hidden: number;
  /** Attention heads (d must be a multiple). */
  heads: number;
  /** Experts per MoE layer E. */
  experts: number;
  /** Experts per token k. */
  topK: number;
  /** Expert hidden width d_ff (each expert is d -> d_ff -> d). */
  expertHidden: number;
  /** Expert activation (authors' code: relu). */
  activation: Activation;
  /** Capacity factor C_f (0: no limit, the default for the LM). */
  capacityFactor: number;
  /** Routing-noise std in training (0: none, the default for the LM). */
  noiseStd: number;
  /** Weight of the load-balancing loss (0: none, the MoGE LM recipe). */
  loadBalanceWeight: number;
  /** Dropout rate on embeddings, attention probabilities and sublayer outputs. */
  dropout: number;
  /**
   * The router of every MoE layer (default "topk"). The LM is causal:
   * "expert-choice" is refused (its routing looks at later tokens).
   */
  router?: RouterName;
  /** The router's own options. */
  routerOptions?: Record<string, unknown>;
  /** Weight of the ST-MoE router z-loss of every MoE layer (default 0). */
  zLossWeight?: number;
}

/** Checks an {@linkcode LmConfig}, throwing a `RangeError` naming the first bad field. */
export function validateLmConfig(c: LmConfig): void {
  checkInteger("vocabSize", c.vocabSize, 2, 65536);
  checkInteger("contextLength", c.contextLength, 1);
  checkInteger("layers", c.layers, 1);
  checkInteger("hidden", c.hidden, 1);
  checkInteger("heads", c.heads, 1, c.hidden);
  if (c.hidden % c.heads !== 0) {
    throw new RangeError(
      `heads = ${c.heads} is invalid: hidden = ${c.hidden} must be a multiple of heads`,
    );
  }
  checkInteger("experts", c.experts, 1);
  checkInteger("topK", c.topK, 1, c.experts);
  checkInteger("expertHidden", c.expertHidden, 1);
  if (!ACTIVATIONS.includes(c.activation)) {
    throw new RangeError(
      `activation = "${c.activation}" is invalid: allowed are ${ACTIVATIONS.join(", ")}`,
    );
  }
  checkNumber("capacityFactor", c.capacityFactor, { min: 0 });
  checkNumber("noiseStd", c.noiseStd, { min: 0 });
  checkNumber("loadBalanceWeight", c.loadBalanceWeight, { min: 0 });
  checkNumber("dropout", c.dropout, { min: 0, max: 0.95 });
  validateVariant(c, c.layers);
}

/** What the forward generator yields: one MoE layer's router logits, to be routed. */
export interface RouteRequest {
  /** Block index. */
  layer: number;
  /**
   * The router input: the layer's tokens `x` `[N, d]`, the sequence length
   * T, and (router "attention") the block's head-averaged causal attention
   * matrix `[B, T, T]`.
   */
  input: RouterInput;
  /** Training mode (routing noise on). */
  training: boolean;
  /** Seed of the routing noise. */
  noiseSeed: number;
  /** Training step (SSR), if given. */
  step?: number;
}

/** Options of one forward pass. */
export interface LmForwardOptions {
  /** Training mode: dropout and routing noise on. */
  training: boolean;
  /** Seed of every dropout mask and noise draw of the pass (same seed, same pass). */
  seed: number;
  /** MoGE regularizer settings (λ = 0 computes R(z) for logging only; null skips it). */
  reg: RegularizerSettings | null;
  /**
   * Plan the routing with this capacity factor instead of the layers' own
   * (eval mode only; 0: no limit). With a limit, whether a token is dropped
   * depends on the other tokens of the batch, later positions included;
   * without one, each position's output depends on its prefix only.
   */
  capacityFactor?: number;
  /** Training step (the SSR router decides per step whether it runs Sinkhorn). */
  step?: number;
}

/** The result of a forward pass. */
export interface LmForward {
  /** Next-token logits `[B·T, V]`. */
  logits: Tensor2D;
  /** Σ_layers of the MoE layers' penalties λ·mean R(z) + w_lb·L_aux (scalar). */
  penalty: Tensor;
  /** Batch mean of R(z) per MoE layer, `[L]` (unweighted). */
  regularizer: Tensor1D;
  /**
   * Each layer's routed batch (their tensors are `tf.keep`-ed: free them
   * with {@linkcode disposeLmRouted} after the step).
   */
  routed: RoutedBatch[];
  /**
   * Evaluation passes only: each layer's gates `[N, k]`, score map z
   * `[N, E]` and router logits `[N, E]`, for routing statistics (the caller
   * frees them).
   */
  router?: { gates: Tensor2D; z: Tensor2D; routerLogits: Tensor2D }[];
}

/** Frees the routed batches of a forward pass. */
export function disposeLmRouted(routed: RoutedBatch[]): void {
  for (const r of routed) disposeRouted(r);
}

/**
 * A float32 one-hot `[N, depth]`. (tfjs 4.22's wasm kernel ignores
 * `oneHot`'s dtype argument and writes int32 bit patterns into a float32
 * tensor, so build it as int32 and cast.)
 */
function floatOneHot(indices: Tensor1D, depth: number): Tensor2D {
  return tf.tidy(() => tf.cast(tf.oneHot(indices, depth), "float32")) as Tensor2D;
}

/** A 31-bit seed for site `site` of the pass with seed `seed`. */
function siteSeed(seed: number, site: number): number {
  return new Rng((((seed >>> 0) * 0x9e3779b1) ^ Math.imul(site + 1, 0x85ebca6b)) >>> 0).seedForTf();
}

let uniqueId = 0;
/** The tail of the queue of asynchronous forward passes (see `MoeLm.forwardAsync`). */
let asyncPasses: Promise<unknown> = Promise.resolve();

/**
 * A decoder-only MoE Transformer language model (see the module docs).
 * Parameters by name: `emb.tok [V, d]`, `emb.pos [T, d]`, per block l
 * `l{l}.ln1.g/b [d]`, `l{l}.attn.wq/wk/wv/wo [d, d]`, `l{l}.ln2.g/b [d]`, the
 * MoE layer's `l{l}.moe.*`; then `lnf.g/b [d]`, `head.w [d, V]`, `head.b [V]`.
 *
 * @example
 * ```ts
 * import { MoeLm } from "./lm.ts";
 * import { tf } from "../deps.ts";
 * import { useBackend } from "../backend.ts";
 * await useBackend("cpu");
 * const lm = new MoeLm({
 *   vocabSize: 11, contextLength: 8, layers: 2, hidden: 8, heads: 2, experts: 9, topK: 2,
 *   expertHidden: 8, activation: "relu", capacityFactor: 0, noiseStd: 0, loadBalanceWeight: 0,
 *   dropout: 0, variant: "momentum", mu: 0.7, momentumGamma: 0.8, adamBeta1: 0.9,
 *   adamBeta2: 0.999, adamGamma: 1, adamLayers: 1, adamEps: 1e-8,
 * }, 1);
 * const tokens = tf.tensor2d([[1, 2, 3, 4]], [1, 4], "int32");
 * const out = await lm.forwardAsync(tokens, { training: false, seed: 0, reg: null });
 * console.log(out.logits.shape); // [4, 11]
 * ```
 */
export class MoeLm {
  /** The validated configuration. */
  readonly config: LmConfig;
  /** The MoE layer of each block. */
  readonly moes: MoeLayer[];
  /** Every trainable parameter by stable name (see class docs). */
  readonly params: Record<string, Variable>;
  #mask: Tensor2D;
  #routers = new Map<number, MoeLayer[]>();

  /**
   * Builds the model with freshly initialized, seeded weights.
   *
   * @param config the model's shape and variant
   * @param seed seeds the initial weights
   */
  constructor(config: LmConfig, seed: number) {
    validateLmConfig(config);
    checkInteger("seed", seed, 0, 2 ** 31 - 1);
    this.config = { ...config };
    const { vocabSize: V, contextLength: T, layers: L, hidden: d } = config;
    const p: Record<string, tf.Variable> = {};
    let s = 0;
    const v = (name: string, t: Tensor) => {
      p[name] = tf.variable(t, true, `${name}#lm${uniqueId++}`);
      t.dispose();
    };
    const normal = (shape: number[], std: number) =>
      tf.randomNormal(shape, 0, std, "float32", siteSeed(seed, s++));
    v("emb.tok", normal([V, d], 1)); // PyTorch nn.Embedding's N(0, 1), as the authors' code
    v("emb.pos", normal([T, d], 0.1));
    this.moes = [];
    for (let l = 0; l < L; l++) {
      v(`l${l}.ln1.g`, tf.ones([d]));
      v(`l${l}.ln1.b`, tf.zeros([d]));
      for (const w of ["wq", "wk", "wv"]) v(`l${l}.attn.${w}`, normal([d, d], 1 / Math.sqrt(d)));
      v(`l${l}.attn.wo`, normal([d, d], 1 / Math.sqrt(d * 2 * L)));
      v(`l${l}.ln2.g`, tf.ones([d]));
      v(`l${l}.ln2.b`, tf.zeros([d]));
      const moe = new MoeLayer({
        inputDim: d,
        hiddenDim: config.expertHidden,
        numExperts: config.experts,
        topK: config.topK,
        routingOrder: "topk-softmax",
        routerBias: true,
        activation: config.activation,
        noiseStd: config.noiseStd,
        capacityFactor: config.capacityFactor,
        loadBalanceWeight: config.loadBalanceWeight,
        router: config.router,
        routerOptions: config.routerOptions,
        zLossWeight: config.zLossWeight,
        causal: true,
      }, { seed: siteSeed(seed, 1000 + l), prefix: `l${l}.moe` });
      this.moes.push(moe);
      Object.assign(p, moe.params);
    }
    v("lnf.g", tf.ones([d]));
    v("lnf.b", tf.zeros([d]));
    v("head.w", normal([d, V], 1 / Math.sqrt(d)));
    v("head.b", tf.zeros([V]));
    this.params = p;
    const mask = new Float32Array(T * T);
    for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) mask[i * T + j] = -1e9;
    this.#mask = tf.keep(tf.tensor2d(mask, [T, T]));
  }

  /** Number of trainable scalars. */
  get parameterCount(): number {
    return Object.values(this.params).reduce((n, v) => n + v.size, 0);
  }

  #layerNorm(x: Tensor, name: string): Tensor2D {
    const [g, b] = [this.params[`${name}.g`], this.params[`${name}.b`]];
    return layerNorm(x, g, b, 1e-5, "rsqrt") as Tensor2D;
  }

  #dropout(x: Tensor, opts: LmForwardOptions, site: number): Tensor {
    const rate = this.config.dropout;
    if (!opts.training || rate === 0) return x;
    return tf.dropout(x, rate, undefined, siteSeed(opts.seed, site));
  }

  /**
   * Causal multi-head self-attention of `h` (`[B·T, d]`), `[B·T, d]`; with
   * `keep`, also the head-averaged attention matrix `[B, T, T]` (before
   * dropout; rows sum to 1; kept: the caller frees it), the `attention`
   * router's graph.
   */
  #attention(
    l: number,
    h: Tensor2D,
    T: number,
    opts: LmForwardOptions,
    keep?: { matrix?: tf.Tensor3D },
  ): Tensor2D {
    const w = (n: string) => tf.matMul(h, this.params[`l${l}.attn.${n}`] as Tensor2D) as Tensor2D; // [B·T, d]
    const mask = T === this.config.contextLength ? this.#mask : this.#mask.slice([0, 0], [T, T]);
    const rate = opts.training ? this.config.dropout : 0;
    const dropout = rate > 0 ? { rate, seed: siteSeed(opts.seed, 10 + 4 * l) } : undefined;
    const o = attend(w("wq"), w("wk"), w("wv"), T, this.config.heads, { mask, dropout, keep });
    return tf.matMul(o, this.params[`l${l}.attn.wo`] as Tensor2D); // [B·T, d]
  }

  /**
   * The forward pass as a generator: yields a {@linkcode RouteRequest} per
   * MoE layer (in block order) and expects that layer's `RoutedBatch` back;
   * returns the {@linkcode LmForward}. It creates tensors without a tidy
   * scope: drive it inside `tf.tidy`, a gradient tape, or use the drivers.
   *
   * @param tokens `[B, T]` int32 token ids, T <= contextLength
   */
  *forward(
    tokens: Tensor2D,
    opts: LmForwardOptions,
  ): Generator<RouteRequest, LmForward, RoutedBatch> {
    const [B, T] = tokens.shape;
    const { vocabSize: V, hidden: d, contextLength } = this.config;
    if (tokens.rank !== 2 || T < 1 || T > contextLength) {
      throw new RangeError(
        `MoeLm.forward: tokens must be [B, T] with 1 <= T <= contextLength = ${contextLength},` +
          ` got shape [${tokens.shape}]`,
      );
    }
    const N = B * T;
    // Embedding as a one-hot matmul: its gradient is a matmul too (tfjs's wasm
    // backend has no UnsortedSegmentSum for gather's gradient).
    const onehot = floatOneHot(tokens.reshape([N]) as Tensor1D, V); // [N, V]
    const tok = tf.matMul(onehot, this.params["emb.tok"] as Tensor2D); // [N, d]
    const pos = this.params["emb.pos"].slice([0, 0], [T, d]); // [T, d]
    let x = this.#dropout(
      tf.reshape(tf.add(tok.reshape([B, T, d]), pos), [N, d]),
      opts,
      0,
    ) as Tensor2D;
    let state = INITIAL_RESIDUAL_STATE;
    const routed: RoutedBatch[] = [];
    const penalties: Tensor[] = [];
    const regs: Tensor[] = [];
    const routers: { gates: Tensor2D; z: Tensor2D; routerLogits: Tensor2D }[] = [];
    for (let l = 0; l < this.config.layers; l++) {
      const att: { matrix?: tf.Tensor3D } = {};
      const wantsAttention = this.config.router === "attention";
      const ln1 = this.#layerNorm(x, `l${l}.ln1`);
      const a = this.#attention(l, ln1, T, opts, wantsAttention ? att : undefined);
      const h = tf.add(x, this.#dropout(a, opts, 11 + 4 * l)) as Tensor2D; // [N, d]
      const u = this.#layerNorm(h, `l${l}.ln2`);
      const moe = this.moes[l];
      const input: RouterInput = { x: u, sequenceLength: T, attention: att.matrix }; // x [N, d]
      const r: RoutedBatch = yield {
        layer: l,
        input,
        training: opts.training,
        noiseSeed: siteSeed(opts.seed, 12 + 4 * l),
        step: opts.step,
      };
      if (!r || r.plan?.N !== N || r.plan.E !== this.config.experts) {
        throw new Error(
          `MoeLm.forward: layer ${l} got ${r ? `a plan for N = ${r.plan?.N}` : "no plan"};` +
            ` expected one for N = ${N} tokens and E = ${this.config.experts}`,
        );
      }
      routed.push(r);
      const out = moe.apply(input, r, opts.reg);
      att.matrix?.dispose(); // kept by attend (the tape holds its own copy)
      penalties.push(out.penalty);
      regs.push(out.regularizer);
      if (!opts.training) {
        routers.push({ gates: out.gates, z: out.z, routerLogits: out.routerLogits });
      }
      const f = this.#dropout(out.y, opts, 13 + 4 * l);
      const step = residualStep(this.config, l, h, f, state);
      x = step.x as Tensor2D;
      state = step.state;
    }
    const final = this.#layerNorm(x, "lnf");
    const logits = tf.add(
      tf.matMul(final, this.params["head.w"] as Tensor2D),
      this.params["head.b"],
    ) as Tensor2D; // [N, V]
    return {
      logits,
      penalty: tf.addN(penalties),
      regularizer: tf.stack(regs) as Tensor1D,
      routed,
      ...(opts.training ? {} : { router: routers }),
    };
  }

  /**
   * The training forward pass, on every backend, inside a gradient tape or
   * `tf.tidy` (the intermediate tensors are left to the enclosing scope):
   * each layer is routed in the pass ({@linkcode routeInTape}: `routeSync` on
   * cpu and wasm, `routeDevice` on webgpu, no readback), so one forward pass
   * makes the step.
   */
  forwardSync(tokens: Tensor2D, opts: LmForwardOptions): LmForward {
    return this.forwardWith(
      tokens,
      opts,
      (req) => routeInTape(this.#router(req.layer, opts), req.input, req),
    );
  }

  /**
   * The forward pass answering each layer's request with `answer` (e.g. a
   * replay of the batches of an earlier {@linkcode MoeLm.forwardAsync}).
   */
  forwardWith(
    tokens: Tensor2D,
    opts: LmForwardOptions,
    answer: (req: RouteRequest, index: number) => RoutedBatch,
  ): LmForward {
    return driveForward(this.forward(tokens, opts), answer, disposeLmRouted).output;
  }

  /**
   * The layer that plans block `l`'s routing: the block's MoE layer, or for
   * a capacity override (eval mode only) a routing-only twin with the same
   * router settings and that capacity, its router weights copied from the
   * block's (its experts are tiny and unused: routing reads only the router).
   */
  #router(l: number, opts: LmForwardOptions): MoeLayer {
    const cf = opts.capacityFactor;
    if (cf === undefined || cf === this.config.capacityFactor) return this.moes[l];
    checkNumber("capacityFactor", cf, { min: 0 });
    if (opts.training) {
      throw new RangeError("MoeLm: a capacityFactor override is for eval mode (training: false)");
    }
    let twins = this.#routers.get(cf);
    if (!twins) {
      twins = this.moes.map((m, i) =>
        new MoeLayer({
          ...m.config,
          hiddenDim: 1,
          outputDim: 1,
          capacityFactor: cf,
        }, { seed: 0, prefix: `l${i}.router-cf${cf}` })
      );
      this.#routers.set(cf, twins);
    }
    twins[l].copyRouterFrom(this.moes[l]);
    return twins[l];
  }

  /**
   * The forward pass with asynchronous routing (`MoeLayer.route`), on any
   * backend, outside a gradient tape. Intermediate tensors are freed; the
   * caller owns `logits`, `penalty`, `regularizer` and the routed batches.
   *
   * The pass holds a tfjs engine scope open across its awaits, so passes of
   * all models run one at a time (concurrent calls queue); other tensor work
   * should not run while one is pending.
   */
  forwardAsync(tokens: Tensor2D, opts: LmForwardOptions): Promise<LmForward> {
    const run = asyncPasses.then(() => this.#forwardAsync(tokens, opts));
    asyncPasses = run.catch(() => {});
    return run;
  }

  async #forwardAsync(tokens: Tensor2D, opts: LmForwardOptions): Promise<LmForward> {
    const engine = tf.engine();
    engine.startScope();
    let out: LmForward | undefined;
    try {
      const r = await driveForwardAsync(this.forward(tokens, opts), async (req) =>
        keepRouted(
          await this.#router(req.layer, opts).route(req.input, {
            training: req.training,
            noiseSeed: req.noiseSeed,
            step: req.step,
          }),
        ), disposeLmRouted);
      out = r.output;
    } finally {
      engine.endScope(
        out
          ? [
            out.logits,
            out.penalty,
            out.regularizer,
            ...(out.router ?? []).flatMap((r) => [r.gates, r.z, r.routerLogits]),
          ]
          : undefined,
      );
    }
    return out;
  }

  /** Frees the parameters. */
  dispose(): void {
    for (const v of Object.values(this.params)) v.dispose();
    for (const twins of this.#routers.values()) twins.forEach((m) => m.dispose());
    this.#mask.dispose();
  }
}

/**
 * Per-token negative log-likelihood (natural log) of `targets` under the
 * logits, `[N]`: logsumexp(logits) − logits[target].
 *
 * @param logits `[N, V]`
 * @param targets N int32 token ids (any shape)
 */
export function tokenNll(logits: Tensor2D, targets: Tensor): Tensor1D {
  return tf.tidy(() => {
    const [N, V] = logits.shape;
    const onehot = floatOneHot(targets.reshape([N]) as Tensor1D, V);
    return tf.sub(tf.logSumExp(logits, 1), tf.sum(tf.mul(onehot, logits), 1)) as Tensor1D;
  });
}

/**
 * Perplexity from a total negative log-likelihood (nats) over `count` tokens:
 * exp(total / count).
 *
 * @example
 * ```ts
 * import { perplexity } from "./lm.ts";
 * console.log(perplexity(10 * Math.log(90), 10)); // 90 (a uniform model over 90 tokens)
 * ```
 */
export function perplexity(totalNll: number, count: number): number {
  checkInteger("count", count, 1);
  return Math.exp(totalNll / count);
}
