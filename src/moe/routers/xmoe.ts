/**
 * X-MoE hypersphere routing (Chi et al., NeurIPS 2022, arXiv 2204.09179), as
 * torchscale releases it (`torchscale/component/xmoe/routing.py`), plus
 * the options of docs/routers.md:
 *
 * 1. `H = X·W_red` `[N, p]`, a projection to a low dimension p (16).
 * 2. Before each forward pass, with no gradient, every expert embedding row
 *    is rescaled in place to L2 norm 1.5 (`:189-191`; only the parameter's
 *    scale for the optimizer changes).
 * 3. `s[n, e] = H[n]·Emb_e / max(‖Emb_e‖, 1e-4)` (`_cosine`, `:220-225`): only
 *    the experts are normalized; `normalizeTokens` also normalizes `H[n]`
 *    (the paper-style cosine; UNVERIFIED against the paper).
 * 4. Temperature: none (torchscale), fixed, learnable τ stored directly
 *    (init 0.07, clamped ≥ 1e-4: MoEC, the X-MoE family's code), or learnable
 *    tutel-style `scale = exp(min(θ, log 100))`, `θ = log(1/τ₀)`, τ₀ 0.5.
 * 5. Gates: `softmax(s)` at the chosen experts; top-1 raw, top-k ≥ 2
 *    renormalized over the k (`normalize_gate_prob_before_dropping`). For
 *    top-2 in training, X-MoE's random second-expert policy (`:308-310`,
 *    forced by `config.py:81-83`): the second expert is kept only if
 *    `2·g2 > U(0, 1)` with g2 its renormalized gate; a discarded second
 *    choice takes no capacity and has gate 0 (`valid` 0), the first keeps g1.
 * 6. Balance loss `E·Σ_e me_e·ce_e` (`:94-99`), `me` from `softmax(s)` or
 *    from `softmax(cos/τ_b)` with a fixed `balanceTemperature` (0.07 in MoEC).
 *
 * Deviations: the layer's capacity (`k·floor(cf·⌈N/E⌉)`, as torchscale's
 * training capacity for top-1 and for top-2 at cf 1) with batch-prioritized
 * routing instead of token order; no `⌈N/4⌉` evaluation capacity.
 * z = softmax(s).
 *
 * @module
 */

import { tf } from "../../deps.ts";
import type { Tensor, Tensor2D, Variable } from "../../types.ts";
import { checkInteger, checkNumber } from "../../validate.ts";
import { Rng } from "../../rng.ts";
import { switchBalanceLoss } from "./load_balance.ts";
import { tokenChoicePlan } from "./plan.ts";
import {
  disposeParams,
  ParamMaker,
  pickGates,
  type Router,
  type RouterConfig,
  type RouterInit,
  type RouterPlan,
  validateRouterConfig,
} from "./router.ts";

/** How X-MoE scales its cosine scores. */
export type XmoeTemperature = "none" | "fixed" | "learnable" | "learnable-log";

/** Options of the X-MoE router. */
export interface XmoeRouterConfig extends RouterConfig {
  /** Projection dimension p (default 16, torchscale). */
  projDim?: number;
  /** Gain of the orthogonal expert-embedding init (default 0.32, torchscale). */
  expertGain?: number;
  /** Norm the expert rows are rescaled to before each pass (default 1.5; 0 off). */
  renormExpertsTo?: number;
  /** Normalize the projected tokens too (default false, as torchscale). */
  normalizeTokens?: boolean;
  /** Temperature kind (default "none"). */
  temperature?: XmoeTemperature;
  /**
   * τ for "fixed" (default 0.07), initial τ for "learnable" (default 0.07),
   * initial τ₀ for "learnable-log" (default 0.5).
   */
  temperatureValue?: number;
  /** Fixed temperature of the balance loss's softmax (default: the routing softmax). */
  balanceTemperature?: number;
  /**
   * Top-2 second expert in training: "random" (default, X-MoE: kept with
   * chance 2·g2) or "all" (always kept).
   */
  secondExpertPolicy?: "random" | "all";
  /** Seed of the random second-expert draws (default: the init seed). */
  policySeed?: number;
}

/** Clamp of the learnable τ ("learnable") and of the norms. */
const EPS = 1e-4;

/**
 * Creates the X-MoE router: parameters `${prefix}.router.proj [d, p]`,
 * `${prefix}.router.experts [E, p]`, and `${prefix}.router.tau` (learnable) or
 * `${prefix}.router.theta` (learnable-log).
 *
 * @example
 * ```ts
 * import { tf } from "../../deps.ts";
 * import { disposeDecision, route } from "./router.ts";
 * import { xmoeRouter } from "./xmoe.ts";
 * const router = xmoeRouter({ inputDim: 8, numExperts: 4, topK: 1, capacityFactor: 1 });
 * const input = { x: tf.randomNormal([6, 8]) as tf.Tensor2D };
 * const d = await route(router, input, { training: true });
 * const { gates, auxLoss } = router.forward(input, d);
 * disposeDecision(d);
 * ```
 */
