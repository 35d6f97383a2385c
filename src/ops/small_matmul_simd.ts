/**
 * Matrix products of a few rows as WebAssembly SIMD loops on tfjs-wasm's own
 * memory, for the experts of a MoE layer that receive few tokens (at
 * E = 400 with batch 200, two or three each). tfjs-wasm (XNNPACK) sets up an
 * operator and packs an operand for every product it has not seen before,
 * which costs far more than the multiply-adds of a few rows; these loops
 * read the operands where the tensors live (the module imports the
 * backend's `WebAssembly.Memory`) and write the result in place.
 *
 * Three products, all row-major, n rows, every width F a multiple of 4:
 *
 * - `xw`: y[n, F] = x[n, K] · W[K, F]; y[i, :] = Σ_k x[i, k]·W[k, :], k in order;
 * - `xwt`: y[n, K] = x[n, F] · W[K, F]ᵀ; y[i, k] = the dot product of x[i, :]
 *   and W[k, :], four lanes of partial sums added as (l0 + l1) + (l2 + l3);
 * - `atb`: y[K, F] = a[n, K]ᵀ · b[n, F]; y[k, :] = Σ_i a[i, k]·b[i, :], i in order.
 *
 * All in float32 (no fused multiply-add), overwriting y. Arguments are byte
 * offsets into the memory and sizes in elements.
 *
 * ```wat
 * (module
 *   (import "env" "mem" (memory 1))
 *   (func (export "xw") (param $x i32) (param $w i32) (param $y i32)
 *                       (param $n i32) (param $K i32) (param $F i32) ...)
 *   (func (export "xwt") (param $x i32) (param $w i32) (param $y i32)
 *                        (param $n i32) (param $K i32) (param $F i32) ...)
 *   (func (export "atb") (param $a i32) (param $b i32) (param $y i32)
 *                        (param $n i32) (param $K i32) (param $F i32) ...))
 * ```
 *
 * @module
 */

import { exported, leb128, MEMORY_IMPORT, PerMemory, section } from "./wasm_bytes.ts";

const LOAD = [0xfd, 0x00, 0x00, 0x00]; // v128.load align=1 offset=0
const STORE = [0xfd, 0x0b, 0x00, 0x00]; // v128.store align=1 offset=0
const ZERO = [0xfd, 0x0c, ...new Array(16).fill(0)]; // v128.const 0
const ADD = [0xfd, 0xe4, 0x01]; // f32x4.add
const MUL = [0xfd, 0xe6, 0x01]; // f32x4.mul
const SPLAT_LOAD = [0x2a, 0x02, 0x00, 0xfd, 0x13]; // f32.load, f32x4.splat
const get = (l: number) => [0x20, l];
const set = (l: number) => [0x21, l];
/** local l += c */
const inc = (l: number, c: number) => [0x20, l, 0x41, ...leb128(c), 0x6a, 0x21, l];
/** br_if 0 (local a < local b), unsigned */
const whileLess = (a: number, b: number) => [0x20, a, 0x20, b, 0x49, 0x0d, 0x00];
/** local l -= 1; br_if 0 (l != 0) */
const countDown = (l: number) => [0x20, l, 0x41, 0x01, 0x6b, 0x22, l, 0x0d, 0x00];
/** br_if 0 (local l == 0) */
const skipIfZero = (l: number) => [0x20, l, 0x45, 0x0d, 0x00];
const BLOCK = [0x02, 0x40], LOOP = [0x03, 0x40], END = [0x0b];

// Parameters 0-5: x (or a), w (or b), y, n, K, F.
const [X, W, Y, N, K, F] = [0, 1, 2, 3, 4, 5];

