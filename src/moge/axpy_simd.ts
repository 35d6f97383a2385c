/**
 * WebAssembly SIMD functions (four float32 lanes per instruction) for the
 * fused R(z) routine on cpu and wasm (`group_sparsity_cpu.ts`): `axpy`,
 * y += w·x, its general inner loop (every filter tap is one such pass over all
 * tokens), `sqrtinv`, y = sqrt(y + ε) with 1/y beside it (the roots of
 * Algorithm 1 and the factor of its gradient), `mul`, y = w·y⊙x (the
 * squared map z⊙z, the gradient's z⊙(H ⋆ᵀ g) and masks), and for 3 x 3
 * separable filters `tap3` / `tap3sq`, a whole 1-D pass of three taps (of x
 * or of x²) in one loop, `rootmask`, `sqrtinv` and the mask in one loop,
 * `sum`, a float64 sum (R_n of one token), and, fusing these for all tokens
 * at once, `rootsum` (column pass, roots, mask and R_n), `rootgrad` (column
 * pass, 1/root, mask and dy_n) and `tap3mul` (a pass times z). Plain TypeScript runs these loops
 * about 5x slower.
 *
 * The module is written out byte by byte below, next to its text format; it
 * exports its memory, in which the caller places the arrays. Where the
 * runtime lacks WebAssembly SIMD, {@linkcode simdAxpy} returns null and the
 * caller loops in TypeScript.
 *
 * ```wat
 * (module
 *   (memory (export "mem") 1)
 *   (func (export "axpy") (param $y i32) (param $x i32) (param $w f32) (param $n i32)
 *     (local $w4 v128)
 *     (local.set $w4 (f32x4.splat (local.get $w)))
 *     ;; $n becomes the end address of y: y + 4n
 *     (local.set $n (i32.add (local.get $y) (i32.shl (local.get $n) (i32.const 2))))
 *     (block
 *       (br_if 0 (i32.ge_u (local.get $y) (local.get $n)))
 *       (loop
 *         (v128.store (local.get $y)
 *           (f32x4.add (v128.load (local.get $y))
 *                      (f32x4.mul (local.get $w4) (v128.load (local.get $x)))))
 *         (local.set $y (i32.add (local.get $y) (i32.const 16)))
 *         (local.set $x (i32.add (local.get $x) (i32.const 16)))
 *         (br_if 0 (i32.lt_u (local.get $y) (local.get $n))))))
 *   (func (export "sqrtinv") (param $y i32) (param $inv i32) (param $eps f32) (param $n i32)
 *     (local $e4 v128) (local $one v128) (local $r v128)
 *     (local.set $e4 (f32x4.splat (local.get $eps)))
 *     (local.set $one (f32x4.splat (f32.const 1)))
 *     (local.set $n (i32.add (local.get $y) (i32.shl (local.get $n) (i32.const 2))))
 *     (block
 *       (br_if 0 (i32.ge_u (local.get $y) (local.get $n)))
 *       (loop
 *         (local.set $r (f32x4.sqrt (f32x4.add (v128.load (local.get $y)) (local.get $e4))))
 *         (v128.store (local.get $y) (local.get $r))
 *         (v128.store (local.get $inv) (f32x4.div (local.get $one) (local.get $r)))
 *         (local.set $y (i32.add (local.get $y) (i32.const 16)))
 *         (local.set $inv (i32.add (local.get $inv) (i32.const 16)))
 *         (br_if 0 (i32.lt_u (local.get $y) (local.get $n))))))
 *   (func (export "mul") (param $y i32) (param $x i32) (param $w f32) (param $n i32)
 *     (local $w4 v128)
 *     (local.set $w4 (f32x4.splat (local.get $w)))
 *     (local.set $n (i32.add (local.get $y) (i32.shl (local.get $n) (i32.const 2))))
 *     (block
 *       (br_if 0 (i32.ge_u (local.get $y) (local.get $n)))
 *       (loop
 *         (v128.store (local.get $y)
 *           (f32x4.mul (f32x4.mul (v128.load (local.get $y)) (v128.load (local.get $x)))
 *                      (local.get $w4)))
 *         (local.set $y (i32.add (local.get $y) (i32.const 16)))
 *         (local.set $x (i32.add (local.get $x) (i32.const 16)))
 *         (br_if 0 (i32.lt_u (local.get $y) (local.get $n))))))
 *   ;; tap3sq: the same with each loaded vector squared first (through a 4th local $v).
 *   (func (export "tap3") (param $y i32) (param $x i32) (param $s i32) (param $n i32)
 *                         (param $w0 f32) (param $w1 f32) (param $w2 f32)
 *     (local $a v128) (local $b v128) (local $c v128) (local $v v128)
 *     (local.set $a (f32x4.splat (local.get $w0)))  ;; likewise $b, $c from $w1, $w2
 *     (local.set $n (i32.add (local.get $y) (i32.shl (local.get $n) (i32.const 2))))
 *     (block
 *       (br_if 0 (i32.ge_u (local.get $y) (local.get $n)))
 *       (loop
 *         (v128.store (local.get $y)
 *           (f32x4.add
 *             (f32x4.add (f32x4.mul (local.get $a) (v128.load (local.get $x)))
 *                        (f32x4.mul (local.get $b)
 *                                   (v128.load (i32.add (local.get $x) (local.get $s)))))
 *             (f32x4.mul (local.get $c)
 *                        (v128.load (i32.add (local.get $x)
 *                                            (i32.shl (local.get $s) (i32.const 1)))))))
 *         (local.set $y (i32.add (local.get $y) (i32.const 16)))
 *         (local.set $x (i32.add (local.get $x) (i32.const 16)))
 *         (br_if 0 (i32.lt_u (local.get $y) (local.get $n))))))
 *   (func (export "sum") (param $p i32) (param $n i32) (result f64)
 *     (local $acc v128) (local $v v128)
 *     (local.set $n (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
 *     (block
 *       (br_if 0 (i32.ge_u (local.get $p) (local.get $n)))
 *       (loop
 *         (local.set $v (v128.load (local.get $p)))
 *         (local.set $acc
 *           (f64x2.add
 *             (f64x2.add (local.get $acc) (f64x2.promote_low_f32x4 (local.get $v)))
 *             (f64x2.promote_low_f32x4
 *               (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7
 *                 (local.get $v) (local.get $v)))))
 *         (local.set $p (i32.add (local.get $p) (i32.const 16)))
 *         (br_if 0 (i32.lt_u (local.get $p) (local.get $n)))))
 *     (f64.add (f64x2.extract_lane 0 (local.get $acc)) (f64x2.extract_lane 1 (local.get $acc))))
 *   (func (export "rootmask") (param $y i32) (param $inv i32) (param $m i32) (param $n i32)
 *                             (param $eps f32)
 *     (local $e4 v128) (local $one v128) (local $r v128) (local $mk v128)
 *     ;; $e4, $one and $n as in sqrtinv
 *     (block
 *       (br_if 0 (i32.ge_u (local.get $y) (local.get $n)))
 *       (loop
 *         (local.set $r (f32x4.sqrt (f32x4.add (v128.load (local.get $y)) (local.get $e4))))
 *         (local.set $mk (v128.load (local.get $m)))
 *         (v128.store (local.get $y) (f32x4.mul (local.get $r) (local.get $mk)))
 *         (v128.store (local.get $inv)
 *           (f32x4.mul (f32x4.div (local.get $one) (local.get $r)) (local.get $mk)))
 *         ;; $y, $inv, $m += 16
 *         (br_if 0 (i32.lt_u (local.get $y) (local.get $n))))))
 *   ;; tap3 with the result times z[k] (a 4th address $z, advanced with $y and $x).
 *   (func (export "tap3mul") (param $y i32) (param $x i32) (param $s i32) (param $n i32)
 *                            (param $w0 f32) (param $w1 f32) (param $w2 f32) (param $z i32) ...)
 *   ;; Per token: $acc = 0, then over its E floats (E a multiple of 4, given in bytes as $e)
 *   ;; $v = sqrt(tap3 of t at stride $s + $e4) ⊙ load $m, $acc += $v as in `sum`;
 *   ;; then (f32.store $out (f32.demote_f64 (lane 0 + lane 1))), $out += 4.
 *   (func (export "rootsum") (param $t i32) (param $m i32) (param $out i32) (param $ntok i32)
 *                            (param $e i32) (param $s i32) (param $eps f32)
 *                            (param $w0 f32) (param $w1 f32) (param $w2 f32) ...)
 *   ;; Per token: $d = f32x4.splat (f32.load $dy), then over its E floats
 *   ;; (v128.store $g (f32x4.mul (f32x4.mul (f32x4.div $one (sqrt(tap3 of t + $e4)))
 *   ;;                                      (v128.load $m)) $d)); $dy += 4.
 *   (func (export "rootgrad") (param $t i32) (param $m i32) (param $g i32) (param $dy i32)
 *                             (param $ntok i32) (param $e i32) (param $s i32) (param $eps f32)
 *                             (param $w0 f32) (param $w1 f32) (param $w2 f32) ...))
 * ```
 *
 * `simdAxpy().tap3`, `tap3sq`, `tap3mul`, `rootsum` and `rootgrad` take strides and E in
 * floats (the module, in bytes).
 *
 * All work in groups of four: for n not a multiple of 4 they read and write
 * up to 3 floats past the end of each array, which the caller must own.
 *
 * @module
 */

