import fc from "fast-check";
import { assertClose, deepEqual, equal, ok, throws } from "./asserts.ts";
import { sigmaSchedule, type SigmaScheduleOptions } from "../src/moge/sigma_schedule.ts";

/** Valid schedule options: σ_max >= σ_min > 0, γ >= 0, T >= 1. */
const schedules = fc.record({
  sigmaMin: fc.double({ min: -3, max: 2, noNaN: true }).map((x) => 10 ** x),
  spread: fc.oneof(fc.constant(0), fc.double({ min: -3, max: 3, noNaN: true }).map((x) => 10 ** x)),
  gamma: fc.oneof(fc.constantFrom(0, 0.3, 1, 2), fc.double({ min: 0, max: 5, noNaN: true })),
  totalSteps: fc.integer({ min: 1, max: 100_000 }),
}).map(({ sigmaMin, spread, gamma, totalSteps }): SigmaScheduleOptions => ({
  sigmaMin,
  sigmaMax: sigmaMin + spread,
  gamma,
  totalSteps,
}));

Deno.test("sigmaSchedule() gives hand-computed values (σ 10 → 1.5 over 100 steps)", () => {
  const linear = sigmaSchedule({ sigmaMax: 10, sigmaMin: 1.5, gamma: 1, totalSteps: 100 });
  equal(linear(0), 10);
  assertClose(linear(50), 5.75, { atol: 1e-12 });
  assertClose(linear(25), 7.875, { atol: 1e-12 });
  equal(linear(100), 1.5);
  equal(linear(250), 1.5);
  const paper = sigmaSchedule({ sigmaMax: 10, sigmaMin: 1.5, gamma: 0.3, totalSteps: 100 });
  // 10 - 8.5 · 0.5^0.3 = 10 - 8.5 · 0.8122524 = 3.0958546
  assertClose(paper(50), 3.0958546, { atol: 1e-6 });
  // 10 - 8.5 · 0.01^0.3 = 10 - 8.5 · 0.2511886 = 7.8648966
  assertClose(paper(1), 7.8648966, { atol: 1e-6 });
  const squared = sigmaSchedule({ sigmaMax: 10, sigmaMin: 2, gamma: 2, totalSteps: 10 });
  assertClose(squared(5), 8, { atol: 1e-12 }); // 10 - 8 · 0.25
});

Deno.test("σ(0) = σ_max for γ > 0 and σ(T) = σ_min, exactly", () => {
  fc.assert(
    fc.property(schedules, (o) => {
      const sigma = sigmaSchedule(o);
      if (o.gamma > 0) equal(sigma(0), o.sigmaMax);
      equal(sigma(o.totalSteps), o.sigmaMin);
    }),
    { numRuns: 500 },
  );
});

Deno.test("σ(t) is non-increasing in t and stays in [σ_min, σ_max]", () => {
  fc.assert(
    fc.property(
      schedules,
      fc.double({ min: 0, max: 1.5, noNaN: true }),
      fc.double({ min: 0, max: 1.5, noNaN: true }),
      (o, u, v) => {
        const sigma = sigmaSchedule(o);
        const [t1, t2] = [Math.min(u, v) * o.totalSteps, Math.max(u, v) * o.totalSteps];
        const [s1, s2] = [sigma(t1), sigma(t2)];
        ok(s1 >= s2, `σ(${t1}) = ${s1} < σ(${t2}) = ${s2}`);
        for (const s of [s1, s2]) ok(o.sigmaMin <= s && s <= o.sigmaMax, `${s} outside range`);
      },
    ),
    { numRuns: 500 },
  );
});

Deno.test("σ(t) = σ_max − (σ_max − σ_min)·(t/T)^γ inside [0, T] (eq. 8)", () => {
  fc.assert(
    fc.property(schedules, fc.double({ min: 0, max: 1, noNaN: true }), (o, u) => {
      const t = u * o.totalSteps;
      const shape = o.gamma === 0 ? 1 : (t / o.totalSteps) ** o.gamma;
      const expected = o.sigmaMax - (o.sigmaMax - o.sigmaMin) * shape;
      assertClose(sigmaSchedule(o)(t), expected, { atol: 1e-12, rtol: 1e-12 });
    }),
    { numRuns: 300 },
  );
});

Deno.test("at γ = 1 the schedule is linear: equal steps in t give equal drops in σ", () => {
  fc.assert(
    fc.property(schedules, fc.integer({ min: 0, max: 1000 }), (o, k) => {
      const sigma = sigmaSchedule({ ...o, gamma: 1 });
      const T = o.totalSteps;
      const t = (k % T) + 0.5;
      const drop = (o.sigmaMax - o.sigmaMin) / T;
      const tol = { atol: 1e-12, rtol: 1e-9 };
      assertClose(sigma(t - 0.5) - sigma(t), drop / 2, { ...tol, atol: 1e-9 * o.sigmaMax });
      assertClose(sigma(T / 2), (o.sigmaMax + o.sigmaMin) / 2, tol);
    }),
    { numRuns: 300 },
  );
});

Deno.test("at γ = 0 the schedule is the constant σ_min", () => {
  fc.assert(
    fc.property(schedules, fc.double({ min: 0, max: 3, noNaN: true }), (o, u) => {
      equal(sigmaSchedule({ ...o, gamma: 0 })(u * o.totalSteps), o.sigmaMin);
    }),
    { numRuns: 300 },
  );
});

