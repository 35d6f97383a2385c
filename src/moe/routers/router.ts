/**
 * The router contract of the MoE layer: every router of the related work
 * (token-choice top-k, Expert Choice, Sinkhorn, SSR, X-MoE, similarity- and
 * attention-aware) maps a batch of tokens to
 *
 * - a routing plan ({@linkcode RoutingPlan} of `../routing.ts`: which
 *   (token, choice) goes to which expert slot, or is dropped), planned on the
 *   CPU from one readback, so that no top-k ever sits on the gradient tape
 *   (on webgpu the `topk` router is instead planned on the device inside the
 *   taped pass, `MoeLayer.routeDevice`, with the same plan and no readback);
 * - differentiable gates `[N, k]`, one per (token, choice), read from a score
 *   tensor with the one-hot of the chosen experts;
 * - the score map z `[N, E]` that MoGE's regularizer R(z) (eq. 9) applies to;
 * - its auxiliary loss (unweighted; 0 for routers that balance by construction);
 * - the raw router logits, for the ST-MoE router z-loss (`z_loss.ts`).
 *
 * A CPU-planned step is two calls, like `MoeLayer.route` / `MoeLayer.apply`:
 * {@linkcode route} (or {@linkcode routeSync}) outside the gradient tape, then
 * `router.forward(input, decision)` inside it.
 *
 * How `src/moe/moe_layer.ts` plugs a router in:
 * 1. The layer owns a `Router` (`MoeLayer.router`, from `createRouter` in
 *    `./mod.ts`, named by `MoeConfig.router`, default "topk"); its `params`
 *    include `router.params` (the top-k router keeps the names
 *    `${prefix}.router.w` and `${prefix}.router.b` and the layer's seeds, so
 *    checkpoints stay loadable and results identical).
 * 2. `MoeLayer.route(input, options)` calls {@linkcode route} (or
 *    {@linkcode routeSync}) and builds its `RowRoute`s and packed layout from
 *    `decision.plan`; the `RoutedBatch` holds the decision.
 * 3. `MoeLayer.apply(input, routed, reg)` runs `router.forward(input,
 *    decision)`: `gates = r.gates` `[N, k]` (`y_n = Σ_j gates[n,j]·FFN(choice
 *    n·k+j)`, dropped and padding choices read the zero row), R(z) on `r.z`,
 *    and the penalty `loadBalanceWeight·r.auxLoss + zLossWeight·zLoss(r.logits)
 *    + λ·mean R(z)`.
 * 4. `disposeRouted` also calls {@linkcode disposeDecision};
 *    `MoeLayer.routerStats` gives `statsOf` of `./stats.ts`.
 * 5. Models pass `sequenceLength` (ViT, LM) and, for `attention`, the
 *    preceding attention sublayer's head-averaged matrix `[B, T, T]`; the LM
 *    builds its layers with `causal: true`, which expert choice refuses.
 *
 * @module
 */

import { tf } from "../../deps.ts";
import type { Tensor, Tensor2D, Variable } from "../../types.ts";
import type { CapacityRule, RoutingPlan } from "../routing.ts";
import { checkInteger, checkNumber } from "../../validate.ts";
import { tfSeed } from "../../rng.ts";

/** A rank-3 tfjs tensor (`tf.Tensor3D`), e.g. an attention matrix `[B, T, T]`. */
export type Tensor3D = tf.Tensor3D;

/** The routers this module implements. */
export type RouterName =
  | "topk"
  | "expert-choice"
  | "sinkhorn"
  | "ssr"
  | "xmoe"
  | "similarity"
  | "attention";

/** How a router's plan was made this pass: at evaluation, in training, or in a Sinkhorn step of training (SSR). */
export type RouterMode = "eval" | "train" | "train-sinkhorn";

/** Settings every router takes. */
export interface RouterConfig {
  /** Token width d. */
  inputDim: number;
  /** Number of experts E. */
  numExperts: number;
  /** Experts per token k (token-choice routers); expert choice ignores it. */
  topK: number;
  /** Capacity factor C_f (0: no capacity limit for token-choice routers). */
  capacityFactor: number;
  /** The model is a causal decoder (masks later tokens; non-causal routers refuse it). */
  causal?: boolean;
  /** How the expert capacity follows from C_f (default "tutel"; see `CapacityRule` in routing.ts). */
  capacityRule?: CapacityRule;
  /** Give buffers only to experts that received a token (see `PlanOptions.compact`). */
  compact?: boolean;
  /** Round the buffer size up to a multiple of this (see `PlanOptions.slotMultiple`). */
  slotMultiple?: number;
}

