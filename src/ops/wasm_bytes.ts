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

/**
 * The import section of a module that works on another module's memory:
 * one import, `env.mem`, a memory of at least 1 page (so any memory fits).
 */
export const MEMORY_IMPORT: number[] = section(0x02, [
  0x01, // one import
  0x03,
  0x65,
  0x6e,
  0x76, // "env"
  0x03,
  0x6d,
  0x65,
  0x6d, // "mem"
  0x02,
  0x00,
  0x01, // memory, no maximum, minimum 1 page
]);

/**
 * A module that imports its memory as `env.mem` ({@linkcode MEMORY_IMPORT}),
 * instantiated once per memory (e.g. tfjs-wasm's), with a switch for tests
 * and benchmarks: `get` gives null where the runtime refuses the module
 * (no WebAssembly SIMD) or while the switch is off.
 *
 * @example
 * ```ts
 * import { MEMORY_IMPORT, PerMemory } from "./wasm_bytes.ts";
 * // A module with no functions: header, then the memory import.
 * const bytes = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, ...MEMORY_IMPORT]);
 * const m = new PerMemory(bytes, (exports) => Object.keys(exports));
 * console.log(m.get(new WebAssembly.Memory({ initial: 1 }))); // []
 * ```
 */
export class PerMemory<T> {
  #bytes: Uint8Array<ArrayBuffer>;
  #pick: (exports: WebAssembly.Exports) => T;
  #instances = new WeakMap<WebAssembly.Memory, T | null>();
  #enabled = true;

  /**
   * @param bytes the module
   * @param pick what to keep of an instance's exports
   */
  constructor(bytes: Uint8Array<ArrayBuffer>, pick: (exports: WebAssembly.Exports) => T) {
    this.#bytes = bytes;
    this.#pick = pick;
  }

  /**
   * The module's exports on `memory`, or null (also for no memory).
   *
   * @example
   * ```ts
   * import { PerMemory } from "./wasm_bytes.ts";
   * const m = new PerMemory(new Uint8Array([0]), (e) => e); // not a module
   * console.log(m.get(new WebAssembly.Memory({ initial: 1 }))); // null
   * ```
   */
  get(memory: WebAssembly.Memory | null): T | null {
    if (!this.#enabled || memory === null) return null;
    let out = this.#instances.get(memory);
    if (out !== undefined) return out;
    try {
      out = WebAssembly.validate(this.#bytes)
        ? this.#pick(
          new WebAssembly.Instance(new WebAssembly.Module(this.#bytes), { env: { mem: memory } })
            .exports,
        )
        : null;
    } catch {
      out = null;
    }
    this.#instances.set(memory, out);
    return out;
  }

  /**
   * Turns the module on or off, returning the previous setting.
   *
   * @example
   * ```ts
   * import { PerMemory } from "./wasm_bytes.ts";
   * const m = new PerMemory(new Uint8Array([0]), (e) => e);
   * console.log(m.use(false)); // true
   * ```
   */
  use(on: boolean): boolean {
    const before = this.#enabled;
    this.#enabled = on;
    return before;
  }
}

/**
 * The `WebAssembly.Memory` of a tfjs-wasm backend (`tf.backend()` on wasm,
 * or the backend a kernel receives), where its tensors live; null for any
 * other backend.
 *
 * @example
 * ```ts
 * import { wasmBackendMemory } from "./wasm_bytes.ts";
 * console.log(wasmBackendMemory({})); // null
 * ```
 */
export function wasmBackendMemory(backend: unknown): WebAssembly.Memory | null {
  const memory = (backend as { wasm?: { asm?: { memory?: unknown } } } | null)?.wasm?.asm?.memory;
  return memory instanceof WebAssembly.Memory ? memory : null;
}
