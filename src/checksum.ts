/**
 * A fast 32-bit checksum (FNV-1a over little-endian 32-bit words) that the
 * dataset cache and checkpoint files store to detect corruption. It is not
 * cryptographic; it catches truncation, bit flips and torn writes.
 *
 * @module
 */

/**
 * Folds `bytes` into a running FNV-1a-style hash, four bytes at a time (the
 * last 0-3 bytes one at a time). Start with {@linkcode CHECKSUM_SEED}; feeding
 * the same bytes in any chunking whose chunk lengths are multiples of 4 gives
 * the same result.
 *
 * @example
 * ```ts
 * import { CHECKSUM_SEED, checksum32 } from "./checksum.ts";
 * const h = checksum32(new Uint8Array([1, 2, 3, 4, 5]), CHECKSUM_SEED);
 * console.log(h.toString(16)); // an unsigned 32-bit value
 * ```
 */
export function checksum32(bytes: Uint8Array, seed: number = CHECKSUM_SEED): number {
  let h = seed >>> 0;
  const words = bytes.length >>> 2;
  if (words > 0) {
    const view = bytes.byteOffset % 4 === 0
      ? new Uint32Array(bytes.buffer, bytes.byteOffset, words)
      : new Uint32Array(bytes.slice(0, words * 4).buffer);
    for (let i = 0; i < words; i++) h = Math.imul(h ^ view[i], 0x01000193);
  }
  for (let i = words * 4; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
  return h >>> 0;
}

/** The FNV-1a 32-bit offset basis, the starting value of {@linkcode checksum32}. */
export const CHECKSUM_SEED = 0x811c9dc5;

/**
 * True when this machine stores numbers little-endian (every platform Deno
 * runs on does). The binary formats of moge are little-endian and refuse to
 * run elsewhere rather than write unreadable files.
 *
 * @example
 * ```ts
 * import { isLittleEndian } from "./checksum.ts";
 * console.log(isLittleEndian()); // true
 * ```
 */
export function isLittleEndian(): boolean {
  return new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
}
