/**
 * Routing statistics read back lazily: a training step adds its per-expert
 * demand and load counts as device tensors (no readback), and the log reads
 * the running sums back once, when someone asks (e.g. once per logging
 * interval). On webgpu a readback drains the GPU queue, so one per interval
 * instead of one per step keeps the step free of stalls.
 *
 * @module
 */

import { tf } from "../deps.ts";
import type { Tensor } from "../types.ts";

export type { Tensor } from "../types.ts";
import { checkInteger } from "../validate.ts";

/** Routing statistics summed over the steps since the last {@linkcode RoutingStatsLog.read}. */
export interface RoutingStatsSummary {
  /** Steps added. */
  steps: number;
  /** (token, choice) pairs routed in those steps, Σ N·k. */
  choices: number;
  /** Choices of each expert before capacity, summed, `[E]`. */
  demand: Int32Array;
  /** Choices each expert processed (after capacity), summed, `[E]`. */
  load: Int32Array;
  /** Dropped choices, Σ N·k − Σ load. */
  dropped: number;
  /** `dropped / choices` (0 when no choice was routed). */
  dropRate: number;
}

/**
 * Accumulates `[2, E]` int32 count tensors (row 0 demand, row 1 load, as
 * `routingCountsWebGPU` gives) on the device: each {@linkcode add} is one
 * add kernel and no readback; {@linkcode read} is one readback of `2·E`
 * int32s, then starts a new interval. Works on any backend.
 *
 * @example
 * ```ts
 * import { tf } from "../deps.ts";
 * import { RoutingStatsLog } from "./routing_stats_log.ts";
 * const log = new RoutingStatsLog(2);
 * log.add(tf.tensor2d([[2, 1], [1, 1]], [2, 2], "int32"), 3); // step 1: 3 choices, 1 dropped
 * log.add(tf.tensor2d([[0, 3], [0, 1]], [2, 2], "int32"), 3); // step 2: 3 choices, 2 dropped
 * const s = await log.read(); // one readback for both steps
 * console.log(s.load, s.dropped, s.dropRate); // Int32Array [1, 2], 3, 0.5
 * log.dispose();
 * ```
 */
export class RoutingStatsLog {
  /** Experts. */
  readonly E: number;
  #sum: Tensor | null = null;
  #steps = 0;
  #choices = 0;

  /**
   * An empty log for counts of E experts.
   *
   * @param E the number of experts (the width of the counts added)
   */
  constructor(E: number) {
    checkInteger("E (experts)", E, 1);
    this.E = E;
  }

  /** Steps added since the last read. */
  get steps(): number {
    return this.#steps;
  }

  /**
   * Adds one step's counts (takes ownership: `counts` is disposed).
   *
   * @param counts int32 `[2, E]`: demand, then load
   * @param choices the step's N·k (token, choice) pairs
   */
  add(counts: Tensor, choices: number): void {
    if (counts.rank !== 2 || counts.shape[0] !== 2 || counts.shape[1] !== this.E) {
      const shape = `[${counts.shape}]`;
      counts.dispose();
      throw new RangeError(`RoutingStatsLog.add: counts must be [2, ${this.E}], got ${shape}`);
    }
    checkInteger("choices (N·k)", choices, 0);
    const counted = counts.dtype === "int32" ? counts : tf.tidy(() => counts.toInt());
    if (counted !== counts) counts.dispose();
    if (this.#sum === null) {
      this.#sum = counted;
    } else {
      const old = this.#sum;
      this.#sum = tf.add(old, counted);
      tf.dispose([old, counted]);
    }
    this.#steps++;
    this.#choices += choices;
  }

  /**
   * Reads the sums back (one readback) and starts a new interval at once, so
   * steps added while the read is pending count in the next interval.
   */
  async read(): Promise<RoutingStatsSummary> {
    const E = this.E;
    const sum = this.#sum;
    const steps = this.#steps;
    const choices = this.#choices;
    this.#sum = null;
    this.#steps = 0;
    this.#choices = 0;
    let values: Int32Array;
    try {
      values = sum ? Int32Array.from(await sum.data()) : new Int32Array(2 * E);
    } finally {
      sum?.dispose();
    }
    const load = values.slice(E);
    const dropped = choices - load.reduce((a, b) => a + b, 0);
    return {
      steps,
      choices,
      demand: values.slice(0, E),
      load,
      dropped,
      dropRate: choices > 0 ? dropped / choices : 0,
    };
  }

  /** Frees the running sums. */
  dispose(): void {
    this.#sum?.dispose();
    this.#sum = null;
    this.#steps = 0;
    this.#choices = 0;
  }
}
