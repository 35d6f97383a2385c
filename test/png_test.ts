/**
 * Tests of the PNG encoder (src/png.ts) and the plots (src/heatmap.ts): the
 * checksums against their standard check values, the file structure, a
 * decode round trip through the runtime's `DecompressionStream("deflate")`,
 * and well-formed, deterministic SVG.
 */

import fc from "fast-check";
import {
  adler32,
  crc32,
  encodePng,
  encodePngCompressed,
  PNG_SIGNATURE,
  pngScanlines,
  zlibStored,
} from "../src/report/png.ts";
import {
  barChartSvg,
  heatmapPng,
  heatmapRgba,
  heatmapSvg,
  lineChartSvg,
  mapColor,
} from "../src/report/heatmap.ts";
import { deepEqual, equal, ok, throws } from "./asserts.ts";

const ascii = (s: string) => new TextEncoder().encode(s);

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

/** Splits a PNG into chunks, checking the signature and every chunk's CRC. */
function parseChunks(png: Uint8Array): Chunk[] {
  deepEqual(png.subarray(0, 8), PNG_SIGNATURE);
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const chunks: Chunk[] = [];
  let o = 8;
  while (o < png.length) {
    const len = view.getUint32(o);
    const type = String.fromCharCode(...png.subarray(o + 4, o + 8));
    const data = png.subarray(o + 8, o + 8 + len);
    equal(view.getUint32(o + 8 + len), crc32(png.subarray(o + 4, o + 8 + len)), `CRC of ${type}`);
    chunks.push({ type, data });
    o += 12 + len;
  }
  equal(o, png.length, "chunks end at the end of the file");
  return chunks;
}

/** A minimal PNG decoder for what encodePng writes: RGBA 8-bit, filter 0. */
async function decodePng(
  png: Uint8Array,
): Promise<{ width: number; height: number; rgba: Uint8Array }> {
  const chunks = parseChunks(png);
  deepEqual(chunks.map((c) => c.type), ["IHDR", "IDAT", "IEND"]);
  const ihdr = new DataView(chunks[0].data.buffer, chunks[0].data.byteOffset, 13);
  const width = ihdr.getUint32(0), height = ihdr.getUint32(4);
  deepEqual([...chunks[0].data.subarray(8)], [8, 6, 0, 0, 0]);
  const raw = await inflate(chunks[1].data);
  equal(raw.length, height * (1 + 4 * width));
  const rgba = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    equal(raw[y * (1 + 4 * width)], 0, `filter type of row ${y}`);
    rgba.set(raw.subarray(y * (1 + 4 * width) + 1, (y + 1) * (1 + 4 * width)), y * 4 * width);
  }
  return { width, height, rgba };
}

Deno.test("crc32 and adler32: the standard check values", () => {
  equal(crc32(ascii("123456789")), 0xcbf43926);
  equal(crc32(new Uint8Array(0)), 0);
  equal(crc32(ascii("IEND")), 0xae426082); // the constant CRC every PNG ends with
  equal(crc32(ascii("56789"), crc32(ascii("1234"))), 0xcbf43926); // running CRC
  equal(adler32(ascii("Wikipedia")), 0x11e60398);
  equal(adler32(new Uint8Array(0)), 1);
  // long input of 0xff bytes (exercises the modulo reduction): reference from zlib's definition
  const big = new Uint8Array(100000).fill(255);
  let a = 1, b = 0;
  for (const x of big) {
    a = (a + x) % 65521;
    b = (b + a) % 65521;
  }
  equal(adler32(big), ((b << 16) | a) >>> 0);
});

Deno.test("zlibStored: inflates back to the input (empty, small, several 64 KiB blocks)", async () => {
  for (const n of [0, 1, 1000, 65535, 65536, 200000]) {
    const data = Uint8Array.from({ length: n }, (_, i) => (i * 31 + (i >> 8)) & 0xff);
    const z = zlibStored(data);
    equal((z[0] * 256 + z[1]) % 31, 0, "zlib header check bits");
    deepEqual(await inflate(z), data, `n = ${n}`);
  }
});

