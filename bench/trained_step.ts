/**
 * `deno run -A bench/trained_step.ts RUN_DIR [rounds]`: the classifier's
 * training step with a trained run's weights against the same step with
 * fresh weights, on the same Fashion-MNIST batches, alternated step by step
 * in one process (`alternate.ts`).
 *
 * The other step benchmarks start from fresh weights, where top-1 routing
 * sends most of a batch to a few experts and capacity drops the rest; a
 * trained router spreads the batch over many more experts, and the experts'
 * work grows with the number of experts a step uses. RUN_DIR is a
 * `deno task train` run of the classifier (its `config.json` and
 * `checkpoint/`). Both models are built from the run's config as training
 * builds them (`buildModel`), the trained one then given the checkpoint's
 * weights; σ at σ_min, learning rate 0, so that every step does the same work. Prints
 * median [quartiles] ms per step and, per model, the mean number of experts
 * that receive a token and of tokens kept (not dropped) per step.
 *
 * `deno run -A --cpu-prof bench/trained_step.ts RUN_DIR 30 trained` times
 * the trained model alone, for a CPU profile of its step.
 *
 * @module
 */

import { tf } from "../src/deps.ts";
import { useBackend } from "../src/backend.ts";
import { loadDataset } from "../src/data/image_sources.ts";
import { batches as batchIndices, makeBatch } from "../src/data/image_batches.ts";
import { Rng } from "../src/rng.ts";
import { loadCheckpoint, restoreVariables } from "../src/train/checkpoint.ts";
import { buildModel, trainStep } from "../src/train/classifier_task.ts";
import { regularizerSettings } from "../src/train/moge_settings.ts";
import { AdamW } from "../src/train/optim.ts";
import type { TrainConfig } from "../src/train/classifier_config.ts";
import { alternateTimes } from "./alternate.ts";

const [runDir, roundsArg, only] = Deno.args;
if (!runDir) {
  console.error("usage: deno run -A bench/trained_step.ts RUN_DIR [rounds] [trained]");
  Deno.exit(2);
}
const rounds = Number(roundsArg ?? 20);
const cfg = JSON.parse(await Deno.readTextFile(`${runDir}/config.json`)) as TrainConfig;
await useBackend("wasm");
const loadStart = Deno.loadavg();
if (cfg.dataset === "fixture") {
  throw new Error(`${runDir}: a run on the fixture; use one on fashion-mnist or mnist`);
}
const ds = await loadDataset(cfg.dataset);
// Shuffled batches, as training draws them (the file's first images route
// very unlike a shuffled batch: 18 experts used against 74 for one run).
const batches = batchIndices(ds, "train", cfg.batchSize, new Rng(11)).slice(0, 8)
  .map((idx) => makeBatch(ds.trainImages, ds.trainLabels, idx));
/** A model of the run's config with its own optimizer (learning rate 0 below). */
const make = () => ({
  model: buildModel(cfg, ds),
  opt: new AdamW({ learningRate: cfg.learningRate, weightDecay: cfg.weightDecay }),
});
type BenchModel = ReturnType<typeof make>;
const fresh = make(), trained = make();
restoreVariables(await loadCheckpoint(`${runDir}/checkpoint`), trained.model.params);
const reg = cfg.mode === "moge" ? regularizerSettings(cfg, cfg.sigmaMin) : null;

/** Experts used and tokens kept per step, summed. */
const routed = new Map<BenchModel, { experts: number; kept: number; steps: number }>();
const stepOf = (m: BenchModel) => {
  let i = 0;
  routed.set(m, { experts: 0, kept: 0, steps: 0 });
  return async () => {
    const s = i++;
    const b = batches[s % batches.length];
    const { stats, routing } = trainStep(m.model, m.opt, b.x, b.y, {
      noiseSeed: s + 1,
      step: s,
      reg,
      lr: 0,
    });
    await stats.data();
    stats.dispose();
    const load = routing.plan.load;
    if (load) {
      const r = routed.get(m)!;
      r.experts += load.filter((v) => v > 0).length;
      r.kept += load.reduce((p, v) => p + v, 0);
      r.steps++;
    }
  };
};
const q = (a: number[], p: number) =>
  a.slice().sort((x, y) => x - y)[Math.floor(p * (a.length - 1))];
const fmt = (a: number[], d = 1) =>
  `${q(a, 0.5).toFixed(d)} [${q(a, 0.25).toFixed(d)}, ${q(a, 0.75).toFixed(d)}]`;
const variants: Record<string, () => Promise<void>> = { trained: stepOf(trained) };
if (only !== "trained") variants.fresh = stepOf(fresh);
const t = await alternateTimes(variants, rounds, 3);
console.log(`${runDir}: ${cfg.mode}, E = ${cfg.experts}, batch ${cfg.batchSize}, wasm`);
for (const [name, m] of [["trained", trained], ["fresh", fresh]] as const) {
  if (!t[name]) continue;
  const r = routed.get(m)!;
  console.log(
    `${name}: ${fmt(t[name])} ms per step; per step ${(r.experts / r.steps).toFixed(1)} experts` +
      ` used, ${(r.kept / r.steps).toFixed(1)} of ${cfg.batchSize} tokens kept`,
  );
}
if (t.fresh) console.log(`trained / fresh: ${fmt(t.trained.map((v, r) => v / t.fresh[r]), 2)}`);
console.log(`load average at start ${loadStart.join(", ")}, at end ${Deno.loadavg().join(", ")}`);
for (const m of [fresh, trained]) {
  m.model.dispose();
  m.opt.dispose();
}
tf.dispose(batches.flatMap((b) => [b.x, b.y]));
