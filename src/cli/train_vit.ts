/**
 * `deno task train --model vit`: trains V-MoE / V-MoGE, a small Vision
 * Transformer with MoE layers, on Fashion-MNIST or MNIST (issue 6).
 *
 * @module
 */

import { describeBackend, useBackend } from "../backend.ts";
import { backendMemoryLimit, checkMemory, estimateMemory } from "../train/memory.ts";
import { type Dataset, loadDataset, loadFixture } from "../data/images.ts";
import {
  DEFAULT_VIT_CONFIG,
  parseMoeBlocks,
  trainVit,
  validateVitTrainConfig,
  VIT_CHOICES,
  VIT_PAPER_VALUES,
  VIT_PRESETS,
  type VitTrainConfig,
} from "../train/vit_task.ts";
import { type FlagSpec, numberFlag, parseFlags, UsageError } from "./args.ts";
import { bar, formatDuration, interruptOnSigint, ProgressLine } from "./progress.ts";

/** Flag name -> config field and help text. */
const VIT_FLAGS: [flag: string, field: keyof VitTrainConfig, help: string][] = [
  ["mode", "mode", "moe | moge"],
  [
    "dataset",
    "dataset",
    "fashion-mnist | mnist | fixture (the small committed Fashion-MNIST subset)",
  ],
  [
    "image-size",
    "imageSize",
    "model input side; 28x28 images are centred on a zero canvas this size",
  ],
  ["patch", "patchSize", "patch side p (divides the image size): (size/p)² patch tokens"],
  ["embed", "embedDim", "token width d"],
  ["depth", "depth", "transformer blocks"],
  ["heads", "numHeads", "attention heads (divide d)"],
  ["mlp", "mlpDim", "MLP and expert hidden width (d -> mlp -> d)"],
  ["pool", "pool", "cls (class token) | mean (mean of the patch tokens)"],
  [
    "moe-blocks",
    "moeBlocks",
    "lastN: MoE in the last N even-numbered blocks (1-based; 0-based 1, 3, ...) | none | 0-based list 1,3",
  ],
  ["experts", "experts", "E per MoE layer (MoGE needs a layout with both sides >= h)"],
  ["top-k", "topK", "k, experts per token"],
  ["capacity-factor", "capacityFactor", "C_f, expert capacity factor (0: unlimited)"],
  ["load-balance", "loadBalanceWeight", "load-balancing loss weight, per MoE layer"],
  ["lambda", "lambda", "λ, weight of each MoE layer's batch mean of R(z) (MoGE only)"],
  ["sigma-max", "sigmaMax", "σ_max of the σ schedule (eq. 8)"],
  ["sigma-min", "sigmaMin", "σ_min"],
  ["gamma", "gamma", "γ of the σ schedule"],
  ["filter", "filter", "gaussian | average"],
  ["filter-size", "filterSize", "h, filter size"],
  ["dropout", "dropout", "dropout rate (embeddings, MLP, attention output)"],
  ["attention-dropout", "attentionDropout", "dropout rate on the attention weights"],
  [
    "drop-path",
    "dropPath",
    "stochastic depth: drop-path rate of the last block (0 in block 0, linear)",
  ],
  ["label-smoothing", "labelSmoothing", "label smoothing ε of the cross-entropy"],
  ["crop-padding", "cropPadding", "random crop after zero padding by this many pixels (0: off)"],
  ["flip-prob", "flipProb", "horizontal flip probability (0: off; wrong for digits)"],
  ["epochs", "epochs", "training epochs"],
  ["batch-size", "batchSize", "images per batch"],
  ["lr", "learningRate", "AdamW peak learning rate (linear warm-up, then cosine to 0)"],
  ["weight-decay", "weightDecay", "AdamW decoupled weight decay (not on biases, norms, pos, cls)"],
  ["warmup-epochs", "warmupEpochs", "linear warm-up length, in epochs"],
  ["train-limit", "trainLimit", "train on a fixed class-mixed subset of n images (0: all)"],
  ["test-limit", "testLimit", "evaluate on a fixed class-mixed subset of n test images (0: all)"],
  ["seed", "seed", "seed for weights, shuffling, augmentation, dropout and routing noise"],
  ["backend", "backend", "auto | webgpu | wasm | cpu (auto: webgpu on a hardware GPU, else wasm)"],
  [
    "routing",
    "routing",
    "auto | sync | async: plan MoE routing in the tape (cpu/wasm) or in a pass before it (webgpu)",
  ],
];

