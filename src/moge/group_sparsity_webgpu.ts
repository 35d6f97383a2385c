/**
 * The MoGE regularizer (Algorithm 1) as two fused WebGPU kernels: one
 * dispatch for R(z) and one for its gradient, instead of the ~15 small tfjs
 * kernels (square, conv2d, add, sqrt, sum and their gradients) of the op path.
 *
 * Each shader is compiled once per map, filter size and padding: the filter
 * weights H and ε travel in the uniform buffer, so a new σ every step costs
 * no compilation.
 *
 * @module
 */

import { tf, tfwebgpu } from "../deps.ts";
import type { Filter } from "./filters.ts";
import type { Layout } from "./layout.ts";
import { checkFusedArgs } from "./fused_args.ts";
import { type PaddedWindows, paddedWindows, type Padding } from "./padding.ts";
import type { Tensor, Tensor1D, Tensor2D } from "../types.ts";

type WebGPUProgram = tfwebgpu.WebGPUProgram;
type Uniforms = { type: string; data: number[] }[];

/** Threads per workgroup of both kernels. */
const WORKGROUP = 64;

/** The smallest power of two >= n. */
function nextPow2(n: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(1, n)));
}

/**
 * The WGSL constants of an r x c map, an h x h filter and a padding, shared
 * by both kernels. Window (u, v), 0 <= u < GS_PROWS, 0 <= v < GS_PCOLS,
 * covers map rows u−GS_TOP … u−GS_TOP+h−1 and columns v−GS_LEFT …
 * v−GS_LEFT+h−1; entries outside the map are zero.
 */
function mapConstants({ rows, cols }: Layout, h: number, w: PaddedWindows): string {
  return `
  const GS_ROWS : i32 = ${rows};
  const GS_COLS : i32 = ${cols};
  const GS_E : i32 = ${rows * cols};
  const GS_H : i32 = ${h};
  const GS_TOP : i32 = ${w.top};
  const GS_LEFT : i32 = ${w.left};
  const GS_PROWS : i32 = ${w.outRows};
  const GS_PCOLS : i32 = ${w.outCols};
  const GS_P : i32 = ${w.outRows * w.outCols};

  // The filter, copied from the uniform buffer (h² floats packed in vec4s) by gsLoadFilter().
  var<private> gsW : array<f32, ${h * h}>;

  fn gsLoadFilter() {
    for (var k = 0; k < ${h * h}; k++) {
      gsW[k] = uniforms.filt[k / 4][k % 4];
    }
  }

  // Y at window (u, v) of the token whose scores start at flat index base
  // (taps that fall on the zero padding are skipped).
  fn gsWindow(base : i32, u : i32, v : i32) -> f32 {
    let i0 = u - GS_TOP;
    let j0 = v - GS_LEFT;
    var y = 0.0;
    for (var a = max(0, -i0); a < min(GS_H, GS_ROWS - i0); a++) {
      let row = base + (i0 + a) * GS_COLS + j0;
      for (var b = max(0, -j0); b < min(GS_H, GS_COLS - j0); b++) {
        let q = z[row + b];
        y += gsW[a * GS_H + b] * q * q;
      }
    }
    return y;
  }
`;
}

/** The uniform fields both kernels declare after tfjs's own: ε, then H. */
function uniformDecl(h: number): string {
  return `eps : f32, filt : array<vec4<f32>, ${Math.ceil((h * h) / 4)}>,`;
}

/** The values of {@linkcode uniformDecl}: ε, then H row-major, zero-padded to vec4s. */
function uniformData(H: Filter, eps: number): Uniforms {
  const flat = H.flat();
  const out: Uniforms = [{ type: "float32", data: [eps] }];
  for (let k = 0; k < flat.length; k += 4) {
    const chunk = flat.slice(k, k + 4);
    while (chunk.length < 4) chunk.push(0);
    out.push({ type: "float32", data: chunk });
  }
  return out;
}

