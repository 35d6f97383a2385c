import { expandGrid, parseGridAxis } from "../src/sweep/grid.ts";
import { manifestFor, readManifest } from "../src/sweep/manifest.ts";
import { printCommands } from "../src/sweep/print_commands.ts";
import { readRunProgress, statusLine } from "../src/sweep/run_progress.ts";
import { resumeFlag, runDiskState } from "../src/sweep/run_state.ts";
import { splitArgs } from "../src/sweep/split_args.ts";
import { runSweep } from "../src/sweep/runner.ts";
import { acquireSweepLock, LOCK_FILE } from "../src/sweep/lock.ts";
import { deepEqual, equal, ok, rejects, throws } from "./asserts.ts";

Deno.test("sweep: grid axes, lists and inclusive ranges", () => {
  deepEqual(parseGridAxis("seed=0..4"), { flag: "seed", values: ["0", "1", "2", "3", "4"] });
  deepEqual(parseGridAxis("mode=moe,moge"), { flag: "mode", values: ["moe", "moge"] });
  deepEqual(parseGridAxis("--lambda=0.03,0.1"), { flag: "lambda", values: ["0.03", "0.1"] });
  throws(() => parseGridAxis("seed"), /expected FLAG=V1,V2/);
  throws(() => parseGridAxis("seed=3..1"), /range 3..1 is empty/);
  throws(() => parseGridAxis("mode=moe,,moge"), /empty value/);
  throws(() => parseGridAxis("seed=1,1"), /repeated/);
  throws(() => parseGridAxis("out=a,b"), /--out is set by the sweep itself/);
});

Deno.test("sweep: the grid expands first axis slowest, with ids and train args", () => {
  const pts = expandGrid(
    [{ flag: "mode", values: ["moe", "moge"] }, { flag: "seed", values: ["0", "1"] }],
    ["--experts", "64"],
  );
  deepEqual(pts.map((p) => p.id), [
    "mode-moe_seed-0",
    "mode-moe_seed-1",
    "mode-moge_seed-0",
    "mode-moge_seed-1",
  ]);
  deepEqual(pts[2].args, ["--experts", "64", "--mode", "moge", "--seed", "0"]);
  deepEqual(pts[2].flags, { mode: "moge", seed: "0" });
  deepEqual(expandGrid([], ["--epochs", "1"]).map((p) => p.id), ["run"]);
  throws(
    () => expandGrid([{ flag: "seed", values: ["0"] }], ["--seed", "1"]),
    /--seed is both gridded and fixed/,
  );
  throws(
    () => expandGrid([{ flag: "a", values: ["x y", "x/y"] }], []),
    /two grid points map to the run id a-x-y/,
  );
});

Deno.test("sweep: own flags and train flags are split, --out and --resume refused", () => {
  const s = splitArgs(
    ["--name", "e", "--grid", "seed=0..1", "--model", "vit", "--lr", "1e-3", "--print-commands"],
    ["name", "grid"],
    ["print-commands"],
  );
  deepEqual(s.own, ["--name", "e", "--grid", "seed=0..1", "--print-commands"]);
  deepEqual(s.train, ["--model", "vit", "--lr", "1e-3"]);
  deepEqual(splitArgs(["--quiet-ish", "--epochs=3"], [], []).train, ["--quiet-ish", "--epochs=3"]);
  throws(() => splitArgs(["--out", "x"], ["name"], []), /--out is set by the sweep itself/);
  throws(() => splitArgs(["--resume"], ["name"], []), /--resume is set by the sweep itself/);
  throws(() => splitArgs(["stray"], ["name"], []), /unexpected argument "stray"/);
});

Deno.test("sweep: a second grid under the same name is refused, the same one continues", () => {
  const grid = [{ flag: "seed", values: ["0", "1"] }];
  const m = manifestFor(null, "s", grid, ["--preset", "tiny"]);
  equal(m.runs.length, 2);
  equal(m.runs[0].status, "queued");
  equal(manifestFor(m, "s", grid, ["--preset", "tiny"]), m);
  throws(
    () => manifestFor(m, "s", [{ flag: "seed", values: ["0", "1", "2"] }], ["--preset", "tiny"]),
    /sweep "s" already exists with another grid[\s\S]*existing: --grid seed=0,1 --preset tiny/,
  );
  throws(() => manifestFor(m, "s", grid, ["--preset", "paper"]), /already exists/);
});

