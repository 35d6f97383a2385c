/**
 * Seed sweeps and grids of training runs: the grid (`--grid mode=moe,moge
 * --grid seed=0..4`), one `deno task train` run directory per point under
 * `runs/<name>/<run-id>/`, a manifest `runs/<name>/sweep.json`, and a runner
 * that keeps `jobs` training processes busy, skips finished runs and resumes
 * interrupted ones, so one sweep can span several sittings.
 *
 * @module
 */

import { writeJsonAtomic } from "../atomic.ts";

/** One gridded train flag and its values, e.g. `{ flag: "seed", values: ["0", "1", "2"] }`. */
export interface GridAxis {
  /** Train flag without the dashes, e.g. "mode". */
  flag: string;
  /** Its values, as passed on the command line. */
  values: string[];
}

/** Flags that the sweep sets itself and that may not be fixed or gridded. */
export const RESERVED_TRAIN_FLAGS: readonly string[] = [
  "out",
  "resume",
  "overwrite",
  "help",
  "quiet",
];

const FLAG_NAME = /^[a-z][a-z0-9-]*$/;

/**
 * Parses one `--grid` value: `flag=v1,v2,...` or an inclusive integer range
 * `flag=a..b` (e.g. `seed=0..4` is 0, 1, 2, 3, 4).
 *
 * @example
 * ```ts
 * import { parseGridAxis } from "./sweep.ts";
 * parseGridAxis("seed=0..2"); // { flag: "seed", values: ["0", "1", "2"] }
 * parseGridAxis("mode=moe,moge"); // { flag: "mode", values: ["moe", "moge"] }
 * ```
 */
export function parseGridAxis(spec: string): GridAxis {
  const eq = spec.indexOf("=");
  if (eq <= 0) {
    throw new RangeError(
      `--grid ${JSON.stringify(spec)}: expected FLAG=V1,V2,... or FLAG=A..B (e.g. seed=0..4)`,
    );
  }
  const flag = spec.slice(0, eq).replace(/^--/, "");
  const rest = spec.slice(eq + 1);
  if (!FLAG_NAME.test(flag)) {
    throw new RangeError(`--grid ${JSON.stringify(spec)}: "${flag}" is not a train flag name`);
  }
  if (RESERVED_TRAIN_FLAGS.includes(flag)) {
    throw new RangeError(`--grid ${spec}: --${flag} is set by the sweep itself`);
  }
  const range = /^(-?\d+)\.\.(-?\d+)$/.exec(rest);
  let values: string[];
  if (range) {
    const a = Number(range[1]), b = Number(range[2]);
    if (b < a) throw new RangeError(`--grid ${spec}: the range ${a}..${b} is empty (need a <= b)`);
    if (b - a >= 10000) throw new RangeError(`--grid ${spec}: more than 10000 values`);
    values = Array.from({ length: b - a + 1 }, (_, i) => String(a + i));
  } else {
    values = rest.split(",");
    if (values.some((v) => v.trim() === "")) {
      throw new RangeError(`--grid ${JSON.stringify(spec)}: empty value (write FLAG=V1,V2,...)`);
    }
  }
  if (new Set(values).size !== values.length) {
    throw new RangeError(`--grid ${spec}: a value is repeated`);
  }
  return { flag, values };
}

/** One point of the grid. */
export interface SweepPoint {
  /** Directory name under the sweep, e.g. "mode-moe_seed-0". */
  id: string;
  /** The gridded flags of this point. */
  flags: Record<string, string>;
  /** Train arguments: the fixed ones, then the gridded ones (no --out). */
  args: string[];
}

function safe(s: string): string {
  return s.replace(/[^A-Za-z0-9.+-]/g, "-");
}

/**
 * The run id of a grid point: `flag-value` pairs joined by `_`, in grid
 * order, characters outside `[A-Za-z0-9.+-]` replaced by `-`.
 *
 * @example
 * ```ts
 * import { runIdOf } from "./sweep.ts";
 * runIdOf({ mode: "moe", seed: "0" }); // "mode-moe_seed-0"
 * ```
 */
