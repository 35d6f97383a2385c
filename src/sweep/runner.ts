/**
 * The sweep runner: keeps `jobs` train processes busy over the unfinished
 * runs of a manifest, skips finished runs, resumes interrupted ones, logs
 * each run to `logs/<id>.log` and rewrites the manifest after every change.
 *
 * @module
 */

import { writeJsonAtomic } from "../atomic.ts";
import type { ManifestRun, SweepManifest } from "./manifest.ts";
import { readRunProgress, type RunProgress, statusLines } from "./run_progress.ts";
import { resumeFlag, runDiskState } from "./run_state.ts";
import { type TaskCommand, taskCommand, trainKnowsOverwrite } from "./task_command.ts";
import { acquireSweepLock } from "./lock.ts";

/** Options of {@linkcode runSweep}. */
export interface RunSweepOptions {
  /** The sweep directory, `runs/<name>`. */
  sweepDir: string;
  /** The manifest (from `manifestFor` of manifest.ts). */
  manifest: SweepManifest;
  /** Training processes at once (≥ 1). */
  jobs: number;
  /** The train command (default: the `train` task of deno.json). */
  command?: TaskCommand;
  /** Whether the train command knows `--overwrite` (default: asks its `--help`). */
  trainHasOverwrite?: boolean;
  /** Stops launching runs and interrupts the running ones (SIGINT: they checkpoint). */
  signal?: AbortSignal;
  /** Called with one line per run whenever a run starts or ends, and every `statusEverySeconds`. */
  onStatus?: (lines: string[]) => void;
  /** Seconds between periodic status calls (default 30). */
  statusEverySeconds?: number;
  /** Seconds to let running trainers stop on their own after `signal` (a terminal's Ctrl-C reaches them too) before they get a SIGINT (default 5). */
  graceSeconds?: number;
}

/** What {@linkcode runSweep} did. */
export interface SweepOutcome {
  /** The manifest as last written. */
  manifest: SweepManifest;
  /** Runs finished before this sitting (skipped). */
  skipped: string[];
  /** Runs started in this sitting, with the flag they got ("", "--resume", "--overwrite"). */
  started: { id: string; how: string }[];
  /** Runs that failed in this sitting. */
  failed: string[];
  /** Whether the sweep was interrupted. */
  interrupted: boolean;
}

/**
 * Runs every unfinished run of a sweep, `jobs` at a time, each as a train
 * process writing `sweepDir/<id>/` and logging to `sweepDir/logs/<id>.log`:
 * finished runs are skipped, runs with a checkpoint get `--resume`, runs
 * whose directory holds files but no checkpoint get `--overwrite` (or, when
 * the train command does not know that flag, their directory is emptied
 * first). The manifest is rewritten atomically after every change. Refused
 * (`RangeError`) while another live process holds the directory's
 * `sweep.lock` (`./lock.ts`).
 *
 * @example
 * ```ts ignore
 * import { manifestFor, readManifest } from "./manifest.ts";
 * import { runSweep } from "./runner.ts";
 * const grid = [{ flag: "seed", values: ["0", "1"] }];
 * const manifest = manifestFor(await readManifest("runs/demo"), "demo", grid, ["--preset", "tiny"]);
 * await runSweep({ sweepDir: "runs/demo", manifest, jobs: 2 });
 * ```
 */
export async function runSweep(opts: RunSweepOptions): Promise<SweepOutcome> {
  const { sweepDir } = opts;
  if (!Number.isInteger(opts.jobs) || opts.jobs < 1) {
    throw new RangeError(`--jobs ${opts.jobs}: must be an integer >= 1`);
  }
  const absDir = sweepDir.startsWith("/") ? sweepDir : `${Deno.cwd()}/${sweepDir}`;
  await Deno.mkdir(`${absDir}/logs`, { recursive: true });
  const release = await acquireSweepLock(absDir);
  try {
    return await runLocked(opts, absDir);
  } finally {
    await release();
  }
}

