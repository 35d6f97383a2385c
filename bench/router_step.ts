/**
 * `deno task bench:routers`: the training-step time of every router, in MoE
 * and MoGE mode, on wasm, measured so that the routers can be compared: all
 * steppers are built first, then stepped round-robin in one process (warm-up
 * steps of each, then rounds of one timed step each, in a fresh order every
 * round, seeded), so that a change of machine load hits every router alike. The
 * load average is recorded before and after, and `tf.memory().numTensors`
 * after every round (it must stay flat).
 *
 * - classifier: the `deno task train` defaults (E = 64, top-1, d_ff 64,
 *   batch 200, C_f 4, routing noise 1/E) with routers topk, expert-choice,
 *   sinkhorn, ssr, xmoe, similarity; one fixed batch of 200 Fashion-MNIST
 *   training images (`--data random`: random pixels).
 * - lm: the `lm-small` defaults (3 layers, d 128, E = 16, k = 2, batch
 *   16 x 64) with routers topk, sinkhorn, ssr, xmoe, similarity, attention,
 *   on fixed random windows.
 *
 * Every step is a full training step of the task code (forward, backward,
 * AdamW) at learning rate 0, so the weights, and with them the routing,
 * stay put. MoE mode is what `deno task train --mode moe` runs: the
 * classifier computes no R(z), the LM computes it with λ = 0 (it logs it).
 * ssr runs its Sinkhorn step on about 1 step in 10 (drawn per step number),
 * so its step times are bimodal: the median is the plain step, the mean
 * includes the Sinkhorn steps.
 *
 * Writes `bench/results/<date>-router-step-wasm.{json,md}` and prints the
 * table.
 *
 * @module
 */

import { tf } from "../src/deps.ts";
import { describeBackend, useBackend } from "../src/backend.ts";
import { writeFileAtomic, writeJsonAtomic } from "../src/atomic.ts";
import { numberFlag, parseFlags, runMain, UsageError } from "../src/cli/args.ts";
import { installFastWasmKernels } from "../src/ops/wasm_kernels.ts";
import type { RouterName } from "../src/moe/routers/mod.ts";
import { DEFAULT_CONFIG } from "../src/train/classifier_config.ts";
import { DEFAULT_LM_CONFIG } from "../src/train/lm_task.ts";
import { BENCH, benchModel } from "./setup.ts";
import { classifierBatch, quantile } from "./step.ts";
import { lmStepper } from "./model_overhead.ts";
import { Rng } from "../src/rng.ts";

/** The routers timed on each model. */
export const ROUTERS_BY_MODEL: Record<"classifier" | "lm", readonly RouterName[]> = {
  classifier: ["topk", "expert-choice", "sinkhorn", "ssr", "xmoe", "similarity"],
  lm: ["topk", "sinkhorn", "ssr", "xmoe", "similarity", "attention"],
};

/** One router × model × mode. */
export interface RouterStepCase {
  model: "classifier" | "lm";
  router: RouterName;
  mode: "moe" | "moge";
  experts: number;
  medianMs: number;
  q1Ms: number;
  q3Ms: number;
  meanMs: number;
  minMs: number;
  maxMs: number;
  /**
   * Median and quartiles over the rounds of this step's time over the same
   * round's step of topk (same model, same mode): less sensitive to load
   * drift than the medians themselves.
   */
  vsTopkMedian: number;
  vsTopkQ1: number;
  vsTopkQ3: number;
  /** Every timed step, in round order (ms). */
  timesMs: number[];
}

/** The report file. */
export interface RouterStepReport {
  date: string;
  backend: string;
  wasmThreads: number | null;
  command: string;
  rounds: number;
  warmup: number;
  /** The classifier's batch: "fashion-mnist" or "random". */
  data: string;
  /** `Deno.loadavg()` before building the steppers and after the last round. */
  loadAverageBefore: number[];
  loadAverageAfter: number[];
  /** Seconds from the first warm-up step to the end of the last round. */
  wallSeconds: number;
  /** `tf.memory().numTensors` after the warm-up and after each round. */
  numTensorsAfterWarmup: number;
  numTensorsPerRound: number[];
  /** `tf.memory().numTensors` before building the steppers and after disposing them. */
  numTensorsBefore: number;
  numTensorsAfterDispose: number;
  cases: RouterStepCase[];
}

interface Entry {
  model: "classifier" | "lm";
  router: RouterName;
  mode: "moe" | "moge";
  experts: number;
  step: (i: number) => Promise<void>;
  dispose: () => void;
  times: number[];
}

