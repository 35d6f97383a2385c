/**
 * Tests of the PNG files (src/report/png.ts, fast-png) and the plots
 * (src/report/heatmap.ts and charts.ts, Vega-Lite specs drawn by Vega): the PNG structure
 * checked independently of fast-png (chunk CRCs against node:zlib's crc32,
 * the IDAT inflated by the runtime's DecompressionStream), pixel round trips,
 * and well-formed, deterministic SVG with one mark per map entry, bar and
 * point.
 */

import fc from "fast-check";
import { crc32 } from "node:zlib";
import { decodePng, encodePng, encodePngCompressed, PNG_SIGNATURE } from "../src/report/png.ts";
import {
  heatmapPng,
  heatmapRgba,
  heatmapSpec,
  heatmapSvg,
  mapColor,
} from "../src/report/heatmap.ts";
import { barChartSpec, barChartSvg, lineChartSpec, lineChartSvg } from "../src/report/charts.ts";
import { renderVegaLite, writeChart } from "../src/report/vega.ts";
import { deepEqual, equal, ok, rejects, throws } from "./asserts.ts";

async function inflate(zlib: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([zlib as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new DecompressionStream("deflate"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

interface Chunk {
  type: string;
  data: Uint8Array;
}

/** Splits a PNG into chunks, checking the signature and every chunk's CRC (node:zlib). */
function parseChunks(png: Uint8Array): Chunk[] {
  deepEqual(png.subarray(0, 8), PNG_SIGNATURE);
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const chunks: Chunk[] = [];
  let o = 8;
  while (o < png.length) {
    const len = view.getUint32(o);
    const type = String.fromCharCode(...png.subarray(o + 4, o + 8));
    equal(view.getUint32(o + 8 + len), crc32(png.subarray(o + 4, o + 8 + len)), `CRC of ${type}`);
    chunks.push({ type, data: png.subarray(o + 8, o + 8 + len) });
    o += 12 + len;
  }
  equal(o, png.length, "chunks end at the end of the file");
  return chunks;
}

/**
 * Checks the structure of an RGBA PNG without fast-png (IHDR fields, CRCs,
 * IDAT inflating to h rows of 1 filter byte (0-4) + 4w bytes), then decodes
 * it with fast-png.
 */
async function decodePngChecked(
  png: Uint8Array,
): Promise<{ width: number; height: number; rgba: Uint8Array }> {
  const chunks = parseChunks(png);
  equal(chunks[0].type, "IHDR");
  equal(chunks[chunks.length - 1].type, "IEND");
  const ihdr = new DataView(chunks[0].data.buffer, chunks[0].data.byteOffset, 13);
  const width = ihdr.getUint32(0), height = ihdr.getUint32(4);
  deepEqual(
    [...chunks[0].data.subarray(8)],
    [8, 6, 0, 0, 0],
    "depth 8, RGBA, deflate, no interlace",
  );
  const idat = chunks.filter((c) => c.type === "IDAT");
  ok(idat.length >= 1);
  const z = new Uint8Array(idat.reduce((n, c) => n + c.data.length, 0));
  let at = 0;
  for (const c of idat) (z.set(c.data, at), at += c.data.length);
  const raw = await inflate(z);
  equal(raw.length, height * (1 + 4 * width));
  for (let y = 0; y < height; y++) ok(raw[y * (1 + 4 * width)] <= 4, `filter type of row ${y}`);
  return await decodePng(png);
}

Deno.test("encodePng: valid PNG structure (independent CRC and inflate) and a pixel round trip", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 40 }),
      fc.integer({ min: 1, max: 40 }),
      fc.integer(),
      async (w, h, seed) => {
        const rgba = Uint8Array.from({ length: w * h * 4 }, (_, i) => (i * 97 + seed) & 0xff);
        for (const png of [await encodePng(w, h, rgba), await encodePngCompressed(w, h, rgba)]) {
          const img = await decodePngChecked(png);
          equal(img.width, w);
          equal(img.height, h);
          deepEqual(img.rgba, rgba);
        }
      },
    ),
    { numRuns: 30 },
  );
  // Deterministic, and compressed: a flat 64 x 64 image is far below its 16 KiB of pixels.
  const flat = new Uint8Array(64 * 64 * 4).fill(200);
  const png = await encodePng(64, 64, flat);
  deepEqual(await encodePng(64, 64, flat), png);
  ok(png.length < 1000, `${png.length} bytes`);
});