Deno.test("γ < 1 falls below the linear midpoint at T/2, γ > 1 stays above it", () => {
  fc.assert(
    fc.property(
      schedules.filter((o) => o.sigmaMax > 1.01 * o.sigmaMin),
      fc.double({ min: 0.05, max: 0.95, noNaN: true }),
      fc.double({ min: 1.05, max: 5, noNaN: true }),
      (o, low, high) => {
        const mid = (o.sigmaMax + o.sigmaMin) / 2;
        ok(sigmaSchedule({ ...o, gamma: low })(o.totalSteps / 2) < mid, `γ = ${low}`);
        ok(sigmaSchedule({ ...o, gamma: high })(o.totalSteps / 2) > mid, `γ = ${high}`);
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("σ(t) is clipped beyond T: σ(T + k) = σ_min", () => {
  fc.assert(
    fc.property(schedules, fc.double({ min: 0, max: 1e9, noNaN: true }), (o, k) => {
      equal(sigmaSchedule(o)(o.totalSteps + k), o.sigmaMin);
    }),
    { numRuns: 300 },
  );
});

Deno.test("sigmaSchedule() refuses σ_max < σ_min, σ_min <= 0, γ < 0 and a bad T", () => {
  const base = { sigmaMax: 10, sigmaMin: 1.5, gamma: 0.3, totalSteps: 100 };
  throws(
    () => sigmaSchedule({ ...base, sigmaMax: 1 }),
    /^RangeError: sigmaMax = 1 is invalid: sigmaMax must be a finite number >= 1.5$/,
  );
  throws(
    () => sigmaSchedule({ ...base, sigmaMin: 0 }),
    /^RangeError: sigmaMin = 0 is invalid: sigmaMin must be a finite number > 0$/,
  );
  throws(() => sigmaSchedule({ ...base, sigmaMin: -1 }), /sigmaMin = -1 is invalid/);
  throws(() => sigmaSchedule({ ...base, sigmaMin: Number.NaN }), /sigmaMin = NaN is invalid/);
  throws(() => sigmaSchedule({ ...base, sigmaMax: Infinity }), /sigmaMax = Infinity is invalid/);
  throws(
    () => sigmaSchedule({ ...base, gamma: -0.5 }),
    /^RangeError: gamma = -0.5 is invalid: gamma must be a finite number >= 0$/,
  );
  throws(
    () => sigmaSchedule({ ...base, totalSteps: 0 }),
    /^RangeError: totalSteps = 0 is invalid: totalSteps must be an integer >= 1$/,
  );
  throws(() => sigmaSchedule({ ...base, totalSteps: 10.5 }), /totalSteps = 10.5 is invalid/);
  throws(() => sigmaSchedule({ ...base, totalSteps: Number.NaN }), /totalSteps = NaN is invalid/);
  const sigma = sigmaSchedule(base);
  throws(() => sigma(-1), /^RangeError: step = -1 is invalid: step must be a finite number >= 0$/);
  throws(() => sigma(Number.NaN), /step = NaN is invalid/);
});

Deno.test("sigmaSchedule() accepts σ_max = σ_min (a constant schedule)", () => {
  const sigma = sigmaSchedule({ sigmaMax: 2, sigmaMin: 2, gamma: 0.3, totalSteps: 5 });
  for (const t of [0, 1, 2.5, 5, 9]) equal(sigma(t), 2);
});

Deno.test("the authors' 1-based step s trains with σ at (s−1)/T: sigma(s − 1), so step 1 uses σ_max and step T stays above σ_min", () => {
  // T = 4, σ 10 → 2, γ = 1: steps s = 1..4 use σ at 0, 1/4, 2/4, 3/4 of the way:
  // 10 − 8·(s−1)/4 = 10, 8, 6, 4. σ_min = 2 only at t = T (after the last step).
  const sigma = sigmaSchedule({ sigmaMax: 10, sigmaMin: 2, gamma: 1, totalSteps: 4 });
  const trained = [1, 2, 3, 4].map((s) => sigma(s - 1));
  deepEqual(trained, [10, 8, 6, 4]);
  equal(sigma(4), 2);
  fc.assert(
    fc.property(schedules, fc.nat(), (o, pick) => {
      const s = 1 + (pick % o.totalSteps); // a 1-based training step
      const f = sigmaSchedule(o);
      const x = (s - 1) / o.totalSteps;
      const expected = o.gamma === 0
        ? o.sigmaMin
        : o.sigmaMax - (o.sigmaMax - o.sigmaMin) * x ** o.gamma;
      assertClose(f(s - 1), expected, { atol: 1e-12, rtol: 1e-12, msg: `s=${s}` });
      // The last step (s = T) trains at (T−1)/T < 1 of the way: never below σ_min.
      ok(f(o.totalSteps - 1) >= o.sigmaMin, "the last step s = T trains at σ >= σ_min");
    }),
    { numRuns: 300 },
  );
});

Deno.test("sigmaSchedule() with no options says what it needs (not a destructuring TypeError)", () => {
  for (const bad of [undefined, null, 5]) {
    throws(
      () => sigmaSchedule(bad as unknown as SigmaScheduleOptions),
      /^TypeError: sigmaSchedule\(options\) needs an object \{ sigmaMax, sigmaMin, gamma, totalSteps \}, got (undefined|null|number)$/,
    );
  }
  // An empty object names the first missing field.
  throws(
    () => sigmaSchedule({} as SigmaScheduleOptions),
    /sigmaMin = undefined is invalid: sigmaMin must be a finite number > 0/,
  );
});
