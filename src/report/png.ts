/**
 * A minimal PNG encoder (PNG specification, ISO/IEC 15948 / W3C PNG 2nd ed.)
 * for 8-bit RGBA images, in plain TypeScript with no dependencies, used to
 * write the routing-map figures (MoGE Fig. 2) of the invariance experiment.
 *
 * The file is the 8-byte signature, an IHDR chunk (bit depth 8, colour type 6
 * = RGBA, no interlace), one IDAT chunk holding the zlib stream (RFC 1950) of
 * the scanlines, each prefixed with filter type 0 (None), and IEND. Each chunk
 * ends with the CRC-32 of its type and data (ISO 3309 / ITU-T V.42, the PNG
 * spec's Annex D). {@linkcode encodePng} writes the zlib stream with stored
 * (uncompressed) deflate blocks (RFC 1951 §3.2.4) and its own Adler-32, so it
 * is synchronous; {@linkcode encodePngCompressed} compresses it with the
 * runtime's `CompressionStream("deflate")` instead (asynchronous, much
 * smaller files).
 *
 * @module
 */

import { checkInteger } from "../validate.ts";

/** The 8-byte PNG signature. */
export const PNG_SIGNATURE: Uint8Array = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/**
 * CRC-32 (polynomial 0xEDB88320, reflected, initial and final XOR
 * 0xFFFFFFFF) of `bytes`, as PNG chunks use (PNG spec Annex D).
 *
 * @param bytes the data
 * @param crc a running CRC to continue from (default: start a new one)
 * @returns the CRC as an unsigned 32-bit integer
 *
 * @example
 * ```ts
 * import { crc32 } from "./png.ts";
 * crc32(new TextEncoder().encode("123456789")).toString(16); // "cbf43926"
 * ```
 */
export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = (crc ^ 0xffffffff) >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * Adler-32 checksum of `bytes` (RFC 1950 §8.2), the trailer of a zlib stream.
 *
 * @param bytes the data
 * @returns the checksum as an unsigned 32-bit integer
 *
 * @example
 * ```ts
 * import { adler32 } from "./png.ts";
 * adler32(new TextEncoder().encode("Wikipedia")).toString(16); // "11e60398"
 * ```
 */
export function adler32(bytes: Uint8Array): number {
  const MOD = 65521;
  let a = 1, b = 0;
  for (let i = 0; i < bytes.length;) {
    // 5552 bytes keep b below 2^53 comfortably (zlib's NMAX, for 32-bit ints).
    const end = Math.min(i + 5552, bytes.length);
    for (; i < end; i++) {
      a += bytes[i];
      b += a;
    }
    a %= MOD;
    b %= MOD;
  }
  return ((b << 16) | a) >>> 0;
}

/**
 * A zlib stream (RFC 1950) of `data` made of stored deflate blocks (RFC 1951
 * §3.2.4, at most 65535 bytes each): header 0x78 0x01, the blocks, then the
 * Adler-32 of `data`, big-endian. No compression; any inflater reads it.
 *
 * @param data the bytes to wrap
 * @returns the zlib stream
 *
 * @example
 * ```ts
 * import { zlibStored } from "./png.ts";
 * const z = zlibStored(new Uint8Array([1, 2, 3]));
 * console.log(z.length); // 2 + (5 + 3) + 4 = 14
 * ```
 */
export function zlibStored(data: Uint8Array): Uint8Array {
  const MAX = 65535;
  const blocks = Math.max(1, Math.ceil(data.length / MAX));
  const out = new Uint8Array(2 + blocks * 5 + data.length + 4);
  out[0] = 0x78; // CM = 8 (deflate), CINFO = 7 (32K window)
  out[1] = 0x01; // FLEVEL 0, no dictionary; (0x78 << 8 | 0x01) % 31 === 0
  let o = 2;
  for (let k = 0; k < blocks; k++) {
    const start = k * MAX;
    const len = Math.min(MAX, data.length - start);
    out[o++] = k === blocks - 1 ? 1 : 0; // BFINAL, BTYPE = 00 (stored)
    out[o++] = len & 0xff;
    out[o++] = len >>> 8;
    out[o++] = ~len & 0xff;
    out[o++] = (~len >>> 8) & 0xff;
    out.set(data.subarray(start, start + len), o);
    o += len;
  }
  const ad = adler32(data);
  out[o++] = ad >>> 24;
  out[o++] = (ad >>> 16) & 0xff;
  out[o++] = (ad >>> 8) & 0xff;
  out[o++] = ad & 0xff;
  return out;
}

