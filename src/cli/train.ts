/**
 * `deno task train`: trains one of the models with the one training loop.
 * `--model` picks the task (classifier, the default; vit; lm); the flags,
 * their defaults, bounds and `--help` rows come from the task's field table.
 *
 * Run directories: a fresh run into a directory that holds a run is refused
 * unless `--overwrite`; `--resume` needs a checkpoint there, keeps the saved
 * config, applies the flags that may change (e.g. `--epochs`) and refuses the
 * others when they differ.
 *
 * @module
 */

import { describeBackend, useBackend } from "../backend.ts";
import type { FieldSpec } from "../train/config_fields.ts";
import type { MogeSettings } from "../train/moge_settings.ts";
import type { RouterSettings } from "../train/router_settings.ts";
import type { CommonSettings } from "../train/config_fields.ts";
import { trainAndEvaluate } from "../train/loop.ts";
import { checkRunDir, readSavedConfig, RunDirectoryError } from "../train/run_dir.ts";
import type { Task } from "../train/task.ts";
import { classifierTask } from "../train/classifier_task.ts";
import { vitTask } from "../train/vit_task.ts";
import { lmTask } from "../train/lm_task.ts";
import {
  backendMemoryLimit,
  checkMemory,
  estimateMemory,
  type ModelKind,
} from "../train/memory.ts";
import { checkOutDir } from "./out_dir_check.ts";
import { type FlagSpec, numberFlag, parseFlags, runMain, UsageError } from "./args.ts";
import { bar, formatDuration, interruptOnSigint, ProgressLine } from "./progress.ts";
import { classifierView, lmView, type TrainView, vitView } from "./train_views.ts";

/** The values of `--model`. */
export const MODELS = ["classifier", "vit", "lm"] as const;

/**
 * The value of `--model` in raw arguments (`--model X` or `--model=X`), or
 * undefined.
 *
 * @example
 * ```ts
 * import { modelFlag } from "./train.ts";
 * console.log(modelFlag(["--model", "lm", "--steps", "5"])); // "lm"
 * ```
 */
export function modelFlag(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--") break;
    if (args[i] === "--model") return args[i + 1];
    if (args[i].startsWith("--model=")) return args[i].slice("--model=".length);
  }
  return undefined;
}

type AnyConfig = CommonSettings & RouterSettings & MogeSettings;

/**
 * The `--help` text of a task: the view's prose around one row per field of
 * the table, with its default and the paper's value.
 */
export function trainHelp<C extends AnyConfig, D, Line, S>(
  task: Task<C, D, unknown, Line & { step: number }, unknown>,
  view: TrainView<C, D, Line, S>,
): string {
  const mutable = task.fields.filter((f) => f.mutable).map((f) => `--${f.flag}`).join(", ");
  const rows = task.fields.map((f) => {
    const paper = f.paper ? `; paper: ${f.paper}` : "";
    return `  --${f.flag.padEnd(20)} ${f.help} [default ${
      JSON.stringify(task.defaults[f.field])
    }${paper}]`;
  });
  return `${view.intro}

Usage: deno task train${task.name === "classifier" ? "" : ` --model ${task.name}`} [flags]

  --model NAME           ${
    MODELS.join(" | ")
  } (default classifier); --model NAME --help lists its flags
  --preset NAME          ${view.presets}
  --out DIR              run directory [default ${view.outDefault}]
  --resume               continue the run in --out from its checkpoint; only ${mutable}
                         may differ from the saved config (they are applied)
  --overwrite            replace the run in --out (a fresh run there is refused otherwise)
  --quiet                no progress line
  -h, --help             this text
${rows.join("\n")}

${view.notes}
Invalid values exit with status 2.`;
}

/** Rewrites a validation message `field = ...` or `field: ...` to name the flag. */
function flagError<C>(fields: FieldSpec<C>[], e: unknown): unknown {
  if (!(e instanceof RangeError)) return e;
  const msg = e.message;
  for (const f of fields) {
    if (msg.startsWith(`${f.field} = `)) return new UsageError(`--${f.flag}: ${msg}`);
    if (msg.startsWith(`${f.field}: `)) {
      return new UsageError(`--${f.flag}: ${msg.slice(f.field.length + 2)}`);
    }
  }
  return new UsageError(msg);
}

const show = (v: unknown) => typeof v === "string" ? v : JSON.stringify(v);

