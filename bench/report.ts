/**
 * `deno task bench:report`: what MoGE costs over MoE as E grows, measured
 * with alternating steps (A B A B ...) so that drift cancels, plus memory.
 *
 * For every backend and E it records the median step time of MoE and MoGE,
 * the ratio MoGE/MoE (median of per-pair ratios, with its quartiles), tfjs's
 * peak bytes per step (`tf.profile`), bytes held after a step, and the
 * process's resident memory. Writes `bench/results/<date>-<backend>.json`,
 * a markdown table beside it, and `bench/results/overhead.svg` (overhead %
 * against E, one line per backend, from the newest result of each backend).
 *
 * The classifier runs at two expert widths (default d_ff 16 and 64; on wasm
 * a point whose two models with AdamW would not fit tfjs-wasm's 4 GiB heap,
 * by `src/train/memory.ts`'s estimate, is skipped): R(z) costs the same at
 * both, since it depends on E, not on d_ff. With `--models` it also
 * alternates MoE and MoGE steps of the multi-layer `vit-tiny` and `lm-small`
 * (`model_overhead.ts`).
 *
 * @module
 */

import { tf } from "../src/deps.ts";
import { type BackendInfo, describeBackend } from "../src/backend.ts";
import { writeFileAtomic, writeJsonAtomic } from "../src/atomic.ts";
import { lineChartSpec } from "../src/report/charts.ts";
import { writeChart } from "../src/report/vega.ts";
import { groupSparsity } from "../src/moge/group_sparsity.ts";
import { numberFlag, parseFlags, runMain, UsageError } from "../src/cli/args.ts";
import { formatDuration, ProgressLine } from "../src/cli/progress.ts";
import { estimateClassifierMemory, formatBytes, WASM_HEAP_BYTES } from "../src/train/memory.ts";
import { BENCH, benchBackend, benchBatch, type BenchModel, benchModel, warmUp } from "./setup.ts";
import {
  modelOverhead,
  type ModelPoint,
  OVERHEAD_MODELS,
  type OverheadModel,
} from "./model_overhead.ts";

const RESULTS = new URL("./results/", import.meta.url).pathname;
/** The name of a report file: `<date>-<backend>.json`. */
const REPORT_FILE = /^\d{4}-\d{2}-\d{2}-(wasm|webgpu|cpu)\.json$/;

/**
 * What one (E, d_ff) point holds at once: the MoE and the MoGE model side by
 * side, each with its gradients, AdamW moments and one step's activations
 * (`estimateClassifierMemory`, the estimate training runs are checked with).
 */
export function pointMemory(
  experts: number,
  hidden: number,
): { parameters: number; bytes: number } {
  const one = estimateClassifierMemory({
    experts,
    topK: BENCH.topK,
    hiddenDim: hidden,
    batchSize: BENCH.batch,
    capacityFactor: BENCH.capacityFactor,
  });
  return { parameters: one.parameters, bytes: 2 * one.totalBytes };
}

/** One (E, d_ff) point of a report. */
export interface Point {
  experts: number;
  hidden: number;
  pairs: number;
  moeMedianMs: number;
  mogeMedianMs: number;
  ratioMedian: number;
  ratioQ1: number;
  ratioQ3: number;
  overheadPercent: number;
  moePeakBytes: number;
  mogePeakBytes: number;
  extraPeakBytes: number;
  extraPeakPercent: number;
  moeHeldBytes: number;
  mogeHeldBytes: number;
  rssBytes: number;
  /**
   * "Alone": median time of tf.grad of λ·mean R(z) on the [N, E] scores and
   * the [N, E] gradient's readback, R(z) forward and backward included.
   */
  regularizerMs: number;
  /** regularizerMs / moeMedianMs: the gross share, timing floor included. */
  regularizerShare: number;
  /**
   * "Floor": median time of the same timing (tf.grad, λ·mean of an [N] value,
   * the [N, E] gradient's readback) around an op that computes nothing
   * (`floorOp`), alternated with the R(z) timing: what the measurement pays
   * besides R(z)'s forward and backward kernels.
   */
  floorMs?: number;
  /** (regularizerMs − floorMs) / moeMedianMs: R(z)'s own share, net of the floor. */
  regularizerNetShare?: number;
}

