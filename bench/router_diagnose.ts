/**
 * Diagnoses a router on the Fashion-MNIST classifier: trains a short run
 * (train-limit subset) and prints, per interval, the training drop rate, the
 * largest expert load and the mean gate; after training, the test accuracy and
 * drops of the evaluation routing, and for Sinkhorn-style routers the routing
 * the training-time plan would have given on the test batches.
 *
 * deno run -A bench/router_diagnose.ts --router sinkhorn --mode moge --limit 5000 --epochs 1
 *
 * @module
 */
import { tf } from "../src/deps.ts";
import { useBackend } from "../src/backend.ts";
import { classifierTask } from "../src/train/classifier_task.ts";
import { DEFAULT_CONFIG } from "../src/train/classifier_config.ts";
import { AdamW } from "../src/train/optim.ts";
import { loadDataset } from "../src/data/image_sources.ts";
import { makeBatch } from "../src/data/image_batches.ts";
import { hostPlan } from "../src/moe/routed_batch.ts";
import { disposeRouted } from "../src/moe/moe_layer.ts";
import { sinkhornPlan } from "../src/moe/routers/sinkhorn_transport.ts";
import { Rng } from "../src/rng.ts";
import type { MoeClassifier } from "../src/models/classifier.ts";
import type { TrainConfig } from "../src/train/classifier_config.ts";