import { exported, leb128, section } from "../ops/wasm_bytes.ts";

/** The module's code section body of `axpy` (see the text format above). */
// deno-fmt-ignore
const AXPY_BODY = [
  0x01, 0x01, 0x7b, // one local: v128 $w4
  0x20, 0x02, 0xfd, 0x13, 0x21, 0x04, // $w4 = f32x4.splat($w)
  0x20, 0x00, 0x20, 0x03, 0x41, 0x02, 0x74, 0x6a, 0x21, 0x03, // $n = $y + ($n << 2)
  0x02, 0x40, // block
  0x20, 0x00, 0x20, 0x03, 0x4f, 0x0d, 0x00, // br_if 0 ($y >= $n)
  0x03, 0x40, // loop
  0x20, 0x00, // address for the store: $y
  0x20, 0x00, 0xfd, 0x00, 0x00, 0x00, // v128.load $y
  0x20, 0x04, 0x20, 0x01, 0xfd, 0x00, 0x00, 0x00, // $w4, v128.load $x
  0xfd, 0xe6, 0x01, 0xfd, 0xe4, 0x01, // f32x4.mul, f32x4.add
  0xfd, 0x0b, 0x00, 0x00, // v128.store
  0x20, 0x00, 0x41, 0x10, 0x6a, 0x21, 0x00, // $y += 16
  0x20, 0x01, 0x41, 0x10, 0x6a, 0x21, 0x01, // $x += 16
  0x20, 0x00, 0x20, 0x03, 0x49, 0x0d, 0x00, // br_if 0 ($y < $n)
  0x0b, 0x0b, 0x0b, // end loop, end block, end function
];

