/**
 * Training checkpoints: named float32/int32 tensors (model weights, optimizer
 * moments) plus a JSON-serializable `meta` object (step, epoch, RNG state,
 * config), saved so that an interrupted run can resume exactly.
 *
 * One checkpoint is one file, `DIR/checkpoint.bin`, written atomically (see
 * `atomic.ts`): a crash while saving leaves the previous checkpoint intact, and
 * a reader never sees half of one. A single file (rather than a data file plus
 * a manifest) is what makes this possible with one atomic rename. Layout, all
 * little-endian:
 *
 * | bytes | content |
 * |---|---|
 * | 0-7 | magic `MOGECKP2` |
 * | 8-11 | uint32 H, the byte length of the JSON header |
 * | 12-15 | uint32 C, {@linkcode checksum32} of the header bytes followed by the data |
 * | 16 to 16+H | UTF-8 JSON manifest, space-padded so the data starts at a multiple of 8 |
 * | 16+H to end | the tensors' values, concatenated |
 *
 * The manifest is `{ format: "moge-checkpoint", version: 2, dataBytes,
 * checksum, tensors: [{ name, dtype, shape, offset, length }], meta }`
 * (offsets and lengths in bytes, relative to the data start; `checksum` is
 * {@linkcode checksum32} of the data alone, which tells a changed header from
 * changed data). C covers the header too, so editing `"step":20` to
 * `"step":10` is refused. `head -c 4096 checkpoint.bin` shows the manifest.
 *
 * Version 1 files (magic `MOGECKP1`, a 12-byte prefix without C, only the
 * data checksummed) are still read.
 *
 * @module
 */

import { tf } from "../deps.ts";
import type { Tensor } from "../types.ts";
import { tempPrefix, writeFileAtomic } from "../atomic.ts";
import { checksum32, CHECKSUM_SEED, isLittleEndian } from "../checksum.ts";
import { join } from "node:path";

/** The file name of a checkpoint inside its directory. */
export const CHECKPOINT_FILE = "checkpoint.bin";

const MAGIC = "MOGECKP2";
const FORMAT = "moge-checkpoint";
const VERSION = 2;
const PREFIX_BYTES = 16;
/** The previous format: 12-byte prefix, header not covered by a checksum. */
const MAGIC_V1 = "MOGECKP1";
const PREFIX_BYTES_V1 = 12;

/** Tensor dtypes a checkpoint can hold. */
export type CheckpointDtype = "float32" | "int32";

/** One tensor as stored in (and loaded from) a checkpoint. */
export interface TensorEntry {
  /** The tensor's shape. */
  shape: number[];
  /** `float32` or `int32`. */
  dtype: CheckpointDtype;
  /** Row-major values, `prod(shape)` of them. */
  values: Float32Array | Int32Array;
}

/** What {@linkcode saveCheckpoint} takes and {@linkcode loadCheckpoint} returns. */
export interface Checkpoint<M extends object = Record<string, unknown>> {
  /** Tensors by name (loaded ones are {@linkcode TensorEntry}s). */
  tensors: Record<string, TensorEntry>;
  /** JSON-serializable data: step, epoch, RNG state, config, ... */
  meta: M;
  /** The file it was loaded from (set by {@linkcode loadCheckpoint}; for messages). */
  path?: string;
}

interface ManifestEntry {
  name: string;
  dtype: CheckpointDtype;
  shape: number[];
  offset: number;
  length: number;
}

interface Manifest {
  format: string;
  version: number;
  dataBytes: number;
  checksum: number;
  tensors: ManifestEntry[];
  meta: unknown;
}

/**
 * The path of the checkpoint file in `dir`.
 *
 * @example
 * ```ts
 * import { checkpointPath } from "./checkpoint.ts";
 * console.log(checkpointPath("runs/a")); // "runs/a/checkpoint.bin"
 * ```
 */
export function checkpointPath(dir: string): string {
  return join(dir, CHECKPOINT_FILE);
}

