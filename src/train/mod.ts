/**
 * Training MoE and MoGE models: one loop ({@linkcode trainAndEvaluate}) with
 * a task per model (the Fashion-MNIST classifier, the Vision Transformer and
 * the language models), the run directory (config, metrics, checkpoints,
 * best weights, summary), the config field tables, the MoGE settings, AdamW
 * and the learning-rate schedule.
 *
 * @example
 * ```ts ignore
 * import { DEFAULT_CONFIG, PRESETS, train } from "./mod.ts";
 * import { loadFixture } from "../data/mod.ts";
 * const data = await loadFixture("fashion-mnist");
 * const summary = await train({ ...DEFAULT_CONFIG, ...PRESETS.tiny }, { outDir: "runs/tiny", data });
 * console.log(summary.testAcc);
 * ```
 *
 * @module
 */

export * from "./loop.ts";
export * from "./task.ts";
export * from "./run_dir.ts";
export * from "./config_fields.ts";
export * from "./moge_settings.ts";
export * from "./router_settings.ts";
export * from "./memory.ts";
export * from "./classifier_config.ts";
export * from "./classifier_task.ts";
export * from "./vit_config.ts";
export * from "./vit_task.ts";
export * from "./lm_config.ts";
export * from "./lm_task.ts";
export * from "./optim.ts";
export * from "./lr_schedule.ts";
export * from "./checkpoint.ts";
