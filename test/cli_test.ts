import { DEFAULT_CONFIG, PRESETS } from "../src/train/classifier_config.ts";
import { loadFixture } from "../src/data/images.ts";
import { meanImed, routingScores, transformImages } from "../src/analysis/invariance.ts";
import { train } from "../src/train/classifier_task.ts";
import { useBackend } from "../src/backend.ts";
import { assertAllClose, equal, ok } from "./asserts.ts";

const root = new URL("..", import.meta.url).pathname;

async function run(script: string, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${root}src/cli/${script}`, ...args],
    cwd: root,
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("train --help lists every flag with its default", async () => {
  const { code, stdout } = await run("train.ts", ["--help"]);
  equal(code, 0);
  for (const flag of ["--mode", "--experts", "--lambda", "--sigma-max", "--resume", "--backend"]) {
    ok(stdout.includes(flag), `--help lacks ${flag}`);
  }
  ok(stdout.includes(`[default ${DEFAULT_CONFIG.experts}]`));
});

Deno.test("train refuses bad values with status 2 and a one-line message", async () => {
  for (
    const [args, pattern] of [
      [["--experts", "13"], /--experts: E = 13 is prime.*nearest usable E: 12 or 15/],
      [["--mode", "dense"], /--mode: mode = "dense" is invalid: allowed are moe, moge/],
      [["--lr", "abc"], /--lr "abc" is not a number/],
      [["--bogus"], /bogus/],
      [["--resume"], /--resume needs --out/],
    ] as const
  ) {
    const { code, stderr } = await run("train.ts", [...args]);
    equal(code, 2, `${args.join(" ")}: status ${code}, stderr ${stderr}`);
    ok(pattern.test(stderr), `${args.join(" ")}: ${stderr}`);
    ok(!stderr.includes("    at "), `stack trace for ${args.join(" ")}: ${stderr}`);
  }
});

Deno.test("invariance writes Table 1 (12 columns), Fig. 2 pictures and specialization for two runs", async () => {
  await useBackend("cpu");
  const data = await loadFixture("fashion-mnist");
  const dir = await Deno.makeTempDir({ prefix: "moge-inv-" });
  for (const mode of ["moe", "moge"] as const) {
    await train({ ...DEFAULT_CONFIG, ...PRESETS.tiny, epochs: 1, mode, backend: "cpu" }, {
      outDir: `${dir}/${mode}`,
      data,
    });
  }
  const { code, stderr } = await run("invariance.ts", [
    "--moe",
    `${dir}/moe`,
    "--moge",
    `${dir}/moge`,
    "--out",
    `${dir}/inv`,
    "--limit",
    "40",
    "--backend",
    "cpu",
  ]);
  equal(code, 0, stderr);
  const report = JSON.parse(await Deno.readTextFile(`${dir}/inv/invariance.json`));
  equal(report.columns.length, 12);
  equal(report.testImages, 40);
  for (const c of report.columns) ok(c.moe.mean >= 0 && c.moge.mean >= 0);
  const png = await Deno.readFile(`${dir}/inv/class_maps.png`);
  equal(png[1], 0x50); // "PNG"
  ok((await Deno.readTextFile(`${dir}/inv/class_maps.svg`)).startsWith("<svg"));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("routing maps of untransformed images have zero IMED; routingScores is softmax(x W)", async () => {
  await useBackend("cpu");
  const x = new Float32Array([1, 0, 0, 1]); // 2 images of 2 pixels
  const w = new Float32Array([0, Math.log(3), 0, 0, 0, 0, 0, 0]); // [2 pixels, E = 4]
  const z = await routingScores(x, w, 4);
  assertAllClose(z.subarray(0, 4), [1 / 6, 3 / 6, 1 / 6, 1 / 6], { atol: 1e-6 });
  assertAllClose(z.subarray(4, 8), [0.25, 0.25, 0.25, 0.25], { atol: 1e-6 });
  equal(meanImed(z, z, { rows: 2, cols: 2 }).mean, 0);
  const img = new Float32Array(28 * 28).map((_, i) => (i % 7) / 7);
  assertAllClose(transformImages(img, 28, {}, 1), img, { atol: 1e-6 });
});

Deno.test("train --model vit --help is generated from the ViT field table; an unknown --model exits 2", async () => {
  const { code, stdout } = await run("train.ts", ["--model", "vit", "--help"]);
  equal(code, 0);
  for (
    const text of ["--patch", "--moe-blocks", "--drop-path", "--routing", "vmoe-s", "--overwrite"]
  ) {
    ok(stdout.includes(text), `--help lacks ${text}`);
  }
  ok(stdout.includes("[default 32; paper: 32]"), "experts: default and the paper's value");
  ok(!stdout.includes("--moe-variant"), "no LM flag in the ViT help");
  const bad = await run("train.ts", ["--model", "gpt"]);
  equal(bad.code, 2);
  ok(/--model gpt is unknown: allowed are classifier, vit, lm/.test(bad.stderr), bad.stderr);
});
