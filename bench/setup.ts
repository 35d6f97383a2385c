/**
 * Shared set-up of the overhead benchmarks: the backend from `MOGE_BACKEND`,
 * the Fashion-MNIST model of a given E and d_ff in MoE and MoGE mode with the
 * same seed, and a fixed batch.
 *
 * @module
 */

import { tf } from "../src/deps.ts";
import {
  type BackendInfo,
  type BackendRequest,
  describeBackend,
  useBackend,
} from "../src/backend.ts";
import { type ClassifierConfig, MoeClassifier } from "../src/models/classifier.ts";
import { AdamW } from "../src/train/optim.ts";
import type { RegularizerSettings } from "../src/moe/moe_layer.ts";
import { trainStep } from "../src/train/classifier_task.ts";

/** A benchmark model: MoE or MoGE, with its optimizer and a fixed batch. */
export interface BenchModel {
  model: MoeClassifier;
  opt: AdamW;
  reg: RegularizerSettings;
  step: () => Promise<void>;
  dispose: () => void;
}

/** The paper's settings for the step benchmarks: top-1, batch 200, C_f 4, λ 4e-3, σ 1.5, 3x3 Gaussian. */
export const BENCH = { batch: 200, topK: 1, capacityFactor: 4, lambda: 4e-3, sigma: 1.5 };

/** Switches to the backend named by `MOGE_BACKEND` (default auto) and describes it. */
export async function benchBackend(
  request?: string,
): Promise<{ info: BackendInfo; label: string }> {
  const name = (request ?? Deno.env.get("MOGE_BACKEND") ?? "auto") as BackendRequest;
  const info = await useBackend(name);
  return { info, label: describeBackend(info) };
}

/** A fixed batch of 200 random images in [0, 1) and labels. */
export function benchBatch(seed = 1): { x: tf.Tensor2D; y: tf.Tensor1D } {
  return {
    x: tf.randomUniform([BENCH.batch, 784], 0, 1, "float32", seed) as tf.Tensor2D,
    y: tf.tensor1d(Array.from({ length: BENCH.batch }, (_, i) => i % 10), "int32"),
  };
}

/**
 * Builds a model of E experts (d -> hidden -> d) whose `step()` runs one full
 * training step (forward, backward, AdamW update with learning rate 0) and
 * waits for it to finish (one small readback).
 * `mode` "moe" computes no regularizer at all; "moge" adds λ·mean R(z).
 * `extra` overrides the model's settings (e.g. `{ router: "sinkhorn" }`).
 */
export function benchModel(
  mode: "moe" | "moge",
  experts: number,
  hidden: number,
  batch: { x: tf.Tensor2D; y: tf.Tensor1D },
  extra: Partial<ClassifierConfig> = {},
): BenchModel {
  const model = new MoeClassifier({
    inputDim: 784,
    numClasses: 10,
    experts,
    topK: BENCH.topK,
    hiddenDim: hidden,
    activation: "gelu",
    capacityFactor: BENCH.capacityFactor,
    loadBalanceWeight: 0.01,
    ...extra,
  }, 7);
  const opt = new AdamW({ learningRate: 1e-3, weightDecay: 0.05 });
  const reg: RegularizerSettings = {
    lambda: BENCH.lambda,
    sigma: BENCH.sigma,
    filterSize: 3,
    filter: "gaussian",
  };
  let i = 0;
  return {
    model,
    opt,
    reg,
    step: async () => {
      // Learning rate 0: AdamW does all its work but the weights stay put, so
      // MoE and MoGE (same seed, same batch, same noise) route identically at
      // every step and differ only by the regularizer.
      const step = i++;
      const { stats, routing } = trainStep(model, opt, batch.x, batch.y, {
        noiseSeed: step,
        step,
        reg: mode === "moge" ? reg : null,
        lr: 0,
      });
      routing.counts?.dispose(); // webgpu: the device counts (no statistics here)
      await stats.data(); // wait for the step to finish on the device
      stats.dispose();
    },
    dispose: () => {
      model.dispose();
      opt.dispose();
    },
  };
}

/** Runs `n` warm-up steps (webgpu compiles its shaders on first use). */
export async function warmUp(m: BenchModel, n = 3): Promise<void> {
  for (let i = 0; i < n; i++) await m.step();
}
