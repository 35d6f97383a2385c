/**
 * Which tfjs backends the tests can run on here: cpu and wasm always, webgpu
 * when the runtime has a WebGPU adapter (llvmpipe counts: it runs the real
 * WebGPU code paths, slowly).
 *
 * @module
 */

import { type BackendName, webgpuAdapter } from "../src/backend.ts";

/** The backends available in this process. */
export async function availableBackends(): Promise<BackendName[]> {
  const list: BackendName[] = ["cpu", "wasm"];
  if (await webgpuAdapter()) list.push("webgpu");
  return list;
}