function checkImage(fn: string, width: number, height: number, rgba: Uint8Array): void {
  checkInteger(`${fn}: width`, width, 1, 0x7fffffff);
  checkInteger(`${fn}: height`, height, 1, 0x7fffffff);
  const bytes: unknown = rgba;
  if (!(bytes instanceof Uint8Array) && !(bytes instanceof Uint8ClampedArray)) {
    throw new TypeError(
      `${fn}: rgba must be a Uint8Array of width * height * 4 bytes, got ${
        (bytes as object | null)?.constructor?.name ?? String(bytes)
      }`,
    );
  }
  if (rgba.length !== width * height * 4) {
    throw new RangeError(
      `${fn}: rgba.length = ${rgba.length} is invalid: it must equal width * height * 4 ` +
        `(${width} * ${height} * 4 = ${width * height * 4})`,
    );
  }
}

/**
 * The PNG scanlines of an RGBA image: each row prefixed with filter type 0
 * (None), i.e. height * (1 + 4 * width) bytes. This is what the IDAT zlib
 * stream decompresses to.
 *
 * @param width image width in pixels (integer ≥ 1)
 * @param height image height in pixels (integer ≥ 1)
 * @param rgba width * height * 4 bytes, row-major RGBA
 * @returns the filtered scanlines
 *
 * @example
 * ```ts
 * import { pngScanlines } from "./png.ts";
 * pngScanlines(1, 2, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])); // [0,1,2,3,4, 0,5,6,7,8]
 * ```
 */
export function pngScanlines(width: number, height: number, rgba: Uint8Array): Uint8Array {
  checkImage("pngScanlines", width, height, rgba);
  const stride = 4 * width;
  const raw = new Uint8Array(height * (stride + 1));
  for (let y = 0; y < height; y++) {
    raw[y * (stride + 1)] = 0;
    raw.set(rgba.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  }
  return raw;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

function assemble(width: number, height: number, zlib: Uint8Array): Uint8Array {
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, width);
  v.setUint32(4, height);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // colour type: truecolour with alpha
  ihdr[10] = 0; // compression method: deflate
  ihdr[11] = 0; // filter method 0
  ihdr[12] = 0; // no interlace
  const parts = [
    PNG_SIGNATURE,
    chunk("IHDR", ihdr),
    chunk("IDAT", zlib),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Encodes an 8-bit RGBA image as a PNG file (signature, IHDR, one IDAT, IEND),
 * synchronously: filter 0 on every row and a zlib stream of stored
 * (uncompressed) deflate blocks, so the file is about 4·W·H bytes. Use
 * {@linkcode encodePngCompressed} for smaller files.
 *
 * @param width image width in pixels (integer ≥ 1)
 * @param height image height in pixels (integer ≥ 1)
 * @param rgba width * height * 4 bytes, row-major, R G B A per pixel
 * @returns the PNG file bytes
 *
 * @example
 * ```ts
 * import { encodePng } from "./png.ts";
 * const red = new Uint8Array([255, 0, 0, 255]); // one opaque red pixel
 * const png = encodePng(1, 1, red);
 * // Deno.writeFileSync("/tmp/red.png", png);
 * console.log(png.length);
 * ```
 */
export function encodePng(width: number, height: number, rgba: Uint8Array): Uint8Array {
  checkImage("encodePng", width, height, rgba);
  return assemble(width, height, zlibStored(pngScanlines(width, height, rgba)));
}

/**
 * Like {@linkcode encodePng}, but the IDAT zlib stream is compressed with the
 * runtime's `CompressionStream("deflate")` (zlib format, RFC 1950), hence
 * asynchronous. Much smaller for plots with flat colour areas.
 *
 * @param width image width in pixels (integer ≥ 1)
 * @param height image height in pixels (integer ≥ 1)
 * @param rgba width * height * 4 bytes, row-major RGBA
 * @returns the PNG file bytes
 *
 * @example
 * ```ts
 * import { encodePngCompressed } from "./png.ts";
 * const png = await encodePngCompressed(64, 64, new Uint8Array(64 * 64 * 4).fill(255));
 * console.log(png.length < 64 * 64 * 4); // true
 * ```
 */
export async function encodePngCompressed(
  width: number,
  height: number,
  rgba: Uint8Array,
): Promise<Uint8Array> {
  checkImage("encodePngCompressed", width, height, rgba);
  const raw = pngScanlines(width, height, rgba);
  const stream = new Blob([raw as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new CompressionStream("deflate"),
  );
  const zlib = new Uint8Array(await new Response(stream).arrayBuffer());
  return assemble(width, height, zlib);
}