/** Where a router's parameters come from. */
export interface RouterInit {
  /** Seed of the initial weights. */
  seed?: number;
  /** Prefix of parameter names (default "moe"): names are `${prefix}.router.*`. */
  prefix?: string;
}

/** What a router routes. */
export interface RouterInput {
  /** Tokens `[N, d]` (N = B·T, sequence-major). */
  x: Tensor2D;
  /**
   * Tokens per sequence T (N must be a multiple): the neighbours of the
   * graph-of-tokens routers. Default N (the batch is one sequence, as for the
   * one-token-per-image classifier).
   */
  sequenceLength?: number;
  /**
   * Head-averaged attention matrix of the attention sublayer just before the
   * MoE, `[B, T, T]`, rows summing to 1 (the `attention` router needs it).
   */
  attention?: Tensor3D;
}

/** Per-pass settings. */
export interface RouterContext {
  /** Training pass (noise, Sinkhorn) or evaluation. */
  training: boolean;
  /** Seed of the routing noise (top-k); unseeded when absent. */
  noiseSeed?: number;
  /** Training step, for routers that change behaviour between steps (SSR). */
  step?: number;
  /**
   * Routing noise `[N, E]` to add instead of drawing it (training, top-k
   * only; the router takes a copy): for replaying a step or reproducing
   * reference code.
   */
  noise?: Tensor2D;
}

/** What {@linkcode Router.select} gives: tensors read back once, outside the tape. */
export interface Selection {
  /** `[N, E]` values the CPU plan is made from (read back, then disposed). */
  values: Tensor2D;
  /** Tensors that `forward` must reuse (routing noise `[N, E]`), or null. */
  noise: Tensor2D | null;
  /** How this pass plans. */
  mode: RouterMode;
  /**
   * The raw router logits `[N, E]` select computed, if any: `forward` reuses
   * them when it runs on the same input and gradient tape (see
   * {@linkcode logitsOnTape}) instead of computing `X·W` again.
   */
  logits?: Tensor2D;
}

/**
 * Router logits computed by `select`, with what they may be reused for: the
 * input tensor's id and the gradient tape they were recorded on (0: none).
 */
export interface SelectedLogits {
  /** `[N, E]` raw logits. */
  tensor: Tensor2D;
  /** `id` of the input tensor `x` they were computed from. */
  input: number;
  /** {@linkcode tapeId} when they were computed. */
  tape: number;
}

/** A plan and whether each of its choices is real. */
export interface RouterPlan {
  /** The routing plan, as `planRouting` gives it. */
  plan: RoutingPlan;
  /**
   * `[N * k]`: 1 for a real (token, expert) choice, 0 for padding (expert
   * choice gives tokens a variable number of experts, padded to the batch's
   * largest; a padding choice is never routed and has gate 0).
   */
  valid: Uint8Array;
}

/** One routed batch: plan, one-hot of the choices, noise. Free with {@linkcode disposeDecision}. */
export interface RouterDecision extends RouterPlan {
  /** The router that made it. */
  router: RouterName;
  /** How it was planned. */
  mode: RouterMode;
  /** Tokens none of whose choices reached an expert (zero MoE output; the residual carries them). */
  leftBehind: number;
  /** `[N * k, E]` float one-hot of `plan.expert`, zero rows for padding choices. */
  chosen: Tensor2D;
  /** Routing noise added to the logits in training (top-k), or null. */
  noise: Tensor2D | null;
  /** The logits `select` computed (freed with the decision), or absent. */
  logits?: SelectedLogits | null;
}

/** What a router's differentiable forward pass gives. */
export interface RouterOutput {
  /** The raw router logits `[N, E]` (z-loss input). */
  logits: Tensor2D;
  /** The score map z `[N, E]` that MoGE's regularizer R(z) applies to. */
  z: Tensor2D;
  /** Gates `[N, k]` (`k = decision.plan.k`), 0 for padding choices. */
  gates: Tensor2D;
  /** Auxiliary (load-balancing) loss, unweighted scalar; 0 when the router has none. */
  auxLoss: Tensor;
}

