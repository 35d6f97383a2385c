/**
 * The kill -9 experiment: starts `deno task train --preset tiny --out DIR`
 * through its command line only, kills it with SIGKILL at a random moment (or,
 * in every other trial, the moment a checkpoint write has begun: a temporary
 * checkpoint file exists), then runs the same command with `--resume` and
 * checks what came out:
 *
 * - resumed: the resumed run exited 0 and wrote summary.json;
 * - identical: its summary.json equals an uninterrupted run's (timings aside);
 * - nothing to resume: the kill came before the first checkpoint, and the
 *   resume refused (exit 2) or started over;
 * - duplicated metrics lines: metrics.jsonl lines whose epoch (or step)
 *   repeats an earlier line's (want 0).
 *
 * Usage:
 *   deno run -A bench/kill_resume.ts [--trials 10] [--seed 1] [--keep] [-- extra train flags]
 * e.g. `deno run -A bench/kill_resume.ts --trials 10 -- --model vit --preset vit-smoke`.
 * Prints one line per trial and a summary line; exits 1 if a resume failed or a
 * metrics line was duplicated.
 *
 * @module
 */

import { parseFlags } from "../src/cli/args.ts";
import { Rng } from "../src/rng.ts";

const root = new URL("..", import.meta.url).pathname;
const dashdash = Deno.args.indexOf("--");
const own = dashdash < 0 ? Deno.args : Deno.args.slice(0, dashdash);
const extra = dashdash < 0 ? ["--preset", "tiny"] : Deno.args.slice(dashdash + 1);
const flags = parseFlags(own, {
  trials: { type: "string" },
  seed: { type: "string" },
  keep: { type: "boolean" },
});
const trials = Number(flags.trials ?? 10);
const rng = new Rng(Number(flags.seed ?? 1));
if (!Number.isInteger(trials) || trials < 1) {
  throw new RangeError(`--trials ${trials}: integer >= 1`);
}

/** Runs `deno task train ...args` (cwd: the repository); returns its child process. */
function train(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["task", "train", ...extra, "--quiet", ...args],
    cwd: root,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** The ids of `pid`'s descendants (deno task starts the training process as a child). */
async function descendants(pid: number): Promise<number[]> {
  const parentOf = new Map<number, number>();
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = await Deno.readTextFile(`/proc/${e.name}/stat`);
      // pid (comm) state ppid ...: comm may hold spaces, so split after the last ")".
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      parentOf.set(Number(e.name), ppid);
    } catch { /* it exited */ }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [c, pp] of parentOf) {
      if (pp === p) {
        out.push(c);
        walk(c);
      }
    }
  };
  walk(pid);
  return out;
}

/** SIGKILL to the task process and every process it started (by id). */
async function killTree(child: Deno.ChildProcess): Promise<void> {
  const pids = [child.pid, ...await descendants(child.pid)];
  for (const pid of pids.reverse()) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* already gone */ }
  }
}

/** True while a checkpoint write is under way (a temporary checkpoint file exists). */
async function checkpointWriteInProgress(dir: string): Promise<boolean> {
  try {
    for await (const e of Deno.readDir(`${dir}/checkpoint`)) {
      if (e.name.startsWith(".") && e.name.includes("checkpoint.bin")) return true;
      if (e.name.includes("checkpoint.bin.tmp") || e.name.endsWith(".tmp")) return true;
    }
  } catch { /* no checkpoint directory yet */ }
  return false;
}

/** summary.json without its timings (they differ between runs). */
async function summaryOf(dir: string): Promise<string | null> {
  try {
    const s = JSON.parse(await Deno.readTextFile(`${dir}/summary.json`));
    const strip = (o: unknown): unknown => {
      if (Array.isArray(o)) return o.map(strip);
      if (o && typeof o === "object") {
        return Object.fromEntries(
          Object.entries(o).filter(([k]) => !/second|time|date|backend|path|dir|out/i.test(k))
            .map(([k, v]) => [k, strip(v)]),
        );
      }
      return o;
    };
    return JSON.stringify(strip(s));
  } catch {
    return null;
  }
}

