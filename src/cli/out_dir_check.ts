/**
 * Checks a run directory (`--out DIR`) before any data loads: that it is not
 * a file, and that it can be written, so that a bad `--out` gives one clear
 * line at once instead of "File exists (os error 17)" or a permission prompt
 * after the data set has loaded.
 *
 * @module
 */

import { dirname, join, resolve } from "node:path";
import { quote, UsageError } from "./args.ts";

/** Why a path could not be used, from a Deno error. */
function reason(e: unknown): string {
  if (e instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (e instanceof Deno.errors.NotCapable) {
    return `Deno's permissions do not allow it: ${(e as Error).message.split("\n")[0]}`;
  }
  return (e as Error).message.split("\n")[0];
}

/** The stat of `path`, or null when it does not exist. */
async function statOrNull(path: string, flag: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    // A path under a file (ENOTDIR) does not exist either: the walk up finds the file.
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return null;
    throw new UsageError(`${flag} ${quote(path, 200)} cannot be used: ${reason(e)}`);
  }
}

/**
 * Checks `dir` for use as a run directory, without creating it: it must be a
 * directory or not exist yet (then its nearest existing parent must be a
 * directory), and a probe file must be creatable in it (or that parent) and
 * removable. With `mustExist` (e.g. `--resume`) the directory must already
 * exist. Throws a {@linkcode UsageError} (exit 2) naming the flag, the path
 * and what is wrong.
 *
 * @param dir the run directory
 * @param options `flag` for messages (default "--out"); `mustExist` for resuming
 *
 * @example
 * ```ts
 * import { checkOutDir } from "./out_dir_check.ts";
 * const dir = await Deno.makeTempDir();
 * await checkOutDir(`${dir}/runs/a`); // ok: it will be created under dir
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function checkOutDir(
  dir: string,
  options: { flag?: string; mustExist?: boolean } = {},
): Promise<void> {
  const { flag = "--out", mustExist = false } = options;
  const shown = quote(dir, 200);
  if (typeof dir !== "string" || dir.trim() === "") {
    throw new UsageError(`${flag} ${shown} is empty: give a directory path`);
  }
  if (dir.includes("\0")) throw new UsageError(`${flag} ${shown} contains a NUL character`);
  const abs = resolve(dir);
  const info = await statOrNull(abs, flag);
  if (info && !info.isDirectory) {
    throw new UsageError(
      `${flag} ${shown} is a file, not a directory: give a new or existing directory`,
    );
  }
  if (!info && mustExist) {
    throw new UsageError(`${flag} ${shown} does not exist: there is no run to continue there`);
  }
  // The directory itself, or the nearest existing parent it would be created in.
  let probeDir = abs;
  if (!info) {
    let parent = dirname(abs);
    let pinfo = await statOrNull(parent, flag);
    while (!pinfo && dirname(parent) !== parent) {
      parent = dirname(parent);
      pinfo = await statOrNull(parent, flag);
    }
    if (!pinfo) throw new UsageError(`${flag} ${shown}: no parent directory of it exists`);
    if (!pinfo.isDirectory) {
      throw new UsageError(
        `${flag} ${shown} cannot be created: ${quote(parent, 200)} is a file, not a directory`,
      );
    }
    probeDir = parent;
  }
  const probe = join(probeDir, `.moge-write-probe-${Deno.pid}-${Date.now()}`);
  try {
    await Deno.writeFile(probe, new Uint8Array(0), { createNew: true });
  } catch (e) {
    const where = probeDir === abs ? "" : ` (it would be created in ${quote(probeDir, 200)})`;
    throw new UsageError(`${flag} ${shown} is not writable${where}: ${reason(e)}`);
  }
  await Deno.remove(probe).catch(() => {});
}