/** A report file (`bench/results/<date>-<backend>.json`). */
export interface Report {
  date: string;
  backend: BackendInfo;
  label: string;
  settings: typeof BENCH & { warmup: number; pairs: number };
  command: string;
  points: Point[];
  skipped: { experts: number; hidden: number; parameters: number; reason: string }[];
  /** The multi-layer models' A/B figures (`--models`). */
  models?: ModelPoint[];
  /** `Deno.loadavg()` at the start and at the end of the run. */
  loadAverage?: { start: number[]; end: number[] };
}

function quantile(sorted: number[], q: number): number {
  const i = (sorted.length - 1) * q;
  const lo = Math.floor(i);
  const hi = Math.ceil(i);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (i - lo);
}

const median = (a: number[]) => quantile([...a].sort((x, y) => x - y), 0.5);

async function timed(m: BenchModel): Promise<number> {
  const t0 = performance.now();
  await m.step();
  return performance.now() - t0;
}

/**
 * The timing floor's op: a `tf.customGrad` that computes nothing. Its value
 * is `row` ([N]) reshaped and its gradient is its input `z` ([N, E]) reshaped,
 * both views of existing buffers (reshape copies nothing on wasm and cpu), so
 * that tf.grad around it pays the tape, the λ·mean of an [N] value and the
 * readback of an [N, E] gradient, as around R(z), and no arithmetic on z.
 *
 * @example
 * ```ts
 * const z = tf.ones([200, 16]); // [N, E]
 * const row = tf.zeros([200]); // [N]
 * const g = tf.grad((t: tf.Tensor) => tf.mean(floorOp(t, row)))(z); // [N, E]
 * ```
 */
export function floorOp(z: tf.Tensor, row: tf.Tensor): tf.Tensor {
  return tf.customGrad((x) => ({
    value: tf.reshape(row, row.shape), // [N]
    gradFunc: () => tf.reshape(x as tf.Tensor, (x as tf.Tensor).shape), // [N, E]
  }))(z) as tf.Tensor;
}

/** Rounds of the R(z) timing and of its floor, alternated, per point. */
const REGULARIZER_ROUNDS = 100;

/**
 * Median time of R(z) forward + backward alone, as the training step runs it
 * ("alone"), alternated with the same timing around `floorOp` ("floor").
 */
async function regularizerMs(
  experts: number,
  reps: number,
): Promise<{ regularizerMs: number; floorMs: number }> {
  const z = tf.tidy(() => tf.softmax(tf.randomNormal([BENCH.batch, experts], 0, 1, "float32", 5))); // [N, E]
  const opts = {
    sigma: BENCH.sigma,
    filterSize: 3,
    filter: "gaussian" as const,
    checkFinite: false,
  };
  const once = async (f: (t: tf.Tensor) => tf.Tensor) => {
    const t0 = performance.now();
    const g = tf.grad((t: tf.Tensor) => tf.mul(BENCH.lambda, tf.mean(f(t))))(z);
    await g.data();
    g.dispose();
    return performance.now() - t0;
  };
  const reg = (t: tf.Tensor) => groupSparsity(t, opts); // [N]
  const row = tf.zeros([BENCH.batch]); // [N]
  const plain = (t: tf.Tensor) => floorOp(t, row); // [N]
  for (let i = 0; i < 5; i++) await once(reg), await once(plain);
  const times: number[] = [], floor: number[] = [];
  for (let i = 0; i < reps; i++) {
    if (i % 2) times.push(await once(reg)), floor.push(await once(plain));
    else floor.push(await once(plain)), times.push(await once(reg));
  }
  tf.dispose([z, row]);
  return { regularizerMs: median(times), floorMs: median(floor) };
}

async function peakBytes(m: BenchModel): Promise<number> {
  const info = await tf.profile(async () => {
    await m.step();
  });
  return info.peakBytes;
}

