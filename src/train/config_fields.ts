/**
 * The field table of a training config: each field's flag, kind, help,
 * allowed values or bounds, the paper's value and whether it may change on
 * `--resume`. One table per task drives validation, the `train` CLI's flags
 * and its `--help`; the fields every task shares are declared here once.
 *
 * @module
 */

import type { BackendRequest } from "../backend.ts";
import { checkInteger, checkNumber } from "../validate.ts";

/** MoE (the baseline) or MoGE (MoE + λ·R(z), eq. 9). */
export type Mode = "moe" | "moge";

/** A bound that may depend on other fields (e.g. k <= E). */
export type Bound<C> = number | ((c: C) => number);

/** One field of a config. */
export interface FieldSpec<C> {
  /** The config key. */
  field: keyof C & string;
  /** The command-line flag, without `--`. */
  flag: string;
  /** "int" and "number" are parsed as numbers; "choice" must be one of `choices`; "string" is free text. */
  kind: "int" | "number" | "choice" | "string";
  /** One line for `--help`. */
  help: string;
  /** The allowed values of a "choice" field. */
  choices?: readonly string[];
  /** Smallest allowed value (numbers). */
  min?: Bound<C>;
  /** Largest allowed value (numbers). */
  max?: Bound<C>;
  /** `min` itself is not allowed. */
  exclusiveMin?: boolean;
  /** The paper's value, shown in `--help`. */
  paper?: string;
  /** May differ from the saved config on `--resume` (e.g. more epochs). */
  mutable?: boolean;
}

/** The fields every training config has (MoGE's own are in `moge_settings.ts`). */
export interface CommonSettings {
  /** "moe": no R(z) in the loss (still measured); "moge": loss += λ·mean R(z). */
  mode: Mode;
  /** E, experts per MoE layer. */
  experts: number;
  /** k, experts per token. */
  topK: number;
  /** C_f, the expert capacity factor (0: unlimited). */
  capacityFactor: number;
  /** Weight of each MoE layer's load-balancing loss. */
  loadBalanceWeight: number;
  /** Examples (images or windows) per batch. */
  batchSize: number;
  /** AdamW peak learning rate. */
  learningRate: number;
  /** AdamW decoupled weight decay. */
  weightDecay: number;
  /** Seeds weights, data order, augmentation, dropout and routing noise. */
  seed: number;
  /** The tfjs backend ("auto": webgpu on a hardware GPU, else wasm). */
  backend: BackendRequest;
}

/** The backends a run can ask for. */
export const BACKENDS = ["auto", "webgpu", "wasm", "cpu"] as const;

/**
 * The table rows of {@linkcode CommonSettings}; `help` overrides a row's text
 * for one task (e.g. "windows per batch").
 *
 * @example
 * ```ts
 * import { commonFields } from "./config_fields.ts";
 * commonFields({ batchSize: "images per batch" }).find((f) => f.flag === "batch-size")?.help;
 * // "images per batch"
 * ```
 */
export function commonFields<C extends CommonSettings>(
  help: Partial<Record<keyof CommonSettings, string>> = {},
): FieldSpec<C>[] {
  const rows: FieldSpec<CommonSettings>[] = [
    { field: "mode", flag: "mode", kind: "choice", choices: ["moe", "moge"], help: "moe | moge" },
    {
      field: "experts",
      flag: "experts",
      kind: "int",
      min: 1,
      help: "E, experts per MoE layer (MoGE needs a layout with both sides >= h)",
    },
    {
      field: "topK",
      flag: "top-k",
      kind: "int",
      min: 1,
      max: (c) => c.experts,
      help: "k, experts per token",
    },
    {
      field: "capacityFactor",
      flag: "capacity-factor",
      kind: "number",
      min: 0,
      help: "C_f, expert capacity factor (0: unlimited)",
    },
    {
      field: "loadBalanceWeight",
      flag: "load-balance",
      kind: "number",
      min: 0,
      help: "load-balancing loss weight",
    },
    {
      field: "batchSize",
      flag: "batch-size",
      kind: "int",
      min: 1,
      help: "examples per batch (images or windows)",
    },
    {
      field: "learningRate",
      flag: "lr",
      kind: "number",
      min: 0,
      exclusiveMin: true,
      help: "AdamW peak learning rate (linear warm-up, then the decay)",
    },
    {
      field: "weightDecay",
      flag: "weight-decay",
      kind: "number",
      min: 0,
      help: "AdamW decoupled weight decay",
    },
    {
      field: "seed",
      flag: "seed",
      kind: "int",
      min: 0,
      max: 2 ** 31 - 1,
      help: "seed for weights, data order, augmentation, dropout and routing noise",
    },
    {
      field: "backend",
      flag: "backend",
      kind: "choice",
      choices: BACKENDS,
      mutable: true,
      help: "auto | webgpu | wasm | cpu (auto: webgpu on a hardware GPU, else wasm)",
    },
  ];
  return rows.map((r) => ({ ...r, help: help[r.field] ?? r.help })) as unknown as FieldSpec<C>[];
}

