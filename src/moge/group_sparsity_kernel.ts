/**
 * The MoGE regularizer R(z) (Algorithm 1) as two registered tfjs kernels on
 * the cpu and wasm backends: "MogeGroupSparsity" (R per token) and
 * "MogeGroupSparsityGrad" (dz = dy_n · ∂R_n/∂z), joined by a registered
 * gradient, so that R(z) is one ordinary op on the tape. Each kernel reads
 * its inputs where the backend keeps them (on wasm a view on tfjs-wasm's
 * heap, on cpu the backend's own array; no read-back copy) and writes its
 * result into a tensor the backend allocates, with the arithmetic of
 * `group_sparsity_cpu.ts` (its WebAssembly SIMD loops). This saves what the
 * `tf.customGrad` route pays per call besides the arithmetic: reading z and
 * the upstream gradient back into new arrays and copying the results into
 * new tensors.
 *
 * @module
 */

import { tf } from "../deps.ts";
import type { Filter } from "./filters.ts";
import type { Layout } from "./layout.ts";
import { checkFusedArgs } from "./fused_args.ts";
import { paddedWindows, type Padding } from "./padding.ts";
import type { Tensor1D, Tensor2D } from "../types.ts";
import {
  groupSparsityGradValues,
  groupSparsityValues,
  SYNC_BACKENDS,
} from "./group_sparsity_cpu.ts";

/** The forward kernel's name. */
export const GROUP_SPARSITY_KERNEL = "MogeGroupSparsity";
/** The gradient kernel's name. */
export const GROUP_SPARSITY_GRAD_KERNEL = "MogeGroupSparsityGrad";

/** The kernels' attributes: the map, the filter (row-major), ε and the padding. */
interface Attrs {
  rows: number;
  cols: number;
  h: number;
  H: number[];
  eps: number;
  padding: Padding;
}

/** What the kernels use of tfjs-wasm's backend. */
interface WasmBackendLike {
  makeOutput(shape: number[], dtype: "float32"): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array;
}

/** What the kernels use of tfjs's cpu backend. */
interface CpuBackendLike {
  readSync(dataId: tf.DataId): Float32Array;
  makeTensorInfo(shape: number[], dtype: "float32", values: Float32Array): tf.TensorInfo;
}

/**
 * Runs `compute` on the inputs' values where the backend keeps them and
 * returns its result as a new `shape` tensor of that backend.
 */
function withValues(
  backendName: string,
  backend: unknown,
  inputs: tf.TensorInfo[],
  shape: number[],
  compute: (values: Float32Array[]) => Float32Array,
): tf.TensorInfo {
  if (backendName === "wasm") {
    const b = backend as WasmBackendLike;
    // Allocate first: a growing heap detaches the views made before.
    const out = b.makeOutput(shape, "float32");
    const result = compute(inputs.map((t) => b.typedArrayFromHeap(t)));
    b.typedArrayFromHeap(out).set(result); // heap views made after `compute`
    return out;
  }
  const b = backend as CpuBackendLike;
  const result = compute(inputs.map((t) => b.readSync(t.dataId)));
  // The cpu backend keeps the array it is given: hand it a copy of scratch views.
  return b.makeTensorInfo(shape, "float32", result.slice());
}

function unpack(a: Attrs): { layout: Layout; H: Filter } {
  const H = Array.from({ length: a.h }, (_, i) => a.H.slice(i * a.h, (i + 1) * a.h));
  return { layout: { rows: a.rows, cols: a.cols }, H };
}

let registered = false;

