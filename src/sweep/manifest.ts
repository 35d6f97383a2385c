/**
 * The manifest of a sweep, `runs/<name>/sweep.json`: its grid, its fixed
 * train flags and the status of every run, kept over sittings.
 *
 * @module
 */

import { expandGrid, type GridAxis } from "./grid.ts";

/** Status of a run in the manifest. */
export type RunStatus = "queued" | "running" | "done" | "failed" | "interrupted";

/** One run in `sweep.json`. */
export interface ManifestRun {
  /** Directory name under the sweep. */
  id: string;
  /** The gridded flags. */
  flags: Record<string, string>;
  /** Train arguments (without --out, --resume, --overwrite). */
  args: string[];
  /** Last known status. */
  status: RunStatus;
  /** Exit code of the last attempt, if any. */
  exitCode?: number;
  /** Attempts (processes started) so far, over all sittings. */
  attempts: number;
}

/** `runs/<name>/sweep.json`. */
export interface SweepManifest {
  /** Format version. */
  version: 1;
  /** Sweep name. */
  name: string;
  /** The grid axes. */
  grid: GridAxis[];
  /** Train flags shared by all runs. */
  fixed: string[];
  /** One entry per grid point. */
  runs: ManifestRun[];
  /** ISO time the sweep was first started. */
  created: string;
  /** ISO time of the last manifest write. */
  updated: string;
}

/**
 * Reads `sweepDir/sweep.json`, or null when it does not exist.
 *
 * @example
 * ```ts ignore
 * import { readManifest } from "./manifest.ts";
 * const m = await readManifest("runs/e64");
 * ```
 */
export async function readManifest(sweepDir: string): Promise<SweepManifest | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(`${sweepDir}/sweep.json`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    if (e instanceof Deno.errors.NotADirectory) {
      throw new RangeError(`${sweepDir}: a path in it is a file, not a directory`);
    }
    throw e;
  }
  let m: SweepManifest;
  try {
    m = JSON.parse(text) as SweepManifest;
  } catch (e) {
    throw new RangeError(
      `${sweepDir}/sweep.json is not valid JSON (${(e as Error).message}); ` +
        "the runs' directories are intact: delete it and rerun the sweep with its flags",
    );
  }
  if (
    typeof m !== "object" || m === null || m.version !== 1 || !Array.isArray(m.runs) ||
    !Array.isArray(m.grid) || !Array.isArray(m.fixed)
  ) {
    throw new RangeError(`${sweepDir}/sweep.json is not a sweep manifest (version 1)`);
  }
  return m;
}

/**
 * A manifest for a grid: the existing one when its grid and fixed flags are
 * the same, a fresh one when there is none, and an error naming both when
 * they differ (a sweep's name stands for one grid).
 *
 * @example
 * ```ts
 * import { manifestFor } from "./manifest.ts";
 * const m = manifestFor(null, "demo", [{ flag: "seed", values: ["0", "1"] }], ["--preset", "tiny"]);
 * m.runs.length; // 2
 * ```
 */
export function manifestFor(
  existing: SweepManifest | null,
  name: string,
  grid: GridAxis[],
  fixed: string[],
): SweepManifest {
  const points = expandGrid(grid, fixed);
  if (existing) {
    const same = JSON.stringify(existing.grid) === JSON.stringify(grid) &&
      JSON.stringify(existing.fixed) === JSON.stringify(fixed);
    if (!same) {
      const show = (g: GridAxis[], f: string[]) =>
        [...g.map((a) => `--grid ${a.flag}=${a.values.join(",")}`), ...f].join(" ");
      throw new RangeError(
        `sweep "${name}" already exists with another grid or other fixed flags:\n` +
          `  existing: ${show(existing.grid, existing.fixed)}\n` +
          `  given:    ${show(grid, fixed)}\n` +
          `rerun with the existing flags to continue it, choose another --name, or delete its\n` +
          `sweep.json to change the grid (finished runs stay, and the new grid skips those it has)`,
      );
    }
    return existing;
  }
  const now = new Date().toISOString();
  return {
    version: 1,
    name,
    grid,
    fixed,
    runs: points.map((p) => ({ ...p, status: "queued", attempts: 0 })),
    created: now,
    updated: now,
  };
}
