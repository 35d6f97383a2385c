/**
 * The optimizer of the MoGE recipe (the Fashion-MNIST experiment of MoGE,
 * Kang et al., arXiv 2504.09265, Sec. 2.4: "AdamW lr 1e-3, weight decay 0.05"). tfjs ships Adam but not AdamW, so this is a small AdamW.
 *
 * It implements AdamW with decoupled weight decay (Loshchilov & Hutter,
 * "Decoupled Weight Decay Regularization", ICLR 2019), in the form PyTorch's
 * `torch.optim.AdamW` uses, where the decay is scaled by the learning rate
 * (so it follows the schedule). For each variable w with gradient g, at step
 * t = 1, 2, ...:
 *
 *     m = β1·m + (1 − β1)·g
 *     v = β2·v + (1 − β2)·g²
 *     m̂ = m / (1 − β1^t),  v̂ = v / (1 − β2^t)
 *     w = w − lr·(m̂ / (sqrt(v̂) + ε) + λ·w)
 *
 * with λ = 0 for variables excluded from decay (e.g. biases).
 *
 * On the wasm and cpu backends the update runs fused: one pass over the
 * Float32Arrays of w, g, m and v per variable, in plain TypeScript, instead
 * of ~14 tfjs kernels per variable (about 1,000 kernels per step for a model
 * of 64 experts). The fused loop computes in float32, rounding every
 * operation as the kernel path does, in the same order as the formula above
 * with the bias corrections taken out as constant factors: the two agree to
 * float32 rounding (tested). On wasm a WebAssembly SIMD copy of the loop runs
 * on tfjs-wasm's own memory (`../ops/adamw_simd.ts`), four lanes at a time,
 * bit for bit the same numbers; the TypeScript loop does the last n mod 4
 * elements there, and the whole update on cpu. (Until 2026-12 both loops
 * computed in float64 and rounded once per stored value: closer to the exact
 * update, but on wasm the float32 lanes take the loop from 39 to 23 ms for 8.3
 * million weights; the TypeScript loop, which only the cpu backend runs in
 * full, takes 14.6 instead of 7.3 ms for a million: see
 * `bench/results/2026-12-02-adamw-float32-lanes.md`.) On webgpu the update
 * runs as tfjs kernels.
 *
 * @module
 */

import { simdAdamW, type SimdAdamWFn } from "../ops/adamw_simd.ts";
import { wasmBackendMemory } from "../ops/wasm_bytes.ts";
import { tf } from "../deps.ts";
import type { Tensor, Variable } from "../types.ts";
import { checkInteger, checkNumber } from "../validate.ts";

/** Settings of {@linkcode AdamW}. */
export interface AdamWOptions {
  /** Learning rate used when `step` is called without one (> 0). */
  learningRate: number;
  /** Decay of the first-moment average, in [0, 1) (default 0.9). */
  beta1?: number;
  /** Decay of the second-moment average, in [0, 1) (default 0.999). */
  beta2?: number;
  /** ε added to sqrt(v̂), > 0 (default 1e-8). */
  epsilon?: number;
  /** Decoupled weight decay λ >= 0 (default 0.05, the MoGE recipe's value). */
  weightDecay?: number;
  /**
   * Names of variables that get no weight decay, as a predicate on the name
   * (default: none excluded). Example: `(name) => name.endsWith("bias")`.
   */
  excludeFromWeightDecay?: (name: string) => boolean;
  /**
   * Run the update as one fused loop over the variables' memory on wasm and
   * cpu (default true; webgpu always uses tfjs kernels). The paths agree to
   * float32 rounding; `false` keeps the kernel path, e.g. to compare speed.
   */
  fused?: boolean;
}

/**
 * The optimizer state: the step count and the moment estimates, keyed like
 * the variables. Save it with the model to resume training exactly.
 */