function markdown(rep: RouterStepReport): string {
  const f = (v: number) => v.toFixed(1);
  const la = (v: number[]) => v.map((x) => x.toFixed(2)).join(", ");
  const lines = [
    `# Training step per router, ${rep.backend} (${rep.date})`,
    "",
    `wasm threads: ${rep.wasmThreads ?? "n/a"}; ${rep.warmup} warm-up steps each, then ` +
    `${rep.rounds} round-robin rounds of 1 timed step per stepper (order shuffled each round, seeded); ` +
    `${rep.wallSeconds.toFixed(0)} s. Load average (1, 5, 15 min) before ${
      la(rep.loadAverageBefore)
    }, after ${la(rep.loadAverageAfter)}; experiment sweeps at nice 10 shared the 2 cores.`,
    "",
    `Classifier: \`deno task train\` defaults (E = ${DEFAULT_CONFIG.experts}, top-${DEFAULT_CONFIG.topK},` +
    ` d_ff ${DEFAULT_CONFIG.hiddenDim}, batch ${BENCH.batch}, C_f ${DEFAULT_CONFIG.capacityFactor}), ` +
    `${rep.data} batch. LM: lm-small (E = ${DEFAULT_LM_CONFIG.experts}, k = ${DEFAULT_LM_CONFIG.topK},` +
    ` ${DEFAULT_LM_CONFIG.layers} layers, batch ${DEFAULT_LM_CONFIG.batchSize} x ` +
    `${DEFAULT_LM_CONFIG.contextLength}), random windows. Learning rate 0. ssr: about 1 step in 10 ` +
    "runs Sinkhorn, so its mean exceeds its median. x topk: per round, the step time over the" +
    " same round's topk step (same model and mode); median and quartiles over the rounds.",
    "",
    `numTensors after warm-up ${rep.numTensorsAfterWarmup}, after each round ${
      Math.min(...rep.numTensorsPerRound)
    }..${Math.max(...rep.numTensorsPerRound)}; before ${rep.numTensorsBefore}, after disposing ` +
    `${rep.numTensorsAfterDispose}.`,
    "",
    `Command: \`${rep.command}\``,
    "",
    "| model | router | mode | E | median ms | [q1, q3] ms | mean ms | min..max ms | x topk [q1, q3] |",
    "|---|---|---|---|---|---|---|---|---|",
  ];
  for (const c of rep.cases) {
    lines.push(
      `| ${c.model} | ${c.router} | ${c.mode} | ${c.experts} | ${f(c.medianMs)} | [${f(c.q1Ms)}, ${
        f(c.q3Ms)
      }] | ${f(c.meanMs)} | ${f(c.minMs)}..${f(c.maxMs)} | ${c.vsTopkMedian.toFixed(2)} [${
        c.vsTopkQ1.toFixed(2)
      }, ${c.vsTopkQ3.toFixed(2)}] |`,
    );
  }
  return lines.join("\n") + "\n";
}

const HELP = `deno task bench:routers [--rounds 30] [--warmup 3] [--models classifier,lm]
  [--data fashion-mnist|random] [--out bench/results]

Median (and quartiles) of the training-step time of every router, MoE and MoGE, on wasm:
  classifier (train defaults, E = 64): ${ROUTERS_BY_MODEL.classifier.join(", ")}
  lm (lm-small defaults, E = 16):      ${ROUTERS_BY_MODEL.lm.join(", ")}
All steppers are built first, then --warmup steps each, then --rounds rounds of one timed
step per stepper, in a seeded shuffled order each round, in one process. Writes <out>/<date>-router-step-wasm.{json,md}.`;