export function runIdOf(flags: Record<string, string>): string {
  const parts = Object.entries(flags).map(([k, v]) => `${safe(k)}-${safe(v)}`);
  return parts.length ? parts.join("_") : "run";
}

/**
 * Every point of the grid (the first axis varies slowest), with its run id
 * and train arguments `[...fixed, --flag value, ...]`.
 *
 * @example
 * ```ts
 * import { expandGrid } from "./sweep.ts";
 * const pts = expandGrid([{ flag: "mode", values: ["moe", "moge"] }, { flag: "seed", values: ["0", "1"] }], ["--preset", "tiny"]);
 * pts.map((p) => p.id); // ["mode-moe_seed-0", "mode-moe_seed-1", "mode-moge_seed-0", "mode-moge_seed-1"]
 * pts[0].args; // ["--preset", "tiny", "--mode", "moe", "--seed", "0"]
 * ```
 */
export function expandGrid(grid: readonly GridAxis[], fixed: readonly string[]): SweepPoint[] {
  const seen = new Set<string>();
  for (const a of grid) {
    if (seen.has(a.flag)) throw new RangeError(`--grid ${a.flag} is given twice`);
    seen.add(a.flag);
    const clash = fixed.some((f) => f === `--${a.flag}` || f.startsWith(`--${a.flag}=`));
    if (clash) throw new RangeError(`--${a.flag} is both gridded and fixed: give it once`);
  }
  let points: Record<string, string>[] = [{}];
  for (const a of grid) {
    points = points.flatMap((p) => a.values.map((v) => ({ ...p, [a.flag]: v })));
  }
  const out = points.map((flags) => ({
    id: runIdOf(flags),
    flags,
    args: [...fixed, ...Object.entries(flags).flatMap(([k, v]) => [`--${k}`, v])],
  }));
  const ids = new Set<string>();
  for (const p of out) {
    if (ids.has(p.id)) {
      throw new RangeError(`two grid points map to the run id ${p.id}: use plainer values`);
    }
    ids.add(p.id);
  }
  return out;
}

/**
 * Splits a sweep command line into the sweep's own flags (those in `own`,
 * boolean ones listed in `booleans`) and the train flags passed through.
 * A pass-through flag takes the next argument as its value unless that
 * starts with `--` (so `--lr -1e-3` and `--quiet` both work).
 *
 * @example
 * ```ts
 * import { splitArgs } from "./sweep.ts";
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

/** Status of a run in the manifest. */
export type RunStatus = "queued" | "running" | "done" | "failed" | "interrupted";

/** One run in `sweep.json`. */
export interface ManifestRun {
  /** Directory name under the sweep. */
  id: string;
  /** The gridded flags. */
  flags: Record<string, string>;
  /** Train arguments (without --out, --resume, --overwrite). */
  args: string[];
  /** Last known status. */
  status: RunStatus;
  /** Exit code of the last attempt, if any. */
  exitCode?: number;
  /** Attempts (processes started) so far, over all sittings. */
  attempts: number;
}

/** `runs/<name>/sweep.json`. */
export interface SweepManifest {
  /** Format version. */
  version: 1;
  /** Sweep name. */
  name: string;
  /** The grid axes. */
  grid: GridAxis[];
  /** Train flags shared by all runs. */
  fixed: string[];
  /** One entry per grid point. */
  runs: ManifestRun[];
  /** ISO time the sweep was first started. */
  created: string;
  /** ISO time of the last manifest write. */
  updated: string;
}

/**
 * Reads `sweepDir/sweep.json`, or null when it does not exist.
 *
 * @example
 * ```ts ignore
 * import { readManifest } from "./sweep.ts";
 * const m = await readManifest("runs/e64");
 * ```
 */
