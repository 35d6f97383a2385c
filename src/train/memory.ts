/**
 * How much memory a training run needs, and whether the chosen tfjs backend
 * has it: an upper bound on E (and on the other size flags) that refuses a
 * run up front, naming the bytes needed and the backend's limit, instead of
 * ending in "Array buffer allocation failed", "memory access out of bounds"
 * or "Aborted()" after the data has loaded.
 *
 * The estimate counts float32 (4-byte) values:
 * - parameters P, their gradients P and AdamW's two moments 2P (4P in all);
 * - per step activations, forward values and their gradients (x2): the router's
 *   `[N, E]` tensors (logits, noisy logits, softmax z, one-hot choices
 *   `[N, k, E]`, the MoGE maps), the expert rows, and on WebGPU's batched
 *   expert path the `[A, ...]` stack of the buffered experts' weights
 *   (A = E, no compaction assumed), plus each transformer block's values
 *   (a width count fitted to tfjs's peak bytes, see `BLOCK_WIDTHS`).
 * It is meant to refuse runs that cannot fit, not to predict peak memory
 * exactly: on wasm it came within 0.8-1.3x of tf.profile's peak bytes for the
 * presets measured (bench/memory_calibration.ts); the data sets, held in JS
 * arrays, are left out.
 *
 * @module
 */

import { expertCapacity } from "../moe/routing.ts";
import { parseMoeBlocks } from "./vit_task.ts";

/** Bytes of one float32 value. */
const F32 = 4;

/**
 * Forward values per token per transformer block, in units of the block's
 * width (plus 3 [B, heads, T, T] attention tensors). Fitted to tfjs's own
 * peak-byte count (tf.profile) of one training step on wasm, which keeps every
 * intermediate of the block on the gradient tape: vit-tiny, lm-small and
 * lm-paper at batch 8 needed 200-230 widths per token per block
 * (bench/memory_calibration.ts).
 */
const BLOCK_WIDTHS = 200;

/** A tfjs backend (as src/backend.ts's MemoryBackend). */
export type MemoryBackend = "webgpu" | "wasm" | "cpu";

/** The models a run can train. */
export type ModelKind = "classifier" | "vit" | "lm";

/** What a run needs, in bytes (see the module notes for what is counted). */
export interface MemoryEstimate {
  /** Trainable scalars P. */
  parameters: number;
  /** 4 · P: the weights. */
  parameterBytes: number;
  /** 4 · 3P: gradients and AdamW's first and second moments. */
  optimizerBytes: number;
  /** Activations of one training step, forward and backward. */
  activationBytes: number;
  /** The sum of the three. */
  totalBytes: number;
  /** The largest single tensor (it must fit one WebGPU buffer). */
  largestTensor: { name: string; bytes: number };
}

/** One MoE layer's sizes. */
interface MoeSizes {
  /** Tokens per step N. */
  tokens: number;
  /** Input (= output) width d. */
  dim: number;
  /** Expert hidden width d_ff. */
  hidden: number;
  /** Experts E. */
  experts: number;
  /** Experts per token k. */
  topK: number;
  /** Capacity factor C_f (0: none). */
  capacityFactor: number;
  /** Router bias. */
  routerBias: boolean;
}

/** Parameters of one MoE layer: router d·E (+E) and E experts d·F + F + F·d + d. */
function moeParameters(m: MoeSizes): number {
  const expert = m.dim * m.hidden + m.hidden + m.hidden * m.dim + m.dim;
  return m.dim * m.experts + (m.routerBias ? m.experts : 0) + m.experts * expert;
}

