import { tf } from "../src/deps.ts";
import { useBackend } from "../src/backend.ts";
import {
  disposeLmRouted,
  INITIAL_RESIDUAL_STATE,
  type LmConfig,
  type LmForward,
  MoeLm,
  perplexity,
  residualStep,
  tokenNll,
  type VariantSettings,
} from "../src/models/lm.ts";
import { loadTextCorpus } from "../src/data/text.ts";
import { makeLmBatch } from "../src/data/text_batches.ts";
import {
  DEFAULT_LM_CONFIG,
  evaluateLm,
  LM_PRESETS,
  type LmTrainConfig,
  lmTrainStep,
  trainLm,
  validateLmTrainConfig,
} from "../src/train/lm_task.ts";
import { AdamW } from "../src/train/optim.ts";
import { assertAllClose, assertClose, equal, ok, throws } from "./asserts.ts";
import { availableBackends } from "./backends.ts";

const backends = await availableBackends();
const reg = { lambda: 0.3, sigma: 2, filterSize: 3, filter: "gaussian" as const };

function tiny(over: Partial<LmConfig> = {}): LmConfig {
  return {
    vocabSize: 12,
    contextLength: 8,
    layers: 2,
    hidden: 8,
    heads: 2,
    experts: 9,
    topK: 2,
    expertHidden: 8,
    activation: "relu",
    capacityFactor: 0,
    noiseStd: 0,
    loadBalanceWeight: 0,
    dropout: 0,
    variant: "smoe",
    mu: 0.7,
    momentumGamma: 0.8,
    adamBeta1: 0.9,
    adamBeta2: 0.999,
    adamGamma: 1,
    adamLayers: 1,
    adamEps: 1e-8,
    ...over,
  };
}

function freeForward(out: LmForward): void {
  tf.dispose([out.logits, out.penalty, out.regularizer]);
  disposeLmRouted(out.routed);
}

async function logitsOf(lm: MoeLm, tokens: number[][], over: object = {}): Promise<Float32Array> {
  const x = tf.tensor2d(tokens, undefined, "int32");
  const out = await lm.forwardAsync(x, { training: false, seed: 0, reg, ...over });
  const v = (await out.logits.data()) as Float32Array;
  freeForward(out);
  x.dispose();
  return v;
}

// --- the residual updates, against a two-layer case computed by hand ---

Deno.test("residualStep: SMoE, MomentumSMoE and AdamSMoE over two layers, by hand", async () => {
  await useBackend("cpu");
  const s: VariantSettings = {
    variant: "smoe",
    mu: 0.5,
    momentumGamma: 0.8,
    adamBeta1: 0.9,
    adamBeta2: 0.99,
    adamGamma: 0.5,
    adamLayers: 1,
    adamEps: 1e-8,
  };
  const x0 = tf.tensor1d([0.1, 0.2]);
  const f1 = tf.tensor1d([1, -2]);
  const f2 = tf.tensor1d([0.5, 3]);
  // With no attention, h_l = x_l: two applications of the update.
  const twoLayers = async (settings: VariantSettings) => {
    const a = residualStep(settings, 0, x0, f1, INITIAL_RESIDUAL_STATE);
    const b = residualStep(settings, 1, a.x, f2, a.state);
    return [Array.from(await a.x.data()), Array.from(await b.x.data())];
  };
  // SMoE: x1 = x0 + f1 = [1.1, -1.8]; x2 = x1 + f2 = [1.6, 1.2].
  const smoe = await twoLayers(s);
  assertAllClose(smoe[0], [1.1, -1.8], { msg: "smoe x1" });
  assertAllClose(smoe[1], [1.6, 1.2], { msg: "smoe x2" });
  // Momentum (μ 0.5, γ 0.8): p0 = -f1 = [-1, 2], x1 = x0 - 0.8 p0 = [0.9, -1.4];
  // p1 = -f2 + 0.5 p0 = [-1, -2], x2 = x1 - 0.8 p1 = [1.7, 0.2].
  const mom = await twoLayers({ ...s, variant: "momentum" });
  assertAllClose(mom[0], [0.9, -1.4], { msg: "momentum x1" });
  assertAllClose(mom[1], [1.7, 0.2], { msg: "momentum x2" });
  // Adam (β 0.9 / 0.99, γ_A 0.5) in layer 0: m0 = 0.1 (-f1) = [-0.1, 0.2],
  // v0 = 0.01 f1² = [0.01, 0.04], x1 = x0 - 0.5 m0 / sqrt(v0 + ε) = [0.6, -0.3];
  // layer 1 takes the heavy-ball step: x2 = x1 - 0.8 p1 = [1.4, 1.3].
  const adam1 = await twoLayers({ ...s, variant: "adam" });
  assertAllClose(adam1[0], [0.6, -0.3], { atol: 1e-5, msg: "adam x1" });
  assertAllClose(adam1[1], [1.4, 1.3], { atol: 1e-5, msg: "adam (1 Adam layer) x2" });
  // Adam in both layers: m1 = 0.9 m0 + 0.1 (-f2) = [-0.14, -0.12],
  // v1 = 0.99 v0 + 0.01 f2² = [0.0124, 0.1296],
  // x2 = x1 - 0.5 m1 / sqrt(v1 + ε) = [0.6 + 0.07/sqrt(0.0124), -0.3 + 0.06/0.36].
  const adam2 = await twoLayers({ ...s, variant: "adam", adamLayers: 2 });
  assertAllClose(adam2[1], [1.2286183, -0.1333333], { atol: 1e-5, msg: "adam (2 Adam layers) x2" });
  // μ = 0, γ = 1 gives the plain residual back.
  const plain = await twoLayers({ ...s, variant: "momentum", mu: 0, momentumGamma: 1 });
  assertAllClose(plain[1], smoe[1], { msg: "momentum μ=0 γ=1 = smoe" });
  tf.dispose([x0, f1, f2]);
});

