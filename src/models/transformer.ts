/**
 * The Transformer parts the ViT (`vit.ts`) and the language model (`lm.ts`)
 * share: layer normalization, scaled dot-product multi-head attention, and
 * the routing drivers that run a model's forward generator, answering each
 * MoE layer's request with a routed batch.
 *
 * A model's forward pass is a generator that yields one request per MoE
 * layer (its router logits) and receives that layer's `RoutedBatch`. The
 * drivers here answer it:
 *
 * - {@linkcode routeInTape}: inside the gradient tape, in the one forward
 *   pass: `routeSync` on cpu and wasm (a synchronous readback is allowed
 *   there), `routeDevice` on webgpu (planned on the GPU, no readback);
 * - {@linkcode driveForward} / {@linkcode driveForwardAsync}: run a generator
 *   with any answer (a replay of recorded batches, the async `route` for
 *   evaluation), freeing the generator if the answer throws.
 *
 * @module
 */

import { tf } from "../deps.ts";
import type { RoutedBatch } from "../moe/moe_layer.ts";
import type { RouterInput, Tensor3D } from "../moe/routers/router.ts";
import type { Tensor, Tensor2D } from "../types.ts";

export type { RoutedBatch, RoutedPlan } from "../moe/moe_layer.ts";
export type { RoutingPlan } from "../moe/routing.ts";
export type { RouterInput, Tensor3D } from "../moe/routers/router.ts";
export type { RowRoute } from "../moe/dispatch.ts";
export type { Tensor, Tensor1D, Tensor2D } from "../types.ts";

/**
 * Layer normalization over the last axis (Ba et al. 2016):
 * (x − mean) / sqrt(var + ε) · gain + bias (ε = 1e-6 as ViT; the LM uses 1e-5).
 * `scale` picks the float arithmetic: "div" divides by sqrt(var + ε) (the
 * ViT's), "rsqrt" multiplies by rsqrt(var + ε) (the LM's); they differ in
 * the last bits only, and each model keeps its own so its results stay put.
 *
 * @example
 * ```ts
 * import { useBackend } from "../backend.ts";
 * await useBackend("cpu");
 * import { tf } from "../deps.ts";
 * import { layerNorm } from "./transformer.ts";
 * const y = layerNorm(tf.tensor2d([[1, 3]]), tf.ones([2]), tf.zeros([2])); // ≈ [[-1, 1]]
 * ```
 */
export function layerNorm(
  x: Tensor,
  gain: Tensor,
  bias: Tensor,
  eps = 1e-6,
  scale: "div" | "rsqrt" = "div",
): Tensor {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, -1, true);
    const normed = scale === "div"
      ? tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, eps)))
      : tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps)));
    return tf.add(tf.mul(normed, gain), bias);
  });
}

/**
 * A dense MLP's activation: ReLU, tanh, or GELU in its tanh approximation
 * (Hendrycks & Gimpel 2016), as the MoE layer's experts.
 *
 * @example
 * ```ts
 * import { useBackend } from "../backend.ts";
 * await useBackend("cpu");
 * import { tf } from "../deps.ts";
 * import { activate } from "./transformer.ts";
 * activate(tf.tensor1d([-1, 2]), "relu"); // [0, 2]
 * ```
 */
export function activate(x: Tensor, kind: "gelu" | "relu" | "tanh"): Tensor {
  if (kind === "relu") return tf.relu(x);
  if (kind === "tanh") return tf.tanh(x);
  const cube = tf.mul(tf.square(x), x); // cheaper than tf.pow on wasm
  const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, cube)));
  return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
}

/** Options of {@linkcode attend}. */
export interface AttendOptions {
  /**
   * When given, receives the head-averaged attention matrix `[B, T, T]`
   * (before dropout, rows sum to 1; `tf.keep`-ed: the caller disposes it),
   * the graph of the `attention` router.
   */
  keep?: { matrix?: Tensor3D };
  /** Added to the scaled scores `[T, T]` (e.g. −1e9 above the diagonal: causal). */
  mask?: Tensor;
  /** Dropout on the attention weights `{ rate, seed }` (omit at eval). */
  dropout?: { rate: number; seed: number };
}

