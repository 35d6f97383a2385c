/**
 * The routing plan of `routing.ts` made on the device (webgpu backend): top-k,
 * batch-prioritized order, capacity positions, drops, dispatch and combine
 * indices and the one-hot choices, all as tensors that never leave the GPU.
 * No readback, so a training step can plan its routing inside the gradient
 * tape in the same forward pass that uses it (`routing_webgpu_batch.ts` turns
 * the plan into the layer's routed batch).
 *
 * As in GShard, Switch, Tutel and V-MoE, a choice's slot in its expert's
 * buffer is the cumulative sum of the priority-ordered one-hot choices of that
 * expert before it; here each expert's column of that cumulative sum is one
 * workgroup's scan (a per-thread count, then a workgroup prefix sum), so
 * nothing of size N·k·E is ever stored.
 *
 * The plan equals {@linkcode planRouting} with `slotMultiple = capacity` and
 * `compact = false` (buffers of exactly C_e slots for all E experts, a shape
 * known before the scores are), bit for bit, ties included: scores are
 * compared as order-preserving integer keys of their float32 bits (with
 * -0 = +0), so subnormals are never flushed to zero by the GPU.
 *
 * Six WGSL kernels (five with k = 1) and one tfjs one-hot per plan; one more
 * kernel for the load and demand counts when statistics are wanted.
 *
 * @module
 */

import { tf, tfwebgpu } from "../deps.ts";
import type { Tensor, Tensor1D, Tensor2D } from "../types.ts";

export type { Tensor1D, Tensor2D } from "../types.ts";
import { type CapacityRule, expertCapacity } from "./routing.ts";
import { checkInteger } from "../validate.ts";

type WebGPUProgram = tfwebgpu.WebGPUProgram;
type Uniforms = { type: string; data: number[] }[];

/** Threads per workgroup of every routing kernel. */
const WORKGROUP = 64;
/** Threads per expert of the capacity scan (one workgroup per expert). */
const SCAN_THREADS = 128;

/**
 * The order-preserving integer key of a float32 score: its bits as i32 for
 * x >= 0, the lower 31 bits flipped for x < 0 (so more negative = smaller), and
 * -0 mapped to +0's key 0, as JavaScript's comparisons treat them.
 */
const KEY_FN = `
  fn routingKey(x : f32) -> i32 {
    let b = bitcast<i32>(x);
    if (b < 0) {
      let key = b ^ 0x7fffffff;
      return select(key, 0, key == -1);
    }
    return b;
  }
`;

/**
 * Top-k: `scores [N, E] -> expert [N, k]` int32, one thread per token. Choice
 * j is the largest score below choice j-1 in the order (key descending,
 * expert index ascending), i.e. the CPU planner's "largest untaken score,
 * lowest index on ties".
 */
class TopKProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey = "mogeRoutingTopK";
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  variableNames = ["scores"];
  workgroupSize: [number, number, number] = [WORKGROUP, 1, 1];

  constructor(N: number, k: number) {
    this.outputShape = [N, k];
    this.dispatchLayout = tfwebgpu.webgpu_util.flatDispatchLayout(this.outputShape);
    this.dispatch = [Math.ceil(N / WORKGROUP), 1, 1];
  }

  getUserCode(): string {
    return `
  ${KEY_FN}
  fn main(index : i32) {
    let N = uniforms.scoresShape.x;
    let E = uniforms.scoresShape.y;
    let K = uniforms.outShape.y;
    if (index >= N) {
      return;
    }
    let base = index * E;
    var prevKey = 0;
    var prevE = -1;
    for (var j = 0; j < K; j++) {
      var arg = -1;
      var best = 0;
      for (var e = 0; e < E; e++) {
        let key = routingKey(scores[base + e]);
        let below = prevE < 0 || key < prevKey || (key == prevKey && e > prevE);
        if (below && (arg < 0 || key > best)) {
          best = key;
          arg = e;
        }
      }
      setOutputAtIndexI32(index * K + j, arg);
      prevKey = best;
      prevE = arg;
    }
  }
`;
  }
}

/** Tokens per tile of the batch-priority sort (one workgroup sorts one tile). */
const SORT_TILE = 128;

