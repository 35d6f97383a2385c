import { useBackend } from "../src/backend.ts";
import { DEFAULT_CONFIG, PRESETS, type TrainConfig } from "../src/train/classifier_config.ts";
import { train } from "../src/train/classifier_task.ts";
import { loadFixture } from "../src/data/images.ts";
import { checkRunDir, RunDir, RunDirectoryError } from "../src/train/run_dir.ts";
import { deepEqual, equal, ok, rejects } from "./asserts.ts";

const root = new URL("..", import.meta.url).pathname;
const data = await loadFixture("fashion-mnist");

/** 200 images in batches of 100: 2 steps per epoch, seconds on cpu. */
const cfg: TrainConfig = {
  ...DEFAULT_CONFIG,
  ...PRESETS.tiny,
  epochs: 2,
  trainLimit: 200,
  backend: "cpu",
  seed: 4,
};

async function cli(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${root}src/cli/train.ts`, ...args],
    cwd: root,
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** A `rejects` check: a RunDirectoryError whose message matches. */
const runDirError = (pattern: RegExp) => (e: unknown) =>
  e instanceof RunDirectoryError && pattern.test(e.message);

const steps = async (dir: string) =>
  (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l).step
  );

Deno.test("a fresh run into a directory holding a run is refused unless overwrite", async () => {
  await useBackend("cpu");
  const dir = await Deno.makeTempDir({ prefix: "moge-rundir-" });
  try {
    await train({ ...cfg, epochs: 1 }, { outDir: dir, data }); // an empty directory is fine
    await rejects(
      () => train({ ...cfg, epochs: 1 }, { outDir: dir, data }),
      runDirError(/already holds a run/),
    );
    deepEqual(await steps(dir), [2], "the refused run wrote nothing");
    await train({ ...cfg, epochs: 1, seed: 5 }, { outDir: dir, data, overwrite: true });
    deepEqual(await steps(dir), [2], "overwrite starts metrics.jsonl afresh");
    equal(JSON.parse(await Deno.readTextFile(`${dir}/config.json`)).seed, 5);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("resume without a checkpoint is refused (library and checkRunDir)", async () => {
  await useBackend("cpu");
  const dir = await Deno.makeTempDir({ prefix: "moge-rundir-" });
  try {
    await rejects(
      () => train(cfg, { outDir: dir, data, resume: true }),
      runDirError(/has no checkpoint/),
    );
    await rejects(() => checkRunDir(`${dir}/nope`, { resume: true }), runDirError(/no checkpoint/));
    await Deno.writeTextFile(`${dir}/file`, "x");
    await rejects(() => checkRunDir(`${dir}/file`, {}), runDirError(/is a file/));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("on resume, metrics lines past the checkpoint's step are dropped: no epoch twice", async () => {
  await useBackend("cpu");
  const dir = await Deno.makeTempDir({ prefix: "moge-rundir-" });
  try {
    // Epoch 1 ends at step 2: its metrics line and checkpoint are written.
    const first = await train(cfg, { outDir: dir, data, stopAfterSteps: 2 });
    equal(first.steps, 2);
    // A kill -9 after epoch 2's metrics line and before its checkpoint leaves this:
    await Deno.writeTextFile(`${dir}/metrics.jsonl`, '{"epoch":2,"step":4}\n{"ep', {
      append: true,
    });
    const done = await train(cfg, { outDir: dir, data, resume: true });
    ok(done.completed);
    deepEqual(await steps(dir), [2, 4], "each epoch listed once");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("RunDir.trimMetrics keeps lines up to the step and drops a line cut by a crash", async () => {
  const dir = await Deno.makeTempDir({ prefix: "moge-rundir-" });
  try {
    const run = new RunDir(dir);
    equal(await run.trimMetrics(5), 0, "no metrics.jsonl yet");
    for (const step of [2, 4, 6]) await run.appendMetrics({ step });
    await Deno.writeTextFile(`${dir}/metrics.jsonl`, '{"st', { append: true });
    equal(await run.trimMetrics(4), 2); // step 6 and the cut line
    deepEqual(await steps(dir), [2, 4]);
    equal(await run.trimMetrics(4), 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train CLI: reused --out, --resume without checkpoint, conflicting and applied flags", async () => {
  const dir = await Deno.makeTempDir({ prefix: "moge-rundir-cli-" });
  const base = ["--preset", "tiny", "--train-limit", "200", "--backend", "cpu", "--quiet"];
  try {
    const fresh = await cli([...base, "--epochs", "1", "--out", dir]);
    await Deno.mkdir(`${dir}/empty`);
    equal(fresh.code, 0, fresh.stderr);
    for (
      const [args, pattern] of [
        [[...base, "--out", dir], /already holds a run: continue it with --resume/],
        [["--out", `${dir}/none`, "--resume"], /does not exist: there is no run to continue/],
        [["--out", `${dir}/empty`, "--resume"], /has no checkpoint/],
        [
          ["--out", dir, "--resume", "--experts", "32", "--lr", "5"],
          /--experts 32 \(saved: 16\), --lr 5 \(saved: 0.001\) conflict.*only --backend, --epochs/,
        ],
        // A preset on resume stands for its fields: paper's E = 400 conflicts.
        [["--out", dir, "--resume", "--preset", "paper"], /--experts 400 \(saved: 16\).*conflict/],
        [["--out", dir, "--resume", "--overwrite"], /exclude each other/],
      ] as const
    ) {
      const r = await cli([...args]);
      equal(r.code, 2, `${args.join(" ")}: status ${r.code}, ${r.stderr}`);
      ok(pattern.test(r.stderr), `${args.join(" ")}: ${r.stderr}`);
      equal(r.stderr.trim().split("\n").length, 2, `one line and the --help hint: ${r.stderr}`);
    }
    // The first command plus --resume (preset included) continues the run.
    const more = await cli([...base, "--out", dir, "--resume", "--epochs", "2"]);
    equal(more.code, 0, more.stderr);
    ok(more.stdout.includes("resume: applying --epochs 2 (saved: 1)"), more.stdout);
    deepEqual(await steps(dir), [2, 4]);
    equal(JSON.parse(await Deno.readTextFile(`${dir}/config.json`)).epochs, 2);
    const again = await cli([...base, "--epochs", "1", "--out", dir, "--overwrite"]);
    equal(again.code, 0, again.stderr);
    deepEqual(await steps(dir), [2]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