/** `xw`: locals v128 a (6), i32 p q end k wr Fb (7-12). */
// deno-fmt-ignore
const XW_BODY = [
  0x02, 0x01, 0x7b, 0x06, 0x7f,
  ...get(F), 0x41, 0x02, 0x74, ...set(12), // Fb = F << 2
  ...BLOCK, ...skipIfZero(N),
  ...LOOP, // rows
  ...get(Y), ...get(12), 0x6a, ...set(9), // end = y + Fb
  ...get(Y), ...set(7), // p = y
  ...LOOP, ...get(7), ...ZERO, ...STORE, ...inc(7, 16), ...whileLess(7, 9), ...END, // y row = 0
  ...get(W), ...set(11), ...get(K), ...set(10), // wr = w, k = K
  ...BLOCK, ...skipIfZero(10),
  ...LOOP, // k
  ...get(X), ...SPLAT_LOAD, ...set(6), ...inc(X, 4), // a = splat(x[i, k])
  ...get(Y), ...set(7), ...get(11), ...set(8), // p = y row, q = W row k
  ...LOOP, // y[i, :] += a · W[k, :]
  ...get(7), ...get(7), ...LOAD, ...get(6), ...get(8), ...LOAD, ...MUL, ...ADD, ...STORE,
  ...inc(7, 16), ...inc(8, 16), ...whileLess(7, 9),
  ...END,
  ...get(11), ...get(12), 0x6a, ...set(11), // wr += Fb
  ...countDown(10),
  ...END, ...END,
  ...get(9), ...set(Y), // y = next row
  ...countDown(N),
  ...END, ...END, ...END,
];

/** `xwt`: locals v128 acc (6), i32 p q end k Fb (7-11). */
// deno-fmt-ignore
const XWT_BODY = [
  0x02, 0x01, 0x7b, 0x05, 0x7f,
  ...get(F), 0x41, 0x02, 0x74, ...set(11), // Fb = F << 2
  ...BLOCK, ...skipIfZero(N),
  ...LOOP, // rows
  ...get(W), ...set(8), // q = W
  ...get(X), ...get(11), 0x6a, ...set(9), // end = x row end
  ...get(K), ...set(10),
  ...BLOCK, ...skipIfZero(10),
  ...LOOP, // k
  ...ZERO, ...set(6), ...get(X), ...set(7), // acc = 0, p = x row
  ...LOOP, // acc += x[i, f..f+4) · W[k, f..f+4)
  ...get(6), ...get(7), ...LOAD, ...get(8), ...LOAD, ...MUL, ...ADD, ...set(6),
  ...inc(7, 16), ...inc(8, 16), ...whileLess(7, 9),
  ...END,
  ...get(Y), // y[i, k] = (l0 + l1) + (l2 + l3)
  ...get(6), 0xfd, 0x1f, 0, ...get(6), 0xfd, 0x1f, 1, 0x92,
  ...get(6), 0xfd, 0x1f, 2, ...get(6), 0xfd, 0x1f, 3, 0x92, 0x92,
  0x38, 0x02, 0x00, // f32.store
  ...inc(Y, 4),
  ...countDown(10),
  ...END, ...END,
  ...get(9), ...set(X), // next row of x
  ...countDown(N),
  ...END, ...END, ...END,
];

/** `atb`: locals v128 s (6), i32 p q end k Fb yend (7-12). */
// deno-fmt-ignore
const ATB_BODY = [
  0x02, 0x01, 0x7b, 0x06, 0x7f,
  ...get(F), 0x41, 0x02, 0x74, ...set(11), // Fb = F << 2
  ...get(Y), ...get(K), ...get(11), 0x6c, 0x6a, ...set(12), // yend = y + K·Fb
  ...get(Y), ...set(7),
  ...BLOCK, 0x20, 7, 0x20, 12, 0x4f, 0x0d, 0x00, // skip if p >= yend
  ...LOOP, ...get(7), ...ZERO, ...STORE, ...inc(7, 16), ...whileLess(7, 12), ...END, // y = 0
  ...END,
  ...BLOCK, ...skipIfZero(N),
  ...LOOP, // rows i
  ...get(Y), ...set(7), // p = y
  ...get(W), ...get(11), 0x6a, ...set(9), // end = b row end
  ...get(K), ...set(10),
  ...BLOCK, ...skipIfZero(10),
  ...LOOP, // k
  ...get(X), ...SPLAT_LOAD, ...set(6), ...inc(X, 4), // s = splat(a[i, k])
  ...get(W), ...set(8), // q = b row i
  ...LOOP, // y[k, :] += s · b[i, :]
  ...get(7), ...get(7), ...LOAD, ...get(6), ...get(8), ...LOAD, ...MUL, ...ADD, ...STORE,
  ...inc(7, 16), ...inc(8, 16), ...whileLess(8, 9),
  ...END,
  ...countDown(10),
  ...END, ...END,
  ...get(9), ...set(W), // next row of b
  ...countDown(N),
  ...END, ...END, ...END,
];

