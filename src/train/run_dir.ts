/**
 * The run directory of a training run, the one place that reads and writes
 * it:
 *
 * | path | content |
 * |---|---|
 * | `config.json` | the config, plus `backendInfo` and task extras |
 * | `metrics.jsonl` | one JSON line per evaluation (each has `step`) |
 * | `checkpoint/` | weights, optimizer moments and loop state, for `--resume` |
 * | `best/` | the weights with the best validation score (tasks that keep one) |
 * | `summary.json` | the result |
 *
 * A fresh run into a directory that already holds a run is refused unless
 * asked to overwrite it; a resume needs a checkpoint; on resume the metrics
 * lines past the checkpoint's step (written before a crash) are dropped, so
 * no evaluation is listed twice.
 *
 * @module
 */

import { tf } from "../deps.ts";
import type { Variable } from "../types.ts";
import { appendJsonLine, writeFileAtomic, writeJsonAtomic } from "../atomic.ts";
import {
  checkpointPath,
  loadCheckpoint,
  optimizerMoments,
  restoreVariables,
  saveCheckpoint,
} from "./checkpoint.ts";
import type { AdamW } from "./optim.ts";

/** A run directory that cannot be used as asked (the CLI exits 2 with its message). */
export class RunDirectoryError extends Error {
  /** "RunDirectoryError". */
  override name = "RunDirectoryError";
}

/** The entries that make a directory a run directory. */
export const RUN_ENTRIES = [
  "config.json",
  "metrics.jsonl",
  "summary.json",
  "checkpoint",
  "best",
  "table1.json", // the report's Table 1 figures (src/analysis/table1.ts)
];

/** What a path holds. */
export interface RunDirState {
  /** Something exists at the path. */
  exists: boolean;
  /** It holds at least one of {@linkcode RUN_ENTRIES}. */
  isRun: boolean;
  /** It holds `checkpoint/checkpoint.bin`. */
  hasCheckpoint: boolean;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * What `dir` holds; a file there is a {@linkcode RunDirectoryError}.
 *
 * @example
 * ```ts
 * import { inspectRunDir } from "./run_dir.ts";
 * await inspectRunDir("/nonexistent/run"); // { exists: false, isRun: false, hasCheckpoint: false }
 * ```
 */
export async function inspectRunDir(dir: string): Promise<RunDirState> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(dir);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      return { exists: false, isRun: false, hasCheckpoint: false };
    }
    throw e;
  }
  if (!info.isDirectory) {
    throw new RunDirectoryError(`--out ${dir} is a file: a run directory must be a directory`);
  }
  let isRun = false;
  for (const name of RUN_ENTRIES) if (await exists(`${dir}/${name}`)) isRun = true;
  return { exists: true, isRun, hasCheckpoint: await exists(checkpointPath(`${dir}/checkpoint`)) };
}

/**
 * Checks that `dir` may be used as asked, throwing a one-line
 * {@linkcode RunDirectoryError} otherwise: a fresh run needs a directory
 * without a run in it (or `overwrite`), a resume needs a checkpoint.
 *
 * @example
 * ```ts
 * import { checkRunDir } from "./run_dir.ts";
 * await checkRunDir(await Deno.makeTempDir(), { resume: false }); // ok: empty
 * ```
 */
export async function checkRunDir(
  dir: string,
  o: { resume?: boolean; overwrite?: boolean },
): Promise<RunDirState> {
  const st = await inspectRunDir(dir);
  if (o.resume && o.overwrite) {
    throw new RunDirectoryError("--resume and --overwrite exclude each other");
  }
  if (o.resume && !st.hasCheckpoint) {
    throw new RunDirectoryError(
      `--resume: ${dir} has no checkpoint (${dir}/checkpoint/checkpoint.bin) to continue from;` +
        (st.isRun ? " start it again with --overwrite" : " start a fresh run without --resume"),
    );
  }
  if (!o.resume && st.isRun && !o.overwrite) {
    throw new RunDirectoryError(
      `${dir} already holds a run: continue it with --resume, replace it with --overwrite,` +
        ` or choose another --out`,
    );
  }
  return st;
}

/**
 * The config saved in `dir/config.json`, restricted to the keys of
 * `defaults` (dropping `backendInfo` and task extras); keys it lacks keep
 * the default.
 *
 * @example
 * ```ts
 * import { readSavedConfig } from "./run_dir.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/config.json`, '{"epochs": 5, "backendInfo": {}}');
 * await readSavedConfig(dir, { epochs: 3, seed: 0 }); // { epochs: 5, seed: 0 }
 * ```
 */
