/**
 * Regenerates the committed test fixtures `fixtures/fashion-mnist-small.bin`
 * and `fixtures/mnist-small.bin` from the full data sets: the first 100
 * training and 20 test images of each class (1,200 images, ~0.9 MB each), in
 * their original order, in the binary data set format of `data.ts`. The
 * output is deterministic: running it again gives byte-identical files.
 *
 * Usage: `deno run -A src/cli/make_fixtures.ts [--out DIR] [--cache-dir DIR]`
 * (`--out` defaults to the repository's `fixtures/`; the full data sets are
 * loaded through the cache, downloading them on first use).
 *
 * @example
 * ```sh
 * deno run -A src/cli/make_fixtures.ts
 * ```
 *
 * @module
 */

import { DATASET_NAMES, encodeDataset, subsetPerClass } from "../data/images.ts";
import { loadDataset } from "../data/image_sources.ts";
import { writeFileAtomic } from "../atomic.ts";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** Training images per class in a fixture. */
export const FIXTURE_TRAIN_PER_CLASS = 100;
/** Test images per class in a fixture. */
export const FIXTURE_TEST_PER_CLASS = 20;

/**
 * Writes both fixtures to `outDir` and returns the paths and sizes written.
 *
 * @example
 * ```ts ignore
 * import { makeFixtures } from "./make_fixtures.ts";
 * const written = await makeFixtures({ outDir: "fixtures" });
 * console.log(written); // [{ path: "fixtures/fashion-mnist-small.bin", bytes: 942... }, ...]
 * ```
 */
export async function makeFixtures(
  options: { outDir: string; cacheDir?: string; onProgress?: (m: string) => void },
): Promise<{ path: string; bytes: number }[]> {
  const written: { path: string; bytes: number }[] = [];
  await Deno.mkdir(options.outDir, { recursive: true });
  for (const name of DATASET_NAMES) {
    const full = await loadDataset(name, {
      cacheDir: options.cacheDir,
      onProgress: options.onProgress,
    });
    const small = subsetPerClass(full, FIXTURE_TRAIN_PER_CLASS, FIXTURE_TEST_PER_CLASS);
    const bytes = encodeDataset(small);
    const path = join(options.outDir, `${name}-small.bin`);
    await writeFileAtomic(path, bytes);
    written.push({ path, bytes: bytes.length });
  }
  return written;
}

function parseArgs(args: string[]): { outDir: string; cacheDir?: string } {
  let outDir = fileURLToPath(new URL("../../fixtures", import.meta.url));
  let cacheDir: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const value = () => {
      const v = args[++i];
      if (v === undefined || v.startsWith("--")) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === "--out") outDir = value();
    else if (a === "--cache-dir") cacheDir = value();
    else if (a === "--help" || a === "-h") {
      console.log("usage: deno run -A src/cli/make_fixtures.ts [--out DIR] [--cache-dir DIR]");
      Deno.exit(0);
    } else {
      throw new Error(
        `unknown argument ${JSON.stringify(a)}: allowed are --out DIR, --cache-dir DIR`,
      );
    }
  }
  return { outDir, cacheDir };
}

if (import.meta.main) {
  try {
    const { outDir, cacheDir } = parseArgs(Deno.args);
    const written = await makeFixtures({ outDir, cacheDir, onProgress: console.log });
    for (const w of written) console.log(`wrote ${w.path} (${w.bytes} bytes)`);
  } catch (e) {
    console.error(`make_fixtures: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