async function main(): Promise<void> {
  const flags = parseFlags(Deno.args, {
    rounds: { type: "string" },
    warmup: { type: "string" },
    models: { type: "string" },
    data: { type: "string" },
    out: { type: "string" },
    help: { type: "boolean" },
  });
  if (flags.help) {
    console.log(HELP);
    return;
  }
  const rounds = numberFlag("rounds", (flags.rounds as string | undefined) ?? "30");
  const warmup = numberFlag("warmup", (flags.warmup as string | undefined) ?? "3");
  if (!Number.isInteger(rounds) || rounds < 1) {
    throw new UsageError(`--rounds ${rounds} is not allowed: use an integer >= 1`);
  }
  if (!Number.isInteger(warmup) || warmup < 0) {
    throw new UsageError(`--warmup ${warmup} is not allowed: use an integer >= 0`);
  }
  const models = ((flags.models as string | undefined) ?? "classifier,lm").split(",");
  for (const m of models) {
    if (m !== "classifier" && m !== "lm") {
      throw new UsageError(`--models: "${m}" is not a model: use classifier, lm`);
    }
  }
  const data = (flags.data as string | undefined) ?? "fashion-mnist";
  if (!["fashion-mnist", "random"].includes(data)) {
    throw new UsageError(`--data ${data} is not allowed: use fashion-mnist or random`);
  }
  const outDir = (flags.out as string | undefined) ??
    new URL("./results/", import.meta.url).pathname;

  const loadAverageBefore = Deno.loadavg();
  const info = await useBackend("wasm");
  installFastWasmKernels();
  const wasm = tf.backend() as unknown as { wasm?: { tfjs?: { getThreadsCount?: () => number } } };
  const numTensorsBefore = tf.memory().numTensors;

  // Build every stepper first.
  const entries: Entry[] = [];
  const batch = models.includes("classifier") ? await classifierBatch(data) : null;
  try {
    if (batch) {
      for (const router of ROUTERS_BY_MODEL.classifier) {
        for (const mode of ["moe", "moge"] as const) {
          const m = benchModel(mode, DEFAULT_CONFIG.experts, DEFAULT_CONFIG.hiddenDim, batch, {
            topK: DEFAULT_CONFIG.topK,
            capacityFactor: DEFAULT_CONFIG.capacityFactor,
            loadBalanceWeight: DEFAULT_CONFIG.loadBalanceWeight,
            activation: DEFAULT_CONFIG.activation,
            noiseStd: DEFAULT_CONFIG.noiseScale / DEFAULT_CONFIG.experts,
            router,
          });
          entries.push({
            model: "classifier",
            router,
            mode,
            experts: DEFAULT_CONFIG.experts,
            step: () => m.step(),
            dispose: () => m.dispose(),
            times: [],
          });
        }
      }
    }
    if (models.includes("lm")) {
      for (const router of ROUTERS_BY_MODEL.lm) {
        for (const mode of ["moe", "moge"] as const) {
          const s = lmStepper(true, { mode, router });
          entries.push({
            model: "lm",
            router,
            mode,
            experts: DEFAULT_LM_CONFIG.experts,
            step: s.step,
            dispose: s.dispose,
            times: [],
          });
        }
      }
    }

    const t0 = performance.now();
    let i = 0;
    for (let w = 0; w < warmup; w++, i++) {
      for (const e of entries) await e.step(i);
    }
    const numTensorsAfterWarmup = tf.memory().numTensors;
    const numTensorsPerRound: number[] = [];
    // A fresh seeded order every round: no stepper always follows the same
    // one (an LM step leaves garbage that the next step may pay for).
    const orderRng = new Rng(17);
    for (let r = 0; r < rounds; r++, i++) {
      for (const k of orderRng.permutation(entries.length)) {
        const e = entries[k];
        const s0 = performance.now();
        await e.step(i);
        e.times.push(performance.now() - s0);
      }
      numTensorsPerRound.push(tf.memory().numTensors);
      console.error(`round ${r + 1}/${rounds}: numTensors ${tf.memory().numTensors}`);
    }
    const wallSeconds = (performance.now() - t0) / 1000;
    const loadAverageAfter = Deno.loadavg();

    const cases: RouterStepCase[] = entries.map((e) => {
      const s = [...e.times].sort((a, b) => a - b);
      const topk = entries.find((t) =>
        t.model === e.model && t.mode === e.mode && t.router === "topk"
      )!;
      const ratios = e.times.map((v, r) => v / topk.times[r]).sort((a, b) => a - b);
      return {
        model: e.model,
        router: e.router,
        mode: e.mode,
        experts: e.experts,
        medianMs: quantile(s, 0.5),
        q1Ms: quantile(s, 0.25),
        q3Ms: quantile(s, 0.75),
        meanMs: s.reduce((p, v) => p + v, 0) / s.length,
        minMs: s[0],
        maxMs: s[s.length - 1],
        vsTopkMedian: quantile(ratios, 0.5),
        vsTopkQ1: quantile(ratios, 0.25),
        vsTopkQ3: quantile(ratios, 0.75),
        timesMs: e.times.map((v) => Math.round(v * 100) / 100),
      };
    });
    for (const e of entries.splice(0)) e.dispose();
    if (batch) tf.dispose([batch.x, batch.y]);
    const report: RouterStepReport = {
      date: new Date().toISOString().slice(0, 10),
      backend: describeBackend(info),
      wasmThreads: wasm.wasm?.tfjs?.getThreadsCount?.() ?? 1,
      command: `deno task bench:routers ${Deno.args.join(" ")}`.trim(),
      rounds,
      warmup,
      data,
      loadAverageBefore,
      loadAverageAfter,
      wallSeconds,
      numTensorsAfterWarmup,
      numTensorsPerRound,
      numTensorsBefore,
      numTensorsAfterDispose: tf.memory().numTensors,
      cases,
    };
    if (Math.max(...numTensorsPerRound) !== Math.min(...numTensorsPerRound)) {
      console.error(`warning: numTensors changed across rounds: ${numTensorsPerRound.join(", ")}`);
    }
    const md = markdown(report);
    console.log(md);
    await Deno.mkdir(outDir, { recursive: true });
    const base = `${outDir.replace(/\/$/, "")}/${report.date}-router-step-wasm`;
    await writeJsonAtomic(`${base}.json`, report);
    await writeFileAtomic(`${base}.md`, md);
    console.log(`wrote ${base}.json and ${base}.md`);
  } finally {
    for (const e of entries) e.dispose();
    if (batch && !batch.x.isDisposed) tf.dispose([batch.x, batch.y]);
  }
}

if (import.meta.main) await runMain(main, "deno task bench:routers");
