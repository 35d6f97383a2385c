/**
 * The one binary cache format of the data sets, shared by the image data sets
 * (`images.ts`) and the text corpora (`text.ts`), and the load-or-build loop
 * around it.
 *
 * File layout: an 8-byte ASCII magic that names the kind of file (e.g.
 * `MOGEDS01`, `MOGETX01`), a uint32 little-endian header length H, H bytes of
 * JSON header padded with spaces so that the payload starts at a multiple of
 * 8 bytes, then the payload. The header always holds `format` and `version`
 * first and `checksum` last ({@linkcode checksum32} of the payload); the rest
 * is the kind's own (names, counts, vocabulary). A reader checks magic,
 * format, version, the payload size its header promises, and the checksum,
 * and refuses the file with a {@linkcode CacheFileError} that names it.
 *
 * A cache file is a download cache: {@linkcode loadCached} rebuilds a missing,
 * damaged or older-version file from the source and says so.
 *
 * @module
 */

import { writeFileAtomic } from "../atomic.ts";
import { checksum32, CHECKSUM_SEED } from "../checksum.ts";
import { dirname, join } from "node:path";

/** Bytes before the JSON header: the 8-byte magic and the uint32 header length. */
const PREFIX_BYTES = 12;

/**
 * A damaged, foreign or older-version cache file. {@linkcode loadCached}
 * rebuilds the cache when decoding throws one; other errors propagate.
 *
 * @example
 * ```ts
 * import { CacheFileError } from "./cache.ts";
 * const e = new CacheFileError("x.bin is not a moge data set file: it has only 3 bytes");
 * console.log(e instanceof Error, e.name); // true "CacheFileError"
 * ```
 */
export class CacheFileError extends Error {
  /** An error whose message names the file and what is wrong with it. */
  constructor(message: string) {
    super(message);
    this.name = "CacheFileError";
  }
}

/**
 * What identifies one kind of cache file.
 *
 * @example
 * ```ts
 * import type { CacheKind } from "./cache.ts";
 * const kind: CacheKind = { magic: "MOGEXX01", format: "moge-x", version: 1, what: "moge x file" };
 * console.log(kind.magic.length); // 8
 * ```
 */
export interface CacheKind {
  /** 8 ASCII characters at the start of the file. */
  magic: string;
  /** The header's `format` field. */
  format: string;
  /** The header's `version` field; bump it when the layout changes (old files are rebuilt). */
  version: number;
  /** How errors name the kind, e.g. `"moge data set file"`. */
  what: string;
}

/**
 * The fields every cache header carries.
 *
 * @example
 * ```ts
 * import type { CacheHeader } from "./cache.ts";
 * const h: CacheHeader = { format: "moge-x", version: 1, checksum: 0 };
 * console.log(Object.keys(h)); // ["format", "version", "checksum"]
 * ```
 */
export interface CacheHeader {
  /** The kind's format name. */
  format: string;
  /** The kind's layout version. */
  version: number;
  /** {@linkcode checksum32} of the payload. */
  checksum: number;
}

/**
 * The cache directory used when none is given: `$MOGE_CACHE_DIR` if set (and
 * readable), else `.cache/moge` under the current directory.
 *
 * @example
 * ```ts
 * import { defaultCacheDir } from "./cache.ts";
 * console.log(defaultCacheDir()); // ".cache/moge" unless MOGE_CACHE_DIR is set
 * ```
 */
export function defaultCacheDir(): string {
  try {
    const env = Deno.env.get("MOGE_CACHE_DIR");
    if (env) return env;
  } catch { /* no --allow-env: use the default */ }
  return join(".cache", "moge");
}

/**
 * The path of one cache file, `CACHEDIR/STEM-vVERSION.bin`: the layout
 * version is in the name, so that a new version builds its own file next to
 * the old one.
 *
 * @example
 * ```ts
 * import { cacheFilePath } from "./cache.ts";
 * const kind = { magic: "MOGEXX01", format: "moge-x", version: 2, what: "moge x file" };
 * console.log(cacheFilePath("/tmp/c", "x", kind)); // "/tmp/c/x-v2.bin"
 * ```
 */
export function cacheFilePath(cacheDir: string, stem: string, kind: CacheKind): string {
  return join(cacheDir, `${stem}-v${kind.version}.bin`);
}

