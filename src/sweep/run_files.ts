/**
 * Reading what a train run writes while it may still be writing it: JSON
 * files that may be absent or half there, and metrics.jsonl whose last line
 * may be unfinished.
 *
 * @module
 */

/** A parsed JSON object (config.json, summary.json, a metrics.jsonl line). */
export type JsonObject = Record<string, unknown>;

/**
 * Parses a JSON file, or null when it is missing or cannot be read or parsed
 * (a run that has not written it yet).
 *
 * @example
 * ```ts ignore
 * import { readJsonOrNull } from "./run_files.ts";
 * const summary = await readJsonOrNull("runs/e64/mode-moe_seed-0/summary.json");
 * summary?.completed; // true once the run has finished
 * ```
 */
export async function readJsonOrNull(path: string): Promise<JsonObject | null> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch {
    return null;
  }
}

/**
 * The lines of a JSON Lines file that parse, skipping blank lines and a line
 * being written; `[]` when the file does not exist.
 *
 * @example
 * ```ts ignore
 * import { readJsonLinesLenient } from "./run_files.ts";
 * const lines = await readJsonLinesLenient("runs/e64/mode-moe_seed-0/metrics.jsonl");
 * lines.at(-1)?.epoch; // the last epoch recorded
 * ```
 */
export async function readJsonLinesLenient(path: string): Promise<JsonObject[]> {
  try {
    return (await Deno.readTextFile(path)).split("\n").filter((l) => l.trim())
      .flatMap((l) => {
        try {
          return [JSON.parse(l)];
        } catch {
          return []; // a line being written
        }
      });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}
