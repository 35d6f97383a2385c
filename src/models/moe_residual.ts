/**
 * The residual updates of the MoE sublayers in the three language-model
 * variants (Teo & Nguyen, "MomentumSMoE", NeurIPS 2024): Switch-style SMoE,
 * MomentumSMoE (heavy ball) and AdamSMoE; see `lm.ts` for the equations and
 * how they relate to the authors' code.
 *
 * @module
 */

import { tf } from "../deps.ts";
import type { Tensor } from "../types.ts";
import { checkInteger, checkNumber } from "../validate.ts";

export type { Tensor } from "../types.ts";

/** How the MoE sublayers are added to the residual stream. */
export type MoeVariant = "smoe" | "momentum" | "adam";

/** All values of {@linkcode MoeVariant}. */
export const MOE_VARIANTS: readonly MoeVariant[] = ["smoe", "momentum", "adam"];

/** The residual-update settings of a variant (see the module docs). */
export interface VariantSettings {
  /** `smoe`, `momentum` or `adam`. */
  variant: MoeVariant;
  /** μ, heavy-ball momentum (paper, small: 0.7). */
  mu: number;
  /** γ, momentum step size (paper, small: 0.8; 1.0 for medium). */
  momentumGamma: number;
  /** β1 of AdamSMoE's first moment (authors' code: 0.9). */
  adamBeta1: number;
  /** β2 of AdamSMoE's second moment (authors' code: 0.999). */
  adamBeta2: number;
  /** γ_A, AdamSMoE step size (authors' code: 1.0). */
  adamGamma: number;
  /** Blocks (from the first) that take the Adam step (authors' code: 1). */
  adamLayers: number;
  /** ε inside AdamSMoE's square root (authors' code: 1e-8). */
  adamEps: number;
}

/**
 * Checks a variant's settings for a model of `layers` blocks, throwing a
 * `RangeError` that names the first bad field.
 *
 * @example
 * ```ts
 * import { validateVariant } from "./moe_residual.ts";
 * validateVariant({ variant: "momentum", mu: 0.7, momentumGamma: 0.8, adamBeta1: 0.9,
 *   adamBeta2: 0.999, adamGamma: 1, adamLayers: 1, adamEps: 1e-8 }, 3); // ok
 * ```
 */
export function validateVariant(c: VariantSettings, layers: number): void {
  if (!MOE_VARIANTS.includes(c.variant)) {
    throw new RangeError(
      `variant = "${c.variant}" is invalid: allowed are ${MOE_VARIANTS.join(", ")}`,
    );
  }
  checkNumber("mu", c.mu, { min: 0, max: 1 });
  checkNumber("momentumGamma", c.momentumGamma, { min: 0, exclusiveMin: true });
  checkNumber("adamBeta1", c.adamBeta1, { min: 0, max: 1 });
  checkNumber("adamBeta2", c.adamBeta2, { min: 0, max: 1 });
  if (c.adamBeta2 >= 1) {
    throw new RangeError(`adamBeta2 = ${c.adamBeta2} is invalid: adamBeta2 must be < 1`);
  }
  checkNumber("adamGamma", c.adamGamma, { min: 0, exclusiveMin: true });
  checkInteger("adamLayers", c.adamLayers, 0, layers);
  checkNumber("adamEps", c.adamEps, { min: 0, exclusiveMin: true });
}

/** The running state of the momentum / Adam residual updates across blocks. */
export interface ResidualState {
  /** Heavy-ball momentum p (null before the first block). */
  p: Tensor | null;
  /** AdamSMoE first moment m (null before the first block). */
  m: Tensor | null;
  /** AdamSMoE second moment v (null before the first block). */
  v: Tensor | null;
}

/** The state before the first block. */
export const INITIAL_RESIDUAL_STATE: ResidualState = { p: null, m: null, v: null };

/**
 * One block's residual update of the MoE sublayer (see the module docs for
 * the equations): from h_l (the stream after attention) and f_l (the MoE
 * sublayer's output) to x_(l+1), carrying the momentum state.
 *
 * @example
 * ```ts
 * import { INITIAL_RESIDUAL_STATE, residualStep } from "./moe_residual.ts";
 * import { tf } from "../deps.ts";
 * import { useBackend } from "../backend.ts";
 * await useBackend("cpu");
 * const s = { variant: "momentum", mu: 0.5, momentumGamma: 1, adamBeta1: 0.9, adamBeta2: 0.999,
 *   adamGamma: 1, adamLayers: 1, adamEps: 1e-8 } as const;
 * const a = residualStep(s, 0, tf.tensor1d([0]), tf.tensor1d([1]), INITIAL_RESIDUAL_STATE);
 * const b = residualStep(s, 1, a.x, tf.tensor1d([1]), a.state);
 * console.log(await b.x.data()); // [2.5]: p = -1, then -1 + 0.5·(-1) = -1.5
 * ```
 */
export function residualStep(
  s: VariantSettings,
  layer: number,
  h: Tensor,
  f: Tensor,
  state: ResidualState,
): { x: Tensor; state: ResidualState } {
  if (s.variant === "smoe") return { x: tf.add(h, f), state };
  const negF = tf.neg(f);
  // Heavy ball: p_l = −f_l + μ·p_(l−1).
  const p = state.p ? tf.add(negF, tf.mul(s.mu, state.p)) : negF;
  if (s.variant === "momentum") {
    return { x: tf.sub(h, tf.mul(s.momentumGamma, p)), state: { p, m: null, v: null } };
  }
  // AdamSMoE: m_l = β1·m_(l−1) + (1 − β1)·(−f_l), v_l = β2·v_(l−1) + (1 − β2)·f_l².
  const mNew = tf.mul(1 - s.adamBeta1, negF);
  const vNew = tf.mul(1 - s.adamBeta2, tf.square(f));
  const m = state.m ? tf.add(tf.mul(s.adamBeta1, state.m), mNew) : mNew;
  const v = state.v ? tf.add(tf.mul(s.adamBeta2, state.v), vNew) : vNew;
  const x = layer < s.adamLayers
    ? tf.sub(h, tf.mul(s.adamGamma, tf.div(m, tf.sqrt(tf.add(v, s.adamEps)))))
    : tf.sub(h, tf.mul(s.momentumGamma, p));
  return { x, state: { p, m, v } };
}