/**
 * Forward: `z [N, E] -> R [N]`. T = min(64, nextPow2(P)) threads share a
 * token (64 / T tokens per workgroup); each thread sums sqrt(Y + ε) over
 * windows p = lane, lane + T, ..., then a tree reduction in workgroup memory
 * adds the T partial sums.
 */
class ForwardProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  variableNames = ["z"];
  workgroupSize: [number, number, number] = [WORKGROUP, 1, 1];
  uniforms: string;
  private readonly threads: number;

  private readonly windows: PaddedWindows;

  constructor(
    n: number,
    private readonly layout: Layout,
    private readonly h: number,
    padding: Padding,
  ) {
    this.windows = paddedWindows(layout.rows, layout.cols, h, padding);
    const P = this.windows.outRows * this.windows.outCols;
    this.threads = Math.min(WORKGROUP, nextPow2(P));
    this.outputShape = [n];
    this.dispatchLayout = { x: [0] };
    this.dispatch = [Math.ceil(n / (WORKGROUP / this.threads)), 1, 1];
    this.uniforms = uniformDecl(h);
    this.shaderKey = `mogeGroupSparsityForward_${layout.rows}_${layout.cols}_${h}_${padding}`;
  }

  getUserCode(): string {
    const T = this.threads;
    return `
  ${mapConstants(this.layout, this.h, this.windows)}
  var<workgroup> gsPartial : array<f32, ${WORKGROUP}>;

  fn main(index : i32) {
    let token = index / ${T};
    let lane = index % ${T};
    let valid = token < uniforms.zShape.x;
    gsLoadFilter();
    var acc = 0.0;
    if (valid) {
      let base = token * GS_E;
      for (var p = lane; p < GS_P; p += ${T}) {
        let u = p / GS_PCOLS;
        acc += sqrt(gsWindow(base, u, p - u * GS_PCOLS) + uniforms.eps);
      }
    }
    let slot = i32(localIndex);
    gsPartial[slot] = acc;
    workgroupBarrier();
    for (var s = ${T >> 1}; s > 0; s = s / 2) {
      if (lane < s) {
        gsPartial[slot] = gsPartial[slot] + gsPartial[slot + s];
      }
      workgroupBarrier();
    }
    if (valid && lane == 0) {
      setOutputAtIndex(token, gsPartial[slot]);
    }
  }
`;
  }
}

/**
 * Backward: `(z [N, E], dy [N, 1]) -> dz [N, E]`, one thread per entry i:
 * it recomputes Y of the (at most h²) windows holding i and writes
 * dy · z_i · Σ_windows H[row_i - u + top][col_i - v + left] / sqrt(Y_uv + ε).
 */
class BackwardProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  variableNames = ["z", "dy"];
  workgroupSize: [number, number, number] = [WORKGROUP, 1, 1];
  uniforms: string;
  size = true;

  private readonly windows: PaddedWindows;

  constructor(
    n: number,
    private readonly layout: Layout,
    private readonly h: number,
    padding: Padding,
  ) {
    this.windows = paddedWindows(layout.rows, layout.cols, h, padding);
    this.outputShape = [n, layout.rows * layout.cols];
    this.dispatchLayout = tfwebgpu.webgpu_util.flatDispatchLayout(this.outputShape);
    this.dispatch = tfwebgpu.webgpu_util.computeDispatch(
      this.dispatchLayout,
      this.outputShape,
      this.workgroupSize,
    );
    this.uniforms = uniformDecl(h);
    this.shaderKey = `mogeGroupSparsityBackward_${layout.rows}_${layout.cols}_${h}_${padding}`;
  }

  getUserCode(): string {
    return `
  ${mapConstants(this.layout, this.h, this.windows)}

  fn main(index : i32) {
    if (index >= uniforms.size) {
      return;
    }
    let token = index / GS_E;
    let i = index - token * GS_E;
    let ri = i / GS_COLS;
    let ci = i - ri * GS_COLS;
    let base = token * GS_E;
    gsLoadFilter();
    var g = 0.0;
    // Window (u, v) holds (ri, ci) at tap (ri − u + GS_TOP, ci − v + GS_LEFT) in [0, h)².
    for (var u = max(0, ri + GS_TOP - GS_H + 1); u <= min(ri + GS_TOP, GS_PROWS - 1); u++) {
      for (var v = max(0, ci + GS_LEFT - GS_H + 1); v <= min(ci + GS_LEFT, GS_PCOLS - 1); v++) {
        let y = gsWindow(base, u, v);
        g += gsW[(ri - u + GS_TOP) * GS_H + (ci - v + GS_LEFT)] / sqrt(y + uniforms.eps);
      }
    }
    setOutputAtIndex(index, dy[token] * z[index] * g);
  }
`;
  }
}