/**
 * Writes one cache file: magic, header length, the JSON header (`format` and
 * `version` from `kind`, then `fields`, then the payload's `checksum`) padded
 * to a multiple of 8 bytes, then the payload.
 *
 * @example
 * ```ts
 * import { decodeCacheFile, encodeCacheFile } from "./cache.ts";
 * const kind = { magic: "MOGEXX01", format: "moge-x", version: 1, what: "moge x file" };
 * const bytes = encodeCacheFile(kind, { n: 3 }, new Uint8Array([1, 2, 3]));
 * const { header, payload } = decodeCacheFile<{ n: number }>(bytes, "mem", kind, (h) => h.n);
 * console.log(header.n, payload); // 3 Uint8Array(3) [1, 2, 3]
 * ```
 */
export function encodeCacheFile(
  kind: CacheKind,
  fields: Record<string, unknown>,
  payload: Uint8Array,
): Uint8Array {
  const enc = new TextEncoder();
  const magic = enc.encode(kind.magic);
  if (magic.length !== 8) {
    throw new RangeError(`cache magic = ${JSON.stringify(kind.magic)} must be 8 ASCII bytes`);
  }
  const header = {
    format: kind.format,
    version: kind.version,
    ...fields,
    checksum: checksum32(payload, CHECKSUM_SEED),
  };
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((PREFIX_BYTES + enc.encode(json).length) % 8)) % 8);
  const headerBytes = enc.encode(json);
  const out = new Uint8Array(PREFIX_BYTES + headerBytes.length + payload.length);
  out.set(magic, 0);
  new DataView(out.buffer).setUint32(8, headerBytes.length, true);
  out.set(headerBytes, PREFIX_BYTES);
  out.set(payload, PREFIX_BYTES + headerBytes.length);
  return out;
}

/**
 * Reads one cache file written by {@linkcode encodeCacheFile}: checks the
 * magic, the JSON header, its format and version, then asks `payloadBytes`
 * to check the kind's own header fields (calling `bad(why)` to refuse) and
 * say how many payload bytes they promise, then checks the size and the
 * checksum. Errors are {@linkcode CacheFileError}s that start with
 * `"SOURCE is not a WHAT: "`. The payload is a view into `bytes`; `bad` makes
 * such errors for the caller's own checks of the payload.
 *
 * @example
 * ```ts
 * import { decodeCacheFile } from "./cache.ts";
 * const kind = { magic: "MOGEXX01", format: "moge-x", version: 1, what: "moge x file" };
 * try {
 *   decodeCacheFile(new Uint8Array(4), "bad.bin", kind, () => 0);
 * } catch (e) {
 *   console.log((e as Error).message); // "bad.bin is not a moge x file: it has only 4 bytes"
 * }
 * ```
 */
export function decodeCacheFile<H>(
  bytes: Uint8Array,
  source: string,
  kind: CacheKind,
  payloadBytes: (header: H & CacheHeader, bad: (why: string) => CacheFileError) => number,
): { header: H & CacheHeader; payload: Uint8Array; bad: (why: string) => CacheFileError } {
  const bad = (why: string) => new CacheFileError(`${source} is not a ${kind.what}: ${why}`);
  if (bytes.length < PREFIX_BYTES) throw bad(`it has only ${bytes.length} bytes`);
  const magic = new TextDecoder().decode(bytes.subarray(0, 8));
  if (magic !== kind.magic) {
    throw bad(`it starts with ${JSON.stringify(magic)}, not "${kind.magic}"`);
  }
  const h = new DataView(bytes.buffer, bytes.byteOffset, bytes.length).getUint32(8, true);
  if (PREFIX_BYTES + h > bytes.length) {
    throw bad(
      `truncated: the header needs ${PREFIX_BYTES + h} bytes, the file has ${bytes.length}`,
    );
  }
  let header: H & CacheHeader;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(PREFIX_BYTES, PREFIX_BYTES + h)));
  } catch (e) {
    throw bad(`its header is not valid JSON (${(e as Error).message})`);
  }
  if (header?.format !== kind.format || !Number.isInteger(header.checksum)) {
    throw bad(`unexpected header ${JSON.stringify(header).slice(0, 300)}`);
  }
  if (header.version !== kind.version) {
    throw bad(
      `it is ${kind.format} version ${JSON.stringify(header.version)}, this moge reads version` +
        ` ${kind.version}`,
    );
  }
  const start = PREFIX_BYTES + h;
  const expected = start + payloadBytes(header, bad);
  if (bytes.length !== expected) {
    throw bad(
      `${bytes.length < expected ? "truncated: " : ""}the header promises ${expected} bytes,` +
        ` the file has ${bytes.length}`,
    );
  }
  const payload = bytes.subarray(start);
  const checksum = checksum32(payload);
  if (checksum !== header.checksum) {
    throw bad(`checksum mismatch (header ${header.checksum}, data ${checksum})`);
  }
  return { header, payload, bad };
}