/** Activation floats of one MoE layer in one step (forward only; the caller doubles). */
function moeActivations(m: MoeSizes, batched: boolean): number {
  const { tokens: N, dim: d, hidden: F, experts: E, topK: k } = m;
  // logits, noisy logits, softmax z, importance probs, two MoGE map intermediates: 6 x [N, E];
  // one-hot choices and the gate products: 3 x [N, k, E].
  const router = 6 * N * E + 3 * N * k * E;
  if (!batched) return router + N * k * (2 * d + 2 * F); // looped: [R, d], [R, F] x 2, [R, d]
  const slots = expertCapacity(N, E, Math.min(k, E), m.capacityFactor);
  const rows = E * slots; // [A, C, ·] buffers with A = E
  const stacked = E * (d * F + F + F * d + d); // tf.stack of the experts' weights
  return router + rows * (2 * d + 2 * F) + stacked;
}

/** Builds the estimate from P, the activation floats and the largest tensor. */
function estimate(
  parameters: number,
  activationFloats: number,
  largest: [string, number][],
): MemoryEstimate {
  const parameterBytes = parameters * F32;
  const optimizerBytes = 3 * parameters * F32;
  const activationBytes = 2 * activationFloats * F32;
  const [name, floats] = largest.reduce((a, b) => (b[1] > a[1] ? b : a));
  return {
    parameters,
    parameterBytes,
    optimizerBytes,
    activationBytes,
    totalBytes: parameterBytes + optimizerBytes + activationBytes,
    largestTensor: { name, bytes: floats * F32 },
  };
}

/** The fields of the classifier's config (TrainConfig) that size it. */
export interface ClassifierSizes {
  /** E */
  experts: number;
  /** k */
  topK: number;
  /** d_ff */
  hiddenDim: number;
  /** images per step N */
  batchSize: number;
  /** C_f (0: no limit) */
  capacityFactor: number;
}

/**
 * Memory of the Fashion-MNIST classifier: one MoE layer of E experts
 * 784 -> d_ff -> 784 (no router bias) and a linear 784 -> 10 head.
 *
 * @param batched true on WebGPU (batched experts: stacked weights per step)
 *
 * @example
 * ```ts
 * import { estimateClassifierMemory } from "./memory.ts";
 * const m = estimateClassifierMemory({ experts: 64, topK: 1, hiddenDim: 64, batchSize: 200, capacityFactor: 4 });
 * m.parameters; // 6527306
 * ```
 */
export function estimateClassifierMemory(c: ClassifierSizes, batched = false): MemoryEstimate {
  const m: MoeSizes = {
    tokens: c.batchSize,
    dim: 784,
    hidden: c.hiddenDim,
    experts: c.experts,
    topK: c.topK,
    capacityFactor: c.capacityFactor,
    routerBias: false,
  };
  const parameters = moeParameters(m) + 784 * 10 + 10;
  const activations = moeActivations(m, batched) + c.batchSize * (2 * 784 + 2 * 10);
  return estimate(parameters, activations, [
    ["router.w [784, E]", 784 * c.experts],
    ["expert w1 [784, d_ff]", 784 * c.hiddenDim],
    ["router scores [N, k, E]", c.batchSize * c.topK * c.experts],
    ...(batched
      ? [["stacked w1 [E, 784, d_ff]", c.experts * 784 * c.hiddenDim] as [
        string,
        number,
      ]]
      : []),
  ]);
}

/** The fields of the ViT's config that size it. */
export interface VitSizes {
  /** image side in pixels */
  imageSize: number;
  /** patch side p */
  patchSize: number;
  /** width D */
  embedDim: number;
  /** blocks */
  depth: number;
  /** attention heads */
  numHeads: number;
  /** MLP / expert hidden width M */
  mlpDim: number;
  /** "cls" adds a class token */
  pool: string;
  /** which blocks are MoE (parseMoeBlocks) */
  moeBlocks: string;
  /** E */
  experts: number;
  /** k */
  topK: number;
  /** images per step B */
  batchSize: number;
  /** C_f (0: no limit) */
  capacityFactor: number;
}