/**
 * The batch-priority order "a before b": larger top-1 key, or the same key
 * and a lower token index (a stable sort on descending scores).
 */
const PRECEDES_FN = `
  fn rpPrecedes(keyA : i32, idxA : i32, keyB : i32, idxB : i32) -> bool {
    return keyA > keyB || (keyA == keyB && idxA < idxB);
  }

  fn rpBest(n : i32) -> i32 {
    return routingKey(scores[n * uniforms.scoresShape.y + expert[n * uniforms.expertShape.y]]);
  }
`;

/**
 * Batch priority, step 1: `(scores [N, E], expert [N, k]) -> sorted [2, M]`
 * int32, M = N rounded up to tiles of {@linkcode SORT_TILE}: each workgroup
 * sorts its tile of tokens by (top-1 key descending, index ascending) with a
 * bitonic network in workgroup memory; row 0 holds the keys, row 1 the
 * token indices (padding sorts last: key i32-min, index i32-max).
 */
class TileSortProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey = "mogeRoutingTileSort";
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  variableNames = ["scores", "expert"];
  workgroupSize: [number, number, number] = [SORT_TILE, 1, 1];

  constructor(N: number) {
    const tiles = Math.ceil(N / SORT_TILE);
    this.outputShape = [2, tiles * SORT_TILE];
    this.dispatchLayout = tfwebgpu.webgpu_util.flatDispatchLayout(this.outputShape);
    this.dispatch = [tiles, 1, 1];
  }

  getUserCode(): string {
    const T = SORT_TILE;
    return `
  ${KEY_FN}
  ${PRECEDES_FN}
  var<workgroup> tsKey : array<i32, ${T}>;
  var<workgroup> tsIdx : array<i32, ${T}>;

  fn main(index : i32) {
    let N = uniforms.scoresShape.x;
    let lane = i32(localIndex);
    let base = i32(workgroupId.x) * ${T};
    let n = base + lane;
    if (n < N) {
      tsKey[lane] = rpBest(n);
      tsIdx[lane] = n;
    } else {
      tsKey[lane] = i32(-2147483647 - 1);
      tsIdx[lane] = 2147483647;
    }
    workgroupBarrier();
    for (var size = 2; size <= ${T}; size = size * 2) {
      for (var stride = size / 2; stride > 0; stride = stride / 2) {
        let other = lane ^ stride;
        if (other > lane) {
          let ka = tsKey[lane];
          let ia = tsIdx[lane];
          let kb = tsKey[other];
          let ib = tsIdx[other];
          // Ascending blocks put the preceding element first, descending blocks last.
          let ascending = (lane & size) == 0;
          let swap = select(rpPrecedes(ka, ia, kb, ib), rpPrecedes(kb, ib, ka, ia), ascending);
          if (swap) {
            tsKey[lane] = kb;
            tsIdx[lane] = ib;
            tsKey[other] = ka;
            tsIdx[other] = ia;
          }
        }
        workgroupBarrier();
      }
    }
    let M = uniforms.outShape.y;
    setOutputAtIndexI32(base + lane, tsKey[lane]);
    setOutputAtIndexI32(M + base + lane, tsIdx[lane]);
  }
`;
  }
}

/**
 * Batch priority, step 2: `(scores, expert, sorted [2, M]) -> priority [N]`
 * int32, the tokens by their largest score, highest first, ties by lower
 * token index (a stable sort). Each token's rank is the number of tokens
 * before it in every sorted tile, found by a binary search per tile
 * (O(N · N/T · log T) in all); it writes itself at that rank.
 */
class PriorityProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey = "mogeRoutingPriority";
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  variableNames = ["scores", "expert", "sorted"];
  workgroupSize: [number, number, number] = [WORKGROUP, 1, 1];

  constructor(N: number) {
    this.outputShape = [N];
    this.dispatchLayout = { x: [0] };
    this.dispatch = [Math.ceil(N / WORKGROUP), 1, 1];
  }

  getUserCode(): string {
    const T = SORT_TILE;
    return `
  ${KEY_FN}
  ${PRECEDES_FN}

  fn main(index : i32) {
    let N = uniforms.scoresShape.x;
    if (index >= N) {
      return;
    }
    let mine = rpBest(index);
    let M = uniforms.sortedShape.y;
    var rank = 0;
    for (var base = 0; base < M; base += ${T}) {
      // Lower bound: the tokens of this tile that precede this one form a prefix.
      var lo = 0;
      var hi = ${T};
      while (lo < hi) {
        let mid = (lo + hi) / 2;
        if (rpPrecedes(sorted[base + mid], sorted[M + base + mid], mine, index)) {
          lo = mid + 1;
        } else {
          hi = mid;
        }
      }
      rank += lo;
    }
    setOutputAtIndexI32(rank, index);
  }
`;
  }
}

/** What a {@linkcode ScanProgram} writes. */
type ScanMode = "slotOfChoice" | "choiceOfSlot" | "tokenOfSlot" | "counts";

/**
 * The capacity scan, one workgroup per expert e over the N·k choices in
 * priority order (all first choices, then all second choices, ...): each
 * thread counts e's choices in its block, a workgroup prefix sum turns the
 * counts into positions, and a second walk writes, by mode:
 * - "slotOfChoice" `[N·k]`: e·C + position, or E·C past the capacity C;
 * - "choiceOfSlot" / "tokenOfSlot" `[E·C]`: the choice n·k + j (or token n)
 *   in each of e's C slots, N·k (or N) for an empty slot;
 * - "counts" `[2, E]`: demand (choices of e) and load min(demand, C).
 */
class ScanProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  variableNames = ["expert", "priority"];
  workgroupSize: [number, number, number] = [SCAN_THREADS, 1, 1];
  uniforms = "experts : i32, capacity : i32,";

  constructor(private readonly mode: ScanMode, N: number, E: number, k: number, C: number) {
    this.outputShape = mode === "slotOfChoice" ? [N * k] : mode === "counts" ? [2, E] : [E * C];
    this.dispatchLayout = tfwebgpu.webgpu_util.flatDispatchLayout(this.outputShape);
    this.dispatch = [E, 1, 1];
    this.shaderKey = `mogeRoutingScan_${mode}`;
  }

  getUserCode(): string {
    const T = SCAN_THREADS;
    let finish: string;
    if (this.mode === "counts") {
      finish = `
    if (lane == 0) {
      setOutputAtIndexI32(e, total);
      setOutputAtIndexI32(E + e, min(total, C));
    }`;
    } else if (this.mode === "slotOfChoice") {
      finish = `
    var p = before;
    for (var i = start; i < stop; i++) {
      let j = i / N;
      let c = priority[i - j * N] * K + j;
      if (expert[c] == e) {
        setOutputAtIndexI32(c, select(E * C, e * C + p, p < C));
        p++;
      }
    }`;
    } else {
      const token = this.mode === "tokenOfSlot";
      finish = `
    var p = before;
    for (var i = start; i < stop && p < C; i++) {
      let j = i / N;
      let n = priority[i - j * N];
      if (expert[n * K + j] == e) {
        setOutputAtIndexI32(e * C + p, ${token ? "n" : "n * K + j"});
        p++;
      }
    }
    for (var s = total + lane; s < C; s += ${T}) {
      setOutputAtIndexI32(e * C + s, ${token ? "N" : "N * K"});
    }`;
    }
    return `
  var<workgroup> rsCount : array<i32, ${T}>;

  fn main(index : i32) {
    let e = i32(workgroupId.x);
    let lane = i32(localIndex);
    let N = uniforms.priorityShape;
    let K = uniforms.expertShape.y;
    let E = uniforms.experts;
    let C = uniforms.capacity;
    let L = N * K;
    let B = (L + ${T - 1}) / ${T};
    let start = min(lane * B, L);
    let stop = min(start + B, L);
    var count = 0;
    for (var i = start; i < stop; i++) {
      let j = i / N;
      if (expert[priority[i - j * N] * K + j] == e) {
        count++;
      }
    }
    rsCount[lane] = count;
    workgroupBarrier();
    var before = 0;
    var total = 0;
    for (var t = 0; t < ${T}; t++) {
      let c = rsCount[t];
      if (t < lane) {
        before += c;
      }
      total += c;
    }
    ${finish}
  }
`;
  }
}

