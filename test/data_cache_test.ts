import fc from "fast-check";
import {
  CacheFileError,
  cacheFilePath,
  concatBytes,
  decodeCacheFile,
  encodeCacheFile,
  loadCached,
} from "../src/data/cache.ts";
import { checksum32 } from "../src/checksum.ts";
import { deepEqual, equal, ok, rejects, throws } from "./asserts.ts";

const V1 = { magic: "MOGEZZ01", format: "moge-zz", version: 1, what: "moge zz file" };
const V2 = { ...V1, version: 2 };

/** The payload length promised by a header `{ n }`, refused when not an integer. */
function lengthOf(h: { n: number }, bad: (why: string) => CacheFileError): number {
  if (!Number.isInteger(h.n) || h.n < 0) throw bad(`n = ${h.n}`);
  return h.n;
}

Deno.test("law: decode(encode(fields, payload)) gives back the fields and the payload", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 300 }),
      fc.string({ maxLength: 40 }),
      (payload, note) => {
        const bytes = encodeCacheFile(V1, { n: payload.length, note }, payload);
        const { header, payload: back } = decodeCacheFile<{ n: number; note: string }>(
          bytes,
          "mem",
          V1,
          lengthOf,
        );
        deepEqual(back, payload);
        equal(header.note, note);
        equal(header.checksum, checksum32(payload));
        // the payload starts on an 8-byte boundary (the header is padded with spaces)
        equal((bytes.length - payload.length) % 8, 0);
      },
    ),
  );
});

Deno.test("cache file: header is format, version, the fields, then checksum", () => {
  const bytes = encodeCacheFile(V1, { n: 2 }, new Uint8Array([7, 9]));
  equal(new TextDecoder().decode(bytes.subarray(0, 8)), "MOGEZZ01");
  const h = new DataView(bytes.buffer).getUint32(8, true);
  const json = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + h)));
  deepEqual(Object.keys(json), ["format", "version", "n", "checksum"]);
  throws(() => encodeCacheFile({ ...V1, magic: "SHORT" }, {}, new Uint8Array()), /8 ASCII bytes/);
});

Deno.test("cache file: damage, foreign kinds and other versions are refused by name", () => {
  const bytes = encodeCacheFile(V1, { n: 3 }, new Uint8Array([1, 2, 3]));
  const flipped = bytes.slice();
  flipped[bytes.length - 1] ^= 1;
  const cases: [Uint8Array, typeof V1, RegExp][] = [
    [bytes.subarray(0, 3), V1, /x.bin is not a moge zz file: it has only 3 bytes/],
    [bytes, { ...V1, magic: "MOGEYY01" }, /it starts with "MOGEZZ01", not "MOGEYY01"/],
    [bytes, { ...V1, format: "moge-yy" }, /unexpected header/],
    [bytes, V2, /it is moge-zz version 1, this moge reads version 2/],
    [bytes.subarray(0, bytes.length - 1), V1, /truncated: the header promises/],
    [flipped, V1, /checksum mismatch/],
  ];
  for (const [b, kind, pattern] of cases) {
    throws(() => decodeCacheFile(b, "x.bin", kind, lengthOf), (e: unknown) => {
      ok(e instanceof CacheFileError, String(e));
      ok(pattern.test((e as Error).message), (e as Error).message);
      return true;
    });
  }
  const odd = encodeCacheFile(V1, { n: 1.5 }, new Uint8Array(1));
  throws(() => decodeCacheFile(odd, "x.bin", V1, lengthOf), /x.bin is not a moge zz file: n = 1.5/);
});

Deno.test("loadCached: builds once, then reads; a new version rebuilds with a message", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let builds = 0;
    const source = (kind: typeof V1) => ({
      label: "zz",
      path: cacheFilePath(dir, "zz", kind),
      decode: (b: Uint8Array, path: string) =>
        decodeCacheFile<{ n: number }>(b, path, kind, lengthOf).payload.slice(),
      encode: (v: Uint8Array) => encodeCacheFile(kind, { n: v.length }, v),
      build: () => Promise.resolve(new Uint8Array([++builds, 5])),
    });
    const messages: string[] = [];
    const log = (m: string) => messages.push(m);
    deepEqual(await loadCached(source(V1), log), new Uint8Array([1, 5]));
    ok(messages[0].includes("no cache") && messages[1].includes("wrote cache"), messages.join());
    messages.length = 0;
    deepEqual(await loadCached(source(V1), log), new Uint8Array([1, 5]));
    ok(messages.length === 1 && messages[0].includes("loaded from cache"), messages.join());
    equal(builds, 1);

    // a layout change: the version-2 reader finds a version-1 file under its name
    equal(cacheFilePath(dir, "zz", V2), `${dir}/zz-v2.bin`);
    await Deno.copyFile(cacheFilePath(dir, "zz", V1), cacheFilePath(dir, "zz", V2));
    messages.length = 0;
    deepEqual(await loadCached(source(V2), log), new Uint8Array([2, 5]));
    ok(
      messages[0].includes("is unusable") && messages[0].includes("this moge reads version 2") &&
        messages[0].includes("rebuilding it"),
      messages.join(),
    );
    deepEqual(await loadCached(source(V2), () => {}), new Uint8Array([2, 5]));
    equal(builds, 2);

    // errors that are not about the file propagate; a cache that cannot be written is reported
    const broken = { ...source(V1), decode: () => JSON.parse("{") as Uint8Array };
    await rejects(loadCached(broken), SyntaxError);
    await Deno.writeTextFile(`${dir}/file`, "not a directory");
    messages.length = 0;
    const unwritable = { ...source(V1), path: `${dir}/file/zz-v1.bin` };
    deepEqual(await loadCached(unwritable, log), new Uint8Array([3, 5]));
    ok(messages.some((m) => m.includes("could not write cache")), messages.join());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("concatBytes: the bytes of each view in turn, little-endian", () => {
  const u16 = new Uint16Array([0x0201, 0x0403]).subarray(1); // a view at byte offset 2
  deepEqual(concatBytes([new Uint8Array([9]), u16]), new Uint8Array([9, 3, 4]));
  deepEqual(concatBytes([]), new Uint8Array(0));
});