async function measure(
  experts: number,
  hidden: number,
  pairs: number,
  warmup: number,
): Promise<Point> {
  const batch = benchBatch();
  const moe = benchModel("moe", experts, hidden, batch);
  const moge = benchModel("moge", experts, hidden, batch);
  await warmUp(moe, warmup);
  await warmUp(moge, warmup);
  const tA: number[] = [];
  const tB: number[] = [];
  const ratios: number[] = [];
  for (let i = 0; i < pairs; i++) {
    // A B, then B A: neither model always runs second.
    let a: number, b: number;
    if (i % 2 === 0) {
      a = await timed(moe);
      b = await timed(moge);
    } else {
      b = await timed(moge);
      a = await timed(moe);
    }
    tA.push(a);
    tB.push(b);
    ratios.push(b / a);
  }
  const moePeak = await peakBytes(moe);
  const mogePeak = await peakBytes(moge);
  const moeHeld = tf.memory().numBytes;
  await moge.step();
  const mogeHeld = tf.memory().numBytes;
  const sortedR = [...ratios].sort((x, y) => x - y);
  const reg = await regularizerMs(experts, REGULARIZER_ROUNDS);
  moe.dispose();
  moge.dispose();
  tf.dispose([batch.x, batch.y]);
  const ratioMedian = quantile(sortedR, 0.5);
  return {
    experts,
    hidden,
    pairs,
    moeMedianMs: median(tA),
    mogeMedianMs: median(tB),
    ratioMedian,
    ratioQ1: quantile(sortedR, 0.25),
    ratioQ3: quantile(sortedR, 0.75),
    overheadPercent: 100 * (ratioMedian - 1),
    moePeakBytes: moePeak,
    mogePeakBytes: mogePeak,
    extraPeakBytes: mogePeak - moePeak,
    extraPeakPercent: 100 * (mogePeak - moePeak) / moePeak,
    moeHeldBytes: moeHeld,
    mogeHeldBytes: mogeHeld,
    rssBytes: Deno.memoryUsage().rss,
    regularizerMs: reg.regularizerMs,
    regularizerShare: reg.regularizerMs / median(tA),
    floorMs: reg.floorMs,
    regularizerNetShare: (reg.regularizerMs - reg.floorMs) / median(tA),
  };
}

/** The markdown table of a report. */
export function markdown(r: Report): string {
  const mb = (b: number) => (b / 2 ** 20).toFixed(2);
  const rows = r.points.map((p) =>
    `| ${p.experts} | ${p.hidden} | ${p.moeMedianMs.toFixed(1)} | ${p.mogeMedianMs.toFixed(1)} | ` +
    `${p.ratioMedian.toFixed(4)} [${p.ratioQ1.toFixed(4)}, ${p.ratioQ3.toFixed(4)}] | ` +
    `${p.overheadPercent >= 0 ? "+" : ""}${p.overheadPercent.toFixed(2)} % | ` +
    `${p.regularizerMs.toFixed(2)} ms (${(100 * p.regularizerShare).toFixed(2)} %) | ` +
    (p.floorMs === undefined
      ? "- | - | "
      : `${p.floorMs.toFixed(2)} ms | ${(p.regularizerMs - p.floorMs).toFixed(2)} ms (${
        (100 * p.regularizerNetShare!).toFixed(2)
      } %) | `) +
    `${mb(p.moePeakBytes)} | ` +
    `${p.extraPeakBytes >= 0 ? "+" : ""}${(p.extraPeakBytes / 1024).toFixed(1)} KiB (${
      p.extraPeakPercent.toFixed(3)
    } %) | ${mb(p.rssBytes)} |`
  );
  return `# MoGE overhead over MoE: ${r.label}

${r.date}; ${r.backend.runtime}, tfjs ${r.backend.tfjs}. One training step of the Fashion-MNIST
model (batch ${r.settings.batch}, top-${r.settings.topK}, C_f ${r.settings.capacityFactor}, λ ${r.settings.lambda},
AdamW at learning rate 0 so that both models keep routing identically,
3x3 Gaussian σ ${r.settings.sigma}); ${r.settings.warmup} warm-up steps each, then ${r.settings.pairs} alternating
MoE/MoGE pairs. Ratio: median of per-pair MoGE/MoE ratios [quartiles]. Peak: tfjs's peak tensor bytes
during one step (\`tf.profile\`). RSS: the process's resident memory after the point.

- "Alone" (gross): the median time of tf.grad of λ·mean R(z) on [${r.settings.batch}, E] softmax scores plus
  the readback of the [${r.settings.batch}, E] gradient, R(z)'s forward and backward included (the 3x3
  Gaussian, "valid", as the training step runs it), and its share of the MoE step.
- "Floor": the median of the same timing (tf.grad, λ·mean of a [${r.settings.batch}] value, the [${r.settings.batch}, E]
  gradient's readback) around a \`tf.customGrad\` that computes nothing (its value and gradient are
  views of existing buffers), alternated with "alone" (${REGULARIZER_ROUNDS} rounds each, order swapped every
  round): what the stand-alone timing pays besides R(z).
- "Net": alone − floor, R(z)'s forward and backward themselves, and its share of the MoE step.

Both shares are free of the step-to-step noise the A/B ratio carries on a busy machine. Two expert
widths: R(z)'s cost depends on E, not on d_ff (on wasm, points whose two models with AdamW would
not fit tfjs-wasm's heap are skipped).${
    r.loadAverage
      ? ` Load average (1, 5, 15 min) at the start ${
        r.loadAverage.start.map((v) => v.toFixed(2)).join(", ")
      }, at the end ${r.loadAverage.end.map((v) => v.toFixed(2)).join(", ")}.`
      : ""
  }

Reproduce: \`${r.command}\`

| E | d_ff | MoE ms | MoGE ms | MoGE/MoE | overhead | R(z) alone (gross share) | floor | R(z) net (net share) | MoE peak MiB | MoGE extra peak | RSS MiB |
|---|---|---|---|---|---|---|---|---|---|---|---|
${rows.join("\n")}
${
    r.skipped.length
      ? `\nSkipped: ${
        r.skipped.map((s) =>
          `E=${s.experts} d_ff=${s.hidden} (${
            (s.parameters / 1e6).toFixed(1)
          } M parameters: ${s.reason})`
        )
          .join("; ")
      }.\n`
      : ""
  }${r.models?.length ? modelsMarkdown(r.models) : ""}`;
}

