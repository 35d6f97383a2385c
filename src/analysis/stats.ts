/**
 * Small-sample statistics for comparing runs over seeds: Student t
 * distribution (CDF and quantiles, through the regularized incomplete beta
 * function), mean with a t confidence interval, the paired t-test and the
 * Wilcoxon signed-rank test (exact null distribution for small n, normal
 * approximation beyond, ties by average ranks).
 *
 * @module
 */

function checkFinite(fn: string, name: string, v: number): void {
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new RangeError(`${fn}: ${name} = ${String(v)} is not a finite number`);
  }
}

function checkValues(fn: string, name: string, xs: readonly number[]): void {
  if (!Array.isArray(xs)) throw new TypeError(`${fn}: ${name} must be an array of numbers`);
  xs.forEach((v, i) => checkFinite(fn, `${name}[${i}]`, v));
}

// Lanczos approximation (g = 7, 9 coefficients), |relative error| < 1e-15 for x > 0.
const LANCZOS = [
  0.99999999999980993,
  676.5203681218851,
  -1259.1392167224028,
  771.32342877765313,
  -176.61502916214059,
  12.507343278686905,
  -0.13857109526572012,
  9.9843695780195716e-6,
  1.5056327351493116e-7,
];

/**
 * ln Γ(x) for x > 0 (Lanczos approximation, relative error about 1e-15).
 *
 * @example
 * ```ts
 * import { lnGamma } from "./stats.ts";
 * Math.exp(lnGamma(5)); // 24 (= 4!)
 * ```
 */
export function lnGamma(x: number): number {
  checkFinite("lnGamma", "x", x);
  if (x <= 0) throw new RangeError(`lnGamma: x = ${x} must be > 0`);
  if (x < 0.5) {
    // Reflection: Γ(x) Γ(1 − x) = π / sin(πx).
    return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  }
  const z = x - 1;
  let a = LANCZOS[0];
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += LANCZOS[i] / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

// Continued fraction of I_x(a, b) (the modified Lentz method), valid for x < (a + 1) / (a + b + 2).
function betaContinuedFraction(x: number, a: number, b: number): number {
  const TINY = 1e-300;
  let c = 1;
  let d = 1 - (a + b) * x / (a + 1);
  if (Math.abs(d) < TINY) d = TINY;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 1000; m++) {
    const m2 = 2 * m;
    // Even step: d_{2m} = m (b − m) x / ((a + 2m − 1)(a + 2m)).
    let num = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
    d = 1 + num * d;
    if (Math.abs(d) < TINY) d = TINY;
    c = 1 + num / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    h *= d * c;
    // Odd step: d_{2m+1} = −(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1)).
    num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
    d = 1 + num * d;
    if (Math.abs(d) < TINY) d = TINY;
    c = 1 + num / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-15) return h;
  }
  return h;
}

/**
 * The regularized incomplete beta function
 * I_x(a, b) = B(x; a, b) / B(a, b) = (1 / B(a, b)) ∫_0^x t^{a−1} (1 − t)^{b−1} dt,
 * by its continued fraction (using I_x(a, b) = 1 − I_{1−x}(b, a) where that
 * converges faster).
 *
 * @param x in [0, 1]
 * @param a > 0
 * @param b > 0
 *
 * @example
 * ```ts
 * import { regularizedIncompleteBeta } from "./stats.ts";
 * regularizedIncompleteBeta(0.5, 3, 3); // 0.5 (symmetry)
 * regularizedIncompleteBeta(0.3, 2, 1); // 0.09 (= x^a when b = 1)
 * ```
 */
export function regularizedIncompleteBeta(x: number, a: number, b: number): number {
  const fn = "regularizedIncompleteBeta";
  checkFinite(fn, "x", x);
  checkFinite(fn, "a", a);
  checkFinite(fn, "b", b);
  if (x < 0 || x > 1) throw new RangeError(`${fn}: x = ${x} must lie in [0, 1]`);
  if (a <= 0 || b <= 0) throw new RangeError(`${fn}: a = ${a}, b = ${b} must both be > 0`);
  if (x === 0) return 0;
  if (x === 1) return 1;
  // Prefactor x^a (1 − x)^b / B(a, b).
  const lnFront = lnGamma(a + b) - lnGamma(a) - lnGamma(b) + a * Math.log(x) +
    b * Math.log1p(-x);
  const front = Math.exp(lnFront);
  if (x < (a + 1) / (a + b + 2)) return front * betaContinuedFraction(x, a, b) / a;
  return 1 - front * betaContinuedFraction(1 - x, b, a) / b;
}

