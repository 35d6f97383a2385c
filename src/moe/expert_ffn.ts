/**
 * All experts of a MoE layer as one tfjs kernel on wasm and cpu: for packed
 * rows (expert after expert, `sizes[j]` rows for expert j), expert j computes
 *
 *     y = act(x W1_j + b1_j) W2_j + b2_j          (eq. 1's E_i(x), a 2-layer MLP)
 *
 * and the backward kernel gives dx and every expert's dW1, db1, dW2, db2.
 * Inside, each expert's matmuls run as calls of the backend's own (fast,
 * untransposed) matmul on exactly its rows; the bias, activation and their
 * derivatives run as loops over the rows. Looping experts as tfjs ops costs
 * about 10 kernels per expert per step (forward, backward and the tape's
 * copies of saved inputs); this is 2 kernels for all of them.
 *
 * @module
 */

import { tf } from "../deps.ts";
import type { Tensor, Tensor2D } from "../types.ts";
import { installFastWasmKernels } from "../ops/wasm_kernels.ts";
import { type SmallMatmul, smallMatmul } from "../ops/small_matmul_simd.ts";
import { wasmBackendMemory } from "../ops/wasm_bytes.ts";

/** Expert hidden activation. */
export type FfnActivation = "gelu" | "relu" | "tanh";

const FORWARD = "MogeExpertFfn";
const BACKWARD = "MogeExpertFfnGrad";
const GELU_C = Math.sqrt(2 / Math.PI);
/** Experts with at most this many rows multiply as Wᵀ·xᵀ (see the forward kernel). */
const SWAP_ROWS = 32;
/**
 * On wasm, experts with at most this many rows multiply with the SIMD loops
 * of `../ops/small_matmul_simd.ts` (when d_ff and d_out are multiples of 4):
 * below it they beat tfjs-wasm's matmul, at 8-16 rows the two take about as
 * long (`bench/expert_rows.ts`).
 */
let simdRows = 8;

/**
 * Sets the most rows an expert may have to use the SIMD products on wasm
 * (default 8), returning the previous limit: for benchmarks.
 *
 * @example
 * ```ts
 * import { setSimdRows } from "./expert_ffn.ts";
 * const before = setSimdRows(16);
 * setSimdRows(before);
 * ```
 */
export function setSimdRows(rows: number): number {
  const before = simdRows;
  simdRows = rows;
  return before;
}

/** Memory access to the backend's tensors (wasm heap or cpu arrays). */
interface Host {
  alloc(shape: number[]): tf.TensorInfo;
  /** A view of t's values; take it again after any `alloc` (the wasm heap may move). */
  view(t: tf.TensorInfo): Float32Array;
  matmul(
    a: tf.TensorInfo,
    b: tf.TensorInfo,
    transposeA: boolean,
    transposeB: boolean,
  ): tf.TensorInfo;
  free(t: tf.TensorInfo): void;
  /** The SIMD products on the backend's memory (wasm), or null. */
  simd: SmallMatmul | null;
  /** Byte offset of t's values in that memory (wasm). */
  offset(t: tf.TensorInfo): number;
}

interface WasmBackendLike {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: unknown): { memoryOffset: number } };
  makeOutput(shape: number[], dtype: string): tf.TensorInfo;
  disposeData(dataId: unknown): boolean;
}

interface CpuBackendLike {
  data: { get(dataId: unknown): { values?: unknown } };
  makeTensorInfo(shape: number[], dtype: string, values?: Float32Array): tf.TensorInfo;
  disposeData(dataId: unknown): boolean;
}