/**
 * Scaled dot-product attention of H heads (Vaswani et al. 2017, eq. 1):
 * softmax(Q Kᵀ / sqrt(d/H) + mask) V per head, the heads concatenated (the
 * output projection is the caller's).
 *
 * @param q queries `[B*T, d]`, sequence-major
 * @param k keys `[B*T, d]`
 * @param v values `[B*T, d]`
 * @param tokens T (tokens per sequence)
 * @param numHeads H (must divide d)
 * @returns the concatenated heads `[B*T, d]`
 *
 * @example
 * ```ts
 * import { useBackend } from "../backend.ts";
 * await useBackend("cpu");
 * import { tf } from "../deps.ts";
 * import { attend } from "./transformer.ts";
 * const x = tf.randomNormal([2 * 3, 4]) as tf.Tensor2D; // B = 2, T = 3, d = 4
 * console.log(attend(x, x, x, 3, 2).shape); // [6, 4]
 * ```
 */
export function attend(
  q: Tensor2D,
  k: Tensor2D,
  v: Tensor2D,
  tokens: number,
  numHeads: number,
  opts: AttendOptions = {},
): Tensor2D {
  return tf.tidy(() => {
    const [N, d] = q.shape;
    const B = N / tokens;
    const dh = d / numHeads;
    const heads = (t: Tensor) =>
      t.reshape([B, tokens, numHeads, dh]).transpose([0, 2, 1, 3])
        .reshape([B * numHeads, tokens, dh]) as Tensor3D; // [B*H, T, dh]
    const scaled = tf.mul(tf.matMul(heads(q), heads(k), false, true), 1 / Math.sqrt(dh));
    let a = tf.softmax(opts.mask ? tf.add(scaled, opts.mask) : scaled); // [B*H, T, T]
    if (opts.keep) {
      // The head-averaged matrix before dropout (rows sum to 1), for the attention router.
      opts.keep.matrix = tf.keep(tf.mean(a.reshape([B, numHeads, tokens, tokens]), 1)) as Tensor3D; // [B, T, T]
    }
    if (opts.dropout && opts.dropout.rate > 0) {
      a = tf.dropout(a, opts.dropout.rate, undefined, opts.dropout.seed);
    }
    return tf.matMul(a as Tensor3D, heads(v)) // [B*H, T, dh]
      .reshape([B, numHeads, tokens, dh]).transpose([0, 2, 1, 3]).reshape([N, d]) as Tensor2D;
  });
}

/** Weights of one multi-head self-attention with a fused QKV projection. */
export interface AttentionWeights {
  /** `[d, 3d]`: the query, key and value projections side by side. */
  qkvW: Tensor;
  /** `[3d]`. */
  qkvB: Tensor;
  /** `[d, d]`: output projection. */
  projW: Tensor;
  /** `[d]`. */
  projB: Tensor;
}

/**
 * Multi-head self-attention with a fused, biased QKV projection and a biased
 * output projection (ViT): {@linkcode attend} over `[B, T, d]` tokens, no mask.
 *
 * @param x tokens `[B*T, d]`, image-major
 * @param tokens T (tokens per image)
 * @param dropout `{ rate, seed }` of the dropout on the attention weights (omit at eval)
 * @param keep when given, receives the head-averaged attention matrix `[B, T, T]`
 *   (see {@linkcode AttendOptions.keep})
 * @returns `[B*T, d]`
 *
 * @example
 * ```ts
 * import { useBackend } from "../backend.ts";
 * await useBackend("cpu");
 * import { tf } from "../deps.ts";
 * import { multiHeadAttention } from "./transformer.ts";
 * const d = 4;
 * const w = {
 *   qkvW: tf.randomNormal([d, 3 * d]), qkvB: tf.zeros([3 * d]),
 *   projW: tf.randomNormal([d, d]), projB: tf.zeros([d]),
 * };
 * const y = multiHeadAttention(tf.randomNormal([2 * 3, d]) as tf.Tensor2D, 3, 2, w);
 * console.log(y.shape); // [6, 4]
 * ```
 */
