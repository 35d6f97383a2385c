/**
 * The learning-rate schedule of the MoGE recipe (the Fashion-MNIST experiment
 * of MoGE, Kang et al., arXiv 2504.09265, Sec. 2.4: "AdamW lr 1e-3, cosine
 * schedule with 10 warm-up epochs"): linear warm-up followed by
 * cosine decay (Loshchilov & Hutter, "SGDR", 2017, without restarts).
 *
 * @module
 */

import { checkInteger, checkNumber } from "../validate.ts";

/** Parameters of {@linkcode cosineWithWarmup}. Steps are optimizer steps. */
export interface CosineWithWarmupOptions {
  /** Peak learning rate, reached at the end of the warm-up (> 0). */
  baseLr: number;
  /** Number of warm-up steps (>= 0; 0 starts the cosine at once). */
  warmupSteps: number;
  /** Total number of steps T (>= warmupSteps, >= 1); the rate is minLr from T on. */
  totalSteps: number;
  /** Final learning rate (default 0), in [0, baseLr]. */
  minLr?: number;
}

/**
 * Linear warm-up then cosine decay, as a function of the 0-based optimizer
 * step t (the rate used for update number t + 1):
 *
 * - warm-up, t < W: lr = baseLr · (t + 1) / W, so step 0 already moves
 *   (baseLr / W) and step W − 1 uses baseLr;
 * - decay, W ≤ t: lr = minLr + (baseLr − minLr) · ½ (1 + cos(π · p)),
 *   p = min(1, (t − W) / (T − W)), so lr = baseLr at t = W and minLr at
 *   t ≥ T (and for every t ≥ W when T = W).
 *
 * @example
 * ```ts
 * import { cosineWithWarmup } from "./lr_schedule.ts";
 * const lr = cosineWithWarmup({ baseLr: 1e-3, warmupSteps: 10, totalSteps: 110 });
 * lr(0); // 1e-4
 * lr(9); // 1e-3
 * lr(60); // 5e-4 (half-way through the cosine)
 * lr(110); // 0
 * ```
 */
export function cosineWithWarmup(options: CosineWithWarmupOptions): (step: number) => number {
  const { baseLr, warmupSteps, totalSteps, minLr = 0 } = options;
  checkNumber("baseLr", baseLr, { min: 0, exclusiveMin: true });
  checkNumber("minLr", minLr, { min: 0, max: baseLr });
  checkInteger("totalSteps", totalSteps, 1);
  checkInteger("warmupSteps", warmupSteps, 0, totalSteps);
  const decaySteps = totalSteps - warmupSteps;
  return (step: number): number => {
    checkNumber("step", step, { min: 0 });
    if (step < warmupSteps) return baseLr * (step + 1) / warmupSteps;
    const p = decaySteps === 0 ? 1 : Math.min(1, (step - warmupSteps) / decaySteps);
    return minLr + (baseLr - minLr) * 0.5 * (1 + Math.cos(Math.PI * p));
  };
}