async function entryOf(name: string, t: Tensor | TensorEntry): Promise<TensorEntry> {
  if (t instanceof tf.Tensor) {
    if (t.isDisposed) throw new Error(`saveCheckpoint: tensor "${name}" is disposed`);
    if (t.dtype !== "float32" && t.dtype !== "int32") {
      throw new TypeError(
        `saveCheckpoint: tensor "${name}" has dtype ${t.dtype}: allowed dtypes are float32` +
          ` and int32 (cast it first)`,
      );
    }
    const values = await t.data();
    return { shape: [...t.shape], dtype: t.dtype, values: values as Float32Array | Int32Array };
  }
  const { shape, dtype, values } = t ?? {};
  const expected = dtype === "float32" ? Float32Array : dtype === "int32" ? Int32Array : null;
  if (!expected) {
    throw new TypeError(
      `saveCheckpoint: tensor "${name}" has dtype ${String(dtype)}: allowed dtypes are float32` +
        ` and int32`,
    );
  }
  if (!(values instanceof expected)) {
    throw new TypeError(`saveCheckpoint: tensor "${name}" values must be a ${expected.name}`);
  }
  checkShape(`saveCheckpoint: tensor "${name}"`, shape, values.length);
  return { shape: [...shape], dtype, values };
}

function checkShape(what: string, shape: unknown, count: number): void {
  if (
    !Array.isArray(shape) ||
    !shape.every((d) => Number.isInteger(d) && d >= 0) ||
    shape.reduce((a: number, b: number) => a * b, 1) !== count
  ) {
    throw new RangeError(
      `${what} has shape ${JSON.stringify(shape)}, which does not fit its ${count} values` +
        ` (a shape is an array of integers >= 0 whose product is the number of values)`,
    );
  }
}

