import { tf } from "../src/deps.ts";
import { useBackend } from "../src/backend.ts";
import { loadFixture } from "../src/data/images.ts";
import {
  hostPlan,
  type RegularizerSettings,
  type RoutedBatch,
  type RoutedPlan,
} from "../src/moe/moe_layer.ts";
import { AdamW } from "../src/train/optim.ts";
import {
  disposeVitOutput,
  lastEvenBlocks,
  multiHeadAttention,
  validateVitConfig,
  VisionTransformer,
  type VitConfig,
} from "../src/models/vit.ts";
import {
  DEFAULT_VIT_CONFIG,
  parseMoeBlocks,
  trainVit,
  validateVitTrainConfig,
  VIT_PRESETS,
  vitConfigOf,
  type VitTrainConfig,
  vitTrainStep,
} from "../src/train/vit_task.ts";
import { assertAllClose, assertClose, deepEqual, equal, ok, throws } from "./asserts.ts";
import { availableBackends } from "./backends.ts";

/** 8x8 images, patch 4: 4 patch tokens + the class token; MoE in blocks 1 and 3. */
const tiny: VitConfig = {
  imageSize: 8,
  channels: 1,
  patchSize: 4,
  numClasses: 3,
  embedDim: 8,
  depth: 4,
  numHeads: 2,
  mlpDim: 12,
  pool: "cls",
  moeBlocks: [1, 3],
  experts: 9,
  topK: 1,
  capacityFactor: 0,
  loadBalanceWeight: 0.01,
  dropout: 0.1,
  attentionDropout: 0.1,
  dropPath: 0.3,
};
const reg: RegularizerSettings = { lambda: 0.1, sigma: 2, filterSize: 3, filter: "gaussian" };

function batch(B: number, seed: number): { x: tf.Tensor2D; y: tf.Tensor1D } {
  return {
    x: tf.randomUniform([B, 64], 0, 1, "float32", seed) as tf.Tensor2D,
    y: tf.tensor1d(Array.from({ length: B }, (_, i) => (i + seed) % 3), "int32"),
  };
}

async function gradsOf(
  model: VisionTransformer,
  x: tf.Tensor2D,
  y: tf.Tensor1D,
  routing: "sync" | "replay",
  seed: number,
): Promise<{ loss: number; grads: Record<string, Float32Array>; plans: RoutedPlan[] }> {
  const opts = { training: true, seed, reg };
  // "replay": CPU plans from an untaped async pass, replayed in the tape (the old webgpu path).
  let planned: RoutedBatch[] | null = null;
  if (routing === "replay") {
    const r = await model.forwardAsync(x, opts);
    disposeVitOutput(r.output);
    planned = r.routed;
  }
  let routed = planned ?? [];
  const { value, grads } = tf.variableGrads(() => {
    let out;
    if (planned) {
      out = model.forwardWith(x, opts, (req) => planned[req.index]).output;
    } else {
      const r = model.forwardSync(x, opts);
      routed = r.routed;
      out = r.output;
    }
    const ce = tf.losses.softmaxCrossEntropy(tf.oneHot(y, 3), out.logits);
    return tf.add(ce, out.penalty) as tf.Scalar;
  }, Object.values(model.params));
  const named: Record<string, Float32Array> = {};
  for (const [name, v] of Object.entries(model.params)) {
    // An expert that received no token is not used at all: no gradient (zero).
    named[name] = grads[v.name]
      ? await grads[v.name].data() as Float32Array
      : new Float32Array(v.size);
  }
  const loss = (await value.data())[0];
  const plans = routed.map((r) => r.plan);
  tf.dispose([value, ...Object.values(grads)]);
  model.disposeRouted(routed);
  return { loss, grads: named, plans };
}

const norm = (g: ArrayLike<number>) => Math.sqrt(Array.from(g).reduce((s, a) => s + a * a, 0));