/** The help text of `--model vit`. */
export function vitHelp(): string {
  const rows = VIT_FLAGS.map(([flag, field, text]) => {
    const paper = VIT_PAPER_VALUES[field] ? `; paper: ${VIT_PAPER_VALUES[field]}` : "";
    return `  --${flag.padEnd(18)} ${text}\n${" ".repeat(23)}[default ${
      JSON.stringify(DEFAULT_VIT_CONFIG[field])
    }${paper}]`;
  });
  const s = VIT_PRESETS["vmoe-s"];
  return `Trains V-MoE / V-MoGE (MoGE paper, Sec. 3.1 and Appendix B): a Vision Transformer
(patch embedding, learned position embedding, class token, pre-norm blocks with
multi-head self-attention and an MLP) whose MLPs in the chosen blocks are MoE
layers (top-k routing with noise, capacity factor, batch-prioritized routing,
load-balancing loss), as MoE or MoGE (λ·mean R(z) of every MoE layer, summed).

Usage: deno task train --model vit [flags]

  --preset NAME          ${Object.keys(VIT_PRESETS).join(" | ")}.
                         vit-tiny = the defaults below: 28x28, patch 7, d = 64, 4 blocks,
                         E = 32 top-1 in blocks 1 and 3 (minutes per epoch on 2 CPU cores);
                         vmoe-s = the paper's V-MoE-S shape and CIFAR-100 recipe: ${s.imageSize}x${s.imageSize}
                         (Fashion-MNIST padded), patch ${s.patchSize}, d = ${s.embedDim}, ${s.depth} blocks, ${s.numHeads} heads,
                         MLP ${s.mlpDim}, E = ${s.experts} in blocks 5 and 7, ${s.epochs} epochs (needs a GPU);
                         vit-smoke = fixture data, seconds.
  --out DIR              run directory [default runs/vit-<mode>-s<seed>]
  --resume               continue the run in --out from its last checkpoint
  --quiet                no progress line
  -h, --help             this text
${rows.join("\n")}

λ multiplies each MoE layer's batch mean of R(z) over its tokens (all patch
tokens and the class token of the batch), summed over the MoE layers (eq. 9).
The authors' code adds 0.01·λ_paper·Σ_n R(z_n)/(h²·P) (P = 12 windows for
E = 32, h = 3), so λ = 0.01·λ_paper·N/(h²·P) for their N tokens per batch: with
V-MoGE-S on CIFAR-100 (128 images x 65 tokens, if the sum runs over the whole
batch) λ_paper = 4e-3 is λ ≈ 3.1e-3 here; the default takes 4e-3 literally.
In --mode moe the training loss has no R(z); R(z) is still reported on the test set.

Writes into the run directory: config.json, metrics.jsonl (one line per epoch,
with each MoE layer's R(z), L_aux, expert load and drop rate on the training
batches and on the test set), checkpoint/ (every epoch and on Ctrl-C, atomic)
and summary.json. Invalid values exit with status 2.`;
}