/**
 * Saves tensors and meta to `DIR/checkpoint.bin`, creating `dir` if needed
 * and replacing the previous checkpoint atomically. Leftover temporary files
 * of interrupted saves in `dir` are removed afterwards (so only one process
 * should write checkpoints to a directory). Tensors are read with
 * `await t.data()` and not disposed.
 *
 * @returns the path written and its size in bytes.
 * @example
 * ```ts
 * import { loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
 * import { tf } from "../deps.ts";
import type { Tensor } from "../types.ts";
 * import { useBackend } from "../backend.ts";
 * await useBackend("cpu");
 * const dir = await Deno.makeTempDir();
 * const w = tf.tensor2d([[1, 2], [3, 4]]);
 * await saveCheckpoint(dir, { tensors: { w }, meta: { step: 100 } });
 * const ckpt = await loadCheckpoint(dir);
 * console.log(ckpt.tensors.w.shape, ckpt.tensors.w.values, ckpt.meta.step); // [2, 2] [1, 2, 3, 4] 100
 * w.dispose();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function saveCheckpoint(
  dir: string,
  checkpoint: { tensors: Record<string, Tensor | TensorEntry>; meta: object },
): Promise<{ path: string; bytes: number }> {
  if (!isLittleEndian()) throw new Error("saveCheckpoint: big-endian platforms are not supported");
  const { tensors, meta } = checkpoint ?? {};
  if (tensors === null || typeof tensors !== "object") {
    throw new TypeError(
      `saveCheckpoint: tensors = ${String(tensors)} must be an object of tensors`,
    );
  }
  if (meta === null || typeof meta !== "object" || Array.isArray(meta)) {
    throw new TypeError(
      `saveCheckpoint: meta = ${
        JSON.stringify(meta)
      } is invalid: meta must be a JSON-serializable object`,
    );
  }
  const entries: ManifestEntry[] = [];
  const chunks: Uint8Array[] = [];
  let offset = 0;
  let checksum = CHECKSUM_SEED;
  for (const [name, t] of Object.entries(tensors)) {
    const e = await entryOf(name, t);
    const bytes = new Uint8Array(e.values.buffer, e.values.byteOffset, e.values.byteLength);
    entries.push({ name, dtype: e.dtype, shape: e.shape, offset, length: bytes.length });
    chunks.push(bytes);
    checksum = checksum32(bytes, checksum); // lengths are multiples of 4: chunking is harmless
    offset += bytes.length;
  }
  const manifest: Manifest = {
    format: FORMAT,
    version: VERSION,
    dataBytes: offset,
    checksum,
    tensors: entries,
    meta,
  };
  let json = JSON.stringify(manifest);
  if (json === undefined) throw new TypeError("saveCheckpoint: meta is not JSON-serializable");
  let header = new TextEncoder().encode(json);
  const pad = (8 - ((PREFIX_BYTES + header.length) % 8)) % 8;
  if (pad > 0) {
    json += " ".repeat(pad);
    header = new TextEncoder().encode(json);
  }
  const prefix = new Uint8Array(PREFIX_BYTES);
  prefix.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(prefix.buffer).setUint32(8, header.length, true);
  let whole = checksum32(header); // header length is a multiple of 8: chunking is harmless
  for (const c of chunks) whole = checksum32(c, whole);
  new DataView(prefix.buffer).setUint32(12, whole, true);
  await Deno.mkdir(dir, { recursive: true });
  const path = checkpointPath(dir);
  await writeFileAtomic(path, [prefix, header, ...chunks]);
  await removeStaleTemps(dir);
  return { path, bytes: PREFIX_BYTES + header.length + offset };
}

async function removeStaleTemps(dir: string): Promise<void> {
  const prefix = tempPrefix(CHECKPOINT_FILE);
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.startsWith(prefix)) {
      await Deno.remove(join(dir, e.name)).catch(() => {});
    }
  }
}

/**
 * Loads `DIR/checkpoint.bin`, checking its magic, size, manifest and
 * checksum; a damaged file gives an error that names the file and what is
 * wrong. The returned values are views into one buffer holding the file.
 *
 * @example
 * ```ts
 * import { loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
 * const dir = await Deno.makeTempDir();
 * await saveCheckpoint(dir, {
 *   tensors: { idx: { shape: [3], dtype: "int32", values: new Int32Array([7, 8, 9]) } },
 *   meta: { epoch: 2 },
 * });
 * const { tensors, meta } = await loadCheckpoint<{ epoch: number }>(dir);
 * console.log(tensors.idx.values, meta.epoch); // Int32Array [7, 8, 9] 2
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadCheckpoint<M extends object = Record<string, unknown>>(
  dir: string,
): Promise<Checkpoint<M>> {
  const path = checkpointPath(dir);
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(`no checkpoint in ${dir}: ${path} does not exist`);
    }
    throw e;
  }
  const bad = (why: string) => new Error(`checkpoint ${path} is corrupt: ${why}`);
  if (bytes.length < PREFIX_BYTES_V1) {
    throw bad(`it has ${bytes.length} bytes, fewer than the ${PREFIX_BYTES}-byte prefix`);
  }
  const magic = new TextDecoder().decode(bytes.subarray(0, 8));
  if (magic !== MAGIC && magic !== MAGIC_V1) {
    throw bad(`it starts with ${JSON.stringify(magic)}, not the magic "${MAGIC}"`);
  }
  const v1 = magic === MAGIC_V1;
  const prefixBytes = v1 ? PREFIX_BYTES_V1 : PREFIX_BYTES;
  if (bytes.length < prefixBytes) {
    throw bad(`it has ${bytes.length} bytes, fewer than the ${prefixBytes}-byte prefix`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const headerBytes = view.getUint32(8, true);
  const dataStart = prefixBytes + headerBytes;
  if (dataStart > bytes.length) {
    throw bad(`truncated: the header needs ${dataStart} bytes but the file has ${bytes.length}`);
  }
  const header = bytes.subarray(prefixBytes, dataStart);
  const data = bytes.subarray(dataStart);
  const dataChecksum = checksum32(data);
  let manifest: Manifest;
  try {
    manifest = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(header));
  } catch (e) {
    throw bad(`its header is not valid JSON (${(e as Error).message})`);
  }
  const version = v1 ? 1 : VERSION;
  if (manifest?.format !== FORMAT || manifest.version !== version) {
    throw bad(
      `its header says format ${JSON.stringify(manifest?.format)} version` +
        ` ${JSON.stringify(manifest?.version)}; this code reads "${FORMAT}" version ${version}` +
        ` in a file that starts with "${magic}"`,
    );
  }
  const expectedSize = dataStart + manifest.dataBytes;
  if (bytes.length !== expectedSize) {
    throw bad(
      `${bytes.length < expectedSize ? "truncated: " : ""}the header promises ${expectedSize}` +
        ` bytes but the file has ${bytes.length}`,
    );
  }
  if (!v1) {
    const stored = view.getUint32(12, true);
    const computed = checksum32(data, checksum32(header));
    if (stored !== computed) {
      // Which part changed? The manifest's own data checksum tells.
      const where = manifest.checksum === dataChecksum
        ? "the header was altered (its tensors' data is intact)"
        : "the file was altered";
      throw bad(
        `checksum mismatch (stored ${stored}, computed ${computed} over header and data): ${where}`,
      );
    }
  }
  if (dataChecksum !== manifest.checksum) {
    throw bad(
      `checksum mismatch (header ${manifest.checksum}, data ${dataChecksum}): the data was altered`,
    );
  }
  // Views need 4-byte alignment; readFile gives a fresh buffer, but copy if not.
  const aligned = (bytes.byteOffset + dataStart) % 4 === 0 ? data : data.slice();
  const tensors: Record<string, TensorEntry> = {};
  for (const e of manifest.tensors ?? []) {
    const Ctor = e.dtype === "float32" ? Float32Array : e.dtype === "int32" ? Int32Array : null;
    if (
      !Ctor || typeof e.name !== "string" || !Number.isInteger(e.offset) || e.offset % 4 !== 0 ||
      !Number.isInteger(e.length) || e.length % 4 !== 0 || e.offset < 0 ||
      e.offset + e.length > data.length
    ) {
      throw bad(`its manifest entry ${JSON.stringify(e)} is invalid`);
    }
    const values = new Ctor(
      aligned.buffer as ArrayBuffer,
      aligned.byteOffset + e.offset,
      e.length / 4,
    );
    try {
      checkShape(`tensor "${e.name}"`, e.shape, values.length);
    } catch (err) {
      throw bad((err as Error).message);
    }
    tensors[e.name] = { shape: e.shape, dtype: e.dtype, values };
  }
  return { tensors, meta: manifest.meta as M, path };
}

/**
 * Makes a tfjs tensor from a loaded {@linkcode TensorEntry} (the caller owns
 * and disposes it).
 *
 * @example
 * ```ts
 * import { toTensor } from "./checkpoint.ts";
 * import { useBackend } from "../backend.ts";
 * await useBackend("cpu");
 * const t = toTensor({ shape: [2], dtype: "float32", values: new Float32Array([1, 2]) });
 * console.log(t.shape); // [2]
 * t.dispose();
 * ```
 */
