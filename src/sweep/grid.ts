/**
 * The grid of a sweep: `--grid` axes (`mode=moe,moge`, `seed=0..4`), their
 * cross product, and the run id of each point (`mode-moe_seed-0`), which
 * names its directory under `runs/<name>/`.
 *
 * @module
 */

/** One gridded train flag and its values, e.g. `{ flag: "seed", values: ["0", "1", "2"] }`. */
export interface GridAxis {
  /** Train flag without the dashes, e.g. "mode". */
  flag: string;
  /** Its values, as passed on the command line. */
  values: string[];
}

/** Flags that the sweep sets itself and that may not be fixed or gridded. */
export const RESERVED_TRAIN_FLAGS: readonly string[] = [
  "out",
  "resume",
  "overwrite",
  "help",
  "quiet",
];

const FLAG_NAME = /^[a-z][a-z0-9-]*$/;

/**
 * Parses one `--grid` value: `flag=v1,v2,...` or an inclusive integer range
 * `flag=a..b` (e.g. `seed=0..4` is 0, 1, 2, 3, 4).
 *
 * @example
 * ```ts
 * import { parseGridAxis } from "./grid.ts";
 * parseGridAxis("seed=0..2"); // { flag: "seed", values: ["0", "1", "2"] }
 * parseGridAxis("mode=moe,moge"); // { flag: "mode", values: ["moe", "moge"] }
 * ```
 */
export function parseGridAxis(spec: string): GridAxis {
  const eq = spec.indexOf("=");
  if (eq <= 0) {
    throw new RangeError(
      `--grid ${JSON.stringify(spec)}: expected FLAG=V1,V2,... or FLAG=A..B (e.g. seed=0..4)`,
    );
  }
  const flag = spec.slice(0, eq).replace(/^--/, "");
  const rest = spec.slice(eq + 1);
  if (!FLAG_NAME.test(flag)) {
    throw new RangeError(`--grid ${JSON.stringify(spec)}: "${flag}" is not a train flag name`);
  }
  if (RESERVED_TRAIN_FLAGS.includes(flag)) {
    throw new RangeError(`--grid ${spec}: --${flag} is set by the sweep itself`);
  }
  const range = /^(-?\d+)\.\.(-?\d+)$/.exec(rest);
  let values: string[];
  if (range) {
    const a = Number(range[1]), b = Number(range[2]);
    if (b < a) throw new RangeError(`--grid ${spec}: the range ${a}..${b} is empty (need a <= b)`);
    if (b - a >= 10000) throw new RangeError(`--grid ${spec}: more than 10000 values`);
    values = Array.from({ length: b - a + 1 }, (_, i) => String(a + i));
  } else {
    values = rest.split(",");
    if (values.some((v) => v.trim() === "")) {
      throw new RangeError(`--grid ${JSON.stringify(spec)}: empty value (write FLAG=V1,V2,...)`);
    }
  }
  if (new Set(values).size !== values.length) {
    throw new RangeError(`--grid ${spec}: a value is repeated`);
  }
  return { flag, values };
}

/** One point of the grid. */
export interface SweepPoint {
  /** Directory name under the sweep, e.g. "mode-moe_seed-0". */
  id: string;
  /** The gridded flags of this point. */
  flags: Record<string, string>;
  /** Train arguments: the fixed ones, then the gridded ones (no --out). */
  args: string[];
}

function safe(s: string): string {
  return s.replace(/[^A-Za-z0-9.+-]/g, "-");
}

/**
 * The run id of a grid point: `flag-value` pairs joined by `_`, in grid
 * order, characters outside `[A-Za-z0-9.+-]` replaced by `-`.
 *
 * @example
 * ```ts
 * import { runIdOf } from "./grid.ts";
 * runIdOf({ mode: "moe", seed: "0" }); // "mode-moe_seed-0"
 * ```
 */
export function runIdOf(flags: Record<string, string>): string {
  const parts = Object.entries(flags).map(([k, v]) => `${safe(k)}-${safe(v)}`);
  return parts.length ? parts.join("_") : "run";
}

/**
 * Every point of the grid (the first axis varies slowest), with its run id
 * and train arguments `[...fixed, --flag value, ...]`.
 *
 * @example
 * ```ts
 * import { expandGrid } from "./grid.ts";
 * const pts = expandGrid([{ flag: "mode", values: ["moe", "moge"] }, { flag: "seed", values: ["0", "1"] }], ["--preset", "tiny"]);
 * pts.map((p) => p.id); // ["mode-moe_seed-0", "mode-moe_seed-1", "mode-moge_seed-0", "mode-moge_seed-1"]
 * pts[0].args; // ["--preset", "tiny", "--mode", "moe", "--seed", "0"]
 * ```
 */
export function expandGrid(grid: readonly GridAxis[], fixed: readonly string[]): SweepPoint[] {
  const seen = new Set<string>();
  for (const a of grid) {
    if (seen.has(a.flag)) throw new RangeError(`--grid ${a.flag} is given twice`);
    seen.add(a.flag);
    const clash = fixed.some((f) => f === `--${a.flag}` || f.startsWith(`--${a.flag}=`));
    if (clash) throw new RangeError(`--${a.flag} is both gridded and fixed: give it once`);
  }
  let points: Record<string, string>[] = [{}];
  for (const a of grid) {
    points = points.flatMap((p) => a.values.map((v) => ({ ...p, [a.flag]: v })));
  }
  const out = points.map((flags) => ({
    id: runIdOf(flags),
    flags,
    args: [...fixed, ...Object.entries(flags).flatMap(([k, v]) => [`--${k}`, v])],
  }));
  const ids = new Set<string>();
  for (const p of out) {
    if (ids.has(p.id)) {
      throw new RangeError(`two grid points map to the run id ${p.id}: use plainer values`);
    }
    ids.add(p.id);
  }
  return out;
}
