/**
 * The AdamW update loop of `../train/optim.ts` as a WebAssembly SIMD
 * function that runs on tfjs-wasm's own memory: the module imports the
 * backend's `WebAssembly.Memory`, so it reads the gradient, moments and
 * weights where the tensors live and writes the new values in place (or into
 * tensors allocated for them), with no copy in or out.
 *
 * It computes exactly what the TypeScript loop `adamwLoop` computes, bit for
 * bit: float32 arithmetic (`f32x4`, four elements a round), every operation
 * rounded to float32, the same operations in the same order (WebAssembly has
 * no fused multiply-add, nor has JavaScript; the TypeScript loop rounds each
 * operation with `Math.fround`, which for +, −, ·, / and sqrt of float32
 * values gives the correctly rounded float32 result):
 *
 * ```text
 * m' = b1·m + a1·g              v' = b2·v + (a2·g)·g
 * w' = w − lr·((m'·c1) / (sqrt(v')·c2 + ε) + wd·w)
 * ```
 *
 * with a1 = 1 − b1, a2 = 1 − b2, c1 = 1/bc1 and c2 = 1/sqrt(bc2), each
 * scalar rounded to float32. The loop covers a multiple of 4 elements; the
 * caller does the rest. (An earlier version computed in float64, two lanes a
 * round; float32 lanes take 8.3 million weights from 39.0 to 23.0 ms, median
 * of 40 alternated rounds, `bench/results/2026-12-02-adamw-float32-lanes.md`.)
 *
 * ```wat
 * (module
 *   (import "env" "mem" (memory 1))
 *   (func (export "adamw")
 *     (param $g i32) (param $m i32) (param $v i32) (param $w i32)
 *     (param $mo i32) (param $vo i32) (param $wo i32) (param $n i32)
 *     (param $b1 f64) (param $a1 f64) (param $b2 f64) (param $a2 f64)
 *     (param $c1 f64) (param $c2 f64) (param $eps f64) (param $wd f64) (param $lr f64)
 *     ;; $B1 ... $LR: f32x4.splat (f32.demote_f64 scalar); $end = $g + 4n
 *     (loop  ;; while $g < $end, all seven addresses += 16 each round
 *       ;; G, M, V, W = v128.load of four float32 each
 *       ;; M' = $B1·M + $A1·G;  V' = $B2·V + ($A2·G)·G   (f32x4)
 *       ;; store M' at $mo, V' at $vo
 *       ;; store W − $LR·((M'·$C1) / (sqrt(V')·$C2 + $EPS) + $WD·W) at $wo
 *     )))
 * ```
 *
 * @module
 */

import { exported, leb128, MEMORY_IMPORT, PerMemory, section } from "./wasm_bytes.ts";

const LOAD = [0xfd, 0x00, 0x00, 0x00]; // v128.load align=1 offset=0
const STORE = [0xfd, 0x0b, 0x00, 0x00]; // v128.store align=1 offset=0
const SQRT = [0xfd, 0xe3, 0x01]; // f32x4.sqrt
const ADD = [0xfd, 0xe4, 0x01]; // f32x4.add
const SUB = [0xfd, 0xe5, 0x01]; // f32x4.sub
const MUL = [0xfd, 0xe6, 0x01]; // f32x4.mul
const DIV = [0xfd, 0xe7, 0x01]; // f32x4.div

// Locals: parameters 0-7 (i32 addresses and n), 8-16 (f64 scalars); then
// v128 17-25 (the scalars splatted), 26-29 (G, M, V, W as loaded), 30-31
// (M', V'), i32 32 ($end).
const [B1, A1, B2, A2, C1, C2, EPS, WD, LR] = [17, 18, 19, 20, 21, 22, 23, 24, 25];
const [G, M, V, W, MM, VV, END] = [26, 27, 28, 29, 30, 31, 32];
/** local.get */
const get = (l: number) => [0x20, l];