function checkDf(fn: string, df: number): void {
  checkFinite(fn, "df", df);
  if (df <= 0) throw new RangeError(`${fn}: df = ${df} must be > 0`);
}

/**
 * The CDF of Student's t distribution with `df` degrees of freedom:
 * P(T ≤ t) = 1 − ½ I_{df/(df+t²)}(df/2, ½) for t ≥ 0, and symmetric for t < 0.
 *
 * @example
 * ```ts
 * import { studentTCdf } from "./stats.ts";
 * studentTCdf(0, 3); // 0.5
 * studentTCdf(2.776445, 4); // ≈ 0.975
 * ```
 */
export function studentTCdf(t: number, df: number): number {
  checkDf("studentTCdf", df);
  if (Number.isNaN(t)) throw new RangeError("studentTCdf: t is NaN");
  if (t === Infinity) return 1;
  if (t === -Infinity) return 0;
  const tail = 0.5 * regularizedIncompleteBeta(df / (df + t * t), df / 2, 0.5); // P(T > |t|)
  return t >= 0 ? 1 - tail : tail;
}

/**
 * The p-quantile of Student's t distribution with `df` degrees of freedom
 * (inverts {@linkcode studentTCdf} by bisection to about 1e-12).
 *
 * @example
 * ```ts
 * import { studentTQuantile } from "./stats.ts";
 * studentTQuantile(0.975, 4); // ≈ 2.776445
 * ```
 */
