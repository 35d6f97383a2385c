/**
 * The finished runs of a sweep as records: what `deno task train` wrote
 * (config.json, summary.json, metrics.jsonl) for the classifier, the ViT
 * and the LM, and which of them wrote it.
 *
 * @module
 */

import { type JsonObject, readJsonLinesLenient, readJsonOrNull } from "../sweep/run_files.ts";

/** Which trainer wrote a run. */
export type ModelKind = "classifier" | "vit" | "lm";

/** A parsed JSON object (config.json, summary.json, a metrics.jsonl line). */
export type Json = JsonObject;

/** One finished run. */
export interface RunRecord {
  /** Directory name in the sweep. */
  id: string;
  /** Run directory. */
  dir: string;
  /** Which trainer wrote it. */
  model: ModelKind;
  /** config.json. */
  config: Json;
  /** summary.json. */
  summary: Json;
  /** metrics.jsonl, one object per line. */
  metrics: Json[];
}

/**
 * Which trainer wrote a summary: the LM's has `testPpl`, the ViT's `moeBlocks`.
 *
 * @example
 * ```ts
 * import { modelOf } from "./sweep_runs.ts";
 * modelOf({ testPpl: 120 }); // "lm"
 * ```
 */
export function modelOf(summary: Json): ModelKind {
  if ("testPpl" in summary) return "lm";
  if ("moeBlocks" in summary || "testMoe" in summary) return "vit";
  return "classifier";
}

/**
 * Loads the finished runs of a sweep directory (the runs of its sweep.json,
 * else every subdirectory, or symbolic link to a directory, with a
 * config.json: runs of several sweeps can be compared by linking them into
 * one directory); unfinished ones (no
 * readable summary.json with `completed: true`) are listed apart.
 *
 * @example
 * ```ts ignore
 * import { loadSweepRuns } from "./sweep_runs.ts";
 * const { runs, unfinished } = await loadSweepRuns("runs/e64");
 * ```
 */
export async function loadSweepRuns(
  sweepDir: string,
): Promise<{ runs: RunRecord[]; unfinished: string[] }> {
  const manifest = await readJsonOrNull(`${sweepDir}/sweep.json`);
  let ids: string[];
  if (manifest && Array.isArray(manifest.runs)) {
    ids = (manifest.runs as Json[]).map((r) => String(r.id));
  } else {
    ids = [];
    try {
      for await (const e of Deno.readDir(sweepDir)) {
        if (
          (e.isDirectory || e.isSymlink) &&
          await readJsonOrNull(`${sweepDir}/${e.name}/config.json`)
        ) {
          ids.push(e.name);
        }
      }
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new RangeError(`${sweepDir}: no such directory (expected a sweep, runs/<name>)`);
      }
      throw e;
    }
    ids.sort();
  }
  const runs: RunRecord[] = [];
  const unfinished: string[] = [];
  for (const id of ids) {
    const dir = `${sweepDir}/${id}`;
    const config = await readJsonOrNull(`${dir}/config.json`);
    const summary = await readJsonOrNull(`${dir}/summary.json`);
    if (!config || !summary || summary.completed !== true) {
      unfinished.push(id);
      continue;
    }
    const metrics = await readJsonLinesLenient(`${dir}/metrics.jsonl`);
    runs.push({ id, dir, model: modelOf(summary), config, summary, metrics });
  }
  return { runs, unfinished };
}
