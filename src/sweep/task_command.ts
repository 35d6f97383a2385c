/**
 * The train command a sweep starts for each run: the `train` task of
 * deno.json as an argv, and whether it knows `--overwrite`.
 *
 * @module
 */

/** A command line and the directory it runs in. */
export interface TaskCommand {
  /** Executable, then its arguments. */
  argv: string[];
  /** Working directory. */
  cwd: string;
}

/**
 * The train command of a task in `deno.json` (e.g. `deno run --allow-read
 * ... src/cli/train.ts`) as an argv, with `deno` replaced by this Deno's
 * executable, and the directory it runs in.
 *
 * @example
 * ```ts ignore
 * import { taskCommand } from "./task_command.ts";
 * const { argv, cwd } = await taskCommand("train");
 * ```
 */
export async function taskCommand(task: string): Promise<TaskCommand> {
  const configUrl = new URL("../../deno.json", import.meta.url);
  const cwd = new URL(".", configUrl).pathname;
  const cfg = JSON.parse(await Deno.readTextFile(configUrl));
  const cmd = cfg?.tasks?.[task];
  const line = typeof cmd === "string" ? cmd : cmd?.command;
  if (typeof line !== "string" || /[|&;<>"'`$]/.test(line) || !line.startsWith("deno ")) {
    // Not a plain deno command line: let `deno task` run it.
    return { argv: [Deno.execPath(), "task", task], cwd };
  }
  const argv = line.trim().split(/\s+/);
  argv[0] = Deno.execPath();
  return { argv, cwd };
}

/**
 * Whether a train command lists `--overwrite` in its `--help` (an older
 * trainer overwrites its output directory without asking).
 *
 * @example
 * ```ts ignore
 * import { taskCommand, trainKnowsOverwrite } from "./task_command.ts";
 * await trainKnowsOverwrite(await taskCommand("train")); // true
 * ```
 */
export async function trainKnowsOverwrite(command: TaskCommand): Promise<boolean> {
  const out = await new Deno.Command(command.argv[0], {
    args: [...command.argv.slice(1), "--help"],
    cwd: command.cwd,
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout).includes("--overwrite");
}