export function toTensor(entry: TensorEntry): Tensor {
  return tf.tensor(entry.values, entry.shape, entry.dtype);
}

/** What {@linkcode restoreVariables} assigns to: a `tf.Variable`. */
export interface AssignableTensor {
  /** Its shape. */
  readonly shape: number[];
  /** Its dtype. */
  readonly dtype: string;
  /** Replaces its value. */
  assign(value: Tensor): void;
}

/** At most `n` names, then "… and K more" (errors never print thousands of names). */
function someNames(names: string[], n = 3): string {
  const shown = names.slice(0, n).map((s) => JSON.stringify(s)).join(", ");
  return names.length > n ? `${shown} … and ${names.length - n} more` : shown;
}

/** The file a checkpoint came from, for messages. */
function fileOf(ck: Checkpoint<object>): string {
  return ck.path ?? "(checkpoint)";
}

/**
 * Checks that the checkpoint holds `prefix + name` for every variable, with
 * the variable's shape, then assigns the values. Errors name the file, the
 * tensor and what was expected (a transposed shape, a missing tensor, and at
 * most 3 names of the ones missing), before any variable is changed.
 *
 * @param vars the model's variables by name (e.g. `model.params`)
 * @param prefix the tensors' name prefix in the checkpoint
 *
 * @example
 * ```ts
 * import { loadCheckpoint, restoreVariables, saveCheckpoint } from "./checkpoint.ts";
 * import { tf } from "../deps.ts";
 * import { useBackend } from "../backend.ts";
 * await useBackend("cpu");
 * const dir = await Deno.makeTempDir();
 * const w = tf.variable(tf.ones([2, 3]));
 * await saveCheckpoint(dir, { tensors: { "param/w": w }, meta: {} });
 * w.assign(tf.zeros([2, 3]));
 * restoreVariables(await loadCheckpoint(dir), { w }); // w is ones again
 * w.dispose();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function restoreVariables(
  ck: Checkpoint<object>,
  vars: Record<string, AssignableTensor>,
  prefix = "param/",
): void {
  const missing: string[] = [];
  for (const [name, v] of Object.entries(vars)) {
    const t = ck.tensors[prefix + name];
    if (!t) {
      missing.push(prefix + name);
      continue;
    }
    if (!tf.util.arraysEqual(t.shape, v.shape) || t.dtype !== v.dtype) {
      throw new RangeError(
        `checkpoint ${fileOf(ck)}: tensor "${prefix + name}" is ${t.dtype} [${t.shape}], ` +
          `but the model's ${name} is ${v.dtype} [${v.shape}] (the checkpoint was written ` +
          `for another model shape: check the run's config.json)`,
      );
    }
  }
  if (missing.length) {
    throw new RangeError(
      `checkpoint ${fileOf(ck)} lacks ${missing.length} of the model's ` +
        `${Object.keys(vars).length} tensors: ${someNames(missing)}`,
    );
  }
  for (const [name, v] of Object.entries(vars)) {
    const t = ck.tensors[prefix + name];
    tf.tidy(() => v.assign(tf.tensor(t.values, t.shape, t.dtype)));
  }
}

/**
 * The optimizer's first and second moments (`opt.m/NAME`, `opt.v/NAME`) as
 * tensors for `AdamW.setState`, after checking that m and v name the same
 * parameters and that each has its parameter's shape. Errors name the file,
 * the tensor and what was expected (at most 3 names of the ones missing).
 * The caller disposes the returned tensors.
 *
 * @param params the model's variables by name (the moments' shapes)
 *
 * @example
 * ```ts
 * import { loadCheckpoint, optimizerMoments, saveCheckpoint } from "./checkpoint.ts";
 * import { tf } from "../deps.ts";
 * import { useBackend } from "../backend.ts";
 * await useBackend("cpu");
 * const dir = await Deno.makeTempDir();
 * const w = tf.zeros([2]);
 * await saveCheckpoint(dir, { tensors: { "opt.m/w": w, "opt.v/w": w }, meta: {} });
 * const { m, v } = optimizerMoments(await loadCheckpoint(dir), { w });
 * console.log(m.w.shape, v.w.shape); // [2] [2]
 * tf.dispose([w, m.w, v.w]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function optimizerMoments(
  ck: Checkpoint<object>,
  params: Record<string, { shape: readonly number[] }>,
): { m: Record<string, Tensor>; v: Record<string, Tensor> } {
  const names = (kind: "m" | "v") =>
    Object.keys(ck.tensors).filter((k) => k.startsWith(`opt.${kind}/`)).map((k) => k.slice(6));
  const mNames = names("m"), vNames = names("v");
  for (
    const [has, lacks, hasNames, lacksNames] of [
      ["m", "v", mNames, new Set(vNames)],
      ["v", "m", vNames, new Set(mNames)],
    ] as const
  ) {
    const gone = hasNames.filter((n) => !lacksNames.has(n));
    if (gone.length) {
      throw new RangeError(
        `checkpoint ${fileOf(ck)} lacks the optimizer's ${lacks} for ${gone.length} ` +
          `parameter(s) that have ${has}: ${someNames(gone.map((n) => `opt.${lacks}/${n}`))}`,
      );
    }
  }
  const unknown = mNames.filter((n) => !(n in params));
  if (unknown.length) {
    throw new RangeError(
      `checkpoint ${fileOf(ck)} holds optimizer state for ${unknown.length} tensor(s) the ` +
        `model does not have: ${someNames(unknown.map((n) => `opt.m/${n}`))}`,
    );
  }
  for (const n of mNames) {
    for (const kind of ["m", "v"] as const) {
      const t = ck.tensors[`opt.${kind}/${n}`];
      if (t.dtype !== "float32" || !tf.util.arraysEqual(t.shape, [...params[n].shape])) {
        throw new RangeError(
          `checkpoint ${fileOf(ck)}: tensor "opt.${kind}/${n}" is ${t.dtype} [${t.shape}], ` +
            `but the model's ${n} is float32 [${params[n].shape}]`,
        );
      }
    }
  }
  const make = (kind: "m" | "v") =>
    Object.fromEntries(mNames.map((n) => [n, toTensor(ck.tensors[`opt.${kind}/${n}`])]));
  return { m: make("m"), v: make("v") };
}
