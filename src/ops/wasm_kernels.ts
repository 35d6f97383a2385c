/**
 * Faster tfjs-wasm kernels for the shapes a training step uses, installed in
 * place of tfjs-backend-wasm's own (same names, same results).
 *
 * - `BatchMatMul` with `transposeA` or `transposeB`: tfjs-wasm's matmul runs
 *   about 10x slower with either flag set (measured ~1.6 GFLOP/s against
 *   ~12-20 on `[13, 784] x [784, 64]`), and every backward pass sets one
 *   (dW = xᵀ·dy, dx = dy·Wᵀ). The replacement transposes the flagged operand
 *   explicitly (tfjs-wasm's Transpose kernel, ~20 µs for 784 x 64) and runs
 *   the fast untransposed matmul. tfjs-wasm (XNNPACK) packs the right operand
 *   of every matmul it has not seen before, which for a transposed weight
 *   `[784, 64]` cost more than the multiply itself on a few rows; so a·bᵀ with
 *   few rows in a runs as (b·aᵀ)ᵀ, whose new right operand is the small aᵀ.
 * - `GatherV2` (batchDims 0): tfjs-wasm's gather takes ~7 ms for 200 rows of
 *   784 floats; the replacement copies whole rows inside the wasm heap
 *   (`copyWithin`), ~100x faster. Out-of-range indices throw a clear error.
 *
 * - `Identity` (the gradient tape copies every input it saves): shares the
 *   memory (reference count), as tfjs's cpu backend does, instead of copying.
 *   Nothing in tfjs-wasm writes into an input; code here that writes into a
 *   tensor's memory first checks that no other tensor shares it.
 *
 * Each replacement is still one kernel for tfjs (one entry in `tf.profile`)
 * and computes exactly what the original computes (the matmul's sums run in
 * the same order; a gather is a copy).
 *
 * @module
 */

import { tf } from "../deps.ts";

interface WasmTensorData {
  id: number;
  memoryOffset: number;
  shape: number[];
  dtype: string;
  refCount: number;
}

interface WasmBackendLike {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: unknown): WasmTensorData };
  makeOutput(shape: number[], dtype: string): tf.TensorInfo;
  disposeData(dataId: unknown): boolean;
  incRef(dataId: unknown): void;
}

type KernelArgs = {
  inputs: Record<string, tf.TensorInfo>;
  backend: unknown;
  attrs: Record<string, unknown>;
};

let originals: {
  matmul: tf.KernelConfig;
  gather: tf.KernelConfig;
  identity: tf.KernelConfig;
} | null = null;

/**
 * Installs the faster wasm kernels (idempotent; a no-op where tfjs-wasm is
 * not registered). Called when a model module is imported.
 *
 * @example
 * ```ts
 * import { installFastWasmKernels } from "./wasm_kernels.ts";
 * installFastWasmKernels();
 * ```
 */
