/**
 * `deno task sweep --name NAME --grid FLAG=V1,V2 ... [train flags]`: a grid
 * of `deno task train` runs under `runs/NAME/`, several at once, resumable.
 *
 * @module
 */

import { writeJsonAtomic } from "../atomic.ts";
import { type GridAxis, parseGridAxis } from "../sweep/grid.ts";
import { manifestFor, type ManifestRun, readManifest } from "../sweep/manifest.ts";
import { printCommands } from "../sweep/print_commands.ts";
import { readRunProgress, type RunProgress, statusLines } from "../sweep/run_progress.ts";
import { runDiskState } from "../sweep/run_state.ts";
import { runSweep } from "../sweep/runner.ts";
import { splitArgs } from "../sweep/split_args.ts";
import { numberFlag, parseFlags, runMain, UsageError } from "./args.ts";
import { checkTrainArgs } from "./train.ts";

const OWN = ["name", "grid", "jobs", "runs", "status-every", "grace"];
const BOOLEANS = ["help", "print-commands", "status"];

function help(): string {
  return `Runs a grid of training runs (seeds, modes, any train flag), several at once.

Usage: deno task sweep --name NAME [--grid FLAG=V1,V2,... | --grid FLAG=A..B]... [train flags]

Example: deno task sweep --name e64 --grid mode=moe,moge --grid seed=0..4 --experts 64 --epochs 20
         (10 runs: runs/e64/mode-moe_seed-0/ ... runs/e64/mode-moge_seed-4/)

  --name NAME          the sweep: its runs go to <runs>/NAME/<run-id>/, its manifest
                       to <runs>/NAME/sweep.json, train output to <runs>/NAME/logs/<run-id>.log
  --grid FLAG=VALUES   a gridded train flag (repeatable; the first varies slowest):
                       a list (mode=moe,moge) or an inclusive integer range (seed=0..4)
  --jobs N             training processes at once [default: number of cores, ${navigator.hardwareConcurrency}]
  --runs DIR           where sweeps live [default runs]
  --print-commands     print one train command per unfinished run instead of running
                       (for GNU parallel or a Slurm job array; see the README)
  --status             print the status of each run and exit
  --status-every S     seconds between status printouts while running [default 30]
  --grace S            on Ctrl-C / SIGTERM, seconds to let the trainers stop by themselves
                       before each gets a SIGINT (then it saves a checkpoint) [default 5]
  -h, --help           this text

Every other flag goes unchanged to each \`deno task train\` (--model vit|lm, --preset, --epochs,
...): see deno task train --help. --out, --resume and --overwrite are set by the sweep.

Rerunning the same command continues the sweep: finished runs (summary.json complete) are
skipped, runs with a checkpoint get --resume, runs with files but no checkpoint start over.
Another grid under the same name is refused (delete its sweep.json to change the grid). A
second sweep of a directory that one is running is refused (sweep.lock). Ctrl-C lets the
running trainers save a checkpoint and stops. Summarize with: deno task report <runs>/NAME`;
}

/** The longest --status-every and --grace: a timer's delay is at most 2^31 - 1 ms (24.8 days). */
const MAX_SECONDS = 2_000_000;

