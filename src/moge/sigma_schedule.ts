/**
 * The σ schedule of MoGE (eq. 8).
 *
 * @module
 */

import { checkInteger, checkNumber } from "../validate.ts";

/** Parameters of the σ schedule (MoGE eq. 8). */
export interface SigmaScheduleOptions {
  /** σ at step 0 (the paper uses 10). */
  sigmaMax: number;
  /** σ at the last step, > 0 (the paper uses 1.5 or 0.5). */
  sigmaMin: number;
  /** Shape exponent γ >= 0 (0.3 in the paper; 1 is linear, 0 constant σ_min). */
  gamma: number;
  /** Total number of optimizer steps T (>= 1). */
  totalSteps: number;
}

/**
 * MoGE eq. 8: σ(t) = σ_max − (σ_max − σ_min) · (t/T)^γ, with t/T clipped to
 * [0, 1]. γ = 0 gives the constant σ_min (0^0 is taken as 1).
 *
 * Step convention: t is the number of optimizer steps already taken when the
 * step is computed (0 for the first step, T − 1 for the last). This is the
 * authors' code, whose 1-based step s uses σ at (s − 1)/T: the first step
 * trains with σ_max, and the last with σ((T−1)/T), a little above σ_min;
 * σ_min itself is reached at t = T, i.e. by whatever runs after training
 * (evaluation). Call it with the step index before incrementing it.
 *
 * @example
 * ```ts
 * import { sigmaSchedule } from "./sigma_schedule.ts";
 * const sigma = sigmaSchedule({ sigmaMax: 10, sigmaMin: 1.5, gamma: 1, totalSteps: 100 });
 * sigma(0); // 10
 * sigma(50); // 5.75
 * sigma(100); // 1.5
 * ```
 */
export function sigmaSchedule(options: SigmaScheduleOptions): (step: number) => number {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(
      `sigmaSchedule(options) needs an object { sigmaMax, sigmaMin, gamma, totalSteps }, ` +
        `got ${options === null ? "null" : typeof options}`,
    );
  }
  const { sigmaMax, sigmaMin, gamma, totalSteps } = options;
  checkNumber("sigmaMin", sigmaMin, { min: 0, exclusiveMin: true });
  checkNumber("sigmaMax", sigmaMax, { min: sigmaMin });
  checkNumber("gamma", gamma, { min: 0 });
  checkInteger("totalSteps", totalSteps, 1);
  return (step: number): number => {
    checkNumber("step", step, { min: 0 });
    const t = Math.min(1, step / totalSteps);
    const shape = gamma === 0 ? 1 : t ** gamma;
    return shape === 1 ? sigmaMin : Math.max(sigmaMin, sigmaMax - (sigmaMax - sigmaMin) * shape);
  };
}