/**
 * The bytes of several typed arrays, one after the other (each in this
 * machine's byte order, little-endian on every platform Deno runs on).
 *
 * @example
 * ```ts
 * import { concatBytes } from "./cache.ts";
 * console.log(concatBytes([new Uint8Array([1]), new Uint16Array([2])])); // [1, 2, 0]
 * ```
 */
export function concatBytes(parts: readonly ArrayBufferView[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), at);
    at += p.byteLength;
  }
  return out;
}

/**
 * How {@linkcode loadCached} reads, builds and writes one cached value.
 *
 * @example
 * ```ts
 * import type { CachedSource } from "./cache.ts";
 * const src: CachedSource<Uint8Array> = {
 *   label: "bytes",
 *   path: "/tmp/bytes.bin",
 *   decode: (b) => b,
 *   encode: (b) => b,
 *   build: () => Promise.resolve(new Uint8Array([1])),
 * };
 * console.log(src.label); // "bytes"
 * ```
 */
export interface CachedSource<T> {
  /** Names the value in progress lines, e.g. `"mnist"`. */
  label: string;
  /** The cache file. */
  path: string;
  /** Parses the file; throws a {@linkcode CacheFileError} when it is unusable. */
  decode: (bytes: Uint8Array, path: string) => T;
  /** Serializes a freshly built value. */
  encode: (value: T) => Uint8Array;
  /** Builds the value from its source (e.g. an npm package) when the cache is unusable. */
  build: () => Promise<T>;
}

/**
 * Returns the cached value when its file is there and intact; otherwise
 * (no file, a file where the cache directory should be, or a
 * {@linkcode CacheFileError}: damaged, foreign, older version) builds it, writes the file atomically and returns it. If the file
 * cannot be written the value is still returned. `progress` gets one line
 * per stage (cache hit, build and why, write).
 *
 * @example
 * ```ts
 * import { loadCached } from "./cache.ts";
 * const dir = await Deno.makeTempDir();
 * const src = {
 *   label: "bytes",
 *   path: `${dir}/bytes.bin`,
 *   decode: (b: Uint8Array) => b,
 *   encode: (b: Uint8Array) => b,
 *   build: () => Promise.resolve(new Uint8Array([1, 2])),
 * };
 * console.log(await loadCached(src, console.log)); // built, then written
 * console.log(await loadCached(src, console.log)); // "loaded from cache"
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadCached<T>(
  source: CachedSource<T>,
  progress: (message: string) => void = () => {},
): Promise<T> {
  const { label, path } = source;
  try {
    const started = performance.now();
    const value = source.decode(await Deno.readFile(path), path);
    progress(
      `${label}: loaded from cache ${path} in ${(performance.now() - started).toFixed(0)} ms`,
    );
    return value;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
      progress(`${label}: no cache at ${path}; building it`);
    } else if (e instanceof CacheFileError) {
      progress(`${label}: cache ${path} is unusable (${e.message}); rebuilding it`);
    } else {
      throw e;
    }
  }
  const value = await source.build();
  try {
    await Deno.mkdir(dirname(path), { recursive: true });
    const bytes = source.encode(value);
    await writeFileAtomic(path, bytes);
    progress(`${label}: wrote cache ${path} (${(bytes.length / 1e6).toFixed(1)} MB)`);
  } catch (e) {
    progress(`${label}: could not write cache ${path}: ${(e as Error).message}`);
  }
  return value;
}

/**
 * The bytes of a committed fixture file: read from disk for a `file:` URL,
 * fetched otherwise (when the module is imported by URL).
 *
 * @example
 * ```ts
 * import { readFixture } from "./cache.ts";
 * const url = new URL("../../fixtures/moby-dick-small.json", import.meta.url);
 * console.log((await readFixture(url)).length > 0); // true
 * ```
 */
export async function readFixture(url: URL): Promise<Uint8Array> {
  if (url.protocol === "file:") return await Deno.readFile(url);
  const res = await fetch(url);
  if (!res.ok) throw new Error(`fixture ${url} could not be fetched: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}