export interface AdamWState {
  /** Number of steps taken so far (the t of the last update). */
  step: number;
  /** First-moment estimates m, one per variable updated so far. */
  m: Record<string, Tensor>;
  /** Second-moment estimates v, one per variable updated so far. */
  v: Record<string, Tensor>;
}

/**
 * AdamW with decoupled weight decay over a named set of `tf.Variable`s.
 *
 * @example
 * ```ts
 * import { AdamW } from "./optim.ts";
 * import { tf } from "../deps.ts";
import type { Tensor } from "../types.ts";
 * import { useBackend } from "../backend.ts";
 *
 * await useBackend("cpu");
 * const vars = { w: tf.variable(tf.tensor1d([1, -2])), bias: tf.variable(tf.scalar(0.5)) };
 * const opt = new AdamW({ learningRate: 0.1, excludeFromWeightDecay: (n) => n === "bias" });
 * for (let i = 0; i < 3; i++) {
 *   const { grads } = tf.variableGrads(
 *     () => tf.sum(tf.square(tf.add(vars.w, vars.bias))) as tf.Scalar,
 *     [vars.w, vars.bias],
 *   );
 *   opt.step({ w: grads[vars.w.name], bias: grads[vars.bias.name] }, vars);
 *   tf.dispose(grads);
 * }
 * console.log(await vars.w.data());
 * opt.dispose();
 * tf.dispose(vars);
 * ```
 */
export class AdamW {
  /** Default learning rate. */
  readonly learningRate: number;
  /** β1. */
  readonly beta1: number;
  /** β2. */
  readonly beta2: number;
  /** ε. */
  readonly epsilon: number;
  /** Decoupled weight decay λ. */
  readonly weightDecay: number;
  /**
   * Whether the update runs fused on wasm and cpu (see {@linkcode AdamWOptions.fused});
   * may be switched between steps (the state is the same either way).
   */
  fused: boolean;

  /**
   * Whether an update on the current backend runs the WebAssembly SIMD loop
   * (fused, on wasm, where the runtime has WebAssembly SIMD; see
   * `../ops/adamw_simd.ts`).
   *
   * @example
   * ```ts
   * import { AdamW } from "./optim.ts";
   * console.log(typeof new AdamW({ learningRate: 1e-3 }).simd); // "boolean"
   * ```
   */
  get simd(): boolean {
    return this.fused && (hostMemory()?.simd ?? null) !== null;
  }
  #exclude: (name: string) => boolean;
  #step = 0;
  #m = new Map<string, tf.Variable>();
  #v = new Map<string, tf.Variable>();
  #disposed = false;

  /**
   * Creates the optimizer; moments are allocated at the first update of each
   * variable.
   *
   * @example
   * ```ts
   * import { AdamW } from "./optim.ts";
   * const opt = new AdamW({ learningRate: 1e-3, weightDecay: 0.05 });
   * console.log(opt.beta1, opt.beta2, opt.epsilon); // 0.9 0.999 1e-8
   * ```
   */
  constructor(options: AdamWOptions) {
    const {
      learningRate,
      beta1 = 0.9,
      beta2 = 0.999,
      epsilon = 1e-8,
      weightDecay = 0.05,
      excludeFromWeightDecay = () => false,
      fused = true,
    } = options;
    checkNumber("learningRate", learningRate, { min: 0, exclusiveMin: true });
    checkBeta("beta1", beta1);
    checkBeta("beta2", beta2);
    checkNumber("epsilon", epsilon, { min: 0, exclusiveMin: true });
    checkNumber("weightDecay", weightDecay, { min: 0 });
    if (typeof excludeFromWeightDecay !== "function") {
      throw new TypeError(
        `excludeFromWeightDecay = ${String(excludeFromWeightDecay)} is invalid:` +
          ` it must be a function (name: string) => boolean`,
      );
    }
    this.learningRate = learningRate;
    this.beta1 = beta1;
    this.beta2 = beta2;
    this.epsilon = epsilon;
    this.weightDecay = weightDecay;
    this.#exclude = excludeFromWeightDecay;
    this.fused = fused;
  }

