import fc from "fast-check";
import {
  averageRanks,
  lnGamma,
  meanCi,
  normalCdf,
  pairedTTest,
  regularizedIncompleteBeta,
  studentTCdf,
  studentTQuantile,
  wilcoxonSignedRank,
} from "../src/analysis/stats.ts";
import { assertClose, deepEqual, equal, ok, throws } from "./asserts.ts";

Deno.test("stats: lnGamma at integers and ½ (Γ(n) = (n−1)!, Γ(½) = √π)", () => {
  assertClose(Math.exp(lnGamma(1)), 1, { rtol: 1e-13 });
  assertClose(Math.exp(lnGamma(6)), 120, { rtol: 1e-13 });
  assertClose(Math.exp(lnGamma(0.5)), Math.sqrt(Math.PI), { rtol: 1e-13 });
  assertClose(lnGamma(101), 363.73937555556347, { rtol: 1e-13 }); // ln(100!)
  throws(() => lnGamma(0), /x = 0 must be > 0/);
});

Deno.test("stats: regularized incomplete beta, closed forms", () => {
  // I_x(a, 1) = x^a; I_x(1, b) = 1 − (1 − x)^b; I_½(a, a) = ½.
  assertClose(regularizedIncompleteBeta(0.3, 2, 1), 0.09, { rtol: 1e-12 });
  assertClose(regularizedIncompleteBeta(0.7, 3.5, 1), Math.pow(0.7, 3.5), { rtol: 1e-12 });
  assertClose(regularizedIncompleteBeta(0.2, 1, 4), 1 - Math.pow(0.8, 4), { rtol: 1e-12 });
  assertClose(regularizedIncompleteBeta(0.5, 7.5, 7.5), 0.5, { rtol: 1e-12 });
  // I_x(2, 2) = 3x² − 2x³: at x = 0.25, 0.1875 − 0.03125 = 0.15625.
  assertClose(regularizedIncompleteBeta(0.25, 2, 2), 0.15625, { rtol: 1e-12 });
  equal(regularizedIncompleteBeta(0, 2, 3), 0);
  equal(regularizedIncompleteBeta(1, 2, 3), 1);
  throws(() => regularizedIncompleteBeta(1.5, 2, 3), /x = 1.5 must lie in \[0, 1\]/);
  throws(() => regularizedIncompleteBeta(0.5, -1, 3), /must both be > 0/);
});

Deno.test("stats: law I_x(a, b) + I_{1−x}(b, a) = 1", () => {
  fc.assert(
    fc.property(
      fc.double({ min: 0.001, max: 0.999, noNaN: true }),
      fc.double({ min: 0.1, max: 50, noNaN: true }),
      fc.double({ min: 0.1, max: 50, noNaN: true }),
      (x, a, b) => {
        const s = regularizedIncompleteBeta(x, a, b) + regularizedIncompleteBeta(1 - x, b, a);
        return Math.abs(s - 1) < 1e-10;
      },
    ),
  );
});

Deno.test("stats: Student t quantiles match the textbook table", () => {
  // Two-sided 95 % critical values (any t table, e.g. Student's t table in Moore & McCabe).
  assertClose(studentTQuantile(0.975, 1), 12.706205, { rtol: 1e-6 });
  assertClose(studentTQuantile(0.975, 4), 2.776445, { rtol: 1e-6 });
  assertClose(studentTQuantile(0.975, 9), 2.262157, { rtol: 1e-6 });
  assertClose(studentTQuantile(0.975, 30), 2.042272, { rtol: 1e-6 });
  assertClose(studentTQuantile(0.995, 10), 3.169273, { rtol: 1e-6 });
  assertClose(studentTQuantile(0.025, 4), -2.776445, { rtol: 1e-6 });
  // df = 1 is the Cauchy distribution: F(t) = ½ + atan(t)/π, so F(1) = 0.75.
  assertClose(studentTCdf(1, 1), 0.75, { rtol: 1e-12 });
  // df = 2: F(t) = ½ + t / (2√(2 + t²)); t = 2: ½ + 2/(2√6) = 0.908248290.
  assertClose(studentTCdf(2, 2), 0.5 + 1 / Math.sqrt(6), { rtol: 1e-12 });
  assertClose(studentTCdf(2, 5), 0.9490303, { rtol: 1e-6 }); // R: pt(2, 5)
  equal(studentTCdf(0, 7), 0.5);
  throws(() => studentTQuantile(1, 4), /p = 1 must lie in \(0, 1\)/);
  throws(() => studentTCdf(1, 0), /df = 0 must be > 0/);
});

Deno.test("stats: law studentTCdf(studentTQuantile(p, df), df) = p", () => {
  fc.assert(
    fc.property(
      fc.double({ min: 0.001, max: 0.999, noNaN: true }),
      fc.integer({ min: 1, max: 200 }),
      (p, df) => Math.abs(studentTCdf(studentTQuantile(p, df), df) - p) < 1e-9,
    ),
  );
});

Deno.test("stats: normal CDF at textbook points", () => {
  assertClose(normalCdf(1.959964), 0.975, { rtol: 1e-7 });
  assertClose(normalCdf(0.5), 0.6914624612740131, { rtol: 1e-12 });
  assertClose(normalCdf(-3.5), 2.326290790355250e-4, { rtol: 1e-9 });
  equal(normalCdf(0), 0.5);
});

