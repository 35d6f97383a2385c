/**
 * The figures a sweep report reads from each run, per model: their labels,
 * which direction is better, the final value of a run and the value on one
 * metrics.jsonl line (for curves).
 *
 * @module
 */

import type { Json, ModelKind, RunRecord } from "./sweep_runs.ts";
import { borderShare } from "./sweep_load_maps.ts";

/** A figure read from a run. */
export interface MetricDef {
  /** Key in the report, e.g. "testAcc". */
  key: string;
  /** Label, e.g. "test accuracy (%)". */
  label: string;
  /** Which direction is better ("neither" for a descriptive figure: the paired table counts higher). */
  better: "higher" | "lower" | "neither";
  /** The final value of a run (null when the run lacks it). */
  final: (run: RunRecord) => number | null;
  /** The value on one metrics.jsonl line (for curves), if it has one. */
  curve?: (line: Json) => number | null;
}

/**
 * A value if it is a finite number, else null (a field a run lacks, or one
 * written as null).
 *
 * @example
 * ```ts
 * import { finiteOrNull } from "./sweep_metrics.ts";
 * finiteOrNull(0.5); // 0.5
 * finiteOrNull("0.5"); // null
 * ```
 */
export function finiteOrNull(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

/** The finite numbers of an array field (none when it is not an array). */
function finiteValues(xs: unknown): number[] {
  if (!Array.isArray(xs)) return [];
  return xs.map(finiteOrNull).filter((x): x is number => x !== null);
}

function meanOf(xs: unknown): number | null {
  const v = finiteValues(xs);
  return v.length ? v.reduce((s, x) => s + x, 0) / v.length : null;
}

function sumOf(xs: unknown): number | null {
  const v = finiteValues(xs);
  return v.length ? v.reduce((s, x) => s + x, 0) : null;
}

const num = finiteOrNull;

function last(run: RunRecord): Json {
  return run.metrics.at(-1) ?? {};
}

function pct(v: number | null): number | null {
  return v === null ? null : 100 * v;
}

function layers(line: Json, field: string): Json[] {
  const v = line[field];
  return Array.isArray(v) ? v as Json[] : [];
}

const deadVit = (l: Json) => sumOf(layers(l, "trainMoe").map((m) => m.deadExperts));
const dropVit = (l: Json) => pct(meanOf(layers(l, "trainMoe").map((m) => m.dropRate)));

/** Test accuracy from summary.json and metrics.jsonl (classifier and ViT). */
const TEST_ACC: MetricDef = {
  key: "testAcc",
  label: "test accuracy (%)",
  better: "higher",
  final: (r) => pct(num(r.summary.testAcc)),
  curve: (l) => pct(num(l.testAcc)),
};

/** Drop rate of the last metrics.jsonl line (classifier and LM). */
const DROP_RATE: MetricDef = {
  key: "dropRate",
  label: "dropped (%)",
  better: "lower",
  final: (r) => pct(num(last(r).dropRate)),
  curve: (l) => pct(num(l.dropRate)),
};

/** Training seconds from summary.json (every model). */
const TRAIN_SECONDS: MetricDef = {
  key: "trainSeconds",
  label: "train time (s)",
  better: "lower",
  final: (r) => num(r.summary.trainSeconds),
};

/**
 * The figures of each model: test accuracy (perplexity for the LM), mean
 * R(z) on the test set, dead experts and drop rate of the last epoch (of the
 * last evaluation for the LM; summed over MoE layers for the ViT and LM),
 * training seconds. The first is the one MoE and MoGE are compared on.
 *
 * @example
 * ```ts
 * import { METRICS } from "./sweep_metrics.ts";
 * METRICS.lm[0].key; // "testPpl"
 * ```
 */
export const METRICS: Record<ModelKind, MetricDef[]> = {
  classifier: [
    TEST_ACC,
    {
      key: "testReg",
      label: "mean R(z), test",
      better: "lower",
      final: (r) => num(r.summary.testReg),
      curve: (l) => num(l.testReg),
    },
    {
      key: "deadExperts",
      label: "dead experts",
      better: "lower",
      final: (r) => num(last(r).deadExperts),
      curve: (l) => num(l.deadExperts),
    },
    DROP_RATE,
    {
      key: "borderShare",
      label: "test images on the map's border (%)",
      better: "neither",
      final: (r) => pct(borderShare(last(r).load)),
      curve: (l) => pct(borderShare(l.load)),
    },
    TRAIN_SECONDS,
  ],
  vit: [
    TEST_ACC,
    {
      key: "testReg",
      label: "mean R(z), test (mean over MoE layers)",
      better: "lower",
      final: (r) => meanOf(layers(r.summary, "testMoe").map((m) => m.reg)),
      curve: (l) => meanOf(layers(l, "testMoe").map((m) => m.reg)),
    },
    {
      key: "deadExperts",
      label: "dead experts (all MoE layers)",
      better: "lower",
      final: (r) => deadVit(last(r)),
      curve: deadVit,
    },
    {
      key: "dropRate",
      label: "dropped (%, mean over MoE layers)",
      better: "lower",
      final: (r) => dropVit(last(r)),
      curve: dropVit,
    },
    TRAIN_SECONDS,
  ],
  lm: [
    {
      key: "testPpl",
      label: "test perplexity",
      better: "lower",
      final: (r) => num(r.summary.testPpl),
    },
    {
      key: "validPpl",
      label: "validation perplexity",
      better: "lower",
      final: (r) => num(r.summary.validPpl),
      curve: (l) => num(l.validPpl),
    },
    {
      key: "testReg",
      label: "mean R(z), test (mean over layers)",
      better: "lower",
      final: (r) => meanOf(r.summary.testReg),
      curve: (l) => meanOf(l.validReg),
    },
    {
      key: "deadExperts",
      label: "dead experts (all layers)",
      better: "lower",
      final: (r) => sumOf(last(r).deadExperts),
      curve: (l) => sumOf(l.deadExperts),
    },
    DROP_RATE,
    TRAIN_SECONDS,
  ],
};

/** The x of a curve: epochs, or steps for the LM. */
export const CURVE_X: Record<ModelKind, "epoch" | "step"> = {
  classifier: "epoch",
  vit: "epoch",
  lm: "step",
};
