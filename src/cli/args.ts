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

/**
 * Parses `args` strictly: an unknown flag or a missing value is a
 * {@linkcode UsageError}.
 *
 * @example
 * ```ts
 * import { parseFlags } from "./args.ts";
 * parseFlags(["--experts", "64", "--help"], { experts: { type: "string" }, help: { type: "boolean" } });
 * // { experts: "64", help: true }
 * ```
 */
export function parseFlags(
  args: string[],
  spec: Record<string, FlagSpec>,
): Record<string, string | boolean | string[] | boolean[] | undefined> {
  try {
    const { values, positionals } = parseArgs({
      args,
      options: spec,
      strict: true,
      allowPositionals: true,
    });
    if (positionals.length) {
      throw new UsageError(`unexpected argument "${positionals[0]}" (flags start with --)`);
    }
    return values as Record<string, string | boolean | string[] | boolean[] | undefined>;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError((e as Error).message.split("\n")[0]);
  }
}

/**
 * Parses a number flag, naming the flag and what is allowed on failure.
 *
 * @example
 * ```ts
 * import { numberFlag } from "./args.ts";
 * numberFlag("lr", "1e-3"); // 0.001
 * ```
 */
export function numberFlag(name: string, value: string): number {
  const v = Number(value);
  if (value.trim() === "" || !Number.isFinite(v)) {
    throw new UsageError(`--${name} ${JSON.stringify(value)} is not a number`);
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
