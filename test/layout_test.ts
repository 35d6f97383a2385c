import fc from "fast-check";
import { deepEqual, equal, ok, throws } from "./asserts.ts";
import { bruteLayout, bruteUsable, divisorPairs } from "./reference.ts";
import { isUsableE, nearestUsableE, topographicLayout } from "../src/moge/layout.ts";

/** The nearest usable E below and above E, by scanning every integer. */
function bruteNearest(E: number, h: number): { below: number | null; above: number } {
  let below: number | null = null;
  for (let e = E - 1; e >= 1; e--) {
    if (bruteUsable(e, h)) {
      below = e;
      break;
    }
  }
  let above = E + 1;
  while (!bruteUsable(above, h)) above++;
  return { below, above };
}

/** The E values a refusal message suggests ("nearest usable E: 12 or 15"). */
function suggested(message: string): number[] {
  const m = /nearest usable E: (\d+)(?: or (\d+))?$/.exec(message);
  ok(m, `no suggestion in: ${message}`);
  return m.slice(1).filter((s) => s !== undefined).map(Number);
}

/** Checks topographicLayout(E, h) against the brute force, refusal included. */
function checkAgainstBruteForce(E: number, h: number): void {
  const best = bruteLayout(E);
  if (best.rows >= h) {
    deepEqual(topographicLayout(E, h), best, `E = ${E}, h = ${h}`);
    ok(isUsableE(E, h), `isUsableE(${E}, ${h})`);
    return;
  }
  ok(!isUsableE(E, h), `isUsableE(${E}, ${h})`);
  let message = "";
  throws(() => topographicLayout(E, h), (e: unknown) => {
    ok(e instanceof RangeError);
    message = e.message;
    return true;
  });
  const near = bruteNearest(E, h);
  const expected = near.below === null ? [near.above] : [near.below, near.above];
  deepEqual(suggested(message), expected, `suggestions for E = ${E}, h = ${h}: ${message}`);
  for (const e of expected) ok(bruteUsable(e, h), `${e} is usable for h = ${h}`);
  deepEqual(nearestUsableE(E, h), near);
  if (divisorPairs(E).length === 1 && E > 1) ok(/is prime/.test(message), message);
  else ok(!/prime/.test(message), message);
}

Deno.test("topographicLayout() gives the squarest layouts (16, 32, 64, 128, 400; 8 with h = 2)", () => {
  deepEqual(topographicLayout(16), { rows: 4, cols: 4 });
  deepEqual(topographicLayout(32), { rows: 4, cols: 8 });
  deepEqual(topographicLayout(64), { rows: 8, cols: 8 });
  deepEqual(topographicLayout(128), { rows: 8, cols: 16 });
  deepEqual(topographicLayout(400), { rows: 20, cols: 20 });
  deepEqual(topographicLayout(8, 2), { rows: 2, cols: 4 });
  deepEqual(topographicLayout(12), { rows: 3, cols: 4 });
  deepEqual(topographicLayout(7, 1), { rows: 1, cols: 7 });
  deepEqual(topographicLayout(1, 1), { rows: 1, cols: 1 });
});

Deno.test("topographicLayout() refuses a prime E, saying why and naming the nearest usable E", () => {
  throws(
    () => topographicLayout(13),
    /^RangeError: E = 13 is prime, so its only layout is 1 x 13, smaller than the 3 x 3 filter.*nearest usable E: 12 or 15$/,
  );
  throws(() => topographicLayout(17, 2), /E = 17 is prime.*nearest usable E: 16 or 18$/);
});

Deno.test("topographicLayout() refuses a composite E whose squarest map is thinner than h", () => {
  // 8 = 2 x 4 < 3 rows; nothing below 9 fits a 3 x 3 filter.
  throws(
    () => topographicLayout(8),
    /^RangeError: the squarest layout of E = 8 is 2 x 4, smaller than the 3 x 3 filter \(h = 3 needs rows >= 3\); nearest usable E: 9$/,
  );
  // 14 = 2 x 7: neighbours 12 = 3 x 4 and 15 = 3 x 5.
  throws(() => topographicLayout(14), /2 x 7.*nearest usable E: 12 or 15$/);
  // 1 is not prime: its layout is 1 x 1.
  throws(
    () => topographicLayout(1, 2),
    /the squarest layout of E = 1 is 1 x 1.*nearest usable E: 4$/,
  );
});