/** A task's flags parsed (its field table's flags plus the runner's own). */
function parseTrainFlags<C extends AnyConfig, D, Ev, Line extends { step: number }, S>(
  task: Task<C, D, Ev, Line, S>,
  args: readonly string[],
): Record<string, unknown> {
  const spec: Record<string, FlagSpec> = { help: { type: "boolean", short: "h" } };
  for (const flag of ["resume", "overwrite", "quiet"]) spec[flag] = { type: "boolean" };
  for (const flag of ["model", "preset", "out", ...task.fields.map((f) => f.flag)]) {
    spec[flag] = { type: "string" };
  }
  return parseFlags([...args], spec);
}

/**
 * The config that parsed flags give (defaults, then the preset, then the
 * flags), validated; with the preset's and the flags' own fields and the
 * validation (for the resumed config). Reads no file.
 */
function configFromFlags<C extends AnyConfig, D, Ev, Line extends { step: number }, S>(
  task: Task<C, D, Ev, Line, S>,
  flags: Record<string, unknown>,
): { cfg: C; preset: Partial<C>; given: Partial<C>; validate: (c: C) => void } {
  let cfg: C = { ...task.defaults };
  let preset: Partial<C> = {};
  if (typeof flags.preset === "string") {
    const named = task.presets[flags.preset];
    if (!named) {
      throw new UsageError(
        `--preset ${flags.preset} is unknown for --model ${task.name}: allowed are ${
          Object.keys(task.presets).join(", ")
        }`,
      );
    }
    preset = named;
    cfg = { ...cfg, ...preset };
  }
  const given: Partial<C> = {};
  for (const f of task.fields) {
    const v = flags[f.flag];
    if (typeof v !== "string") continue;
    const numeric = f.kind === "int" || f.kind === "number";
    (given as Record<string, unknown>)[f.field] = numeric ? numberFlag(f.flag, v) : v;
  }
  cfg = { ...cfg, ...given };
  const validate = (c: C) => {
    try {
      task.validate(c);
    } catch (e) {
      throw flagError(task.fields, e);
    }
  };
  validate(cfg);
  return { cfg, preset, given, validate };
}

/**
 * Checks a train command line without running it: its flags parse and give a
 * valid config for its `--model` (what `deno task sweep` does for every grid
 * point before it records the grid). Throws a `UsageError` naming the flag
 * and what is allowed. Reads no file.
 *
 * @example
 * ```ts
 * import { checkTrainArgs } from "./train.ts";
 * checkTrainArgs(["--experts", "64", "--seed", "1"]);
 * // checkTrainArgs(["--experts", "lots"]) throws: --experts "lots" is not a number
 * ```
 */
export function checkTrainArgs(args: readonly string[]): void {
  const model = modelFlag(args) ?? "classifier";
  if (model === "classifier") {
    configFromFlags(classifierTask, parseTrainFlags(classifierTask, args));
  } else if (model === "vit") {
    configFromFlags(vitTask, parseTrainFlags(vitTask, args));
  } else if (model === "lm") {
    configFromFlags(lmTask, parseTrainFlags(lmTask, args));
  } else {
    throw unknownModel(model);
  }
}

function unknownModel(model: string): UsageError {
  return new UsageError(
    `--model ${model} is unknown: allowed are ${MODELS.join(", ")} (classifier is the default)`,
  );
}