Deno.test("encodePng: bad input throws errors naming the value", async () => {
  await rejects(() => encodePng(0, 1, new Uint8Array(0)), /width = 0 is invalid/);
  await rejects(() => encodePng(2, 1.5, new Uint8Array(12)), /height = 1\.5 is invalid/);
  await rejects(
    () => encodePng(2, 2, new Uint8Array(15)),
    /rgba\.length = 15 is invalid: .*= 16/,
  );
  await rejects(
    () => encodePng(1, 1, [1, 2, 3, 4] as unknown as Uint8Array),
    /rgba must be a Uint8Array/,
  );
  await rejects(() => decodePng(new Uint8Array([1, 2, 3])), /not a readable PNG file/);
});

Deno.test("mapColor: viridis and gray end points, clamping", () => {
  deepEqual(mapColor(0), [68, 1, 84]);
  deepEqual(mapColor(1), [253, 231, 37]);
  deepEqual(mapColor(128 / 255), [33, 145, 140]); // viridis entry 128 of 0..255
  deepEqual(mapColor(-3), mapColor(0));
  deepEqual(mapColor(0.5, "gray"), [128, 128, 128]);
  throws(() => mapColor(0.5, "jet" as "gray"), /colormap = jet is invalid/);
  throws(() => mapColor(NaN), /t = NaN is invalid/);
});

const panels = [
  { title: "MoE <class 0>", values: [0.1, 0.5, 0.2, 0.2, 0, 0], rows: 2, cols: 3 },
  { title: "MoGE & class 0", values: [0.7, 0.1, 0.1, 0.1, 0, 0], rows: 2, cols: 3 },
  { values: [0, 0, 0, 1], rows: 2, cols: 2 },
];

Deno.test("heatmapRgba / heatmapPng: dimensions, cell colours, shared scale, PNG round trip", async () => {
  const img = heatmapRgba(panels, { cell: 5, columns: 2, gap: 1 });
  // 2 panel columns of 3 cells * 5 px + 3 gaps; 2 panel rows of 2 cells * 5 px + 3 gaps
  equal(img.width, 2 * 15 + 3);
  equal(img.height, 2 * 10 + 3);
  const px = (
    x: number,
    y: number,
  ) => [...img.rgba.subarray((y * img.width + x) * 4, (y * img.width + x) * 4 + 4)];
  // panel 1, cell (0, 1) = 0.5 of the shared range [0, 1]; panel 2, cell (0, 0) = 0.7
  deepEqual(px(1 + 5 + 2, 1 + 2), [...mapColor(0.5), 255]);
  deepEqual(px(1 + 15 + 1 + 2, 1 + 2), [...mapColor(0.7), 255]);
  deepEqual(px(0, 0), [255, 255, 255, 255]); // background
  const png = await heatmapPng(panels, { cell: 5, columns: 2, gap: 1 });
  const decoded = await decodePngChecked(png);
  equal(decoded.width, img.width);
  equal(decoded.height, img.height);
  deepEqual(decoded.rgba, img.rgba);
  deepEqual(await heatmapPng(panels, { cell: 5, columns: 2, gap: 1 }), png, "deterministic");
  // explicit scale and gray
  const g = heatmapRgba([{ values: [0, 2], rows: 1, cols: 2 }], {
    cell: 1,
    gap: 0,
    colormap: "gray",
    min: 0,
    max: 4,
  });
  deepEqual([...g.rgba], [0, 0, 0, 255, 128, 128, 128, 255]);
});

Deno.test("heatmapSvg: a Vega-Lite spec drawn to SVG, one rect mark per map entry, escaped titles, deterministic", async () => {
  const options = { cell: 10, title: "Fig. 2 <average routing map>" };
  const spec = heatmapSpec(panels, options);
  // 6 + 6 + 4 map entries, each a data row with its panel's title
  equal((spec.data as { values: unknown[] }).values.length, 16);
  const svg = await heatmapSvg(panels, options);
  ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
  ok(svg.trimEnd().endsWith("</svg>"));
  equal(svg.match(/aria-roledescription="rect mark"/g)?.length, 6 + 6 + 4);
  ok(svg.includes("MoE &lt;class 0&gt;"));
  ok(svg.includes("MoGE &amp; class 0"));
  ok(svg.includes("Fig. 2 &lt;average routing map&gt;"));
  // The largest value (0.7) is viridis' top colour, the smallest (0) its bottom.
  ok(svg.includes('fill="rgb(253, 231, 37)"') || svg.includes('fill="#fde725"'), "viridis top");
  checkBalanced(svg);
  equal(await heatmapSvg(panels, options), svg, "deterministic");
  equal(await renderVegaLite(spec), svg, "heatmapSvg = renderVegaLite(heatmapSpec)");
});

