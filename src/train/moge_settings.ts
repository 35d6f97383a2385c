/**
 * The MoGE settings of a training run, declared once for every task: λ (the
 * weight of the batch mean of R(z), eq. 9), the σ schedule (eq. 8) and the
 * filter; their table rows, their validation (including whether E has a
 * topographic layout for the filter), the regularizer settings of a step and
 * the σ schedule of a run.
 *
 * @module
 */

import { FILTER_CENTRES, type FilterCentre, type FilterKind } from "../moge/filters.ts";
import { type Padding, PADDINGS } from "../moge/padding.ts";
import { isUsableE, topographicLayout } from "../moge/layout.ts";
import { sigmaSchedule } from "../moge/sigma_schedule.ts";
import type { RegularizerSettings } from "../moe/moe_layer.ts";
import type { CommonSettings, FieldSpec } from "./config_fields.ts";

/** λ, the σ schedule and the filter. */
export interface MogeSettings {
  /** λ, the weight of each MoE layer's batch mean of R(z) (MoGE only). */
  lambda: number;
  /** σ_max of the σ schedule (eq. 8). */
  sigmaMax: number;
  /** σ_min of the σ schedule. */
  sigmaMin: number;
  /** γ of the σ schedule (eq. 8). */
  gamma: number;
  /** "gaussian" (paper) or "average". */
  filter: FilterKind;
  /** h, the filter size. */
  filterSize: number;
  /**
   * Zero padding of the expert map: "valid" (Algorithm 1), "same" (tf.conv2d's
   * meaning: r·c windows) or "full" (h − 1 zeros on every side: every expert
   * lies in h·h windows). See `src/moge/padding.ts`.
   */
  padding: Padding;
  /** Centre tap of an even-h Gaussian: "floor" (the authors' code) or "symmetric". */
  filterCentre: FilterCentre;
}

/**
 * The regularizer's settings every model starts from (λ differs per model and
 * is set by each): the paper's σ schedule and 3x3 Gaussian, Algorithm 1's
 * "valid" windows, the authors' filter centre.
 *
 * @example
 * ```ts
 * import { MOGE_DEFAULTS } from "./moge_settings.ts";
 * console.log(MOGE_DEFAULTS.padding); // "valid"
 * ```
 */
export const MOGE_DEFAULTS: Omit<MogeSettings, "lambda"> = {
  sigmaMax: 10,
  sigmaMin: 1.5,
  gamma: 0.3,
  filter: "gaussian",
  filterSize: 3,
  padding: "valid",
  filterCentre: "floor",
};

/** The σ schedule and filter of the paper (Sec. 2.4, Appendix B). */
export const PAPER_SIGMA: Pick<MogeSettings, "sigmaMax" | "sigmaMin" | "gamma" | "filterSize"> = {
  sigmaMax: MOGE_DEFAULTS.sigmaMax,
  sigmaMin: MOGE_DEFAULTS.sigmaMin,
  gamma: MOGE_DEFAULTS.gamma,
  filterSize: MOGE_DEFAULTS.filterSize,
};

/**
 * The table rows of {@linkcode MogeSettings}; `lambdaHelp` says what λ
 * multiplies in a task.
 *
 * @example
 * ```ts
 * import { mogeFields } from "./moge_settings.ts";
 * mogeFields("λ").map((f) => f.flag); // ["lambda", "sigma-max", "sigma-min", "gamma", "filter", "filter-size"]
 * ```
 */