Deno.test("MoeLm: MomentumSMoE with μ = 0, γ = 1 equals SMoE; AdamSMoE with 0 Adam layers equals MomentumSMoE", async () => {
  await useBackend("cpu");
  const tokens = [[1, 2, 3, 4, 5, 6, 7, 8], [9, 3, 1, 0, 11, 2, 2, 5]];
  const lms = [
    new MoeLm(tiny({ variant: "smoe" }), 7),
    new MoeLm(tiny({ variant: "momentum", mu: 0, momentumGamma: 1 }), 7),
    new MoeLm(tiny({ variant: "momentum", mu: 0.6, momentumGamma: 0.9 }), 7),
    new MoeLm(tiny({ variant: "adam", adamLayers: 0, mu: 0.6, momentumGamma: 0.9 }), 7),
    new MoeLm(tiny({ variant: "adam", adamLayers: 1, mu: 0.6, momentumGamma: 0.9 }), 7),
  ];
  const [smoe, plain, mom, adam0, adam1] = await Promise.all(lms.map((lm) => logitsOf(lm, tokens)));
  assertAllClose(plain, smoe, { atol: 1e-5 });
  assertAllClose(adam0, mom, { atol: 1e-5 });
  ok(smoe.some((v, i) => Math.abs(v - mom[i]) > 1e-3), "momentum changes the output");
  ok(adam1.some((v, i) => Math.abs(v - mom[i]) > 1e-3), "the Adam layer changes the output");
  lms.forEach((lm) => lm.dispose());
});

// --- causal masking, on every backend ---

