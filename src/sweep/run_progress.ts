/**
 * How far each run of a sweep is (from its config.json and metrics.jsonl),
 * and the one status line per run that the sweep prints.
 *
 * @module
 */

import { formatDuration } from "../cli/progress.ts";
import type { ManifestRun } from "./manifest.ts";
import { readJsonLinesLenient, readJsonOrNull } from "./run_files.ts";

/** How far a run is, from its config.json and metrics.jsonl. */
export interface RunProgress {
  /** "epoch" for the classifier and the ViT, "step" for the LM (`steps` in its config). */
  unit: "epoch" | "step";
  /** Epochs (or evaluation steps) recorded in metrics.jsonl. */
  done: number;
  /** Epochs (or steps) of the whole run; null when config.json is missing. */
  total: number | null;
  /** Seconds left, from the mean time per unit so far; null before the first line. */
  etaSeconds: number | null;
}

/**
 * Reads a run's progress: the last `epoch` (or `step`) in metrics.jsonl
 * against `epochs` (or `steps`) in config.json, and an ETA from the
 * `seconds` recorded per line.
 *
 * @example
 * ```ts ignore
 * import { readRunProgress } from "./run_progress.ts";
 * const p = await readRunProgress("runs/e64/mode-moe_seed-0"); // { unit: "epoch", done: 3, total: 20, etaSeconds: 850 }
 * ```
 */
export async function readRunProgress(dir: string): Promise<RunProgress> {
  const cfg = await readJsonOrNull(`${dir}/config.json`);
  const unit: "epoch" | "step" = cfg && typeof cfg.epochs !== "number" &&
      typeof cfg.steps === "number"
    ? "step"
    : "epoch";
  const total = cfg ? Number(unit === "epoch" ? cfg.epochs : cfg.steps) : null;
  const lines = await readJsonLinesLenient(`${dir}/metrics.jsonl`);
  const last = lines.at(-1);
  const done = last ? Number(last[unit]) || 0 : 0;
  const seconds = lines.reduce((s, l) => s + (Number(l.seconds) || 0), 0);
  const etaSeconds = done > 0 && total !== null && Number.isFinite(total)
    ? seconds / done * Math.max(0, total - done)
    : null;
  return { unit, done, total: Number.isFinite(total) ? total : null, etaSeconds };
}

/**
 * The status lines of a sweep, one per run in manifest order, with the ids
 * padded to one width.
 *
 * @example
 * ```ts
 * import { statusLines } from "./run_progress.ts";
 * statusLines([
 *   { id: "seed-0", flags: {}, args: [], status: "done", attempts: 1 },
 *   { id: "seed-10", flags: {}, args: [], status: "queued", attempts: 0 },
 * ], () => null);
 * // ["seed-0   done", "seed-10  queued"]
 * ```
 */
export function statusLines(
  runs: readonly ManifestRun[],
  progressOf: (run: ManifestRun) => RunProgress | null,
): string[] {
  const width = Math.max(...runs.map((r) => r.id.length));
  return runs.map((r) => statusLine(r, progressOf(r), width));
}

/**
 * One status line per run: `done`, `running 3/20 epochs ETA 14m10s`,
 * `queued` (with `(resume)` when a checkpoint waits), `failed (exit 1, see
 * logs/<id>.log)` or `interrupted`.
 *
 * @example
 * ```ts
 * import { statusLine } from "./run_progress.ts";
 * statusLine({ id: "seed-0", flags: {}, args: [], status: "running", attempts: 1 },
 *   { unit: "epoch", done: 3, total: 20, etaSeconds: 850 }, 10);
 * // "seed-0      running  3/20 epochs  ETA 14m10s"
 * ```
 */
export function statusLine(run: ManifestRun, progress: RunProgress | null, width = 0): string {
  const id = run.id.padEnd(width);
  const p = progress && progress.total !== null
    ? `${progress.done}/${progress.total} ${progress.unit}s`
    : "";
  switch (run.status) {
    case "done":
      return `${id}  done`;
    case "running":
      return `${id}  running  ${p || "starting"}${
        progress?.etaSeconds != null ? `  ETA ${formatDuration(progress.etaSeconds)}` : ""
      }`;
    case "failed":
      return `${id}  failed   exit ${run.exitCode ?? "?"}${
        p ? `, at ${p}` : ""
      } (logs/${run.id}.log)`;
    case "interrupted":
      return `${id}  interrupted${p ? ` at ${p}` : ""}`;
    default:
      return `${id}  queued${progress && progress.done > 0 ? `  (resumes at ${p})` : ""}`;
  }
}