/**
 * Memory of the Vision Transformer (V-MoE): patch embedding, `depth` blocks
 * (attention and an MLP, an MoE of E experts in the `moeBlocks`), a 10-class
 * head; 1-channel images.
 *
 * @example
 * ```ts
 * import { estimateVitMemory } from "./memory.ts";
 * import { DEFAULT_VIT_CONFIG } from "./vit_task.ts";
 * estimateVitMemory(DEFAULT_VIT_CONFIG).totalBytes > 0; // true
 * ```
 */
export function estimateVitMemory(c: VitSizes, batched = false): MemoryEstimate {
  const D = c.embedDim, M = c.mlpDim, B = c.batchSize;
  const T = (c.imageSize / c.patchSize) ** 2 + (c.pool === "cls" ? 1 : 0); // tokens per image
  const moeCount = parseMoeBlocks(c.moeBlocks, c.depth).length;
  const m: MoeSizes = {
    tokens: B * T,
    dim: D,
    hidden: M,
    experts: c.experts,
    topK: c.topK,
    capacityFactor: c.capacityFactor,
    routerBias: false,
  };
  const attention = 4 * D * D + 4 * D + 4 * D; // q, k, v, o and two layer norms
  const mlp = 2 * D * M + M + D;
  const parameters = c.patchSize ** 2 * D + D + T * D + D + // patch embedding, positions, cls
    c.depth * attention + (c.depth - moeCount) * mlp + moeCount * moeParameters(m) +
    2 * D + D * 10 + 10;
  const block = BLOCK_WIDTHS * B * T * D + 3 * B * c.numHeads * T * T;
  const activations = c.depth * block + (c.depth - moeCount) * 2 * B * T * M +
    moeCount * moeActivations(m, batched);
  return estimate(parameters, activations, [
    ["router scores [B·T, k, E]", B * T * c.topK * c.experts],
    ["attention scores [B, heads, T, T]", B * c.numHeads * T * T],
    ["mlp w [D, M]", D * M],
    ...(batched && moeCount > 0
      ? [["stacked w1 [E, D, M]", c.experts * D * M] as [string, number]]
      : []),
  ]);
}

/** The fields of the LM's config that size it. */
export interface LmSizes {
  /** blocks */
  layers: number;
  /** width d */
  hidden: number;
  /** attention heads */
  heads: number;
  /** E */
  experts: number;
  /** k */
  topK: number;
  /** expert hidden width d_ff */
  expertHidden: number;
  /** tokens per sequence T */
  contextLength: number;
  /** sequences per step B */
  batchSize: number;
  /** C_f (0: no limit) */
  capacityFactor: number;
}

/**
 * Memory of the MoE language model: token and position embeddings, `layers`
 * blocks of attention and an MoE of E experts (router bias), a vocabulary head.
 *
 * @param vocabSize characters in the vocabulary (the data's; 256 bounds the usual ones)
 *
 * @example
 * ```ts
 * import { estimateLmMemory } from "./memory.ts";
 * import { DEFAULT_LM_CONFIG } from "./lm_task.ts";
 * estimateLmMemory(DEFAULT_LM_CONFIG).parameters > 0; // true
 * ```
 */
export function estimateLmMemory(c: LmSizes, vocabSize = 256, batched = false): MemoryEstimate {
  const d = c.hidden, T = c.contextLength, B = c.batchSize, V = vocabSize;
  const m: MoeSizes = {
    tokens: B * T,
    dim: d,
    hidden: c.expertHidden,
    experts: c.experts,
    topK: c.topK,
    capacityFactor: c.capacityFactor,
    routerBias: true,
  };
  const perLayer = 4 * d + 4 * d * d + moeParameters(m);
  const parameters = V * d + T * d + c.layers * perLayer + 2 * d + d * V + V;
  const block = BLOCK_WIDTHS * B * T * d + 3 * B * c.heads * T * T;
  const activations = c.layers * (block + moeActivations(m, batched)) + 2 * B * T * V;
  return estimate(parameters, activations, [
    ["router scores [B·T, k, E]", B * T * c.topK * c.experts],
    ["attention scores [B, heads, T, T]", B * c.heads * T * T],
    ["logits [B·T, V]", B * T * V],
    ...(batched
      ? [["stacked w1 [E, d, d_ff]", c.experts * d * c.expertHidden] as [string, number]]
      : []),
  ]);
}