/** The code section body of `sqrtinv` (see the text format above). */
// deno-fmt-ignore
const SQRTINV_BODY = [
  0x01, 0x03, 0x7b, // three locals: v128 $e4, $one, $r
  0x20, 0x02, 0xfd, 0x13, 0x21, 0x04, // $e4 = f32x4.splat($eps)
  0x43, 0x00, 0x00, 0x80, 0x3f, 0xfd, 0x13, 0x21, 0x05, // $one = f32x4.splat(1.0)
  0x20, 0x00, 0x20, 0x03, 0x41, 0x02, 0x74, 0x6a, 0x21, 0x03, // $n = $y + ($n << 2)
  0x02, 0x40, // block
  0x20, 0x00, 0x20, 0x03, 0x4f, 0x0d, 0x00, // br_if 0 ($y >= $n)
  0x03, 0x40, // loop
  0x20, 0x00, 0xfd, 0x00, 0x00, 0x00, 0x20, 0x04, 0xfd, 0xe4, 0x01, // v128.load $y, + $e4
  0xfd, 0xe3, 0x01, 0x21, 0x06, // $r = f32x4.sqrt(...)
  0x20, 0x00, 0x20, 0x06, 0xfd, 0x0b, 0x00, 0x00, // v128.store $y $r
  0x20, 0x01, 0x20, 0x05, 0x20, 0x06, 0xfd, 0xe7, 0x01, // $inv, f32x4.div($one, $r)
  0xfd, 0x0b, 0x00, 0x00, // v128.store
  0x20, 0x00, 0x41, 0x10, 0x6a, 0x21, 0x00, // $y += 16
  0x20, 0x01, 0x41, 0x10, 0x6a, 0x21, 0x01, // $inv += 16
  0x20, 0x00, 0x20, 0x03, 0x49, 0x0d, 0x00, // br_if 0 ($y < $n)
  0x0b, 0x0b, 0x0b, // end loop, end block, end function
];

/** The code section body of `mul` (see the text format above). */
// deno-fmt-ignore
const MUL_BODY = [
  0x01, 0x01, 0x7b, // one local: v128 $w4
  0x20, 0x02, 0xfd, 0x13, 0x21, 0x04, // $w4 = f32x4.splat($w)
  0x20, 0x00, 0x20, 0x03, 0x41, 0x02, 0x74, 0x6a, 0x21, 0x03, // $n = $y + ($n << 2)
  0x02, 0x40, // block
  0x20, 0x00, 0x20, 0x03, 0x4f, 0x0d, 0x00, // br_if 0 ($y >= $n)
  0x03, 0x40, // loop
  0x20, 0x00, // address for the store: $y
  0x20, 0x00, 0xfd, 0x00, 0x00, 0x00, // v128.load $y
  0x20, 0x01, 0xfd, 0x00, 0x00, 0x00, // v128.load $x
  0xfd, 0xe6, 0x01, // f32x4.mul
  0x20, 0x04, 0xfd, 0xe6, 0x01, // $w4, f32x4.mul
  0xfd, 0x0b, 0x00, 0x00, // v128.store
  0x20, 0x00, 0x41, 0x10, 0x6a, 0x21, 0x00, // $y += 16
  0x20, 0x01, 0x41, 0x10, 0x6a, 0x21, 0x01, // $x += 16
  0x20, 0x00, 0x20, 0x03, 0x49, 0x0d, 0x00, // br_if 0 ($y < $n)
  0x0b, 0x0b, 0x0b, // end loop, end block, end function
];