  /**
   * The number of steps taken (0 before the first).
   *
   * @example
   * ```ts
   * import { AdamW } from "./optim.ts";
   * console.log(new AdamW({ learningRate: 1e-3 }).iterations); // 0
   * ```
   */
  get iterations(): number {
    return this.#step;
  }

  /**
   * The weight decay applied to variable `name` (0 when excluded).
   *
   * @example
   * ```ts
   * import { AdamW } from "./optim.ts";
   * const opt = new AdamW({ learningRate: 1e-3, excludeFromWeightDecay: (n) => n.endsWith("b") });
   * console.log(opt.decayFor("w"), opt.decayFor("b")); // 0.05 0
   * ```
   */
  decayFor(name: string): number {
    return this.#exclude(name) ? 0 : this.weightDecay;
  }

  /**
   * One AdamW update of every variable that has a gradient in `grads`
   * (variables without one are left alone, and so are their moments). The
   * gradients are not disposed: they stay the caller's.
   *
   * @param grads gradients keyed by variable name, each the shape of its variable.
   * @param vars the variables, keyed by name.
   * @param lr learning rate for this step (e.g. from a schedule); defaults to
   * `learningRate`.
   * @example
   * ```ts
   * import { AdamW } from "./optim.ts";
   * import { tf } from "../deps.ts";
import type { Tensor } from "../types.ts";
   * import { useBackend } from "../backend.ts";
   * await useBackend("cpu");
   * const w = tf.variable(tf.tensor1d([1, 2]));
   * const opt = new AdamW({ learningRate: 0.01, weightDecay: 0 });
   * const g = tf.tensor1d([0.5, -0.5]);
   * opt.step({ w: g }, { w }, 0.01);
   * console.log(await w.data()); // [0.99, 2.01] (the first Adam step moves by lr)
   * tf.dispose([w, g]);
   * opt.dispose();
   * ```
   */
  step(
    grads: Record<string, Tensor>,
    vars: Record<string, Variable>,
    lr: number = this.learningRate,
  ): void {
    if (this.#disposed) throw new Error("AdamW.step: this optimizer has been disposed");
    checkNumber("lr", lr, { min: 0 });
    const names = Object.keys(grads);
    for (const name of names) {
      const g = grads[name];
      const w = vars[name];
      if (!w) {
        throw new RangeError(
          `AdamW.step: gradient "${name}" has no variable: known variables are ` +
            Object.keys(vars).map((n) => `"${n}"`).join(", "),
        );
      }
      if (!(g instanceof tf.Tensor)) {
        throw new TypeError(`AdamW.step: gradient "${name}" is not a tf.Tensor`);
      }
      if (!tf.util.arraysEqual(g.shape, w.shape)) {
        throw new RangeError(
          `AdamW.step: gradient "${name}" has shape [${g.shape}] but its variable has` +
            ` shape [${w.shape}]`,
        );
      }
      if (w.dtype !== "float32") {
        throw new TypeError(
          `AdamW.step: variable "${name}" has dtype ${w.dtype}: only float32 variables can be optimized`,
        );
      }
    }
    // Moments for every variable from the first step on, also those without a
    // gradient this step (an idle expert): the state is then fixed in size.
    for (const [name, w] of Object.entries(vars)) {
      this.#moment(this.#m, "m", name, w);
      this.#moment(this.#v, "v", name, w);
    }
    const t = this.#step + 1;
    const b1 = this.beta1, b2 = this.beta2;
    const bc1 = 1 - b1 ** t;
    const bc2 = 1 - b2 ** t;
    const memory = this.fused ? hostMemory() : null;
    for (const name of names) {
      const w = vars[name];
      const g = grads[name];
      const m = this.#moment(this.#m, "m", name, w);
      const v = this.#moment(this.#v, "v", name, w);
      const wd = this.decayFor(name);
      if (memory && g.dtype === "float32") {
        fusedAdamW(memory, w, g, m, v, { b1, b2, bc1, bc2, eps: this.epsilon, wd, lr });
        continue;
      }
      tf.tidy(() => {
        const gf = g.dtype === "float32" ? g : tf.cast(g, "float32");
        const newM = tf.add(tf.mul(m, b1), tf.mul(gf, 1 - b1));
        const newV = tf.add(tf.mul(v, b2), tf.mul(tf.square(gf), 1 - b2));
        const adam = tf.div(tf.div(newM, bc1), tf.add(tf.sqrt(tf.div(newV, bc2)), this.epsilon));
        const update = wd === 0 ? adam : tf.add(adam, tf.mul(w, wd));
        m.assign(newM);
        v.assign(newV);
        w.assign(tf.sub(w, tf.mul(update, lr)));
      });
    }
    this.#step = t;
  }

  #moment(
    store: Map<string, tf.Variable>,
    kind: string,
    name: string,
    w: tf.Variable,
  ): tf.Variable {
    let s = store.get(name);
    if (s && !tf.util.arraysEqual(s.shape, w.shape)) {
      throw new RangeError(
        `AdamW.step: variable "${name}" has shape [${w.shape}] but its saved ${kind} has` +
          ` shape [${s.shape}]`,
      );
    }
    if (!s) {
      s = tf.tidy(() => tf.variable(tf.zerosLike(w), false));
      store.set(name, s);
    }
    return s;
  }