Deno.test("lastEvenBlocks() is V-MoE's 'last n even-numbered blocks' (0-based odd indices)", () => {
  deepEqual(lastEvenBlocks(8, 2), [5, 7]); // V-MoE-S
  deepEqual(lastEvenBlocks(4, 2), [1, 3]); // vit-tiny
  deepEqual(lastEvenBlocks(12, 2), [9, 11]);
  deepEqual(lastEvenBlocks(5, 2), [1, 3]);
  deepEqual(lastEvenBlocks(8, 4), [1, 3, 5, 7]); // "every other block"
  deepEqual(lastEvenBlocks(8, 0), []);
  deepEqual(parseMoeBlocks("last2", 8), [5, 7]);
  deepEqual(parseMoeBlocks("3,0", 4), [0, 3]);
  deepEqual(parseMoeBlocks("none", 4), []);
  throws(() => parseMoeBlocks("last3", 4), /only 2 even-numbered blocks/);
  throws(() => parseMoeBlocks("1,4", 4), /block 4 >= depth 4/);
  throws(() => parseMoeBlocks("every", 4), /use "lastN"/);
});

Deno.test("presets place the MoE layers as V-MoE: vit-tiny in blocks 1, 3; vmoe-s in blocks 5, 7", () => {
  const vitTiny = vitConfigOf({ ...DEFAULT_VIT_CONFIG, ...VIT_PRESETS["vit-tiny"] });
  deepEqual(vitTiny.moeBlocks, [1, 3]);
  equal(vitTiny.experts, 32);
  const s: VitTrainConfig = { ...DEFAULT_VIT_CONFIG, ...VIT_PRESETS["vmoe-s"] };
  validateVitTrainConfig(s);
  const vmoeS = vitConfigOf(s);
  deepEqual(
    [vmoeS.imageSize, vmoeS.patchSize, vmoeS.embedDim, vmoeS.depth, vmoeS.numHeads, vmoeS.experts],
    [32, 4, 512, 8, 8, 32],
  );
  deepEqual(vmoeS.moeBlocks, [5, 7]);
});

Deno.test("VisionTransformer has MoE parameters exactly in the chosen blocks", async () => {
  await useBackend("cpu");
  const model = new VisionTransformer(tiny, 1);
  deepEqual(model.moeBlockIndices, [1, 3]);
  for (let i = 0; i < tiny.depth; i++) {
    const moe = tiny.moeBlocks.includes(i);
    equal(`block${i}.moe.router.w` in model.params, moe, `block ${i} router`);
    equal(`block${i}.moe.experts.w1.0` in model.params, moe, `block ${i} experts`);
    equal(`block${i}.mlp.fc1.w` in model.params, !moe, `block ${i} dense MLP`);
    ok(`block${i}.attn.qkv.w` in model.params);
  }
  deepEqual(model.params["block1.moe.experts.w1.8"].shape, [8, 12]); // experts are the MLP's shape
  deepEqual(model.params["block0.mlp.fc1.w"].shape, [8, 12]);
  deepEqual(model.params["pos"].shape, [1, 5, 8]);
  ok(VisionTransformer.excludeFromWeightDecay("block0.ln1.g"));
  ok(VisionTransformer.excludeFromWeightDecay("block1.moe.experts.b1.3"));
  ok(VisionTransformer.excludeFromWeightDecay("pos"));
  ok(!VisionTransformer.excludeFromWeightDecay("block1.moe.experts.w1.3"));
  model.dispose();
});

Deno.test("validateVitConfig() names the bad field", () => {
  throws(
    () => validateVitConfig({ ...tiny, patchSize: 3 }),
    /patchSize = 3 .* divide imageSize = 8/,
  );
  throws(() => validateVitConfig({ ...tiny, numHeads: 3 }), /numHeads = 3 .* divide embedDim = 8/);
  throws(() => validateVitConfig({ ...tiny, moeBlocks: [4] }), /moeBlocks entry = 4/);
  throws(() => validateVitConfig({ ...tiny, dropPath: 1 }), /dropPath = 1/);
  throws(() => validateVitConfig({ ...tiny, pool: "max" as "cls" }), /pool = "max"/);
  throws(
    () => validateVitTrainConfig({ ...DEFAULT_VIT_CONFIG, experts: 31 }),
    /E = 31 is prime/,
  );
});

