/**
 * `deno task bench:step`: the training step of each model, per E: wall time,
 * kernels per step, matmul GFLOP/s achieved and the share of the step spent
 * in matmuls. Writes `bench/results/<date>-step-<backend>.json` and a
 * markdown table beside it.
 *
 * With `--compare` every case also runs the "before" path (tfjs-wasm's own
 * BatchMatMul and GatherV2 kernels, experts looped as tfjs ops, AdamW as
 * tfjs kernels) on the same model,
 * alternating before/after step by step so that machine load hits both
 * alike; learning rate 0 keeps the weights fixed, so both paths do the same
 * work at every step.
 *
 * Flags: `--backend wasm|cpu` (default wasm), `--experts 16,64,400`
 * (classifier), `--models classifier,vit,lm`, `--steps 10` (timed steps per
 * path), `--warmup 2`, `--compare`, `--data fashion-mnist|random` (the
 * classifier's batch; the data set from the cache), `--out DIR`.
 *
 * @module
 */

import { tf } from "../src/deps.ts";
import { type BackendRequest, describeBackend, useBackend } from "../src/backend.ts";
import { writeFileAtomic, writeJsonAtomic } from "../src/atomic.ts";
import { numberFlag, parseFlags, runMain, UsageError } from "../src/cli/args.ts";
import {
  fastWasmKernelsInstalled,
  installFastWasmKernels,
  uninstallFastWasmKernels,
} from "../src/ops/wasm_kernels.ts";
import { setFusedExperts } from "../src/moe/expert_ffn.ts";
import { Rng } from "../src/rng.ts";
import { DEFAULT_VIT_CONFIG } from "../src/train/vit_task.ts";
import { DEFAULT_LM_CONFIG } from "../src/train/lm_task.ts";
import { loadDataset } from "../src/data/image_sources.ts";
import { makeBatch } from "../src/data/image_batches.ts";
import { BENCH, benchBatch, benchModel } from "./setup.ts";
import { lmStepper, type Stepper, vitStepper } from "./model_overhead.ts";

/** A path of the step: the fast one, or the one before this benchmark's changes. */
export type StepPath = "after" | "before";

/** One case's figures for one path. */
export interface PathFigures {
  /** Median wall time of a step (ms). */
  medianMs: number;
  /** Quartiles of the step time (ms). */
  q1Ms: number;
  q3Ms: number;
  /** Kernels tfjs ran in one step (`tf.profile`). */
  kernels: number;
  /** Matmul kernels in one step (a fused-experts kernel counts as one). */
  matmulKernels: number;
  /** Floating-point operations of the matmuls of one step. */
  matmulFlops: number;
  /** Time in matmul kernels in the profiled step (ms). */
  matmulMs: number;
  /** matmulFlops / matmulMs, GFLOP/s. */
  matmulGflops: number;
  /** matmulMs / medianMs. */
  matmulShare: number;
}

/** One row of the report. */
export interface StepCase {
  model: "classifier" | "vit" | "lm";
  mode: "moe" | "moge";
  experts: number;
  description: string;
  after: PathFigures;
  before?: PathFigures;
  /** before.medianMs / after.medianMs (median of per-pair ratios). */
  speedup?: number;
}

/** The report file. */
export interface StepReport {
  date: string;
  backend: string;
  wasmThreads: number | null;
  command: string;
  steps: number;
  warmup: number;
  /** The classifier's batch: "fashion-mnist" or "random". */
  data: string;
  loadAverage: number[] | null;
  cases: StepCase[];
}

interface Runner {
  step: (i: number) => Promise<void>;
  setPath: (p: StepPath) => void;
  dispose: () => void;
}

function setKernels(path: StepPath): void {
  if (path === "after") installFastWasmKernels();
  else uninstallFastWasmKernels();
  setFusedExperts(path === "after");
}

