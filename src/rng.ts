/**
 * A small seeded pseudo-random number generator with a serializable state,
 * so that a training run (data order, initial weights, routing noise) can be
 * repeated from a seed and resumed from a checkpoint.
 *
 * It implements sfc32 (Chris Doty-Humphrey's "Small Fast Chaotic" 32-bit
 * generator from PractRand: 128 bits of state, period at least 2^32 thanks to
 * its counter word), seeded through splitmix32 and warmed up by 12 outputs.
 *
 * @module
 */

import { checkInteger } from "./validate.ts";

const TWO_32 = 4294967296;

/** One splitmix32 step: returns [next state, output]. */
function splitmix32(s: number): [number, number] {
  s = (s + 0x9e3779b9) | 0;
  let z = s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  z ^= z >>> 16;
  return [s, z >>> 0];
}

/**
 * Seeded sfc32 generator. Same seed, same sequence, on every platform.
 *
 * @example
 * ```ts
 * import { Rng } from "./rng.ts";
 * const rng = new Rng(42);
 * const u = rng.next(); // uniform in [0, 1)
 * const k = rng.int(10); // integer in 0..9
 * const saved = rng.state; // 4 uint32 words
 * const copy = new Rng(0);
 * copy.state = saved;
 * console.log(copy.next() === rng.next()); // true
 * console.log(u, k);
 * ```
 */
export class Rng {
  #a = 0;
  #b = 0;
  #c = 0;
  #d = 0;

