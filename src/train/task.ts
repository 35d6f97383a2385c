/**
 * What a model plugs into the training loop (`loop.ts`): a {@linkcode Task}
 * (its config table, presets, data loading) that opens a
 * {@linkcode TaskSession} for one run (the model, the batches, a step, the
 * evaluation, the metrics line and the summary); and the pieces the tasks
 * share: seeds derived from (seed, stream, counter), the gradient step, the
 * per-layer routing tally and the epoch order.
 *
 * @module
 */

import { tf } from "../deps.ts";
import type { Tensor, Tensor1D, Variable } from "../types.ts";
import type { BackendInfo } from "../backend.ts";
import type { RoutingPlan } from "../moe/routing.ts";
import { statsOf } from "../moe/routers/stats.ts";
import type { RoutedBatch, RoutedPlan } from "../moe/moe_layer.ts";
import { RoutingStatsLog } from "../moe/routing_stats_log.ts";
import { Rng } from "../rng.ts";
import type { AdamW } from "./optim.ts";
import type { RunDir } from "./run_dir.ts";
import type { CommonSettings, FieldSpec } from "./config_fields.ts";
import type { MogeSettings } from "./moge_settings.ts";

/**
 * A 31-bit seed from the run seed, a stream (1: data order, 2: dropout and
 * routing noise, 3: augmentation) and a counter (epoch or step): a
 * counter-based RNG, so a resumed run draws what the uninterrupted run drew.
 *
 * @example
 * ```ts
 * import { deriveSeed } from "./task.ts";
 * deriveSeed(0, 2, 10) === deriveSeed(0, 2, 10); // true
 * ```
 */
export function deriveSeed(seed: number, stream: number, counter: number): number {
  return new Rng((seed * 0x9e3779b1 + stream * 0x85ebca6b + counter * 0xc2b2ae35) >>> 0)
    .seedForTf();
}

/**
 * The example indices of step `step` of an epoch-based run: epoch
 * `⌊step / stepsPerEpoch⌋` visits `pool` in the order of a permutation drawn
 * from (seed, 1, epoch).
 *
 * @example
 * ```ts
 * import { epochBatch } from "./task.ts";
 * epochBatch(0, 0, Int32Array.from([0, 1, 2, 3]), 2).length; // 2
 * ```
 */
export function epochBatch(
  seed: number,
  step: number,
  pool: Int32Array,
  batchSize: number,
): Int32Array {
  const n = pool.length;
  const stepsPerEpoch = Math.ceil(n / batchSize);
  const s = step % stepsPerEpoch;
  const perm = new Rng(deriveSeed(seed, 1, Math.floor(step / stepsPerEpoch))).permutation(n);
  return perm.subarray(s * batchSize, Math.min(n, (s + 1) * batchSize)).map((i) => pool[i]);
}

/**
 * The schedule of an epoch-based run over `examples` training examples:
 * steps per epoch and in all, warm-up steps (`warmupEpochs` rounded to
 * steps), cosine decay, and an evaluation after each epoch.
 *
 * @example
 * ```ts
 * import { epochSchedule } from "./task.ts";
 * epochSchedule(1000, { batchSize: 100, epochs: 3, warmupEpochs: 0.5 }).totalSteps; // 30
 * ```
 */
export function epochSchedule(
  examples: number,
  c: { batchSize: number; epochs: number; warmupEpochs: number },
): {
  stepsPerEpoch: number;
  totalSteps: number;
  warmupSteps: number;
  lrDecay: "cosine";
  isEvalStep: (step: number) => boolean;
} {
  const stepsPerEpoch = Math.ceil(examples / c.batchSize);
  return {
    stepsPerEpoch,
    totalSteps: stepsPerEpoch * c.epochs,
    warmupSteps: Math.round(c.warmupEpochs * stepsPerEpoch),
    lrDecay: "cosine",
    isEvalStep: (step) => step % stepsPerEpoch === 0,
  };
}

/**
 * One optimizer step: differentiates `loss()` with respect to `params`,
 * names the gradients by parameter key and applies AdamW at `lr`.
 * `loss` must return a scalar. Parameters it does not reach get no update.
 *
 * @example
 * ```ts
 * import { tf } from "../deps.ts";
 * import { AdamW } from "./optim.ts";
 * import { applyGradients } from "./task.ts";
 * const params = { w: tf.variable(tf.scalar(1)) };
 * const opt = new AdamW({ learningRate: 0.1 });
 * applyGradients(params, opt, () => tf.square(params.w) as tf.Scalar, 0.1);
 * ```
 */
