import { classMeanMaps, specialization } from "../src/analysis/specialization.ts";
import { assertClose, deepEqual, equal, ok, throws } from "./asserts.ts";

const oneHot = (E: number, experts: number[]) =>
  experts.flatMap((e) => Array.from({ length: E }, (_, i) => (i === e ? 1 : 0)));

Deno.test("specialization() of a class-determined routing has NMI 1, purity 1, same-class distance 0", () => {
  // 3 x 3 map; class 0 -> expert 0, class 1 -> expert 8 (opposite corners).
  const z = oneHot(9, [0, 0, 8, 8, 8]);
  const s = specialization(z, [0, 0, 1, 1, 1], { rows: 3, cols: 3 }, 2);
  deepEqual(s.tokensPerExpert, [2, 0, 0, 0, 0, 0, 0, 0, 3]);
  equal(s.deadExperts, 7);
  assertClose(s.normalizedMutualInformation, 1, { atol: 1e-12 });
  equal(s.meanPurity, 1);
  equal(s.sameClassMapDistance, 0);
  assertClose(s.differentClassMapDistance, Math.hypot(2, 2), { atol: 1e-12 });
  equal(s.meanRoutingEntropy, 0);
  // Load entropy of (2/5, 3/5).
  assertClose(s.loadEntropy, -(0.4 * Math.log(0.4) + 0.6 * Math.log(0.6)), { atol: 1e-12 });
});

Deno.test("specialization() of a class-blind routing has zero mutual information", () => {
  // Each class spreads evenly over experts 0 and 1 (adjacent: distance 1).
  const z = oneHot(4, [0, 1, 0, 1]);
  const s = specialization(z, [0, 0, 1, 1], { rows: 2, cols: 2 }, 2);
  assertClose(s.classExpertMutualInformation, 0, { atol: 1e-12 });
  equal(s.meanPurity, 0.5);
  // Same-class ordered pairs: (e0, e1) and (e1, e0) for each class: mean distance 1.
  equal(s.sameClassMapDistance, 1);
  // Different-class pairs: 8 ordered pairs, half at distance 0, half at 1.
  equal(s.differentClassMapDistance, 0.5);
  ok(Number.isNaN(s.purity[2]));
});

Deno.test("specialization() measures the entropy of soft routing scores", () => {
  const s = specialization([0.5, 0.5, 0, 0], [0], { rows: 2, cols: 2 }, 1);
  assertClose(s.meanRoutingEntropy, Math.log(2), { atol: 1e-12 });
});

Deno.test("specialization() refuses scores that do not match N x E", () => {
  throws(() => specialization([1, 0, 0], [0], { rows: 2, cols: 2 }, 1), /expected N \* E/);
  throws(() => specialization([1, 0, 0, 0], [3], { rows: 2, cols: 2 }, 2), /label = 3/);
});

Deno.test("classMeanMaps() averages z per class", () => {
  deepEqual(classMeanMaps([1, 0, 0, 1, 0.5, 0.5], [0, 1, 0], 2, 2), [[0.75, 0.25], [0, 1]]);
});
