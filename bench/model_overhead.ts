/**
 * MoGE's overhead in the multi-layer models: one training step of the
 * `vit-tiny` ViT (MoE in its last two blocks, E = 32) and of the `lm-small`
 * language model (three MoE layers, E = 16), each built twice with the same
 * seed, once without the regularizer (MoE, `reg: null`) and once with it
 * (MoGE), stepped alternately (A B, B A, ...) on the same batch and step
 * seeds at learning rate 0, so that both keep routing identically and differ
 * only by R(z). Used by `deno task bench:report` (`--models`).
 *
 * @module
 */

import { tf } from "../src/deps.ts";
import { AdamW } from "../src/train/optim.ts";
import { Rng } from "../src/rng.ts";
import { VisionTransformer } from "../src/models/vit.ts";
import { MoeLm } from "../src/models/lm.ts";
import {
  buildVit,
  DEFAULT_VIT_CONFIG,
  deriveSeed,
  vitBatch,
  vitRegSettings,
  vitTrainStep,
} from "../src/train/vit_task.ts";
import { DEFAULT_LM_CONFIG, lmModelConfig, lmTrainStep } from "../src/train/lm_task.ts";
import type { LmTrainConfig } from "../src/train/lm_config.ts";
import { regularizerSettings } from "../src/train/moge_settings.ts";

/** The multi-layer models this benchmark knows. */
export const OVERHEAD_MODELS = ["vit", "lm"] as const;

/** One of {@linkcode OVERHEAD_MODELS}. */
export type OverheadModel = (typeof OVERHEAD_MODELS)[number];

/** The A/B figures of one model. */
export interface ModelPoint {
  /** "vit-tiny" or "lm-small". */
  model: string;
  experts: number;
  /** MoE layers in the model. */
  moeLayers: number;
  pairs: number;
  moeMedianMs: number;
  mogeMedianMs: number;
  /** Median of the per-pair MoGE/MoE ratios, and its quartiles. */
  ratioMedian: number;
  ratioQ1: number;
  ratioQ3: number;
  /** 100 · (ratioMedian − 1). */
  overheadPercent: number;
}

/** One model of a pair: a step function, its optimizer and its clean-up. */
export interface Stepper {
  step: (i: number) => Promise<void>;
  opt: AdamW;
  dispose: () => void;
}

/** A vit-tiny training step on a fixed random batch, at learning rate 0 (so MoE and MoGE stay paired). */
export function vitStepper(withReg: boolean): Stepper {
  const cfg = { ...DEFAULT_VIT_CONFIG, seed: 3 };
  const model = buildVit(cfg);
  const opt = new AdamW({
    learningRate: cfg.learningRate,
    weightDecay: cfg.weightDecay,
    excludeFromWeightDecay: VisionTransformer.excludeFromWeightDecay,
  });
  const rng = new Rng(5);
  const n = cfg.batchSize;
  const images = Uint8Array.from({ length: n * 784 }, () => Math.floor(rng.next() * 256));
  const labels = Uint8Array.from({ length: n }, (_, i) => i % 10);
  const idx = Int32Array.from({ length: n }, (_, i) => i);
  return {
    step: async (i) => {
      const { x, y } = vitBatch(cfg, images, labels, idx, new Rng(deriveSeed(cfg.seed, 3, i)));
      const { stats } = await vitTrainStep(model, opt, x, y, {
        seed: deriveSeed(cfg.seed, 2, i),
        reg: vitRegSettings(cfg, 5, withReg),
        lr: 0,
        labelSmoothing: cfg.labelSmoothing,
      });
      await stats.data();
      tf.dispose([stats, x, y]);
    },
    opt,
    dispose: () => {
      model.dispose();
      opt.dispose();
    },
  };
}

/**
 * An lm-small training step on fixed random windows, at learning rate 0.
 * `over` overrides the config (e.g. `{ router: "xmoe" }`; with `mode: "moe"`
 * and `withReg`, R(z) is computed with λ = 0, as `deno task train` does).
 */