/** Runs a program on the webgpu backend and wraps its output as a tracked tensor. */
function run(program: WebGPUProgram, inputs: Tensor[], uniforms?: Uniforms): Tensor {
  const backend = tf.backend() as tfwebgpu.WebGPUBackend;
  const info = backend.runWebGPUProgram(program, inputs, "int32", uniforms);
  return tf.engine().makeTensorFromTensorInfo(info);
}

/** Options of {@linkcode planRoutingWebGPU}. */
export interface DevicePlanOptions {
  /** Choices per token (top-k), 1 <= k <= E. */
  k: number;
  /** Capacity factor C_f (0 or Infinity: no limit). */
  capacityFactor: number;
  /** How C_e follows from C_f (default "tutel", as `planRouting`). */
  capacityRule?: CapacityRule;
}

/**
 * A routing plan as device tensors (int32 unless said). Its buffers are fixed
 * at C_e slots for each of the E experts (`slots = capacity`, all experts
 * active), so every shape is known before the scores are.
 */
export interface DeviceRoutingPlan {
  /** Tokens in the batch. */
  N: number;
  /** Experts. */
  E: number;
  /** Choices per token. */
  k: number;
  /** Expert capacity C_e (as `expertCapacity`). */
  capacity: number;
  /** Slots per expert buffer: always `capacity`; the dispatch tensor is `[E, slots, d]`. */
  slots: number;
  /** Expert of choice j of token n at `[n, j]` (its j-th largest score), `[N, k]`. */
  expert: Tensor2D;
  /** The tokens in batch-priority order (largest top score first, ties by index), `[N]`. */
  priority: Tensor1D;
  /** Flat buffer position `e * slots + s` of each choice `n * k + j`, or `E * slots` when dropped, `[N * k]`. */
  slotOfChoice: Tensor1D;
  /** Token in each buffer position, or `N` for an empty slot, `[E * slots]`. */
  tokenOfSlot: Tensor1D;
  /** Choice `n * k + j` in each buffer position, or `N * k` for an empty slot, `[E * slots]`. */
  choiceOfSlot: Tensor1D;
  /** One-hot of the chosen experts, float32 `[N * k, E]` (for the gates and the load-balancing loss). */
  chosen: Tensor2D;
}

/**
 * Plans top-k routing with batch-prioritized capacity on the webgpu backend,
 * without reading anything back: the same plan as `planRouting(scores, N, E,
 * { k, capacityFactor, capacityRule, slotMultiple: capacity })`, as tensors.
 * Runs 6 kernels (5 when k = 1) and a one-hot. Call it inside a gradient
 * tape freely: the plan is integer data the tape does not differentiate.
 *
 * Unlike the CPU planner it cannot throw on non-finite scores without a
 * readback: NaN orders above +Infinity here (check the loss instead).
 *
 * @param scores the `[N, E]` float32 selection scores (noise included when
 *   training); only their order matters
 *
 * @example
 * ```ts
 * import { tf } from "../deps.ts";
 * import { disposeDevicePlan, planRoutingWebGPU } from "./routing_webgpu.ts";
 * if (tf.getBackend() === "webgpu") {
 *   // 3 tokens, 2 experts, top-1, capacity 1: token 1 (.9) beats token 0 (.8) for expert 0.
 *   const scores = tf.tensor2d([[.8, .2], [.9, .1], [.3, .7]]);
 *   const plan = planRoutingWebGPU(scores, { k: 1, capacityFactor: 0.5 });
 *   console.log(await plan.slotOfChoice.data()); // [2, 0, 1]: token 0 dropped (E·C = 2)
 *   disposeDevicePlan(plan);
 * }
 * ```
 */