Deno.test("encodePng: signature, IHDR fields, chunk CRCs and a round trip of the pixels", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 40 }),
      fc.integer({ min: 1, max: 40 }),
      fc.integer(),
      async (w, h, seed) => {
        const rgba = Uint8Array.from({ length: w * h * 4 }, (_, i) => (i * 97 + seed) & 0xff);
        for (const png of [encodePng(w, h, rgba), await encodePngCompressed(w, h, rgba)]) {
          const img = await decodePng(png);
          equal(img.width, w);
          equal(img.height, h);
          deepEqual(img.rgba, rgba);
        }
      },
    ),
    { numRuns: 30 },
  );
  // The exact IHDR bytes of a 3 x 2 image.
  const png = encodePng(3, 2, new Uint8Array(24));
  const ihdrCrc = crc32(png.subarray(12, 29));
  deepEqual([...png.subarray(8, 33)], [
    ...[0, 0, 0, 13, 73, 72, 68, 82], // length 13, "IHDR"
    ...[0, 0, 0, 3, 0, 0, 0, 2, 8, 6, 0, 0, 0], // width 3, height 2, depth 8, RGBA, deflate, filter 0, no interlace
    ...[ihdrCrc >>> 24, (ihdrCrc >>> 16) & 255, (ihdrCrc >>> 8) & 255, ihdrCrc & 255],
  ]);
  // IEND is the fixed 12-byte trailer.
  deepEqual([...png.subarray(png.length - 12)], [
    0,
    0,
    0,
    0,
    73,
    69,
    78,
    68,
    0xae,
    0x42,
    0x60,
    0x82,
  ]);
  // The IDAT payload inflates to the filtered scanlines.
  const idat = parseChunks(png)[1].data;
  deepEqual(await inflate(idat), pngScanlines(3, 2, new Uint8Array(24)));
  // Deterministic.
  deepEqual(encodePng(3, 2, new Uint8Array(24)), png);
});

Deno.test("encodePng: bad input throws errors naming the value", () => {
  throws(() => encodePng(0, 1, new Uint8Array(0)), /width = 0 is invalid/);
  throws(() => encodePng(2, 1.5, new Uint8Array(12)), /height = 1\.5 is invalid/);
  throws(
    () => encodePng(2, 2, new Uint8Array(15)),
    /rgba\.length = 15 is invalid: .*\(2 \* 2 \* 4 = 16\)/,
  );
  throws(() => encodePng(1, 1, [1, 2, 3, 4] as unknown as Uint8Array), /rgba must be a Uint8Array/);
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
  const decoded = await decodePng(png);
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

Deno.test("heatmapSvg: well-formed SVG with one cell rect per map entry, escaped titles, deterministic", () => {
  const svg = heatmapSvg(panels, { cell: 10, title: "Fig. 2 <average routing map>" });
  ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
  ok(svg.trimEnd().endsWith("</svg>"));
  equal(svg.match(/<rect class="cell"/g)?.length, 6 + 6 + 4);
  equal(svg.match(/<rect class="colorbar"/g)?.length, 1);
  ok(svg.includes("MoE &lt;class 0&gt;"));
  ok(svg.includes("MoGE &amp; class 0"));
  ok(svg.includes("Fig. 2 &lt;average routing map&gt;"));
  ok(!/<[^>]*<[^/]/.test(svg.replace(/<title>[^<]*<\/title>/g, "")), "no unescaped < inside a tag");
  checkBalanced(svg);
  equal(
    heatmapSvg(panels, { cell: 10, title: "Fig. 2 <average routing map>" }),
    svg,
    "deterministic",
  );
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

Deno.test("barChartSvg and lineChartSvg: one bar per value, one polyline per series, log x, deterministic", () => {
  const bars = barChartSvg([0.3, 0.25, 0.25, 0.2, -0.1], {
    title: "expert load",
    xLabel: "expert",
    yLabel: "load",
  });
  equal(bars.match(/<rect class="bar"/g)?.length, 5);
  checkBalanced(bars);
  ok(bars.includes(">expert load<") && bars.includes(">expert<") && bars.includes(">load<"));
  equal(
    barChartSvg([0.3, 0.25, 0.25, 0.2, -0.1], {
      title: "expert load",
      xLabel: "expert",
      yLabel: "load",
    }),
    bars,
  );
  const series = [
    { name: "MoGE", points: [[8, 1.1], [16, 1.08], [64, 1.05], [256, 1.02]] as [number, number][] },
    { name: "MoE", points: [[8, 1], [256, 1]] as [number, number][] },
  ];
  const lines = lineChartSvg(series, {
    title: "overhead",
    xLabel: "E",
    yLabel: "time ratio",
    logX: true,
  });
  equal(lines.match(/<polyline class="series"/g)?.length, 2);
  equal(lines.match(/<circle /g)?.length, 6);
  for (const t of [8, 16, 32, 64, 128, 256]) ok(lines.includes(`>${t}</text>`), `log tick ${t}`);
  checkBalanced(lines);
  equal(
    lineChartSvg(series, { title: "overhead", xLabel: "E", yLabel: "time ratio", logX: true }),
    lines,
  );
  throws(
    () => lineChartSvg([{ name: "x", points: [[0, 1]] }], { logX: true }),
    /points\[0\]\[0\] = 0 is invalid: .* > 0/,
  );
  throws(() => barChartSvg([]), /values must be a non-empty array/);
  throws(() => barChartSvg([1, NaN]), /values contains NaN at flat index 1/);
});

Deno.test("heatmap: bad panels throw errors naming the value", () => {
  throws(() => heatmapSvg([]), /panels must be a non-empty array/);
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