/**
 * The code section body of `tap3`, or of `tap3sq` when `square` (each loaded
 * x squared before its weight; see the text format above).
 */
function tap3Body(square: boolean): number[] {
  // v128.load of the address on the stack, then (tap3sq) ⋅ itself via $v.
  const load = [
    0xfd,
    0x00,
    0x00,
    0x00,
    ...(square ? [0x22, 0x0a, 0x20, 0x0a, 0xfd, 0xe6, 0x01] : []),
  ];
  // deno-fmt-ignore
  return [
    0x01, 0x04, 0x7b, // four locals: v128 $a, $b, $c, $v
    0x20, 0x04, 0xfd, 0x13, 0x21, 0x07, // $a = f32x4.splat($w0)
    0x20, 0x05, 0xfd, 0x13, 0x21, 0x08, // $b = f32x4.splat($w1)
    0x20, 0x06, 0xfd, 0x13, 0x21, 0x09, // $c = f32x4.splat($w2)
    0x20, 0x00, 0x20, 0x03, 0x41, 0x02, 0x74, 0x6a, 0x21, 0x03, // $n = $y + ($n << 2)
    0x02, 0x40, // block
    0x20, 0x00, 0x20, 0x03, 0x4f, 0x0d, 0x00, // br_if 0 ($y >= $n)
    0x03, 0x40, // loop
    0x20, 0x00, // address for the store: $y
    0x20, 0x07, 0x20, 0x01, ...load, 0xfd, 0xe6, 0x01, // $a · load $x
    0x20, 0x08, 0x20, 0x01, 0x20, 0x02, 0x6a, ...load, 0xfd, 0xe6, 0x01, // $b · load ($x + $s)
    0xfd, 0xe4, 0x01, // f32x4.add
    0x20, 0x09, 0x20, 0x01, 0x20, 0x02, 0x41, 0x01, 0x74, 0x6a, // $c, $x + ($s << 1)
    ...load, 0xfd, 0xe6, 0x01, // load, f32x4.mul
    0xfd, 0xe4, 0x01, // f32x4.add
    0xfd, 0x0b, 0x00, 0x00, // v128.store
    0x20, 0x00, 0x41, 0x10, 0x6a, 0x21, 0x00, // $y += 16
    0x20, 0x01, 0x41, 0x10, 0x6a, 0x21, 0x01, // $x += 16
    0x20, 0x00, 0x20, 0x03, 0x49, 0x0d, 0x00, // br_if 0 ($y < $n)
    0x0b, 0x0b, 0x0b, // end loop, end block, end function
  ];
}

/** The code section body of `rootmask` (see the text format above). */
// deno-fmt-ignore
const ROOTMASK_BODY = [
  0x01, 0x04, 0x7b, // four locals: v128 $e4, $one, $r, $mk
  0x20, 0x04, 0xfd, 0x13, 0x21, 0x05, // $e4 = f32x4.splat($eps)
  0x43, 0x00, 0x00, 0x80, 0x3f, 0xfd, 0x13, 0x21, 0x06, // $one = f32x4.splat(1.0)
  0x20, 0x00, 0x20, 0x03, 0x41, 0x02, 0x74, 0x6a, 0x21, 0x03, // $n = $y + ($n << 2)
  0x02, 0x40, // block
  0x20, 0x00, 0x20, 0x03, 0x4f, 0x0d, 0x00, // br_if 0 ($y >= $n)
  0x03, 0x40, // loop
  0x20, 0x00, 0xfd, 0x00, 0x00, 0x00, 0x20, 0x05, 0xfd, 0xe4, 0x01, // v128.load $y, + $e4
  0xfd, 0xe3, 0x01, 0x21, 0x07, // $r = f32x4.sqrt(...)
  0x20, 0x02, 0xfd, 0x00, 0x00, 0x00, 0x21, 0x08, // $mk = v128.load $m
  0x20, 0x00, 0x20, 0x07, 0x20, 0x08, 0xfd, 0xe6, 0x01, 0xfd, 0x0b, 0x00, 0x00, // store $y: $r · $mk
  0x20, 0x01, 0x20, 0x06, 0x20, 0x07, 0xfd, 0xe7, 0x01, // $inv, f32x4.div($one, $r)
  0x20, 0x08, 0xfd, 0xe6, 0x01, 0xfd, 0x0b, 0x00, 0x00, // · $mk, v128.store
  0x20, 0x00, 0x41, 0x10, 0x6a, 0x21, 0x00, // $y += 16
  0x20, 0x01, 0x41, 0x10, 0x6a, 0x21, 0x01, // $inv += 16
  0x20, 0x02, 0x41, 0x10, 0x6a, 0x21, 0x02, // $m += 16
  0x20, 0x00, 0x20, 0x03, 0x49, 0x0d, 0x00, // br_if 0 ($y < $n)
  0x0b, 0x0b, 0x0b, // end loop, end block, end function
];