export function applyGradients(
  params: Record<string, Variable>,
  opt: AdamW,
  loss: () => Tensor,
  lr: number,
): void {
  const { value, grads } = tf.variableGrads(loss as () => tf.Scalar, Object.values(params));
  const byVarName = new Map(Object.entries(params).map(([k, v]) => [v.name, k]));
  const named: Record<string, tf.Tensor> = {};
  for (const [k, g] of Object.entries(grads)) if (g) named[byVarName.get(k)!] = g;
  opt.step(named, params, lr);
  tf.dispose([value, ...Object.values(named)]);
}

/**
 * One MoE layer's routing in a training step: its plan (the CPU plan, or a
 * device plan's sizes only) and, for a device plan, its `[2, E]` demand and
 * load counts on the device (or null).
 */
export interface StepRouting {
  /** The plan (CPU plans carry load and drops; device plans only sizes). */
  plan: RoutedPlan;
  /** Device counts `[2, E]` int32 (the tally takes ownership), or null. */
  counts: Tensor | null;
}

/**
 * The routing records of a step's routed batches, one per layer, taking the
 * device counts out of the batches (so freeing a batch leaves them).
 *
 * @example
 * ```ts
 * import { stepRouting } from "./task.ts";
 * console.log(stepRouting([]).length); // 0
 * ```
 */
export function stepRouting(routed: RoutedBatch[]): StepRouting[] {
  return routed.map((r) => {
    const counts = r.counts ?? null;
    r.counts = null;
    return { plan: r.plan, counts };
  });
}

/**
 * Per MoE layer: tokens per expert, dropped and total (token, choice) pairs,
 * tokens left behind (none of their choices reached an expert: expert
 * choice's unpicked tokens, or all choices dropped by capacity; CPU plans
 * only, a device plan's counts do not tell them). CPU plans are added at once; device plans' counts are summed on the device
 * (a `RoutingStatsLog` per layer, no readback per step) and read back once,
 * by {@linkcode RoutingTally.flush}, which must run before the figures are
 * read.
 */
export class RoutingTally {
  /** `[layer][expert]` tokens processed. */
  readonly load: number[][];
  /** Dropped (token, choice) pairs per layer. */
  readonly dropped: number[];
  /** (token, choice) pairs per layer. */
  readonly choices: number[];
  /** Tokens left behind per layer. */
  readonly leftBehind: number[];
  /** Tokens routed per layer. */
  readonly tokens: number[];
  /** Σ over steps of the mean over layers of (largest buffer) / (N·k/E) (device plans: C_e). */
  slotsFraction = 0;
  readonly #logs: (RoutingStatsLog | null)[];

  /** A tally of `layers` layers of E experts. */
  constructor(layers: number, experts: number) {
    this.load = Array.from({ length: layers }, () => new Array(experts).fill(0));
    this.dropped = new Array(layers).fill(0);
    this.choices = new Array(layers).fill(0);
    this.leftBehind = new Array(layers).fill(0);
    this.tokens = new Array(layers).fill(0);
    this.#logs = new Array(layers).fill(null);
  }

  /** Adds one batch's routing (one per layer): CPU plans, or device plans with counts. */
  add(routing: StepRouting[]): void {
    routing.forEach(({ plan: p, counts }, l) => {
      this.slotsFraction += p.slots / Math.max(1, (p.N * p.k) / p.E) / routing.length;
      this.tokens[l] += p.N;
      if (p.load !== undefined && p.dropped !== undefined && p.slotOfChoice !== undefined) {
        p.load.forEach((v, e) => this.load[l][e] += v);
        this.dropped[l] += p.dropped;
        this.choices[l] += p.N * p.k;
        const empty = p.active.length * p.slots; // the slot of a dropped or padding choice
        for (let n = 0; n < p.N; n++) {
          let routed = false;
          for (let j = 0; j < p.k && !routed; j++) routed = p.slotOfChoice[n * p.k + j] !== empty;
          if (!routed) this.leftBehind[l]++;
        }
        counts?.dispose();
      } else if (counts) {
        const log = this.#logs[l] ??= new RoutingStatsLog(p.E);
        log.add(counts, p.N * p.k);
      } else {
        throw new Error(`RoutingTally.add: layer ${l}'s device plan came without counts`);
      }
    });
  }

  /** Reads the device counts added since the last flush back (one readback per layer). */
  async flush(): Promise<void> {
    for (const [l, log] of this.#logs.entries()) {
      if (!log || log.steps === 0) continue;
      const s = await log.read();
      s.load.forEach((v, e) => this.load[l][e] += v);
      this.dropped[l] += s.dropped;
      this.choices[l] += s.choices;
    }
  }