export function multiHeadAttention(
  x: Tensor2D,
  tokens: number,
  numHeads: number,
  w: AttentionWeights,
  dropout?: { rate: number; seed: number },
  keep?: { matrix?: Tensor3D },
): Tensor2D {
  return tf.tidy(() => {
    const qkv = tf.add(tf.matMul(x, w.qkvW as Tensor2D), w.qkvB); // [B*T, 3d]
    const [q, k, v] = tf.split(qkv, 3, 1) as Tensor2D[]; // [B*T, d] each
    const o = attend(q, k, v, tokens, numHeads, { dropout, keep }); // [B*T, d]
    return tf.add(tf.matMul(o, w.projW as Tensor2D), w.projB) as Tensor2D;
  });
}

/**
 * `tf.keep`s every tensor of a routed batch (found by walking it, so this
 * follows `RoutedBatch` as it grows), so that it outlives the scope it was
 * made in (a tidy, or a gradient tape's forward scope); `disposeRouted`
 * frees it.
 *
 * @example
 * ```ts
 * import { useBackend } from "../backend.ts";
 * await useBackend("cpu");
 * import { tf } from "../deps.ts";
 * import { disposeRouted, MoeLayer, type RoutedBatch } from "../moe/moe_layer.ts";
 * import { keepRouted } from "./transformer.ts";
 * const layer = new MoeLayer({ inputDim: 2, hiddenDim: 2, numExperts: 2, topK: 1,
 *   routingOrder: "softmax-topk", routerBias: false, activation: "relu", capacityFactor: 0,
 *   loadBalanceWeight: 0 });
 * const kept: RoutedBatch[] = [];
 * tf.tidy(() => {
 *   kept.push(keepRouted(layer.routeSync({ x: tf.tensor2d([[1, 0]]) }, { training: false })));
 * }); // the batch outlives the tidy
 * disposeRouted(kept[0]);
 * ```
 */
export function keepRouted(r: RoutedBatch): RoutedBatch {
  const walk = (v: unknown, depth: number): void => {
    if (v instanceof tf.Tensor) {
      tf.keep(v);
    } else if (depth < 4 && v !== null && typeof v === "object" && !ArrayBuffer.isView(v)) {
      for (const x of Array.isArray(v) ? v : Object.values(v)) walk(x, depth + 1);
    }
  };
  walk(r, 0);
  return r;
}

/** What {@linkcode routeInTape} needs of a MoE layer (a `MoeLayer` has it). */
export interface InTapeRouter {
  /** The layer's router (`router.name`: which one). */
  readonly router: { readonly name: string };
  /** Plans on the CPU after a synchronous readback (cpu, wasm). */
  routeSync(
    input: RouterInput,
    options: { training: boolean; noiseSeed?: number; step?: number },
  ): RoutedBatch;
  /** Plans on the device, no readback (webgpu, top-k router). */
  routeDevice(
    input: RouterInput,
    options: { training: boolean; noiseSeed?: number; stats?: boolean },
  ): RoutedBatch;
}

/**
 * Routes one MoE layer inside the gradient tape, in the one forward pass,
 * from its router input (the layer computes the router's scores):
 * `routeSync` (CPU plan after a synchronous readback) on cpu and wasm,
 * `routeDevice` (the top-k router's logits and a GPU plan, no readback;
 * with the `[2, E]` counts for a `RoutingStatsLog`) on webgpu. On webgpu
 * only the top-k router plans on the device; the other routers plan on the
 * CPU after an asynchronous readback, which cannot happen inside the tape:
 * for them this throws, and the model's training step plans them first
 * (`hostPlanned`, one readback per layer) and replays the plans.
 * The batch's tensors are kept, so the tape's forward scope leaves them for
 * the backward pass; free them with `disposeRouted` after the step.
 *
 * @example
 * ```ts
 * import { useBackend } from "../backend.ts";
 * await useBackend("cpu");
 * import { tf } from "../deps.ts";
 * import { disposeRouted, MoeLayer } from "../moe/moe_layer.ts";
 * import { routeInTape } from "./transformer.ts";
 * const layer = new MoeLayer({ inputDim: 2, hiddenDim: 2, numExperts: 2, topK: 1,
 *   routingOrder: "softmax-topk", routerBias: false, activation: "relu", capacityFactor: 0,
 *   loadBalanceWeight: 0 });
 * const x = tf.tensor2d([[1, 0], [0, 1]]); // [N, d]
 * const r = routeInTape(layer, { x }, { training: false, noiseSeed: 0 });
 * console.log(r.plan.N); // 2
 * disposeRouted(r);
 * ```
 */