/** A router: parameters, a CPU plan from one readback, and a differentiable forward pass. */
export interface Router {
  /** Which router. */
  readonly name: RouterName;
  /** Trainable parameters by stable name. */
  readonly params: Record<string, Variable>;
  /**
   * A token's routing depends on later tokens even at evaluation (expert
   * choice): a causal LM must refuse this router.
   */
  readonly nonCausal: boolean;
  /**
   * In training, a token's routing depends on the other tokens of the batch
   * (Sinkhorn, SSR, expert choice); document it on the LM. (`similarity`
   * says false: its graph is the token's sequence, which on the one-token
   * classifier is the whole batch, in training and at evaluation alike.)
   */
  readonly batchDependentInTraining: boolean;
  /** Outside the tape: what the plan is made from. */
  select(input: RouterInput, ctx: RouterContext): Selection;
  /** On the CPU: the plan from the read-back selection values `[N * E]`. */
  plan(values: Float32Array, N: number, mode: RouterMode): RouterPlan;
  /** Inside the tape: logits, z, gates and auxiliary loss for a decision. */
  forward(input: RouterInput, decision: RouterDecision): RouterOutput;
  /** Frees the parameters. */
  dispose(): void;
}

/** Ids of the gradient tapes seen (a tape is an array tfjs replaces when a new one starts). */
const tapeIds = new WeakMap<object, number>();
let nextTapeId = 1;

/**
 * Which gradient tape tfjs records on now: 0 when none, else a number that
 * stays the same until that tape ends (nested `tf.grad` calls share one
 * tape). Two tensors computed under the same non-zero id are on one tape, so
 * a gradient flows from one through the other.
 *
 * @example
 * ```ts
 * import { tf } from "../../deps.ts";
 * import { tapeId } from "./router.ts";
 * console.log(tapeId()); // 0
 * tf.grad((x: tf.Tensor) => { console.log(tapeId() > 0); return x.square(); })(tf.scalar(2)); // true
 * ```
 */
export function tapeId(): number {
  const state = tf.engine().state as unknown as {
    gradientDepth: number;
    activeTape: object | null;
  };
  if (!(state.gradientDepth > 0) || state.activeTape == null) return 0;
  let id = tapeIds.get(state.activeTape);
  if (id === undefined) tapeIds.set(state.activeTape, id = nextTapeId++);
  return id;
}

/**
 * The router logits of `decision` when `forward` may use them for input `x`:
 * computed by `select` from the same tensor `x` on the gradient tape
 * recording now, and not freed; else null. Reusing them saves the router's
 * `X·W` matmul, the largest kernel of a top-k step at E = 400, and gives the
 * same values bit for bit. Off the tape they are never reused: the weights
 * may have changed since `select` (an optimizer step, a finite-difference
 * probe), and within one taped pass they cannot.
 *
 * @example
 * ```ts
 * import { tf } from "../../deps.ts";
 * import { createRouter, disposeDecision, logitsOnTape, routeSync } from "./mod.ts";
 * const router = createRouter("topk", { inputDim: 4, numExperts: 3, topK: 1, capacityFactor: 0 });
 * const x = tf.randomNormal([5, 4]) as tf.Tensor2D; // [N, d]
 * tf.grad((w: tf.Tensor) => {
 *   const decision = routeSync(router, { x }, { training: false });
 *   console.log(logitsOnTape(decision, x) !== null); // true: same input, same tape
 *   disposeDecision(decision);
 *   return w.square();
 * })(tf.scalar(1));
 * ```
 */
export function logitsOnTape(decision: RouterDecision, x: Tensor2D): Tensor2D | null {
  const l = decision.logits;
  if (!l || l.tensor.isDisposed || l.input !== x.id || l.tape === 0) return null;
  if (l.tape !== tapeId()) return null;
  return l.tensor;
}

/** `router.select` in a tidy scope: only the selection's tensors survive. */
function selectTidy(
  router: Router,
  input: RouterInput,
  ctx: RouterContext,
): Selection & { selected: SelectedLogits | null } {
  let mode: RouterMode = "eval";
  let hasNoise = false;
  const tape = tapeId(); // off the tape the logits are never reused: not kept
  const kept = tf.tidy(() => {
    const sel = router.select(input, ctx);
    mode = sel.mode;
    hasNoise = sel.noise !== null;
    const out = sel.noise ? [sel.values, sel.noise] : [sel.values];
    // The values are freed after the readback: keep the logits apart from them.
    if (sel.logits && tape !== 0) {
      out.push(sel.logits === sel.values ? sel.logits.clone() : sel.logits);
    }
    return out;
  });
  const logits = kept[hasNoise ? 2 : 1] as Tensor2D | undefined;
  return {
    values: kept[0] as Tensor2D,
    noise: (hasNoise ? kept[1] : null) as Tensor2D | null,
    mode,
    selected: logits ? { tensor: logits, input: input.x.id, tape } : null,
  };
}