/** Runs a program on the webgpu backend and wraps its output as a tracked tensor. */
function run(program: WebGPUProgram, inputs: Tensor[], uniforms: Uniforms): Tensor {
  const backend = tf.backend() as tfwebgpu.WebGPUBackend;
  const info = backend.runWebGPUProgram(program, inputs, "float32", uniforms);
  return tf.engine().makeTensorFromTensorInfo(info);
}

/**
 * R(z) per token (MoGE Algorithm 1) in one fused WebGPU dispatch, with a
 * fused one-dispatch gradient (`tf.customGrad`): the same values as the op
 * path of `groupSparsity` up to float32 rounding, for the webgpu
 * backend only. `groupSparsity` calls it on webgpu unless `impl: "ops"`;
 * called directly, it checks shapes but does not scan z for NaN/Infinity.
 *
 * R_n = Σ_{u,v} sqrt(Σ_{a,b} H_ab · z[n, (u−top+a)·c + v−left+b]² + ε) over
 * the windows of the padding (zeros outside the map; "valid": the
 * (r-h+1)(c-h+1) positions of Algorithm 1); dR_n/dz[n,i] = z[n,i] · Σ over
 * the windows holding i of H_{(row_i-u+top),(col_i-v+left)} / sqrt(Y_uv + ε).
 *
 * The shaders are compiled once per (r, c, h, padding); H and ε are
 * uniforms, so changing σ between calls compiles nothing.
 *
 * @param z routing scores, `[N, E]` float32, E = r·c
 * @param layout the r x c map (r, c >= h)
 * @param H the h x h filter, row-major (e.g. from `makeFilter`)
 * @param eps ε inside the root (>= 0)
 * @param padding how the map is padded (default "valid", Algorithm 1)
 * @returns the `[N]` tensor of R(z) per token
 *
 * @example
 * ```ts
 * import { fusedGroupSparsity } from "./group_sparsity_webgpu.ts";
 * import { gaussianFilter } from "./filters.ts";
 * import { tf } from "../deps.ts";
 * if (tf.getBackend() === "webgpu") {
 *   const z = tf.softmax(tf.randomNormal([2, 16])) as tf.Tensor2D;
 *   const r = fusedGroupSparsity(z, { rows: 4, cols: 4 }, gaussianFilter(3, 1.5), 1e-8);
 *   console.log(r.shape); // [2]
 * }
 * ```
 */
export function fusedGroupSparsity(
  z: Tensor2D,
  layout: Layout,
  H: Filter,
  eps: number,
  padding: Padding = "valid",
): Tensor1D {
  if (tf.getBackend() !== "webgpu") {
    throw new Error(
      `fusedGroupSparsity: needs the webgpu backend, tfjs runs on "${tf.getBackend()}"`,
    );
  }
  const h = H.length;
  const [N] = z.shape;
  checkFusedArgs("fusedGroupSparsity", z, layout, H, eps);
  const uniforms = uniformData(H, eps);
  const op = tf.customGrad((x, save) => {
    (save as tf.GradSaveFunc)([x as Tensor]);
    return {
      value: run(new ForwardProgram(N, layout, h, padding), [x as Tensor], uniforms) as Tensor1D,
      gradFunc: (dy: Tensor1D, [saved]: Tensor[]) =>
        tf.tidy(() =>
          run(new BackwardProgram(N, layout, h, padding), [saved, dy.reshape([N, 1])], uniforms)
        ),
    };
  });
  return op(z) as Tensor1D;
}