/** Runs `deno task train --model vit ARGS` (ARGS may still hold `--model vit`). */
export async function vitMain(args: string[]): Promise<void> {
  const spec: Record<string, FlagSpec> = {
    help: { type: "boolean", short: "h" },
    model: { type: "string" },
    preset: { type: "string" },
    out: { type: "string" },
    resume: { type: "boolean" },
    quiet: { type: "boolean" },
  };
  for (const [flag] of VIT_FLAGS) spec[flag] = { type: "string" };
  const flags = parseFlags(args, spec);
  if (flags.help) {
    console.log(vitHelp());
    return;
  }
  let cfg: VitTrainConfig = { ...DEFAULT_VIT_CONFIG };
  if (typeof flags.preset === "string") {
    const preset = VIT_PRESETS[flags.preset];
    if (!preset) {
      throw new UsageError(
        `--preset ${flags.preset} is unknown for --model vit: allowed are ${
          Object.keys(VIT_PRESETS).join(", ")
        }`,
      );
    }
    cfg = { ...cfg, ...preset };
  }
  for (const [flag, field] of VIT_FLAGS) {
    const v = flags[flag];
    if (typeof v !== "string") continue;
    const isString = field in VIT_CHOICES || field === "moeBlocks";
    (cfg as unknown as Record<string, unknown>)[field] = isString ? v : numberFlag(flag, v);
  }
  const check = (c: VitTrainConfig) => {
    try {
      validateVitTrainConfig(c);
    } catch (e) {
      const msg = (e as Error).message;
      const hit = VIT_FLAGS.find(([, field]) => msg.startsWith(field + " "));
      if (hit) throw new UsageError(`--${hit[0]}: ${msg}`);
      // The topographic layout names E (and h): point at the flags that set them.
      throw new UsageError(msg.startsWith("E = ") ? `--experts / --filter-size: ${msg}` : msg);
    }
  };
  check(cfg);
  const outDir = typeof flags.out === "string" ? flags.out : `runs/vit-${cfg.mode}-s${cfg.seed}`;
  if (flags.resume) {
    if (typeof flags.out !== "string") {
      throw new UsageError("--resume needs --out DIR (the run to continue)");
    }
    try {
      const saved = JSON.parse(await Deno.readTextFile(`${outDir}/config.json`));
      for (const k of ["backendInfo", "moeBlockIndices", "parameters"]) delete saved[k];
      cfg = saved as VitTrainConfig;
    } catch (e) {
      throw new UsageError(`--resume: cannot read ${outDir}/config.json (${(e as Error).message})`);
    }
    check(cfg);
  }
  const quiet = Boolean(flags.quiet);
  const backend = await useBackend(cfg.backend);
  console.log(`backend: ${describeBackend(backend)}`);
  // Refuse a run that cannot fit the backend's memory before any data loads.
  checkMemory(
    estimateMemory("vit", cfg, backend.backend),
    await backendMemoryLimit(backend.backend),
    `this run (E = ${cfg.experts})`,
  );
  const t0 = performance.now();
  const data: Dataset = cfg.dataset === "fixture"
    ? await loadFixture("fashion-mnist")
    : await loadDataset(cfg.dataset, { onProgress: (m: string) => console.log(m) });
  console.log(
    `data: ${cfg.dataset}, ${data.trainLabels.length} train / ${data.testLabels.length} test images` +
      ` (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
  );
  const blocks = parseMoeBlocks(cfg.moeBlocks, cfg.depth);
  const tokens = (cfg.imageSize / cfg.patchSize) ** 2 + (cfg.pool === "cls" ? 1 : 0);
  console.log(
    `model: ViT-${
      cfg.mode === "moge" ? "MoGE" : "MoE"
    }, ${cfg.imageSize}x${cfg.imageSize}, patch ${cfg.patchSize}` +
      ` (${tokens} tokens), d = ${cfg.embedDim}, ${cfg.depth} blocks, ${cfg.numHeads} heads, MLP ${cfg.mlpDim};` +
      ` MoE blocks [${
        blocks.join(", ")
      }] (0-based), E = ${cfg.experts}, top-${cfg.topK}, C_f ${cfg.capacityFactor}` +
      (cfg.mode === "moge"
        ? `; λ = ${cfg.lambda}, σ ${cfg.sigmaMax} -> ${cfg.sigmaMin} (γ ${cfg.gamma}), ${cfg.filterSize}x${cfg.filterSize} ${cfg.filter}`
        : ""),
  );
  const interrupt = interruptOnSigint();
  const line = new ProgressLine();
  const summary = await trainVit(cfg, {
    outDir,
    resume: Boolean(flags.resume),
    data,
    backendInfo: backend,
    signal: interrupt.signal,
    onProgress: quiet ? undefined : (p) =>
      line.update(
        `epoch ${p.epoch}/${p.epochs} ${
          bar(p.step / p.totalSteps)
        } step ${p.step}/${p.totalSteps}` +
          ` loss ${p.loss.toFixed(4)} acc ${(100 * p.acc).toFixed(1)}%` +
          ` ${p.stepsPerSecond.toFixed(2)} step/s ETA ${formatDuration(p.etaSeconds)}`,
      ),
    onEpoch: (m) => {
      line.done();
      console.log(
        `epoch ${m.epoch}: train loss ${m.trainLoss.toFixed(4)} acc ${
          (100 * m.trainAcc).toFixed(2)
        }%` +
          ` | test acc ${(100 * m.testAcc).toFixed(2)}% ce ${m.testCe.toFixed(4)} | σ ${
            m.sigma.toFixed(2)
          }` +
          ` | ${m.seconds.toFixed(1)} s (${(1000 * m.meanStepSeconds).toFixed(0)} ms/step)`,
      );
      m.testMoe.forEach((t, l) => {
        const tr = m.trainMoe[l];
        console.log(
          `  block ${t.block}: R(z) train ${tr.reg === null ? "-" : tr.reg.toFixed(4)} test ${
            (t.reg ?? NaN).toFixed(4)
          } | L_aux ${tr.aux.toFixed(4)} | dead experts ${tr.deadExperts}/${cfg.experts}` +
            ` | dropped ${(100 * tr.dropRate).toFixed(2)}% train, ${
              (100 * t.dropRate).toFixed(2)
            }% test` +
            ` | max load ${Math.max(...tr.load)}, min ${Math.min(...tr.load)}`,
        );
      });
    },
  });
  interrupt.release();
  line.done();
  if (!summary.completed) {
    console.log(
      `stopped at step ${summary.steps}; checkpoint saved. Continue with:` +
        ` deno task train --model vit --out ${outDir} --resume`,
    );
    Deno.exit(130);
  }
  console.log(
    `done: test accuracy ${
      (100 * summary.testAcc).toFixed(2)
    }%, ${summary.parameters} parameters,` +
      ` ${formatDuration(summary.trainSeconds)} of training (${
        (1000 * summary.meanStepSeconds).toFixed(0)
      } ms/step)` +
      ` on ${describeBackend(backend)}`,
  );
  console.log(`files: ${outDir}/{config.json,metrics.jsonl,summary.json,checkpoint/}`);
}
