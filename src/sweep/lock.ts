/**
 * One sweep process per sweep directory: `sweep.lock` holds the pid of the
 * sweep that runs it. Two sweeps under one name would queue the same runs
 * and resume one checkpoint from two trainers at once, both writing one run
 * directory; the second is refused, naming the first. A lock whose process
 * is gone (killed with `kill -9`, a machine restart) is taken over.
 *
 * @module
 */

import { readJsonOrNull } from "./run_files.ts";

/** The lock's file name in a sweep directory. */
export const LOCK_FILE = "sweep.lock";

/** Whether a process with this pid exists (a SIGCONT changes nothing in a running process). */
function processExists(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch (e) {
    // ESRCH: no such process. Anything else (another user's process, a platform
    // without SIGCONT) counts as alive: refusing is the safe side.
    return !(e instanceof Deno.errors.NotFound);
  }
}

/**
 * Takes the sweep directory's lock and returns the function that releases it.
 * Throws a `RangeError` naming the lock file and the process that holds it
 * when another live process does; a lock left by a process that no longer
 * exists is replaced. The directory must exist.
 *
 * @example
 * ```ts
 * import { acquireSweepLock } from "./lock.ts";
 * const dir = await Deno.makeTempDir();
 * const release = await acquireSweepLock(dir);
 * // a second acquireSweepLock(dir) here throws: this process holds it
 * await release();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function acquireSweepLock(sweepDir: string): Promise<() => Promise<void>> {
  const path = `${sweepDir}/${LOCK_FILE}`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      // createNew: exactly one of two racing sweeps creates the file.
      await Deno.writeTextFile(
        path,
        JSON.stringify({ pid: Deno.pid, started: new Date().toISOString() }) + "\n",
        { createNew: true },
      );
      return async () => {
        await Deno.remove(path).catch(() => {});
      };
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
    const held = await readJsonOrNull(path);
    const pid = Number(held?.pid);
    if (!held || !Number.isInteger(pid) || pid <= 0 || processExists(pid)) {
      throw new RangeError(
        `${path}: ` +
          (held && Number.isInteger(pid) && pid > 0
            ? `another sweep runs this directory (process ${pid}, since ${held.started})`
            : "the lock file is unreadable (being written by another sweep, or damaged)") +
          `; wait for it or stop it, or delete ${path} if no sweep is running`,
      );
    }
    await Deno.remove(path).catch(() => {}); // its process is gone: take it over
  }
  throw new RangeError(`${path}: another sweep took the lock at the same moment`);
}
