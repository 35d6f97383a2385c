/**
 * The sparse Mixture-of-Experts layer of MoGE (MoGE, arXiv 2504.09265, eq. 1-4) with
 * a router of the related work (`./routers/`: token-choice top-k in both
 * orders with routing noise, capacity and batch-prioritized routing, the
 * default; expert choice, Sinkhorn, SSR, X-MoE, similarity- and
 * attention-aware), the router's auxiliary loss, the ST-MoE router z-loss,
 * and the MoGE regularizer (eq. 9) on the router's score map z.
 *
 * On wasm and cpu the experts run on exactly their tokens, packed expert
 * after expert, in one fused kernel (forward and backward); on webgpu as
 * batched matmuls over `[E, slots, d]` buffers filled by gathers (GShard /
 * Switch / V-MoE style). Either way the work grows with tokens · k · d · d_ff,
 * never with a private weight copy per token.
 *
 * @module
 */

import { tf } from "../deps.ts";
import { installFastWasmKernels } from "../ops/wasm_kernels.ts";
import type { Tensor, Tensor2D, Variable } from "../types.ts";
import { routeRows, rowRoute } from "./dispatch.ts";
import { expertFfn, expertFfnAvailable, fusedExpertsEnabled } from "./expert_ffn.ts";
import type { FilterCentre, FilterKind } from "../moge/filters.ts";
import type { Padding } from "../moge/padding.ts";
import { groupSparsity } from "../moge/group_sparsity.ts";
import { topographicLayout } from "../moge/layout.ts";
import type { RoutingPlan } from "./routing.ts";
import { type Activation, type MoeConfig, validateMoeConfig } from "./moe_config.ts";
import { hostPlan, type HostRoutedBatch, packedRoutes, type RoutedBatch } from "./routed_batch.ts";
import { deviceRoutedBatch } from "./routing_webgpu_batch.ts";
import { tfSeed } from "../rng.ts";
import {
  createRouter,
  route as routeAsync,
  type Router,
  type RouterDecision,
  type RouterInput,
  type RouterStats,
  routeSync as routeNow,
  statsOf,
  tapeId,
  zLoss,
} from "./routers/mod.ts";

export * from "./moe_config.ts";
export {
  disposeRouted,
  hostPlan,
  type HostRoutedBatch,
  type RoutedBatch,
  type RoutedPlan,
} from "./routed_batch.ts";

/** The MoGE regularizer's settings for one forward pass (pass null to `apply` to skip it). */
export interface RegularizerSettings {
  /** λ: weight of the batch mean of R(z) (0: plain MoE). */
  lambda: number;
  /** σ of the Gaussian filter now (from the σ schedule). */
  sigma: number;
  /** Filter size h. */
  filterSize: number;
  /** Filter shape. */
  filter: FilterKind;
  /** Zero padding of the expert map (default "valid", Algorithm 1). */
  padding?: Padding;
  /** Centre tap of an even-h Gaussian (default "floor", the authors' code). */
  filterCentre?: FilterCentre;
}

/** What one forward pass of the layer gives. */
export interface MoeOutput {
  /** Layer output `[N, d_out]` (dropped choices contribute zero). */
  y: Tensor2D;
  /**
   * The router's score map z `[N, E]` that R(z) applies to (top-k:
   * softmax(router logits), noise-free; see `./routers/mod.ts` for the others).
   */
  z: Tensor2D;
  /** Gates `[N, k]` of the plan's choices (0 for dropped-or-padding choices' zero rows). */
  gates: Tensor2D;
  /** The router's auxiliary (load-balancing) loss (scalar, unweighted; 0 when it has none). */
  auxLoss: Tensor;
  /** The ST-MoE router z-loss of the router logits (scalar, unweighted; 0 when its weight is 0). */
  zLoss: Tensor;
  /** The raw router logits `[N, E]` (the z-loss input). */
  routerLogits: Tensor2D;
  /** Batch mean of the MoGE regularizer R(z) (scalar, unweighted; 0 when not computed). */
  regularizer: Tensor;
  /**
   * The terms this layer adds to the loss: loadBalanceWeight·L_aux +
   * zLossWeight·L_z + λ·mean R(z) (scalar).
   */
  penalty: Tensor;
}

/** Routing statistics of one batch. */
export interface RoutingStats {
  /** Tokens each expert processed. */
  load: Int32Array;
  /** Tokens that chose each expert before capacity. */
  demand: Int32Array;
  /** Dropped (token, choice) pairs. */
  dropped: number;
  /** Dropped fraction of all N·k choices. */
  dropRate: number;
}

