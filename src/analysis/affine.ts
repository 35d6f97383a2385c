/**
 * Affine image transforms with the semantics of torchvision's
 * `transforms.RandomAffine` / `transforms.functional.affine` on tensors, for
 * the invariance experiment of MoGE (Sec. 2.4, Table 1): the
 * routing map of a test image is compared (by {@linkcode imed}) with the map of
 * the same image after a random rotation, scaling, translation or shear.
 *
 * **Convention (reproduced from torchvision ≥ 0.8, tensor path).** Pixel
 * coordinates are x = column (to the right) and y = row (downwards), measured
 * from the image centre ((W − 1)/2, (H − 1)/2) in pixel-index coordinates, i.e.
 * the geometric centre of the W × H pixel grid (torchvision builds the grid at
 * x = −W/2 + 0.5 + j and samples with `grid_sample(align_corners=False)`; its
 * PIL path uses (W/2, H/2) in PIL's pixel-edge coordinates, the same point).
 * The forward map is `_get_inverse_affine_matrix`'s
 *
 *   M = T(tx, ty) · C · R(a) · S(s) · SHy(sy) · SHx(sx) · C⁻¹,
 *   R(a) = [cos a, −sin a; sin a, cos a],
 *   SHx(sx) = [1, −tan sx; 0, 1],  SHy(sy) = [1, 0; −tan sy, 1],
 *
 * and the output pixel at p takes the input sampled at M⁻¹ p. Because y points
 * down, a **positive angle turns the content clockwise on screen**: this is
 * `torchvision.transforms.functional.affine`'s documented "clockwise
 * direction", which `RandomAffine` uses (only `functional.rotate` is
 * counter-clockwise, by passing −angle). `RandomAffine` draws the angle from
 * the symmetric U(−θ, θ), so the direction does not matter for Table 1.
 * Positive tx moves the content right, positive ty down.
 *
 * Sampling is bilinear (or nearest) as `grid_sample(padding_mode="zeros")`,
 * followed by torchvision's fill rule for a given fill value f: with S the
 * bilinear sum over the in-image taps and m the sum of their weights, the
 * output is S·m + (1 − m)·f (torchvision's `img * mask + (1 - mask) * fill`;
 * m = 1 inside the image, so only pixels near the border see it). Nearest
 * uses round-half-to-even (`nearbyint`) and f where the tap is outside.
 *
 * @module
 */

import { checkFinite, checkInteger, checkNumber } from "../validate.ts";

/** Parameters of one affine transform (torchvision `functional.affine`). */
export interface AffineParams {
  /** Rotation in degrees; positive turns the content clockwise on screen (y down). */
  angle: number;
  /** Post-rotation translation [tx, ty] in pixels (right, down). */
  translate: [number, number];
  /** Overall scale factor (> 0). */
  scale: number;
  /** Shear angles [sx, sy] in degrees, parallel to the x and y axes. */
  shear: [number, number];
}

/** Resampling of {@linkcode affineTransform}: torchvision's `InterpolationMode`. */
export type AffineInterpolation = "bilinear" | "nearest";

/**
 * The ranges of `torchvision.transforms.RandomAffine`, for
 * {@linkcode randomAffineParams}.
 */
export interface RandomAffineOptions {
  /** θ (angle ~ U(−θ, θ)) or a range [min, max] in degrees; default 0. */
  degrees?: number | [number, number];
  /** Maximal fractions [a, b]: tx ~ U(−a·W, a·W), ty ~ U(−b·H, b·H), rounded to integers. */
  translate?: [number, number];
  /** A fixed scale s, or a range [min, max] (scale ~ U(min, max)); default 1. */
  scale?: number | [number, number];
  /**
   * φ (shear x ~ U(−φ, φ), shear y = 0), a range [min, max] for shear x, or
   * [xmin, xmax, ymin, ymax] for both; default no shear.
   */
  shear?: number | [number, number] | [number, number, number, number];
}

/** One column of the paper's Table 1: a transform family member and its IMED figures. */
export interface Table1Transform {
  /** Column name, e.g. "rotation 5". */
  name: string;
  /** Transform family. */
  family: "rotation" | "scaling" | "translation" | "shear";
  /** The `RandomAffine` ranges of this column. */
  options: RandomAffineOptions;
  /** The paper's average IMED for MoE. */
  paperMoE: number;
  /** The paper's average IMED for MoGE. */
  paperMoGE: number;
}