  /**
   * Creates a generator from a seed.
   *
   * @param seed any integer in [0, 2^53 - 1]; distinct seeds give distinct
   * starting states.
   * @example
   * ```ts
   * import { Rng } from "./rng.ts";
   * const rng = new Rng(2025);
   * console.log(rng.next());
   * ```
   */
  constructor(seed: number) {
    checkInteger("seed", seed, 0, Number.MAX_SAFE_INTEGER);
    const lo = seed % TWO_32;
    const hi = Math.floor(seed / TWO_32);
    let s = lo | 0;
    [s, this.#a] = splitmix32(s);
    [s, this.#b] = splitmix32(s);
    let t = (hi ^ 0x5bd1e995) | 0;
    [t, this.#c] = splitmix32(t);
    [t, this.#d] = splitmix32(t);
    for (let i = 0; i < 12; i++) this.uint32();
  }

  /**
   * The next raw output, an integer in [0, 2^32).
   *
   * @example
   * ```ts
   * import { Rng } from "./rng.ts";
   * console.log(new Rng(1).uint32()); // same value every run
   * ```
   */
  uint32(): number {
    const a = this.#a, b = this.#b, c = this.#c;
    const d = (this.#d + 1) | 0;
    const t = (((a + b) | 0) + d) | 0;
    this.#a = b ^ (b >>> 9);
    this.#b = (c + (c << 3)) | 0;
    this.#c = (((c << 21) | (c >>> 11)) + t) | 0;
    this.#d = d;
    return t >>> 0;
  }

  /**
   * A uniform number in [0, 1) with 32 random bits.
   *
   * @example
   * ```ts
   * import { Rng } from "./rng.ts";
   * const u = new Rng(7).next();
   * console.log(u >= 0 && u < 1); // true
   * ```
   */
  next(): number {
    return this.uint32() / TWO_32;
  }

  /**
   * A uniform integer in [0, n), without modulo bias (rejection sampling).
   *
   * @param n an integer in [1, 2^32].
   * @example
   * ```ts
   * import { Rng } from "./rng.ts";
   * const die = new Rng(3).int(6) + 1; // 1..6
   * console.log(die);
   * ```
   */
  int(n: number): number {
    checkInteger("n", n, 1, TWO_32);
    const limit = TWO_32 - (TWO_32 % n);
    let u = this.uint32();
    while (u >= limit) u = this.uint32();
    return u % n;
  }

  /**
   * A standard normal sample (mean 0, variance 1), by the Box-Muller
   * transform; it uses two uniforms per sample and keeps no spare, so the
   * whole generator state stays in {@linkcode Rng.state}.
   *
   * @example
   * ```ts
   * import { Rng } from "./rng.ts";
   * const z = new Rng(5).normal();
   * console.log(Number.isFinite(z)); // true
   * ```
   */
  normal(): number {
    const u1 = 1 - this.next(); // (0, 1]: log is finite
    const u2 = this.next();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /**
   * Shuffles an array or typed array in place (Fisher-Yates) and returns it.
   *
   * @example
   * ```ts
   * import { Rng } from "./rng.ts";
   * const order = new Rng(9).shuffle([0, 1, 2, 3, 4]);
   * console.log(order); // a permutation of 0..4
   * ```
   */
  shuffle<A extends { length: number; [i: number]: unknown }>(array: A): A {
    for (let i = array.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = array[i];
      array[i] = array[j];
      array[j] = tmp;
    }
    return array;
  }

  /**
   * A random permutation of 0..n-1.
   *
   * @example
   * ```ts
   * import { Rng } from "./rng.ts";
   * console.log(new Rng(2).permutation(5)); // e.g. Int32Array [3, 0, 4, 1, 2]
   * ```
   */
  permutation(n: number): Int32Array {
    checkInteger("n", n, 0, 2 ** 31 - 1);
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = i;
    return this.shuffle(out);
  }

  /**
   * An integer seed in [0, 2^31) for the tfjs functions that take one
   * (`tf.randomNormal(shape, mean, std, dtype, seed)`,
   * `tf.randomUniform`, initializers), so their draws follow this generator.
   *
   * @example
   * ```ts
   * import { Rng } from "./rng.ts";
   * import { tf } from "./deps.ts";
   * import { useBackend } from "./backend.ts";
   * await useBackend("cpu");
   * const rng = new Rng(0);
   * const w = tf.randomNormal([2, 3], 0, 1, "float32", rng.seedForTf());
   * w.dispose();
   * ```
   */
  seedForTf(): number {
    return tfSeed(this.uint32());
  }

  /**
   * An independent copy that continues with the same sequence.
   *
   * @example
   * ```ts
   * import { Rng } from "./rng.ts";
   * const a = new Rng(4);
   * const b = a.clone();
   * console.log(a.next() === b.next()); // true
   * ```
   */
  clone(): Rng {
    const copy = new Rng(0);
    copy.state = this.state;
    return copy;
  }

  /**
   * The generator state: four unsigned 32-bit integers, JSON-serializable.
   * Assigning a saved state makes the generator continue exactly where the
   * saved one was.
   *
   * @example
   * ```ts
   * import { Rng } from "./rng.ts";
   * const rng = new Rng(11);
   * const json = JSON.stringify(rng.state);
   * const resumed = new Rng(0);
   * resumed.state = JSON.parse(json);
   * console.log(resumed.uint32() === rng.uint32()); // true
   * ```
   */
  get state(): number[] {
    return [this.#a >>> 0, this.#b >>> 0, this.#c >>> 0, this.#d >>> 0];
  }

  set state(words: number[]) {
    if (!Array.isArray(words) || words.length !== 4) {
      throw new TypeError(
        `Rng state = ${JSON.stringify(words)} is invalid: it must be an array of 4 integers` +
          ` in [0, 2^32 - 1]`,
      );
    }
    words.forEach((w, i) => checkInteger(`Rng state[${i}]`, w, 0, TWO_32 - 1));
    this.#a = words[0] | 0;
    this.#b = words[1] | 0;
    this.#c = words[2] | 0;
    this.#d = words[3] | 0;
  }
}

/**
 * A seed tfjs will honour: an integer in [1, 2^31 - 2]. tfjs's random ops
 * treat a seed of 0 as "no seed" and draw from `Math.random` instead, so a
 * run seeded with 0 would not be reproducible; this maps any integer n >= 0
 * to `n mod (2^31 - 2) + 1`.
 *
 * @example
 * ```ts
 * import { tfSeed } from "./rng.ts";
 * tfSeed(0); // 1
 * tfSeed(41); // 42
 * ```
 */
export function tfSeed(n: number): number {
  return (Math.abs(Math.trunc(n)) % 2147483646) + 1;
}