function activate(x: Tensor, kind: Activation): Tensor {
  switch (kind) {
    case "relu":
      return tf.relu(x);
    case "tanh":
      return tf.tanh(x);
    case "gelu": {
      // tanh approximation of GELU (Hendrycks & Gimpel 2016).
      const cube = tf.mul(tf.mul(x, x), x); // tf.pow is slow on wasm
      const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, cube)));
      return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
    }
  }
}

/** Options of {@linkcode MoeLayer.route}. */
export interface RouteOptions {
  /** Training pass: add routing noise (std `noiseStd`). */
  training: boolean;
  /** Seed of the routing noise (unseeded when absent). */
  noiseSeed?: number;
  /**
   * The routing noise to add, `[N, E]`, instead of drawing it (training only,
   * top-k; the layer takes a copy). For replaying a step or reproducing
   * reference code.
   */
  noise?: Tensor2D;
  /** Training step (SSR decides per step whether it runs Sinkhorn). */
  step?: number;
  /**
   * {@linkcode MoeLayer.routeDevice} only: also count each expert's demand
   * and load on the device (`RoutedBatch.counts`, for a `RoutingStatsLog`).
   */
  stats?: boolean;
}

/**
 * A sparse MoE layer. Parameters are tfjs variables in {@linkcode MoeLayer.params}:
 * the router's (top-k: `router.w [d, E]`, `router.b [E]` if routerBias; see
 * `./routers/` for the others, all named `router.*`), and for each expert e
 * `experts.w1.e [d, d_ff]`, `experts.b1.e [d_ff]`, `experts.w2.e [d_ff, d_out]`,
 * `experts.b2.e [d_out]` (one variable each, so that an expert's weights are
 * used in place, without copies).
 *
 * A training step is two calls: a route ({@linkcode MoeLayer.route}: reads
 * the scores back and plans top-k and capacity on the CPU, outside the tape;
 * {@linkcode MoeLayer.routeSync}: the same inside the tape, cpu and wasm;
 * {@linkcode MoeLayer.routeDevice}: plans on the GPU inside the tape, no
 * readback, webgpu) and {@linkcode MoeLayer.apply} (inside the tape:
 * differentiable gates, dispatch, experts, combine, losses).
 *
 * @example
 * ```ts
 * import { MoeLayer, type Tensor2D, tf, useBackend } from "../../mod.ts";
 * await useBackend("cpu");
 * const layer = new MoeLayer({
 *   inputDim: 8, hiddenDim: 4, numExperts: 9, topK: 1, routingOrder: "softmax-topk",
 *   routerBias: false, activation: "relu", capacityFactor: 4, loadBalanceWeight: 0.01,
 * }, { seed: 1 });
 * const x = tf.randomNormal([5, 8]) as Tensor2D; // [N, d]
 * const routed = await layer.route({ x }, { training: false });
 * const out = layer.apply({ x }, routed, { lambda: 0, sigma: 1, filterSize: 3, filter: "gaussian" });
 * console.log(out.y.shape); // [5, 8]
 * ```
 */
export class MoeLayer {
  /** The validated configuration. */
  readonly config: Required<MoeConfig>;
  /** Trainable parameters by stable name (see class docs). */
  readonly params: Record<string, Variable>;
  /** The router (its parameters are in `params` too). */
  readonly router: Router;

  /**
   * Creates the layer's variables (normal initialization, seeded). The
   * router draws from `seed` on; the experts from `seed + 1` on, whatever
   * the router (so that routers are compared on the same initial experts).
   *
   * @param config layer shape and routing settings
   * @param init `seed` for the initial weights; `prefix` for parameter names
   */
  constructor(config: MoeConfig, init: { seed?: number; prefix?: string } = {}) {
    validateMoeConfig(config);
    const E = config.numExperts;
    this.config = {
      ...config,
      outputDim: config.outputDim ?? config.inputDim,
      noiseStd: config.noiseStd ?? 1 / E,
      compactExperts: config.compactExperts ?? false,
      expertCompute: config.expertCompute ?? "auto",
      router: config.router ?? "topk",
      routerOptions: config.routerOptions ?? {},
      zLossWeight: config.zLossWeight ?? 0,
      causal: config.causal ?? false,
      capacityRule: config.capacityRule ?? "tutel",
    };
    const { inputDim: d, hiddenDim: f, outputDim: o } = this.config;
    const prefix = init.prefix ?? "moe";
    const c = this.config;
    this.router = createRouter(c.router, {
      inputDim: d,
      numExperts: E,
      topK: c.topK,
      capacityFactor: c.capacityFactor,
      capacityRule: c.capacityRule,
      causal: c.causal,
      compact: c.compactExperts,
      routingOrder: c.routingOrder,
      routerBias: c.routerBias,
      noiseStd: c.noiseStd,
      auxLoss: c.loadBalanceWeight > 0,
      ...c.routerOptions,
    }, { seed: init.seed ?? 0, prefix });
    let seed = (init.seed ?? 0) + 1;
    const normal = (shape: number[], std: number) =>
      tf.randomNormal(shape, 0, std, "float32", tfSeed(seed++));
    const p: Record<string, Variable> = { ...this.router.params };
    const v = (name: string, t: Tensor) => {
      p[`${prefix}.${name}`] = tf.variable(t, true, `${prefix}.${name}#${uniqueId++}`);
      t.dispose();
    };
    for (let e = 0; e < E; e++) {
      v(`experts.w1.${e}`, normal([d, f], 1 / Math.sqrt(d)));
      v(`experts.b1.${e}`, tf.zeros([f]));
      v(`experts.w2.${e}`, normal([f, o], 1 / Math.sqrt(f)));
      v(`experts.b2.${e}`, tf.zeros([o]));
    }
    this.params = p;
    this.#prefix = prefix;
  }