  /** Frees the device sums (unread counts are lost). */
  dispose(): void {
    for (const log of this.#logs) log?.dispose();
  }

  /** Experts of layer `l` that got no token. */
  dead(l: number): number {
    return this.load[l].filter((v) => v === 0).length;
  }

  /** The fraction of layer `l`'s tokens left behind (of all layers' when `l` is omitted). */
  leftBehindRate(l?: number): number {
    const sum = (a: number[]) => a.reduce((s, v) => s + v, 0);
    const b = l === undefined ? sum(this.leftBehind) : this.leftBehind[l];
    const n = l === undefined ? sum(this.tokens) : this.tokens[l];
    return n ? b / n : 0;
  }

  /** The dropped fraction of layer `l`'s pairs (of all layers' when `l` is omitted). */
  dropRate(l?: number): number {
    const sum = (a: number[]) => a.reduce((s, v) => s + v, 0);
    const d = l === undefined ? sum(this.dropped) : this.dropped[l];
    const c = l === undefined ? sum(this.choices) : this.choices[l];
    return c ? d / c : 0;
  }
}

/**
 * Per MoE layer, over an evaluation pass: the router's mean gate (over
 * routed (token, expert) pairs), its routing entropy (mean over tokens of
 * the entropy of z's row, nats) and its z-loss (mean over tokens of
 * logsumexp(logits)², computed whatever the z-loss weight). Read back per
 * evaluation batch, never in a training step.
 */
export class RouterFigures {
  readonly #gateSum: number[];
  readonly #pairs: number[];
  readonly #entropy: number[];
  readonly #zLoss: number[];
  readonly #tokens: number[];

  /** Empty figures for `layers` MoE layers. */
  constructor(layers: number) {
    this.#gateSum = new Array(layers).fill(0);
    this.#pairs = new Array(layers).fill(0);
    this.#entropy = new Array(layers).fill(0);
    this.#zLoss = new Array(layers).fill(0);
    this.#tokens = new Array(layers).fill(0);
  }

  /**
   * Adds layer `l`'s batch: its plan, which choices are real (all when
   * absent), and the layer's gates `[N, k]`, z `[N, E]` and router logits `[N, E]`.
   */
  async add(
    l: number,
    plan: RoutingPlan,
    valid: Uint8Array | undefined,
    out: { gates: Tensor; z: Tensor; routerLogits: Tensor },
  ): Promise<void> {
    const [gates, z, logits] = await Promise.all([
      out.gates.data(),
      out.z.data(),
      out.routerLogits.data(),
    ]);
    const { N, E, k } = plan;
    const v = valid ?? new Uint8Array(N * k).fill(1);
    const s = statsOf({ plan, valid: v }, gates as Float32Array, z as Float32Array);
    const empty = plan.active.length * plan.slots; // the slot of a dropped or padding choice
    for (let c = 0; c < N * k; c++) if (v[c] && plan.slotOfChoice[c] !== empty) this.#pairs[l]++;
    this.#gateSum[l] += s.confidence * N; // Σ of the routed gates
    this.#entropy[l] += s.entropy * N;
    for (let n = 0; n < N; n++) {
      let m = -Infinity;
      for (let e = 0; e < E; e++) m = Math.max(m, logits[n * E + e]);
      let sum = 0;
      for (let e = 0; e < E; e++) sum += Math.exp(logits[n * E + e] - m);
      this.#zLoss[l] += (m + Math.log(sum)) ** 2;
    }
    this.#tokens[l] += N;
  }

