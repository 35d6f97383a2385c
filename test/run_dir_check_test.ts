import { equal, ok, rejects } from "./asserts.ts";
import { checkRunDir } from "../src/cli/run_dir_check.ts";
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

Deno.test("checkRunDir() accepts a new directory (not creating it) and an existing one, leaving nothing behind", () =>
  withDir(async (dir) => {
    await checkRunDir(`${dir}/runs/a/b`);
    await checkRunDir(dir);
    await checkRunDir(dir, { mustExist: true });
    equal((await entries(dir)).length, 0);
  }));

Deno.test("checkRunDir() refuses --out naming a file, or a path under a file (was: File exists (os error 17))", () =>
  withDir(async (dir) => {
    const file = `${dir}/config.json`;
    await Deno.writeTextFile(file, "{}");
    await refuses(
      checkRunDir(file),
      `--out ${JSON.stringify(file)} is a file, not a directory: give a new or existing directory`,
    );
    await refuses(
      checkRunDir(`${file}/run`),
      `--out ${JSON.stringify(`${file}/run`)} cannot be created: ${
        JSON.stringify(file)
      } is a file, not a directory`,
    );
  }));

Deno.test("checkRunDir() refuses a place it cannot write (/proc/x, a read-only directory)", async () => {
  await refuses(
    checkRunDir("/proc/x"),
    // Deno wants --allow-all under /proc; as root outside Deno, /proc refuses the write.
    /^--out "\/proc\/x" (cannot be used: Deno's permissions|is not writable \(it would be created in "\/proc"\): )/,
  );
  if (Deno.uid() === 0) return; // root writes into a 0o555 directory anyway
  await withDir(async (dir) => {
    await Deno.chmod(dir, 0o555);
    await refuses(checkRunDir(`${dir}/run`), /is not writable .*permission denied$/);
  });
});

Deno.test("checkRunDir() with mustExist refuses a missing run; an empty path is refused", () =>
  withDir(async (dir) => {
    await refuses(
      checkRunDir(`${dir}/none`, { flag: "--out", mustExist: true }),
      `--out ${JSON.stringify(`${dir}/none`)} does not exist: there is no run to continue there`,
    );
    await refuses(checkRunDir(""), `--out "" is empty: give a directory path`);
  }));