export async function readManifest(sweepDir: string): Promise<SweepManifest | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(`${sweepDir}/sweep.json`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  const m = JSON.parse(text) as SweepManifest;
  if (m.version !== 1 || !Array.isArray(m.runs) || !Array.isArray(m.grid)) {
    throw new RangeError(`${sweepDir}/sweep.json is not a sweep manifest (version 1)`);
  }
  return m;
}

/**
 * A manifest for a grid: the existing one when its grid and fixed flags are
 * the same, a fresh one when there is none, and an error naming both when
 * they differ (a sweep's name stands for one grid).
 *
 * @example
 * ```ts
 * import { manifestFor } from "./sweep.ts";
 * const m = manifestFor(null, "demo", [{ flag: "seed", values: ["0", "1"] }], ["--preset", "tiny"]);
 * m.runs.length; // 2
 * ```
 */
export function manifestFor(
  existing: SweepManifest | null,
  name: string,
  grid: GridAxis[],
  fixed: string[],
): SweepManifest {
  const points = expandGrid(grid, fixed);
  if (existing) {
    const same = JSON.stringify(existing.grid) === JSON.stringify(grid) &&
      JSON.stringify(existing.fixed) === JSON.stringify(fixed);
    if (!same) {
      const show = (g: GridAxis[], f: string[]) =>
        [...g.map((a) => `--grid ${a.flag}=${a.values.join(",")}`), ...f].join(" ");
      throw new RangeError(
        `sweep "${name}" already exists with another grid or other fixed flags:\n` +
          `  existing: ${show(existing.grid, existing.fixed)}\n` +
          `  given:    ${show(grid, fixed)}\n` +
          `rerun with the existing flags to continue it, or choose another --name`,
      );
    }
    return existing;
  }
  const now = new Date().toISOString();
  return {
    version: 1,
    name,
    grid,
    fixed,
    runs: points.map((p) => ({ ...p, status: "queued", attempts: 0 })),
    created: now,
    updated: now,
  };
}

/** What is on disk for a run. */
export type RunDiskState =
  | "done" // summary.json with completed: true
  | "checkpoint" // a checkpoint to resume from
  | "stale" // a directory with files but no checkpoint
  | "fresh"; // no directory, or an empty one

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function readJson(path: string): Promise<Record<string, unknown> | null> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch {
    return null;
  }
}

/**
 * Classifies a run directory: finished (`summary.json` with `completed:
 * true`), resumable (`checkpoint.bin` in it or in its `checkpoint/`),
 * stale (files but no checkpoint) or fresh (absent or empty).
 *
 * @example
 * ```ts ignore
 * import { runDiskState } from "./sweep.ts";
 * await runDiskState("runs/e64/mode-moe_seed-0"); // "done"
 * ```
 */
