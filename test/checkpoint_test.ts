import {
  CHECKPOINT_FILE,
  checkpointPath,
  loadCheckpoint,
  optimizerMoments,
  restoreVariables,
  saveCheckpoint,
  toTensor,
} from "../src/train/checkpoint.ts";
import { checksum32 } from "../src/checksum.ts";
import { tempPrefix } from "../src/atomic.ts";
import { Rng } from "../src/rng.ts";
import { tf } from "../src/deps.ts";
import { useBackend } from "../src/backend.ts";
import { deepEqual, equal, ok, rejects, throws } from "./asserts.ts";

await useBackend("cpu");

function bytesOf(a: Float32Array | Int32Array): number[] {
  return Array.from(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

Deno.test("checkpoint: round trip is bit-exact for tensors and meta", () =>
  withDir(async (dir) => {
    const special = new Float32Array([0, -0, NaN, Infinity, -Infinity, 1e-45, 3.4028235e38, -1.5]);
    const rng = new Rng(1);
    const rand = Float32Array.from({ length: 1000 }, () => rng.normal());
    const tensors = {
      "layer0/w": tf.tensor2d(rand, [20, 50]),
      special: tf.tensor1d(special),
      counts: tf.tensor1d([0, 1, -1, 2147483647, -2147483648], "int32"),
      scalar: tf.scalar(3.25),
      empty: tf.zeros([0, 4]),
    };
    const meta = { step: 1234, epoch: 4, rng: rng.state, config: { lr: 1e-3, name: "é" } };
    const { path, bytes } = await saveCheckpoint(`${dir}/nested/run`, { tensors, meta });
    equal(path, checkpointPath(`${dir}/nested/run`));
    equal(bytes, (await Deno.stat(path)).size);
    const loaded = await loadCheckpoint(`${dir}/nested/run`);
    deepEqual(loaded.meta, meta);
    deepEqual(Object.keys(loaded.tensors), Object.keys(tensors));
    for (const [name, t] of Object.entries(tensors)) {
      const e = loaded.tensors[name];
      deepEqual(e.shape, t.shape, name);
      equal(e.dtype, t.dtype, name);
      deepEqual(bytesOf(e.values), bytesOf((await t.data()) as Float32Array), name);
    }
    ok(loaded.tensors.counts.values instanceof Int32Array);
    ok(loaded.tensors.special.values instanceof Float32Array);
    // a loaded entry can be turned back into a tensor, and re-saved as is
    const back = toTensor(loaded.tensors["layer0/w"]);
    deepEqual(Array.from(await back.data()), Array.from(rand));
    back.dispose();
    await saveCheckpoint(`${dir}/copy`, loaded);
    const again = await loadCheckpoint(`${dir}/copy`);
    deepEqual(bytesOf(again.tensors.special.values), bytesOf(special));
    deepEqual(again.meta, meta);
    tf.dispose(Object.values(tensors));
  }));

Deno.test("checkpoint: the data starts 8-byte aligned after a readable JSON header", () =>
  withDir(async (dir) => {
    for (const name of ["a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg", "abcdefgh"]) {
      await saveCheckpoint(dir, {
        tensors: { [name]: { shape: [1], dtype: "float32", values: new Float32Array([1]) } },
        meta: {},
      });
      const file = await Deno.readFile(checkpointPath(dir));
      equal(new TextDecoder().decode(file.subarray(0, 8)), "MOGECKP2");
      const h = new DataView(file.buffer).getUint32(8, true);
      equal((16 + h) % 8, 0, `aligned for name ${name}`);
      const manifest = JSON.parse(new TextDecoder().decode(file.subarray(16, 16 + h)));
      equal(manifest.format, "moge-checkpoint");
      deepEqual(manifest.tensors[0], { name, dtype: "float32", shape: [1], offset: 0, length: 4 });
    }
  }));

Deno.test("checkpoint: damaged files give clear errors", () =>
  withDir(async (dir) => {
    await rejects(loadCheckpoint(`${dir}/none`), /no checkpoint in .*none: .*does not exist/);
    const w = tf.tensor1d(Float32Array.from({ length: 256 }, (_, i) => i));
    await saveCheckpoint(dir, { tensors: { w }, meta: { step: 1 } });
    w.dispose();
    const path = checkpointPath(dir);
    const good = await Deno.readFile(path);
    const cases: [string, Uint8Array, RegExp][] = [
      ["empty", new Uint8Array(0), /corrupt: it has 0 bytes, fewer than the 16-byte prefix/],
      ["truncated data", good.subarray(0, good.length - 10), /corrupt: truncated: .* promises/],
      ["truncated header", good.subarray(0, 40), /corrupt: truncated: the header needs/],
      ["extra bytes", new Uint8Array([...good, 0, 0, 0, 0]), /the header promises \d+ bytes but/],
      ["bad magic", new Uint8Array([0x50, 0x4b, ...good.subarray(2)]), /not the magic "MOGECKP2"/],
    ];
    const flipped = good.slice();
    flipped[good.length - 100] ^= 0x10;
    cases.push(["flipped data bit", flipped, /checksum mismatch/]);
    const badJson = good.slice();
    badJson[16] = 0x7d; // '}' where '{' was
    cases.push(["broken header", badJson, /header is not valid JSON/]);
    for (const [what, bytes, pattern] of cases) {
      await Deno.writeFile(path, bytes);
      await rejects(loadCheckpoint(dir), pattern, what);
    }
  }));

Deno.test("checkpoint: an interrupted save leaves the previous checkpoint intact", () =>
  withDir(async (dir) => {
    const v1 = tf.tensor1d([1, 2, 3]);
    await saveCheckpoint(dir, { tensors: { w: v1 }, meta: { step: 1 } });
    // A crash mid-write leaves a partial temporary file next to the checkpoint.
    const stale = `${dir}/${tempPrefix(CHECKPOINT_FILE)}4242-deadbeef`;
    await Deno.writeFile(stale, new Uint8Array([0x4d, 0x4f, 0x47, 0x45, 1, 2, 3]));
    let loaded = await loadCheckpoint(dir);
    deepEqual(Array.from(loaded.tensors.w.values), [1, 2, 3]);
    equal(loaded.meta.step, 1);
    // A save that fails part-way (here: a bad tensor after a good one) writes nothing.
    const disposed = tf.tensor1d([9]);
    disposed.dispose();
    const [seven, bool] = [tf.tensor1d([7, 7, 7]), tf.tensor1d([true], "bool")];
    await rejects(
      saveCheckpoint(dir, { tensors: { w: seven, x: disposed }, meta: {} }),
      /tensor "x" is disposed/,
    );
    await rejects(
      saveCheckpoint(dir, { tensors: { b: bool }, meta: {} }),
      /tensor "b" has dtype bool: allowed dtypes are float32 and int32/,
    );
    loaded = await loadCheckpoint(dir);
    deepEqual(Array.from(loaded.tensors.w.values), [1, 2, 3]);
    // The next successful save replaces it and clears the leftover.
    const v2 = tf.tensor1d([4, 5, 6]);
    await saveCheckpoint(dir, { tensors: { w: v2 }, meta: { step: 2 } });
    loaded = await loadCheckpoint(dir);
    deepEqual(Array.from(loaded.tensors.w.values), [4, 5, 6]);
    equal(loaded.meta.step, 2);
    deepEqual(await listDir(dir), [CHECKPOINT_FILE]);
    tf.dispose([v1, v2, seven, bool]);
  }));

Deno.test("checkpoint: bad inputs are refused with clear errors", () =>
  withDir(async (dir) => {
    await rejects(
      saveCheckpoint(dir, { tensors: {}, meta: [] as unknown as object }),
      /meta = \[\] is invalid: meta must be a JSON-serializable object/,
    );
    await rejects(
      saveCheckpoint(dir, {
        tensors: { a: { shape: [2, 2], dtype: "float32", values: new Float32Array(3) } },
        meta: {},
      }),
      /tensor "a" has shape \[2,2\], which does not fit its 3 values/,
    );
    await rejects(
      saveCheckpoint(dir, {
        tensors: { a: { shape: [1], dtype: "int32", values: new Float32Array(1) } },
        meta: {},
      }),
      /tensor "a" values must be a Int32Array/,
    );
    await rejects(
      saveCheckpoint(dir, {
        tensors: { a: { shape: [1], dtype: "float64" as "float32", values: new Float32Array(1) } },
        meta: {},
      }),
      /tensor "a" has dtype float64: allowed dtypes are float32 and int32/,
    );
    deepEqual(await listDir(dir), []);
  }));

/** Replaces the first `from` in the file's header by `to` (same length), as a hand edit would. */
function editHeader(file: Uint8Array, from: string, to: string): Uint8Array {
  equal(from.length, to.length);
  const text = new TextDecoder("latin1").decode(file);
  const at = text.indexOf(from);
  ok(at > 0, `no ${from} in the file`);
  const out = file.slice();
  out.set(new TextEncoder().encode(to), at);
  return out;
}

Deno.test('checkpoint: editing the header ("step":20 -> 10, a transposed shape) is refused by the checksum', () =>
  withDir(async (dir) => {
    const w = tf.tensor2d(Float32Array.from({ length: 16 * 784 }, (_, i) => i % 7), [784, 16]);
    await saveCheckpoint(dir, { tensors: { "param/w": w }, meta: { step: 20 } });
    w.dispose();
    const path = checkpointPath(dir);
    const good = await Deno.readFile(path);
    equal((await loadCheckpoint<{ step: number }>(dir)).meta.step, 20);
    for (
      const [from, to] of [['"step":20', '"step":10'], ['"shape":[784,16]', '"shape":[16,784]']]
    ) {
      await Deno.writeFile(path, editHeader(good, from, to));
      await rejects(
        loadCheckpoint(dir),
        (e: Error) => {
          equal(
            e.message.replace(/stored \d+, computed \d+/, "stored S, computed C"),
            `checkpoint ${path} is corrupt: checksum mismatch (stored S, computed C over header` +
              ` and data): the header was altered (its tensors' data is intact)`,
          );
          return true;
        },
        from,
      );
    }
  }));

Deno.test("checkpoint: a version-1 file (MOGECKP1, header not checksummed) is still read", () =>
  withDir(async (dir) => {
    // Build a v1 file by hand: magic, uint32 H, the JSON manifest padded so 12 + H is a
    // multiple of 8, then the data; its manifest checksum covers the data only.
    const values = new Float32Array([1.5, -2, 3]);
    const data = new Uint8Array(values.buffer);
    let json = JSON.stringify({
      format: "moge-checkpoint",
      version: 1,
      dataBytes: 12,
      checksum: checksum32(data),
      tensors: [{ name: "w", dtype: "float32", shape: [3], offset: 0, length: 12 }],
      meta: { step: 7 },
    });
    json += " ".repeat((8 - ((12 + json.length) % 8)) % 8);
    const header = new TextEncoder().encode(json);
    const file = new Uint8Array(12 + header.length + 12);
    file.set(new TextEncoder().encode("MOGECKP1"), 0);
    new DataView(file.buffer).setUint32(8, header.length, true);
    file.set(header, 12);
    file.set(data, 12 + header.length);
    await Deno.writeFile(checkpointPath(dir), file);
    const ck = await loadCheckpoint<{ step: number }>(dir);
    equal(ck.meta.step, 7);
    deepEqual(Array.from(ck.tensors.w.values), [1.5, -2, 3]);
    // A v2 header inside a v1 file is refused with both versions named.
    await Deno.writeFile(checkpointPath(dir), editHeader(file, '"version":1', '"version":2'));
    await rejects(
      loadCheckpoint(dir),
      /version 2; this code reads "moge-checkpoint" version 1 in a file that starts with "MOGECKP1"/,
    );
  }));

Deno.test("restoreVariables(): a transposed or missing tensor names the file, the tensor and the expected shape", () =>
  withDir(async (dir) => {
    const a = tf.variable(tf.zeros([784, 16]), true, "a_restore");
    const b = tf.variable(tf.zeros([16]), true, "b_restore");
    // A checkpoint written for a transposed model: [16, 784].
    const ones = [tf.ones([16, 784]), tf.ones([16])];
    await saveCheckpoint(dir, { tensors: { "param/a": ones[0], "param/b": ones[1] }, meta: {} });
    tf.dispose(ones);
    const path = checkpointPath(dir);
    const transposed = await loadCheckpoint(dir);
    throws(
      () => restoreVariables(transposed, { a, b }),
      (e: Error) =>
        e.message ===
          `checkpoint ${path}: tensor "param/a" is float32 [16,784], but the model's a is float32` +
            ` [784,16] (the checkpoint was written for another model shape: check the run's config.json)`,
    );
    // Nothing was assigned before the refusal.
    equal((await b.data())[0], 0);
    // 1000 missing tensors: the message shows 3 names and a count, not all of them.
    const many: Record<string, tf.Variable> = {};
    for (let i = 0; i < 1000; i++) many[`expert.${i}`] = b;
    const one = tf.ones([16]);
    await saveCheckpoint(dir, { tensors: { "param/b": one }, meta: {} });
    one.dispose();
    const few = await loadCheckpoint(dir);
    throws(
      () => restoreVariables(few, many),
      (e: Error) => {
        equal(
          e.message,
          `checkpoint ${path} lacks 1000 of the model's 1000 tensors: "param/expert.0", ` +
            `"param/expert.1", "param/expert.2" … and 997 more`,
        );
        return true;
      },
    );
    restoreVariables(few, { b });
    deepEqual(Array.from(await b.data()), new Array(16).fill(1));
    tf.dispose([a, b]);
  }));

Deno.test("optimizerMoments(): a missing m or v entry, or a wrong shape, is named in one short line", () =>
  withDir(async (dir) => {
    const params = { w: { shape: [2, 3] }, u: { shape: [4] } };
    const z = (shape: number[]) => ({
      shape,
      dtype: "float32" as const,
      values: new Float32Array(shape.reduce((x, y) => x * y, 1)),
    });
    const path = checkpointPath(dir);
    const cases: [Record<string, ReturnType<typeof z>>, string][] = [
      [
        { "opt.m/w": z([2, 3]), "opt.v/w": z([2, 3]), "opt.m/u": z([4]) },
        `checkpoint ${path} lacks the optimizer's v for 1 parameter(s) that have m: "opt.v/u"`,
      ],
      [
        { "opt.m/w": z([3, 2]), "opt.v/w": z([3, 2]) },
        `checkpoint ${path}: tensor "opt.m/w" is float32 [3,2], but the model's w is float32 [2,3]`,
      ],
      [
        { "opt.m/x": z([1]), "opt.v/x": z([1]) },
        `checkpoint ${path} holds optimizer state for 1 tensor(s) the model does not have: "opt.m/x"`,
      ],
    ];
    for (const [tensors, message] of cases) {
      await saveCheckpoint(dir, { tensors, meta: {} });
      const ck = await loadCheckpoint(dir);
      throws(() => optimizerMoments(ck, params), (e: Error) => e.message === message, message);
    }
    await saveCheckpoint(dir, {
      tensors: { "opt.m/w": z([2, 3]), "opt.v/w": z([2, 3]) },
      meta: {},
    });
    const before = tf.memory().numTensors;
    const { m, v } = optimizerMoments(await loadCheckpoint(dir), params);
    deepEqual(Object.keys(m), ["w"]);
    deepEqual(v.w.shape, [2, 3]);
    tf.dispose([m.w, v.w]);
    equal(tf.memory().numTensors, before);
  }));