/**
 * The estimate for `model` from its training config (the CLI's entry point).
 *
 * @example
 * ```ts
 * import { estimateMemory } from "./memory.ts";
 * import { DEFAULT_CONFIG } from "./classifier_config.ts";
 * estimateMemory("classifier", DEFAULT_CONFIG, "wasm").parameters; // 6527306
 * ```
 */
export function estimateMemory(
  model: ModelKind,
  cfg: ClassifierSizes | VitSizes | LmSizes,
  backend: MemoryBackend,
  vocabSize = 256,
): MemoryEstimate {
  const batched = backend === "webgpu";
  if (model === "classifier") return estimateClassifierMemory(cfg as ClassifierSizes, batched);
  if (model === "vit") return estimateVitMemory(cfg as VitSizes, batched);
  return estimateLmMemory(cfg as LmSizes, vocabSize, batched);
}

/** What a backend can hold. */
export interface MemoryLimit {
  /** The backend. */
  backend: MemoryBackend;
  /** Bytes all tensors together may take. */
  totalBytes: number;
  /** Bytes one tensor may take (WebGPU's largest storage buffer; else totalBytes). */
  tensorBytes: number;
  /** Where the limit comes from, for the message. */
  source: string;
}

/**
 * tfjs-wasm's heap: its memory grows to at most 4 GiB - 64 KiB (`getHeapMax()`
 * in tfjs-backend-wasm 4.22.0; a one-step lm-paper run at batch 24 grew it to
 * 3.7 GiB here, so it is not the 2 GiB once assumed).
 */
export const WASM_HEAP_BYTES = 4294901760;

/** The share of system memory a cpu or webgpu (llvmpipe: system memory) run may plan to use. */
export const SYSTEM_MEMORY_SHARE = 0.75;

/**
 * The memory limit of a backend, from what the machine reports: wasm 4 GiB;
 * cpu 3/4 of the system memory; webgpu the adapter's maxBufferSize /
 * maxStorageBufferBindingSize for one tensor, and 3/4 of the system memory in
 * all (a software adapter such as llvmpipe uses system memory; for a discrete
 * GPU this is an upper bound).
 *
 * @param info system memory in bytes and, for webgpu, the adapter's limits
 *
 * @example
 * ```ts
 * import { memoryLimitOf } from "./memory.ts";
 * memoryLimitOf("wasm", { systemBytes: 8 * 1024 ** 3 }).totalBytes; // 4294901760
 * ```
 */
export function memoryLimitOf(
  backend: MemoryBackend,
  info: { systemBytes: number; maxBufferSize?: number; maxStorageBufferBindingSize?: number },
): MemoryLimit {
  const system = Math.floor(info.systemBytes * SYSTEM_MEMORY_SHARE);
  const systemSource = `${100 * SYSTEM_MEMORY_SHARE}% of the ${
    formatBytes(info.systemBytes)
  } system memory`;
  if (backend === "wasm") {
    const total = Math.min(WASM_HEAP_BYTES, system);
    return {
      backend,
      totalBytes: total,
      tensorBytes: total,
      source: total === WASM_HEAP_BYTES ? "tfjs-wasm's 4 GiB heap" : systemSource,
    };
  }
  if (backend === "cpu") {
    return { backend, totalBytes: system, tensorBytes: system, source: systemSource };
  }
  const buffer = Math.min(
    info.maxBufferSize ?? Infinity,
    info.maxStorageBufferBindingSize ?? Infinity,
  );
  return {
    backend,
    totalBytes: system,
    tensorBytes: Math.min(buffer, system),
    source: `${systemSource}; one tensor at most the adapter's ${
      formatBytes(buffer)
    } (maxBufferSize / maxStorageBufferBindingSize)`,
  };
}