export function routeInTape(
  layer: InTapeRouter,
  input: RouterInput,
  opts: { training: boolean; noiseSeed: number; step?: number },
): RoutedBatch {
  const options = { training: opts.training, noiseSeed: opts.noiseSeed, step: opts.step };
  if (tf.getBackend() === "webgpu") {
    if (layer.router.name !== "topk") {
      throw new Error(
        `routeInTape: router "${layer.router.name}" plans on the CPU, which webgpu cannot read` +
          " back inside the gradient tape; plan it before the taped pass (the model's training" +
          " step does: one readback per layer)",
      );
    }
    return keepRouted(layer.routeDevice(input, { ...options, stats: true }));
  }
  return keepRouted(layer.routeSync(input, options));
}

/**
 * True when a training step on the current backend must plan the routing
 * before its taped pass (webgpu with a router other than top-k: a CPU plan
 * after an asynchronous readback, then a replay in the tape); false when
 * {@linkcode routeInTape} routes inside the tape.
 *
 * @example
 * ```ts
 * import { needsHostPlan } from "./transformer.ts";
 * console.log(needsHostPlan([{ router: { name: "topk" } }])); // false
 * ```
 */
export function needsHostPlan(layers: Iterable<{ readonly router: { readonly name: string } }>) {
  if (tf.getBackend() !== "webgpu") return false;
  for (const l of layers) if (l.router.name !== "topk") return true;
  return false;
}

/** A forward generator being driven: its pending request, and the batches sent so far. */
class Drive<Req, Out, R> {
  readonly routed: R[] = [];
  #next: IteratorResult<Req, Out>;

  constructor(readonly gen: Generator<Req, Out, R>, readonly dispose: (r: R[]) => void) {
    this.#next = gen.next();
  }

  /** The pending request, or null once the pass has returned. */
  get request(): Req | null {
    return this.#next.done ? null : this.#next.value;
  }

  /** Answers the pending request. */
  send(batch: R): void {
    this.routed.push(batch);
    this.#next = this.gen.next(batch);
  }

  /** The finished pass. */
  result(): { output: Out; routed: R[] } {
    return { output: this.#next.value as Out, routed: this.routed };
  }

  /** Abandons the pass: the generator frees what it holds, `dispose` the batches. */
  abandon(): void {
    this.gen.return(undefined as unknown as Out);
    this.dispose(this.routed);
  }
}

/**
 * Runs a model's forward generator synchronously, answering request i with
 * `answer(request, i)`; returns the model's output and the routed batches in
 * order. If anything throws, the generator is returned (it frees what it
 * holds) and the batches made so far are freed with `dispose`.
 *
 * @example
 * ```ts
 * import { driveForward } from "./transformer.ts";
 * function* gen(): Generator<number, string, number> { return `got ${yield 1}`; }
 * console.log(driveForward(gen(), (q) => q + 1).output); // "got 2"
 * ```
 */
export function driveForward<Req, Out, R = RoutedBatch>(
  gen: Generator<Req, Out, R>,
  answer: (req: Req, index: number) => R,
  dispose: (r: R[]) => void = () => {},
): { output: Out; routed: R[] } {
  const d = new Drive(gen, dispose);
  try {
    for (let i = 0; d.request !== null; i++) d.send(answer(d.request, i));
    return d.result();
  } catch (e) {
    d.abandon();
    throw e;
  }
}

/**
 * {@linkcode driveForward} with an asynchronous answer (e.g. `MoeLayer.route`,
 * which awaits a readback): for passes outside a gradient tape.
 *
 * @example
 * ```ts
 * import { driveForwardAsync } from "./transformer.ts";
 * function* gen(): Generator<number, string, number> { return `got ${yield 1}`; }
 * console.log((await driveForwardAsync(gen(), async (q) => q + 1)).output); // "got 2"
 * ```
 */
export async function driveForwardAsync<Req, Out, R = RoutedBatch>(
  gen: Generator<Req, Out, R>,
  answer: (req: Req, index: number) => Promise<R>,
  dispose: (r: R[]) => void = () => {},
): Promise<{ output: Out; routed: R[] }> {
  const d = new Drive(gen, dispose);
  try {
    for (let i = 0; d.request !== null; i++) d.send(await answer(d.request, i));
    return d.result();
  } catch (e) {
    d.abandon();
    throw e;
  }
}