export function studentTQuantile(p: number, df: number): number {
  const fn = "studentTQuantile";
  checkFinite(fn, "p", p);
  checkDf(fn, df);
  if (!(p > 0 && p < 1)) throw new RangeError(`${fn}: p = ${p} must lie in (0, 1)`);
  if (p === 0.5) return 0;
  if (p < 0.5) return -studentTQuantile(1 - p, df);
  let lo = 0;
  let hi = 1;
  while (studentTCdf(hi, df) < p) {
    lo = hi;
    hi *= 2;
    if (hi > 1e300) return Infinity;
  }
  for (let i = 0; i < 200 && hi - lo > 1e-13 * Math.max(1, hi); i++) {
    const mid = 0.5 * (lo + hi);
    if (studentTCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

/**
 * The CDF of the standard normal distribution, Φ(z) = ½ erfc(−z/√2): erfc from
 * the Maclaurin series of erf for |z|/√2 < 2 and from its continued fraction
 * beyond (both to about 1e-15).
 *
 * @example
 * ```ts
 * import { normalCdf } from "./stats.ts";
 * normalCdf(1.959964); // ≈ 0.975
 * ```
 */
export function normalCdf(z: number): number {
  if (Number.isNaN(z)) throw new RangeError("normalCdf: z is NaN");
  if (z === Infinity) return 1;
  if (z === -Infinity) return 0;
  const x = Math.abs(z) / Math.SQRT2;
  let erfc: number;
  if (x < 2) {
    // erf(x) = 2/√π Σ_n (−1)^n x^{2n+1} / (n! (2n+1)).
    let sum = 0;
    let term = x;
    for (let n = 0; n < 200; n++) {
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
      term *= -x * x / (n + 1);
    }
    erfc = 1 - 2 / Math.sqrt(Math.PI) * sum;
  } else {
    // erfc(x) = exp(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...))))), from the tail.
    let f = 0;
    for (let k = 60; k >= 1; k--) f = (k / 2) / (x + f);
    erfc = Math.exp(-x * x) / Math.sqrt(Math.PI) / (x + f);
  }
  return z >= 0 ? 1 - erfc / 2 : erfc / 2;
}

/** Mean, standard deviation and Student-t confidence interval of a sample. */
export interface MeanCi {
  /** Sample size. */
  n: number;
  /** Sample mean. */
  mean: number;
  /** Sample standard deviation (n − 1 in the denominator; null when n < 2). */
  sd: number | null;
  /** Half-width t_{(1+level)/2, n−1} · sd / √n (null when n < 2). */
  halfWidth: number | null;
  /** mean − halfWidth (null when n < 2). */
  lo: number | null;
  /** mean + halfWidth (null when n < 2). */
  hi: number | null;
  /** Confidence level, e.g. 0.95. */
  level: number;
}

/**
 * Arithmetic mean.
 *
 * @example
 * ```ts
 * import { mean } from "./stats.ts";
 * mean([1, 2, 6]); // 3
 * ```
 */
export function mean(xs: readonly number[]): number {
  checkValues("mean", "xs", xs);
  if (xs.length === 0) throw new RangeError("mean: xs is empty (need at least one value)");
  return xs.reduce((s, v) => s + v, 0) / xs.length;
}

/**
 * Mean and its Student-t confidence interval, mean ± t_{(1+level)/2, n−1} s / √n.
 *
 * @example
 * ```ts
 * import { meanCi } from "./stats.ts";
 * const ci = meanCi([1, 2, 3, 4, 5]); // mean 3, sd √2.5, half-width 2.776445·√2.5/√5
 * ci.halfWidth; // ≈ 1.963243
 * ```
 */
export function meanCi(xs: readonly number[], level = 0.95): MeanCi {
  checkValues("meanCi", "xs", xs);
  checkFinite("meanCi", "level", level);
  if (!(level > 0 && level < 1)) {
    throw new RangeError(`meanCi: level = ${level} must lie in (0, 1)`);
  }
  const n = xs.length;
  if (n === 0) throw new RangeError("meanCi: xs is empty (need at least one value)");
  const m = mean(xs);
  if (n < 2) return { n, mean: m, sd: null, halfWidth: null, lo: null, hi: null, level };
  const ss = xs.reduce((s, v) => s + (v - m) * (v - m), 0);
  const sd = Math.sqrt(ss / (n - 1));
  const hw = studentTQuantile((1 + level) / 2, n - 1) * sd / Math.sqrt(n);
  return { n, mean: m, sd, halfWidth: hw, lo: m - hw, hi: m + hw, level };
}

/** Result of {@linkcode pairedTTest}. */
export interface PairedTTest {
  /** Number of pairs. */
  n: number;
  /** Mean of the differences a_i − b_i. */
  meanDiff: number;
  /** The mean difference's confidence interval (fields null when n < 2). */
  ci: MeanCi;
  /** t = mean / (sd / √n) (null when n < 2; ±Infinity when all differences are equal and non-zero, 0 when all are 0). */
  t: number | null;
  /** Degrees of freedom n − 1. */
  df: number;
  /** Two-sided p-value 2 P(T_{n−1} ≥ |t|) (null when n < 2). */
  p: number | null;
}

function differences(fn: string, a: readonly number[], b: readonly number[]): number[] {
  checkValues(fn, "a", a);
  checkValues(fn, "b", b);
  if (a.length !== b.length) {
    throw new RangeError(
      `${fn}: a has ${a.length} values and b ${b.length}: pairs need equal lengths`,
    );
  }
  if (a.length === 0) throw new RangeError(`${fn}: no pairs`);
  return a.map((v, i) => v - b[i]);
}

/**
 * Paired t-test of H0: E[a − b] = 0 (two-sided), with the confidence interval
 * of the mean difference.
 *
 * @example
 * ```ts
 * import { pairedTTest } from "./stats.ts";
 * const r = pairedTTest([2, 4, 6], [1, 2, 3]); // differences 1, 2, 3: t = 2 / (1/√3) = 3.4641
 * r.t; // ≈ 3.4641
 * ```
 */
export function pairedTTest(
  a: readonly number[],
  b: readonly number[],
  level = 0.95,
): PairedTTest {
  const d = differences("pairedTTest", a, b);
  const ci = meanCi(d, level);
  const n = d.length;
  if (n < 2) return { n, meanDiff: ci.mean, ci, t: null, df: 0, p: null };
  let t: number;
  if (ci.sd === 0) t = ci.mean === 0 ? 0 : ci.mean > 0 ? Infinity : -Infinity;
  else t = ci.mean / (ci.sd! / Math.sqrt(n));
  const p = Math.min(1, 2 * (1 - studentTCdf(Math.abs(t), n - 1)));
  return { n, meanDiff: ci.mean, ci, t, df: n - 1, p };
}

/** Result of {@linkcode wilcoxonSignedRank}. */
export interface WilcoxonResult {
  /** Pairs with a non-zero difference (zeros are dropped, Wilcoxon's method). */
  n: number;
  /** Pairs dropped because their difference is 0. */
  zeros: number;
  /** W+ = sum of the ranks of |d| over positive differences (average ranks for ties). */
  wPlus: number;
  /** W− = sum of the ranks over negative differences. */
  wMinus: number;
  /** Two-sided p-value (1 when n = 0). */
  p: number;
  /** "exact" (the permutation distribution of the signed ranks, ties included) or "normal". */
  method: "exact" | "normal";
}

/** Largest n for which {@linkcode wilcoxonSignedRank} uses the exact distribution by default. */
export const WILCOXON_EXACT_MAX_N = 25;

/**
 * Average ranks (1-based) of values, ties sharing the mean of their ranks.
 *
 * @example
 * ```ts
 * import { averageRanks } from "./stats.ts";
 * averageRanks([10, 20, 10, 30]); // [1.5, 3, 1.5, 4]
 * ```
 */
export function averageRanks(xs: readonly number[]): number[] {
  checkValues("averageRanks", "xs", xs);
  const order = xs.map((v, i) => [v, i] as const).sort((p, q) => p[0] - q[0]);
  const ranks = new Array<number>(xs.length);
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && order[j + 1][0] === order[i][0]) j++;
    const r = (i + 1 + j + 1) / 2;
    for (let k = i; k <= j; k++) ranks[order[k][1]] = r;
    i = j + 1;
  }
  return ranks;
}

/**
 * Wilcoxon signed-rank test of H0: the differences a_i − b_i are symmetric
 * about 0 (two-sided). Zero differences are dropped; tied |d| get average
 * ranks. For n ≤ `exactMaxN` the p-value comes from the exact null
 * distribution of W+ given these ranks (each sign ± with probability ½,
 * counted over all 2^n sign patterns by dynamic programming over doubled
 * ranks); beyond, from the normal approximation with the tie-corrected
 * variance n(n+1)(2n+1)/24 − Σ(t³ − t)/48 and a continuity correction of ½.
 *
 * @example
 * ```ts
 * import { wilcoxonSignedRank } from "./stats.ts";
 * // d = 1, 2, 3: all 8 sign patterns are equally likely; W− = 0 happens once, W+ = 0 once.
 * wilcoxonSignedRank([1, 2, 3], [0, 0, 0]).p; // 0.25
 * ```
 */
export function wilcoxonSignedRank(
  a: readonly number[],
  b: readonly number[],
  exactMaxN = WILCOXON_EXACT_MAX_N,
): WilcoxonResult {
  const all = differences("wilcoxonSignedRank", a, b);
  const d = all.filter((v) => v !== 0);
  const zeros = all.length - d.length;
  const n = d.length;
  if (n === 0) return { n, zeros, wPlus: 0, wMinus: 0, p: 1, method: "exact" };
  const ranks = averageRanks(d.map(Math.abs));
  let wPlus = 0;
  d.forEach((v, i) => {
    if (v > 0) wPlus += ranks[i];
  });
  const total = n * (n + 1) / 2;
  const wMinus = total - wPlus;
  if (n <= exactMaxN) {
    // Doubled ranks are integers (average ranks are multiples of ½).
    const r2 = ranks.map((r) => Math.round(2 * r));
    const max = r2.reduce((s, v) => s + v, 0);
    // counts[s] = number of sign patterns whose doubled W+ is s; probabilities kept as
    // fractions of 2^n by halving at each step (exact in binary floating point for n ≤ 25).
    let counts = new Float64Array(max + 1);
    counts[0] = 1;
    for (const r of r2) {
      const next = new Float64Array(max + 1);
      for (let s = 0; s <= max; s++) {
        if (counts[s] === 0) continue;
        next[s] += counts[s] / 2;
        next[s + r] += counts[s] / 2;
      }
      counts = next;
    }
    const w2 = Math.round(2 * Math.min(wPlus, wMinus));
    let lower = 0;
    for (let s = 0; s <= w2; s++) lower += counts[s];
    return { n, zeros, wPlus, wMinus, p: Math.min(1, 2 * lower), method: "exact" };
  }
  const tieGroups = new Map<number, number>();
  for (const r of ranks) tieGroups.set(r, (tieGroups.get(r) ?? 0) + 1);
  let tieTerm = 0;
  for (const t of tieGroups.values()) tieTerm += t * t * t - t;
  const variance = n * (n + 1) * (2 * n + 1) / 24 - tieTerm / 48;
  const mu = total / 2;
  const w = Math.min(wPlus, wMinus);
  const z = variance > 0 ? Math.min(0, w - mu + 0.5) / Math.sqrt(variance) : 0;
  return { n, zeros, wPlus, wMinus, p: Math.min(1, 2 * normalCdf(z)), method: "normal" };
}