export async function readSavedConfig<C extends object>(dir: string, defaults: C): Promise<C> {
  let saved: Record<string, unknown>;
  try {
    saved = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
  } catch (e) {
    throw new RunDirectoryError(
      `--resume: cannot read ${dir}/config.json (${(e as Error).message})`,
    );
  }
  const out = { ...defaults } as Record<string, unknown>;
  for (const k of Object.keys(defaults)) if (k in saved) out[k] = saved[k];
  return out as C;
}

/** Tensors by name, as a model holds them. */
export type Params = Record<string, Variable>;

const paramTensors = (params: Params) =>
  Object.fromEntries(Object.entries(params).map(([k, v]) => [`param/${k}`, v]));

/** An opened run directory (see the module docs). */
export class RunDir {
  /** The checkpoint directory. */
  readonly checkpointDir: string;
  /** The best-weights directory. */
  readonly bestDir: string;

  /** Opens `dir` (no checks: see {@linkcode openRunDir}). */
  constructor(readonly dir: string) {
    this.checkpointDir = `${dir}/checkpoint`;
    this.bestDir = `${dir}/best`;
  }

  /** Writes `config.json`: the config and `extra` (backend, model facts). */
  async writeConfig(config: object, extra: object): Promise<void> {
    await writeJsonAtomic(`${this.dir}/config.json`, { ...config, ...extra });
  }

  /** Appends one line to `metrics.jsonl`. */
  async appendMetrics(line: { step: number }): Promise<void> {
    await appendJsonLine(`${this.dir}/metrics.jsonl`, line);
  }

  /**
   * Drops the lines of `metrics.jsonl` past `step` (written before a crash,
   * after the checkpoint it resumes from); returns how many.
   */
  async trimMetrics(step: number): Promise<number> {
    const path = `${this.dir}/metrics.jsonl`;
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return 0;
      throw e;
    }
    const lines = text.split("\n").filter((l) => l.trim() !== "");
    const keep = lines.filter((l) => {
      try {
        return (JSON.parse(l) as { step: number }).step <= step;
      } catch {
        return false; // a line cut by the crash
      }
    });
    if (keep.length === lines.length) return 0;
    await writeFileAtomic(path, new TextEncoder().encode(keep.map((l) => l + "\n").join("")));
    return lines.length - keep.length;
  }

  /** Saves weights, optimizer state and `meta` to `checkpoint/`. */
  async saveCheckpoint(params: Params, opt: AdamW, meta: object): Promise<void> {
    const st = opt.getState();
    const tensors: Record<string, tf.Tensor> = paramTensors(params);
    for (const [name, t] of Object.entries(st.m)) tensors[`opt.m/${name}`] = t;
    for (const [name, t] of Object.entries(st.v)) tensors[`opt.v/${name}`] = t;
    await saveCheckpoint(this.checkpointDir, { tensors, meta: { ...meta, optStep: st.step } });
  }

  /** Restores weights and optimizer state from `checkpoint/`; returns its meta. */
  async loadCheckpoint<M extends object>(
    params: Params,
    opt: AdamW,
  ): Promise<M & { optStep: number }> {
    const ck = await loadCheckpoint<M & { optStep: number }>(this.checkpointDir);
    restoreVariables(ck, params);
    const { m, v } = optimizerMoments(ck, params);
    opt.setState({ step: ck.meta.optStep, m, v });
    tf.dispose([...Object.values(m), ...Object.values(v)]);
    return ck.meta;
  }

  /** Saves the weights to `best/`. */
  async saveBest(params: Params, meta: object): Promise<void> {
    await saveCheckpoint(this.bestDir, { tensors: paramTensors(params), meta });
  }

  /** Loads the weights of `best/` into `params`; false when there is none. */
  async loadBest(params: Params): Promise<boolean> {
    const best = await loadCheckpoint(this.bestDir).catch((e: Error) => {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    });
    if (best) restoreVariables(best, params);
    return best !== null;
  }

  /** Writes `summary.json`. */
  async writeSummary(summary: object): Promise<void> {
    await writeJsonAtomic(`${this.dir}/summary.json`, summary);
  }
}

/**
 * Checks `dir` (see {@linkcode checkRunDir}); for a fresh run with
 * `overwrite`, removes the old run's entries; creates it; opens it.
 *
 * @example
 * ```ts
 * import { openRunDir } from "./run_dir.ts";
 * const run = await openRunDir(await Deno.makeTempDir(), { resume: false });
 * run.checkpointDir; // ".../checkpoint"
 * ```
 */
export async function openRunDir(
  dir: string,
  o: { resume?: boolean; overwrite?: boolean },
): Promise<RunDir> {
  const st = await checkRunDir(dir, o);
  if (!o.resume && st.isRun) {
    for (const name of RUN_ENTRIES) {
      await Deno.remove(`${dir}/${name}`, { recursive: true }).catch((e: Error) => {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      });
    }
  }
  await Deno.mkdir(dir, { recursive: true });
  return new RunDir(dir);
}
