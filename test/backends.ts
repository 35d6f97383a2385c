/**
 * Which tfjs backends the tests can run on here: cpu and wasm always, webgpu
 * when the runtime has a WebGPU adapter (llvmpipe counts: it runs the real
 * WebGPU code paths, slowly).
 *
 * A test file that may use webgpu also gets an `afterAll` hook that releases
 * the WebGPU backend and destroys its `GPUDevice` once the file's tests are
 * done, so that no device (and no llvmpipe worker thread) is alive when the
 * test worker and then the process exit: with several devices alive at exit,
 * deno has (rarely) aborted after an all-passed summary with glibc's
 * "corrupted size vs. prev_size in fastbins".
 *
 * @module
 */

import { type BackendName, webgpuAdapter } from "../src/backend.ts";
import { tf } from "../src/deps.ts";

let teardownRegistered = false;

/**
 * Releases this worker's WebGPU backend: waits for queued GPU work, disposes
 * the tfjs backend (its buffers) and destroys the device. Safe to call when
 * webgpu was never used.
 */
export async function releaseWebgpu(): Promise<void> {
  const backend = tf.engine().registry["webgpu"] as
    | { device?: GPUDevice; dispose?: () => void }
    | undefined;
  const device = backend?.device;
  if (!device) return;
  await device.queue.onSubmittedWorkDone().catch(() => {});
  if (tf.getBackend() === "webgpu") {
    // Leave tfjs on a backend that needs no device (its tensors on webgpu are gone with it).
    await tf.setBackend("cpu").catch(() => false);
  }
  tf.removeBackend("webgpu"); // disposes the backend: its buffer and texture pools
  device.destroy();
}

/** The backends available in this process. */
export async function availableBackends(): Promise<BackendName[]> {
  const list: BackendName[] = ["cpu", "wasm"];
  if (await webgpuAdapter()) {
    list.push("webgpu");
    if (!teardownRegistered) {
      teardownRegistered = true;
      Deno.test.afterAll(releaseWebgpu);
    }
  }
  return list;
}
