/**
 * How experts specialize: load, dead experts, routing entropy, class-expert
 * mutual information, per-expert class purity, and how far apart on the map
 * the experts chosen for same-class inputs lie (MoGE's grouping claim,
 * Sec. 2.4 and Fig. 2).
 *
 * @module
 */

import type { Layout } from "../moge/layout.ts";
import { checkInteger } from "../validate.ts";

/** Specialization figures of one model on one data set. */
export interface Specialization {
  /** Tokens routed (first choice) to each expert. */
  tokensPerExpert: number[];
  /** Experts that received no token. */
  deadExperts: number;
  /** Mean per-token entropy of z, in nats (0: one-hot routing; ln E: uniform). */
  meanRoutingEntropy: number;
  /** Entropy of the expert-load distribution, in nats (ln E: perfectly balanced). */
  loadEntropy: number;
  /** Mutual information I(class; expert) of the first-choice assignment, in nats. */
  classExpertMutualInformation: number;
  /** I(class; expert) / H(class): 1 when the expert determines the class. */
  normalizedMutualInformation: number;
  /** For each expert, the fraction of its tokens from its most common class (NaN if dead). */
  purity: number[];
  /** Token-weighted mean purity over live experts. */
  meanPurity: number;
  /**
   * Mean lattice distance between the first-choice experts of two different
   * images of the same class (over all such pairs).
   */
  sameClassMapDistance: number;
  /** The same over pairs of images of different classes (the baseline). */
  differentClassMapDistance: number;
}

function entropy(p: ArrayLike<number>): number {
  let h = 0;
  for (let i = 0; i < p.length; i++) if (p[i] > 0) h -= p[i] * Math.log(p[i]);
  return h;
}

/**
 * Computes {@linkcode Specialization} from routing scores and labels.
 *
 * @param z `[N * E]` routing scores (softmax, noise-free), row-major
 * @param labels `[N]` class of each token
 *
 * @example
 * ```ts
 * import { specialization } from "./specialization.ts";
 * // 2 tokens of class 0 on expert 0, 2 of class 1 on expert 3 (2 x 2 map).
 * const z = [1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1];
 * const s = specialization(z, [0, 0, 1, 1], { rows: 2, cols: 2 }, 2);
 * s.deadExperts; // 2
 * s.normalizedMutualInformation; // 1
 * ```
 */
export function specialization(
  z: ArrayLike<number>,
  labels: ArrayLike<number>,
  layout: Layout,
  numClasses: number,
): Specialization {
  const E = layout.rows * layout.cols;
  const N = labels.length;
  checkInteger("numClasses", numClasses, 1);
  if (z.length !== N * E) {
    throw new RangeError(`z has ${z.length} values, expected N * E = ${N} * ${E} = ${N * E}`);
  }
  const counts = Array.from({ length: numClasses }, () => new Float64Array(E)); // [class][expert]
  const tokens = new Array(E).fill(0);
  let hz = 0;
  for (let n = 0; n < N; n++) {
    let arg = 0;
    let h = 0;
    for (let e = 0; e < E; e++) {
      const v = z[n * E + e];
      if (v > z[n * E + arg]) arg = e;
      if (v > 0) h -= v * Math.log(v);
    }
    hz += h;
    const c = labels[n];
    checkInteger("label", c, 0, numClasses - 1);
    counts[c][arg]++;
    tokens[arg]++;
  }
  const pExpert = tokens.map((t) => t / N);
  const pClass = counts.map((row) => row.reduce((a, b) => a + b, 0) / N);
  let mi = 0;
  for (let c = 0; c < numClasses; c++) {
    for (let e = 0; e < E; e++) {
      const pj = counts[c][e] / N;
      if (pj > 0) mi += pj * Math.log(pj / (pClass[c] * pExpert[e]));
    }
  }
  const hClass = entropy(pClass);
  const purity = tokens.map((t, e) => t === 0 ? NaN : Math.max(...counts.map((row) => row[e])) / t);
  const meanPurity = purity.reduce((s, p, e) => s + (tokens[e] ? p * tokens[e] : 0), 0) / N;

  // Pairwise map distances, from per-class expert histograms: O(classes · E²).
  const dist = (i: number, j: number) =>
    Math.hypot(
      Math.floor(i / layout.cols) - Math.floor(j / layout.cols),
      (i % layout.cols) - (j % layout.cols),
    );
  const pairSum = (a: Float64Array, b: Float64Array) => {
    let s = 0;
    for (let i = 0; i < E; i++) {
      if (!a[i]) continue;
      for (let j = 0; j < E; j++) if (b[j]) s += a[i] * b[j] * dist(i, j);
    }
    return s;
  };
  let sameSum = 0;
  let samePairs = 0;
  let diffSum = 0;
  let diffPairs = 0;
  for (let c = 0; c < numClasses; c++) {
    const nc = pClass[c] * N;
    sameSum += pairSum(counts[c], counts[c]); // includes i = j pairs at distance 0 ...
    samePairs += nc * (nc - 1); // ... which are excluded here: self-pairs add 0 to the sum
    for (let d = 0; d < numClasses; d++) {
      if (d === c) continue;
      diffSum += pairSum(counts[c], counts[d]);
      diffPairs += nc * pClass[d] * N;
    }
  }
  return {
    tokensPerExpert: tokens,
    deadExperts: tokens.filter((t) => t === 0).length,
    meanRoutingEntropy: hz / N,
    loadEntropy: entropy(pExpert),
    classExpertMutualInformation: mi,
    normalizedMutualInformation: hClass > 0 ? mi / hClass : 0,
    purity,
    meanPurity,
    sameClassMapDistance: samePairs ? sameSum / samePairs : NaN,
    differentClassMapDistance: diffPairs ? diffSum / diffPairs : NaN,
  };
}

/**
 * The average routing map Z of each class (the paper's Fig. 2): the mean of z
 * over the tokens of the class, `[numClasses][E]`.
 *
 * @example
 * ```ts
 * import { classMeanMaps } from "./specialization.ts";
 * classMeanMaps([1, 0, 0, 1], [0, 1], 2, 2); // [[1, 0], [0, 1]]
 * ```
 */
export function classMeanMaps(
  z: ArrayLike<number>,
  labels: ArrayLike<number>,
  E: number,
  numClasses: number,
): number[][] {
  const sums = Array.from({ length: numClasses }, () => new Array(E).fill(0));
  const n = new Array(numClasses).fill(0);
  for (let i = 0; i < labels.length; i++) {
    const c = labels[i];
    n[c]++;
    for (let e = 0; e < E; e++) sums[c][e] += z[i * E + e];
  }
  return sums.map((row, c) => row.map((v) => (n[c] ? v / n[c] : 0)));
}