export async function runDiskState(dir: string): Promise<RunDiskState> {
  const summary = await readJson(`${dir}/summary.json`);
  if (summary && summary.completed === true) return "done";
  if (await exists(`${dir}/checkpoint.bin`) || await exists(`${dir}/checkpoint/checkpoint.bin`)) {
    return "checkpoint";
  }
  try {
    for await (const _ of Deno.readDir(dir)) return "stale";
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return "fresh";
}

/**
 * The flag a train command needs for a run in `state`: none for a fresh
 * directory, `--resume` from a checkpoint, `--overwrite` for a directory
 * with files but no checkpoint; null for a finished run (nothing to do).
 *
 * @example
 * ```ts
 * import { resumeFlag } from "./sweep.ts";
 * resumeFlag("checkpoint"); // ["--resume"]
 * ```
 */
export function resumeFlag(state: RunDiskState): string[] | null {
  switch (state) {
    case "done":
      return null;
    case "checkpoint":
      return ["--resume"];
    case "stale":
      return ["--overwrite"];
    case "fresh":
      return [];
  }
}

/** How far a run is, from its config.json and metrics.jsonl. */
export interface RunProgress {
  /** "epoch" for the classifier and the ViT, "step" for the LM (`steps` in its config). */
  unit: "epoch" | "step";
  /** Epochs (or evaluation steps) recorded in metrics.jsonl. */
  done: number;
  /** Epochs (or steps) of the whole run; null when config.json is missing. */
  total: number | null;
  /** Seconds left, from the mean time per unit so far; null before the first line. */
  etaSeconds: number | null;
}

/**
 * Reads a run's progress: the last `epoch` (or `step`) in metrics.jsonl
 * against `epochs` (or `steps`) in config.json, and an ETA from the
 * `seconds` recorded per line.
 *
 * @example
 * ```ts ignore
 * import { readRunProgress } from "./sweep.ts";
 * const p = await readRunProgress("runs/e64/mode-moe_seed-0"); // { unit: "epoch", done: 3, total: 20, etaSeconds: 850 }
 * ```
 */
export async function readRunProgress(dir: string): Promise<RunProgress> {
  const cfg = await readJson(`${dir}/config.json`);
  const unit: "epoch" | "step" = cfg && typeof cfg.epochs !== "number" &&
      typeof cfg.steps === "number"
    ? "step"
    : "epoch";
  const total = cfg ? Number(unit === "epoch" ? cfg.epochs : cfg.steps) : null;
  let lines: Record<string, unknown>[] = [];
  try {
    lines = (await Deno.readTextFile(`${dir}/metrics.jsonl`)).split("\n").filter((l) => l.trim())
      .flatMap((l) => {
        try {
          return [JSON.parse(l)];
        } catch {
          return []; // a line being written
        }
      });
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const last = lines.at(-1);
  const done = last ? Number(last[unit]) || 0 : 0;
  const seconds = lines.reduce((s, l) => s + (Number(l.seconds) || 0), 0);
  const etaSeconds = done > 0 && total !== null && Number.isFinite(total)
    ? seconds / done * Math.max(0, total - done)
    : null;
  return { unit, done, total: Number.isFinite(total) ? total : null, etaSeconds };
}

/** Formats seconds as `1h02m`, `3m05s` or `12s`. */
function duration(seconds: number): string {
  const s = Math.round(seconds);
  if (s >= 3600) {
    return `${Math.floor(s / 3600)}h${String(Math.floor(s % 3600 / 60)).padStart(2, "0")}m`;
  }
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${s}s`;
}

/**
 * One status line per run: `done`, `running 3/20 epochs ETA 14m10s`,
 * `queued` (with `(resume)` when a checkpoint waits), `failed (exit 1, see
 * logs/<id>.log)` or `interrupted`.
 *
 * @example
 * ```ts
 * import { statusLine } from "./sweep.ts";
 * statusLine({ id: "seed-0", flags: {}, args: [], status: "running", attempts: 1 },
 *   { unit: "epoch", done: 3, total: 20, etaSeconds: 850 }, 10);
 * // "seed-0      running  3/20 epochs  ETA 14m10s"
 * ```
 */
export function statusLine(run: ManifestRun, progress: RunProgress | null, width = 0): string {
  const id = run.id.padEnd(width);
  const p = progress && progress.total !== null
    ? `${progress.done}/${progress.total} ${progress.unit}s`
    : "";
  switch (run.status) {
    case "done":
      return `${id}  done`;
    case "running":
      return `${id}  running  ${p || "starting"}${
        progress?.etaSeconds != null ? `  ETA ${duration(progress.etaSeconds)}` : ""
      }`;
    case "failed":
      return `${id}  failed   exit ${run.exitCode ?? "?"}${
        p ? `, at ${p}` : ""
      } (logs/${run.id}.log)`;
    case "interrupted":
      return `${id}  interrupted${p ? ` at ${p}` : ""}`;
    default:
      return `${id}  queued${progress && progress.done > 0 ? `  (resumes at ${p})` : ""}`;
  }
}

/**
 * The train command of a task in `deno.json` (e.g. `deno run --allow-read
 * ... src/cli/train.ts`) as an argv, with `deno` replaced by this Deno's
 * executable, and the directory it runs in.
 *
 * @example
 * ```ts ignore
 * import { taskCommand } from "./sweep.ts";
 * const { argv, cwd } = await taskCommand("train");
 * ```
 */
export async function taskCommand(task: string): Promise<{ argv: string[]; cwd: string }> {
  const configUrl = new URL("../../deno.json", import.meta.url);
  const cwd = new URL(".", configUrl).pathname;
  const cfg = JSON.parse(await Deno.readTextFile(configUrl));
  const cmd = cfg?.tasks?.[task];
  const line = typeof cmd === "string" ? cmd : cmd?.command;
  if (typeof line !== "string" || /[|&;<>"'`$]/.test(line) || !line.startsWith("deno ")) {
    // Not a plain deno command line: let `deno task` run it.
    return { argv: [Deno.execPath(), "task", task], cwd };
  }
  const argv = line.trim().split(/\s+/);
  argv[0] = Deno.execPath();
  return { argv, cwd };
}