/**
 * The 12 columns of the paper's Table 1 (MoGE, arXiv 2504.09265, Sec. 2.4) as
 * `RandomAffine` ranges, with the paper's average IMED for MoE and MoGE. The
 * claim to reproduce is the direction (MoGE below MoE in every column).
 *
 * @example
 * ```ts
 * import { TABLE1_TRANSFORMS } from "./affine.ts";
 * for (const t of TABLE1_TRANSFORMS) console.log(t.name, t.paperMoE, "->", t.paperMoGE);
 * ```
 */
export const TABLE1_TRANSFORMS: readonly Table1Transform[] = Object.freeze([
  {
    name: "rotation 5",
    family: "rotation",
    options: { degrees: 5 },
    paperMoE: 0.0778,
    paperMoGE: 0.0473,
  },
  {
    name: "rotation 10",
    family: "rotation",
    options: { degrees: 10 },
    paperMoE: 0.1301,
    paperMoGE: 0.0811,
  },
  {
    name: "rotation 15",
    family: "rotation",
    options: { degrees: 15 },
    paperMoE: 0.1670,
    paperMoGE: 0.1067,
  },
  {
    name: "scale 0.5",
    family: "scaling",
    options: { scale: 0.5 },
    paperMoE: 0.2359,
    paperMoGE: 0.1948,
  },
  {
    name: "scale 0.8",
    family: "scaling",
    options: { scale: 0.8 },
    paperMoE: 0.2268,
    paperMoGE: 0.1680,
  },
  {
    name: "scale 1.1",
    family: "scaling",
    options: { scale: 1.1 },
    paperMoE: 0.1466,
    paperMoGE: 0.1147,
  },
  {
    name: "translation (0, 0.1)",
    family: "translation",
    options: { translate: [0, 0.1] },
    paperMoE: 0.1181,
    paperMoGE: 0.0786,
  },
  {
    name: "translation (0.1, 0)",
    family: "translation",
    options: { translate: [0.1, 0] },
    paperMoE: 0.1218,
    paperMoGE: 0.0809,
  },
  {
    name: "translation (0.1, 0.1)",
    family: "translation",
    options: { translate: [0.1, 0.1] },
    paperMoE: 0.1759,
    paperMoGE: 0.1206,
  },
  { name: "shear 5", family: "shear", options: { shear: 5 }, paperMoE: 0.0345, paperMoGE: 0.0209 },
  {
    name: "shear 10",
    family: "shear",
    options: { shear: 10 },
    paperMoE: 0.0671,
    paperMoGE: 0.0396,
  },
  {
    name: "shear 15",
    family: "shear",
    options: { shear: 15 },
    paperMoE: 0.0980,
    paperMoGE: 0.0576,
  },
] as Table1Transform[]);

function checkPair(name: string, v: unknown): asserts v is [number, number] {
  if (!Array.isArray(v) || v.length !== 2) {
    throw new RangeError(`${name} = ${String(v)} is invalid: ${name} must be a pair [x, y]`);
  }
  checkNumber(`${name}[0]`, v[0]);
  checkNumber(`${name}[1]`, v[1]);
}

function checkParams(fn: string, params: AffineParams): void {
  if (params === null || typeof params !== "object") {
    throw new TypeError(
      `${fn}: params must be an object { angle, translate, scale, shear }, got ${String(params)}`,
    );
  }
  checkNumber(`${fn}: params.angle`, params.angle);
  checkPair(`${fn}: params.translate`, params.translate);
  checkNumber(`${fn}: params.scale`, params.scale, { min: 0, exclusiveMin: true });
  checkPair(`${fn}: params.shear`, params.shear);
}