export function mogeFields<C extends MogeSettings>(
  lambdaHelp: string,
  paper: Partial<Record<keyof MogeSettings, string>> = {},
): FieldSpec<C>[] {
  const rows: FieldSpec<MogeSettings>[] = [
    { field: "lambda", flag: "lambda", kind: "number", min: 0, help: lambdaHelp },
    {
      field: "sigmaMax",
      flag: "sigma-max",
      kind: "number",
      min: (c) => c.sigmaMin,
      help: "σ_max of the σ schedule (eq. 8)",
    },
    {
      field: "sigmaMin",
      flag: "sigma-min",
      kind: "number",
      min: 0,
      exclusiveMin: true,
      help: "σ_min of the σ schedule",
    },
    { field: "gamma", flag: "gamma", kind: "number", min: 0, help: "γ of the σ schedule" },
    {
      field: "filter",
      flag: "filter",
      kind: "choice",
      choices: ["gaussian", "average"],
      help: "gaussian | average",
    },
    { field: "filterSize", flag: "filter-size", kind: "int", min: 1, help: "h, filter size" },
    {
      field: "padding",
      flag: "padding",
      kind: "choice",
      choices: PADDINGS,
      help: "zero padding of the expert map: valid (Algorithm 1) | same (r·c windows) | " +
        "full (every expert in h·h windows; a departure from Algorithm 1)",
    },
    {
      field: "filterCentre",
      flag: "filter-centre",
      kind: "choice",
      choices: FILTER_CENTRES,
      help: "centre of an even-h Gaussian: floor (the authors' code) | symmetric",
    },
  ];
  return rows.map((r) =>
    paper[r.field] ? { ...r, paper: paper[r.field] } : r
  ) as unknown as FieldSpec<C>[];
}

/**
 * Checks that E has a topographic layout for the h x h filter when the run
 * is MoGE and has MoE layers: the one place a task checks E against the
 * layout. Throws a `RangeError` starting `experts: ` and the layout's reason.
 *
 * @example
 * ```ts
 * import { validateMogeLayout } from "./moge_settings.ts";
 * validateMogeLayout({ mode: "moge", experts: 16, filterSize: 3 }); // ok
 * validateMogeLayout({ mode: "moe", experts: 13, filterSize: 3 }); // ok: MoE needs no layout
 * ```
 */
export function validateMogeLayout(
  c: Pick<CommonSettings, "mode" | "experts"> & Pick<MogeSettings, "filterSize">,
  hasMoeLayers = true,
): void {
  if (c.mode !== "moge" || !hasMoeLayers) return;
  try {
    topographicLayout(c.experts, c.filterSize);
  } catch (e) {
    throw new RangeError(`experts: ${(e as Error).message} (MoGE needs a layout of E)`);
  }
}

/**
 * The regularizer settings at σ: λ for MoGE, 0 for MoE (R(z) is then only
 * measured); null when E has no layout for the filter (nothing to measure).
 *
 * @example
 * ```ts
 * import { regularizerSettings } from "./moge_settings.ts";
 * regularizerSettings({
 *   mode: "moe", experts: 16, lambda: 0.1, sigmaMax: 10, sigmaMin: 1.5, gamma: 0.3,
 *   filter: "gaussian", filterSize: 3, padding: "valid", filterCentre: "floor",
 * }, 2);
 * // { lambda: 0, sigma: 2, filterSize: 3, filter: "gaussian", padding: "valid", filterCentre: "floor" }
 * ```
 */
export function regularizerSettings(
  c: MogeSettings & Pick<CommonSettings, "mode" | "experts">,
  sigma: number,
): RegularizerSettings | null {
  if (!isUsableE(c.experts, c.filterSize)) return null;
  return {
    lambda: c.mode === "moge" ? c.lambda : 0,
    sigma,
    filterSize: c.filterSize,
    filter: c.filter,
    padding: c.padding,
    filterCentre: c.filterCentre,
  };
}

/**
 * σ as a function of the step for a run of `totalSteps` (eq. 8).
 *
 * @example
 * ```ts
 * import { sigmaScheduleOf } from "./moge_settings.ts";
 * const at = sigmaScheduleOf({ sigmaMax: 10, sigmaMin: 1.5, gamma: 0.3 }, 100);
 * at(0); // 10
 * ```
 */
export function sigmaScheduleOf(
  c: Pick<MogeSettings, "sigmaMax" | "sigmaMin" | "gamma">,
  totalSteps: number,
): (step: number) => number {
  return sigmaSchedule({
    sigmaMax: c.sigmaMax,
    sigmaMin: c.sigmaMin,
    gamma: c.gamma,
    totalSteps,
  });
}
