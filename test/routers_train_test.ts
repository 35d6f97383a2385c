/**
 * Every router of `src/moe/routers` trains end to end through the one loop:
 * a tiny classifier run per router, and the ViT and LM with a few routers
 * (the graph-of-tokens ones need their sequence length and attention
 * matrix), on wasm; the model-level refusals (attention on the classifier,
 * expert choice on the causal LM) name the router and the reason.
 */

import { useBackend } from "../src/backend.ts";
import { DEFAULT_CONFIG, PRESETS, validateConfig } from "../src/train/classifier_config.ts";
import { train } from "../src/train/classifier_task.ts";
import {
  DEFAULT_VIT_CONFIG,
  validateVitTrainConfig,
  VIT_PRESETS,
} from "../src/train/vit_config.ts";
import { trainVit } from "../src/train/vit_task.ts";
import {
  DEFAULT_LM_CONFIG,
  LM_PRESETS,
  type LmTrainConfig,
  validateLmTrainConfig,
} from "../src/train/lm_config.ts";
import { trainLm } from "../src/train/lm_task.ts";
import { loadFixture } from "../src/data/images.ts";
import { readSavedConfig } from "../src/train/run_dir.ts";
import { loadTextCorpus } from "../src/data/text.ts";
import { ROUTER_NAMES, type RouterName } from "../src/moe/routers/mod.ts";
import { equal, ok, throws } from "./asserts.ts";

const images = await loadFixture("fashion-mnist");

async function lastMetrics(dir: string): Promise<Record<string, unknown>> {
  const lines = (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n");
  return JSON.parse(lines[lines.length - 1]);
}

for (const router of ROUTER_NAMES.filter((r) => r !== "attention")) {
  Deno.test(`classifier --preset tiny --router ${router} (wasm) finishes with finite figures`, async () => {
    const backendInfo = await useBackend("wasm");
    const dir = await Deno.makeTempDir({ prefix: "moge-routers-test-" });
    try {
      const cfg = {
        ...DEFAULT_CONFIG,
        ...PRESETS.tiny,
        epochs: 1,
        trainLimit: 200,
        router,
        zLossWeight: 1e-3,
        backend: "wasm" as const,
      };
      validateConfig(cfg);
      const s = await train(cfg, { outDir: dir, data: images, backendInfo });
      ok(s.completed);
      ok(s.testAcc >= 0 && s.testAcc <= 1 && Number.isFinite(s.testReg), JSON.stringify(s));
      const m = await lastMetrics(dir);
      equal(m.router, router);
      ok(Number.isFinite(m.trainLoss as number), `trainLoss ${m.trainLoss}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("classifier refuses --router attention, naming the reason", () => {
  throws(
    () => validateConfig({ ...DEFAULT_CONFIG, router: "attention" }),
    /router = "attention" is invalid for the classifier: .*no(ne)?/,
  );
  throws(
    () => validateConfig({ ...DEFAULT_CONFIG, router: "expert-choice", capacityFactor: 0 }),
    /capacityFactor = 0 is invalid with router "expert-choice"/,
  );
});

for (const router of ["attention", "similarity", "expert-choice"] as RouterName[]) {
  Deno.test(`vit --preset vit-smoke --router ${router} (wasm) finishes`, async () => {
    const backendInfo = await useBackend("wasm");
    const dir = await Deno.makeTempDir({ prefix: "moge-routers-test-" });
    try {
      const cfg = {
        ...DEFAULT_VIT_CONFIG,
        ...VIT_PRESETS["vit-smoke"],
        trainLimit: 200,
        testLimit: 100,
        router,
        backend: "wasm" as const,
      };
      validateVitTrainConfig(cfg);
      const s = await trainVit(cfg, { outDir: dir, data: images, backendInfo });
      ok(s.completed);
      equal((await lastMetrics(dir)).router, router);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

const corpus = await loadTextCorpus("fixture");
for (const router of ["attention", "sinkhorn", "ssr", "xmoe"] as RouterName[]) {
  Deno.test(`lm --preset lm-tiny --router ${router} (wasm) finishes`, async () => {
    const backendInfo = await useBackend("wasm");
    const dir = await Deno.makeTempDir({ prefix: "moge-routers-test-" });
    try {
      const cfg: LmTrainConfig = {
        ...DEFAULT_LM_CONFIG,
        ...LM_PRESETS["lm-tiny"],
        steps: 2,
        evalEvery: 2,
        evalTokens: 128,
        finalEvalTokens: 128,
        router,
        zLossWeight: 1e-3,
        backend: "wasm",
      };
      validateLmTrainConfig(cfg);
      const s = await trainLm(cfg, { outDir: dir, corpus, backendInfo });
      ok(s.completed);
      ok(Number.isFinite(s.testPpl) && s.testPpl > 1, `testPpl ${s.testPpl}`);
      equal((await lastMetrics(dir)).router, router);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("the causal LM refuses --router expert-choice, saying why", () => {
  throws(
    () => validateLmTrainConfig({ ...DEFAULT_LM_CONFIG, router: "expert-choice" }),
    /router = "expert-choice" is invalid for the causal LM: .*later tokens/,
  );
});

Deno.test("a run directory from before --router and --z-loss resumes with topk and z-loss 0", async () => {
  const backendInfo = await useBackend("wasm");
  const dir = await Deno.makeTempDir({ prefix: "moge-routers-test-" });
  try {
    const cfg = {
      ...DEFAULT_CONFIG,
      ...PRESETS.tiny,
      epochs: 1,
      trainLimit: 400,
      backend: "wasm" as const,
    };
    const first = await train(cfg, { outDir: dir, data: images, backendInfo, stopAfterSteps: 2 });
    ok(!first.completed);
    // Make it an old run: its config.json has no router fields.
    const saved = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    ok("router" in saved && "zLossWeight" in saved, "config.json holds the router fields");
    delete saved.router;
    delete saved.zLossWeight;
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(saved));
    const old = await readSavedConfig(dir, DEFAULT_CONFIG);
    equal(old.router, "topk");
    equal(old.zLossWeight, 0);
    const resumed = await train(old, { outDir: dir, data: images, backendInfo, resume: true });
    ok(resumed.completed);
    equal(resumed.steps, 4);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