/** metrics.jsonl lines that repeat an earlier line's epoch (or step). */
async function duplicatedLines(dir: string): Promise<number> {
  let text = "";
  try {
    text = await Deno.readTextFile(`${dir}/metrics.jsonl`);
  } catch {
    return 0;
  }
  const seen = new Set<string>();
  let dup = 0;
  for (const line of text.split("\n").filter((l) => l.trim())) {
    let key: string;
    try {
      const m = JSON.parse(line);
      key = String(m.epoch ?? m.step ?? line);
    } catch {
      key = line;
    }
    if (seen.has(key)) dup++;
    seen.add(key);
  }
  return dup;
}

const base = await Deno.makeTempDir({ prefix: "moge-kill-" });
console.log(`train flags: ${extra.join(" ")}; run directories under ${base}`);

// An uninterrupted run: its duration sets the kill window, its summary the reference.
const t0 = performance.now();
const refDir = `${base}/reference`;
const ref = await train(["--out", refDir]).output();
const duration = (performance.now() - t0) / 1000;
if (ref.code !== 0) {
  console.error(new TextDecoder().decode(ref.stderr));
  throw new Error(`the uninterrupted run exited ${ref.code}`);
}
const refSummary = await summaryOf(refDir);
console.log(`uninterrupted run: ${duration.toFixed(1)} s`);

let resumed = 0, identical = 0, nothingToResume = 0, failed = 0, duplicated = 0;
for (let i = 0; i < trials; i++) {
  const dir = `${base}/trial${i}`;
  const duringWrite = i % 2 === 1;
  const child = train(["--out", dir]);
  const started = performance.now();
  // Uniform over the last 3/4 of the run (the first quarter is mostly Deno starting up).
  const deadline = started + (0.25 + 0.75 * rng.next()) * duration * 1000;
  let how = "";
  let exited = false;
  child.status.then(() => exited = true);
  while (!exited) {
    // During-write trials wait for the first checkpoint write after the deadline, so
    // that later checkpoints (with an earlier one to fall back on) get hit too.
    const due = performance.now() >= deadline;
    if (due && (!duringWrite || await checkpointWriteInProgress(dir))) break;
    if (duringWrite && performance.now() - started > duration * 2000) break;
    await new Promise((r) => setTimeout(r, duringWrite ? 1 : 20));
  }
  if (exited) {
    how = "finished before the kill";
  } else {
    const writing = await checkpointWriteInProgress(dir);
    await killTree(child);
    how = `killed after ${((performance.now() - started) / 1000).toFixed(2)} s` +
      (writing ? " during a checkpoint write" : "");
  }
  await child.status;
  await child.stdout.cancel().catch(() => {});
  await child.stderr.cancel().catch(() => {});
  // A complete checkpoint file (not just the directory with a half-written temporary file).
  const hadCheckpoint = await Deno.stat(`${dir}/checkpoint/checkpoint.bin`).then(
    () => true,
    () => false,
  );
  const res = await train(["--out", dir, "--resume"]).output();
  const dup = await duplicatedLines(dir);
  duplicated += dup;
  const summary = await summaryOf(dir);
  let outcome: string;
  if (!hadCheckpoint) {
    nothingToResume++;
    outcome = `nothing to resume (killed before the first checkpoint): --resume ${
      res.code === 0 ? "started over and exited 0" : `exited ${res.code}`
    }`;
  } else if (res.code === 0 && summary !== null) {
    resumed++;
    const same = summary === refSummary;
    if (same) identical++;
    outcome = `resumed (summary ${same ? "identical to" : "differs from"} the uninterrupted run's)`;
  } else {
    failed++;
    const err = new TextDecoder().decode(res.stderr).trim().split("\n")[0];
    outcome = `RESUME FAILED: exit ${res.code}: ${err}`;
  }
  console.log(`trial ${i + 1}: ${how}; ${outcome}; duplicated metrics lines: ${dup}`);
}
console.log(
  `${trials} kills: ${resumed} resumed and completed (${identical} identical to the uninterrupted ` +
    `run), ${nothingToResume} with nothing to resume, ${failed} failed; duplicated metrics lines: ${duplicated}`,
);
if (!flags.keep) await Deno.remove(base, { recursive: true });
if (failed > 0 || duplicated > 0) Deno.exit(1);