/**
 * The classifier's batch: 200 Fashion-MNIST training images (a fixed,
 * class-mixed draw), or random pixels with `--data random`. Real images
 * spread over the experts as in training; random pixels in [0, 1) are so
 * alike that the untrained router sends them to a few experts.
 *
 * @example
 * ```ts ignore
 * import { classifierBatch } from "./step.ts";
 * const { x, y } = await classifierBatch("fashion-mnist"); // x [200, 784], y [200]
 * ```
 */
export async function classifierBatch(data: string): Promise<{ x: tf.Tensor2D; y: tf.Tensor1D }> {
  if (data === "random") return benchBatch();
  const set = await loadDataset("fashion-mnist");
  const idx = new Rng(11).permutation(set.trainLabels.length).subarray(0, BENCH.batch);
  return makeBatch(set.trainImages, set.trainLabels, idx);
}

function classifierRunner(
  mode: "moe" | "moge",
  experts: number,
  batch: { x: tf.Tensor2D; y: tf.Tensor1D },
): Runner {
  const m = benchModel(mode, experts, 64, batch);
  return {
    step: () => m.step(),
    setPath: (p) => {
      setKernels(p);
      m.opt.fused = p === "after";
    },
    dispose: () => m.dispose(),
  };
}

/** A stepper of bench/model_overhead.ts with the before/after switch of this benchmark. */
function withPath(s: Stepper): Runner {
  return {
    step: s.step,
    setPath: (p) => {
      setKernels(p);
      s.opt.fused = p === "after";
    },
    dispose: s.dispose,
  };
}

const vitRunner = (): Runner => withPath(vitStepper(DEFAULT_VIT_CONFIG.mode === "moge"));
const lmRunner = (): Runner => withPath(lmStepper(true));

const MATMULS = new Set(["BatchMatMul", "_FusedMatMul"]);

/** Kernels, matmul flops and matmul time of one step, from `tf.profile`. */
async function profileStep(
  r: Runner,
  i: number,
): Promise<Omit<PathFigures, "medianMs" | "q1Ms" | "q3Ms" | "matmulShare">> {
  const info = await tf.profile(() => r.step(i));
  let matmulKernels = 0, matmulFlops = 0, matmulMs = 0;
  for (const k of info.kernels) {
    if (k.name === "MogeExpertFfn" || k.name === "MogeExpertFfnGrad") {
      // All experts' MLPs: R rows through [d, f] and [f, o]; forward 2 matmuls,
      // backward 4 (dW1, dx, dW2, d hidden). Its time includes the bias and
      // activation loops, so the GFLOP/s is a lower bound for its matmuls.
      const [R, d] = k.inputShapes[0] ?? [0, 0];
      const [, f] = k.inputShapes[1] ?? [0, 0];
      const [, o] = k.inputShapes[3] ?? [0, 0];
      const per = 2 * R * (d * f + f * o);
      matmulKernels++;
      matmulMs += Number(k.kernelTimeMs) || 0;
      matmulFlops += k.name === "MogeExpertFfn" ? per : 2 * per;
      continue;
    }
    if (!MATMULS.has(k.name)) continue;
    matmulKernels++;
    matmulMs += Number(k.kernelTimeMs) || 0;
    // flops = 2 · |out| · K, with K = |a per batch| / M (whatever the transposes).
    const a = k.inputShapes[0] ?? [];
    const out = k.outputShapes[0] ?? [];
    const M = out[out.length - 2] ?? 1;
    const aPer = (a[a.length - 1] ?? 1) * (a[a.length - 2] ?? 1);
    matmulFlops += 2 * out.reduce((p, v) => p * v, 1) * (aPer / M);
  }
  return {
    kernels: info.kernels.length,
    matmulKernels,
    matmulFlops,
    matmulMs,
    matmulGflops: matmulMs > 0 ? matmulFlops / matmulMs / 1e6 : 0,
  };
}

/**
 * The q-quantile of ascending `sorted` values, interpolated linearly between ranks.
 *
 * @example
 * ```ts ignore
 * import { quantile } from "./step.ts";
 * quantile([1, 2, 3, 4], 0.5); // 2.5
 * ```
 */
export function quantile(sorted: number[], q: number): number {
  const i = (sorted.length - 1) * q;
  const lo = Math.floor(i), hi = Math.ceil(i);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (i - lo);
}

