/**
 * Choosing and reporting the tfjs backend (webgpu, wasm or cpu).
 *
 * @module
 */

import { tf, TFJS_VERSION } from "./deps.ts";

/** A backend a user may ask for; `auto` picks webgpu on a real GPU, else wasm. */
export type BackendRequest = "auto" | "webgpu" | "wasm" | "cpu";

/** A concrete tfjs backend. */
export type BackendName = "webgpu" | "wasm" | "cpu";

/** The backends {@linkcode useBackend} accepts. */
export const BACKEND_REQUESTS: readonly BackendRequest[] = ["auto", "webgpu", "wasm", "cpu"];

/** The WebGPU adapter found, as far as the runtime describes it. */
export interface AdapterInfo {
  /** Human-readable adapter name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`. */
  description: string;
  /** Vendor string or id. */
  vendor: string;
  /** Architecture string (often empty). */
  architecture: string;
  /** True for a software (CPU) adapter such as llvmpipe. */
  isFallbackAdapter: boolean;
}

/** What {@linkcode useBackend} switched to, for logs and reports. */
export interface BackendInfo {
  /** The backend asked for. */
  requested: BackendRequest;
  /** The backend tfjs now runs on. */
  backend: BackendName;
  /** The WebGPU adapter, if one was found (whatever backend was chosen). */
  adapter: AdapterInfo | null;
  /** Version of tfjs. */
  tfjs: string;
  /** Runtime and version, e.g. `deno 2.9.6`. */
  runtime: string;
}

/**
 * Finds the WebGPU adapter, or `null` when the runtime has no WebGPU or no
 * adapter.
 *
 * @example
 * ```ts
 * import { webgpuAdapter } from "./backend.ts";
 * const adapter = await webgpuAdapter();
 * console.log(adapter?.description ?? "no WebGPU adapter");
 * ```
 */
export async function webgpuAdapter(): Promise<AdapterInfo | null> {
  const gpu = (globalThis.navigator as { gpu?: GPU } | undefined)?.gpu;
  if (!gpu) return null;
  let adapter: GPUAdapter | null = null;
  try {
    adapter = await gpu.requestAdapter();
  } catch {
    return null;
  }
  if (!adapter) return null;
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  return {
    description: info.description || info.device || "unknown adapter",
    vendor: info.vendor ?? "",
    architecture: info.architecture ?? "",
    isFallbackAdapter: Boolean(
      info.isFallbackAdapter ?? (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter,
    ),
  };
}

function runtimeName(): string {
  const deno = (globalThis as { Deno?: { version?: { deno?: string } } }).Deno;
  if (deno?.version?.deno) return `deno ${deno.version.deno}`;
  return typeof navigator !== "undefined" ? navigator.userAgent : "unknown";
}

/**
 * Switches tfjs to a backend and reports what it got. Unlike tfjs's
 * `setBackend`, which returns `false` on failure, this throws an error that
 * names the backend and the reason.
 *
 * `auto` chooses webgpu when a hardware WebGPU adapter is present and wasm
 * otherwise (on a software adapter such as llvmpipe, wasm is faster). On
 * webgpu, `WEBGPU_CPU_FORWARD` is turned off so that small ops really run on
 * the GPU. Production mode is enabled, which also silences tfjs's console
 * banners.
 *
 * @example
 * ```ts
 * import { useBackend } from "./backend.ts";
 * const info = await useBackend("cpu");
 * console.log(info.backend); // "cpu"
 * ```
 */
export async function useBackend(request: BackendRequest = "auto"): Promise<BackendInfo> {
  if (!BACKEND_REQUESTS.includes(request)) {
    throw new RangeError(
      `unknown backend "${request}": allowed are ${BACKEND_REQUESTS.join(", ")}`,
    );
  }
  tf.enableProdMode();
  const adapter = await webgpuAdapter();
  let backend: BackendName;
  if (request === "auto") {
    backend = adapter && !adapter.isFallbackAdapter ? "webgpu" : "wasm";
  } else {
    backend = request;
  }
  if (backend === "webgpu") {
    if (!adapter) {
      throw new Error(
        `backend "webgpu" is unavailable: this runtime has no WebGPU adapter` +
          ` (navigator.gpu is ${
            (globalThis.navigator as { gpu?: unknown })?.gpu ? "present" : "missing"
          }); use --backend wasm or cpu`,
      );
    }
    tf.env().set("WEBGPU_CPU_FORWARD", false);
  }
  if (tf.getBackend() !== backend) {
    let ok = false;
    let reason = "tfjs's setBackend returned false";
    try {
      ok = await tf.setBackend(backend);
    } catch (e) {
      reason = (e as Error).message;
    }
    if (!ok) {
      throw new Error(
        `backend "${backend}" failed to initialise: ${reason}` +
          (backend === "wasm" ? " (the wasm backend needs --allow-read to load its binary)" : ""),
      );
    }
  }
  await tf.ready();
  if (tf.getBackend() !== backend) {
    throw new Error(`backend "${backend}" was requested but tfjs runs on "${tf.getBackend()}"`);
  }
  return { requested: request, backend, adapter, tfjs: TFJS_VERSION, runtime: runtimeName() };
}

/**
 * One line describing a backend, for logs: `wasm (adapter: llvmpipe ..., fallback)`.
 *
 * @example
 * ```ts
 * import { describeBackend } from "./backend.ts";
 * console.log(describeBackend({
 *   requested: "cpu", backend: "cpu", adapter: null, tfjs: "4.22.0", runtime: "deno",
 * })); // "cpu (no WebGPU adapter)"
 * ```
 */
export function describeBackend(info: BackendInfo): string {
  const a = info.adapter;
  const adapter = a
    ? `adapter: ${a.description}${a.isFallbackAdapter ? ", software fallback" : ""}`
    : "no WebGPU adapter";
  return `${info.backend} (${adapter})`;
}
