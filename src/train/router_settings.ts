/**
 * The router settings every training config shares: which router of the
 * related work the MoE layers use (`--router`) and the weight of the ST-MoE
 * router z-loss (`--z-loss`), declared once for the three models, with the
 * checks that depend on the model (expert choice needs a capacity factor and
 * a non-causal model; the attention router needs an attention layer).
 *
 * @module
 */

import type { FieldSpec } from "./config_fields.ts";
import {
  PROPOSED_ROUTERS,
  ROUTER_NAMES,
  type RouterName,
  Z_LOSS_WEIGHT_USUAL,
} from "../moe/routers/mod.ts";

/** The router fields of a training config. */
export interface RouterSettings {
  /** The router of every MoE layer ("topk": MoGE's token-choice top-k, the default). */
  router: RouterName;
  /** Weight of the ST-MoE router z-loss of every MoE layer (0: off). */
  zLossWeight: number;
}

/** The defaults: today's top-k router, no z-loss (so that older runs resume unchanged). */
export const ROUTER_DEFAULTS: RouterSettings = { router: "topk", zLossWeight: 0 };

/** One line per router for `--help` (proposals labelled). */
function routerHelp(): string {
  const label = (r: RouterName) => PROPOSED_ROUTERS.includes(r) ? `${r} (proposal)` : r;
  return `router: ${ROUTER_NAMES.map(label).join(" | ")}; topk is MoGE's; "proposal": this` +
    " project's reading (docs/routers.md), not confirmed from the authors' code";
}

/**
 * The table rows of {@linkcode RouterSettings}.
 *
 * @example
 * ```ts
 * import { routerFields } from "./router_settings.ts";
 * routerFields().map((f) => f.flag); // ["router", "z-loss"]
 * ```
 */
export function routerFields<C extends RouterSettings>(): FieldSpec<C>[] {
  const rows: FieldSpec<RouterSettings>[] = [
    {
      field: "router",
      flag: "router",
      kind: "choice",
      choices: ROUTER_NAMES,
      help: routerHelp(),
    },
    {
      field: "zLossWeight",
      flag: "z-loss",
      kind: "number",
      min: 0,
      help: `weight of the ST-MoE router z-loss (0: off; usual ${Z_LOSS_WEIGHT_USUAL})`,
    },
  ];
  return rows as unknown as FieldSpec<C>[];
}

/**
 * Checks the router against the model: expert choice needs a capacity
 * factor above 0 (its C slots per expert) and cannot run on the causal LM;
 * the attention router needs the attention layer the classifier lacks.
 * Throws a `RangeError` starting with the field name.
 *
 * @param model which model the config trains
 *
 * @example
 * ```ts
 * import { validateRouterSettings } from "./router_settings.ts";
 * validateRouterSettings({ router: "sinkhorn", zLossWeight: 1e-3, capacityFactor: 1 }, "lm"); // ok
 * ```
 */
export function validateRouterSettings(
  c: RouterSettings & { capacityFactor: number },
  model: "classifier" | "vit" | "lm",
): void {
  if (c.router === "expert-choice" && !(c.capacityFactor > 0)) {
    throw new RangeError(
      `capacityFactor = ${c.capacityFactor} is invalid with router "expert-choice": each expert` +
        " fills C = round(C_f·N/E) slots, so C_f must be > 0 (try --capacity-factor 1)",
    );
  }
  if (c.router === "expert-choice" && model === "lm") {
    throw new RangeError(
      'router = "expert-choice" is invalid for the causal LM: each expert picks its top-C' +
        " tokens among the whole group, so a token's routing depends on later tokens" +
        " (use topk, sinkhorn, ssr, xmoe, similarity or attention)",
    );
  }
  if (c.router === "attention" && model === "classifier") {
    throw new RangeError(
      'router = "attention" is invalid for the classifier: it reuses the attention matrix of the' +
        " sublayer before the MoE, and the classifier (one token per image) has none; use it" +
        " with --model vit or lm",
    );
  }
}