Deno.test("stats: meanCi by hand", () => {
  // [1..5]: mean 3, s² = (4+1+0+1+4)/4 = 2.5, half-width t_{.975,4} √2.5/√5 = 2.776445·0.7071068
  const ci = meanCi([1, 2, 3, 4, 5]);
  equal(ci.n, 5);
  equal(ci.mean, 3);
  assertClose(ci.sd!, Math.sqrt(2.5), { rtol: 1e-12 });
  assertClose(ci.halfWidth!, 1.963243, { rtol: 1e-6 });
  assertClose(ci.lo!, 3 - 1.963243, { rtol: 1e-6 });
  const one = meanCi([0.7]);
  equal(one.mean, 0.7);
  equal(one.halfWidth, null);
  throws(() => meanCi([]), /xs is empty/);
  throws(() => meanCi([1, NaN]), /xs\[1\] = NaN is not a finite number/);
});

Deno.test("stats: paired t-test on Student's sleep data", () => {
  // Cushny & Peebles' sleep data as in Student (1908) and R's `sleep`: extra hours of sleep,
  // drug 2 minus drug 1 per patient. R: t.test(extra ~ group, data = sleep, paired = TRUE)
  // gives t = -4.0621, df = 9, p-value = 0.002833, 95 % CI -2.4598858 -0.7001142.
  const drug1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0];
  const drug2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4];
  const r = pairedTTest(drug1, drug2);
  equal(r.n, 10);
  equal(r.df, 9);
  assertClose(r.meanDiff, -1.58, { rtol: 1e-12 });
  assertClose(r.t!, -4.0621, { rtol: 1e-4 });
  assertClose(r.p!, 0.002833, { rtol: 1e-3 });
  assertClose(r.ci.lo!, -2.4598858, { rtol: 1e-6 });
  assertClose(r.ci.hi!, -0.7001142, { rtol: 1e-6 });
  // Identical samples: t = 0, p = 1; constant non-zero difference: p = 0.
  equal(pairedTTest([1, 2], [1, 2]).p, 1);
  equal(pairedTTest([2, 3], [1, 2]).p, 0);
  equal(pairedTTest([1], [0]).p, null);
  throws(() => pairedTTest([1, 2], [1]), /pairs need equal lengths/);
});

Deno.test("stats: average ranks share ties", () => {
  deepEqual(averageRanks([10, 20, 10, 30]), [1.5, 3, 1.5, 4]);
  deepEqual(averageRanks([5, 5, 5]), [2, 2, 2]);
});

Deno.test("stats: Wilcoxon signed-rank, exact, Darwin's Zea mays data", () => {
  // Darwin's cross- vs self-fertilized corn height differences (Fisher, The Design of
  // Experiments; the example in scipy.stats.wilcoxon's documentation): W = min(W+, W−) = 24
  // (the negative differences −48 and −67 have ranks 10 and 14), exact two-sided
  // p = 0.041259765625 (= 2 · 676 / 2^15).
  const d = [6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75];
  const r = wilcoxonSignedRank(d, d.map(() => 0));
  equal(r.method, "exact");
  equal(r.wMinus, 24);
  equal(r.wPlus, 96);
  assertClose(r.p, 0.041259765625, { rtol: 1e-12 });
  // Normal approximation with continuity correction: μ = 60, σ² = 15·16·31/24 = 310,
  // z = (24 − 60 + 0.5)/√310 = −2.016268, p = 2Φ(z) = 0.0437723.
  const approx = wilcoxonSignedRank(d, d.map(() => 0), 0);
  equal(approx.method, "normal");
  assertClose(approx.p, 0.0437723, { rtol: 1e-5 });
});

Deno.test("stats: Wilcoxon signed-rank, small cases by hand (zeros and ties)", () => {
  // d = 1, 2, 3: of the 8 equally likely sign patterns, W− ≤ 0 once: p = 2/8.
  equal(wilcoxonSignedRank([1, 2, 3], [0, 0, 0]).p, 0.25);
  // d = 1, 1, 2 (tie: ranks 1.5, 1.5, 3), all positive: P(W− ≤ 0) = 1/8, p = 0.25.
  equal(wilcoxonSignedRank([1, 1, 2], [0, 0, 0]).p, 0.25);
  // d = 1, −1, 2: W+ = 1.5 + 3 = 4.5, W− = 1.5. Attainable W− values over the 8 patterns:
  // 0, 1.5, 1.5, 3, 3, 4.5, 4.5, 6; P(W− ≤ 1.5) = 3/8, p = 0.75.
  const t = wilcoxonSignedRank([1, -1, 2], [0, 0, 0]);
  equal(t.wMinus, 1.5);
  equal(t.p, 0.75);
  // A zero difference is dropped (Wilcoxon's method): same as d = 1, 2, 3.
  const z = wilcoxonSignedRank([1, 2, 3, 5], [0, 0, 0, 5]);
  equal(z.zeros, 1);
  equal(z.n, 3);
  equal(z.p, 0.25);
  equal(wilcoxonSignedRank([1, 2], [1, 2]).p, 1);
});

Deno.test("stats: law the Wilcoxon p-value is symmetric in the sign of the differences", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: -20, max: 20 }), { minLength: 1, maxLength: 15 }),
      (d) => {
        const zero = d.map(() => 0);
        const p1 = wilcoxonSignedRank(d, zero).p;
        const p2 = wilcoxonSignedRank(d.map((v) => -v), zero).p;
        return Math.abs(p1 - p2) < 1e-12 && p1 > 0 && p1 <= 1;
      },
    ),
  );
});

Deno.test("stats: exact and normal Wilcoxon p-values agree roughly at n = 25", () => {
  const d = Array.from({ length: 25 }, (_, i) => (i % 3 === 0 ? -1 : 1) * (i + 1));
  const exact = wilcoxonSignedRank(d, d.map(() => 0));
  const approx = wilcoxonSignedRank(d, d.map(() => 0), 0);
  ok(Math.abs(exact.p - approx.p) < 0.01, `${exact.p} vs ${approx.p}`);
});