  readonly #prefix: string;

  #param(name: string): Variable {
    return this.params[`${this.#prefix}.${name}`];
  }

  /**
   * Router logits W x (+ b), `[N, E]`, of the top-k router; differentiable.
   * (The other routers compute their own scores in `route` and `apply`.)
   */
  logits(x: Tensor2D): Tensor2D {
    if (this.config.router !== "topk") {
      throw new Error(
        `MoeLayer.logits is the top-k router's; router "${this.config.router}" computes its` +
          " scores in route() and apply()",
      );
    }
    return tf.tidy(() => {
      const w = tf.matMul(x, this.#param("router.w")); // [N, E]
      const b = this.config.routerBias ? this.#param("router.b") : null;
      return (b ? tf.add(w, b) : w) as Tensor2D;
    });
  }

  /**
   * Plans the routing of a batch with the layer's router: its selection
   * scores (top-k: the logits plus routing noise in training, std
   * `noiseStd`, seeded), one readback, the plan on the CPU. Throws a clear
   * error if the scores are not finite (a diverged router).
   *
   * @param input the router input: the tokens `x` `[N, d]` (the layer's
   *   input), `sequenceLength` T, and for "attention" the preceding attention
   *   sublayer's head-averaged matrix `[B, T, T]`
   */
  async route(input: RouterInput, options: RouteOptions): Promise<HostRoutedBatch> {
    return this.#routed(await routeAsync(this.router, input, this.#context(options)));
  }

  /**
   * {@linkcode MoeLayer.route} with a synchronous readback, for use inside a
   * gradient tape (multi-layer models). tfjs allows it on cpu and wasm only;
   * on webgpu this throws (plan with `route` in a no-tape pass first).
   */
  routeSync(input: RouterInput, options: RouteOptions): HostRoutedBatch {
    if (tf.getBackend() === "webgpu") {
      throw new Error(
        "MoeLayer.routeSync: webgpu cannot read tensors synchronously; plan the routing with the" +
          " async route() in a pass outside the gradient tape",
      );
    }
    return this.#routed(routeNow(this.router, input, this.#context(options)));
  }

  /**
   * Plans the routing on the device, synchronously and without a readback
   * (webgpu, top-k router only): the top-k router's selection (its logits
   * W x (+ b) from `input.x`, plus the same noise draw as
   * {@linkcode MoeLayer.route}), then `planRoutingWebGPU` (routing_webgpu.ts)
   * on the noisy logits. Call it inside the gradient tape, in the one forward
   * pass; the batch runs the "batched" experts (all E experts,
   * `slots = capacity`), whatever `expertCompute` says, since the looped and
   * fused paths need the loads on the CPU. Its outputs and gradients equal
   * those of a CPU-planned batch. With `stats` the batch carries the
   * `[2, E]` demand and load counts. The other routers plan on the CPU only
   * (`route`).
   *
   * @param input the router input (its `x` `[N, d]`)
   */
  routeDevice(input: RouterInput, options: RouteOptions): RoutedBatch {
    if (tf.getBackend() !== "webgpu") {
      throw new Error(
        `MoeLayer.routeDevice: needs the webgpu backend, tfjs runs on "${tf.getBackend()}"`,
      );
    }
    if (this.router.name !== "topk") {
      throw new Error(
        `MoeLayer.routeDevice plans the top-k router only; router "${this.router.name}" plans` +
          " on the CPU with route()",
      );
    }
    let noise: Tensor2D | null = null;
    let logits: Tensor2D | null = null; // [N, E] clean logits, for apply to reuse
    const tape = tapeId(); // off the tape they are never reused: not kept
    const selection = tf.tidy(() => {
      const sel = this.router.select(input, this.#context(options));
      noise = sel.noise ? tf.keep(sel.noise) : null;
      if (sel.logits && tape !== 0) {
        logits = tf.keep(sel.values === sel.logits ? sel.logits.clone() : sel.logits);
      }
      return sel.values; // [N, E] noisy logits
    });
    const { topK: k, capacityFactor, capacityRule } = this.config;
    try {
      const batch: RoutedBatch = deviceRoutedBatch(selection, noise, {
        k,
        capacityFactor,
        capacityRule,
        counts: options.stats ?? false,
      });
      if (logits) batch.logits = { tensor: logits, input: input.x.id, tape };
      return batch;
    } catch (e) {
      if (noise) (noise as Tensor2D).dispose();
      if (logits) (logits as Tensor2D).dispose();
      throw e;
    } finally {
      selection.dispose();
    }
  }

  #context(options: RouteOptions) {
    return {
      training: options.training,
      noiseSeed: options.noiseSeed,
      noise: options.noise,
      step: options.step,
    };
  }

  #routed(decision: RouterDecision): HostRoutedBatch {
    const { expertCompute } = this.config;
    const looped = expertCompute !== "batched" &&
      (expertCompute !== "auto" || tf.getBackend() !== "webgpu");
    const { plan } = decision;
    const k = plan.k; // expert choice: the batch's largest number of experts per token
    return {
      plan,
      dispatch: rowRoute(plan.tokenOfSlot, plan.slotOfChoice, k),
      combine: rowRoute(plan.slotOfChoice, plan.choiceOfSlot, 1),
      packed: looped ? packedRoutes(plan) : undefined,
      chosen: decision.chosen,
      noise: decision.noise,
      decision,
    };
  }

  /**
   * Copies the router weights of `other` (a layer with the same router and
   * shapes) into this layer's router, e.g. into a routing-only twin that
   * plans with another capacity factor.
   */
  copyRouterFrom(other: MoeLayer): void {
    const mine = Object.values(this.router.params);
    const theirs = Object.values(other.router.params);
    if (other.router.name !== this.router.name || mine.length !== theirs.length) {
      throw new Error(
        `copyRouterFrom: router "${other.router.name}" does not match "${this.router.name}"`,
      );
    }
    mine.forEach((v, i) => v.assign(theirs[i]));
  }

  /** Expert e's parameter `name` ("w1", "b1", "w2" or "b2"). */
  expertParam(name: "w1" | "b1" | "w2" | "b2", e: number): Variable {
    return this.#param(`experts.${name}.${e}`);
  }

  /**
   * The differentiable forward pass for a routed batch (run it inside the
   * gradient tape). `input` must be the router input `route` planned from
   * (its `x` `[N, d]` is also the experts' input).
   */
  apply(
    input: RouterInput,
    routed: RoutedBatch,
    reg: RegularizerSettings | null,
  ): MoeOutput {
    const { plan } = routed;
    const { N, k, slots } = plan;
    const { inputDim: d, outputDim: o } = this.config;
    const x = input.x;
    // A batch routed on the device (top-k) has no decision: every choice is
    // real, and its plan has the sizes only (top-k's forward reads no more on webgpu).
    const decision: RouterDecision = routed.decision ?? {
      router: this.router.name,
      mode: routed.noise ? "train" : "eval",
      plan: plan as RoutingPlan,
      valid: new Uint8Array(N * k).fill(1),
      leftBehind: 0,
      chosen: routed.chosen,
      noise: routed.noise,
      logits: routed.logits,
    };
    return tf.tidy(() => {
      const r = this.router.forward(input, decision);
      const { z, gates, auxLoss } = r; // z [N, E], gates [N, k]

      // Dispatch -> experts -> combine.
      let perChoice: Tensor2D; // [N*k, d_out]
      if (routed.packed) {
        // Looped: expert after expert on exactly its tokens (no padding).
        const { dispatch, combine, experts, sizes } = routed.packed;
        const buf = routeRows(x, dispatch); // [R, d], R = routed choices
        let out: Tensor2D; // [R, d_out]
        const { expertCompute } = this.config;
        if (expertCompute === "fused" && !expertFfnAvailable()) {
          throw new Error(
            `expertCompute "fused" runs on wasm and cpu, not on ${tf.getBackend()}: use "auto"`,
          );
        }
        if (
          expertCompute === "fused" ||
          (expertCompute === "auto" && expertFfnAvailable() && fusedExpertsEnabled())
        ) {
          // wasm / cpu: every expert in one forward and one backward kernel.
          out = expertFfn(
            buf,
            experts.map((e) => ({
              w1: this.expertParam("w1", e),
              b1: this.expertParam("b1", e),
              w2: this.expertParam("w2", e),
              b2: this.expertParam("b2", e),
            })),
            sizes,
            this.config.activation,
          );
        } else {
          const parts = experts.length === 1 ? [buf] : tf.split(buf, sizes, 0);
          const pre = parts.map((part, j) =>
            tf.add(
              tf.matMul(part, this.expertParam("w1", experts[j])),
              this.expertParam("b1", experts[j]),
            )
          ); // [n_j, d_ff] each
          const hidden = activate(
            pre.length === 1 ? pre[0] : tf.concat(pre, 0),
            this.config.activation,
          ); // [R, d_ff]
          const hs = experts.length === 1 ? [hidden] : tf.split(hidden, sizes, 0);
          const outs = hs.map((h, j) =>
            tf.add(
              tf.matMul(h, this.expertParam("w2", experts[j])),
              this.expertParam("b2", experts[j]),
            )
          ); // [n_j, d_out] each
          out = (outs.length === 1 ? outs[0] : tf.concat(outs, 0)) as Tensor2D;
        }
        perChoice = routeRows(out, combine);
      } else {
        // Batched: [A, slots, d] buffers, stacked weights of the A buffered experts.
        const A = plan.active.length;
        const stack = (name: "w1" | "b1" | "w2" | "b2") =>
          tf.stack(Array.from(plan.active, (e) => this.expertParam(name, e))); // [A, ...]
        const buf = routeRows(x, routed.dispatch).reshape([A, slots, d]); // [A, C, d]
        const h1 = activate(
          tf.add(tf.matMul(buf, stack("w1")), stack("b1").expandDims(1)),
          this.config.activation,
        ); // [A, C, d_ff]
        const out = tf.add(tf.matMul(h1, stack("w2")), stack("b2").expandDims(1)); // [A, C, d_out]
        perChoice = routeRows(out.reshape([A * slots, o]) as Tensor2D, routed.combine);
      }
      const y = tf.sum(tf.mul(perChoice.reshape([N, k, o]), gates.expandDims(2)), 1) as Tensor2D; // [N, d_out]

      const { zLossWeight, loadBalanceWeight } = this.config;
      const zl = zLossWeight > 0 ? zLoss(r.logits) : tf.scalar(0);
      const regularizer = reg
        ? tf.mean(groupSparsity(z, {
          sigma: reg.sigma,
          filterSize: reg.filterSize,
          filter: reg.filter,
          padding: reg.padding,
          filterCentre: reg.filterCentre,
          checkFinite: false,
        }))
        : tf.scalar(0);
      let penalty = tf.add(
        tf.mul(loadBalanceWeight, auxLoss),
        tf.mul(reg?.lambda ?? 0, regularizer),
      );
      if (zLossWeight > 0) penalty = tf.add(penalty, tf.mul(zLossWeight, zl));
      return { y, z, gates, auxLoss, zLoss: zl, routerLogits: r.logits, regularizer, penalty };
    });
  }

  /** Routing statistics of a routed batch (from its plan alone). */
  static stats(routed: RoutedBatch): RoutingStats {
    const { load, demand, dropped, N, k } = hostPlan(routed.plan, "MoeLayer.stats");
    const real = routed.decision ? routed.decision.valid.reduce((s, v) => s + v, 0) : N * k;
    return { load, demand, dropped, dropRate: real > 0 ? dropped / real : 0 };
  }

  /**
   * The router's statistics of a routed batch and its output (load, dead
   * experts, dropped choices, tokens left behind, mean gate, routing
   * entropy); reads the gates and z back. Needs a CPU plan (`route`).
   */
  static async routerStats(routed: RoutedBatch, out: MoeOutput): Promise<RouterStats> {
    const [gates, z] = await Promise.all([out.gates.data(), out.z.data()]);
    const plan = hostPlan(routed.plan, "MoeLayer.routerStats");
    const valid = routed.decision?.valid ?? new Uint8Array(plan.N * plan.k).fill(1);
    return statsOf({ plan, valid }, gates, z);
  }

  /** Checks that E fits the MoGE layout for a filter of size h (throws a clear error if not). */
  checkLayout(h: number): void {
    topographicLayout(this.config.numExperts, h);
  }

  /** Frees the parameters (the router's too). */
  dispose(): void {
    for (const v of Object.values(this.params)) v.dispose();
  }
}

let uniqueId = 0;

installFastWasmKernels();
