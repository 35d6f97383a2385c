/**
 * Command-line parsing for moge's scripts. This is the one place that
 * imports `node:util`'s `parseArgs` (a stand-in for JSR's `@std/cli`, which
 * this environment cannot reach), so it can be swapped in one edit.
 *
 * @module
 */

import { parseArgs } from "node:util";

/** A flag: its kind, and for options with values a default. */
export interface FlagSpec {
  /** "string" flags take a value; "boolean" flags do not. */
  type: "string" | "boolean";
  /** One-letter alias. */
  short?: string;
  /** Repeatable. */
  multiple?: boolean;
}

/** A command-line error: the script prints its message and exits with status 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** A value that starts with "-" but is a number (`-4`, `-1e-3`, `-.5`, `-Infinity`, `-NaN`). */
const NEGATIVE_NUMBER = /^-(?:\d|\.\d|Infinity|NaN)/;

/**
 * At most `max` characters of `value`, quoted as JSON (so it stays on one line).
 *
 * @example
 * ```ts
 * import { quote } from "./args.ts";
 * quote("a\nb"); // "\"a\\nb\""
 * ```
 */
export function quote(value: string, max = 40): string {
  return JSON.stringify(value.length > max ? value.slice(0, max) + "…" : value);
}

/**
 * Rewrites `--flag -4` (and `-f -4`) as `--flag=-4` for value-taking flags, so
 * that a negative number is read as the flag's value (parseArgs alone calls it
 * "ambiguous") and the flag's own check can say why it is out of range.
 */
function joinNegativeValues(args: string[], spec: Record<string, FlagSpec>): string[] {
  const takesValue = new Set<string>();
  for (const [name, s] of Object.entries(spec)) {
    if (s.type !== "string") continue;
    takesValue.add(`--${name}`);
    if (s.short) takesValue.add(`-${s.short}`);
  }
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--") {
      out.push(...args.slice(i));
      break;
    }
    const next = args[i + 1];
    if (takesValue.has(a) && next !== undefined && NEGATIVE_NUMBER.test(next)) {
      const long = a.startsWith("--")
        ? a
        : `--${Object.entries(spec).find(([, s]) => `-${s.short}` === a)![0]}`;
      out.push(`${long}=${next}`);
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
}

/**
 * Parses `args` strictly: an unknown flag or a missing value is a
 * {@linkcode UsageError} with a one-line message. A negative number after a
 * value-taking flag is its value (`--experts -4` gives `experts: "-4"`).
 *
 * @example
 * ```ts
 * import { parseFlags } from "./args.ts";
 * parseFlags(["--experts", "64", "--help"], { experts: { type: "string" }, help: { type: "boolean" } });
 * // { experts: "64", help: true }
 * parseFlags(["--lambda", "-1"], { lambda: { type: "string" } }); // { lambda: "-1" }
 * ```
 */
export function parseFlags(
  args: string[],
  spec: Record<string, FlagSpec>,
): Record<string, string | boolean | string[] | boolean[] | undefined> {
  try {
    const { values, positionals } = parseArgs({
      args: joinNegativeValues(args, spec),
      options: spec,
      strict: true,
      allowPositionals: true,
    });
    if (positionals.length) {
      throw new UsageError(`unexpected argument ${quote(positionals[0])} (flags start with --)`);
    }
    return values as Record<string, string | boolean | string[] | boolean[] | undefined>;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    const message = (e as Error).message;
    // "Option '--out' argument is ambiguous. Did you forget ...?": the value starts with "-".
    const ambiguous = /^Option '([^']*)' argument is ambiguous/.exec(message);
    if (ambiguous) {
      const byShort = Object.entries(spec).find(([, s]) => `-${s.short}` === ambiguous[1]);
      const flag = byShort ? `--${byShort[0]}` : /--[\w-]+/.exec(ambiguous[1])?.[0] ?? ambiguous[1];
      const short = Object.entries(spec).find(([n]) => `--${n}` === flag)?.[1].short;
      const i = args.findIndex((a) => a === flag || (short !== undefined && a === `-${short}`));
      const next = i >= 0 && i + 1 < args.length ? args[i + 1] : "";
      throw new UsageError(
        `${flag} needs a value, got the flag ${quote(next)} ` +
          `(a value that starts with "-" is written ${flag}=${next.slice(0, 40)})`,
      );
    }
    const unknown = /^Unknown option '([^']*)'/.exec(message);
    if (unknown) {
      const near = nearestFlag(unknown[1].replace(/^-+/, ""), Object.keys(spec));
      throw new UsageError(
        `unknown flag ${unknown[1]}` + (near ? ` (did you mean --${near}?)` : ""),
      );
    }
    const missing = /^Option '([^']*)' argument missing/.exec(message);
    if (missing) {
      throw new UsageError(`${/--[\w-]+/.exec(missing[1])?.[0] ?? missing[1]} needs a value`);
    }
    throw new UsageError(message.split("\n")[0]);
  }
}

/**
 * The known flag closest to a mistyped one: edit distance at most 2 (or one
 * that starts with it), else null.
 */
function nearestFlag(name: string, known: string[]): string | null {
  let best: string | null = null, bestD = 3;
  for (const k of known) {
    // Levenshtein distance, one row at a time.
    let row = Array.from({ length: k.length + 1 }, (_, j) => j);
    for (let i = 1; i <= name.length; i++) {
      const next = [i];
      for (let j = 1; j <= k.length; j++) {
        next[j] = Math.min(
          row[j] + 1,
          next[j - 1] + 1,
          row[j - 1] + (name[i - 1] === k[j - 1] ? 0 : 1),
        );
      }
      row = next;
    }
    const d = name.length >= 3 && k.startsWith(name) ? 1 : row[k.length];
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best;
}

/**
 * Parses a number flag, naming the flag and what is allowed on failure.
 * Range checks (e.g. E >= 1) are the caller's: this only refuses what is not
 * a finite number (empty, "abc", "NaN", "Infinity", "1e999").
 *
 * @example
 * ```ts
 * import { numberFlag } from "./args.ts";
 * numberFlag("lr", "1e-3"); // 0.001
 * numberFlag("lambda", "-1"); // -1 (the caller says why it is out of range)
 * ```
 */
export function numberFlag(name: string, value: string): number {
  const v = Number(value);
  if (value.trim() === "" || Number.isNaN(v)) {
    throw new UsageError(`--${name} ${quote(value)} is not a number`);
  }
  if (!Number.isFinite(v)) {
    throw new UsageError(`--${name} ${quote(value)} is not a finite number`);
  }
  return v;
}

/**
 * Runs a CLI main function: a {@linkcode UsageError} or `RangeError` prints
 * one line `error: ...` and exits with status 2; other errors exit 1.
 */
export async function runMain(main: () => Promise<void>, usage: string): Promise<void> {
  try {
    await main();
  } catch (e) {
    if (e instanceof UsageError || e instanceof RangeError) {
      console.error(`error: ${(e as Error).message}\n(see ${usage} --help)`);
      Deno.exit(2);
    }
    console.error(`error: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
