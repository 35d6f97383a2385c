import { equal, ok, rejects } from "./asserts.ts";
import { checkOutDir } from "../src/cli/out_dir_check.ts";
import { UsageError } from "../src/cli/args.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "moge-rundir-" });
  try {
    await fn(dir);
  } finally {
    await Deno.chmod(dir, 0o755).catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

/** Entries of a directory (the probe file must not be left behind). */
async function entries(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

/** Asserts `p` rejects with a one-line UsageError equal to `message`. */
async function refuses(p: Promise<void>, message: string | RegExp): Promise<void> {
  await rejects(p, (e: unknown) => {
    ok(e instanceof UsageError, String(e));
    ok(!e.message.includes("\n"), e.message);
    if (typeof message === "string") equal(e.message, message);
    else ok(message.test(e.message), e.message);
    return true;
  });
}

Deno.test("checkOutDir() accepts a new directory (not creating it) and an existing one, leaving nothing behind", () =>
  withDir(async (dir) => {
    await checkOutDir(`${dir}/runs/a/b`);
    await checkOutDir(dir);
    await checkOutDir(dir, { mustExist: true });
    equal((await entries(dir)).length, 0);
  }));

Deno.test("checkOutDir() refuses --out naming a file, or a path under a file (was: File exists (os error 17))", () =>
  withDir(async (dir) => {
    const file = `${dir}/config.json`;
    await Deno.writeTextFile(file, "{}");
    await refuses(
      checkOutDir(file),
      `--out ${JSON.stringify(file)} is a file, not a directory: give a new or existing directory`,
    );
    await refuses(
      checkOutDir(`${file}/run`),
      `--out ${JSON.stringify(`${file}/run`)} cannot be created: ${
        JSON.stringify(file)
      } is a file, not a directory`,
    );
  }));

Deno.test("checkOutDir() refuses a place it cannot write (/proc/x, a read-only directory)", async () => {
  await refuses(
    checkOutDir("/proc/x"),
    // Deno wants --allow-all under /proc; as root outside Deno, /proc refuses the write.
    /^--out "\/proc\/x" (cannot be used: Deno's permissions|is not writable \(it would be created in "\/proc"\): )/,
  );
  if (Deno.uid() === 0) return; // root writes into a 0o555 directory anyway
  await withDir(async (dir) => {
    await Deno.chmod(dir, 0o555);
    await refuses(checkOutDir(`${dir}/run`), /is not writable .*permission denied$/);
  });
});

Deno.test("checkOutDir() with mustExist refuses a missing run; an empty path is refused", () =>
  withDir(async (dir) => {
    await refuses(
      checkOutDir(`${dir}/none`, { flag: "--out", mustExist: true }),
      `--out ${JSON.stringify(`${dir}/none`)} does not exist: there is no run to continue there`,
    );
    await refuses(checkOutDir(""), `--out "" is empty: give a directory path`);
  }));