/** The fields of an epoch-based run over a subset of the training images. */
export interface EpochSettings {
  /** Training epochs. */
  epochs: number;
  /** Length of the linear warm-up in epochs (then cosine decay to 0). */
  warmupEpochs: number;
  /** Train on a fixed class-mixed subset of n images (0: all). */
  trainLimit: number;
}

/**
 * The table rows of {@linkcode EpochSettings}, with the paper's values.
 *
 * @example
 * ```ts
 * import { epochFields } from "./config_fields.ts";
 * epochFields().map((f) => f.flag); // ["epochs", "warmup-epochs", "train-limit"]
 * ```
 */
export function epochFields<C extends EpochSettings>(
  paper: Partial<Record<keyof EpochSettings, string>> = {},
): FieldSpec<C>[] {
  const rows: FieldSpec<EpochSettings>[] = [
    {
      field: "epochs",
      flag: "epochs",
      kind: "int",
      min: 1,
      mutable: true,
      help: "training epochs",
    },
    {
      field: "warmupEpochs",
      flag: "warmup-epochs",
      kind: "number",
      min: 0,
      max: (c) => c.epochs,
      help: "linear warm-up length, in epochs",
    },
    {
      field: "trainLimit",
      flag: "train-limit",
      kind: "int",
      min: 0,
      help: "train on a fixed class-mixed subset of n images (0: all)",
    },
  ];
  return rows.map((r) => ({ ...r, paper: paper[r.field] })) as unknown as FieldSpec<C>[];
}

const boundOf = <C>(b: Bound<C> | undefined, c: C, dflt: number): number =>
  b === undefined ? dflt : typeof b === "function" ? b(c) : b;

/**
 * Checks every field of `c` against its table row, throwing a `RangeError`
 * whose message starts with the field name (`topK = 65 is invalid: ...`).
 * Choice fields are checked first, then the rest in table order.
 *
 * @example
 * ```ts
 * import { commonFields, validateFields } from "./config_fields.ts";
 * const c = {
 *   mode: "moe" as const, experts: 4, topK: 1, capacityFactor: 1, loadBalanceWeight: 0,
 *   batchSize: 8, learningRate: 1e-3, weightDecay: 0, seed: 0, backend: "cpu" as const,
 * };
 * validateFields(commonFields(), c); // ok
 * ```
 */
export function validateFields<C>(fields: readonly FieldSpec<C>[], c: C): void {
  const rec = c as unknown as Record<string, unknown>;
  for (const f of fields) {
    if (f.kind !== "choice") continue;
    const v = rec[f.field];
    if (!f.choices!.includes(v as string)) {
      throw new RangeError(
        `${f.field} = "${v}" is invalid: allowed are ${f.choices!.join(", ")}`,
      );
    }
  }
  for (const f of fields) {
    const v = rec[f.field] as number;
    const min = boundOf(f.min, c, -Infinity);
    const max = boundOf(f.max, c, Infinity);
    if (f.kind === "int") checkInteger(f.field, v, min, max);
    else if (f.kind === "number") {
      checkNumber(f.field, v, { min, max, exclusiveMin: f.exclusiveMin });
    } else if (f.kind === "string" && typeof v !== "string") {
      throw new RangeError(`${f.field} = ${String(v)} is invalid: ${f.field} must be a string`);
    }
  }
}

/**
 * The fields whose values differ between two configs.
 *
 * @example
 * ```ts
 * import { changedFields } from "./config_fields.ts";
 * changedFields({ a: 1, b: 2 }, { a: 1, b: 3 }); // ["b"]
 * ```
 */
export function changedFields<C extends object>(a: C, b: C): (keyof C & string)[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]) as Set<keyof C & string>;
  return [...keys].filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
}
