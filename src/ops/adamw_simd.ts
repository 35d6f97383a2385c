/**
 * The AdamW update loop of `../train/optim.ts` as a WebAssembly SIMD
 * function that runs on tfjs-wasm's own memory: the module imports the
 * backend's `WebAssembly.Memory`, so it reads the gradient, moments and
 * weights where the tensors live and writes the new values in place (or into
 * tensors allocated for them), with no copy in or out.
 *
 * It computes exactly what the TypeScript loop `adamwLoop` computes, bit for
 * bit: each element in float64 (`f64x2`, two lanes; four float32 elements a
 * round), the same operations in the same order, rounded once to float32
 * when stored (WebAssembly has no fused multiply-add, nor has JavaScript):
 *
 * ```text
 * m' = b1·m + a1·g              v' = b2·v + (a2·g)·g
 * w' = w − lr·((m'·c1) / (sqrt(v')·c2 + ε) + wd·w)
 * ```
 *
 * with a1 = 1 − b1, a2 = 1 − b2, c1 = 1/bc1 and c2 = 1/sqrt(bc2). The loop
 * covers a multiple of 4 elements; the caller does the rest.
 *
 * ```wat
 * (module
 *   (import "env" "mem" (memory 1))
 *   (func (export "adamw")
 *     (param $g i32) (param $m i32) (param $v i32) (param $w i32)
 *     (param $mo i32) (param $vo i32) (param $wo i32) (param $n i32)
 *     (param $b1 f64) (param $a1 f64) (param $b2 f64) (param $a2 f64)
 *     (param $c1 f64) (param $c2 f64) (param $eps f64) (param $wd f64) (param $lr f64)
 *     ;; $B1 ... $LR: f64x2.splat of the nine scalars; $end = $g + 4n
 *     (loop  ;; while $g < $end, all seven addresses += 16 each round
 *       ;; G, M, V, W = v128.load of four float32 each; for the low, then the high two lanes:
 *       ;;   g = f64x2.promote_low_f32x4 (lanes of G), likewise m, v, w
 *       ;;   m' = $B1·m + $A1·g;  v' = $B2·v + ($A2·g)·g
 *       ;;   w' = w − $LR·((m'·$C1) / (sqrt(v')·$C2 + $EPS) + $WD·w)
 *       ;; and store f32x4.demote_f64x2_zero of the halves, joined by i8x16.shuffle,
 *       ;; at $mo, $vo, $wo.
 *     )))
 * ```
 *
 * @module
 */

import { exported, leb128, MEMORY_IMPORT, PerMemory, section } from "./wasm_bytes.ts";

const LOAD = [0xfd, 0x00, 0x00, 0x00]; // v128.load align=1 offset=0
const STORE = [0xfd, 0x0b, 0x00, 0x00]; // v128.store align=1 offset=0
const ADD = [0xfd, 0xf0, 0x01]; // f64x2.add
const SUB = [0xfd, 0xf1, 0x01]; // f64x2.sub
const MUL = [0xfd, 0xf2, 0x01]; // f64x2.mul
const DIV = [0xfd, 0xf3, 0x01]; // f64x2.div
const SQRT = [0xfd, 0xef, 0x01]; // f64x2.sqrt
const DEMOTE = [0xfd, 0x5e]; // f32x4.demote_f64x2_zero
/** i8x16.shuffle: lanes 0, 1 of the first operand, then lanes 0, 1 of the second. */
// deno-fmt-ignore
const JOIN = [0xfd, 0x0d, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];

// Locals: parameters 0-7 (i32 addresses and n), 8-16 (f64 scalars); then
// v128 17-25 (the scalars splatted), 26-29 (G, M, V, W as loaded), 30-33
// (g, m', v', w as f64x2), 34-36 (the low halves of m', v', w' demoted), i32 37 ($end).
const [G, M, V, W, GG, MM, VV, WW, MLO, VLO, WLO, END] = [
  26,
  27,
  28,
  29,
  30,
  31,
  32,
  33,
  34,
  35,
  36,
  37,
];
const [B1, A1, B2, A2, C1, C2, EPS, WD, LR] = [17, 18, 19, 20, 21, 22, 23, 24, 25];

/** Two lanes of local `x` (four float32) as f64x2: the low pair, or the high pair. */
function half(x: number, high: boolean): number[] {
  // deno-fmt-ignore
  const swap = [0x20, x, 0xfd, 0x0d, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7];
  return [0x20, x, ...(high ? swap : []), 0xfd, 0x5f]; // f64x2.promote_low_f32x4
}

/** m', v' into locals MM, VV and w' on the stack, for the low or high pair of lanes. */
function update(high: boolean): number[] {
  // deno-fmt-ignore
  return [
    ...half(G, high), 0x21, GG, // g
    0x20, B1, ...half(M, high), ...MUL, 0x20, A1, 0x20, GG, ...MUL, ...ADD, 0x21, MM, // m'
    0x20, B2, ...half(V, high), ...MUL, 0x20, A2, 0x20, GG, ...MUL, 0x20, GG, ...MUL, ...ADD,
    0x21, VV, // v'
    ...half(W, high), 0x21, WW, // w
    0x20, WW, 0x20, LR, // w, lr
    0x20, MM, 0x20, C1, ...MUL, // m'·c1
    0x20, VV, ...SQRT, 0x20, C2, ...MUL, 0x20, EPS, ...ADD, // sqrt(v')·c2 + ε
    ...DIV, 0x20, WD, 0x20, WW, ...MUL, ...ADD, // (...) / (...) + wd·w
    ...MUL, ...SUB, // w − lr·(...)
  ];
}

/** The code section body of `adamw` (see the text format above). */
// deno-fmt-ignore
const ADAMW_BODY = [
  0x02, 0x14, 0x7b, 0x01, 0x7f, // locals: 20 v128 (17-36), 1 i32 (37)
  ...[B1, A1, B2, A2, C1, C2, EPS, WD, LR].flatMap((l, i) => [0x20, 8 + i, 0xfd, 0x14, 0x21, l]),
  0x20, 0x00, 0x20, 0x07, 0x41, 0x02, 0x74, 0x6a, 0x21, END, // $end = $g + ($n << 2)
  0x02, 0x40, // block
  0x20, 0x00, 0x20, END, 0x4f, 0x0d, 0x00, // br_if 0 ($g >= $end)
  0x03, 0x40, // loop
  0x20, 0x00, ...LOAD, 0x21, G,
  0x20, 0x01, ...LOAD, 0x21, M,
  0x20, 0x02, ...LOAD, 0x21, V,
  0x20, 0x03, ...LOAD, 0x21, W,
  ...update(false), ...DEMOTE, 0x21, WLO, // the low pair: keep m', v', w' demoted
  0x20, MM, ...DEMOTE, 0x21, MLO,
  0x20, VV, ...DEMOTE, 0x21, VLO,
  ...update(true), ...DEMOTE, 0x21, GG, // the high pair: w' demoted into GG (free now)
  0x20, 0x04, 0x20, MLO, 0x20, MM, ...DEMOTE, ...JOIN, ...STORE, // store m' at $mo
  0x20, 0x05, 0x20, VLO, 0x20, VV, ...DEMOTE, ...JOIN, ...STORE, // store v' at $vo
  0x20, 0x06, 0x20, WLO, 0x20, GG, ...JOIN, ...STORE, // store w' at $wo
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