export function xmoeRouter(config: XmoeRouterConfig, init: RouterInit = {}): Router {
  validateRouterConfig(config);
  const { inputDim: d, numExperts: E, topK: k } = config;
  const p = config.projDim ?? 16;
  checkInteger("projDim", p, 1);
  const gain = config.expertGain ?? 0.32;
  checkNumber("expertGain", gain, { min: 0, exclusiveMin: true });
  const renorm = config.renormExpertsTo ?? 1.5;
  checkNumber("renormExpertsTo", renorm, { min: 0 });
  const kind = config.temperature ?? "none";
  if (!["none", "fixed", "learnable", "learnable-log"].includes(kind)) {
    throw new RangeError(
      `temperature = "${kind}" is invalid: allowed are none, fixed, learnable, learnable-log`,
    );
  }
  const tau0 = config.temperatureValue ?? (kind === "learnable-log" ? 0.5 : 0.07);
  checkNumber("temperatureValue", tau0, { min: 0, exclusiveMin: true });
  if (config.balanceTemperature !== undefined) {
    checkNumber("balanceTemperature", config.balanceTemperature, { min: 0, exclusiveMin: true });
  }
  const policy = config.secondExpertPolicy ?? "random";
  if (policy !== "random" && policy !== "all") {
    throw new RangeError(`secondExpertPolicy = "${policy}" is invalid: allowed are random, all`);
  }
  const rng = new Rng(config.policySeed ?? init.seed ?? 0);
  const make = new ParamMaker(init);
  const proj = make.variable(
    "proj",
    tf.randomUniform([d, p], -1 / Math.sqrt(d), 1 / Math.sqrt(d), "float32", make.nextSeed() + 1),
  ); // PyTorch Linear's default range
  const experts = make.variable(
    "experts",
    tf.initializers.orthogonal({ gain, seed: make.nextSeed() + 1 }).apply([E, p]) as Tensor,
  );
  let tau: Variable | null = null;
  let theta: Variable | null = null;
  if (kind === "learnable") tau = make.variable("tau", tf.scalar(tau0));
  if (kind === "learnable-log") theta = make.variable("theta", tf.scalar(Math.log(1 / tau0)));

  /** Cosine scores `[N, E]` before the temperature. */
  const cosine = (x: Tensor2D): Tensor2D =>
    tf.tidy(() => {
      let h: Tensor = tf.matMul(x, proj as Tensor2D); // [N, p]
      if (config.normalizeTokens) h = tf.div(h, tf.maximum(tf.norm(h, 2, 1, true), EPS));
      const en = tf.div(experts, tf.maximum(tf.norm(experts, 2, 1, true), EPS)); // [E, p]
      return tf.matMul(h as Tensor2D, en as Tensor2D, false, true); // [N, E]
    });
  const scaled = (c: Tensor2D): Tensor2D =>
    tf.tidy(() => {
      switch (kind) {
        case "none":
          return c;
        case "fixed":
          return tf.div(c, tau0) as Tensor2D;
        case "learnable":
          return tf.div(c, tf.maximum(tau!, EPS)) as Tensor2D; // no gradient while clamped
        case "learnable-log":
          return tf.mul(c, tf.exp(tf.minimum(theta!, Math.log(100)))) as Tensor2D;
      }
      throw new Error("unreachable");
    });

  return {
    name: "xmoe",
    params: make.params,
    nonCausal: false,
    batchDependentInTraining: false,
    select(input, ctx) {
      if (renorm > 0) {
        experts.assign(
          tf.tidy(() => tf.mul(tf.div(experts, tf.norm(experts, 2, 1, true)), renorm)),
        );
      }
      return {
        values: tf.softmax(scaled(cosine(input.x))) as Tensor2D, // [N, E]
        noise: null,
        mode: ctx.training ? "train" : "eval",
      };
    },
    plan(values: Float32Array, N: number, mode): RouterPlan {
      if (k !== 2 || mode === "eval" || policy === "all") {
        return tokenChoicePlan(values, N, E, config);
      }
      const { plan } = tokenChoicePlan(values, N, E, { ...config, capacityFactor: 0 });
      const keep = new Uint8Array(N * 2).fill(1);
      for (let n = 0; n < N; n++) {
        const g1 = values[n * E + plan.expert[2 * n]];
        const g2 = values[n * E + plan.expert[2 * n + 1]];
        keep[2 * n + 1] = 2 * (g2 / (g1 + g2)) > rng.next() ? 1 : 0;
      }
      return tokenChoicePlan(values, N, E, config, keep);
    },
    forward(input, decision) {
      return tf.tidy(() => {
        const c = cosine(input.x); // [N, E]
        const s = scaled(c); // [N, E] logits
        const probs = tf.softmax(s) as Tensor2D; // [N, E]
        const N = c.shape[0];
        let gates: Tensor2D; // [N, k]
        if (k === 1) gates = pickGates(probs, decision.chosen, k);
        else {
          // Renormalized over all k top experts, discarded second choices included (torchscale
          // normalizes before the random policy); discarded choices then get gate 0.
          const all = tf.oneHot(tf.tensor1d(decision.plan.expert, "int32"), E)
            .toFloat() as Tensor2D;
          const g = pickGates(probs, all, k); // [N, k]
          const valid = tf.tensor2d(Float32Array.from(decision.valid), [N, k]);
          gates = tf.mul(tf.div(g, tf.sum(g, 1, true)), valid) as Tensor2D;
        }
        const top1 = decision.chosen.reshape([N, k, E]).slice([0, 0, 0], [-1, 1, -1])
          .reshape([N, E]) as Tensor2D; // [N, E] first choices, before capacity
        const balanceProbs = config.balanceTemperature === undefined
          ? probs
          : tf.softmax(tf.div(c, config.balanceTemperature)) as Tensor2D;
        return { logits: s, z: probs, gates, auxLoss: switchBalanceLoss(balanceProbs, top1) };
      });
    },
    dispose: () => disposeParams(make.params),
  };
}