  /** Layer `l`'s figures (0 before any batch). */
  figures(l: number): { meanGate: number; entropy: number; zLoss: number } {
    const n = this.#tokens[l];
    return {
      meanGate: this.#pairs[l] ? this.#gateSum[l] / this.#pairs[l] : 0,
      entropy: n ? this.#entropy[l] / n : 0,
      zLoss: n ? this.#zLoss[l] / n : 0,
    };
  }
}

/** What one training step returns. */
export interface StepOutput {
  /** The task's statistics of the batch, already weighted for summing (caller disposes). */
  stats: Tensor1D;
  /** The weight of the batch in the sums (examples, or 1 per step). */
  count: number;
  /** The routing of the batch, one per MoE layer (see {@linkcode stepRouting}). */
  plans: StepRouting[];
}

/** The training figures of one evaluation interval (an epoch, or `evalEvery` steps). */
export interface Interval {
  /** Steps taken. */
  step: number;
  /** Sums of the step statistics over the interval. */
  sums: Float32Array;
  /** Σ of the steps' `count`. */
  seen: number;
  /** Steps in the interval. */
  steps: number;
  /** The interval's routing. */
  tally: RoutingTally;
  /** Wall-clock seconds of the interval's steps (batches included). */
  seconds: number;
  /** The backend's name. */
  backend: string;
}

/**
 * The interval means of the first `names.length` step statistics, by name
 * (`sums[i] / seen`).
 *
 * @example
 * ```ts
 * import { intervalMeans, RoutingTally } from "./task.ts";
 * const iv = {
 *   step: 2, sums: Float32Array.from([4, 2]), seen: 2, steps: 2,
 *   tally: new RoutingTally(0, 4), seconds: 1, backend: "cpu",
 * };
 * intervalMeans(iv, ["trainLoss", "trainCe"]); // { trainLoss: 2, trainCe: 1 }
 * ```
 */
export function intervalMeans<K extends string>(
  iv: Interval,
  names: readonly K[],
): Record<K, number> {
  return Object.fromEntries(names.map((k, i) => [k, iv.sums[i] / iv.seen])) as Record<K, number>;
}

/** The best validation score so far (lower is better) and its step. */
export interface Best {
  /** The score (Infinity before the first evaluation). */
  value: number;
  /** Its step (-1 before). */
  step: number;
}

/** What the loop hands the session's summary. */
export interface RunState<Ev> {
  /** Steps taken. */
  step: number;
  /** All steps done. */
  completed: boolean;
  /** The last evaluation, if any ran. */
  lastEval: Ev | null;
  /** The best score, for tasks that keep one. */
  best: Best;
  /** Σ of every step's statistics over the whole run (all sessions). */
  totals: number[];
  /** Σ of every step's count. */
  totalSeen: number;
  /** Seconds of training steps (all sessions). */
  trainSeconds: number;
  /** Seconds of evaluations (all sessions). */
  evalSeconds: number;
  /** The run directory. */
  run: RunDir;
}

/** The progress figures of a task. */
export interface ProgressFigures {
  /** Mean objective so far in the interval. */
  loss: number;
  /** Training accuracy so far (classifiers). */
  acc?: number;
  /** Training perplexity so far (language models). */
  ppl?: number;
}

/** A model being trained: its parameters by name. */
export interface TrainableModel {
  /** Parameters by name (checkpoint keys `param/<name>`). */
  readonly params: Record<string, Variable>;
  /** Frees the parameters. */
  dispose(): void;
}

/** One run of a task: what the loop calls. */
export interface TaskSession<C, Ev, Line extends { step: number }, Summary> {
  /** The model. */
  model: TrainableModel;
  /** Optimizer steps of the run. */
  totalSteps: number;
  /** Steps of linear warm-up. */
  warmupSteps: number;
  /** After the warm-up: cosine decay to 0, or constant. */
  lrDecay: "cosine" | "constant";
  /** MoE layers (routing plans per step). */
  moeLayers: number;
  /** Steps per epoch (epoch-based tasks; shown in progress). */
  stepsPerEpoch?: number;
  /** Parameters without weight decay. */
  excludeFromWeightDecay(name: string): boolean;
  /** Whether an evaluation interval ends after `step` steps. */
  isEvalStep(step: number): boolean;
  /** Extra fields of `config.json` (model facts). */
  configExtras(): object;
  /** Makes the batch of `step`, takes one optimizer step, frees the batch. */
  step(step: number, o: { sigma: number; lr: number; opt: AdamW }): Promise<StepOutput>;
  /** Progress figures from the interval's sums so far. */
  progress(sums: Float32Array, seen: number): ProgressFigures;
  /** Evaluates the model (test or validation set) at σ. */
  evaluate(step: number, sigma: number): Promise<Ev>;
  /** Validation score to keep the best weights by (lower is better); absent: no `best/`. */
  score?(ev: Ev): number;
  /** The `metrics.jsonl` line of an interval. */
  metrics(iv: Interval, ev: Ev, o: { sigma: number; lr: number; best: Best }): Line;
  /** The task's part of `summary.json` (may evaluate, e.g. the best weights). */
  summary(st: RunState<Ev>, sigma: number): Promise<Summary>;
  /** The config, as run. */
  config: C;
}

/** A model family the loop trains: its config table and how to open a run. */
export interface Task<
  C extends CommonSettings & MogeSettings,
  D,
  Ev,
  Line extends { step: number },
  Summary,
> {
  /** `--model` value. */
  name: string;
  /** What it trains, one line. */
  title: string;
  /** The defaults. */
  defaults: C;
  /** Named presets, applied over the defaults. */
  presets: Record<string, Partial<C>>;
  /** The field table (flags, help, bounds). */
  fields: FieldSpec<C>[];
  /** Checks a config (the table, then cross-field rules); throws `RangeError` naming the field. */
  validate(c: C): void;
  /** The default run directory. */
  defaultOutDir(c: C): string;
  /** Loads the data of a config. */
  load(c: C, log: (msg: string) => void): Promise<D>;
  /** Opens a run. */
  open(c: C, data: D, backend: BackendInfo): TaskSession<C, Ev, Line, Summary>;
}