  /**
   * The current state. The tensors are the optimizer's own: read them (e.g.
   * to save a checkpoint) but do not dispose them; they stay valid until the
   * next `step`, `setState` or `dispose`.
   *
   * @example
   * ```ts
   * import { AdamW } from "./optim.ts";
   * const state = new AdamW({ learningRate: 1e-3 }).getState();
   * console.log(state.step, Object.keys(state.m)); // 0 []
   * ```
   */
  getState(): AdamWState {
    const m: Record<string, Tensor> = {};
    const v: Record<string, Tensor> = {};
    for (const [name, t] of this.#m) m[name] = t;
    for (const [name, t] of this.#v) v[name] = t;
    return { step: this.#step, m, v };
  }

  /**
   * Replaces the state with a copy of `state` (the caller keeps ownership of
   * the tensors passed in). `m` and `v` must name the same variables.
   *
   * @example
   * ```ts
   * import { AdamW } from "./optim.ts";
   * import { tf } from "../deps.ts";
import type { Tensor } from "../types.ts";
   * import { useBackend } from "../backend.ts";
   * await useBackend("cpu");
   * const m = { w: tf.zeros([2]) }, v = { w: tf.ones([2]) };
   * const opt = new AdamW({ learningRate: 1e-3 });
   * opt.setState({ step: 10, m, v });
   * console.log(opt.iterations); // 10
   * tf.dispose([m.w, v.w]);
   * opt.dispose();
   * ```
   */
  setState(state: AdamWState): void {
    if (this.#disposed) throw new Error("AdamW.setState: this optimizer has been disposed");
    checkInteger("state.step", state?.step, 0);
    const mNames = Object.keys(state.m ?? {}).sort();
    const vNames = Object.keys(state.v ?? {}).sort();
    if (mNames.join("\u0000") !== vNames.join("\u0000")) {
      throw new RangeError(
        `AdamW.setState: state.m names [${mNames}] and state.v names [${vNames}] must be the same`,
      );
    }
    for (const name of mNames) {
      for (const [kind, t] of [["m", state.m[name]], ["v", state.v[name]]] as const) {
        if (!(t instanceof tf.Tensor) || t.dtype !== "float32") {
          throw new TypeError(
            `AdamW.setState: state.${kind}["${name}"] must be a float32 tf.Tensor`,
          );
        }
      }
      if (!tf.util.arraysEqual(state.m[name].shape, state.v[name].shape)) {
        throw new RangeError(
          `AdamW.setState: state.m["${name}"] has shape [${state.m[name].shape}] but` +
            ` state.v["${name}"] has shape [${state.v[name].shape}]`,
        );
      }
    }
    this.#clear();
    for (const name of mNames) {
      this.#m.set(name, tf.tidy(() => tf.variable(state.m[name].clone(), false)));
      this.#v.set(name, tf.tidy(() => tf.variable(state.v[name].clone(), false)));
    }
    this.#step = state.step;
  }

  #clear(): void {
    for (const t of this.#m.values()) t.dispose();
    for (const t of this.#v.values()) t.dispose();
    this.#m.clear();
    this.#v.clear();
  }

  /**
   * Frees the moment tensors. The optimizer cannot be used afterwards.
   *
   * @example
   * ```ts
   * import { AdamW } from "./optim.ts";
   * const opt = new AdamW({ learningRate: 1e-3 });
   * opt.dispose();
   * ```
   */
  dispose(): void {
    this.#clear();
    this.#disposed = true;
  }
}

function checkBeta(name: string, value: number): void {
  checkNumber(name, value, { min: 0 });
  if (value >= 1) {
    throw new RangeError(`${name} = ${value} is invalid: ${name} must be in [0, 1)`);
  }
}

/** Where the new values of a tensor are written by {@linkcode fusedAdamW}. */
interface Target {
  /** The tensor to fill: the variable itself, or a new tensor to assign to it. */
  tensor: Tensor;
  /** True when `tensor` is the variable itself (nothing to commit). */
  inPlace: boolean;
}

/** Direct access to tensors' float32 memory on the wasm and cpu backends. */
interface HostMemory {
  /**
   * Where to write t's new values: its own memory when `inPlace` is allowed
   * and nothing else shares it, otherwise a new tensor (allocated now).
   */
  target(t: tf.Variable, inPlace: boolean): Target;
  /** A view of t's values; take views after all `target` calls (the wasm heap may move). */
  view(t: Tensor): Float32Array;
  /** The SIMD loop on this backend's memory (wasm), or null. */
  simd: SimdAdamWFn | null;
  /** Byte offset of t's values in that memory (wasm). */
  offset(t: Tensor): number;
}

interface WasmBackendLike {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: unknown): { memoryOffset: number } };
  refCount(dataId: unknown): number;
  makeOutput(shape: number[], dtype: string): tf.TensorInfo;
}

interface CpuBackendLike {
  data: { get(dataId: unknown): { values?: unknown } };
}

function commit(t: tf.Variable, target: Target): void {
  if (target.inPlace) return;
  t.assign(target.tensor);
  target.tensor.dispose();
}

/** The {@linkcode HostMemory} of the current backend, or null on webgpu. */
function hostMemory(): HostMemory | null {
  const name = tf.getBackend();
  if (name === "wasm") {
    const b = tf.backend() as unknown as WasmBackendLike;
    return {
      target: (t, inPlace) =>
        inPlace && b.refCount(t.dataId) === 1 ? { tensor: t, inPlace: true } : {
          tensor: tf.engine().makeTensorFromTensorInfo(b.makeOutput(t.shape, "float32")),
          inPlace: false,
        },
      view: (t) =>
        new Float32Array(b.wasm.HEAPU8.buffer, b.dataIdMap.get(t.dataId).memoryOffset, t.size),
      simd: simdAdamW(wasmBackendMemory(b)),
      offset: (t) => b.dataIdMap.get(t.dataId).memoryOffset,
    };
  }
  if (name === "cpu") {
    // The cpu backend hands its own arrays to data()/dataSync() callers, so
    // new arrays replace the old ones instead of writing into them.
    const b = tf.backend() as unknown as CpuBackendLike;
    return {
      target: (t) => ({ tensor: tf.tensor(new Float32Array(t.size), t.shape), inPlace: false }),
      view: (t) => {
        const values = b.data.get(t.dataId).values;
        return values instanceof Float32Array ? values : Float32Array.from(t.dataSync());
      },
      simd: null,
      offset: () => 0,
    };
  }
  return null;
}

/**
 * One AdamW update of one variable as a single loop (float32 arithmetic,
 * every operation rounded, the same in the SIMD and the TypeScript loop):
 * m' = β1·m + (1−β1)·g, v' = β2·v + (1−β2)·g²,
 * w' = w − lr·((m'/bc1) / (sqrt(v'/bc2) + ε) + λ·w).
 *
 * The moments are updated in place where no other tensor shares them; the
 * weights always go to a new tensor: tfjs-wasm caches the packed form of a
 * matmul's weight operand by tensor id (XNNPACK), so writing a weight in
 * place would leave its matmuls on the old values.
 */
function fusedAdamW(
  memory: HostMemory,
  w: tf.Variable,
  g: Tensor,
  m: tf.Variable,
  v: tf.Variable,
  c: { b1: number; b2: number; bc1: number; bc2: number; eps: number; wd: number; lr: number },
): void {
  const { b1, b2, bc1, bc2, eps, wd, lr } = c;
  // Allocate first, then take the views, then no tfjs call until the loop ends.
  const mt = memory.target(m, true), vt = memory.target(v, true), wt = memory.target(w, false);
  // The SIMD loop (wasm) takes the largest multiple of 4 elements, the TypeScript loop the
  // rest; both compute the same numbers (see `../ops/adamw_simd.ts`).
  const n = w.size, n4 = memory.simd ? n - (n % 4) : 0;
  if (n4 > 0) {
    const at = memory.offset;
    memory.simd!(
      at(g),
      at(m),
      at(v),
      at(w),
      at(mt.tensor),
      at(vt.tensor),
      at(wt.tensor),
      n4,
      b1,
      1 - b1,
      b2,
      1 - b2,
      1 / bc1,
      1 / Math.sqrt(bc2),
      eps,
      wd,
      lr,
    );
  }
  if (n4 < n) {
    const [gv, mv, vv, wv] = [g, m, v, w].map((t) => memory.view(t).subarray(n4));
    const [mo, vo, wo] = [mt, vt, wt].map((t) => memory.view(t.tensor).subarray(n4));
    adamwLoop(gv, mv, vv, wv, mo, vo, wo, b1, 1 - b1, b2, 1 - b2, bc1, bc2, eps, wd, lr);
  }
  commit(m, mt);
  commit(v, vt);
  commit(w, wt);
}

/** The loop of {@linkcode fusedAdamW}, over plain arrays (monomorphic for the JIT). */
function adamwLoop(
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  w: Float32Array,
  mo: Float32Array,
  vo: Float32Array,
  wo: Float32Array,
  b1: number,
  a1: number,
  b2: number,
  a2: number,
  bc1: number,
  bc2: number,
  eps: number,
  wd: number,
  lr: number,
): void {
  const n = w.length;
  const f = Math.fround;
  // Float32 arithmetic, every operation rounded (as the SIMD loop's f32x4 lanes):
  // (m/bc1) / (sqrt(v/bc2) + ε) with the constant factors taken out.
  const [B1, A1, B2, A2, EPS, WD, LR] = [b1, a1, b2, a2, eps, wd, lr].map(f);
  const C1 = f(1 / bc1), C2 = f(1 / Math.sqrt(bc2));
  for (let i = 0; i < n; i++) {
    const gi = g[i];
    const mi = f(f(B1 * m[i]) + f(A1 * gi));
    const vi = f(f(B2 * v[i]) + f(f(A2 * gi) * gi));
    const wi = w[i];
    mo[i] = mi;
    vo[i] = vi;
    const adam = f(f(mi * C1) / f(f(f(Math.sqrt(vi)) * C2) + EPS));
    wo[i] = f(wi - f(LR * f(adam + f(WD * wi))));
  }
}