/** The code section body of `adamw` (see the text format above). */
// deno-fmt-ignore
const ADAMW_BODY = [
  0x02, 0x0f, 0x7b, 0x01, 0x7f, // locals: 15 v128 (17-31), 1 i32 (32)
  // f32x4.splat(f32.demote_f64(scalar)) for the nine scalars
  ...[B1, A1, B2, A2, C1, C2, EPS, WD, LR].flatMap((l, i) => [0x20, 8 + i, 0xb6, 0xfd, 0x13, 0x21, l]),
  0x20, 0x00, 0x20, 0x07, 0x41, 0x02, 0x74, 0x6a, 0x21, END, // $end = $g + ($n << 2)
  0x02, 0x40, // block
  0x20, 0x00, 0x20, END, 0x4f, 0x0d, 0x00, // br_if 0 ($g >= $end)
  0x03, 0x40, // loop
  0x20, 0x00, ...LOAD, 0x21, G,
  0x20, 0x01, ...LOAD, 0x21, M,
  0x20, 0x02, ...LOAD, 0x21, V,
  0x20, 0x03, ...LOAD, 0x21, W,
  ...get(B1), ...get(M), ...MUL, ...get(A1), ...get(G), ...MUL, ...ADD, 0x21, MM, // m'
  ...get(B2), ...get(V), ...MUL, ...get(A2), ...get(G), ...MUL, ...get(G), ...MUL, ...ADD,
  0x21, VV, // v'
  0x20, 0x04, ...get(MM), ...STORE, // store m' at $mo
  0x20, 0x05, ...get(VV), ...STORE, // store v' at $vo
  0x20, 0x06, // $wo, for the store below
  ...get(W), ...get(LR), // w, lr
  ...get(MM), ...get(C1), ...MUL, // m'·c1
  ...get(VV), ...SQRT, ...get(C2), ...MUL, ...get(EPS), ...ADD, // sqrt(v')·c2 + ε
  ...DIV, ...get(WD), ...get(W), ...MUL, ...ADD, // (...) / (...) + wd·w
  ...MUL, ...SUB, ...STORE, // store w − lr·(...) at $wo
  ...[0, 1, 2, 3, 4, 5, 6].flatMap((p) => [0x20, p, 0x41, 0x10, 0x6a, 0x21, p]), // += 16
  0x20, 0x00, 0x20, END, 0x49, 0x0d, 0x00, // br_if 0 ($g < $end)
  0x0b, 0x0b, 0x0b, // end loop, end block, end function
];

/** The whole module: header, type, import (memory), function, export and code sections. */
// deno-fmt-ignore
const ADAMW_MODULE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
  ...section(0x01, [0x01, 0x60, 0x11, ...new Array(8).fill(0x7f), ...new Array(9).fill(0x7c), 0x00]),
  ...MEMORY_IMPORT,
  ...section(0x03, [0x01, 0x00]),
  ...section(0x07, [0x01, ...exported("adamw", 0, 0)]),
  ...section(0x0a, [0x01, ...leb128(ADAMW_BODY.length), ...ADAMW_BODY]),
]);

/**
 * One AdamW update of `n` elements (a multiple of 4), all arrays given as
 * byte offsets into the memory the function was made for: g, m, v, w read;
 * mo, vo, wo written (each may equal its input).
 */
export type SimdAdamWFn = (
  g: number,
  m: number,
  v: number,
  w: number,
  mo: number,
  vo: number,
  wo: number,
  n: number,
  b1: number,
  a1: number,
  b2: number,
  a2: number,
  c1: number,
  c2: number,
  eps: number,
  wd: number,
  lr: number,
) => void;

const MODULE_ON_MEMORY = new PerMemory(ADAMW_MODULE, (e) => e.adamw as SimdAdamWFn);

/**
 * The SIMD AdamW loop on `memory` (instantiated once per memory), or null
 * where the runtime has no WebAssembly SIMD or {@linkcode useSimdAdamW} turned
 * it off.
 *
 * @example
 * ```ts
 * import { simdAdamW } from "./adamw_simd.ts";
 * const memory = new WebAssembly.Memory({ initial: 1 });
 * const adamw = simdAdamW(memory);
 * if (adamw) {
 *   const f = new Float32Array(memory.buffer, 0, 16); // g, m, v, w: four floats each
 *   f.set([1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2]);
 *   // in place, step 1 of lr 0.1, β 0.9 / 0.999, no decay: w = 2 − 0.1·g/|g|
 *   adamw(0, 16, 32, 48, 16, 32, 48, 4, 0.9, 0.1, 0.999, 0.001, 10, 1 / Math.sqrt(0.001), 0, 0, 0.1);
 *   console.log(f[12]); // 1.899999976158142
 * }
 * ```
 */
export function simdAdamW(memory: WebAssembly.Memory | null): SimdAdamWFn | null {
  return MODULE_ON_MEMORY.get(memory);
}

/**
 * Turns the SIMD AdamW loop on or off (on by default; off, the optimizer
 * runs its TypeScript loop, which computes the same numbers), returning the
 * previous setting: for tests and benchmarks.
 *
 * @example
 * ```ts
 * import { useSimdAdamW } from "./adamw_simd.ts";
 * const before = useSimdAdamW(false);
 * useSimdAdamW(before);
 * ```
 */
export function useSimdAdamW(on: boolean): boolean {
  return MODULE_ON_MEMORY.use(on);
}