/** The code section body of `sum` (see the text format above). */
// deno-fmt-ignore
const SUM_BODY = [
  0x01, 0x02, 0x7b, // two locals: v128 $acc (zero), $v
  0x20, 0x00, 0x20, 0x01, 0x41, 0x02, 0x74, 0x6a, 0x21, 0x01, // $n = $p + ($n << 2)
  0x02, 0x40, // block
  0x20, 0x00, 0x20, 0x01, 0x4f, 0x0d, 0x00, // br_if 0 ($p >= $n)
  0x03, 0x40, // loop
  0x20, 0x00, 0xfd, 0x00, 0x00, 0x00, 0x21, 0x03, // $v = v128.load $p
  0x20, 0x02, 0x20, 0x03, 0xfd, 0x5f, 0xfd, 0xf0, 0x01, // $acc + f64x2.promote_low($v)
  0x20, 0x03, 0x20, 0x03, 0xfd, 0x0d, // i8x16.shuffle $v $v: lanes 2, 3 to 0, 1
  8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7,
  0xfd, 0x5f, 0xfd, 0xf0, 0x01, 0x21, 0x02, // $acc = · + f64x2.promote_low(·)
  0x20, 0x00, 0x41, 0x10, 0x6a, 0x21, 0x00, // $p += 16
  0x20, 0x00, 0x20, 0x01, 0x49, 0x0d, 0x00, // br_if 0 ($p < $n)
  0x0b, 0x0b, // end loop, end block
  0x20, 0x02, 0xfd, 0x21, 0x00, 0x20, 0x02, 0xfd, 0x21, 0x01, 0xa0, // lane 0 + lane 1
  0x0b, // end function
];

/** v128.load of the address on the stack (align 0, offset 0). */
const LOAD = [0xfd, 0x00, 0x00, 0x00];
const F32X4_ADD = [0xfd, 0xe4, 0x01];
const F32X4_MUL = [0xfd, 0xe6, 0x01];

/**
 * (w0 · x[k] + w1 · x[k + s]) + w2 · x[k + 2s] on the stack, the three weights
 * splat in locals a, b, c, the address x and the stride s (bytes) in locals.
 */
function tapExpr(a: number, b: number, c: number, x: number, s: number): number[] {
  // deno-fmt-ignore
  return [
    0x20, a, 0x20, x, ...LOAD, ...F32X4_MUL, // a · load x
    0x20, b, 0x20, x, 0x20, s, 0x6a, ...LOAD, ...F32X4_MUL, // b · load (x + s)
    ...F32X4_ADD,
    0x20, c, 0x20, x, 0x20, s, 0x41, 0x01, 0x74, 0x6a, ...LOAD, ...F32X4_MUL, // c · load (x + 2s)
    ...F32X4_ADD,
  ];
}

/** The code section body of `rootsum` (see the text format above). */
// deno-fmt-ignore
const ROOTSUM_BODY = [
  0x02, 0x06, 0x7b, 0x01, 0x7f, // locals: v128 $a $b $c $e4 $acc $v (10-15), i32 $end (16)
  0x20, 0x07, 0xfd, 0x13, 0x21, 10, // $a = f32x4.splat($w0)
  0x20, 0x08, 0xfd, 0x13, 0x21, 11, // $b = f32x4.splat($w1)
  0x20, 0x09, 0xfd, 0x13, 0x21, 12, // $c = f32x4.splat($w2)
  0x20, 0x06, 0xfd, 0x13, 0x21, 13, // $e4 = f32x4.splat($eps)
  0x02, 0x40, // block
  0x20, 0x03, 0x45, 0x0d, 0x00, // br_if 0 ($ntok == 0)
  0x03, 0x40, // loop (tokens)
  0xfd, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x21, 14, // $acc = 0
  0x20, 0x00, 0x20, 0x04, 0x6a, 0x21, 16, // $end = $t + $e
  0x03, 0x40, // loop (one token's map)
  ...tapExpr(10, 11, 12, 0, 5), // col ⋆ t
  0x20, 13, ...F32X4_ADD, 0xfd, 0xe3, 0x01, // f32x4.sqrt(· + $e4)
  0x20, 0x01, ...LOAD, ...F32X4_MUL, 0x21, 15, // $v = · ⊙ load $m
  0x20, 14, 0x20, 15, 0xfd, 0x5f, 0xfd, 0xf0, 0x01, // $acc + f64x2.promote_low($v)
  0x20, 15, 0x20, 15, 0xfd, 0x0d, // i8x16.shuffle $v $v: lanes 2, 3 to 0, 1
  8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7,
  0xfd, 0x5f, 0xfd, 0xf0, 0x01, 0x21, 14, // $acc = · + f64x2.promote_low(·)
  0x20, 0x00, 0x41, 0x10, 0x6a, 0x21, 0x00, // $t += 16
  0x20, 0x01, 0x41, 0x10, 0x6a, 0x21, 0x01, // $m += 16
  0x20, 0x00, 0x20, 16, 0x49, 0x0d, 0x00, // br_if 0 ($t < $end)
  0x0b, // end loop (one token)
  0x20, 0x02, 0x20, 14, 0xfd, 0x21, 0x00, 0x20, 14, 0xfd, 0x21, 0x01, 0xa0, // $out, lane 0 + lane 1
  0xb6, 0x38, 0x02, 0x00, // f32.store (f32.demote_f64 ·)
  0x20, 0x02, 0x41, 0x04, 0x6a, 0x21, 0x02, // $out += 4
  0x20, 0x03, 0x41, 0x01, 0x6b, 0x22, 0x03, 0x0d, 0x00, // br_if 0 (--$ntok != 0)
  0x0b, 0x0b, 0x0b, // end loop (tokens), end block, end function
];