export function planRoutingWebGPU(scores: Tensor2D, options: DevicePlanOptions): DeviceRoutingPlan {
  if (tf.getBackend() !== "webgpu") {
    throw new Error(
      `planRoutingWebGPU: needs the webgpu backend, tfjs runs on "${tf.getBackend()}"`,
    );
  }
  if (scores.rank !== 2 || scores.dtype !== "float32") {
    throw new RangeError(
      `planRoutingWebGPU: scores must be float32 [N, E], got ${scores.dtype} [${scores.shape}]`,
    );
  }
  const [N, E] = scores.shape;
  const { k, capacityFactor, capacityRule = "tutel" } = options;
  checkInteger("N (tokens)", N, 1);
  checkInteger("k (top-k)", k, 1, E);
  const C = expertCapacity(N, E, k, capacityFactor, capacityRule);
  const uniforms: Uniforms = [{ type: "int32", data: [E] }, { type: "int32", data: [C] }];
  return tf.tidy(() => {
    const expert = run(new TopKProgram(N, k), [scores]) as Tensor2D; // [N, k]
    const sorted = run(new TileSortProgram(N), [scores, expert]); // [2, M]
    const priority = run(new PriorityProgram(N), [scores, expert, sorted]) as Tensor1D; // [N]
    const scan = (mode: ScanMode) =>
      run(new ScanProgram(mode, N, E, k, C), [expert, priority], uniforms) as Tensor1D;
    const slotOfChoice = scan("slotOfChoice"); // [N * k]
    const choiceOfSlot = scan("choiceOfSlot"); // [E * C]
    const tokenOfSlot = k === 1 ? choiceOfSlot.clone() : scan("tokenOfSlot"); // [E * C]
    // tf.oneHot needs depth >= 2; with one expert every choice is expert 0.
    const chosen = (E === 1
      ? tf.ones([N * k, 1])
      : tf.oneHot(expert.reshape([N * k]), E, 1, 0, "float32")) as Tensor2D; // [N * k, E]
    return {
      N,
      E,
      k,
      capacity: C,
      slots: C,
      expert,
      priority,
      slotOfChoice,
      tokenOfSlot,
      choiceOfSlot,
      chosen,
    };
  });
}

/**
 * Each expert's demand (choices before capacity) and load (after), as an
 * int32 `[2, E]` device tensor: row 0 demand, row 1 load = min(demand, C_e).
 * One kernel, no readback; dropped choices are N·k − Σ load. Feed it to a
 * `RoutingStatsLog` to read statistics back once per logging interval.
 *
 * @example
 * ```ts
 * import { tf } from "../deps.ts";
 * import { disposeDevicePlan, planRoutingWebGPU, routingCountsWebGPU } from "./routing_webgpu.ts";
 * if (tf.getBackend() === "webgpu") {
 *   const plan = planRoutingWebGPU(tf.tensor2d([[.8, .2], [.9, .1], [.3, .7]]), {
 *     k: 1,
 *     capacityFactor: 0.5,
 *   });
 *   const counts = routingCountsWebGPU(plan);
 *   console.log(await counts.array()); // [[2, 1], [1, 1]]
 *   counts.dispose();
 *   disposeDevicePlan(plan);
 * }
 * ```
 */
export function routingCountsWebGPU(plan: DeviceRoutingPlan): Tensor2D {
  const { N, E, k, capacity } = plan;
  const uniforms: Uniforms = [{ type: "int32", data: [E] }, { type: "int32", data: [capacity] }];
  return tf.tidy(() =>
    run(new ScanProgram("counts", N, E, k, capacity), [plan.expert, plan.priority], uniforms)
      .reshape([2, E]) as Tensor2D
  ); // [2, E]
}

/**
 * Frees the tensors of a {@linkcode DeviceRoutingPlan}.
 *
 * @example
 * ```ts
 * import { tf } from "../deps.ts";
 * import { disposeDevicePlan, planRoutingWebGPU } from "./routing_webgpu.ts";
 * if (tf.getBackend() === "webgpu") {
 *   disposeDevicePlan(planRoutingWebGPU(tf.tensor2d([[1, 0]]), { k: 1, capacityFactor: 1 }));
 * }
 * ```
 */
export function disposeDevicePlan(plan: DeviceRoutingPlan): void {
  tf.dispose([
    plan.expert,
    plan.priority,
    plan.slotOfChoice,
    plan.tokenOfSlot,
    plan.choiceOfSlot,
    plan.chosen,
  ]);
}