/** Options of {@linkcode runSweep}. */
export interface RunSweepOptions {
  /** The sweep directory, `runs/<name>`. */
  sweepDir: string;
  /** The manifest (from {@linkcode manifestFor}). */
  manifest: SweepManifest;
  /** Training processes at once (≥ 1). */
  jobs: number;
  /** The train command (default: the `train` task of deno.json). */
  command?: { argv: string[]; cwd: string };
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

async function trainKnowsOverwrite(command: { argv: string[]; cwd: string }): Promise<boolean> {
  const out = await new Deno.Command(command.argv[0], {
    args: [...command.argv.slice(1), "--help"],
    cwd: command.cwd,
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout).includes("--overwrite");
}

/**
 * Runs every unfinished run of a sweep, `jobs` at a time, each as a train
 * process writing `sweepDir/<id>/` and logging to `sweepDir/logs/<id>.log`:
 * finished runs are skipped, runs with a checkpoint get `--resume`, runs
 * whose directory holds files but no checkpoint get `--overwrite` (or, when
 * the train command does not know that flag, their directory is emptied
 * first). The manifest is rewritten atomically after every change.
 *
 * @example
 * ```ts ignore
 * import { manifestFor, readManifest, runSweep } from "./sweep.ts";
 * const grid = [{ flag: "seed", values: ["0", "1"] }];
 * const manifest = manifestFor(await readManifest("runs/demo"), "demo", grid, ["--preset", "tiny"]);
 * await runSweep({ sweepDir: "runs/demo", manifest, jobs: 2 });
 * ```
 */
export async function runSweep(opts: RunSweepOptions): Promise<SweepOutcome> {
  const { sweepDir, manifest } = opts;
  if (!Number.isInteger(opts.jobs) || opts.jobs < 1) {
    throw new RangeError(`--jobs ${opts.jobs}: must be an integer >= 1`);
  }
  const absDir = sweepDir.startsWith("/") ? sweepDir : `${Deno.cwd()}/${sweepDir}`;
  await Deno.mkdir(`${absDir}/logs`, { recursive: true });
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
    const w = Math.max(...manifest.runs.map((r) => r.id.length));
    opts.onStatus(manifest.runs.map((r) => statusLine(r, progress.get(r.id) ?? null, w)));
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

/**
 * The train commands of the unfinished runs of a sweep, one per line, for
 * GNU parallel or a Slurm job array: `deno task train ARGS --out DIR --quiet`
 * plus `--resume` or `--overwrite` as the run's directory requires.
 *
 * @example
 * ```ts ignore
 * import { manifestFor, printCommands } from "./sweep.ts";
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
 * import { shellQuote } from "./sweep.ts";
 * shellQuote("a b"); // "'a b'"
 * ```
 */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./=:,+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