async function main(): Promise<void> {
  let split;
  try {
    split = splitArgs(Deno.args, OWN, BOOLEANS);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const flags = parseFlags(split.own, {
    help: { type: "boolean", short: "h" },
    name: { type: "string" },
    grid: { type: "string", multiple: true },
    jobs: { type: "string" },
    runs: { type: "string" },
    "print-commands": { type: "boolean" },
    status: { type: "boolean" },
    "status-every": { type: "string" },
    grace: { type: "string" },
  });
  if (flags.help) {
    console.log(help());
    return;
  }
  const name = flags.name;
  if (typeof name !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    throw new UsageError(
      name === undefined
        ? "--name NAME is required (the sweep's directory under runs/)"
        : `--name ${JSON.stringify(name)}: use letters, digits, ".", "_" and "-"`,
    );
  }
  if (typeof flags.runs === "string" && flags.runs.trim() === "") {
    throw new UsageError('--runs "" is empty: give the directory that holds the sweeps');
  }
  const root = typeof flags.runs === "string" ? flags.runs.replace(/\/+$/, "") || "/" : "runs";
  const sweepDir = `${root}/${name}`;
  const existing = await readManifest(sweepDir);

  if (flags.status) {
    if (!existing) throw new UsageError(`${sweepDir}/sweep.json does not exist`);
    const runs: ManifestRun[] = [];
    const progress = new Map<string, RunProgress>();
    for (const r of existing.runs) {
      // The disk decides "done"; otherwise the manifest's last word (another sitting may be running).
      const onDisk = await runDiskState(`${sweepDir}/${r.id}`);
      const status = onDisk === "done" ? "done" : r.status === "done" ? "queued" : r.status;
      runs.push({ ...r, status });
      progress.set(r.id, await readRunProgress(`${sweepDir}/${r.id}`));
    }
    for (const line of statusLines(runs, (r) => progress.get(r.id) ?? null)) console.log(line);
    return;
  }

  let grid: GridAxis[];
  let manifest;
  try {
    grid = ((flags.grid ?? []) as string[]).map(parseGridAxis);
    manifest = manifestFor(existing, name, grid, split.train);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }

  // Each grid point must be a command train accepts, checked before sweep.json records the
  // grid: a typo would otherwise fail every run and keep the name bound to the bad grid.
  for (const r of manifest.runs) {
    try {
      checkTrainArgs(r.args);
    } catch (e) {
      throw new UsageError(`run ${r.id}: ${(e as Error).message}`);
    }
  }

  if (flags["print-commands"]) {
    if (!existing) {
      // Record the grid, so that a later sweep or report under this name knows it.
      await Deno.mkdir(sweepDir, { recursive: true });
      await writeJsonAtomic(`${sweepDir}/sweep.json`, manifest);
    }
    for (const line of await printCommands(sweepDir, manifest)) console.log(line);
    return;
  }

  const jobs = flags.jobs === undefined
    ? navigator.hardwareConcurrency
    : numberFlag("jobs", String(flags.jobs));
  if (!Number.isInteger(jobs) || jobs < 1) {
    throw new UsageError(`--jobs ${jobs}: must be an integer >= 1`);
  }
  const every = flags["status-every"] === undefined
    ? 30
    : numberFlag("status-every", String(flags["status-every"]));
  // Timers take at most 2^31 - 1 ms; a longer delay would fire at once.
  if (!(every >= 0.1 && every <= MAX_SECONDS)) {
    throw new UsageError(`--status-every ${every}: must be between 0.1 and ${MAX_SECONDS} seconds`);
  }
  const grace = flags.grace === undefined ? 5 : numberFlag("grace", String(flags.grace));
  if (!(grace >= 0 && grace <= MAX_SECONDS)) {
    throw new UsageError(`--grace ${grace}: must be between 0 and ${MAX_SECONDS} seconds`);
  }

  const controller = new AbortController();
  const onSignal = () => {
    if (controller.signal.aborted) return;
    console.error("\ninterrupted: letting the running trainers save a checkpoint, then stopping");
    controller.abort();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  console.log(
    `sweep ${name}: ${manifest.runs.length} runs in ${sweepDir}/, ${jobs} at once`,
  );
  const outcome = await runSweep({
    sweepDir,
    manifest,
    jobs,
    signal: controller.signal,
    statusEverySeconds: every,
    graceSeconds: grace,
    onStatus: (lines) => console.log(`--- ${new Date().toISOString()}\n${lines.join("\n")}`),
  });
  Deno.removeSignalListener("SIGINT", onSignal);
  Deno.removeSignalListener("SIGTERM", onSignal);
  const done = outcome.manifest.runs.filter((r) => r.status === "done").length;
  console.log(
    `sweep ${name}: ${done}/${manifest.runs.length} done (${outcome.skipped.length} finished before,` +
      ` ${outcome.started.length} started now, ${outcome.failed.length} failed)`,
  );
  if (outcome.failed.length) {
    console.error(`failed: ${outcome.failed.map((id) => `${sweepDir}/logs/${id}.log`).join(", ")}`);
    Deno.exit(1);
  }
  if (outcome.interrupted) {
    console.log("stopped; rerun the same command to continue");
    Deno.exit(130);
  }
  if (done === manifest.runs.length) console.log(`next: deno task report ${sweepDir}`);
}

if (import.meta.main) await runMain(main, "deno task sweep");
