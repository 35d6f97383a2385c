/**
 * `deno task train`: trains the paper's Fashion-MNIST MoE / MoGE model.
 *
 * @module
 */

import { describeBackend, useBackend } from "../backend.ts";
import { backendMemoryLimit, checkMemory, estimateMemory } from "../train/memory.ts";
import {
  CHOICES,
  DEFAULT_CONFIG,
  PRESETS,
  type TrainConfig,
  validateConfig,
} from "../train/classifier_config.ts";
import { type Dataset, loadDataset, loadFixture } from "../data/images.ts";
import { topographicLayout } from "../moge/layout.ts";
import { train } from "../train/classifier_task.ts";
import { type FlagSpec, numberFlag, parseFlags, runMain, UsageError } from "./args.ts";
import { bar, formatDuration, interruptOnSigint, ProgressLine } from "./progress.ts";
// --- language models (`--model lm`, issue 7): see ./train_lm.ts ---
import { lmMain, modelFlag } from "./train_lm.ts";
// --- end language models ---
// --- vision transformer (`--model vit`, issue 6): see ./train_vit.ts ---
import { vitMain } from "./train_vit.ts";
// --- end vision transformer ---

/** Flag name -> config field, kind and help text. */
const FLAGS: [flag: string, field: keyof TrainConfig, help: string][] = [
  ["mode", "mode", `moe | moge`],
  ["dataset", "dataset", `fashion-mnist | mnist | fixture (the small committed subset)`],
  ["experts", "experts", `E, number of experts (MoGE needs a layout with both sides >= h)`],
  ["top-k", "topK", `k, experts per image`],
  ["hidden", "hiddenDim", `d_ff, expert hidden width (784 -> d_ff -> 784)`],
  ["activation", "activation", `gelu | relu | tanh`],
  ["capacity-factor", "capacityFactor", `C_f, expert capacity factor (0: unlimited)`],
  ["load-balance", "loadBalanceWeight", `load-balancing loss weight`],
  ["lambda", "lambda", `λ, weight of the batch mean of R(z) (MoGE only)`],
  ["sigma-max", "sigmaMax", `σ_max of the σ schedule (eq. 8)`],
  ["sigma-min", "sigmaMin", `σ_min of the σ schedule`],
  ["gamma", "gamma", `γ of the σ schedule`],
  ["filter", "filter", `gaussian | average`],
  ["filter-size", "filterSize", `h, filter size`],
  ["epochs", "epochs", `training epochs`],
  ["batch-size", "batchSize", `images per batch`],
  ["lr", "learningRate", `AdamW peak learning rate (cosine schedule)`],
  ["weight-decay", "weightDecay", `AdamW decoupled weight decay`],
  ["warmup-epochs", "warmupEpochs", `linear warm-up length, in epochs`],
  ["train-limit", "trainLimit", `train on a fixed class-mixed subset of n images (0: all)`],
  ["seed", "seed", `seed for weights, shuffling and routing noise`],
  ["backend", "backend", `auto | webgpu | wasm | cpu (auto: webgpu on a hardware GPU, else wasm)`],
];

function help(): string {
  const rows = FLAGS.map(([flag, field, text]) =>
    `  --${flag.padEnd(16)} ${text} [default ${JSON.stringify(DEFAULT_CONFIG[field])}]`
  );
  const paper = Object.entries(PRESETS.paper).map(([k, v]) => `${k}=${v}`).join(", ");
  return `Trains the MoGE paper's Fashion-MNIST model (Sec. 2.4): one MoE layer of E experts
(784 -> d_ff -> 784 each) and a linear 784 -> 10 classifier, as MoE or MoGE.

Usage: deno task train [flags]

With no flags: MoGE, E = 64, 3 epochs on the full 60,000-image training set
(a few minutes on 2 CPU cores with the wasm backend).

  --model lm           the language models (SMoE / MomentumSMoE / AdamSMoE, with or
                       without MoGE): see deno task train --model lm --help
  --model vit          V-MoE / V-MoGE, a Vision Transformer with MoE layers (presets
                       vit-tiny, vmoe-s): flags, defaults and the paper's values in
                       deno task train --model vit --help
  --model classifier   this model (the default)
  --preset NAME        paper | tiny. paper: ${paper}
                       (150 epochs of E = 400: many hours without a GPU). tiny: fixture data, seconds.
  --out DIR            run directory [default runs/<mode>-E<E>-s<seed>]
  --resume             continue the run in --out from its last checkpoint
  --quiet              no progress line
  -h, --help           this text
${rows.join("\n")}

Writes into the run directory: config.json, metrics.jsonl (one line per epoch),
checkpoint/ (every epoch and on Ctrl-C, written atomically) and summary.json.
Invalid values exit with status 2.`;
}