for (const backend of backends) {
  const variants = backend === "cpu"
    ? (["smoe", "momentum", "adam"] as const)
    : (["adam"] as const);
  for (const variant of variants) {
    Deno.test(`MoeLm (${backend}, ${variant}): a position's output ignores later tokens`, async () => {
      await useBackend(backend);
      // Capacity 2 in training; evaluation plans without a limit (no cross-token dropping).
      const lm = new MoeLm(tiny({ variant, capacityFactor: 2 }), 11);
      const a = [[1, 2, 3, 4, 5, 6, 7, 8], [3, 3, 3, 3, 3, 3, 3, 3]];
      const b = [[1, 2, 3, 4, 11, 0, 9, 9], [3, 3, 3, 3, 10, 5, 4, 1]];
      for (const over of [{ capacityFactor: 0 }, {}]) {
        const cf0 = "capacityFactor" in over;
        const model = cf0 ? lm : new MoeLm(tiny({ variant, capacityFactor: 0 }), 11);
        const [la, lb] = [await logitsOf(model, a, over), await logitsOf(model, b, over)];
        const V = 12, T = 8;
        for (let r = 0; r < 2; r++) {
          for (let t = 0; t < 4; t++) {
            const at = (r * T + t) * V;
            assertAllClose(la.subarray(at, at + V), lb.subarray(at, at + V), {
              atol: 1e-5,
              msg: `row ${r} position ${t}`,
            });
          }
        }
        const last = (T - 1) * V;
        ok(
          la.subarray(last, last + V).some((v, i) => Math.abs(v - lb[last + i]) > 1e-4),
          "later positions do change",
        );
        if (model !== lm) model.dispose();
      }
      lm.dispose();
    });
  }

  Deno.test(`MoeLm (${backend}): planned routing replays the same training pass (dropout, noise)`, async () => {
    await useBackend(backend);
    const lm = new MoeLm(tiny({ variant: "momentum", dropout: 0.2, noiseStd: 0.1 }), 5);
    const x = tf.tensor2d(
      [[1, 2, 3, 4, 5, 6, 7, 8], [0, 1, 0, 1, 2, 3, 11, 10]],
      undefined,
      "int32",
    );
    const opts = { training: true, seed: 42, reg };
    const direct = await lm.forwardAsync(x, opts);
    const again = await lm.forwardAsync(x, opts);
    const plans = again.routed;
    tf.dispose([again.logits, again.penalty, again.regularizer]);
    const replay = tf.tidy(() => {
      const out = lm.forwardWith(x, opts, (_req, i) => plans[i]);
      return [out.logits, out.penalty];
    });
    assertAllClose(await replay[0].data(), await direct.logits.data(), { atol: 1e-5 });
    assertClose((await replay[1].data())[0], (await direct.penalty.data())[0], { atol: 1e-6 });
    for (let l = 0; l < 2; l++) {
      equal(
        plans[l].plan.expert!.join(),
        direct.routed[l].plan.expert!.join(),
        `layer ${l} experts`,
      );
    }
    // The one taped pass (routeSync on cpu/wasm, the device plan on webgpu) computes the same.
    const sync = tf.tidy(() => {
      const out = lm.forwardSync(x, opts);
      disposeLmRouted(out.routed);
      return out.logits;
    });
    assertAllClose(await sync.data(), await direct.logits.data(), { atol: 1e-5 });
    sync.dispose();
    // A different seed gives a different pass.
    const other = await lm.forwardAsync(x, { ...opts, seed: 43 });
    const [o, d] = [await other.logits.data(), await direct.logits.data()];
    ok(o.some((v, i) => Math.abs(v - d[i]) > 1e-4));
    tf.dispose([x, ...replay]);
    freeForward(direct);
    freeForward(other);
    disposeLmRouted(plans);
    lm.dispose();
  });

  Deno.test(`lmTrainStep (${backend}): finite loss, learns, tf.memory().numTensors flat`, async () => {
    await useBackend(backend);
    const corpus = await loadTextCorpus("fixture");
    const lm = new MoeLm(tiny({ vocabSize: corpus.vocab.length, variant: "adam" }), 1);
    const opt = new AdamW({ learningRate: 1e-2, weightDecay: 0 });
    const { x, y } = makeLmBatch(corpus.train, [0, 100, 200, 300], 8);
    const losses: number[] = [];
    const step = async (i: number) => {
      const r = await lmTrainStep(lm, opt, x, y, { seed: i, reg, lr: 1e-2 });
      losses.push((await r.stats.data())[0]);
      r.stats.dispose();
      equal(r.plans.length, 2);
      for (const p of r.plans) p.counts?.dispose(); // webgpu: the device counts are ours
    };
    await step(0);
    await step(1);
    const before = tf.memory().numTensors;
    for (let i = 2; i < 8; i++) await step(i);
    equal(tf.memory().numTensors, before, "no tensor leaks");
    ok(losses.every(Number.isFinite), losses.join());
    ok(losses[7] < losses[0], `loss fell: ${losses[0]} -> ${losses[7]}`);
    tf.dispose([x, y]);
    opt.dispose();
    lm.dispose();
  });
}

// --- perplexity ---

Deno.test("perplexity of a uniform model equals the vocabulary size", async () => {
  await useBackend("cpu");
  const corpus = await loadTextCorpus("fixture");
  const V = corpus.vocab.length;
  const lm = new MoeLm(tiny({ vocabSize: V }), 2);
  lm.params["head.w"].assign(tf.zerosLike(lm.params["head.w"]));
  lm.params["head.b"].assign(tf.zerosLike(lm.params["head.b"]));
  const ev = await evaluateLm(lm, corpus.valid, { batchSize: 16, maxTokens: 0, reg: null });
  assertClose(ev.ppl, V, { rtol: 1e-5 });
  equal(ev.tokens, Math.floor((corpus.valid.length - 1) / 8) * 8);
  assertClose(perplexity(10 * Math.log(V), 10), V, { rtol: 1e-12 });
  lm.dispose();
});

