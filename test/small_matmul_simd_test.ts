/**
 * The SIMD products of `src/ops/small_matmul_simd.ts` against float64 loops
 * straight from their definitions, on a memory of their own and on
 * tfjs-wasm's memory (where the experts use them).
 */

import { smallMatmul } from "../src/ops/small_matmul_simd.ts";
import { wasmBackendMemory } from "../src/ops/wasm_bytes.ts";
import { tf } from "../src/deps.ts";
import { useBackend } from "../src/backend.ts";
import { assertAllClose, ok } from "./asserts.ts";

/** Deterministic values in [-1, 1]. */
function values(n: number, seed: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(1.7 * i + seed));
}

/** float64 references, row-major. */
const ref = {
  xw: (x: Float32Array, w: Float32Array, n: number, K: number, F: number) =>
    Float64Array.from({ length: n * F }, (_, t) => {
      const [i, f] = [Math.floor(t / F), t % F];
      let s = 0;
      for (let k = 0; k < K; k++) s += x[i * K + k] * w[k * F + f];
      return s;
    }),
  xwt: (x: Float32Array, w: Float32Array, n: number, K: number, F: number) =>
    Float64Array.from({ length: n * K }, (_, t) => {
      const [i, k] = [Math.floor(t / K), t % K];
      let s = 0;
      for (let f = 0; f < F; f++) s += x[i * F + f] * w[k * F + f];
      return s;
    }),
  atb: (a: Float32Array, b: Float32Array, n: number, K: number, F: number) =>
    Float64Array.from({ length: K * F }, (_, t) => {
      const [k, f] = [Math.floor(t / F), t % F];
      let s = 0;
      for (let i = 0; i < n; i++) s += a[i * K + k] * b[i * F + f];
      return s;
    }),
};

/** [first operand size, second operand size, result size] of each product. */
const sizes = {
  xw: (n: number, K: number, F: number) => [n * K, K * F, n * F],
  xwt: (n: number, K: number, F: number) => [n * F, K * F, n * K],
  atb: (n: number, K: number, F: number) => [n * K, n * F, K * F],
};

const SHAPES: [number, number, number][] = [
  [1, 1, 4],
  [2, 3, 8],
  [3, 784, 64], // an expert's first layer at d = 784, d_ff = 64
  [2, 64, 784], // its second layer
  [8, 7, 12],
  [0, 5, 4], // no rows
];

Deno.test("small matmuls: xw, xwt and atb equal float64 loops of their definitions (float32 rounding)", () => {
  const memory = new WebAssembly.Memory({ initial: 64 });
  const mm = smallMatmul(memory);
  ok(mm, "WebAssembly SIMD is available here");
  const f32 = new Float32Array(memory.buffer);
  for (const [n, K, F] of SHAPES) {
    for (const name of ["xw", "xwt", "atb"] as const) {
      const [sa, sb, sy] = sizes[name](n, K, F);
      const a = values(sa, 1), b = values(sb, 2);
      // Operands at odd float offsets (4-byte, not 16-byte, aligned) and a
      // poisoned result region: every entry must be written.
      const [oa, ob, oy] = [1, 1 + sa + 3, 1 + sa + 3 + sb + 5];
      f32.set(a, oa);
      f32.set(b, ob);
      f32.fill(NaN, oy, oy + sy + 4);
      mm![name](4 * oa, 4 * ob, 4 * oy, n, K, F);
      const got = f32.subarray(oy, oy + sy);
      // Float32 products summed in float32: at most K (or n) roundings of sums of |terms| <= K.
      assertAllClose(got, ref[name](a, b, n, K, F), {
        atol: 1e-6 * Math.max(K, F, n, 1),
        rtol: 1e-5,
        msg: `${name} n=${n} K=${K} F=${F}`,
      });
      ok(Number.isNaN(f32[oy + sy]), `${name}: wrote past its result`);
    }
  }
});

Deno.test("small matmuls run on tfjs-wasm's memory: xw of two tensors into a third", async () => {
  await useBackend("wasm");
  const b = tf.backend() as unknown as {
    dataIdMap: { get(id: unknown): { memoryOffset: number } };
  };
  const mm = smallMatmul(wasmBackendMemory(b));
  ok(mm, "available on the wasm backend");
  const [n, K, F] = [3, 10, 8];
  const xv = values(n * K, 3), wv = values(K * F, 4);
  const x = tf.tensor2d(xv, [n, K]), w = tf.tensor2d(wv, [K, F]), y = tf.zeros([n, F]);
  const at = (t: tf.Tensor) => b.dataIdMap.get(t.dataId).memoryOffset;
  mm!.xw(at(x), at(w), at(y), n, K, F);
  assertAllClose(await y.data(), ref.xw(xv, wv, n, K, F), { atol: 1e-5 });
  const xw = tf.matMul(x, w);
  assertAllClose(await y.data(), await xw.data(), { atol: 1e-5 });
  tf.dispose([x, w, y, xw]);
});