/** The code section body of `rootgrad` (see the text format above). */
// deno-fmt-ignore
const ROOTGRAD_BODY = [
  0x02, 0x06, 0x7b, 0x01, 0x7f, // locals: v128 $a $b $c $e4 $one $d (11-16), i32 $end (17)
  0x20, 0x08, 0xfd, 0x13, 0x21, 11, // $a = f32x4.splat($w0)
  0x20, 0x09, 0xfd, 0x13, 0x21, 12, // $b = f32x4.splat($w1)
  0x20, 0x0a, 0xfd, 0x13, 0x21, 13, // $c = f32x4.splat($w2)
  0x20, 0x07, 0xfd, 0x13, 0x21, 14, // $e4 = f32x4.splat($eps)
  0x43, 0x00, 0x00, 0x80, 0x3f, 0xfd, 0x13, 0x21, 15, // $one = f32x4.splat(1.0)
  0x02, 0x40, // block
  0x20, 0x04, 0x45, 0x0d, 0x00, // br_if 0 ($ntok == 0)
  0x03, 0x40, // loop (tokens)
  0x20, 0x03, 0x2a, 0x02, 0x00, 0xfd, 0x13, 0x21, 16, // $d = f32x4.splat(f32.load $dy)
  0x20, 0x00, 0x20, 0x05, 0x6a, 0x21, 17, // $end = $t + $e
  0x03, 0x40, // loop (one token's map)
  0x20, 0x02, 0x20, 15, // address for the store: $g; $one
  ...tapExpr(11, 12, 13, 0, 6), // col ⋆ t
  0x20, 14, ...F32X4_ADD, 0xfd, 0xe3, 0x01, 0xfd, 0xe7, 0x01, // $one / f32x4.sqrt(· + $e4)
  0x20, 0x01, ...LOAD, ...F32X4_MUL, 0x20, 16, ...F32X4_MUL, // · ⊙ load $m · $d
  0xfd, 0x0b, 0x00, 0x00, // v128.store
  0x20, 0x00, 0x41, 0x10, 0x6a, 0x21, 0x00, // $t += 16
  0x20, 0x01, 0x41, 0x10, 0x6a, 0x21, 0x01, // $m += 16
  0x20, 0x02, 0x41, 0x10, 0x6a, 0x21, 0x02, // $g += 16
  0x20, 0x00, 0x20, 17, 0x49, 0x0d, 0x00, // br_if 0 ($t < $end)
  0x0b, // end loop (one token)
  0x20, 0x03, 0x41, 0x04, 0x6a, 0x21, 0x03, // $dy += 4
  0x20, 0x04, 0x41, 0x01, 0x6b, 0x22, 0x04, 0x0d, 0x00, // br_if 0 (--$ntok != 0)
  0x0b, 0x0b, 0x0b, // end loop (tokens), end block, end function
];

/** The code section body of `tap3mul` (see the text format above). */
// deno-fmt-ignore
const TAP3MUL_BODY = [
  0x01, 0x03, 0x7b, // three locals: v128 $a $b $c (8-10)
  0x20, 0x04, 0xfd, 0x13, 0x21, 0x08, // $a = f32x4.splat($w0)
  0x20, 0x05, 0xfd, 0x13, 0x21, 0x09, // $b = f32x4.splat($w1)
  0x20, 0x06, 0xfd, 0x13, 0x21, 0x0a, // $c = f32x4.splat($w2)
  0x20, 0x00, 0x20, 0x03, 0x41, 0x02, 0x74, 0x6a, 0x21, 0x03, // $n = $y + ($n << 2)
  0x02, 0x40, // block
  0x20, 0x00, 0x20, 0x03, 0x4f, 0x0d, 0x00, // br_if 0 ($y >= $n)
  0x03, 0x40, // loop
  0x20, 0x00, // address for the store: $y
  ...tapExpr(8, 9, 10, 1, 2), // the three taps of x
  0x20, 0x07, ...LOAD, ...F32X4_MUL, // · ⊙ load $z
  0xfd, 0x0b, 0x00, 0x00, // v128.store
  0x20, 0x00, 0x41, 0x10, 0x6a, 0x21, 0x00, // $y += 16
  0x20, 0x01, 0x41, 0x10, 0x6a, 0x21, 0x01, // $x += 16
  0x20, 0x07, 0x41, 0x10, 0x6a, 0x21, 0x07, // $z += 16
  0x20, 0x00, 0x20, 0x03, 0x49, 0x0d, 0x00, // br_if 0 ($y < $n)
  0x0b, 0x0b, 0x0b, // end loop, end block, end function
];