Deno.test("tokenNll is logsumexp(logits) − logit of the target; the penalty is λ·Σ_l mean R(z_l)", async () => {
  await useBackend("cpu");
  const logits = tf.tensor2d([[0, Math.log(3)], [2, 2]]);
  const nll = await tokenNll(logits, tf.tensor1d([1, 0], "int32")).data();
  assertAllClose(nll, [Math.log(4) - Math.log(3), Math.log(2)], { atol: 1e-6 });
  const lm = new MoeLm(tiny(), 4);
  const x = tf.tensor2d([[1, 2, 3, 4, 5, 6, 7, 8]], undefined, "int32");
  const out = await lm.forwardAsync(x, { training: false, seed: 0, reg });
  const r = await out.regularizer.data();
  equal(r.length, 2);
  ok(r.every((v) => v > 0));
  assertClose((await out.penalty.data())[0], 0.3 * (r[0] + r[1]), { rtol: 1e-5 });
  freeForward(out);
  tf.dispose([x, logits]);
  lm.dispose();
});

// --- training runs ---

Deno.test("trainLm: best-validation checkpoint, perplexities, exact resume (fixture, cpu)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const backendInfo = await useBackend("cpu");
    const corpus = await loadTextCorpus("fixture");
    const cfg: LmTrainConfig = {
      ...DEFAULT_LM_CONFIG,
      ...LM_PRESETS["lm-tiny"],
      variant: "momentum",
      steps: 4,
      evalEvery: 2,
      backend: "cpu",
    };
    const full = await trainLm(cfg, { outDir: `${dir}/full`, corpus, backendInfo });
    ok(full.completed);
    equal(full.steps, 4);
    for (const k of ["trainPpl", "validPpl", "testPpl"] as const) {
      ok(full[k] > 1 && full[k] < 2 * corpus.vocab.length, `${k} = ${full[k]}`);
    }
    ok(full.bestStep === 2 || full.bestStep === 4);
    const lines = (await Deno.readTextFile(`${dir}/full/metrics.jsonl`)).trim().split("\n");
    equal(lines.length, 2);
    const last = JSON.parse(lines[1]);
    equal(last.bestValidPpl, Math.min(JSON.parse(lines[0]).validPpl, last.validPpl));
    await Deno.stat(`${dir}/full/best/checkpoint.bin`);
    // Stop after 2 steps, resume: the same result as the uninterrupted run.
    const half = await trainLm(cfg, {
      outDir: `${dir}/resumed`,
      corpus,
      backendInfo,
      stopAfterSteps: 2,
    });
    equal(half.completed, false);
    const resumed = await trainLm(cfg, {
      outDir: `${dir}/resumed`,
      corpus,
      backendInfo,
      resume: true,
    });
    equal(resumed.validPpl, full.validPpl);
    equal(resumed.testPpl, full.testPpl);
    equal(resumed.bestStep, full.bestStep);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("validateLmTrainConfig names the bad field", () => {
  throws(
    () => validateLmTrainConfig({ ...DEFAULT_LM_CONFIG, variant: "nesterov" as "adam" }),
    /variant = "nesterov" is invalid: allowed are smoe, momentum, adam/,
  );
  throws(() => validateLmTrainConfig({ ...DEFAULT_LM_CONFIG, heads: 3 }), /heads = 3 is invalid/);
  throws(() => validateLmTrainConfig({ ...DEFAULT_LM_CONFIG, experts: 13 }), /13/);
  validateLmTrainConfig({ ...DEFAULT_LM_CONFIG, experts: 13, mode: "moe" }); // no layout needed
  throws(() => validateLmTrainConfig({ ...DEFAULT_LM_CONFIG, adamLayers: 4 }), /adamLayers = 4/);
  throws(() => new MoeLm(tiny({ hidden: 9 }), 0), /hidden = 9 must be a multiple of heads/);
});

Deno.test("deno task train --model lm: bad flags exit 2 with one line; --help lists the LM flags", async () => {
  const run = (args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("../src/cli/train.ts", import.meta.url).pathname, ...args],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
  const bad = await run(["--model", "lm", "--moe-variant", "nesterov"]);
  equal(bad.code, 2);
  const err = new TextDecoder().decode(bad.stderr);
  ok(err.startsWith(`error: --moe-variant: variant = "nesterov" is invalid`), err);
  const help = await run(["--model=lm", "--help"]);
  equal(help.code, 0);
  const text = new TextDecoder().decode(help.stdout);
  for (const flag of ["--moe-variant", "--moe-mu", "--moe-gamma", "--preset", "lm-small"]) {
    ok(text.includes(flag), flag);
  }
  ok(text.includes("paper: 0.7"), "paper values shown");
});
