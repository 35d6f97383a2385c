import { tf } from "../src/deps.ts";
import { useBackend } from "../src/backend.ts";
import {
  DEFAULT_CONFIG,
  PRESETS,
  type TrainConfig,
  validateConfig,
} from "../src/train/classifier_config.ts";
import { loadCheckpoint } from "../src/train/checkpoint.ts";
import { loadFixture } from "../src/data/images.ts";
import { train } from "../src/train/classifier_task.ts";
import { deepEqual, equal, ok, throws } from "./asserts.ts";
import { availableBackends } from "./backends.ts";

const data = await loadFixture("fashion-mnist");

/** A small, fast config on the committed fixture (1,000 training images). */
function fixtureConfig(over: Partial<TrainConfig>): TrainConfig {
  return {
    ...DEFAULT_CONFIG,
    ...PRESETS.tiny,
    epochs: 6,
    batchSize: 100,
    learningRate: 3e-3,
    warmupEpochs: 1,
    ...over,
  };
}

async function tmp(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "moge-train-test-" });
}

for (const backend of await availableBackends()) {
  if (backend === "cpu") continue; // the slowest; wasm and webgpu are the ones users run
  for (const mode of ["moe", "moge"] as const) {
    Deno.test(`train() (${backend}, ${mode}) on the fixture reaches accuracy far above chance`, async () => {
      const dir = await tmp();
      const cfg = fixtureConfig({ mode, backend, seed: 1 });
      const s = await train(cfg, { outDir: dir, data });
      ok(s.completed);
      ok(s.testAcc >= 0.6, `test accuracy ${s.testAcc} (chance: 0.1)`);
      const lines = (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n");
      equal(lines.length, cfg.epochs);
      const last = JSON.parse(lines.at(-1)!);
      equal(last.backend, backend);
      equal(last.load.length, cfg.experts);
      const summary = JSON.parse(await Deno.readTextFile(`${dir}/summary.json`));
      equal(summary.testAcc, s.testAcc);
      await Deno.remove(dir, { recursive: true });
    });
  }
}

Deno.test("train() stopped after n steps and resumed for n more gives the weights of 2n steps straight", async () => {
  await useBackend("wasm");
  const cfg = fixtureConfig({ mode: "moge", epochs: 2, backend: "wasm", seed: 3 }); // 20 steps
  const straight = await tmp();
  const split = await tmp();
  await train(cfg, { outDir: straight, data });
  const first = await train(cfg, { outDir: split, data, stopAfterSteps: 7 });
  equal(first.completed, false);
  equal(first.steps, 7);
  const resumed = await train(cfg, { outDir: split, data, resume: true });
  ok(resumed.completed);
  equal(resumed.steps, 20);
  const a = await loadCheckpoint(`${straight}/checkpoint`);
  const b = await loadCheckpoint(`${split}/checkpoint`);
  deepEqual(Object.keys(a.tensors).sort(), Object.keys(b.tensors).sort());
  for (const name of Object.keys(a.tensors)) {
    deepEqual(a.tensors[name].values, b.tensors[name].values, `${name} differs after resume`);
  }
  await Deno.remove(straight, { recursive: true });
  await Deno.remove(split, { recursive: true });
});

Deno.test("train() with the same seed on the same backend is reproducible", async () => {
  const cfg = fixtureConfig({ mode: "moe", epochs: 1, backend: "wasm", seed: 5 });
  const [d1, d2] = [await tmp(), await tmp()];
  const s1 = await train(cfg, { outDir: d1, data });
  const s2 = await train(cfg, { outDir: d2, data });
  equal(s1.testAcc, s2.testAcc);
  const a = await loadCheckpoint(`${d1}/checkpoint`);
  const b = await loadCheckpoint(`${d2}/checkpoint`);
  deepEqual(a.tensors["param/moe.router.w"].values, b.tensors["param/moe.router.w"].values);
  await Deno.remove(d1, { recursive: true });
  await Deno.remove(d2, { recursive: true });
});

Deno.test("train() with MoGE ends with a lower mean R(z) than MoE from the same seed", async () => {
  // λ large enough to act within 30 steps on 1,000 images.
  const base = { epochs: 3, backend: "wasm" as const, seed: 2, lambda: 0.5 };
  const [d1, d2] = [await tmp(), await tmp()];
  const moe = await train(fixtureConfig({ ...base, mode: "moe" }), { outDir: d1, data });
  const moge = await train(fixtureConfig({ ...base, mode: "moge" }), { outDir: d2, data });
  ok(moge.testReg < moe.testReg, `MoGE R(z) ${moge.testReg} vs MoE ${moe.testReg}`);
  await Deno.remove(d1, { recursive: true });
  await Deno.remove(d2, { recursive: true });
});

Deno.test("train() keeps tf.memory().numTensors flat across epochs", async () => {
  await useBackend("wasm");
  const before = tf.memory().numTensors;
  const dir = await tmp();
  await train(fixtureConfig({ mode: "moge", epochs: 2, backend: "wasm" }), { outDir: dir, data });
  equal(tf.memory().numTensors, before);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("validateConfig() names the bad field and what is allowed", () => {
  throws(
    () => validateConfig({ ...DEFAULT_CONFIG, mode: "dense" as "moe" }),
    /mode = "dense" is invalid: allowed are moe, moge/,
  );
  throws(() => validateConfig({ ...DEFAULT_CONFIG, topK: 65 }), /topK = 65 is invalid/);
  throws(() => validateConfig({ ...DEFAULT_CONFIG, sigmaMax: 1 }), /sigmaMax = 1 is invalid/);
  throws(() => validateConfig({ ...DEFAULT_CONFIG, lambda: NaN }), /lambda = NaN is invalid/);
});

Deno.test("--noise-scale sets the routing-noise std to noiseScale/E; 0 routes training batches as evaluation", async () => {
  await useBackend("wasm");
  const { buildModel } = await import("../src/train/classifier_task.ts");
  const { disposeRouted } = await import("../src/moe/routed_batch.ts");
  const x = tf.tensor2d(Float32Array.from(data.trainImages.slice(0, 100 * 784), (v) => v / 255), [
    100,
    784,
  ]);
  const experts = (noiseScale: number, training: boolean) => {
    const model = buildModel(fixtureConfig({ experts: 16, noiseScale, seed: 5 }), data);
    return model.route(x, training, 11).then((r) => {
      const e = Array.from(r.plan.expert);
      disposeRouted(r);
      for (const v of Object.values(model.params)) v.dispose();
      return e;
    });
  };
  const evalChoice = await experts(0, false);
  // Off: the noisy training route is the evaluation route.
  deepEqual(await experts(0, true), evalChoice);
  // Std 100/E = 6.25 against logits of order 0.1 at initialization: the argmax follows the noise,
  // so (with probability 1 - 16^-100 for independent draws) some choice differs.
  ok((await experts(100, true)).some((e, i) => e !== evalChoice[i]));
  x.dispose();
});
