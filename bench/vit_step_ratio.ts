/**
 * `deno run -A bench/vit_step_ratio.ts [backend] [pairs] [warmup]`: the step
 * time of ViT-MoGE over ViT-MoE for the `vit-tiny` preset (the ViT), measured
 * by alternating one MoE step and one MoGE step (A B A B ...) on two models
 * with the same seed, the same Fashion-MNIST batches and the same step seeds,
 * so that drifts in machine load hit both alike. Reports wall-clock and
 * process CPU time (user + system) per step, and the MoGE/MoE ratios (median
 * of the per-pair ratios and ratio of the sums). Defaults: wasm, 10 pairs
 * after 2 warm-up pairs.
 *
 * @module
 */

import process from "node:process";
import { tf } from "../src/deps.ts";
import { type BackendRequest, describeBackend, useBackend } from "../src/backend.ts";
import { loadDataset } from "../src/data/image_sources.ts";
import { AdamW } from "../src/train/optim.ts";
import { Rng } from "../src/rng.ts";
import { VisionTransformer } from "../src/models/vit.ts";
import {
  buildVit,
  DEFAULT_VIT_CONFIG,
  deriveSeed,
  vitBatch,
  vitRegSettings,
  vitTrainStep,
} from "../src/train/vit_task.ts";

const backend = (Deno.args[0] ?? "wasm") as BackendRequest;
const pairs = Number(Deno.args[1] ?? 10);
const warmup = Number(Deno.args[2] ?? 2);
const info = await useBackend(backend);
const data = await loadDataset("fashion-mnist");
const cfg = { ...DEFAULT_VIT_CONFIG, seed: 0 };
const runs = (["moe", "moge"] as const).map((mode) => ({
  mode,
  cfg: { ...cfg, mode },
  model: buildVit(cfg),
  opt: new AdamW({
    learningRate: cfg.learningRate,
    weightDecay: cfg.weightDecay,
    excludeFromWeightDecay: VisionTransformer.excludeFromWeightDecay,
  }),
  wall: [] as number[],
  cpu: [] as number[],
}));
const perm = new Rng(1).permutation(data.trainLabels.length);
for (let i = 0; i < warmup + pairs; i++) {
  const idx = perm.subarray(i * cfg.batchSize, (i + 1) * cfg.batchSize);
  for (const r of runs) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const rng = new Rng(deriveSeed(cfg.seed, 3, i));
    const { x, y } = vitBatch(r.cfg, data.trainImages, data.trainLabels, idx, rng);
    const { stats } = await vitTrainStep(r.model, r.opt, x, y, {
      seed: deriveSeed(cfg.seed, 2, i),
      reg: vitRegSettings(r.cfg, 5, r.mode === "moge"),
      lr: cfg.learningRate,
      labelSmoothing: cfg.labelSmoothing,
      routing: cfg.routing,
    });
    await stats.data();
    tf.dispose([stats, x, y]);
    const c = process.cpuUsage(c0);
    if (i >= warmup) {
      r.wall.push(performance.now() - t0);
      r.cpu.push((c.user + c.system) / 1000);
    }
  }
}
const median = (a: number[]) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];
const sum = (a: number[]) => a.reduce((s, t) => s + t, 0);
console.log(
  `${
    describeBackend(info)
  }; vit-tiny, batch ${cfg.batchSize}; ${pairs} pairs after ${warmup} warm-up pairs`,
);
for (const kind of ["wall", "cpu"] as const) {
  for (const r of runs) {
    console.log(
      `${r.mode.padEnd(4)} ${kind} ms/step: ${r[kind].map((t) => t.toFixed(0)).join(" ")}` +
        ` | median ${median(r[kind]).toFixed(0)}`,
    );
  }
  const [a, b] = runs;
  const ratios = a[kind].map((t, i) => b[kind][i] / t);
  console.log(
    `MoGE/MoE (${kind}): median of pair ratios ${median(ratios).toFixed(3)},` +
      ` ratio of sums ${(sum(b[kind]) / sum(a[kind])).toFixed(3)}`,
  );
}
for (const r of runs) {
  r.opt.dispose();
  r.model.dispose();
}
