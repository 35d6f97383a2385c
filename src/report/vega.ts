/**
 * Renders Vega-Lite chart specs to SVG without a browser: vega-lite compiles
 * the spec to Vega, and a headless `vega.View` (renderer "none") draws it
 * with `toSVG()`. Both libraries are loaded on first use, so importing this
 * module costs nothing until a chart is drawn.
 *
 * Every chart of moge is a Vega-Lite spec (JSON), written beside its SVG by
 * {@linkcode writeChart} so that users can restyle it (e.g. paste it into the
 * Vega editor, or change colours and re-render with {@linkcode renderVegaLite}).
 *
 * @module
 */

import { importVega, importVegaLite, VEGA_LITE_VERSION } from "../deps.ts";
import { writeFileAtomic } from "../atomic.ts";
import { checksum32 } from "../checksum.ts";

/** A Vega-Lite spec: a JSON object (https://vega.github.io/vega-lite/docs/spec.html). */
export type VegaLiteSpec = Record<string, unknown>;

/** The `$schema` URL of the Vega-Lite version the specs are written for. */
export const VEGA_LITE_SCHEMA: string = `https://vega.github.io/schema/vega-lite/v${
  VEGA_LITE_VERSION.split(".")[0]
}.json`;

/**
 * Compiles a Vega-Lite spec and renders it to an SVG document, headless.
 *
 * @param spec the Vega-Lite spec (a plain JSON object)
 * @returns the SVG document
 * @throws TypeError when `spec` is not an object, Error when vega-lite rejects it
 *
 * @example
 * ```ts
 * import { renderVegaLite } from "./vega.ts";
 * const svg = await renderVegaLite({
 *   data: { values: [{ x: 1, y: 2 }, { x: 2, y: 3 }] },
 *   mark: "line",
 *   encoding: { x: { field: "x", type: "quantitative" }, y: { field: "y", type: "quantitative" } },
 * });
 * console.log(svg.startsWith("<svg")); // true
 * ```
 */
export async function renderVegaLite(spec: VegaLiteSpec): Promise<string> {
  if (spec === null || typeof spec !== "object" || Array.isArray(spec)) {
    throw new TypeError(
      `renderVegaLite: spec = ${
        JSON.stringify(spec)
      } is invalid: it must be a Vega-Lite spec object`,
    );
  }
  const [vega, vl] = await Promise.all([importVega(), importVegaLite()]);
  let compiled;
  try {
    // deno-lint-ignore no-explicit-any
    compiled = vl.compile(spec as any).spec;
  } catch (e) {
    throw new Error(`renderVegaLite: vega-lite rejected the spec: ${(e as Error).message}`);
  }
  const view = new vega.View(vega.parse(compiled), { renderer: "none" });
  try {
    return stableIds(await view.toSVG());
  } finally {
    view.finalize();
  }
}

/**
 * Vega numbers the ids of gradients and clip paths with a process-wide
 * counter, so the same chart drawn twice differs. Renames every `id` to
 * `vg<hash>-<k>` (k in order of appearance, hash of the renamed document):
 * the same chart gives the same bytes, and different charts inlined in one
 * page keep distinct ids.
 */
function stableIds(svg: string): string {
  const ids = [...svg.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]);
  if (ids.length === 0) return svg;
  const rename = (prefix: string) => {
    let out = svg;
    ids.forEach((id, k) => {
      const to = `${prefix}-${k}`;
      out = out.split(`id="${id}"`).join(`id="${to}"`).split(`#${id})`).join(`#${to})`)
        .split(`href="#${id}"`).join(`href="#${to}"`);
    });
    return out;
  };
  const placeholder = rename("vg");
  const hash = checksum32(new TextEncoder().encode(placeholder)).toString(16).padStart(8, "0");
  return rename(`vg${hash}`);
}

/**
 * Writes a chart as `<base>.svg` (rendered by {@linkcode renderVegaLite}) and
 * its Vega-Lite spec as `<base>.vl.json`, both atomically.
 *
 * @param base path without extension, e.g. `runs/a/load_moe`
 * @param spec the Vega-Lite spec
 * @returns the two paths written
 *
 * @example
 * ```ts
 * import { writeChart } from "./vega.ts";
 * import { barChartSpec } from "./charts.ts";
 * const dir = await Deno.makeTempDir();
 * const { svg, spec } = await writeChart(`${dir}/load`, barChartSpec([3, 1, 2]));
 * console.log(svg, spec); // .../load.svg .../load.vl.json
 * ```
 */
export async function writeChart(
  base: string,
  spec: VegaLiteSpec,
): Promise<{ svg: string; spec: string }> {
  const svg = await renderVegaLite(spec);
  await writeFileAtomic(`${base}.svg`, svg);
  await writeFileAtomic(`${base}.vl.json`, JSON.stringify(spec, null, 2) + "\n");
  return { svg: `${base}.svg`, spec: `${base}.vl.json` };
}