/**
 * torchvision's `_get_inverse_affine_matrix(center, angle, translate, scale,
 * shear)`: the 2 × 3 matrix [m0, m1, m2, m3, m4, m5] of M⁻¹ for the forward
 * map M = T · C · R(angle) · S(scale) · SHy(sy) · SHx(sx) · C⁻¹ (see the
 * module docs), so that the input point sampled for the output point (x, y)
 * is (m0·x + m1·y + m2, m3·x + m4·y + m5). {@linkcode affineTransform} uses it
 * with center [0, 0] and coordinates relative to the image centre, as
 * torchvision does for tensors.
 *
 * @param center [cx, cy], the fixed point of rotation, scaling and shear
 * @param params angle, translate, scale, shear (degrees and pixels)
 * @returns the six entries of the inverse matrix
 *
 * @example
 * ```ts
 * import { inverseAffineMatrix } from "./affine.ts";
 * const m = inverseAffineMatrix([0, 0], { angle: 0, translate: [2, 0], scale: 1, shear: [0, 0] });
 * console.log(m); // [1, 0, -2, 0, 1, 0]: output x samples input x - 2
 * ```
 */
export function inverseAffineMatrix(
  center: [number, number],
  params: AffineParams,
): [number, number, number, number, number, number] {
  checkPair("inverseAffineMatrix: center", center);
  checkParams("inverseAffineMatrix", params);
  const rad = Math.PI / 180;
  const rot = params.angle * rad;
  const sx = params.shear[0] * rad;
  const sy = params.shear[1] * rad;
  const [cx, cy] = center;
  const [tx, ty] = params.translate;
  // RSS without scaling (torchvision's a, b, c, d).
  const a = Math.cos(rot - sy) / Math.cos(sy);
  const b = -Math.cos(rot - sy) * Math.tan(sx) / Math.cos(sy) - Math.sin(rot);
  const c = Math.sin(rot - sy) / Math.cos(sy);
  const d = -Math.sin(rot - sy) * Math.tan(sx) / Math.cos(sy) + Math.cos(rot);
  // det [[a, b], [c, d]] = 1, so the inverse is [[d, -b], [-c, a]]; then 1/scale.
  const m = [d, -b, 0, -c, a, 0].map((x) => x / params.scale);
  m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
  m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
  m[2] += cx;
  m[5] += cy;
  if (!m.every(Number.isFinite)) {
    throw new RangeError(
      `inverseAffineMatrix: shear = [${params.shear}] is degenerate (a shear of ±90 degrees ` +
        `is not invertible): the inverse matrix is not finite`,
    );
  }
  return m.map((x) => x === 0 ? 0 : x) as [number, number, number, number, number, number]; // no -0
}

function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  const r = d > 0.5 ? f + 1 : d < 0.5 ? f : (f % 2 === 0 ? f : f + 1);
  return r === 0 ? 0 : r; // no -0
}

/**
 * Applies one affine transform to a single-channel H × W image (row-major),
 * as `torchvision.transforms.functional.affine` does on a float tensor:
 * rotation by `angle` degrees (positive = clockwise on screen), scaling,
 * shear and a post-rotation translation, about the image centre
 * ((W − 1)/2, (H − 1)/2), sampled bilinearly (default) or nearest, with
 * torchvision's fill rule S·m + (1 − m)·fill at the border (module docs).
 * The result is float; torchvision would round it back for a uint8 tensor.
 *
 * @param image H × W values, row-major (Float32Array, Uint8Array or any array of finite numbers)
 * @param width W (integer ≥ 1)
 * @param height H (integer ≥ 1)
 * @param params angle (degrees), translate [tx, ty] (pixels), scale (> 0), shear [sx, sy] (degrees)
 * @param fill value for the area outside the transformed image, default 0
 * @param interpolation "bilinear" (default) or "nearest"
 * @returns the transformed H × W image
 *
 * @example
 * ```ts
 * import { affineTransform } from "./affine.ts";
 * const img = new Float32Array([
 *   0, 1, 0,
 *   0, 1, 0,
 *   0, 0, 0,
 * ]);
 * const out = affineTransform(img, 3, 3, { angle: 90, translate: [0, 0], scale: 1, shear: [0, 0] });
 * console.log(Array.from(out, Math.round)); // [0,0,0, 0,1,1, 0,0,0]: turned clockwise
 * ```
 */