for (const backend of await availableBackends()) {
  Deno.test(`multiHeadAttention() (${backend}) equals a naive per-head loop`, async () => {
    await useBackend(backend);
    const B = 2, T = 3, d = 4, H = 2, dh = 2;
    const xs = Array.from(
      { length: B * T },
      (_, n) => Array.from({ length: d }, (_, i) => Math.sin(3 * n + i)),
    );
    const rnd = (shape: number[], s: number) => tf.randomNormal(shape, 0, 0.7, "float32", s);
    const w = {
      qkvW: rnd([d, 3 * d], 1),
      qkvB: rnd([3 * d], 2),
      projW: rnd([d, d], 3),
      projB: rnd([d], 4),
    };
    const x = tf.tensor2d(xs);
    const y = multiHeadAttention(x, T, H, w);
    const [qkvW, qkvB, projW, projB] = await Promise.all(
      [w.qkvW, w.qkvB, w.projW, w.projB].map(async (t) => Array.from(await t.data())),
    );
    const expected: number[] = [];
    for (let b = 0; b < B; b++) {
      const tok = xs.slice(b * T, (b + 1) * T);
      const proj = (row: number[], col: number) =>
        row.reduce((s, v, i) => s + v * qkvW[i * 3 * d + col], qkvB[col]);
      const q = tok.map((r) => Array.from({ length: d }, (_, j) => proj(r, j)));
      const k = tok.map((r) => Array.from({ length: d }, (_, j) => proj(r, d + j)));
      const v = tok.map((r) => Array.from({ length: d }, (_, j) => proj(r, 2 * d + j)));
      const concat = tok.map(() => new Array(d).fill(0));
      for (let h = 0; h < H; h++) {
        for (let t = 0; t < T; t++) {
          const s = Array.from({ length: T }, (_, u) => {
            let dot = 0;
            for (let j = 0; j < dh; j++) dot += q[t][h * dh + j] * k[u][h * dh + j];
            return dot / Math.sqrt(dh);
          });
          const m = Math.max(...s);
          const e = s.map((a) => Math.exp(a - m));
          const z = e.reduce((a, c) => a + c, 0);
          for (let j = 0; j < dh; j++) {
            concat[t][h * dh + j] = e.reduce((acc, a, u) => acc + (a / z) * v[u][h * dh + j], 0);
          }
        }
      }
      for (const row of concat) {
        for (let o = 0; o < d; o++) {
          expected.push(row.reduce((s, a, i) => s + a * projW[i * d + o], projB[o]));
        }
      }
    }
    deepEqual(y.shape, [B * T, d]);
    assertAllClose(await y.data(), expected, { atol: 1e-4, rtol: 1e-4 });
    tf.dispose([x, y, w.qkvW, w.qkvB, w.projW, w.projB]);
  });

  Deno.test(`VisionTransformer (${backend}) forward gives [B, classes] logits for cls and mean pooling`, async () => {
    await useBackend(backend);
    for (const pool of ["cls", "mean"] as const) {
      const model = new VisionTransformer({ ...tiny, pool }, 2);
      equal(model.tokens, pool === "cls" ? 5 : 4);
      const { x } = batch(3, 1);
      const { output, routed } = await model.forwardAsync(x, { training: false, reg });
      deepEqual(output.logits.shape, [3, 3]);
      deepEqual(output.moe.map((m) => m.block), [1, 3]);
      deepEqual(routed.map((r) => r.plan.N), [3 * model.tokens, 3 * model.tokens]);
      const logits = await output.logits.data();
      ok(Array.from(logits).every(Number.isFinite));
      ok((await output.moe[0].reg.data())[0] > 0);
      disposeVitOutput(output);
      model.disposeRouted(routed);
      x.dispose();
      model.dispose();
    }
  });

  if (backend === "webgpu") {
    Deno.test("VisionTransformer (webgpu): one taped pass with device routing equals the CPU-planned replay", async () => {
      await useBackend("webgpu");
      const model = new VisionTransformer({ ...tiny, capacityFactor: 1 }, 4);
      const { x, y } = batch(3, 3); // 15 tokens, C_e = 1 · floor(1 · ceil(15 / 9)) = 2: drops
      const before = tf.memory().numTensors;
      const device = await gradsOf(model, x, y, "sync", 11); // dropout, drop path, noise on
      const replay = await gradsOf(model, x, y, "replay", 11);
      equal(tf.memory().numTensors, before, "no tensor leaks");
      ok(device.plans.every((p) => p.expert === undefined), "the taped pass planned on the device");
      ok(replay.plans.some((p) => (p.dropped ?? 0) > 0), "capacity drops choices (not vacuous)");
      assertClose(device.loss, replay.loss, { atol: 1e-5 });
      for (const name of Object.keys(replay.grads)) {
        assertAllClose(device.grads[name], replay.grads[name], {
          atol: 1e-5,
          rtol: 1e-4,
          msg: name,
        });
      }
      tf.dispose([x, y]);
      model.dispose();
    });
  }

  // Gradient checks in the one taped pass (cpu/wasm: CPU plans) and through a replay of
  // CPU plans (every backend).
  for (const routing of backend === "webgpu" ? ["replay"] as const : ["sync", "replay"] as const) {
    Deno.test(`VisionTransformer (${backend}, ${routing} routing) gradients reach every parameter`, async () => {
      await useBackend(backend);
      const model = new VisionTransformer(
        { ...tiny, dropout: 0, attentionDropout: 0, dropPath: 0 },
        3,
      );
      const { x, y } = batch(6, 2);
      const { loss, grads, plans } = await gradsOf(model, x, y, routing, 5);
      ok(Number.isFinite(loss));
      for (const [name, g] of Object.entries(grads)) {
        ok(Array.from(g).every(Number.isFinite), `${name}: non-finite gradient`);
        if (name.includes(".moe.experts.")) continue; // checked per expert below
        ok(norm(g) > 0, `${name}: zero gradient`);
      }
      // Within a MoE layer, an expert's weights get a gradient iff it processed a token
      // that reaches the loss: any token in block 1; in the last block (cls pooling) only
      // the class tokens (token 0 of each image), since the patch tokens' outputs go unused.
      const T = model.tokens;
      model.moeBlockIndices.forEach((block, l) => {
        const plan = hostPlan(plans[l], "test");
        const used = new Set<number>();
        for (let n = 0; n < plan.N; n++) {
          if (block !== tiny.depth - 1 || n % T === 0) used.add(plan.expert[n]);
        }
        ok(block !== tiny.depth - 1 || used.size < tiny.experts, "the check is not vacuous");
        for (let e = 0; e < tiny.experts; e++) {
          equal(
            norm(grads[`block${block}.moe.experts.w1.${e}`]) > 0,
            used.has(e),
            `block ${block} expert ${e}`,
          );
        }
      });
      tf.dispose([x, y]);
      model.dispose();
    });
  }

  if (backend !== "webgpu") {
    Deno.test(`VisionTransformer (${backend}) with compact expert buffers trains in the tape`, async () => {
      await useBackend(backend);
      const model = new VisionTransformer({ ...tiny, compactExperts: true }, 6);
      const { x, y } = batch(2, 5); // 10 tokens for 9 experts: some idle
      const before = tf.memory().numTensors;
      const sync = await gradsOf(model, x, y, "sync", 3);
      const replay = await gradsOf(model, x, y, "replay", 3);
      equal(sync.loss, replay.loss);
      ok(Number.isFinite(sync.loss));
      ok(norm(sync.grads["block1.moe.router.w"]) > 0);
      ok(sync.plans.some((p) => p.active.length < tiny.experts), "some experts idle");
      equal(tf.memory().numTensors, before);
      tf.dispose([x, y]);
      model.dispose();
    });
  }

  if (backend !== "webgpu") {
    Deno.test(`VisionTransformer (${backend}) planning + replay equals in-tape routing (dropout, drop path, noise on)`, async () => {
      await useBackend(backend);
      const model = new VisionTransformer(tiny, 4);
      const { x, y } = batch(5, 3);
      const a = await gradsOf(model, x, y, "sync", 11);
      const b = await gradsOf(model, x, y, "replay", 11);
      const c = await gradsOf(model, x, y, "sync", 12);
      equal(a.loss, b.loss);
      for (const name of Object.keys(a.grads)) {
        assertAllClose(b.grads[name], a.grads[name], { atol: 1e-7, rtol: 1e-6, msg: name });
      }
      deepEqual(a.plans.map((p) => [...p.expert!]), b.plans.map((p) => [...p.expert!]));
      ok(a.loss !== c.loss, "another seed draws other dropout / noise");
      tf.dispose([x, y]);
      model.dispose();
    });
  }

  Deno.test(`vitTrainStep (${backend}) keeps tf.memory().numTensors flat over steps`, async () => {
    await useBackend(backend);
    const model = new VisionTransformer(tiny, 5);
    const opt = new AdamW({
      learningRate: 1e-3,
      excludeFromWeightDecay: VisionTransformer.excludeFromWeightDecay,
    });
    const { x, y } = batch(4, 4);
    const routings = ["sync"] as const; // every routing option routes in the one taped pass
    const steps = backend === "webgpu" ? 3 : 8;
    for (const routing of routings) {
      const step = async (i: number) => {
        const r = await vitTrainStep(model, opt, x, y, {
          seed: i,
          reg,
          lr: 1e-3,
          labelSmoothing: 0.1,
          routing,
        });
        equal(r.stats.shape[0], 3 + 2 * 2);
        equal(r.plans.length, 2);
        r.stats.dispose();
        for (const p of r.plans) p.counts?.dispose(); // webgpu: the device counts are ours
      };
      await step(0);
      await step(1);
      const before = tf.memory().numTensors;
      for (let i = 2; i < 2 + steps; i++) await step(i);
      equal(tf.memory().numTensors, before, `${routing} routing`);
    }
    opt.dispose();
    tf.dispose([x, y]);
    model.dispose();
  });
}