/** The function bodies in index order. */
const BODIES = [
  AXPY_BODY,
  SQRTINV_BODY,
  MUL_BODY,
  tap3Body(false),
  SUM_BODY,
  tap3Body(true),
  ROOTMASK_BODY,
  ROOTSUM_BODY,
  ROOTGRAD_BODY,
  TAP3MUL_BODY,
];

/** The whole module: header, type, function, memory, export and code sections. */
// deno-fmt-ignore
const AXPY_MODULE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
  ...section(0x01, [
    0x07, // seven types:
    0x60, 0x04, 0x7f, 0x7f, 0x7d, 0x7f, 0x00, // 0: (i32 i32 f32 i32) -> ()
    0x60, 0x07, 0x7f, 0x7f, 0x7f, 0x7f, 0x7d, 0x7d, 0x7d, 0x00, // 1: (i32 i32 i32 i32 f32 f32 f32) -> ()
    0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7c, // 2: (i32 i32) -> f64
    0x60, 0x05, 0x7f, 0x7f, 0x7f, 0x7f, 0x7d, 0x00, // 3: (i32 i32 i32 i32 f32) -> ()
    0x60, 0x0a, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7d, 0x7d, 0x7d, 0x7d, 0x00, // 4: (i32 x6 f32 x4) -> ()
    0x60, 0x0b, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7d, 0x7d, 0x7d, 0x7d, 0x00, // 5: (i32 x7 f32 x4) -> ()
    0x60, 0x08, 0x7f, 0x7f, 0x7f, 0x7f, 0x7d, 0x7d, 0x7d, 0x7f, 0x00, // 6: (i32 x4 f32 x3 i32) -> ()
  ]),
  // the functions' types
  ...section(0x03, [0x0a, 0x00, 0x00, 0x00, 0x01, 0x02, 0x01, 0x03, 0x04, 0x05, 0x06]),
  ...section(0x05, [0x01, 0x00, 0x01]), // one memory, min 1 page
  ...section(0x07, [
    0x0b,
    ...exported("mem", 2, 0),
    ...exported("axpy", 0, 0),
    ...exported("sqrtinv", 0, 1),
    ...exported("mul", 0, 2),
    ...exported("tap3", 0, 3),
    ...exported("sum", 0, 4),
    ...exported("tap3sq", 0, 5),
    ...exported("rootmask", 0, 6),
    ...exported("rootsum", 0, 7),
    ...exported("rootgrad", 0, 8),
    ...exported("tap3mul", 0, 9),
  ]),
  ...section(0x0a, [BODIES.length, ...BODIES.flatMap((b) => [...leb128(b.length), ...b])]),
]);