function decide(
  router: Router,
  sel: Selection & { selected: SelectedLogits | null },
  values: Float32Array,
  N: number,
  E: number,
): RouterDecision {
  let planned: RouterPlan;
  try {
    planned = router.plan(values, N, sel.mode);
  } catch (err) {
    if (sel.noise) sel.noise.dispose();
    if (sel.selected) sel.selected.tensor.dispose();
    throw err;
  }
  const { plan, valid } = planned;
  const { k, slotOfChoice, slots, active } = plan;
  const empty = active.length * slots;
  let leftBehind = 0;
  for (let n = 0; n < N; n++) {
    let routed = false;
    for (let j = 0; j < k; j++) {
      if (valid[n * k + j] && slotOfChoice[n * k + j] !== empty) routed = true;
    }
    if (!routed) leftBehind++;
  }
  const hot = new Float32Array(N * k * E); // built here: tf.oneHot refuses E = 1
  for (let c = 0; c < N * k; c++) if (valid[c]) hot[c * E + plan.expert[c]] = 1;
  const chosen = tf.tensor2d(hot, [N * k, E]); // [N*k, E]
  return {
    router: router.name,
    mode: sel.mode,
    plan,
    valid,
    leftBehind,
    chosen,
    noise: sel.noise,
    logits: sel.selected,
  };
}

/**
 * Routes a batch: selects (no gradient), reads the selection back once, plans
 * on the CPU. Call outside the gradient tape; works on every backend.
 *
 * @example
 * ```ts
 * import { tf } from "../../deps.ts";
 * import { createRouter, disposeDecision, route } from "./mod.ts";
 * const router = createRouter("topk", { inputDim: 4, numExperts: 3, topK: 1, capacityFactor: 0 });
 * const x = tf.randomNormal([5, 4]) as tf.Tensor2D; // [N, d]
 * const decision = await route(router, { x }, { training: false });
 * decision.plan.expert; // Int32Array of 5 experts
 * disposeDecision(decision);
 * ```
 */
export async function route(
  router: Router,
  input: RouterInput,
  ctx: RouterContext,
): Promise<RouterDecision> {
  const sel = selectTidy(router, input, ctx);
  const [N, E] = sel.values.shape;
  const values = await sel.values.data() as Float32Array;
  sel.values.dispose();
  return decide(router, sel, values, N, E);
}

/**
 * {@linkcode route} with a synchronous readback (cpu and wasm only; inside a
 * gradient tape for multi-layer models). Throws on webgpu.
 *
 * @example
 * ```ts
 * import { tf } from "../../deps.ts";
 * import { createRouter, disposeDecision, routeSync } from "./mod.ts";
 * const router = createRouter("topk", { inputDim: 4, numExperts: 3, topK: 1, capacityFactor: 0 });
 * const decision = routeSync(router, { x: tf.ones([2, 4]) as tf.Tensor2D }, { training: false });
 * disposeDecision(decision);
 * ```
 */
export function routeSync(
  router: Router,
  input: RouterInput,
  ctx: RouterContext,
): RouterDecision {
  if (tf.getBackend() === "webgpu") {
    throw new Error(
      "routeSync: webgpu cannot read tensors synchronously; route with the async route() in a" +
        " pass outside the gradient tape",
    );
  }
  const sel = selectTidy(router, input, ctx);
  const [N, E] = sel.values.shape;
  const values = sel.values.dataSync() as Float32Array;
  sel.values.dispose();
  return decide(router, sel, values, N, E);
}

/**
 * Frees the tensors of a {@linkcode RouterDecision}.
 *
 * @example
 * ```ts
 * import { tf } from "../../deps.ts";
 * import { createRouter, disposeDecision, routeSync } from "./mod.ts";
 * const router = createRouter("topk", { inputDim: 2, numExperts: 2, topK: 1, capacityFactor: 0 });
 * disposeDecision(routeSync(router, { x: tf.ones([1, 2]) as tf.Tensor2D }, { training: false }));
 * ```
 */