/** The multi-layer models' table. */
function modelsMarkdown(models: ModelPoint[]): string {
  const rows = models.map((m) =>
    `| ${m.model} | ${m.experts} | ${m.moeLayers} | ${m.moeMedianMs.toFixed(1)} | ${
      m.mogeMedianMs.toFixed(1)
    } | ${m.ratioMedian.toFixed(4)} [${m.ratioQ1.toFixed(4)}, ${m.ratioQ3.toFixed(4)}] | ${
      m.overheadPercent >= 0 ? "+" : ""
    }${m.overheadPercent.toFixed(2)} % | ${m.pairs} |`
  );
  return `
## Multi-layer models

One training step (learning rate 0) of each model with and without the regularizer in every MoE
layer, alternated; same seed, batch and step seeds.

| model | E | MoE layers | MoE ms | MoGE ms | MoGE/MoE [quartiles] | overhead | pairs |
|---|---|---|---|---|---|---|---|
${rows.join("\n")}
`;
}

async function plot(): Promise<void> {
  const newest = new Map<string, Report>();
  for await (const e of Deno.readDir(RESULTS)) {
    if (!REPORT_FILE.test(e.name)) continue; // not chart specs or other benchmarks' results
    const r = JSON.parse(await Deno.readTextFile(RESULTS + e.name)) as Report;
    const key = r.backend.backend;
    if (!newest.has(key) || newest.get(key)!.date < r.date) newest.set(key, r);
  }
  const series = [...newest.values()].flatMap((r) =>
    [...new Set(r.points.map((p) => p.hidden))].flatMap((h) => {
      const pts = r.points.filter((p) => p.hidden === h);
      return [
        {
          name: `${r.backend.backend}, d_ff ${h}: A/B step ratio`,
          points: pts.map((p) => [p.experts, p.overheadPercent] as [number, number]),
        },
        {
          name: `${r.backend.backend}, d_ff ${h}: R(z) alone / MoE step`,
          points: pts.map((p) => [p.experts, 100 * p.regularizerShare] as [number, number]),
        },
        ...(pts.every((p) => p.regularizerNetShare !== undefined)
          ? [{
            name: `${r.backend.backend}, d_ff ${h}: R(z) net of the floor / MoE step`,
            points: pts.map((p) => [p.experts, 100 * p.regularizerNetShare!] as [number, number]),
          }]
          : []),
      ];
    })
  );
  const spec = lineChartSpec(series, {
    title: "MoGE's extra step time over MoE, % (A/B median; R(z) alone and net of the floor)",
    xLabel: "experts E (log scale)",
    yLabel: "overhead %",
    logX: true,
  });
  await writeChart(RESULTS + "overhead", spec); // overhead.svg and its spec overhead.vl.json
}