export function affineTransform(
  image: ArrayLike<number>,
  width: number,
  height: number,
  params: AffineParams,
  fill = 0,
  interpolation: AffineInterpolation = "bilinear",
): Float32Array {
  checkInteger("affineTransform: width", width, 1);
  checkInteger("affineTransform: height", height, 1);
  if (image === null || typeof image !== "object" || typeof image.length !== "number") {
    throw new TypeError(`affineTransform: image must be an array of numbers, got ${String(image)}`);
  }
  if (image.length !== width * height) {
    throw new RangeError(
      `affineTransform: image.length = ${image.length} is invalid: it must equal ` +
        `width * height (${width} * ${height} = ${width * height})`,
    );
  }
  checkFinite("affineTransform: image", image);
  checkParams("affineTransform", params);
  checkNumber("affineTransform: fill", fill);
  if (interpolation !== "bilinear" && interpolation !== "nearest") {
    throw new RangeError(
      `affineTransform: interpolation = ${
        String(interpolation)
      } is invalid: it must be "bilinear" or "nearest"`,
    );
  }
  const [m0, m1, m2, m3, m4, m5] = inverseAffineMatrix([0, 0], params);
  const cx = (width - 1) / 2, cy = (height - 1) / 2;
  const out = new Float32Array(width * height);
  const at = (x: number, y: number): number => x >= 0 && x < width && y >= 0 && y < height ? 1 : 0;
  for (let i = 0; i < height; i++) {
    const y = i - cy;
    for (let j = 0; j < width; j++) {
      const x = j - cx;
      const ix = m0 * x + m1 * y + m2 + cx;
      const iy = m3 * x + m4 * y + m5 + cy;
      if (interpolation === "nearest") {
        const nx = roundHalfEven(ix), ny = roundHalfEven(iy);
        out[i * width + j] = at(nx, ny) ? image[ny * width + nx] : fill;
        continue;
      }
      const x0 = Math.floor(ix), y0 = Math.floor(iy);
      const fx = ix - x0, fy = iy - y0;
      let s = 0, m = 0;
      const tap = (xx: number, yy: number, w: number) => {
        if (w !== 0 && at(xx, yy)) {
          s += w * image[yy * width + xx];
          m += w;
        }
      };
      tap(x0, y0, (1 - fx) * (1 - fy));
      tap(x0 + 1, y0, fx * (1 - fy));
      tap(x0, y0 + 1, (1 - fx) * fy);
      tap(x0 + 1, y0 + 1, fx * fy);
      out[i * width + j] = s * m + (1 - m) * fill;
    }
  }
  return out;
}

function uniform(rng: () => number, lo: number, hi: number): number {
  const u = rng();
  if (typeof u !== "number" || !(u >= 0 && u < 1)) {
    throw new RangeError(
      `randomAffineParams: rng() returned ${String(u)}: it must return a number in [0, 1)`,
    );
  }
  return lo + (hi - lo) * u;
}

function range(name: string, v: number | number[], symmetricOf: boolean, min = -Infinity) {
  if (typeof v === "number") {
    if (symmetricOf) {
      checkNumber(name, v, { min: 0 });
      return [-v, v];
    }
    checkNumber(name, v, { min, exclusiveMin: min === 0 });
    return [v, v];
  }
  if (!Array.isArray(v) || v.length !== 2) {
    throw new RangeError(
      `${name} = ${String(v)} is invalid: it must be a number or a range [min, max]`,
    );
  }
  checkNumber(`${name}[0]`, v[0], { min, exclusiveMin: min === 0 });
  checkNumber(`${name}[1]`, v[1], { min: v[0] });
  return [v[0], v[1]];
}

