/**
 * What a run directory holds (finished, resumable, stale or fresh) and the
 * flag its train command needs for that.
 *
 * @module
 */

import { readJsonOrNull } from "./run_files.ts";
import { inspectRunDir } from "../train/run_dir.ts";

/** What is on disk for a run. */
export type RunDiskState =
  | "done" // summary.json with completed: true
  | "checkpoint" // a checkpoint to resume from
  | "stale" // a directory holding a run (config, metrics, ...) but no checkpoint
  | "fresh"; // no directory, or one holding no run

/**
 * Classifies a run directory: finished (`summary.json` with `completed:
 * true`), resumable (`checkpoint.bin` in it or in its `checkpoint/`),
 * stale (files but no checkpoint) or fresh (absent or empty).
 *
 * @example
 * ```ts ignore
 * import { runDiskState } from "./run_state.ts";
 * await runDiskState("runs/e64/mode-moe_seed-0"); // "done"
 * ```
 */
export async function runDiskState(dir: string): Promise<RunDiskState> {
  const summary = await readJsonOrNull(`${dir}/summary.json`);
  if (summary && summary.completed === true) return "done";
  // The trainer's own rule (src/train/run_dir.ts): a checkpoint resumes, a
  // directory holding a run needs --overwrite, anything else starts fresh.
  const state = await inspectRunDir(dir);
  if (state.hasCheckpoint) return "checkpoint";
  return state.isRun ? "stale" : "fresh";
}

/**
 * The flag a train command needs for a run in `state`: none for a fresh
 * directory, `--resume` from a checkpoint, `--overwrite` for a directory
 * with files but no checkpoint; null for a finished run (nothing to do).
 *
 * @example
 * ```ts
 * import { resumeFlag } from "./run_state.ts";
 * resumeFlag("checkpoint"); // ["--resume"]
 * ```
 */
export function resumeFlag(state: RunDiskState): string[] | null {
  switch (state) {
    case "done":
      return null;
    case "checkpoint":
      return ["--resume"];
    case "stale":
      return ["--overwrite"];
    case "fresh":
      return [];
  }
}