async function runTask<C extends AnyConfig, D, Ev, Line extends { step: number }, S>(
  task: Task<C, D, Ev, Line, S>,
  view: TrainView<C, D, Line, S>,
  args: string[],
): Promise<void> {
  const flags = parseTrainFlags(task, args);
  if (flags.help) {
    console.log(trainHelp(task as Task<C, D, unknown, Line, unknown>, view));
    return;
  }
  const parsed = configFromFlags(task, flags);
  const { preset, given, validate } = parsed;
  let cfg = parsed.cfg;
  const resume = Boolean(flags.resume);
  const outDir = typeof flags.out === "string" ? flags.out : task.defaultOutDir(cfg);
  if (resume && typeof flags.out !== "string") {
    throw new UsageError("--resume needs --out DIR (the run to continue)");
  }
  await checkOutDir(outDir, { mustExist: resume });
  try {
    await checkRunDir(outDir, { resume, overwrite: Boolean(flags.overwrite) });
    // On resume, a preset counts as the flags it stands for: the same command
    // plus --resume continues a run.
    if (resume) cfg = await resumedConfig(task, outDir, { ...preset, ...given });
  } catch (e) {
    throw e instanceof RunDirectoryError ? new UsageError(e.message) : e;
  }
  validate(cfg);

  const backend = await useBackend(cfg.backend);
  console.log(`backend: ${describeBackend(backend)}`);
  // Refuse a run that cannot fit the backend's memory before any data loads.
  checkMemory(
    estimateMemory(
      task.name as ModelKind,
      cfg as unknown as Parameters<typeof estimateMemory>[1],
      backend.backend,
    ),
    await backendMemoryLimit(backend.backend),
    `this run (E = ${cfg.experts})`,
  );
  const t0 = performance.now();
  const data = await task.load(cfg, (m) => console.log(m));
  console.log(`data: ${view.data(data, cfg)} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  console.log(`model: ${view.model(cfg)}`);
  const z = cfg.zLossWeight > 0 ? `, z-loss weight ${cfg.zLossWeight}` : "";
  console.log(`router: ${cfg.router}${z}`);
  const interrupt = interruptOnSigint();
  const line = new ProgressLine();
  const summary = await trainAndEvaluate(task, cfg, {
    outDir,
    data,
    resume,
    overwrite: Boolean(flags.overwrite),
    backendInfo: backend,
    signal: interrupt.signal,
    onResume: (r) =>
      console.log(
        `resume: from step ${r.step}` +
          (r.droppedMetricsLines
            ? `; dropped ${r.droppedMetricsLines} metrics.jsonl line(s) past it`
            : ""),
      ),
    onProgress: flags.quiet ? undefined : (p) =>
      line.update(
        (p.epoch ? `epoch ${p.epoch}/${p.epochs} ` : "") +
          `${bar(p.step / p.totalSteps)} step ${p.step}/${p.totalSteps}` +
          ` loss ${p.loss.toFixed(4)}` +
          (p.acc !== undefined ? ` acc ${(100 * p.acc).toFixed(1)}%` : "") +
          (p.ppl !== undefined ? ` ppl ${p.ppl.toFixed(2)}` : "") +
          ` ${p.stepsPerSecond.toFixed(2)} step/s ETA ${formatDuration(p.etaSeconds)}`,
      ),
    onEval: (m) => {
      line.done();
      for (const l of view.eval(m, cfg)) console.log(l);
    },
  });
  interrupt.release();
  line.done();
  if (!summary.completed) {
    const model = task.name === "classifier" ? "" : ` --model ${task.name}`;
    console.log(
      `stopped at step ${summary.steps}; checkpoint saved. Continue with:` +
        ` deno task train${model} --out ${outDir} --resume`,
    );
    Deno.exit(130);
  }
  console.log(`done: ${view.done(summary)} on ${describeBackend(backend)}`);
  console.log(`files: ${outDir}/${view.files}`);
}

/**
 * The config of a run to resume: the saved one, with the flags given that
 * may change applied (and said); a flag (or a preset's field) that differs
 * from the saved value and may not change is refused.
 */
async function resumedConfig<C extends AnyConfig, D, Ev, Line extends { step: number }, S>(
  task: Task<C, D, Ev, Line, S>,
  outDir: string,
  given: Partial<C>,
): Promise<C> {
  const saved = await readSavedConfig(outDir, task.defaults);
  const conflicts: string[] = [];
  const applied: string[] = [];
  for (const f of task.fields) {
    if (!(f.field in given)) continue;
    const now = given[f.field], was = saved[f.field];
    if (JSON.stringify(now) === JSON.stringify(was)) continue;
    const text = `--${f.flag} ${show(now)} (saved: ${show(was)})`;
    (f.mutable ? applied : conflicts).push(text);
  }
  if (conflicts.length) {
    const may = task.fields.filter((f) => f.mutable).map((f) => `--${f.flag}`).join(", ");
    throw new UsageError(
      `--resume: ${conflicts.join(", ")} conflict with the saved config of ${outDir};` +
        ` only ${may} may change on resume`,
    );
  }
  if (applied.length) console.log(`resume: applying ${applied.join(", ")}`);
  return { ...saved, ...given };
}

async function main(): Promise<void> {
  const model = modelFlag(Deno.args) ?? "classifier";
  if (model === "classifier") return await runTask(classifierTask, classifierView, Deno.args);
  if (model === "vit") return await runTask(vitTask, vitView, Deno.args);
  if (model === "lm") return await runTask(lmTask, lmView, Deno.args);
  throw unknownModel(model);
}

if (import.meta.main) await runMain(main, "deno task train");
