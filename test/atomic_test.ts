import { appendJsonLine, tempPrefix, writeFileAtomic, writeJsonAtomic } from "../src/atomic.ts";
import { deepEqual, equal, ok, rejects } from "./asserts.ts";

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

Deno.test("atomic: writes bytes, text and chunk lists, replacing the old file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/f.bin`;
    await writeFileAtomic(path, new Uint8Array([1, 2, 3]));
    deepEqual([...await Deno.readFile(path)], [1, 2, 3]);
    await writeFileAtomic(path, [new Uint8Array([4]), new Uint8Array([5, 6])]);
    deepEqual([...await Deno.readFile(path)], [4, 5, 6]);
    await writeFileAtomic(path, "héllo");
    equal(await Deno.readTextFile(path), "héllo");
    await writeJsonAtomic(`${dir}/v.json`, { a: [1, 2], b: "x" });
    deepEqual(JSON.parse(await Deno.readTextFile(`${dir}/v.json`)), { a: [1, 2], b: "x" });
    deepEqual(await listDir(dir), ["f.bin", "v.json"], "no temporary files are left");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("atomic: a concurrent reader only ever sees the old or the new content", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/big.bin`;
    const size = 2 << 20;
    // 64 chunks each, so that a non-atomic writer would expose partial files
    // (checked: a plain open/write-chunks/close writer fails this test).
    const chunks = (v: number) =>
      Array.from({ length: 64 }, () => new Uint8Array(size / 64).fill(v));
    const versions = [chunks(0x61), chunks(0x62)];
    await writeFileAtomic(path, versions[0]);
    let writing = true;
    let reads = 0;
    const reader = (async () => {
      while (writing) {
        const bytes = await Deno.readFile(path);
        equal(bytes.length, size, "a read saw a partial file");
        const other = bytes[0] === 0x61 ? 0x62 : 0x61;
        equal(bytes.indexOf(other), -1, "a read saw a mix of old and new content");
        reads++;
      }
    })();
    for (let i = 1; i <= 12; i++) await writeFileAtomic(path, versions[i % 2]);
    writing = false;
    await reader;
    ok(reads > 0);
    deepEqual(await listDir(dir), ["big.bin"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("atomic: on error the temporary file is removed and the target kept", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // The target is a non-empty directory: the final rename fails.
    await Deno.mkdir(`${dir}/target`);
    await Deno.writeTextFile(`${dir}/target/keep.txt`, "old");
    await rejects(writeFileAtomic(`${dir}/target`, "new"));
    deepEqual(await listDir(dir), ["target"], "temporary file removed");
    equal(await Deno.readTextFile(`${dir}/target/keep.txt`), "old");
    // A missing directory fails before anything is written.
    await rejects(writeFileAtomic(`${dir}/missing/f.txt`, "x"), Deno.errors.NotFound);
    // Bad data is refused before touching the disk.
    await rejects(
      writeFileAtomic(`${dir}/f.txt`, 42 as unknown as string),
      /data = \[object Number\] is invalid/,
    );
    await rejects(writeJsonAtomic(`${dir}/f.json`, undefined), /JSON-serializable/);
    deepEqual(await listDir(dir), ["target"]);
    equal(tempPrefix(`${dir}/f.txt`), ".f.txt.tmp-");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("atomic: appendJsonLine writes one JSON object per line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/log.jsonl`;
    await appendJsonLine(path, { step: 1, loss: 2.5 });
    await appendJsonLine(path, { step: 2, loss: 2.25, note: "a\nb" });
    const lines = (await Deno.readTextFile(path)).split("\n");
    equal(lines.length, 3);
    equal(lines[2], "");
    deepEqual(lines.slice(0, 2).map((l) => JSON.parse(l)), [
      { step: 1, loss: 2.5 },
      { step: 2, loss: 2.25, note: "a\nb" },
    ]);
    await rejects(appendJsonLine(path, () => 1), /JSON-serializable/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