Deno.test("trainVit() (wasm) logs every MoE layer, learns, and resumes exactly", async () => {
  const data = await loadFixture("fashion-mnist");
  const cfg: VitTrainConfig = {
    ...DEFAULT_VIT_CONFIG,
    ...VIT_PRESETS["vit-smoke"],
    embedDim: 16,
    experts: 9,
    epochs: 4,
    batchSize: 50,
    dropPath: 0,
    trainLimit: 0,
    testLimit: 0,
    warmupEpochs: 0.5,
    learningRate: 3e-3,
    backend: "wasm",
    seed: 3,
  };
  const dirA = await Deno.makeTempDir({ prefix: "moge-vit-test-" });
  const dirB = await Deno.makeTempDir({ prefix: "moge-vit-test-" });
  try {
    const a = await trainVit(cfg, { outDir: dirA, data });
    ok(a.completed);
    equal(a.steps, 80);
    deepEqual(a.moeBlocks, [1]);
    ok(a.testAcc > 0.25, `test accuracy ${a.testAcc} (chance 0.1)`);
    const lines = (await Deno.readTextFile(`${dirA}/metrics.jsonl`)).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    equal(lines.length, 4);
    for (const m of lines) {
      equal(m.trainMoe.length, 1);
      const t = m.trainMoe[0];
      equal(t.block, 1);
      ok(t.reg > 0 && t.aux >= 0, "MoGE logs the training R(z) and L_aux");
      equal(
        t.load.reduce((s: number, v: number) => s + v, 0),
        Math.round(1000 * 17 * (1 - t.dropRate)),
      );
      ok(m.testMoe[0].reg > 0, "R(z) on the test set");
    }
    // Stop mid-epoch, then resume: the same final weights as the uninterrupted run.
    const stopped = await trainVit(cfg, { outDir: dirB, data, stopAfterSteps: 25 });
    equal(stopped.completed, false);
    const resumed = await trainVit(cfg, { outDir: dirB, data, resume: true });
    ok(resumed.completed);
    equal(resumed.testAcc, a.testAcc);
    assertClose(resumed.testCe, a.testCe, { atol: 1e-6 });
    // MoE mode: R(z) only on the test set (it is not part of the MoE objective).
    const moe = await trainVit({ ...cfg, mode: "moe", epochs: 1, trainLimit: 100 }, {
      outDir: `${dirA}/moe`,
      data,
    });
    const m = JSON.parse((await Deno.readTextFile(`${dirA}/moe/metrics.jsonl`)).trim());
    equal(m.trainMoe[0].reg, null);
    ok(moe.testMoe[0].reg !== null && moe.testMoe[0].reg > 0);
  } finally {
    await Deno.remove(dirA, { recursive: true });
    await Deno.remove(dirB, { recursive: true });
  }
});