export function disposeDecision(d: RouterDecision): void {
  d.chosen.dispose();
  if (d.noise) d.noise.dispose();
  if (d.logits) d.logits.tensor.dispose();
}

/**
 * Gates of the chosen experts read from a score tensor: `g[n, j] = Σ_e
 * scores[n, e]·chosen[n·k + j, e]` (docs/routers.md, "Common conventions": a one-hot mask instead of
 * top-k values, differentiable on every backend). Padding choices give 0.
 *
 * @param scores `[N, E]` the values gates are read from
 * @param chosen `[N * k, E]` one-hot of the choices
 * @returns `[N, k]`
 *
 * @example
 * ```ts
 * import { tf } from "../../deps.ts";
 * import { pickGates } from "./router.ts";
 * const g = pickGates(tf.tensor2d([[.7, .3]]), tf.tensor2d([[0, 1]]), 1); // [[.3]]
 * ```
 */
export function pickGates(scores: Tensor2D, chosen: Tensor2D, k: number): Tensor2D {
  const [N, E] = scores.shape;
  return tf.tidy(() =>
    tf.sum(tf.mul(scores.expandDims(1), chosen.reshape([N, k, E])), 2) as Tensor2D
  ); // [N, k]
}

/**
 * Checks the settings every router takes, throwing a clear error on the first bad one.
 *
 * @example
 * ```ts
 * import { validateRouterConfig } from "./router.ts";
 * validateRouterConfig({ inputDim: 8, numExperts: 4, topK: 2, capacityFactor: 1 });
 * ```
 */
export function validateRouterConfig(c: RouterConfig): void {
  checkInteger("inputDim", c.inputDim, 1);
  checkInteger("numExperts", c.numExperts, 1);
  checkInteger("topK", c.topK, 1, c.numExperts);
  checkNumber("capacityFactor", c.capacityFactor === Infinity ? 0 : c.capacityFactor, { min: 0 });
  if (c.slotMultiple !== undefined) checkInteger("slotMultiple", c.slotMultiple, 1);
}

let uniqueId = 0;

/**
 * Creates router variables with stable names `${prefix}.router.${name}`
 * (the initializer's tensor is disposed).
 *
 * @example
 * ```ts
 * import { tf } from "../../deps.ts";
 * import { ParamMaker } from "./router.ts";
 * const make = new ParamMaker({ seed: 3, prefix: "l0" });
 * const w = make.normal("w", [4, 2], 0.5); // l0.router.w
 * make.params["l0.router.w"] === w; // true
 * tf.dispose(Object.values(make.params));
 * ```
 */
export class ParamMaker {
  /** The variables made so far, by name. */
  readonly params: Record<string, Variable> = {};
  readonly #prefix: string;
  #seed: number;

  /**
   * Starts an empty parameter set.
   *
   * @param init seed and name prefix
   */
  constructor(init: RouterInit) {
    this.#prefix = init.prefix ?? "moe";
    this.#seed = init.seed ?? 0;
  }

  /** A variable holding `t` (which is disposed). */
  variable(name: string, t: Tensor): Variable {
    const full = `${this.#prefix}.router.${name}`;
    const v = tf.variable(t, true, `${full}#router${uniqueId++}`);
    t.dispose();
    this.params[full] = v;
    return v;
  }

  /** A variable drawn from N(0, std²), seeded. */
  normal(name: string, shape: number[], std: number): Variable {
    return this.variable(
      name,
      tf.randomNormal(shape, 0, std, "float32", tfSeed(this.#seed++)),
    );
  }

  /** The next seed (for initializers other than the normal). */
  nextSeed(): number {
    return this.#seed++;
  }
}

/**
 * Linear router logits `L = X·W_g (+ b)`, `[N, E]`.
 *
 * @example
 * ```ts
 * import { tf } from "../../deps.ts";
 * import { linearLogits } from "./router.ts";
 * linearLogits(tf.tensor2d([[1, 2]]), tf.tensor2d([[1, 0], [0, 1]]), null); // [[1, 2]]
 * ```
 */
export function linearLogits(x: Tensor2D, w: Tensor, b: Tensor | null): Tensor2D {
  return tf.tidy(() => {
    const l = tf.matMul(x, w as Tensor2D); // [N, E]
    return (b ? tf.add(l, b) : l) as Tensor2D;
  });
}

/** Disposes every variable of a parameter record. */
export function disposeParams(params: Record<string, Variable>): void {
  for (const v of Object.values(params)) v.dispose();
}
