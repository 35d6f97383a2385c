/**
 * The few pieces of the WebAssembly binary format that the hand-written SIMD
 * modules of this project (`../moge/axpy_simd.ts`, `./adamw_simd.ts`) are
 * assembled from: sizes as LEB128 numbers, sections, export entries.
 *
 * @module
 */

/**
 * n as an unsigned LEB128 number (how WebAssembly writes sizes and indices).
 *
 * @example
 * ```ts
 * import { leb128 } from "./wasm_bytes.ts";
 * console.log(leb128(624485)); // [229, 142, 38]
 * ```
 */
export function leb128(n: number): number[] {
  const out: number[] = [];
  do {
    const byte = n & 0x7f;
    n >>>= 7;
    out.push(n ? byte | 0x80 : byte);
  } while (n);
  return out;
}

/**
 * A section: its id, then its contents prefixed with their size.
 *
 * @example
 * ```ts
 * import { section } from "./wasm_bytes.ts";
 * console.log(section(3, [1, 0])); // [3, 2, 1, 0]: one function of type 0
 * ```
 */
export function section(id: number, body: number[]): number[] {
  return [id, ...leb128(body.length), ...body];
}

/**
 * An export entry: name (ASCII), kind (0 function, 2 memory) and index.
 *
 * @example
 * ```ts
 * import { exported } from "./wasm_bytes.ts";
 * console.log(exported("f", 0, 0)); // [1, 102, 0, 0]
 * ```
 */
export function exported(name: string, kind: number, index: number): number[] {
  return [name.length, ...Array.from(name, (ch) => ch.charCodeAt(0)), kind, index];
}