async function main(): Promise<void> {
  const flags = parseFlags(Deno.args, {
    help: { type: "boolean", short: "h" },
    backends: { type: "string" },
    experts: { type: "string" },
    hidden: { type: "string" },
    pairs: { type: "string" },
    warmup: { type: "string" },
    quick: { type: "boolean" },
    rewrite: { type: "boolean" },
    models: { type: "string" },
    "model-pairs": { type: "string" },
  });
  if (flags.help) {
    console.log(`Measures MoGE's overhead over MoE per training step as E grows; writes
bench/results/<date>-<backend>.json and .md, and bench/results/overhead.svg.

Usage: deno task bench:report [flags]

  --backends LIST   comma-separated: webgpu, wasm, cpu [default wasm]
  --experts LIST    E values [default 16,32,64,128,256,400,512,1024]
  --hidden LIST     expert widths d_ff, each at every E that fits the heap [default 16,64]
  --pairs N         alternating MoE/MoGE step pairs per point [default 30]
  --warmup N        warm-up steps per model before timing [default 3]
  --models LIST     multi-layer models to A/B as well: vit, lm, or none [default vit,lm]
  --model-pairs N   alternating pairs per multi-layer model [default 8]
  --quick           E = 16,64,256, d_ff 16, 10 pairs, no multi-layer models: about a minute
  --rewrite         only rewrite the .md files and overhead.svg from the .json results
  -h, --help        this text`);
    return;
  }
  if (flags.rewrite) {
    for await (const e of Deno.readDir(RESULTS)) {
      if (!REPORT_FILE.test(e.name)) continue; // not chart specs or other benchmarks' results
      const r = JSON.parse(await Deno.readTextFile(RESULTS + e.name)) as Report;
      await writeFileAtomic(RESULTS + e.name.replace(/\.json$/, ".md"), markdown(r));
    }
    await plot();
    console.log(`rewrote the tables and ${RESULTS}overhead.svg`);
    return;
  }
  const list = (v: unknown, dflt: string) =>
    String(v ?? dflt).split(",").map((s) => numberFlag("list value", s.trim()));
  const quick = Boolean(flags.quick);
  const backends = String(flags.backends ?? "wasm").split(",").map((s) => s.trim());
  for (const b of backends) {
    if (!["webgpu", "wasm", "cpu"].includes(b)) {
      throw new UsageError(`--backends: "${b}" is invalid: allowed are webgpu, wasm, cpu`);
    }
  }
  const experts = list(flags.experts, quick ? "16,64,256" : "16,32,64,128,256,400,512,1024");
  const hiddens = list(flags.hidden, quick ? "16" : "16,64");
  const pairs = numberFlag("pairs", String(flags.pairs ?? (quick ? 10 : 30)));
  const modelPairs = numberFlag("model-pairs", String(flags["model-pairs"] ?? 8));
  const modelList = String(flags.models ?? (quick ? "none" : "vit,lm")).split(",")
    .map((s) => s.trim()).filter((s) => s !== "none" && s !== "");
  for (const m of modelList) {
    if (!(OVERHEAD_MODELS as readonly string[]).includes(m)) {
      throw new UsageError(
        `--models: "${m}" is invalid: allowed are ${OVERHEAD_MODELS.join(", ")}, none`,
      );
    }
  }
  if (!Number.isInteger(modelPairs) || modelPairs < 2) {
    throw new UsageError(`--model-pairs ${modelPairs}: must be an integer >= 2`);
  }
  const warmup = numberFlag("warmup", String(flags.warmup ?? 3));
  for (const E of experts) {
    if (!Number.isInteger(E) || E < 9) {
      throw new UsageError(`--experts: ${E} is invalid: E must be an integer >= 9`);
    }
  }
  if (!Number.isInteger(pairs) || pairs < 2) {
    throw new UsageError(`--pairs ${pairs}: must be an integer >= 2`);
  }
  await Deno.mkdir(RESULTS, { recursive: true });
  const line = new ProgressLine();
  for (const backend of backends) {
    const { info, label } = await benchBackend(backend);
    console.log(`backend: ${label}`);
    const loadStart = Deno.loadavg();
    // Every (E, d_ff) in turn, the widths side by side at each E.
    const cases = experts.flatMap((E) => hiddens.map((h) => [E, h] as const));
    const points: Point[] = [];
    const skipped: { experts: number; hidden: number; parameters: number; reason: string }[] = [];
    const t0 = performance.now();
    for (const [i, [E, h]] of cases.entries()) {
      // tfjs-wasm aborts (and cannot recover) beyond its heap, so points that
      // would not fit are skipped, not attempted.
      const { parameters: params, bytes: need } = pointMemory(E, h);
      if (backend === "wasm" && need > WASM_HEAP_BYTES) {
        console.log(
          `  E=${E} d_ff=${h}: skipped on wasm: two models of ${
            (params / 1e6).toFixed(1)
          } M parameters need about` +
            ` ${formatBytes(need)} with AdamW, over tfjs-wasm's ${
              formatBytes(WASM_HEAP_BYTES)
            } heap`,
        );
        skipped.push({ experts: E, hidden: h, parameters: params, reason: "wasm heap" });
        continue;
      }
      line.update(
        `${backend}: E=${E} d_ff=${h} (${i + 1}/${cases.length}, ${
          formatDuration((performance.now() - t0) / 1000)
        })`,
        true,
      );
      const p = await measure(E, h, pairs, warmup);
      points.push(p);
      line.done();
      console.log(
        `  E=${E} d_ff=${h}: MoE ${p.moeMedianMs.toFixed(1)} ms, MoGE ${
          p.mogeMedianMs.toFixed(1)
        } ms,` +
          ` ratio ${p.ratioMedian.toFixed(4)} [${p.ratioQ1.toFixed(4)}, ${p.ratioQ3.toFixed(4)}],` +
          ` extra peak ${(p.extraPeakBytes / 1024).toFixed(1)} KiB, R(z) alone ${
            p.regularizerMs.toFixed(2)
          } ms` +
          ` (${(100 * p.regularizerShare).toFixed(2)} % of the MoE step;` +
          ` net of the ${p.floorMs!.toFixed(2)} ms floor ${
            (100 * p.regularizerNetShare!).toFixed(2)
          } %)`,
      );
    }
    const models: ModelPoint[] = [];
    for (const m of modelList as OverheadModel[]) {
      line.update(`${backend}: ${m} (${formatDuration((performance.now() - t0) / 1000)})`, true);
      const p = await modelOverhead(m, modelPairs, 2);
      models.push(p);
      line.done();
      console.log(
        `  ${p.model}: MoE ${p.moeMedianMs.toFixed(1)} ms, MoGE ${p.mogeMedianMs.toFixed(1)} ms,` +
          ` ratio ${p.ratioMedian.toFixed(4)} [${p.ratioQ1.toFixed(4)}, ${p.ratioQ3.toFixed(4)}]`,
      );
    }
    const date = new Date().toISOString();
    const report: Report = {
      date,
      backend: info,
      label: describeBackend(info),
      settings: { ...BENCH, warmup, pairs },
      command: `deno task bench:report --backends ${backend} --experts ${
        experts.join(",")
      } --hidden ${hiddens.join(",")} --pairs ${pairs} --models ${
        modelList.join(",") || "none"
      } --model-pairs ${modelPairs}`,
      points,
      skipped,
      models,
      loadAverage: { start: loadStart, end: Deno.loadavg() },
    };
    const base = `${RESULTS}${date.slice(0, 10)}-${backend}`;
    await writeJsonAtomic(`${base}.json`, report);
    await writeFileAtomic(`${base}.md`, markdown(report));
    console.log(`wrote ${base}.json and ${base}.md`);
  }
  await plot();
  console.log(`wrote ${RESULTS}overhead.svg`);
}

if (import.meta.main) await runMain(main, "deno task bench:report");
