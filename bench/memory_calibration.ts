/**
 * Compares src/train/memory.ts's estimate with the peak tensor bytes tfjs
 * reports (tf.profile) for one training step of each model, and the size the
 * wasm heap grew to. Usage: deno run -A bench/memory_calibration.ts [wasm|cpu|webgpu]
 *
 * @module
 */
import { tf } from "../src/deps.ts";
import { type BackendRequest, useBackend } from "../src/backend.ts";
import { estimateMemory, formatBytes, type MemoryEstimate } from "../src/train/memory.ts";
import { DEFAULT_CONFIG } from "../src/train/classifier_config.ts";
import { buildModel, trainStep } from "../src/train/classifier_task.ts";
import { buildVit, DEFAULT_VIT_CONFIG, VIT_PRESETS, vitTrainStep } from "../src/train/vit_task.ts";
import { DEFAULT_LM_CONFIG, LM_PRESETS, lmModelConfig, lmTrainStep } from "../src/train/lm_task.ts";
import { MoeLm } from "../src/models/lm.ts";
import { AdamW } from "../src/train/optim.ts";

const backend = await useBackend((Deno.args[0] ?? "wasm") as BackendRequest);
const reg = { lambda: 0.01, sigma: 10, filterSize: 3, filter: "gaussian" as const };

async function measure(name: string, est: MemoryEstimate, step: () => Promise<void>) {
  const t0 = performance.now();
  const prof = await tf.profile(step);
  const heap = (tf.backend() as unknown as { wasm?: { HEAPU8: Uint8Array } }).wasm?.HEAPU8.buffer
    .byteLength;
  console.log(
    `${name}: measured peak ${formatBytes(prof.peakBytes)}, estimate ${
      formatBytes(est.totalBytes)
    }` +
      ` (ratio ${(est.totalBytes / prof.peakBytes).toFixed(2)})` +
      (heap ? `, wasm heap ${formatBytes(heap)}` : "") +
      `, ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
}

for (const experts of [64, 400]) {
  const cfg = { ...DEFAULT_CONFIG, experts };
  const model = buildModel(cfg, { imageSize: 28, numClasses: 10 } as never);
  const opt = new AdamW({ learningRate: 1e-3, weightDecay: 0.05 });
  const x = tf.randomUniform([cfg.batchSize, 784]) as tf.Tensor2D;
  const y = tf.randomUniformInt([cfg.batchSize], 0, 10) as tf.Tensor1D;
  await measure(
    `classifier E=${experts} moge`,
    estimateMemory("classifier", cfg, backend.backend),
    async () => {
      (await trainStep(model, opt, x, y, { noiseSeed: 1, reg, lr: 1e-3 })).stats.dispose();
    },
  );
}
{
  const cfg = { ...DEFAULT_VIT_CONFIG, ...VIT_PRESETS["vit-tiny"] };
  const model = buildVit(cfg);
  const opt = new AdamW({ learningRate: 1e-3, weightDecay: 0.05 });
  const x = tf.randomUniform([cfg.batchSize, cfg.imageSize * cfg.imageSize]) as tf.Tensor2D;
  const y = tf.randomUniformInt([cfg.batchSize], 0, 10) as tf.Tensor1D;
  await measure("vit-tiny moge", estimateMemory("vit", cfg, backend.backend), async () => {
    (await vitTrainStep(model, opt, x, y, { seed: 1, reg, lr: 1e-3, labelSmoothing: 0.1 })).stats
      .dispose();
  });
}
for (
  const [name, over] of [["lm-small", {}], ["lm-paper batch 8", {
    ...LM_PRESETS["lm-paper"],
    batchSize: 8,
  }]] as const
) {
  const cfg = { ...DEFAULT_LM_CONFIG, ...over };
  const V = 100;
  const model = new MoeLm(lmModelConfig(cfg, V), 1);
  const opt = new AdamW({ learningRate: 1e-3, weightDecay: 0 });
  const x = tf.randomUniformInt([cfg.batchSize, cfg.contextLength], 0, V) as tf.Tensor2D;
  const y = tf.randomUniformInt([cfg.batchSize, cfg.contextLength], 0, V) as tf.Tensor2D;
  await measure(name, estimateMemory("lm", cfg, backend.backend, V), async () => {
    (await lmTrainStep(model, opt, x, y, { seed: 1, reg, lr: 1e-3 })).stats.dispose();
  });
}
{
  const cfg = { ...DEFAULT_LM_CONFIG, ...LM_PRESETS["lm-paper"], batchSize: 24 };
  const V = 100;
  const model = new MoeLm(lmModelConfig(cfg, V), 1);
  const opt = new AdamW({ learningRate: 1e-3, weightDecay: 0 });
  const x = tf.randomUniformInt([cfg.batchSize, cfg.contextLength], 0, V) as tf.Tensor2D;
  const y = tf.randomUniformInt([cfg.batchSize, cfg.contextLength], 0, V) as tf.Tensor2D;
  await measure("lm-paper batch 24", estimateMemory("lm", cfg, backend.backend, V), async () => {
    (await lmTrainStep(model, opt, x, y, { seed: 1, reg, lr: 1e-3 })).stats.dispose();
  });
}