/** The whole module: header, type, import (memory), function, export and code sections. */
// deno-fmt-ignore
const MODULE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
  ...section(0x01, [0x01, 0x60, 0x06, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x00]),
  ...MEMORY_IMPORT,
  ...section(0x03, [0x03, 0x00, 0x00, 0x00]),
  ...section(0x07, [0x03, ...exported("xw", 0, 0), ...exported("xwt", 0, 1), ...exported("atb", 0, 2)]),
  ...section(0x0a, [
    0x03,
    ...[XW_BODY, XWT_BODY, ATB_BODY].flatMap((b) => [...leb128(b.length), ...b]),
  ]),
]);

/** A product of the module: byte offsets of the two operands and the result, then n, K, F. */
export type SmallMatmulFn = (
  a: number,
  b: number,
  y: number,
  n: number,
  K: number,
  F: number,
) => void;

/** The three products (see the module documentation). */
export interface SmallMatmul {
  /** y[n, F] = x[n, K] · W[K, F]. */
  xw: SmallMatmulFn;
  /** y[n, K] = x[n, F] · W[K, F]ᵀ. */
  xwt: SmallMatmulFn;
  /** y[K, F] = a[n, K]ᵀ · b[n, F]. */
  atb: SmallMatmulFn;
}

const MODULE_ON_MEMORY = new PerMemory(
  MODULE,
  (e) => ({ xw: e.xw as SmallMatmulFn, xwt: e.xwt as SmallMatmulFn, atb: e.atb as SmallMatmulFn }),
);

/**
 * The products on `memory` (instantiated once per memory), or null where
 * the runtime has no WebAssembly SIMD or {@linkcode useSmallMatmul} turned
 * them off.
 *
 * @example
 * ```ts
 * import { smallMatmul } from "./small_matmul_simd.ts";
 * const memory = new WebAssembly.Memory({ initial: 1 });
 * const mm = smallMatmul(memory);
 * if (mm) {
 *   const f = new Float32Array(memory.buffer, 0, 16);
 *   f.set([1, 2, 1, 0, 0, 1, 0, 1, 1, 0]); // x [1, 2] at byte 0, W [2, 4] at byte 8
 *   mm.xw(0, 8, 48, 1, 2, 4); // y [1, 4] at byte 48
 *   console.log(Array.from(f.subarray(12, 16))); // [1, 2, 2, 1]
 * }
 * ```
 */
export function smallMatmul(memory: WebAssembly.Memory | null): SmallMatmul | null {
  return MODULE_ON_MEMORY.get(memory);
}

/**
 * Turns the SIMD products on or off (on by default; off, the experts
 * multiply with tfjs-wasm's matmul), returning the previous setting: for
 * tests and benchmarks.
 *
 * @example
 * ```ts
 * import { useSmallMatmul } from "./small_matmul_simd.ts";
 * const before = useSmallMatmul(false);
 * useSmallMatmul(before);
 * ```
 */
export function useSmallMatmul(on: boolean): boolean {
  return MODULE_ON_MEMORY.use(on);
}
