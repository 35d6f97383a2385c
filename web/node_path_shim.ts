/**
 * `node:path`'s `join`, `basename` and `dirname` for the browser bundle
 * (POSIX semantics, enough for the library's file-name handling, which a
 * page never reaches): `deno bundle` maps `node:path` here.
 *
 * @module
 */

/** Joins path segments with "/" and normalises "." and ".." segments. */
export function join(...parts: string[]): string {
  const joined = parts.filter((p) => p !== "").join("/");
  if (joined === "") return ".";
  const abs = joined.startsWith("/");
  const out: string[] = [];
  for (const seg of joined.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === ".." && out.length > 0 && out[out.length - 1] !== "..") out.pop();
    else if (seg !== ".." || !abs) out.push(seg);
  }
  const s = (abs ? "/" : "") + out.join("/");
  return s === "" ? "." : s;
}

/** The last segment of a path (without trailing slashes). */
export function basename(path: string): string {
  const s = path.replace(/\/+$/, "");
  return s.slice(s.lastIndexOf("/") + 1);
}

/** The path without its last segment ("." when none). */
export function dirname(path: string): string {
  const s = path.replace(/\/+$/, "");
  const i = s.lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : s.slice(0, i);
}