/** The instantiated module: its memory and functions. */
export interface SimdAxpy {
  /** The module's memory; the arrays of a call must be views on it. */
  memory: WebAssembly.Memory;
  /** y[0..n) += w · x[0..n), y and x given as byte offsets into `memory`. */
  axpy: (y: number, x: number, w: number, n: number) => void;
  /** y[k] = sqrt(y[k] + eps) and inv[k] = 1 / y[k] for k < n (byte offsets into `memory`). */
  sqrtinv: (y: number, inv: number, eps: number, n: number) => void;
  /** y[k] = w · y[k] · x[k] for k < n (byte offsets into `memory`; x may equal y). */
  mul: (y: number, x: number, w: number, n: number) => void;
  /**
   * y[k] = (w0 · x[k] + w1 · x[k + s]) + w2 · x[k + 2s] for k < n, float32,
   * s a signed stride in floats (byte offsets into `memory`; y must not overlap x).
   */
  tap3: (y: number, x: number, s: number, n: number, w0: number, w1: number, w2: number) => void;
  /** {@linkcode SimdAxpy.tap3} of x ⊙ x: y[k] = (w0 · x[k]² + w1 · x[k + s]²) + w2 · x[k + 2s]². */
  tap3sq: (y: number, x: number, s: number, n: number, w0: number, w1: number, w2: number) => void;
  /**
   * r = sqrt(y[k] + eps), y[k] = r · m[k] and inv[k] = (1 / r) · m[k] for k < n
   * (byte offsets into `memory`): `sqrtinv` and a mask in one pass.
   */
  rootmask: (y: number, inv: number, m: number, n: number, eps: number) => void;
  /** Σ_{k<n} p[k] in float64, n a multiple of 4 (p a byte offset into `memory`). */
  sum: (p: number, n: number) => number;
  /**
   * For each of `ntok` tokens of E floats (E a multiple of 4): out[n] =
   * float32(Σ_k sqrt(Y[k] + eps) · m[k]) summed in float64 as `sum` does, where
   * Y[k] = (w0 · t[k] + w1 · t[k + s]) + w2 · t[k + 2s] (`tap3`): the column
   * pass, `rootmask` and the per-token `sum` of the forward pass in one loop
   * (t, m, out byte offsets; E and s in floats).
   */
  rootsum: (
    t: number,
    m: number,
    out: number,
    ntok: number,
    E: number,
    s: number,
    eps: number,
    w0: number,
    w1: number,
    w2: number,
  ) => void;
  /**
   * For each of `ntok` tokens of E floats (E a multiple of 4): g[k] =
   * ((1 / sqrt(Y[k] + eps)) · m[k]) · dy[n], Y as in `rootsum`: the
   * gradient's column pass, `rootmask` and its scaling by dy in one loop
   * (t, m, g, dy byte offsets; E and s in floats).
   */
  rootgrad: (
    t: number,
    m: number,
    g: number,
    dy: number,
    ntok: number,
    E: number,
    s: number,
    eps: number,
    w0: number,
    w1: number,
    w2: number,
  ) => void;
  /** {@linkcode SimdAxpy.tap3} times z: y[k] = ((w0 · x[k] + w1 · x[k + s]) + w2 · x[k + 2s]) · z[k]. */
  tap3mul: (
    y: number,
    x: number,
    s: number,
    n: number,
    w0: number,
    w1: number,
    w2: number,
    z: number,
  ) => void;
}

let instance: SimdAxpy | null | undefined;

/**
 * The SIMD module, instantiated once (synchronously, it is small),
 * or null where the runtime has no WebAssembly SIMD.
 *
 * @example
 * ```ts
 * import { simdAxpy } from "./axpy_simd.ts";
 * const k = simdAxpy();
 * if (k) {
 *   const f = new Float32Array(k.memory.buffer, 0, 8);
 *   f.set([1, 2, 3, 4, 10, 10, 10, 10]);
 *   k.axpy(0, 16, 0.5, 4); // f[0..4) += 0.5 · f[4..8)
 *   console.log(Array.from(f.subarray(0, 4))); // [6, 7, 8, 9]
 * }
 * ```
 */
export function simdAxpy(): SimdAxpy | null {
  if (instance !== undefined) return instance;
  try {
    if (typeof WebAssembly !== "object" || !WebAssembly.validate(AXPY_MODULE)) {
      return (instance = null);
    }
    const exports = new WebAssembly.Instance(new WebAssembly.Module(AXPY_MODULE)).exports;
    const tap3 = exports.tap3 as (...args: number[]) => void;
    const tap3sq = exports.tap3sq as (...args: number[]) => void;
    const rootsum = exports.rootsum as (...args: number[]) => void;
    const rootgrad = exports.rootgrad as (...args: number[]) => void;
    const tap3mul = exports.tap3mul as (...args: number[]) => void;
    instance = {
      memory: exports.mem as WebAssembly.Memory,
      axpy: exports.axpy as SimdAxpy["axpy"],
      sqrtinv: exports.sqrtinv as SimdAxpy["sqrtinv"],
      mul: exports.mul as SimdAxpy["mul"],
      tap3: ((y, x, s, n, w0, w1, w2) => tap3(y, x, 4 * s, n, w0, w1, w2)) as SimdAxpy["tap3"],
      sum: exports.sum as SimdAxpy["sum"],
      tap3sq: ((y, x, s, n, w0, w1, w2) =>
        tap3sq(y, x, 4 * s, n, w0, w1, w2)) as SimdAxpy["tap3sq"],
      rootmask: exports.rootmask as SimdAxpy["rootmask"],
      rootsum: ((t, m, out, ntok, E, s, eps, w0, w1, w2) =>
        rootsum(t, m, out, ntok, 4 * E, 4 * s, eps, w0, w1, w2)) as SimdAxpy["rootsum"],
      rootgrad: ((t, m, g, dy, ntok, E, s, eps, w0, w1, w2) =>
        rootgrad(t, m, g, dy, ntok, 4 * E, 4 * s, eps, w0, w1, w2)) as SimdAxpy["rootgrad"],
      tap3mul: ((y, x, s, n, w0, w1, w2, z) =>
        tap3mul(y, x, 4 * s, n, w0, w1, w2, z)) as SimdAxpy["tap3mul"],
    };
  } catch {
    instance = null;
  }
  return instance;
}