export function lmStepper(withReg: boolean, over: Partial<LmTrainConfig> = {}): Stepper {
  const cfg: LmTrainConfig = { ...DEFAULT_LM_CONFIG, seed: 3, mode: "moge", ...over };
  const vocab = 80;
  const model = new MoeLm(lmModelConfig(cfg, vocab), cfg.seed);
  const opt = new AdamW({
    learningRate: cfg.learningRate,
    weightDecay: cfg.weightDecay,
    excludeFromWeightDecay: (name: string) => /\.(b\d?|g)$/.test(name) || name.startsWith("emb."),
  });
  const rng = new Rng(6);
  const B = cfg.batchSize, T = cfg.contextLength;
  const tokens = Int32Array.from({ length: B * (T + 1) }, () => Math.floor(rng.next() * vocab));
  const at = (i: number, shift: number) => tokens[Math.floor(i / T) * (T + 1) + (i % T) + shift];
  const x = tf.tensor2d(Int32Array.from({ length: B * T }, (_, i) => at(i, 0)), [B, T], "int32"); // [B, T]
  const y = tf.tensor2d(Int32Array.from({ length: B * T }, (_, i) => at(i, 1)), [B, T], "int32"); // [B, T]
  const reg = withReg ? regularizerSettings(cfg, 5) : null;
  return {
    step: async (i) => {
      const { stats } = await lmTrainStep(model, opt, x, y, {
        seed: 1000 + i,
        reg,
        lr: 0,
        step: i,
      });
      await stats.data();
      stats.dispose();
    },
    opt,
    dispose: () => {
      model.dispose();
      opt.dispose();
      tf.dispose([x, y]);
    },
  };
}

function quantile(sorted: number[], q: number): number {
  const i = (sorted.length - 1) * q;
  const lo = Math.floor(i), hi = Math.ceil(i);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (i - lo);
}

/**
 * Alternates `pairs` MoE and MoGE steps of `vit-tiny` or `lm-small` (after
 * `warmup` steps of each) and returns their medians and the MoGE/MoE ratio.
 *
 * @example
 * ```ts ignore
 * import { modelOverhead } from "./model_overhead.ts";
 * const p = await modelOverhead("vit", 8, 2);
 * console.log(p.ratioMedian);
 * ```
 */
export async function modelOverhead(
  kind: OverheadModel,
  pairs: number,
  warmup: number,
): Promise<ModelPoint> {
  const make = kind === "vit" ? vitStepper : lmStepper;
  const moe = make(false), moge = make(true);
  try {
    let i = 0;
    for (let w = 0; w < warmup; w++, i++) {
      await moe.step(i);
      await moge.step(i);
    }
    const tA: number[] = [], tB: number[] = [], ratios: number[] = [];
    for (let k = 0; k < pairs; k++, i++) {
      const timed = async (s: Stepper) => {
        const t0 = performance.now();
        await s.step(i);
        return performance.now() - t0;
      };
      let a: number, b: number;
      if (k % 2 === 0) {
        a = await timed(moe);
        b = await timed(moge);
      } else {
        b = await timed(moge);
        a = await timed(moe);
      }
      tA.push(a);
      tB.push(b);
      ratios.push(b / a);
    }
    const sort = (v: number[]) => [...v].sort((p, q) => p - q);
    const r = sort(ratios);
    return {
      model: kind === "vit" ? "vit-tiny" : "lm-small",
      experts: kind === "vit" ? DEFAULT_VIT_CONFIG.experts : DEFAULT_LM_CONFIG.experts,
      moeLayers: kind === "vit" ? 2 : DEFAULT_LM_CONFIG.layers,
      pairs,
      moeMedianMs: quantile(sort(tA), 0.5),
      mogeMedianMs: quantile(sort(tB), 0.5),
      ratioMedian: quantile(r, 0.5),
      ratioQ1: quantile(r, 0.25),
      ratioQ3: quantile(r, 0.75),
      overheadPercent: 100 * (quantile(r, 0.5) - 1),
    };
  } finally {
    moe.dispose();
    moge.dispose();
  }
}
