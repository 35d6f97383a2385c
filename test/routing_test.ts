import fc from "fast-check";
import { deepEqual, equal, ok, throws } from "./asserts.ts";
import { CAPACITY_RULES, expertCapacity, planRouting } from "../src/moe/routing.ts";

Deno.test("expertCapacity(): C_f·ceil(N/E) < 1 clamps to 1 where Tutel's formula gives 0 (N = 7, E = 16, k = 1, C_f = 0.5)", () => {
  // Tutel: k·floor(C_f·ceil(N/E)) = 1·floor(0.5·ceil(7/16)) = floor(0.5·1) = 0 (every token dropped).
  // Kept here: clamped to 1, so each expert still takes its highest-priority token.
  equal(expertCapacity(7, 16, 1, 0.5), 1);
  equal(expertCapacity(7, 16, 1, 0.5, "tutel"), 1);
  // V-MoE: ceil(k·N·C_f/E) = ceil(3.5/16) = 1, up to a multiple of 4 = 4; never 0 for C_f > 0.
  equal(expertCapacity(7, 16, 1, 0.5, "vmoe"), 4);
  // The plan of that batch routes 7 tokens (not 0): top-1 experts 0..6 of an identity-like score
  // matrix are all different, so with 1 slot per expert none is dropped.
  const N = 7, E = 16;
  const scores = Array.from({ length: N * E }, (_, i) => (i % E === Math.floor(i / E) ? 1 : 0));
  const plan = planRouting(scores, N, E, { k: 1, capacityFactor: 0.5 });
  equal(plan.capacity, 1);
  equal(plan.dropped, 0);
  deepEqual([...plan.expert], [0, 1, 2, 3, 4, 5, 6]);
});

Deno.test("expertCapacity(rule): Tutel's k·floor(C_f·ceil(N/E)) and V-MoE's ceil(k·N·C_f/E) up to a multiple of 4, hand-computed", () => {
  // Tutel: 1·floor(4·ceil(200/64)) = floor(4·4) = 16; V-MoE: ceil(200·4/64) = ceil(12.5) = 13 -> 16.
  equal(expertCapacity(200, 64, 1, 4, "tutel"), 16);
  equal(expertCapacity(200, 64, 1, 4, "vmoe"), 16);
  // Tutel: 2·floor(1.25·ceil(10/4)) = 2·floor(3.75) = 6; V-MoE: ceil(2·10·1.25/4) = ceil(6.25) = 7 -> 8.
  equal(expertCapacity(10, 4, 2, 1.25, "tutel"), 6);
  equal(expertCapacity(10, 4, 2, 1.25, "vmoe"), 8);
  // Tutel: 1·floor(1·ceil(4096/16)) = 256; V-MoE: ceil(4096/16) = 256, already a multiple of 4.
  equal(expertCapacity(4096, 16, 1, 1, "vmoe"), 256);
  // V-MoE above N is clamped to N: ceil(2·3·2/2) = 6 -> 8, but N = 3.
  equal(expertCapacity(3, 2, 2, 2, "vmoe"), 3);
  // No limit for C_f 0 or Infinity, whatever the rule.
  equal(expertCapacity(10, 4, 1, 0, "vmoe"), 10);
  equal(expertCapacity(10, 4, 1, Infinity, "vmoe"), 10);
  throws(
    () => expertCapacity(10, 4, 1, 1, "gshard" as "tutel"),
    /^RangeError: capacity rule = "gshard" is invalid: allowed are tutel, vmoe$/,
  );
});

Deno.test("expertCapacity() law: 1 <= C_e <= N, C_e = the rule's formula whenever that lies in [1, N], and V-MoE's is a multiple of 4 below N", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 5000 }),
      fc.integer({ min: 1, max: 512 }),
      fc.integer({ min: 1, max: 8 }),
      fc.double({ min: 0.01, max: 8, noNaN: true }),
      fc.constantFrom(...CAPACITY_RULES),
      (N, E0, k0, cf, rule) => {
        const E = Math.max(E0, k0);
        const k = k0;
        const c = expertCapacity(N, E, k, cf, rule);
        ok(Number.isInteger(c) && c >= 1 && c <= N, `C_e = ${c} outside [1, ${N}]`);
        const raw = rule === "tutel"
          ? k * Math.floor(cf * Math.ceil(N / E))
          : 4 * Math.ceil(Math.ceil((k * N * cf) / E) / 4);
        if (raw >= 1 && raw <= N) equal(c, raw);
        if (rule === "vmoe" && c < N) equal(c % 4, 0);
      },
    ),
  );
});

Deno.test("planRouting(capacityRule) uses the rule's capacity", () => {
  // 10 tokens all choosing expert 0 of 4 (top-1): Tutel C = floor(1·ceil(10/4)) = 3 -> 3 routed;
  // V-MoE C = ceil(10·1/4) = 3 -> 4 -> 4 routed.
  const scores = Array.from({ length: 40 }, (_, i) => (i % 4 === 0 ? 1 : 0));
  equal(planRouting(scores, 10, 4, { k: 1, capacityFactor: 1 }).dropped, 7);
  equal(planRouting(scores, 10, 4, { k: 1, capacityFactor: 1, capacityRule: "vmoe" }).dropped, 6);
});
