/**
 * PNG files of 8-bit RGBA images (the routing-map figures, MoGE Fig. 2),
 * encoded by fast-png (deflate by pako at level 9), loaded on first use.
 *
 * @module
 */

import { importFastPng } from "../deps.ts";
import { checkInteger } from "../validate.ts";

/** The 8-byte PNG signature every PNG file starts with. */
export const PNG_SIGNATURE: Uint8Array = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);

function checkImage(fn: string, width: number, height: number, rgba: Uint8Array): void {
  checkInteger(`${fn}: width`, width, 1);
  checkInteger(`${fn}: height`, height, 1);
  if (!(rgba instanceof Uint8Array)) {
    throw new TypeError(`${fn}: rgba must be a Uint8Array of width * height * 4 bytes`);
  }
  if (rgba.length !== width * height * 4) {
    throw new RangeError(
      `${fn}: rgba.length = ${rgba.length} is invalid: it must be width * height * 4 = ` +
        `${width * height * 4}`,
    );
  }
}

/**
 * Encodes an 8-bit RGBA image as a PNG file with fast-png (zlib level 9).
 * Asynchronous only because fast-png is loaded on demand.
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
 * const png = await encodePng(1, 1, red);
 * console.log(png.length);
 * ```
 */
export async function encodePng(
  width: number,
  height: number,
  rgba: Uint8Array,
): Promise<Uint8Array> {
  checkImage("encodePng", width, height, rgba);
  const { encode } = await importFastPng();
  return encode({ width, height, data: rgba, channels: 4, depth: 8 }, { zlib: { level: 9 } });
}

/**
 * The former name of {@linkcode encodePng} (both compress now).
 *
 * @deprecated use {@linkcode encodePng}
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
  return await encodePng(width, height, rgba);
}

/**
 * Decodes a PNG file to 8-bit RGBA (for tests and tools: any colour type or
 * bit depth fast-png reads is converted to 8-bit RGBA).
 *
 * @param png the PNG file bytes
 * @returns { width, height, rgba } with width * height * 4 bytes
 *
 * @example
 * ```ts
 * import { decodePng, encodePng } from "./png.ts";
 * const img = await decodePng(await encodePng(1, 1, new Uint8Array([1, 2, 3, 4])));
 * console.log([...img.rgba]); // [1, 2, 3, 4]
 * ```
 */
export async function decodePng(
  png: Uint8Array,
): Promise<{ width: number; height: number; rgba: Uint8Array }> {
  if (!(png instanceof Uint8Array)) throw new TypeError("decodePng: png must be a Uint8Array");
  const { decode } = await importFastPng();
  let img;
  try {
    img = decode(png);
  } catch (e) {
    throw new RangeError(`decodePng: not a readable PNG file: ${(e as Error).message}`);
  }
  const { width, height, channels, depth } = img;
  const src = img.data;
  const rgba = new Uint8Array(width * height * 4);
  const shift = depth === 16 ? 8 : 0;
  const scale = depth < 8 ? 255 / ((1 << depth) - 1) : 1;
  for (let p = 0; p < width * height; p++) {
    const at = (c: number) => Math.round((src[p * channels + c] >> shift) * scale);
    const g = at(0);
    if (channels >= 3) {
      rgba[p * 4] = g;
      rgba[p * 4 + 1] = at(1);
      rgba[p * 4 + 2] = at(2);
    } else {
      rgba[p * 4] = rgba[p * 4 + 1] = rgba[p * 4 + 2] = g;
    }
    rgba[p * 4 + 3] = channels === 4 ? at(3) : channels === 2 ? at(1) : 255;
  }
  return { width, height, rgba };
}