async function measure(
  r: Runner,
  paths: StepPath[],
  steps: number,
  warmup: number,
): Promise<{ figures: Record<string, PathFigures>; speedup?: number }> {
  let i = 0;
  for (let w = 0; w < warmup; w++) {
    for (const p of paths) {
      r.setPath(p);
      await r.step(i++);
    }
  }
  const times: Record<string, number[]> = Object.fromEntries(paths.map((p) => [p, []]));
  for (let s = 0; s < steps; s++) {
    // Alternate the order too (A B, B A, ...): a slow second step cancels out.
    for (const p of s % 2 === 0 ? paths : [...paths].reverse()) {
      r.setPath(p);
      const t0 = performance.now();
      await r.step(i++);
      times[p].push(performance.now() - t0);
    }
  }
  const figures: Record<string, PathFigures> = {};
  for (const p of paths) {
    r.setPath(p);
    const prof = await profileStep(r, i++);
    const sorted = [...times[p]].sort((a, b) => a - b);
    const medianMs = quantile(sorted, 0.5);
    figures[p] = {
      medianMs,
      q1Ms: quantile(sorted, 0.25),
      q3Ms: quantile(sorted, 0.75),
      ...prof,
      matmulShare: prof.matmulMs / medianMs,
    };
  }
  r.setPath("after");
  if (!paths.includes("before")) return { figures };
  const ratios = times.before.map((b, k) => b / times.after[k]).sort((a, b) => a - b);
  return { figures, speedup: quantile(ratios, 0.5) };
}

function markdown(rep: StepReport): string {
  const f = (v: number, d = 1) => v.toFixed(d);
  const lines = [
    `# Training step, ${rep.backend} (${rep.date})`,
    "",
    `wasm threads: ${
      rep.wasmThreads ?? "n/a"
    }; ${rep.steps} timed steps per path after ${rep.warmup} warm-up` +
    (rep.loadAverage ? `; load average at start ${rep.loadAverage.join(", ")}` : ""),
    "",
    `Command: \`${rep.command}\``,
    "",
    "| model | mode | E | step ms (after) | kernels | matmul GFLOP/s | matmul share | step ms (before) | kernels (before) | speed-up |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const c of rep.cases) {
    const a = c.after, b = c.before;
    lines.push(
      `| ${c.model} | ${c.mode} | ${c.experts} | ${f(a.medianMs)} | ${a.kernels} | ${
        f(a.matmulGflops)
      } | ${f(100 * a.matmulShare, 0)}% | ${b ? f(b.medianMs) : "-"} | ${b ? b.kernels : "-"} | ${
        c.speedup ? f(c.speedup, 2) + "x" : "-"
      } |`,
    );
  }
  return lines.join("\n") + "\n";
}

