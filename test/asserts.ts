/**
 * The assertion functions the tests use. This is the one place that imports
 * `node:assert/strict` (a stand-in for JSR's `@std/assert`, which this
 * environment cannot reach), so it can be swapped in one edit.
 *
 * @module
 */

import assert from "node:assert/strict";

export { assert };
export const equal: typeof assert.equal = assert.equal;
export const deepEqual: typeof assert.deepEqual = assert.deepEqual;
export const ok: typeof assert.ok = assert.ok;
export const throws: typeof assert.throws = assert.throws;
export const rejects: typeof assert.rejects = assert.rejects;
export const notEqual: typeof assert.notEqual = assert.notEqual;

/** Asserts |actual - expected| <= atol + rtol * |expected|. */
export function assertClose(
  actual: number,
  expected: number,
  { atol = 1e-6, rtol = 1e-5, msg = "" } = {},
): void {
  const tol = atol + rtol * Math.abs(expected);
  if (!(Math.abs(actual - expected) <= tol)) {
    throw new assert.AssertionError({
      message: `${msg ? msg + ": " : ""}expected ${expected}, got ${actual} (|diff| ${
        Math.abs(actual - expected)
      } > tol ${tol})`,
      actual,
      expected,
    });
  }
}

/** Element-wise {@linkcode assertClose} over two arrays of equal length. */
export function assertAllClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  opts: { atol?: number; rtol?: number; msg?: string } = {},
): void {
  equal(actual.length, expected.length, `${opts.msg ?? ""}: length`);
  for (let i = 0; i < actual.length; i++) {
    assertClose(actual[i], expected[i], { ...opts, msg: `${opts.msg ?? ""}[${i}]` });
  }
}