/** {@linkcode runSweep} once it holds the sweep directory's lock. */
async function runLocked(opts: RunSweepOptions, absDir: string): Promise<SweepOutcome> {
  const { manifest } = opts;
  const command = opts.command ?? await taskCommand("train");
  let hasOverwrite = opts.trainHasOverwrite;
  const outcome: SweepOutcome = {
    manifest,
    skipped: [],
    started: [],
    failed: [],
    interrupted: false,
  };
  const save = async () => {
    manifest.updated = new Date().toISOString();
    await writeJsonAtomic(`${absDir}/sweep.json`, manifest);
  };
  const queue: ManifestRun[] = [];
  for (const run of manifest.runs) {
    const state = await runDiskState(`${absDir}/${run.id}`);
    if (state === "done") {
      run.status = "done";
      outcome.skipped.push(run.id);
    } else {
      run.status = "queued";
      queue.push(run);
    }
  }
  await save();
  const progressOf = async () => {
    const out = new Map<string, RunProgress>();
    for (const r of manifest.runs) {
      if (r.status !== "done") out.set(r.id, await readRunProgress(`${absDir}/${r.id}`));
    }
    return out;
  };
  const report = async () => {
    if (!opts.onStatus) return;
    const progress = await progressOf();
    opts.onStatus(statusLines(manifest.runs, (r) => progress.get(r.id) ?? null));
  };
  await report();

  const running = new Map<string, Deno.ChildProcess>();
  let stopping = false;
  let graceTimer: ReturnType<typeof setTimeout> | undefined;
  const onAbort = () => {
    stopping = true;
    outcome.interrupted = true;
    const grace = (opts.graceSeconds ?? 5) * 1000;
    graceTimer = setTimeout(() => {
      for (const child of running.values()) {
        try {
          child.kill("SIGINT");
        } catch { /* already exited */ }
      }
    }, grace);
  };
  if (opts.signal?.aborted) onAbort();
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  const timer = setInterval(() => void report(), (opts.statusEverySeconds ?? 30) * 1000);

  const launch = async (run: ManifestRun): Promise<void> => {
    const dir = `${absDir}/${run.id}`;
    const state = await runDiskState(dir);
    let extra = resumeFlag(state) ?? [];
    if (extra[0] === "--overwrite") {
      hasOverwrite ??= await trainKnowsOverwrite(command);
      if (!hasOverwrite) {
        // This train command overwrites without asking: empty the directory so that no
        // stale metrics.jsonl lines survive.
        await Deno.remove(dir, { recursive: true });
        extra = [];
      }
    }
    const args = [...run.args, "--out", dir, "--quiet", ...extra];
    const log = await Deno.open(`${absDir}/logs/${run.id}.log`, {
      create: true,
      append: true,
    });
    const header = `\n$ ${["deno task train", ...args].join(" ")}    # ${
      new Date().toISOString()
    }\n`;
    await log.write(new TextEncoder().encode(header));
    const child = new Deno.Command(command.argv[0], {
      args: [...command.argv.slice(1), ...args],
      cwd: command.cwd,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    running.set(run.id, child);
    run.status = "running";
    run.attempts = (run.attempts ?? 0) + 1;
    outcome.started.push({ id: run.id, how: extra.join(" ") });
    await save();
    // Both streams into the one log file.
    const pump = async (s: ReadableStream<Uint8Array>) => {
      for await (const chunk of s) await log.write(chunk);
    };
    await Promise.all([pump(child.stdout), pump(child.stderr)]);
    const status = await child.status;
    log.close();
    running.delete(run.id);
    run.exitCode = status.code;
    const after = await runDiskState(dir);
    if (status.success && after === "done") run.status = "done";
    else if (stopping || status.code === 130) run.status = "interrupted";
    else {
      run.status = "failed";
      outcome.failed.push(run.id);
    }
    await save();
    await report();
  };

  const workers = Array.from({ length: Math.min(opts.jobs, queue.length) }, async () => {
    while (!stopping) {
      const run = queue.shift();
      if (!run) return;
      await launch(run);
    }
  });
  try {
    await Promise.all(workers);
  } finally {
    clearInterval(timer);
    clearTimeout(graceTimer);
    opts.signal?.removeEventListener("abort", onAbort);
  }
  await save();
  return outcome;
}
