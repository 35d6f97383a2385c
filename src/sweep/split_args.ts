/**
 * A sweep's command line: its own flags apart from the train flags that it
 * passes to every run.
 *
 * @module
 */

import { RESERVED_TRAIN_FLAGS } from "./grid.ts";

/**
 * Splits a sweep command line into the sweep's own flags (those in `own`,
 * boolean ones listed in `booleans`) and the train flags passed through.
 * A pass-through flag takes the next argument as its value unless that
 * starts with `--` (so `--lr -1e-3` and `--quiet` both work).
 *
 * @example
 * ```ts
 * import { splitArgs } from "./split_args.ts";
 * splitArgs(["--name", "a", "--epochs", "2", "--grid", "seed=0..1"], ["name", "grid"], []);
 * // { own: ["--name", "a", "--grid", "seed=0..1"], train: ["--epochs", "2"] }
 * ```
 */
export function splitArgs(
  args: readonly string[],
  own: readonly string[],
  booleans: readonly string[],
): { own: string[]; train: string[] } {
  const mine: string[] = [], train: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "-h") {
      mine.push(a);
      continue;
    }
    const m = /^--([^=]+)(=.*)?$/.exec(a);
    if (!m) throw new RangeError(`unexpected argument "${a}" (flags start with --)`);
    const [, name, inline] = m;
    const isOwn = own.includes(name) || booleans.includes(name);
    const dest = isOwn ? mine : train;
    dest.push(a);
    if (inline !== undefined || booleans.includes(name)) continue;
    const next = args[i + 1];
    if (next !== undefined && (isOwn || !next.startsWith("--"))) dest.push(args[++i]);
  }
  for (let i = 0; i < train.length; i++) {
    const name = /^--([^=]+)/.exec(train[i])?.[1];
    if (name && RESERVED_TRAIN_FLAGS.includes(name)) {
      throw new RangeError(`--${name} is set by the sweep itself for every run: leave it out`);
    }
  }
  return { own: mine, train };
}