/** Every opened element is closed in order (a tiny XML well-formedness check). */
function checkBalanced(svg: string): void {
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-zA-Z]+)[^>]*?(\/?)>/g)) {
    const [, close, name, selfClose] = m;
    if (selfClose) continue;
    if (close) equal(stack.pop(), name, `closing </${name}>`);
    else stack.push(name);
  }
  deepEqual(stack, [], "all elements closed");
}

Deno.test("barChartSvg and lineChartSvg: one bar per value, one line per series, log x, deterministic", async () => {
  const barOpts = { title: "expert load", xLabel: "expert", yLabel: "load" };
  const bars = await barChartSvg([0.3, 0.25, 0.25, 0.2, -0.1], barOpts);
  equal(bars.match(/aria-roledescription="bar"/g)?.length, 5);
  checkBalanced(bars);
  ok(bars.includes(">expert load<") && bars.includes(">expert<") && bars.includes(">load<"));
  equal(await barChartSvg([0.3, 0.25, 0.25, 0.2, -0.1], barOpts), bars);
  const series = [
    { name: "MoGE", points: [[8, 1.1], [16, 1.08], [64, 1.05], [256, 1.02]] as [number, number][] },
    { name: "MoE", points: [[8, 1], [256, 1]] as [number, number][] },
  ];
  const lineOpts = { title: "overhead", xLabel: "E", yLabel: "time ratio", logX: true };
  const spec = lineChartSpec(series, lineOpts);
  deepEqual((spec.encoding as { x: { scale: unknown } }).x.scale, {
    type: "log",
    base: 2, // 8 .. 256 spans 5 octaves (<= 12): base 2
    nice: true,
  });
  const lines = await lineChartSvg(series, lineOpts);
  equal(lines.match(/aria-roledescription="line mark"/g)?.length, 2);
  equal(lines.match(/aria-roledescription="point"/g)?.length, 6);
  for (const t of [8, 16, 32, 64, 128, 256]) ok(lines.includes(`>${t}</text>`), `log tick ${t}`);
  checkBalanced(lines);
  equal(await lineChartSvg(series, lineOpts), lines);
  throws(
    () => lineChartSpec([{ name: "x", points: [[0, 1]] }], { logX: true }),
    /points\[0\]\[0\] = 0 is invalid: .* > 0/,
  );
  throws(() => barChartSpec([]), /values must be a non-empty array/);
  throws(() => barChartSpec([1, NaN]), /values contains NaN at flat index 1/);
  await rejects(
    () => renderVegaLite([] as unknown as Record<string, unknown>),
    /spec = \[\] is invalid/,
  );
  await rejects(() => renderVegaLite({ mark: "nonsense" }), /vega-lite rejected the spec|Invalid/);
});

Deno.test("writeChart: the SVG and its Vega-Lite spec beside it; the spec re-renders to the same SVG", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const spec = barChartSpec([3, 1, 2], { title: "load" });
    const paths = await writeChart(`${dir}/load`, spec);
    deepEqual(paths, { svg: `${dir}/load.svg`, spec: `${dir}/load.vl.json` });
    const saved = JSON.parse(await Deno.readTextFile(paths.spec));
    ok(String(saved.$schema).startsWith("https://vega.github.io/schema/vega-lite/v6"));
    equal(await renderVegaLite(saved), await Deno.readTextFile(paths.svg));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("heatmap: bad panels throw errors naming the value", async () => {
  throws(() => heatmapSpec([]), /panels must be a non-empty array/);
  await rejects(() => heatmapSvg([]), /panels must be a non-empty array/);
  throws(
    () => heatmapRgba([{ values: [1, 2, 3], rows: 2, cols: 2 }]),
    /panels\[0\]\.values\.length = 3 is invalid/,
  );
  throws(
    () => heatmapRgba([{ values: [1, NaN], rows: 1, cols: 2 }]),
    /panels\[0\]\.values contains NaN at flat index 1/,
  );
  throws(() => heatmapRgba(panels, { cell: 0 }), /options\.cell = 0 is invalid/);
  throws(
    () => heatmapRgba(panels, { min: 2, max: 1 }),
    /options\.max = 1 is invalid: it must be >= min = 2/,
  );
  throws(() => heatmapRgba(panels, { colormap: "jet" as "gray" }), /colormap = jet is invalid/);
});
