/**
 * Crash-safe file writes: a reader (or a later run after a crash) sees either
 * the old content of a file or the new one, never a partial file.
 *
 * It implements the classic write-to-temp, flush, rename pattern: the data
 * goes to a temporary file in the same directory (so the rename stays on one
 * file system), is flushed to disk (`fdatasync`), and is then renamed over the
 * target, which POSIX makes atomic. On Windows, `Deno.rename` replaces the
 * target too, though without POSIX's atomicity guarantee.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";

/** The text that marks temporary files of {@linkcode writeFileAtomic}. */
export const TEMP_MARKER = ".tmp-";

/**
 * The temporary-file prefix used for `path`: a hidden file next to it,
 * `.NAME.tmp-`. Files starting with it are leftovers of interrupted writes.
 *
 * @example
 * ```ts
 * import { tempPrefix } from "./atomic.ts";
 * console.log(tempPrefix("runs/a/checkpoint.bin")); // ".checkpoint.bin.tmp-"
 * ```
 */
export function tempPrefix(path: string): string {
  return `.${basename(path)}${TEMP_MARKER}`;
}

function toChunks(data: Uint8Array | string | readonly Uint8Array[]): readonly Uint8Array[] {
  if (typeof data === "string") return [new TextEncoder().encode(data)];
  if (data instanceof Uint8Array) return [data];
  if (Array.isArray(data) && data.every((c) => c instanceof Uint8Array)) return data;
  throw new TypeError(
    `data = ${Object.prototype.toString.call(data)} is invalid: data must be a Uint8Array,` +
      ` a string or an array of Uint8Array chunks`,
  );
}

async function writeAll(file: Deno.FsFile, chunk: Uint8Array): Promise<void> {
  let done = 0;
  while (done < chunk.length) done += await file.write(chunk.subarray(done));
}

/**
 * Writes `data` to `path` atomically: readers see the old file or the complete
 * new one. The directory must exist. On failure the temporary file is removed
 * and the error is rethrown; the old file, if any, is untouched.
 *
 * @param data bytes, text (written as UTF-8), or a list of byte chunks written
 * in order (to avoid concatenating large buffers).
 * @example
 * ```ts
 * import { writeFileAtomic } from "./atomic.ts";
 * const dir = await Deno.makeTempDir();
 * await writeFileAtomic(`${dir}/hello.txt`, "hello\n");
 * console.log(await Deno.readTextFile(`${dir}/hello.txt`)); // "hello\n"
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string | readonly Uint8Array[],
): Promise<void> {
  if (typeof path !== "string" || path === "") {
    throw new TypeError(
      `path = ${JSON.stringify(path)} is invalid: path must be a non-empty string`,
    );
  }
  const chunks = toChunks(data);
  const dir = dirname(path);
  const random = crypto.getRandomValues(new Uint32Array(2));
  const temp = join(
    dir,
    `${tempPrefix(path)}${Deno.pid}-${random[0].toString(36)}${random[1].toString(36)}`,
  );
  let file: Deno.FsFile | undefined;
  try {
    file = await Deno.open(temp, { write: true, createNew: true });
    for (const chunk of chunks) await writeAll(file, chunk);
    await file.syncData();
    file.close();
    file = undefined;
    await Deno.rename(temp, path);
  } catch (error) {
    try {
      file?.close();
    } catch { /* already closed */ }
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
  await syncDir(dir);
}

/** Flushes a directory entry (the rename) to disk where the platform allows it. */
async function syncDir(dir: string): Promise<void> {
  if (Deno.build.os === "windows") return;
  try {
    const handle = await Deno.open(dir, { read: true });
    try {
      await handle.sync();
    } finally {
      handle.close();
    }
  } catch { /* best effort: some file systems refuse fsync on a directory */ }
}

function stringify(value: unknown, space?: number): string {
  const text = JSON.stringify(value, null, space);
  if (text === undefined) {
    throw new TypeError(
      `value = ${String(value)} is invalid: it must be JSON-serializable (not undefined,` +
        ` a function or a symbol)`,
    );
  }
  return text;
}

/**
 * Writes `value` as pretty-printed JSON (2-space indent, trailing newline),
 * atomically as {@linkcode writeFileAtomic}.
 *
 * @example
 * ```ts
 * import { writeJsonAtomic } from "./atomic.ts";
 * const dir = await Deno.makeTempDir();
 * await writeJsonAtomic(`${dir}/config.json`, { lr: 1e-3, epochs: 150 });
 * console.log(JSON.parse(await Deno.readTextFile(`${dir}/config.json`)).epochs); // 150
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, stringify(value, 2) + "\n");
}

/**
 * Appends `value` as one line of compact JSON (JSON Lines) to `path`, creating
 * the file if needed. Appends are not atomic, but a line is written with one
 * `write` call in append mode, so a crash can at worst cut the last line;
 * readers should skip a final line that does not parse.
 *
 * @example
 * ```ts
 * import { appendJsonLine } from "./atomic.ts";
 * const dir = await Deno.makeTempDir();
 * await appendJsonLine(`${dir}/log.jsonl`, { step: 1, loss: 2.3 });
 * await appendJsonLine(`${dir}/log.jsonl`, { step: 2, loss: 2.1 });
 * console.log((await Deno.readTextFile(`${dir}/log.jsonl`)).trim().split("\n").length); // 2
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function appendJsonLine(path: string, value: unknown): Promise<void> {
  const line = stringify(value);
  await Deno.writeTextFile(path, line + "\n", { append: true, create: true });
}
