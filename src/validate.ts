/**
 * Argument checks shared by the public functions: each throws a `RangeError`
 * or `TypeError` whose message names the bad value and what is allowed.
 *
 * @module
 */

/**
 * Throws unless `value` is an integer `>= min` (and `<= max` when given).
 *
 * @example
 * ```ts
 * import { checkInteger } from "./validate.ts";
 * checkInteger("E", 16, 1); // ok
 * ```
 */
export function checkInteger(name: string, value: number, min: number, max = Infinity): void {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Infinity ? `an integer >= ${min}` : `an integer in [${min}, ${max}]`;
    throw new RangeError(`${name} = ${String(value)} is invalid: ${name} must be ${range}`);
  }
}

/**
 * Throws unless `value` is a finite number in the interval given by
 * `min`/`max` (inclusive unless `exclusiveMin`).
 *
 * @example
 * ```ts
 * import { checkNumber } from "./validate.ts";
 * checkNumber("sigma", 1.5, { min: 0, exclusiveMin: true }); // ok
 * ```
 */
export function checkNumber(
  name: string,
  value: number,
  bounds: { min?: number; max?: number; exclusiveMin?: boolean } = {},
): void {
  const { min = -Infinity, max = Infinity, exclusiveMin = false } = bounds;
  const ok = typeof value === "number" && Number.isFinite(value) &&
    (exclusiveMin ? value > min : value >= min) && value <= max;
  if (!ok) {
    const parts: string[] = ["a finite number"];
    if (min !== -Infinity) parts.push(`${exclusiveMin ? ">" : ">="} ${min}`);
    if (max !== Infinity) parts.push(`<= ${max}`);
    throw new RangeError(
      `${name} = ${String(value)} is invalid: ${name} must be ${parts.join(" ")}`,
    );
  }
}

/**
 * Throws unless every value is finite, naming the first bad one and where it is.
 *
 * @example
 * ```ts
 * import { checkFinite } from "./validate.ts";
 * checkFinite("z", new Float32Array([0.1, 0.9])); // ok
 * ```
 */
export function checkFinite(name: string, values: ArrayLike<number>): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      throw new RangeError(
        `${name} contains ${values[i]} at flat index ${i}: all values must be finite`,
      );
    }
  }
}