/**
 * The machine's memory in bytes: Deno.systemMemoryInfo (needs --allow-sys),
 * else /proc/meminfo's MemTotal (needs --allow-read), else 8 GiB.
 */
async function systemMemoryBytes(): Promise<number> {
  try {
    return Deno.systemMemoryInfo().total;
  } catch { /* no --allow-sys: try /proc */ }
  try {
    const m = /^MemTotal:\s+(\d+) kB/m.exec(await Deno.readTextFile("/proc/meminfo"));
    if (m) return Number(m[1]) * 1024;
  } catch { /* not Linux, or no --allow-read */ }
  return 8 * 1024 ** 3;
}

/**
 * The memory limit of a backend on this machine (asks the WebGPU adapter
 * for its limits when `backend` is webgpu).
 *
 * @example
 * ```ts
 * import { backendMemoryLimit } from "./memory.ts";
 * const limit = await backendMemoryLimit("wasm");
 * limit.totalBytes <= 4 * 1024 ** 3; // true
 * ```
 */
export async function backendMemoryLimit(backend: MemoryBackend): Promise<MemoryLimit> {
  const systemBytes = await systemMemoryBytes();
  if (backend !== "webgpu") return memoryLimitOf(backend, { systemBytes });
  const gpu = (globalThis.navigator as { gpu?: GPU } | undefined)?.gpu;
  const adapter = await gpu?.requestAdapter().catch(() => null);
  return memoryLimitOf(backend, {
    systemBytes,
    maxBufferSize: adapter?.limits.maxBufferSize,
    maxStorageBufferBindingSize: adapter?.limits.maxStorageBufferBindingSize,
  });
}

/**
 * Bytes as a short human-readable size (binary units).
 *
 * @example
 * ```ts
 * import { formatBytes } from "./memory.ts";
 * formatBytes(2 * 1024 ** 3); // "2.0 GiB"
 * ```
 */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return `${bytes} B`;
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  let v = bytes, u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  if (v >= 1024) return `${bytes.toExponential(2)} B`;
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

/**
 * Refuses a run that does not fit: throws a one-line `RangeError` naming the
 * memory needed (parameters, optimizer state, activations), the backend's
 * limit and where it comes from.
 *
 * @param what the run, for the message (e.g. "--experts 20000 --mode moe")
 *
 * @example
 * ```ts
 * import { checkMemory, estimateClassifierMemory, memoryLimitOf } from "./memory.ts";
 * const need = estimateClassifierMemory({ experts: 64, topK: 1, hiddenDim: 64, batchSize: 200, capacityFactor: 4 });
 * checkMemory(need, memoryLimitOf("wasm", { systemBytes: 8 * 1024 ** 3 })); // fits: no throw
 * ```
 */
export function checkMemory(need: MemoryEstimate, limit: MemoryLimit, what = "this run"): void {
  const parts = `${formatBytes(need.parameterBytes)} weights (${
    need.parameters.toExponential(2)
  } parameters) + ${formatBytes(need.optimizerBytes)} gradients and AdamW state + ${
    formatBytes(need.activationBytes)
  } activations`;
  if (!(need.totalBytes <= limit.totalBytes)) {
    throw new RangeError(
      `${what} needs about ${formatBytes(need.totalBytes)} (${parts}), more than the ` +
        `${
          formatBytes(limit.totalBytes)
        } the ${limit.backend} backend can use (${limit.source}); ` +
        `use fewer experts, a smaller width or batch, or another backend`,
    );
  }
  if (!(need.largestTensor.bytes <= limit.tensorBytes)) {
    throw new RangeError(
      `${what} needs a ${
        formatBytes(need.largestTensor.bytes)
      } tensor (${need.largestTensor.name}), ` +
        `more than the ${formatBytes(limit.tensorBytes)} one ${limit.backend} buffer can hold ` +
        `(${limit.source}); use fewer experts, a smaller width or batch, or another backend`,
    );
  }
}
