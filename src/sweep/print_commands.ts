/**
 * A sweep as shell commands: one train command per unfinished run, for GNU
 * parallel or a Slurm job array.
 *
 * @module
 */

import type { SweepManifest } from "./manifest.ts";
import { resumeFlag, runDiskState } from "./run_state.ts";

/**
 * The train commands of the unfinished runs of a sweep, one per line, for
 * GNU parallel or a Slurm job array: `deno task train ARGS --out DIR --quiet`
 * plus `--resume` or `--overwrite` as the run's directory requires.
 *
 * @example
 * ```ts ignore
 * import { manifestFor } from "./manifest.ts";
 * import { printCommands } from "./print_commands.ts";
 * const m = manifestFor(null, "demo", [{ flag: "seed", values: ["0", "1"] }], ["--preset", "tiny"]);
 * await printCommands("runs/demo", m); // ["deno task train --preset tiny --seed 0 --out runs/demo/seed-0 --quiet", ...]
 * ```
 */
export async function printCommands(sweepDir: string, manifest: SweepManifest): Promise<string[]> {
  const out: string[] = [];
  for (const run of manifest.runs) {
    const dir = `${sweepDir}/${run.id}`;
    const extra = resumeFlag(await runDiskState(dir));
    if (extra === null) continue;
    const args = [...run.args, "--out", dir, "--quiet", ...extra];
    out.push(["deno", "task", "train", ...args.map(shellQuote)].join(" "));
  }
  return out;
}

/**
 * Quotes an argument for a POSIX shell when it needs it.
 *
 * @example
 * ```ts
 * import { shellQuote } from "./print_commands.ts";
 * shellQuote("a b"); // "'a b'"
 * ```
 */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./=:,+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