const a: Record<string, string> = {
  router: "topk",
  mode: "moe",
  limit: "5000",
  epochs: "1",
  experts: "64",
  seed: "0",
  backend: "wasm",
};
for (let i = 0; i < Deno.args.length; i += 2) a[Deno.args[i].replace(/^--/, "")] = Deno.args[i + 1];
const info = await useBackend(a.backend as "wasm");
const cfg: TrainConfig = {
  ...DEFAULT_CONFIG,
  router: a.router as TrainConfig["router"],
  mode: a.mode as TrainConfig["mode"],
  trainLimit: Number(a.limit),
  epochs: Number(a.epochs),
  experts: Number(a.experts),
  seed: Number(a.seed),
  backend: info.backend as TrainConfig["backend"],
};
const data = await loadDataset("fashion-mnist");
const run = classifierTask.open(cfg, data, info);
const model = run.model as MoeClassifier;
const opt = new AdamW({
  learningRate: cfg.learningRate,
  weightDecay: cfg.weightDecay,
  excludeFromWeightDecay: run.excludeFromWeightDecay,
});
const total = run.totalSteps;
let dropped = 0, routedChoices = 0, maxLoad = 0, acc = 0, seen = 0;
const every = Math.max(1, Math.floor(total / 5));
for (let step = 0; step < total; step++) {
  // Linear warm-up then cosine decay; σ decays geometrically from σ_max to σ_min.
  const warm = run.warmupSteps;
  const lr = step < warm
    ? cfg.learningRate * (step + 1) / warm
    : cfg.learningRate * 0.5 * (1 + Math.cos(Math.PI * (step - warm) / Math.max(1, total - warm)));
  const sigma = cfg.sigmaMax * (cfg.sigmaMin / cfg.sigmaMax) ** (step / Math.max(1, total - 1));
  const r = await run.step(step, { sigma, lr, opt } as never);
  const d = await r.stats.data();
  acc += d[4];
  seen += r.count;
  r.stats.dispose();
  for (const p of r.plans) {
    const plan = hostPlan(p.plan, "diag");
    dropped += plan.dropped;
    routedChoices += plan.N * plan.k;
    maxLoad = Math.max(maxLoad, Math.max(...plan.demand));
  }
  if ((step + 1) % every === 0 || step === 0) {
    console.log(
      `step ${step + 1}: train acc ${(acc / seen).toFixed(3)} drop ${
        (dropped / routedChoices).toFixed(3)
      } max demand/batch ${maxLoad}`,
    );
    dropped =
      routedChoices =
      maxLoad =
      acc =
      seen =
        0;
  }
}
// Evaluation routing on the test set vs the training-time plan.
const n = 2000;
// A fixed shuffle, as the task's evaluation (the test set is stored by class).
const order = new Rng(20250413).permutation(data.testLabels.length);
const E = cfg.experts;
let offsetStd = 0, tokenStd = 0, selfW = 0, maxW = 0, hubs = 0;
let correct = 0, correctTrainRouting = 0, drops = 0, ties = 0, agreeTrainPlan = 0, gateSum = 0;
const evalLoad = new Array(E).fill(0);
for (let start = 0; start < n; start += cfg.batchSize) {
  const idx = Array.from(order.subarray(start, start + cfg.batchSize));
  const { x, y } = makeBatch(data.testImages, data.testLabels, idx);
  const routed = await model.route(x, false, 0);
  const out = model.forward(x, routed, y, null);
  correct += (await out.correct.data())[0];
  if (a.router !== "topk" && a.router !== "xmoe") {
    // The same batch routed as in training (Sinkhorn plan for sinkhorn; a Sinkhorn or softmax step for ssr).
    const tr = await model.route(x, true, 0, 0);
    const o2 = model.forward(x, tr, y, null);
    correctTrainRouting += (await o2.correct.data())[0];
    tf.dispose([
      o2.loss,
      o2.ce,
      o2.aux,
      o2.reg,
      o2.correct,
      o2.z,
      o2.zLoss,
      o2.gates,
      o2.routerLogits,
    ]);
    disposeRouted(tr);
  }
  const plan = hostPlan(routed.plan, "diag");
  drops += plan.dropped;
  plan.expert.forEach((e) => evalLoad[e]++);
  gateSum += (await out.gates.sum().data())[0];
  const L = await out.routerLogits.data();
  const N = idx.length;
  // Shared per-expert offset of the logits (the same for every token) against the per-token spread.
  {
    const colMean = new Float64Array(E);
    for (let t = 0; t < N; t++) for (let e = 0; e < E; e++) colMean[e] += L[t * E + e] / N;
    const m = colMean.reduce((u, v) => u + v, 0) / E;
    offsetStd += Math.sqrt(colMean.reduce((u, v) => u + (v - m) ** 2, 0) / E) / (n / N);
    let spread = 0;
    for (let t = 0; t < N; t++) {
      let s2 = 0;
      for (let e = 0; e < E; e++) s2 += (L[t * E + e] - colMean[e]) ** 2;
      spread += Math.sqrt(s2 / E) / N;
    }
    tokenStd += spread / (n / N);
  }
  if (a.router === "similarity") {
    // The token graph M = softmax_j(<x_i, x_j>): self-weight, largest weight, distinct argmax columns.
    const xs = await x.data();
    const d = x.shape[1];
    const hub = new Set<number>();
    for (let i = 0; i < N; i++) {
      const sim = new Float64Array(N);
      for (let j = 0; j < N; j++) {
        let s2 = 0;
        for (let c = 0; c < d; c++) s2 += xs[i * d + c] * xs[j * d + c];
        sim[j] = s2;
      }
      const tau = Number(a.tau ?? 1);
      for (let j = 0; j < N; j++) sim[j] /= tau;
      const mx = Math.max(...sim);
      let z = 0;
      for (let j = 0; j < N; j++) z += Math.exp(sim[j] - mx);
      selfW += Math.exp(sim[i] - mx) / z / n;
      maxW += 1 / z / n;
      hub.add(sim.indexOf(mx));
    }
    hubs += hub.size / (n / N);
  }
  if (a.router === "sinkhorn" || a.router === "ssr") {
    const { pi } = sinkhornPlan(L, N, E);
    for (let t = 0; t < N; t++) {
      let best = 0, bestL = 0, satur = 0;
      for (let e = 0; e < E; e++) {
        if (pi[t * E + e] > pi[t * E + best]) best = e;
        if (L[t * E + e] > L[t * E + bestL]) bestL = e;
        if (Math.fround(1 / (1 + Math.exp(-L[t * E + e]))) === 1) satur++;
      }
      if (best === plan.expert[t]) agreeTrainPlan++;
      if (satur > 1) ties++;
    }
  }
  tf.dispose([
    x,
    y,
    out.loss,
    out.ce,
    out.aux,
    out.reg,
    out.correct,
    out.z,
    out.zLoss,
    out.gates,
    out.routerLogits,
  ]);
  disposeRouted(routed);
}
const nz = evalLoad.filter((v) => v > 0).length;
console.log(
  `eval (${n} test images): acc ${(correct / n).toFixed(3)} drop ${
    (drops / n).toFixed(3)
  } mean gate ${(gateSum / n).toFixed(3)} experts used ${nz} max load ${
    Math.max(...evalLoad)
  }; acc with training-mode routing ${(correctTrainRouting / n).toFixed(3)}` +
    (a.router === "sinkhorn" || a.router === "ssr"
      ? ` | agree with train-time Sinkhorn plan ${
        (agreeTrainPlan / n).toFixed(3)
      }; tokens with >1 saturated sigmoid ${(ties / n).toFixed(3)}`
      : ""),
);
console.log(
  `logits: std over experts of the batch-mean logit ${
    offsetStd.toFixed(2)
  }; per-token std after removing it ${tokenStd.toFixed(2)}` +
    (a.router === "similarity"
      ? ` | graph M (τ ${a.tau ?? 1}): mean self-weight ${selfW.toFixed(3)}, mean largest weight ${
        maxW.toFixed(3)
      }, distinct argmax columns per batch ${hubs.toFixed(1)}`
      : ""),
);
console.log(`tensors ${tf.memory().numTensors}`);