function hostOf(backendName: "wasm" | "cpu", backend: unknown): Host {
  const matmulKernel = tf.getKernel("BatchMatMul", backendName)!;
  const matmul = (a: tf.TensorInfo, b: tf.TensorInfo, transposeA: boolean, transposeB: boolean) =>
    matmulKernel.kernelFunc({
      inputs: { a, b },
      backend,
      attrs: { transposeA, transposeB },
    } as never) as tf.TensorInfo;
  if (backendName === "wasm") {
    const b = backend as WasmBackendLike;
    return {
      alloc: (shape) => b.makeOutput(shape, "float32"),
      view: (t) =>
        new Float32Array(
          b.wasm.HEAPU8.buffer,
          b.dataIdMap.get(t.dataId).memoryOffset,
          t.shape.reduce((p, v) => p * v, 1),
        ),
      matmul,
      free: (t) => void b.disposeData(t.dataId),
      simd: smallMatmul(wasmBackendMemory(b)),
      offset: (t) => b.dataIdMap.get(t.dataId).memoryOffset,
    };
  }
  const b = backend as CpuBackendLike;
  return {
    alloc: (shape) =>
      b.makeTensorInfo(shape, "float32", new Float32Array(shape.reduce((p, v) => p * v, 1))),
    view: (t) => b.data.get(t.dataId).values as Float32Array,
    // The cpu backend's matmul is fast untransposed; transpose in a loop first.
    matmul: (x, y, tA, tB) => {
      const tr = (t: tf.TensorInfo) => {
        const [r, c] = t.shape;
        const out = b.makeTensorInfo([c, r], "float32", new Float32Array(r * c));
        const src = b.data.get(t.dataId).values as Float32Array;
        const dst = b.data.get(out.dataId).values as Float32Array;
        for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) dst[j * r + i] = src[i * c + j];
        return out;
      };
      const a2 = tA ? tr(x) : x, b2 = tB ? tr(y) : y;
      const out = matmul(a2, b2, false, false);
      if (tA) b.disposeData(a2.dataId);
      if (tB) b.disposeData(b2.dataId);
      return out;
    },
    free: (t) => void b.disposeData(t.dataId),
    simd: null,
    offset: () => 0,
  };
}

/** Copies rows [r0, r0 + n) of a `[R, c]` tensor into a new `[n, c]` one. */
function rows(host: Host, t: tf.TensorInfo, r0: number, n: number): tf.TensorInfo {
  const c = t.shape[1];
  const out = host.alloc([n, c]);
  host.view(out).set(host.view(t).subarray(r0 * c, (r0 + n) * c));
  return out;
}

function activation(kind: FfnActivation, v: number): number {
  switch (kind) {
    case "relu":
      return v > 0 ? v : 0;
    case "tanh":
      return Math.tanh(v);
    case "gelu":
      return 0.5 * v * (1 + Math.tanh(GELU_C * (v + 0.044715 * v * v * v)));
  }
}

function activationGrad(kind: FfnActivation, v: number): number {
  switch (kind) {
    case "relu":
      return v > 0 ? 1 : 0;
    case "tanh": {
      const t = Math.tanh(v);
      return 1 - t * t;
    }
    case "gelu": {
      const t = Math.tanh(GELU_C * (v + 0.044715 * v * v * v));
      return 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * GELU_C * (1 + 3 * 0.044715 * v * v);
    }
  }
}

interface FfnAttrs {
  sizes: number[];
  activation: FfnActivation;
}

type KernelArgs = { inputs: Record<string, tf.TensorInfo>; backend: unknown; attrs: FfnAttrs };