/**
 * Draws the parameters of one random affine transform as
 * `torchvision.transforms.RandomAffine.get_params` does, from the uniform
 * [0, 1) generator `rng` (seed it for reproducibility): angle ~ U(−θ, θ);
 * tx = round(U(−a·W, a·W)), ty = round(U(−b·H, b·H)) with Python's
 * round-half-to-even; scale ~ U(min, max) (a fixed s is the range [s, s]);
 * shear x ~ U(−φ, φ), shear y = 0 unless a 4-element range is given. The
 * draws happen in torchvision's order (angle, tx, ty, scale, shear x, shear
 * y), each only when its option is given, except the angle, which is always
 * drawn.
 *
 * @param options the `RandomAffine` ranges (see {@linkcode RandomAffineOptions})
 * @param width image width W (integer ≥ 1)
 * @param height image height H (integer ≥ 1)
 * @param rng returns uniform numbers in [0, 1)
 * @returns parameters for {@linkcode affineTransform}
 *
 * @example
 * ```ts
 * import { affineTransform, randomAffineParams } from "./affine.ts";
 * let seed = 42;
 * const rng = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
 * const p = randomAffineParams({ degrees: 15, translate: [0.1, 0.1] }, 28, 28, rng);
 * const out = affineTransform(new Float32Array(28 * 28).fill(1), 28, 28, p);
 * console.log(p.angle, p.translate, out.length);
 * ```
 */
export function randomAffineParams(
  options: RandomAffineOptions,
  width: number,
  height: number,
  rng: () => number,
): AffineParams {
  const fn = "randomAffineParams";
  if (options === null || typeof options !== "object") {
    throw new TypeError(`${fn}: options must be an object, got ${String(options)}`);
  }
  checkInteger(`${fn}: width`, width, 1);
  checkInteger(`${fn}: height`, height, 1);
  if (typeof rng !== "function") {
    throw new TypeError(`${fn}: rng must be a function returning numbers in [0, 1)`);
  }
  const [dlo, dhi] = range(`${fn}: options.degrees`, options.degrees ?? 0, true);
  const angle = uniform(rng, dlo, dhi);
  let translate: [number, number] = [0, 0];
  if (options.translate !== undefined) {
    const t = options.translate;
    if (!Array.isArray(t) || t.length !== 2) {
      throw new RangeError(
        `${fn}: options.translate = ${String(t)} is invalid: it must be a pair [a, b] of fractions`,
      );
    }
    checkNumber(`${fn}: options.translate[0]`, t[0], { min: 0, max: 1 });
    checkNumber(`${fn}: options.translate[1]`, t[1], { min: 0, max: 1 });
    const maxDx = t[0] * width, maxDy = t[1] * height;
    const tx = roundHalfEven(uniform(rng, -maxDx, maxDx));
    const ty = roundHalfEven(uniform(rng, -maxDy, maxDy));
    translate = [tx, ty];
  }
  let scale = 1;
  if (options.scale !== undefined) {
    const [lo, hi] = range(`${fn}: options.scale`, options.scale, false, 0);
    scale = uniform(rng, lo, hi);
  }
  const shear: [number, number] = [0, 0];
  if (options.shear !== undefined) {
    const s = options.shear;
    if (Array.isArray(s) && s.length === 4) {
      const [xlo, xhi] = range(`${fn}: options.shear[0..1]`, [s[0], s[1]], false);
      const [ylo, yhi] = range(`${fn}: options.shear[2..3]`, [s[2], s[3]], false);
      shear[0] = uniform(rng, xlo, xhi);
      shear[1] = uniform(rng, ylo, yhi);
    } else {
      const [lo, hi] = range(`${fn}: options.shear`, s as number | [number, number], true);
      shear[0] = uniform(rng, lo, hi);
    }
  }
  return { angle, translate, scale, shear };
}

/**
 * `RandomAffine` in one call: {@linkcode randomAffineParams} then
 * {@linkcode affineTransform} (bilinear).
 *
 * @param image H × W values, row-major
 * @param width W
 * @param height H
 * @param options the `RandomAffine` ranges
 * @param rng uniform [0, 1) generator
 * @param fill value outside the transformed image, default 0
 * @returns the transformed image
 *
 * @example
 * ```ts
 * import { randomAffine, TABLE1_TRANSFORMS } from "./affine.ts";
 * const img = new Float32Array(8 * 8).fill(1);
 * const out = randomAffine(img, 8, 8, TABLE1_TRANSFORMS[0].options, Math.random);
 * console.log(out.length); // 64
 * ```
 */
export function randomAffine(
  image: ArrayLike<number>,
  width: number,
  height: number,
  options: RandomAffineOptions,
  rng: () => number,
  fill = 0,
): Float32Array {
  return affineTransform(
    image,
    width,
    height,
    randomAffineParams(options, width, height, rng),
    fill,
  );
}