Deno.test("sweep: one sweep per directory: a live holder's lock is refused, a dead one's taken over", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const release = await acquireSweepLock(dir);
    const held = JSON.parse(await Deno.readTextFile(`${dir}/${LOCK_FILE}`));
    equal(held.pid, Deno.pid);
    await rejects(() => acquireSweepLock(dir), {
      name: "RangeError",
      message: new RegExp(`another sweep runs this directory \\(process ${Deno.pid},`),
    });
    await release();
    await rejects(() => Deno.stat(`${dir}/${LOCK_FILE}`), Deno.errors.NotFound);
    // A lock left by a process that has exited (kill -9, a restart) is replaced.
    const gone = new Deno.Command(Deno.execPath(), { args: ["--version"], stdout: "null" }).spawn();
    await gone.status;
    await Deno.writeTextFile(`${dir}/${LOCK_FILE}`, JSON.stringify({ pid: gone.pid }));
    const again = await acquireSweepLock(dir);
    equal(JSON.parse(await Deno.readTextFile(`${dir}/${LOCK_FILE}`)).pid, Deno.pid);
    await again();
    // An unreadable lock is not guessed at: refused, naming the file to delete.
    await Deno.writeTextFile(`${dir}/${LOCK_FILE}`, "");
    await rejects(() => acquireSweepLock(dir), {
      name: "RangeError",
      message: /the lock file is unreadable[\s\S]*delete \S+sweep\.lock if no sweep is running/,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sweep: bad --runs, timer flags and a damaged sweep.json are usage errors naming them", async () => {
  const root = await Deno.makeTempDir();
  try {
    const sweep = (...args: string[]) => sweepCli("--name", "s", "--grid", "seed=0..1", ...args);
    const empty = await sweep("--runs", "");
    equal(empty.code, 2, empty.err);
    ok(empty.err.includes('--runs "" is empty'), empty.err);
    for (const [flag, value] of [["--status-every", "1e-9"], ["--grace", "1e308"]]) {
      const o = await sweep("--runs", root, flag, value);
      equal(o.code, 2, o.err);
      ok(o.err.includes(`${flag} ${value === "1e308" ? "1e+308" : value}: must be between`), o.err);
    }
    await Deno.mkdir(`${root}/s`);
    await Deno.writeTextFile(`${root}/s/sweep.json`, '{"version": 1, "runs": [');
    const damaged = await sweep("--runs", root, "--status");
    equal(damaged.code, 2, damaged.err);
    ok(damaged.err.includes(`${root}/s/sweep.json is not valid JSON`), damaged.err);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("sweep: run directory states and the flag each needs", async () => {
  const dir = await Deno.makeTempDir();
  try {
    equal(await runDiskState(`${dir}/absent`), "fresh");
    await Deno.mkdir(`${dir}/empty`);
    equal(await runDiskState(`${dir}/empty`), "fresh");
    await Deno.mkdir(`${dir}/stale`);
    await Deno.writeTextFile(`${dir}/stale/config.json`, "{}");
    equal(await runDiskState(`${dir}/stale`), "stale");
    await Deno.mkdir(`${dir}/ck/checkpoint`, { recursive: true });
    await Deno.writeTextFile(`${dir}/ck/checkpoint/checkpoint.bin`, "x");
    equal(await runDiskState(`${dir}/ck`), "checkpoint");
    // The sweep follows the trainer's rule: a stray checkpoint.bin outside checkpoint/ is not a
    // run (train --resume would refuse it), so the run starts fresh there.
    await Deno.mkdir(`${dir}/ck2`);
    await Deno.writeTextFile(`${dir}/ck2/checkpoint.bin`, "x");
    equal(await runDiskState(`${dir}/ck2`), "fresh");
    // summary.json of a run stopped early (completed: false) still resumes.
    await Deno.writeTextFile(`${dir}/ck/summary.json`, JSON.stringify({ completed: false }));
    equal(await runDiskState(`${dir}/ck`), "checkpoint");
    await Deno.writeTextFile(`${dir}/ck/summary.json`, JSON.stringify({ completed: true }));
    equal(await runDiskState(`${dir}/ck`), "done");
    deepEqual(resumeFlag("fresh"), []);
    deepEqual(resumeFlag("checkpoint"), ["--resume"]);
    deepEqual(resumeFlag("stale"), ["--overwrite"]);
    equal(resumeFlag("done"), null);

    // Progress from metrics.jsonl: 2 of 5 epochs, 10 s + 12 s so far: ETA 11 s × 3 = 33 s.
    await Deno.writeTextFile(`${dir}/stale/config.json`, JSON.stringify({ epochs: 5 }));
    await Deno.writeTextFile(
      `${dir}/stale/metrics.jsonl`,
      `{"epoch":1,"seconds":10}\n{"epoch":2,"seconds":12}\n{"epo`,
    );
    const p = await readRunProgress(`${dir}/stale`);
    deepEqual(p, { unit: "epoch", done: 2, total: 5, etaSeconds: 33 });
    const run = { id: "x", flags: {}, args: [], status: "running" as const, attempts: 1 };
    equal(statusLine(run, p), "x  running  2/5 epochs  ETA 33s");
    equal(statusLine({ ...run, status: "queued" }, p), "x  queued  (resumes at 2/5 epochs)");
    // The LM counts steps.
    await Deno.writeTextFile(`${dir}/ck2/config.json`, JSON.stringify({ steps: 300 }));
    await Deno.writeTextFile(`${dir}/ck2/metrics.jsonl`, `{"step":100,"seconds":50}\n`);
    deepEqual(await readRunProgress(`${dir}/ck2`), {
      unit: "step",
      done: 100,
      total: 300,
      etaSeconds: 100,
    });

    const m = manifestFor(null, "s", [{ flag: "seed", values: ["0", "1"] }], ["--preset", "tiny"]);
    await Deno.mkdir(`${dir}/s/seed-1/checkpoint`, { recursive: true });
    await Deno.writeTextFile(`${dir}/s/seed-1/checkpoint/checkpoint.bin`, "x");
    deepEqual(await printCommands(`${dir}/s`, m), [
      `deno task train --preset tiny --seed 0 --out ${dir}/s/seed-0 --quiet`,
      `deno task train --preset tiny --seed 1 --out ${dir}/s/seed-1 --quiet --resume`,
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const SWEEP_CLI = new URL("../src/cli/sweep.ts", import.meta.url).pathname;

/** Runs the sweep CLI to its end: exit status and stderr. */
async function sweepCli(...args: string[]): Promise<{ code: number; err: string }> {
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SWEEP_CLI, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: o.code, err: new TextDecoder().decode(o.stderr) };
}

function sweepCommand(root: string, extra: string[] = []): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      SWEEP_CLI,
      "--runs",
      root,
      "--name",
      "s",
      "--grid",
      "mode=moe,moge",
      "--grid",
      "seed=1..2",
      "--preset",
      "tiny",
      "--epochs",
      "4",
      "--jobs",
      "2",
      "--grace",
      "0",
      "--status-every",
      "1",
      ...extra,
    ],
    stdout: "piped",
    stderr: "piped",
  });
}

const IDS = ["mode-moe_seed-1", "mode-moe_seed-2", "mode-moge_seed-1", "mode-moge_seed-2"];

function commandsIn(log: string): string[] {
  return log.split("\n").filter((l) => l.startsWith("$ deno task train"));
}

Deno.test({
  name:
    "sweep: a 2 x 2 tiny sweep with 2 jobs, interrupted and rerun, finishes without redoing runs",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await Deno.makeTempDir();
    const dir = `${root}/s`;
    try {
      // First sitting: interrupt (SIGINT, as Ctrl-C) once the first run is done and a run of
      // the second wave has written an epoch (so it has a checkpoint to resume from).
      const first = sweepCommand(root).spawn();
      const deadline = Date.now() + 90_000;
      let killed = false;
      while (Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
        const states = await Promise.all(IDS.map((id) => runDiskState(`${dir}/${id}`)));
        const done = states.filter((s) => s === "done").length;
        const progress = await Promise.all(IDS.map((id) => readRunProgress(`${dir}/${id}`)));
        // IDS[2..3] (MoGE) run in the second wave of 2 jobs.
        const midway = [2, 3].some((i) => states[i] !== "done" && progress[i].done >= 1);
        if ((done >= 1 && midway) || done === IDS.length) {
          first.kill("SIGINT");
          killed = true;
          break;
        }
      }
      ok(killed, "the first sitting made progress within 90 s");
      const out1 = await first.output();
      const text1 = new TextDecoder().decode(out1.stdout);
      const afterFirst = await Promise.all(IDS.map((id) => runDiskState(`${dir}/${id}`)));
      const doneFirst = IDS.filter((_, i) => afterFirst[i] === "done");
      console.log(
        `after the first sitting: ${IDS.map((id, i) => `${id} ${afterFirst[i]}`).join(", ")}`,
      );
      ok(doneFirst.length >= 1, `a run finished in the first sitting:\n${text1}`);
      ok(afterFirst.includes("checkpoint"), "a run was interrupted after its first epoch");
      if (doneFirst.length < IDS.length) equal(out1.code, 130, text1);
      const mtimes = new Map<string, number>();
      for (const id of doneFirst) {
        mtimes.set(id, (await Deno.stat(`${dir}/${id}/summary.json`)).mtime!.getTime());
      }
      const manifest1 = await readManifest(dir);
      deepEqual(manifest1!.runs.map((r) => r.id), IDS);
      for (const id of doneFirst) equal(manifest1!.runs.find((r) => r.id === id)!.status, "done");

      // Second sitting: the same command.
      const out2 = await sweepCommand(root).output();
      const text2 = new TextDecoder().decode(out2.stdout);
      equal(out2.code, 0, `${text2}\n${new TextDecoder().decode(out2.stderr)}`);
      ok(text2.includes(`(${doneFirst.length} finished before,`), text2);
      const manifest2 = await readManifest(dir);
      for (const [i, id] of IDS.entries()) {
        equal(await runDiskState(`${dir}/${id}`), "done", id);
        equal(manifest2!.runs[i].status, "done", id);
        const summary = JSON.parse(await Deno.readTextFile(`${dir}/${id}/summary.json`));
        equal(summary.steps, 40, `${id}: 4 epochs of 10 steps`); // 1000 images / batch 100
        const cmds = commandsIn(await Deno.readTextFile(`${dir}/logs/${id}.log`));
        if (doneFirst.includes(id)) {
          // Finished runs were not started again: one command, and the same summary.json.
          equal(cmds.length, 1, `${id} ran once`);
          equal((await Deno.stat(`${dir}/${id}/summary.json`)).mtime!.getTime(), mtimes.get(id));
        } else if (afterFirst[i] === "checkpoint") {
          ok(cmds.at(-1)!.includes(" --resume"), `${id} resumed: ${cmds.at(-1)}`);
        } else {
          ok(!cmds.at(-1)!.includes(" --resume"), `${id} started fresh: ${cmds.at(-1)}`);
        }
      }
      // An interrupted run's metrics.jsonl has one line per epoch, not repeats.
      for (const id of IDS) {
        const epochs = (await Deno.readTextFile(`${dir}/${id}/metrics.jsonl`)).trim().split("\n")
          .map((l) => JSON.parse(l).epoch);
        deepEqual(epochs, [1, 2, 3, 4], id);
      }

      // A different grid under the same name is refused with exit status 2.
      const other = await sweepCli("--runs", root, "--name", "s", "--grid", "seed=0..9");
      equal(other.code, 2);
      ok(other.err.includes("already exists with another grid"), other.err);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test("sweep: a grid point train would reject is refused before the grid is recorded", async () => {
  const root = await Deno.makeTempDir();
  try {
    const bad = ["--name", "bad", "--grid", "experts=16,-1", "--preset", "tiny", "--jobs", "1"];
    const out = await sweepCli("--runs", root, ...bad);
    equal(out.code, 2, out.err);
    ok(out.err.includes("run experts--1: --experts"), out.err);
    // Nothing recorded: the name is not locked to the bad grid, and nothing ran.
    equal(await readManifest(`${root}/bad`), null);
    // A fixed flag train does not know is refused the same way.
    const typo = await sweepCli(
      "--runs",
      root,
      "--name",
      "t",
      "--grid",
      "seed=0..1",
      "--epoch",
      "3",
    );
    equal(typo.code, 2, typo.err);
    ok(typo.err.includes("run seed-0: "), typo.err);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test({
  name: "sweep: a run whose trainer fails is marked failed, with its exit status and log",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = await Deno.makeTempDir();
    try {
      // A stand-in trainer that fails as the train CLI does on bad input (status 2).
      await Deno.writeTextFile(
        `${root}/fail.ts`,
        'console.error("error: rejected"); Deno.exit(2);',
      );
      const manifest = manifestFor(null, "f", [{ flag: "seed", values: ["0"] }], []);
      const outcome = await runSweep({
        sweepDir: `${root}/f`,
        manifest,
        jobs: 1,
        command: { argv: [Deno.execPath(), "run", `${root}/fail.ts`], cwd: root },
        trainHasOverwrite: true,
      });
      deepEqual(outcome.failed, ["seed-0"]);
      const m = await readManifest(`${root}/f`);
      equal(m!.runs[0].status, "failed");
      equal(m!.runs[0].exitCode, 2);
      ok((await Deno.readTextFile(`${root}/f/logs/seed-0.log`)).includes("error: rejected"));
      await rejects(() => Deno.stat(`${root}/f/sweep.lock`), Deno.errors.NotFound);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