/** Registers both kernels on cpu and wasm and the gradient (once). */
function register(): void {
  if (registered) return;
  registered = true;
  for (const backendName of SYNC_BACKENDS) {
    if (!tf.getKernel(GROUP_SPARSITY_KERNEL, backendName)) {
      tf.registerKernel({
        kernelName: GROUP_SPARSITY_KERNEL,
        backendName,
        kernelFunc: (({ inputs, backend, attrs }) => {
          const a = attrs as unknown as Attrs, z = inputs.z as tf.TensorInfo;
          const { layout, H } = unpack(a);
          const N = z.shape[0];
          return withValues(
            backendName,
            backend,
            [z],
            [N],
            ([zv]) => groupSparsityValues(zv, N, layout, H, a.eps, a.padding),
          );
        }) as tf.KernelFunc,
      });
    }
    if (!tf.getKernel(GROUP_SPARSITY_GRAD_KERNEL, backendName)) {
      tf.registerKernel({
        kernelName: GROUP_SPARSITY_GRAD_KERNEL,
        backendName,
        kernelFunc: (({ inputs, backend, attrs }) => {
          const a = attrs as unknown as Attrs;
          const { z, dy, r } = inputs as Record<string, tf.TensorInfo>;
          const { layout, H } = unpack(a);
          return withValues(
            backendName,
            backend,
            [z, dy, r],
            z.shape,
            ([zv, dyv, rv]) =>
              groupSparsityGradValues(zv, dyv, rv, z.shape[0], layout, H, a.eps, a.padding),
          );
        }) as tf.KernelFunc,
      });
    }
  }
  if (!tf.getGradient(GROUP_SPARSITY_KERNEL)) {
    tf.registerGradient({
      kernelName: GROUP_SPARSITY_KERNEL,
      inputsToSave: ["z"],
      outputsToSave: [true],
      gradFunc: (dy, saved, attrs) => ({
        z: () =>
          tf.engine().runKernel(
            GROUP_SPARSITY_GRAD_KERNEL,
            { z: saved[0], dy: dy as tf.Tensor, r: saved[1] },
            attrs as unknown as tf.NamedAttrMap,
          ) as tf.Tensor,
      }),
    });
  }
}

/**
 * R(z) per token (MoGE Algorithm 1) as a registered tfjs kernel on cpu and
 * wasm, differentiable through its registered gradient kernel: the same
 * values as `cpuGroupSparsity` (the same arithmetic), without its read-back
 * and tensor copies. `groupSparsity` calls it on cpu and wasm unless
 * `impl: "ops"`; called directly, it checks shapes but does not scan z for
 * NaN/Infinity.
 *
 * @param z routing scores, `[N, E]` float32, E = r·c
 * @param layout the r x c map (r, c >= h)
 * @param H the h x h filter, row-major (e.g. from `makeFilter`)
 * @param eps ε inside the root (>= 0)
 * @param padding how the map is padded (default "valid")
 * @returns the `[N]` tensor of R(z) per token
 *
 * @example
 * ```ts
 * import { kernelGroupSparsity } from "./group_sparsity_kernel.ts";
 * import { gaussianFilter } from "./filters.ts";
 * import { tf } from "../deps.ts";
 * await tf.setBackend("cpu");
 * const z = tf.softmax(tf.randomNormal([2, 16])) as tf.Tensor2D;
 * const r = kernelGroupSparsity(z, { rows: 4, cols: 4 }, gaussianFilter(3, 1.5), 1e-8);
 * console.log(r.shape); // [2]
 * ```
 */
export function kernelGroupSparsity(
  z: Tensor2D,
  layout: Layout,
  H: Filter,
  eps: number,
  padding: Padding = "valid",
): Tensor1D {
  if (!SYNC_BACKENDS.includes(tf.getBackend())) {
    throw new Error(
      `kernelGroupSparsity: needs the cpu or wasm backend, tfjs runs on "${tf.getBackend()}"`,
    );
  }
  const h = H.length;
  checkFusedArgs("kernelGroupSparsity", z, layout, H, eps);
  paddedWindows(layout.rows, layout.cols, h, padding); // validates padding
  register();
  const attrs: Attrs = { rows: layout.rows, cols: layout.cols, h, H: H.flat(), eps, padding };
  return tf.engine().runKernel(
    GROUP_SPARSITY_KERNEL,
    { z },
    attrs as unknown as tf.NamedAttrMap,
  ) as Tensor1D;
}