async function main(): Promise<void> {
  // --- language models (`--model lm`, issue 7) ---
  if (modelFlag(Deno.args) === "lm") return await lmMain(Deno.args);
  // --- end language models ---
  // --- vision transformer (`--model vit`, issue 6) ---
  if (modelFlag(Deno.args) === "vit") return await vitMain(Deno.args);
  // --- end vision transformer ---
  const spec: Record<string, FlagSpec> = {
    help: { type: "boolean", short: "h" },
    model: { type: "string" }, // `--model lm` is handled above
    preset: { type: "string" },
    out: { type: "string" },
    resume: { type: "boolean" },
    quiet: { type: "boolean" },
  };
  for (const [flag] of FLAGS) spec[flag] = { type: "string" };
  const flags = parseFlags(Deno.args, spec);
  if (typeof flags.model === "string" && flags.model !== "classifier") {
    throw new UsageError(
      `--model ${flags.model} is unknown: allowed are classifier (the default), lm, vit`,
    );
  }
  if (flags.help) {
    console.log(help());
    return;
  }
  let cfg: TrainConfig = { ...DEFAULT_CONFIG };
  if (typeof flags.preset === "string") {
    const preset = PRESETS[flags.preset];
    if (!preset) {
      throw new UsageError(
        `--preset ${flags.preset} is unknown: allowed are ${Object.keys(PRESETS).join(", ")}`,
      );
    }
    cfg = { ...cfg, ...preset };
  }
  for (const [flag, field] of FLAGS) {
    const v = flags[flag];
    if (typeof v !== "string") continue;
    const isChoice = field in CHOICES;
    (cfg as unknown as Record<string, unknown>)[field] = isChoice ? v : numberFlag(flag, v);
  }
  try {
    validateConfig(cfg);
  } catch (e) {
    // Name the flag rather than the config field.
    const msg = (e as Error).message;
    const hit = FLAGS.find(([, field]) => msg.startsWith(field + " "));
    throw new UsageError(hit ? `--${hit[0]}: ${msg}` : msg);
  }
  if (cfg.mode === "moge") {
    try {
      topographicLayout(cfg.experts, cfg.filterSize);
    } catch (e) {
      throw new UsageError(`--experts: ${(e as Error).message}`);
    }
  }
  const outDir = typeof flags.out === "string"
    ? flags.out
    : `runs/${cfg.mode}-E${cfg.experts}-s${cfg.seed}`;
  if (flags.resume) {
    if (typeof flags.out !== "string") {
      throw new UsageError("--resume needs --out DIR (the run to continue)");
    }
    // The run's own config wins: resuming continues exactly the run that was started.
    try {
      const saved = JSON.parse(await Deno.readTextFile(`${outDir}/config.json`));
      delete saved.backendInfo;
      cfg = saved as TrainConfig;
      validateConfig(cfg);
    } catch (e) {
      throw new UsageError(`--resume: cannot read ${outDir}/config.json (${(e as Error).message})`);
    }
  }
  const quiet = Boolean(flags.quiet);
  const backend = await useBackend(cfg.backend);
  console.log(`backend: ${describeBackend(backend)}`);
  // Refuse a run that cannot fit the backend's memory before any data loads.
  checkMemory(
    estimateMemory("classifier", cfg, backend.backend),
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
  console.log(
    `model: ${cfg.mode.toUpperCase()}, E = ${cfg.experts}, top-${cfg.topK}, d_ff = ${cfg.hiddenDim}` +
      (cfg.mode === "moge"
        ? `, λ = ${cfg.lambda}, σ ${cfg.sigmaMax} -> ${cfg.sigmaMin} (γ ${cfg.gamma}), ${cfg.filterSize}x${cfg.filterSize} ${cfg.filter}`
        : ""),
  );
  const interrupt = interruptOnSigint();
  const line = new ProgressLine();
  const summary = await train(cfg, {
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
          ` ${p.stepsPerSecond.toFixed(1)} step/s ETA ${formatDuration(p.etaSeconds)}`,
      ),
    onEpoch: (m) => {
      line.done();
      console.log(
        `epoch ${m.epoch}: train loss ${m.trainLoss.toFixed(4)} acc ${
          (100 * m.trainAcc).toFixed(2)
        }%` +
          ` | test acc ${(100 * m.testAcc).toFixed(2)}% | R(z) ${m.testReg.toFixed(4)} σ ${
            m.sigma.toFixed(2)
          }` +
          ` | dead experts ${m.deadExperts}/${cfg.experts}, dropped ${
            (100 * m.dropRate).toFixed(2)
          }%` +
          ` | ${m.seconds.toFixed(1)} s`,
      );
    },
  });
  interrupt.release();
  line.done();
  if (!summary.completed) {
    console.log(
      `stopped at step ${summary.steps}; checkpoint saved. Continue with: deno task train --out ${outDir} --resume`,
    );
    Deno.exit(130);
  }
  console.log(
    `done: test accuracy ${(100 * summary.testAcc).toFixed(2)}%, mean R(z) on test ${
      summary.testReg.toFixed(4)
    },` +
      ` ${formatDuration(summary.trainSeconds)} of training on ${describeBackend(backend)}`,
  );
  console.log(`files: ${outDir}/{config.json,metrics.jsonl,summary.json,checkpoint/}`);
}

if (import.meta.main) await runMain(main, "deno task train");