export function installFastWasmKernels(): void {
  if (originals) return;
  const matmul = tf.getKernel("BatchMatMul", "wasm");
  const transpose = tf.getKernel("Transpose", "wasm");
  const gather = tf.getKernel("GatherV2", "wasm");
  const identity = tf.getKernel("Identity", "wasm");
  if (!matmul || !transpose || !gather || !identity) return;
  originals = { matmul, gather, identity };

  // Identity (the tape's copy of every input it saves for the backward pass):
  // share the memory, as tfjs's cpu backend does, instead of copying it.
  tf.unregisterKernel("Identity", "wasm");
  tf.registerKernel({
    kernelName: "Identity",
    backendName: "wasm",
    setupFunc: identity.setupFunc,
    kernelFunc: ((args: KernelArgs) => {
      const { x } = args.inputs;
      if (x.dtype === "string") return identity.kernelFunc(args as never);
      (args.backend as WasmBackendLike).incRef(x.dataId);
      return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
    }) as unknown as tf.KernelFunc,
  });

  const transposeLast2 = (x: tf.TensorInfo, backend: unknown): tf.TensorInfo => {
    const r = x.shape.length;
    const perm = Array.from({ length: r }, (_, i) => i);
    perm[r - 2] = r - 1;
    perm[r - 1] = r - 2;
    return transpose.kernelFunc(
      {
        inputs: { x },
        backend,
        attrs: { perm },
      } as unknown as Parameters<tf.KernelFunc>[0],
    ) as tf.TensorInfo;
  };

  tf.unregisterKernel("BatchMatMul", "wasm");
  tf.registerKernel({
    kernelName: "BatchMatMul",
    backendName: "wasm",
    setupFunc: matmul.setupFunc,
    kernelFunc: ((args: KernelArgs) => {
      const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
      if (!transposeA && !transposeB) return matmul.kernelFunc(args as never);
      const backend = args.backend as WasmBackendLike;
      const run = (a: tf.TensorInfo, b: tf.TensorInfo) =>
        matmul.kernelFunc({
          inputs: { a, b },
          backend,
          attrs: { ...args.attrs, transposeA: false, transposeB: false },
        } as never) as tf.TensorInfo;
      let { a, b } = args.inputs;
      if (!transposeA && a.shape.length === 2 && b.shape.length === 2) {
        // a·bᵀ with a [M, K], b [N, K]. The matmul packs its right operand
        // anew for every new tensor, which costs more than the multiply for
        // a small M: when M < N compute (b·aᵀ)ᵀ, whose right operand aᵀ is
        // the smaller one.
        const [M] = a.shape, [N] = b.shape;
        if (M < N) {
          const aT = transposeLast2(a, backend);
          const outT = run(b, aT); // [N, M]
          const out = transposeLast2(outT, backend); // [M, N]
          backend.disposeData(aT.dataId);
          backend.disposeData(outT.dataId);
          return out;
        }
      }
      const temps: tf.TensorInfo[] = [];
      if (transposeA) temps.push(a = transposeLast2(a, backend));
      if (transposeB) temps.push(b = transposeLast2(b, backend));
      const out = run(a, b);
      for (const t of temps) backend.disposeData(t.dataId);
      return out;
    }) as unknown as tf.KernelFunc,
  });

  tf.unregisterKernel("GatherV2", "wasm");
  tf.registerKernel({
    kernelName: "GatherV2",
    backendName: "wasm",
    setupFunc: gather.setupFunc,
    kernelFunc: ((args: KernelArgs) => {
      const { x, indices } = args.inputs;
      const { axis, batchDims } = args.attrs as { axis: number | number[]; batchDims: number };
      const bytes = x.dtype === "float32" || x.dtype === "int32" ? 4 : 0;
      if (batchDims !== 0 || bytes === 0 || indices.dtype !== "int32") {
        return gather.kernelFunc(args as never);
      }
      const backend = args.backend as WasmBackendLike;
      const a = tf.util.parseAxisParam(axis, x.shape)[0];
      const dim = x.shape[a];
      const outer = x.shape.slice(0, a).reduce((p, v) => p * v, 1);
      const slice = x.shape.slice(a + 1).reduce((p, v) => p * v, 1);
      const nIdx = indices.shape.reduce((p, v) => p * v, 1);
      const out = backend.makeOutput(
        [...x.shape.slice(0, a), ...indices.shape, ...x.shape.slice(a + 1)],
        x.dtype,
      );
      // Views after makeOutput: its malloc may grow (and replace) the heap.
      const heap = new Int32Array(backend.wasm.HEAPU8.buffer);
      const xOff = backend.dataIdMap.get(x.dataId).memoryOffset >>> 2;
      const iOff = backend.dataIdMap.get(indices.dataId).memoryOffset >>> 2;
      const oOff = backend.dataIdMap.get(out.dataId).memoryOffset >>> 2;
      for (let j = 0; j < nIdx; j++) {
        const i = heap[iOff + j];
        if (!(i >= 0 && i < dim)) {
          backend.disposeData(out.dataId);
          throw new RangeError(`GatherV2: the index value ${i} is not in [0, ${dim - 1}]`);
        }
      }
      for (let o = 0; o < outer; o++) {
        const src = xOff + o * dim * slice;
        const dst = oOff + o * nIdx * slice;
        for (let j = 0; j < nIdx; j++) {
          const s = src + heap[iOff + j] * slice;
          heap.copyWithin(dst + j * slice, s, s + slice);
        }
      }
      return out;
    }) as unknown as tf.KernelFunc,
  });
}

/**
 * Puts tfjs-wasm's own `BatchMatMul`, `GatherV2` and `Identity` back (for before/after
 * benchmarks); {@linkcode installFastWasmKernels} installs the fast ones again.
 *
 * @example
 * ```ts
 * import { installFastWasmKernels, uninstallFastWasmKernels } from "./wasm_kernels.ts";
 * uninstallFastWasmKernels();
 * installFastWasmKernels();
 * ```
 */
export function uninstallFastWasmKernels(): void {
  if (!originals) return;
  for (const k of [originals.matmul, originals.gather, originals.identity]) {
    tf.unregisterKernel(k.kernelName, "wasm");
    tf.registerKernel(k);
  }
  originals = null;
}

/**
 * Whether the fast wasm kernels are installed now.
 *
 * @example
 * ```ts
 * import { fastWasmKernelsInstalled } from "./wasm_kernels.ts";
 * console.log(fastWasmKernelsInstalled());
 * ```
 */
export function fastWasmKernelsInstalled(): boolean {
  return originals !== null;
}