/** Forward: outputs `y [R, o]` and the pre-activations `h [R, f]`. */
function forwardKernel(name: "wasm" | "cpu") {
  return ({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] => {
    const host = hostOf(name, backend);
    const { sizes, activation: act } = attrs;
    const x = inputs.x;
    const R = x.shape[0];
    const f = inputs.w1_0.shape[1], o = inputs.w2_0.shape[1];
    const y = host.alloc([R, o]);
    const h = host.alloc([R, f]);
    const simd = host.simd && f % 4 === 0 && o % 4 === 0 ? host.simd : null;
    let r0 = 0;
    sizes.forEach((n, j) => {
      if (simd && n <= simdRows) {
        forwardSimd(host, simd, inputs, j, { r0, n, d: x.shape[1], f, o }, act, y, h);
        r0 += n;
        return;
      }
      const xj = rows(host, x, r0, n);
      // The weights are new tensors every step, and the matmul packs its right
      // operand anew for each new tensor: for a few rows, Wᵀ·xᵀ (right operand
      // xᵀ, small) beats x·W (right operand W). t: the result comes transposed.
      const t = name === "wasm" && n <= SWAP_ROWS;
      const pre = t
        ? host.matmul(inputs[`w1_${j}`], xj, true, true) // [f, n]
        : host.matmul(xj, inputs[`w1_${j}`], false, false); // [n, f]
      const a = host.alloc([n, f]);
      {
        const pv = host.view(pre), av = host.view(a), b1 = host.view(inputs[`b1_${j}`]);
        const hv = host.view(h);
        for (let i = 0; i < n; i++) {
          for (let u = 0; u < f; u++) {
            const v = Math.fround((t ? pv[u * n + i] : pv[i * f + u]) + b1[u]);
            hv[(r0 + i) * f + u] = v;
            av[i * f + u] = activation(act, v);
          }
        }
      }
      const out = t
        ? host.matmul(inputs[`w2_${j}`], a, true, true) // [o, n]
        : host.matmul(a, inputs[`w2_${j}`], false, false); // [n, o]
      {
        const ov = host.view(out), b2 = host.view(inputs[`b2_${j}`]), yv = host.view(y);
        for (let i = 0; i < n; i++) {
          for (let v = 0; v < o; v++) {
            yv[(r0 + i) * o + v] = (t ? ov[v * n + i] : ov[i * o + v]) + b2[v];
          }
        }
      }
      for (const t of [xj, pre, a, out]) host.free(t);
      r0 += n;
    });
    return [y, h];
  };
}

/**
 * The backward pass through the activation of one expert's rows [r0, r0 + n):
 * da ← da ⊙ act'(h) in place (`[n, f]`), and db1 ← the column sums of that.
 */
function throughActivation(
  host: Host,
  da: tf.TensorInfo,
  h: tf.TensorInfo,
  db1: tf.TensorInfo,
  r0: number,
  n: number,
  f: number,
  act: FfnActivation,
): void {
  const dv = host.view(da), hv = host.view(h), g = host.view(db1).fill(0);
  for (let i = 0; i < n; i++) {
    for (let u = 0; u < f; u++) {
      const k = i * f + u;
      const v = dv[k] * activationGrad(act, hv[(r0 + i) * f + u]);
      dv[k] = v;
      g[u] += v;
    }
  }
}

/** Backward: outputs dx, then dW1_j, db1_j, dW2_j, db2_j for every j (grouped by kind). */
function backwardKernel(name: "wasm" | "cpu") {
  return ({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] => {
    const host = hostOf(name, backend);
    const { sizes, activation: act } = attrs;
    const { dy, x, h } = inputs;
    const R = x.shape[0], d = x.shape[1], f = h.shape[1], o = dy.shape[1];
    const dx = host.alloc([R, d]);
    const dW1: tf.TensorInfo[] = [], db1: tf.TensorInfo[] = [];
    const dW2: tf.TensorInfo[] = [], db2: tf.TensorInfo[] = [];
    const simd = host.simd && f % 4 === 0 && o % 4 === 0 ? host.simd : null;
    let r0 = 0;
    sizes.forEach((n, j) => {
      if (simd && n <= simdRows) {
        const g = backwardSimd(host, simd, inputs, j, { r0, n, d, f, o }, act, dx);
        dW1.push(g.dW1);
        db1.push(g.db1);
        dW2.push(g.dW2);
        db2.push(g.db2);
        r0 += n;
        return;
      }
      const dyj = rows(host, dy, r0, n); // [n, o]
      const a = host.alloc([n, f]); // act(h)
      {
        const av = host.view(a), hv = host.view(h);
        for (let k = 0; k < n * f; k++) av[k] = activation(act, hv[r0 * f + k]);
      }
      dW2.push(host.matmul(a, dyj, true, false)); // [f, o] = aᵀ·dy
      const gb2 = host.alloc([o]);
      {
        const g = host.view(gb2).fill(0), dv = host.view(dyj);
        for (let i = 0; i < n; i++) for (let v = 0; v < o; v++) g[v] += dv[i * o + v];
      }
      db2.push(gb2);
      const da = host.matmul(dyj, inputs[`w2_${j}`], false, true); // [n, f] = dy·W2ᵀ
      const gb1 = host.alloc([f]);
      throughActivation(host, da, h, gb1, r0, n, f, act);
      db1.push(gb1);
      const xj = rows(host, x, r0, n);
      dW1.push(host.matmul(xj, da, true, false)); // [d, f] = xᵀ·dpre
      const dxj = host.matmul(da, inputs[`w1_${j}`], false, true); // [n, d] = dpre·W1ᵀ
      host.view(dx).set(host.view(dxj), r0 * d);
      for (const t of [dyj, a, da, xj, dxj]) host.free(t);
      r0 += n;
    });
    return [dx, ...dW1, ...db1, ...dW2, ...db2];
  };
}

/** Sizes of one expert's block of rows: first row r0, n rows, widths d, f (d_ff), o. */
interface Block {
  r0: number;
  n: number;
  d: number;
  f: number;
  o: number;
}

/**
 * The forward pass of expert j on rows [r0, r0 + n) with the SIMD products:
 * h = x·W1 + b1 straight into h's rows, a = act(h), y = a·W2 + b2 straight
 * into y's rows (the same bias and activation arithmetic as the matmul path).
 */
function forwardSimd(
  host: Host,
  simd: SmallMatmul,
  inputs: Record<string, tf.TensorInfo>,
  j: number,
  { r0, n, d, f, o }: Block,
  act: FfnActivation,
  y: tf.TensorInfo,
  h: tf.TensorInfo,
): void {
  const a = host.alloc([n, f]); // before any view or offset is taken: the heap may move
  const at = host.offset;
  simd.xw(at(inputs.x) + 4 * r0 * d, at(inputs[`w1_${j}`]), at(h) + 4 * r0 * f, n, d, f);
  const hv = host.view(h), av = host.view(a), b1 = host.view(inputs[`b1_${j}`]);
  for (let i = 0; i < n; i++) {
    for (let u = 0; u < f; u++) {
      const v = Math.fround(hv[(r0 + i) * f + u] + b1[u]);
      hv[(r0 + i) * f + u] = v;
      av[i * f + u] = activation(act, v);
    }
  }
  simd.xw(at(a), at(inputs[`w2_${j}`]), at(y) + 4 * r0 * o, n, f, o);
  const yv = host.view(y), b2 = host.view(inputs[`b2_${j}`]);
  for (let i = 0; i < n; i++) for (let v = 0; v < o; v++) yv[(r0 + i) * o + v] += b2[v];
  host.free(a);
}

/**
 * The backward pass of expert j on rows [r0, r0 + n) with the SIMD products:
 * dW2 = aᵀ·dy, da = dy·W2ᵀ ⊙ act'(h), dW1 = xᵀ·da, and dx's rows = da·W1ᵀ
 * written in place; the bias gradients as loops.
 */
function backwardSimd(
  host: Host,
  simd: SmallMatmul,
  inputs: Record<string, tf.TensorInfo>,
  j: number,
  { r0, n, d, f, o }: Block,
  act: FfnActivation,
  dx: tf.TensorInfo,
): { dW1: tf.TensorInfo; db1: tf.TensorInfo; dW2: tf.TensorInfo; db2: tf.TensorInfo } {
  const { dy, x, h } = inputs;
  const a = host.alloc([n, f]), da = host.alloc([n, f]);
  const dW1 = host.alloc([d, f]), db1 = host.alloc([f]);
  const dW2 = host.alloc([f, o]), db2 = host.alloc([o]);
  const at = host.offset;
  {
    const av = host.view(a), hv = host.view(h);
    for (let k = 0; k < n * f; k++) av[k] = activation(act, hv[r0 * f + k]);
  }
  const dyj = at(dy) + 4 * r0 * o;
  simd.atb(at(a), dyj, at(dW2), n, f, o); // [f, o] = aᵀ·dy
  {
    const g = host.view(db2).fill(0), dv = host.view(dy);
    for (let i = 0; i < n; i++) for (let v = 0; v < o; v++) g[v] += dv[(r0 + i) * o + v];
  }
  simd.xwt(dyj, at(inputs[`w2_${j}`]), at(da), n, f, o); // [n, f] = dy·W2ᵀ
  throughActivation(host, da, h, db1, r0, n, f, act);
  simd.atb(at(x) + 4 * r0 * d, at(da), at(dW1), n, d, f); // [d, f] = xᵀ·dpre
  simd.xwt(at(da), at(inputs[`w1_${j}`]), at(dx) + 4 * r0 * d, n, d, f); // [n, d] = dpre·W1ᵀ
  host.free(a);
  host.free(da);
  return { dW1, db1, dW2, db2 };
}

let registered = false;

/** Registers the two kernels for wasm and cpu (idempotent). */
function register(): void {
  if (registered) return;
  registered = true;
  installFastWasmKernels();
  for (const name of ["wasm", "cpu"] as const) {
    if (!tf.getKernel("BatchMatMul", name)) continue;
    tf.registerKernel({
      kernelName: FORWARD,
      backendName: name,
      kernelFunc: forwardKernel(name) as unknown as tf.KernelFunc,
    });
    tf.registerKernel({
      kernelName: BACKWARD,
      backendName: name,
      kernelFunc: backwardKernel(name) as unknown as tf.KernelFunc,
    });
  }
}

/**
 * Whether {@linkcode expertFfn} runs on the current backend (wasm and cpu).
 *
 * @example
 * ```ts
 * import { expertFfnAvailable } from "./expert_ffn.ts";
 * console.log(expertFfnAvailable());
 * ```
 */
export function expertFfnAvailable(): boolean {
  const b = tf.getBackend();
  return b === "wasm" || b === "cpu";
}

let enabled = true;

/**
 * Whether MoE layers with `expertCompute: "auto"` use {@linkcode expertFfn}
 * on wasm and cpu (default true); `false` makes them loop tfjs ops expert
 * after expert, as before (for before/after benchmarks).
 *
 * @example
 * ```ts
 * import { setFusedExperts } from "./expert_ffn.ts";
 * setFusedExperts(false);
 * setFusedExperts(true);
 * ```
 */
export function setFusedExperts(on: boolean): void {
  enabled = on;
}

/**
 * See {@linkcode setFusedExperts}.
 *
 * @example
 * ```ts
 * import { fusedExpertsEnabled } from "./expert_ffn.ts";
 * console.log(fusedExpertsEnabled()); // true
 * ```
 */
export function fusedExpertsEnabled(): boolean {
  return enabled;
}

/** One expert's weights: `w1 [d, f]`, `b1 [f]`, `w2 [f, o]`, `b2 [o]`. */
export interface ExpertWeights {
  /** First layer weights `[d, f]`. */
  w1: Tensor;
  /** First layer bias `[f]`. */
  b1: Tensor;
  /** Second layer weights `[f, o]`. */
  w2: Tensor;
  /** Second layer bias `[o]`. */
  b2: Tensor;
}

/**
 * The experts' MLPs on packed rows, differentiable: rows
 * `[Σ sizes[<j], Σ sizes[<=j])` of `x` go through expert `experts[j]`.
 * Two tfjs kernels (forward, backward) whatever the number of experts.
 *
 * @param x `[R, d]` rows, expert after expert
 * @param experts the weights of each expert in order (variables, or tensors
 *   that stay alive until the backward pass: the gradient reads them)
 * @param sizes rows per expert (each >= 1, summing to R)
 * @returns `[R, o]`
 * @example
 * ```ts
 * import { tf } from "../deps.ts";
 * import { useBackend } from "../backend.ts";
 * import { expertFfn } from "./expert_ffn.ts";
 * await useBackend("cpu");
 * const e = { w1: tf.ones([2, 3]), b1: tf.zeros([3]), w2: tf.ones([3, 2]), b2: tf.zeros([2]) };
 * const y = expertFfn(tf.ones([4, 2]), [e, e], [1, 3], "relu"); // [4, 2], every value 6
 * ```
 */
export function expertFfn(
  x: Tensor2D,
  experts: ExpertWeights[],
  sizes: number[],
  activation: FfnActivation,
): Tensor2D {
  if (!expertFfnAvailable()) {
    throw new Error(`expertFfn runs on wasm and cpu, not on ${tf.getBackend()}`);
  }
  const R = sizes.reduce((p, v) => p + v, 0);
  if (experts.length !== sizes.length || experts.length === 0 || R !== x.shape[0]) {
    throw new RangeError(
      `expertFfn: ${experts.length} experts with sizes [${sizes}] (sum ${R}) do not fit x of` +
        ` ${x.shape[0]} rows`,
    );
  }
  register();
  const E = experts.length;
  const inputs: tf.NamedTensorMap = { x };
  experts.forEach((e, j) => {
    inputs[`w1_${j}`] = e.w1;
    inputs[`b1_${j}`] = e.b1;
    inputs[`w2_${j}`] = e.w2;
    inputs[`b2_${j}`] = e.b2;
  });
  const attrs = { sizes, activation } as unknown as tf.NamedAttrMap;
  const list = [
    x,
    ...experts.map((e) => e.w1),
    ...experts.map((e) => e.b1),
    ...experts.map((e) => e.w2),
    ...experts.map((e) => e.b2),
  ];
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const [y, h] = tf.engine().runKernel(FORWARD, inputs, attrs) as tf.Tensor[];
    // x may be disposed before the backward pass (an intermediate of the
    // caller's tidy): keep it, and h. The weights are variables and stay.
    save([x, h]);
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const gradInputs: tf.NamedTensorMap = { ...inputs, dy, x: saved[0], h: saved[1] };
      const grads = tf.engine().runKernel(BACKWARD, gradInputs, attrs) as tf.Tensor[];
      // grads: dx, dW1 × E, db1 × E, dW2 × E, db2 × E: the order of `list`.
      if (grads.length !== 1 + 4 * E) throw new Error("expertFfn: wrong number of gradients");
      return grads;
    };
    return { value: y, gradFunc };
  });
  return op(...list) as Tensor2D;
}