Deno.test("topographicLayout() refuses a non-integer or non-positive E or h", () => {
  throws(
    () => topographicLayout(0),
    /^RangeError: E = 0 is invalid: E must be an integer in \[1, 9007199254740991\]$/,
  );
  throws(() => topographicLayout(16.5), /E = 16.5 is invalid/);
  throws(() => topographicLayout(Number.NaN), /E = NaN is invalid/);
  throws(
    () => topographicLayout(16, 0),
    /h = 0 is invalid: h must be an integer in \[1, 94906265\]/,
  );
  throws(() => topographicLayout(16, 2.5), /h = 2.5 is invalid/);
});

Deno.test("isUsableE() and nearestUsableE() give the documented values", () => {
  equal(isUsableE(16, 3), true);
  equal(isUsableE(13, 3), false);
  equal(isUsableE(8, 2), true);
  equal(isUsableE(12.5, 3), false);
  equal(isUsableE(0, 1), false);
  deepEqual(nearestUsableE(13, 3), { below: 12, above: 15 });
  deepEqual(nearestUsableE(8, 3), { below: null, above: 9 });
  deepEqual(nearestUsableE(30, 6), { below: null, above: 36 });
});

Deno.test("topographicLayout(E, h) is the divisor pair r <= c, r·c = E, of least c − r, or a refusal naming the nearest usable E (exhaustive, E <= 300, h <= 5)", () => {
  for (let h = 1; h <= 5; h++) for (let E = 1; E <= 300; E++) checkAgainstBruteForce(E, h);
});

Deno.test("topographicLayout(E, h) is the divisor pair r <= c, r·c = E, of least c − r, or a refusal naming the nearest usable E (random E <= 100000)", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 100_000 }), fc.integer({ min: 1, max: 12 }), (E, h) => {
      checkAgainstBruteForce(E, h);
    }),
    { numRuns: 300 },
  );
});

Deno.test("every usable E's layout satisfies r <= c, r·c = E and r >= h", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 0, max: 60 }), (r, extra) => {
      const E = r * (r + extra); // always has a divisor pair with rows >= r
      const { rows, cols } = topographicLayout(E, r);
      equal(rows * cols, E);
      ok(rows <= cols && rows >= r, `${E} -> ${rows} x ${cols}`);
    }),
    { numRuns: 200 },
  );
});

Deno.test("topographicLayout() refuses E above 2^53 - 1 at once (1e300 used to hang: rows-- no longer changed rows)", () => {
  for (const E of [1e300, 2 ** 53, Number.MAX_VALUE]) {
    const t0 = performance.now();
    throws(() => topographicLayout(E), /E must be an integer in \[1, 9007199254740991\]/);
    ok(!isUsableE(E), `isUsableE(${E})`);
    throws(() => nearestUsableE(E), /E = .* is invalid/);
    ok(performance.now() - t0 < 1000, `E = ${E} took ${performance.now() - t0} ms`);
  }
  // The largest accepted E: 2^53 - 1 = 6361 · 69431 · 20394401. Its divisors <= sqrt(E)
  // ≈ 94906265.6 are 1, 6361, 69431 and 20394401 (6361 · 69431 = 441650591 is above), so
  // the squarest layout is 20394401 x 441650591.
  deepEqual(topographicLayout(Number.MAX_SAFE_INTEGER), { rows: 20394401, cols: 441650591 });
});

Deno.test("topographicLayout() refuses a filter size h whose h x h map cannot exist (h = 1e8 used to hang)", () => {
  throws(
    () => topographicLayout(16, 1e8),
    /h = 100000000 is invalid: h must be an integer in \[1, 94906265\]/,
  );
  throws(() => nearestUsableE(16, 1e8), /h = 100000000 is invalid/);
});

Deno.test('topographicLayout("16") says that E must be a number', () => {
  throws(
    () => topographicLayout("16" as unknown as number),
    (e: unknown) =>
      e instanceof TypeError &&
      e.message === 'E = "16" is a string: E must be a number (an integer >= 1)',
  );
  throws(() => topographicLayout(16, "3" as unknown as number), /^TypeError: h = "3" is a string/);
  throws(() => nearestUsableE("13" as unknown as number), /^TypeError: E = "13" is a string/);
});
