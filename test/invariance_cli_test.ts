import { equal, ok } from "./asserts.ts";
import { saveCheckpoint } from "../src/train/checkpoint.ts";
import { DEFAULT_CONFIG, PRESETS, type TrainConfig } from "../src/train/classifier_config.ts";

const root = new URL("..", import.meta.url).pathname;

/** A fake classifier run: config.json and a checkpoint with router weights [784, E]. */
async function fakeRun(
  dir: string,
  over: Partial<TrainConfig>,
  opts: { routerShape?: number[]; checkpointConfig?: Partial<TrainConfig> } = {},
): Promise<string> {
  const config = { ...DEFAULT_CONFIG, ...PRESETS.tiny, ...over };
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(config));
  const shape = opts.routerShape ?? [784, config.experts];
  await saveCheckpoint(`${dir}/checkpoint`, {
    tensors: {
      "param/moe.router.w": {
        shape,
        dtype: "float32",
        values: new Float32Array(shape[0] * shape[1]),
      },
    },
    meta: { step: 1, config: { ...config, ...opts.checkpointConfig } },
  });
  return dir;
}

async function invariance(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${root}src/cli/invariance.ts`, ...args],
    cwd: root,
    env: { NO_COLOR: "1" },
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("invariance refuses mismatched, swapped, repeated or inconsistent runs, and bad seeds, with status 2 before loading data", async () => {
  const t = await Deno.makeTempDir({ prefix: "moge-inv-cli-" });
  try {
    const moe16 = await fakeRun(`${t}/moe16`, { mode: "moe", experts: 16 });
    const moge16 = await fakeRun(`${t}/moge16`, { mode: "moge", experts: 16 });
    const moge64 = await fakeRun(`${t}/moge64`, { mode: "moge", experts: 64 });
    const mnist = await fakeRun(`${t}/mnist`, { mode: "moge", experts: 16, dataset: "mnist" });
    const transposed = await fakeRun(`${t}/tr`, { mode: "moge", experts: 16 }, {
      routerShape: [16, 784],
    });
    const disagree = await fakeRun(`${t}/dis`, { mode: "moge", experts: 16 }, {
      checkpointConfig: { experts: 25 },
    });
    await Deno.mkdir(`${t}/vit`);
    await Deno.writeTextFile(
      `${t}/vit/config.json`,
      JSON.stringify({ mode: "moge", experts: 16, embedDim: 64, patchSize: 7 }),
    );
    const cases: [string[], RegExp][] = [
      [
        ["--moe", moe16, "--moge", moge64],
        /^error: the runs differ in E \(16 vs 64: a 4x4 map vs a 8x8 one\)/,
      ],
      [["--moe", moe16, "--moge", mnist], /the runs differ in data set \(fixture vs mnist\)/],
      [
        ["--moe", moge16, "--moge", moe16],
        /^error: --moe .*moge16 is a MoGE run \(config\.json mode "moge"\): pass it as --moge/,
      ],
      [["--moe", moe16, "--moge", moe16], /^error: --moge .*moe16 is a MoE run/],
      [
        ["--moe", moe16, "--moge", `${moe16}/`],
        /^error: --moge .*moe16\/ is a MoE run/,
      ],
      [
        ["--moe", moe16, "--moge", transposed],
        /has router weights "param\/moe\.router\.w" \[16,784\], but config\.json's E = 16 needs \[784,16\]/,
      ],
      [
        ["--moe", moe16, "--moge", disagree],
        /config\.json disagrees with its checkpoint in experts \(16 vs 25\)/,
      ],
      [
        ["--moe", moe16, "--moge", `${t}/vit`],
        /is a vit run: invariance compares two runs of the classifier/,
      ],
      [
        ["--moe", moe16, "--moge", moge16, "--seed", "1.5"],
        /^error: --seed 1\.5: must be an integer in \[0, 2147483\]/,
      ],
      [
        ["--moe", moe16, "--moge", moge16, "--seed", "-1"],
        /^error: --seed -1: must be an integer in \[0, 2147483\]/,
      ],
      [["--moe", `${t}/none`, "--moge", moge16], /^error: --moe .*none: not a run directory/],
    ];
    for (const [args, pattern] of cases) {
      const { code, stderr } = await invariance(args);
      equal(code, 2, `${args.join(" ")}: status ${code}: ${stderr}`);
      ok(pattern.test(stderr), `${args.join(" ")}: ${stderr}`);
      ok(!stderr.includes("    at "), `stack trace: ${stderr}`);
      ok(stderr.trim().split("\n").length <= 2, `one line (and the --help hint): ${stderr}`);
    }
  } finally {
    await Deno.remove(t, { recursive: true });
  }
});

Deno.test("checkRunPair() refuses one run named twice (same real path)", async () => {
  const { checkRunPair } = await import("../src/cli/invariance.ts");
  const run = {
    dir: "a",
    realPath: "/x/a",
    config: { ...DEFAULT_CONFIG },
    routerW: new Float32Array(0),
    layout: { rows: 8, cols: 8 },
  };
  let message = "";
  try {
    checkRunPair(run, { ...run, dir: "./a" });
  } catch (e) {
    message = (e as Error).message;
  }
  equal(message, "--moe and --moge name the same run (/x/a): give one MoE and one MoGE run");
});