async function main(): Promise<void> {
  const flags = parseFlags(Deno.args, {
    backend: { type: "string" },
    experts: { type: "string" },
    models: { type: "string" },
    steps: { type: "string" },
    warmup: { type: "string" },
    compare: { type: "boolean" },
    data: { type: "string" },
    out: { type: "string" },
    help: { type: "boolean" },
  });
  if (flags.help) {
    console.log(
      "deno task bench:step [--backend wasm|cpu] [--experts 16,64,400] [--models classifier,vit,lm]" +
        " [--steps 10] [--warmup 2] [--compare] [--data fashion-mnist|random] [--out bench/results]",
    );
    return;
  }
  const backend = (flags.backend as string | undefined) ?? "wasm";
  if (!["wasm", "cpu"].includes(backend)) {
    throw new UsageError(`--backend ${backend} is not allowed: use wasm or cpu`);
  }
  const experts = ((flags.experts as string | undefined) ?? "16,64,400").split(",").map((v) =>
    numberFlag("experts", v)
  );
  const models = ((flags.models as string | undefined) ?? "classifier,vit,lm").split(",");
  for (const m of models) {
    if (!["classifier", "vit", "lm"].includes(m)) {
      throw new UsageError(`--models: "${m}" is not a model: use classifier, vit, lm`);
    }
  }
  const steps = numberFlag("steps", (flags.steps as string | undefined) ?? "10");
  const warmup = numberFlag("warmup", (flags.warmup as string | undefined) ?? "2");
  const outDir = (flags.out as string | undefined) ??
    new URL("./results/", import.meta.url).pathname;
  const info = await useBackend(backend as BackendRequest);
  installFastWasmKernels();
  const paths: StepPath[] = flags.compare ? ["before", "after"] : ["after"];
  const wasm = tf.backend() as unknown as { wasm?: { tfjs?: { getThreadsCount?: () => number } } };
  const report: StepReport = {
    date: new Date().toISOString().slice(0, 10),
    backend: describeBackend(info),
    wasmThreads: backend === "wasm" ? wasm.wasm?.tfjs?.getThreadsCount?.() ?? 1 : null,
    command: `deno task bench:step ${Deno.args.join(" ")}`.trim(),
    steps,
    warmup,
    data: "",
    loadAverage: Deno.loadavg?.() ?? null,
    cases: [],
  };
  const todo: {
    model: StepCase["model"];
    mode: StepCase["mode"];
    E: number;
    make: () => Runner;
  }[] = [];
  const data = (flags.data as string | undefined) ?? "fashion-mnist";
  if (!["fashion-mnist", "random"].includes(data)) {
    throw new UsageError(`--data ${data} is not allowed: use fashion-mnist or random`);
  }
  report.data = data;
  const batch = models.includes("classifier") ? await classifierBatch(data) : null;
  if (batch) {
    for (const E of experts) {
      for (const mode of ["moe", "moge"] as const) {
        todo.push({ model: "classifier", mode, E, make: () => classifierRunner(mode, E, batch) });
      }
    }
  }
  if (models.includes("vit")) {
    todo.push({
      model: "vit",
      mode: DEFAULT_VIT_CONFIG.mode,
      E: DEFAULT_VIT_CONFIG.experts,
      make: vitRunner,
    });
  }
  if (models.includes("lm")) {
    todo.push({
      model: "lm",
      mode: DEFAULT_LM_CONFIG.mode,
      E: DEFAULT_LM_CONFIG.experts,
      make: lmRunner,
    });
  }
  for (const t of todo) {
    const r = t.make();
    try {
      const { figures, speedup } = await measure(r, paths, steps, warmup);
      const c: StepCase = {
        model: t.model,
        mode: t.mode,
        experts: t.E,
        description: t.model === "classifier"
          ? `Fashion-MNIST classifier, batch ${BENCH.batch} (${data}), d_ff 64, top-${BENCH.topK}`
          : t.model === "vit"
          ? "vit-tiny preset (batch 128)"
          : "lm-small preset (batch 16 x 64 tokens)",
        after: figures.after,
        before: figures.before,
        speedup,
      };
      report.cases.push(c);
      const b = c.before;
      console.log(
        `${t.model} ${t.mode} E=${t.E}: ${
          c.after.medianMs.toFixed(1)
        } ms, ${c.after.kernels} kernels, ` +
          `matmul ${c.after.matmulGflops.toFixed(1)} GFLOP/s (${
            (100 * c.after.matmulShare).toFixed(0)
          }%)` +
          (b
            ? ` | before ${b.medianMs.toFixed(1)} ms, ${b.kernels} kernels, ${speedup!.toFixed(2)}x`
            : ""),
      );
    } finally {
      r.dispose();
    }
  }
  if (!fastWasmKernelsInstalled()) installFastWasmKernels();
  if (batch) tf.dispose([batch.x, batch.y]);
  await Deno.mkdir(outDir, { recursive: true });
  const base = `${outDir.replace(/\/$/, "")}/${report.date}-step-${backend}`;
  await writeJsonAtomic(`${base}.json`, report);
  await writeFileAtomic(`${base}.md`, markdown(report));
  console.log(`wrote ${base}.json and ${base}.md`);
}

if (import.meta.main) await runMain(main, "deno task bench:step");
