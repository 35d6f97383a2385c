import fc from "fast-check";
import { deepEqual, equal, ok, throws } from "./asserts.ts";
import { type FlagSpec, numberFlag, parseFlags, UsageError } from "../src/cli/args.ts";
import {
  DEFAULT_CONFIG,
  type TrainConfig,
  validateConfig,
} from "../src/train/classifier_config.ts";
import {
  DEFAULT_LM_CONFIG,
  type LmTrainConfig,
  validateLmTrainConfig,
} from "../src/train/lm_task.ts";
import {
  DEFAULT_VIT_CONFIG,
  validateVitTrainConfig,
  type VitTrainConfig,
} from "../src/train/vit_task.ts";
import { topographicLayout } from "../src/moge/layout.ts";
import { lastEvenBlocks } from "../src/models/vit.ts";
import { checkMemory, estimateMemory, memoryLimitOf } from "../src/train/memory.ts";

/** The wasm backend's limit on a 16 GiB machine. */
const WASM = memoryLimitOf("wasm", { systemBytes: 16 * 1024 ** 3 });

const SPEC: Record<string, FlagSpec> = {
  experts: { type: "string", short: "e" },
  lambda: { type: "string" },
  out: { type: "string" },
  quiet: { type: "boolean" },
  help: { type: "boolean", short: "h" },
};

/** The error `f` throws (fails when it returns). */
function caught(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a throw");
}

Deno.test("parseFlags(): an unknown flag is named, with the nearest known flag when one is close", () => {
  // "--expert" is one deletion from "experts"; "--lamda" one insertion from "lambda".
  equal(
    caught(() => parseFlags(["--expert", "4"], SPEC)).message,
    "unknown flag --expert (did you mean --experts?)",
  );
  equal(
    caught(() => parseFlags(["--lamda=1"], SPEC)).message,
    "unknown flag --lamda (did you mean --lambda?)",
  );
  // Nothing within two edits: no guess.
  equal(caught(() => parseFlags(["--verbose"], SPEC)).message, "unknown flag --verbose");
  ok(caught(() => parseFlags(["--verbose"], SPEC)) instanceof UsageError);
});

Deno.test("parseFlags() reads a negative number after a value flag as its value (--experts -4)", () => {
  deepEqual({ ...parseFlags(["--experts", "-4"], SPEC) }, { experts: "-4" });
  deepEqual({ ...parseFlags(["-e", "-4", "--quiet"], SPEC) }, { experts: "-4", quiet: true });
  deepEqual({ ...parseFlags(["--lambda", "-1e-3"], SPEC) }, { lambda: "-1e-3" });
  deepEqual({ ...parseFlags(["--lambda", "-.5"], SPEC) }, { lambda: "-.5" });
  deepEqual({ ...parseFlags(["--lambda", "-Infinity"], SPEC) }, { lambda: "-Infinity" });
  deepEqual({ ...parseFlags(["--experts=-4"], SPEC) }, { experts: "-4" });
  // A negative number after a boolean flag is still an unexpected argument.
  throws(() => parseFlags(["--quiet", "-4"], SPEC), UsageError);
});

Deno.test("parseFlags() gives one line for a flag value that is another flag or missing", () => {
  throws(
    () => parseFlags(["--out", "--quiet"], SPEC),
    (e: unknown) =>
      e instanceof UsageError &&
      e.message ===
        '--out needs a value, got the flag "--quiet" (a value that starts with "-" is written --out=--quiet)',
  );
  throws(
    () => parseFlags(["-e", "-h"], SPEC),
    /^UsageError: --experts needs a value, got the flag "-h"/,
  );
  throws(() => parseFlags(["--experts"], SPEC), /^UsageError: --experts needs a value$/);
  throws(() => parseFlags(["-e"], SPEC), /^UsageError: --experts needs a value$/);
  throws(() => parseFlags(["x\ny"], SPEC), /^UsageError: unexpected argument "x\\ny"/);
});

Deno.test("numberFlag() refuses what is not a finite number, naming the flag", () => {
  equal(numberFlag("lambda", "-1"), -1);
  equal(numberFlag("experts", "1e300"), 1e300);
  throws(() => numberFlag("lr", ""), /^UsageError: --lr "" is not a number$/);
  throws(() => numberFlag("lr", "NaN"), /^UsageError: --lr "NaN" is not a number$/);
  throws(() => numberFlag("lr", "1e999"), /^UsageError: --lr "1e999" is not a finite number$/);
  throws(() => numberFlag("lr", "x".repeat(1000)), /^UsageError: --lr "x{40}…" is not a number$/);
});

/** Every way a number can be written on a command line, of any magnitude and sign. */
const numberText = fc.oneof(
  fc.double().map(String), // NaN, ±Infinity, -0, subnormals, 1e308
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((x) => x.toExponential()),
  fc.integer().map(String),
  fc.bigInt({ min: -(10n ** 400n), max: 10n ** 400n }).map(String), // overflows to ±Infinity
  fc.constantFrom("", " ", "-", "--", "-e", "1e", "0x10", "1_000", "٣", "1,5", "+7", "-0", ".5"),
  fc.string(), // anything else
);

Deno.test("fuzz: a value flag's value round-trips through parseFlags or is refused in one line naming the flag", () => {
  // Law: parseFlags(["--experts", s]) returns s unchanged, or throws a UsageError whose
  // message is one line naming --experts (values that start with "-" and are no number).
  fc.assert(
    fc.property(numberText, (s) => {
      let flags;
      try {
        flags = parseFlags(["--experts", s], SPEC);
      } catch (e) {
        ok(e instanceof UsageError, `${JSON.stringify(s)}: ${e}`);
        ok(!e.message.includes("\n"), `two lines for ${JSON.stringify(s)}: ${e.message}`);
        ok(e.message.includes("--experts"), e.message);
        ok(s.startsWith("-"), `refused ${JSON.stringify(s)}`);
        return;
      }
      equal(flags.experts, s);
    }),
    { numRuns: 2000 },
  );
});

/** The numeric fields of a config (the flags a CLI turns into numbers). */
function numericFields(cfg: object): string[] {
  return Object.entries(cfg).filter(([, v]) => typeof v === "number").map(([k]) => k);
}

/**
 * Law: for each model, any numeric field set from any text (parsed as the
 * CLIs do: parseFlags then numberFlag) ends in a config the model's validator
 * accepts, holding exactly that number, or in a UsageError / RangeError whose
 * message is one line naming the field, within a second, never a hang.
 */
function fuzzModel<C extends object>(
  name: string,
  defaults: C,
  validate: (c: C) => void,
  usable: (c: C) => void,
): void {
  const fields = numericFields(defaults);
  ok(fields.length >= 10, `${name}: ${fields.length} numeric fields`);
  fc.assert(
    fc.property(fc.constantFrom(...fields), numberText, fc.boolean(), (field, text, moge) => {
      const t0 = performance.now();
      const cfg = { ...defaults, mode: moge ? "moge" : "moe" } as Record<string, unknown>;
      try {
        const flags = parseFlags([`--${field}`, text], { [field]: { type: "string" } });
        const v = numberFlag(field, flags[field] as string);
        cfg[field] = v;
        validate(cfg as C);
        usable(cfg as C);
        equal(cfg[field], Number(text));
      } catch (e) {
        const err = e as Error;
        ok(
          e instanceof UsageError || e instanceof RangeError,
          `${name} ${field} ${JSON.stringify(text)}: ${err.name}: ${err.message}`,
        );
        ok(!err.message.includes("\n"), `two lines: ${err.message}`);
        ok(err.message.length < 400, `${err.message.length} characters: ${err.message}`);
        ok(!/ at .*\.ts:\d+/.test(err.message), `stack in message: ${err.message}`);
      }
      const ms = performance.now() - t0;
      ok(ms < 1000, `${name} --${field} ${JSON.stringify(text)} took ${ms.toFixed(0)} ms`);
    }),
    { numRuns: 1500 },
  );
}

Deno.test("fuzz: classifier flags give a valid config or one line naming the flag (never a hang)", () => {
  fuzzModel<TrainConfig>("classifier", DEFAULT_CONFIG, validateConfig, (c) => {
    if (c.mode === "moge") topographicLayout(c.experts, c.filterSize);
    checkMemory(estimateMemory("classifier", c, "wasm"), WASM);
  });
});

Deno.test("fuzz: ViT flags give a valid config or one line naming the flag (never a hang)", () => {
  fuzzModel<VitTrainConfig>("vit", DEFAULT_VIT_CONFIG, validateVitTrainConfig, (c) => {
    checkMemory(estimateMemory("vit", c, "wasm"), WASM);
  });
});

Deno.test("fuzz: LM flags give a valid config or one line naming the flag (never a hang)", () => {
  fuzzModel<LmTrainConfig>("lm", DEFAULT_LM_CONFIG, validateLmTrainConfig, (c) => {
    checkMemory(estimateMemory("lm", c, "wasm"), WASM);
  });
});

Deno.test("--experts 1e300 is refused in well under a second by each model's checks (it used to hang)", () => {
  for (const mode of ["moe", "moge"] as const) {
    const t0 = performance.now();
    const errs = [
      caught(() => {
        const c = { ...DEFAULT_CONFIG, mode, experts: 1e300 };
        validateConfig(c);
        if (mode === "moge") topographicLayout(c.experts, c.filterSize);
        checkMemory(estimateMemory("classifier", c, "wasm"), WASM);
      }),
      caught(() => {
        const c = { ...DEFAULT_LM_CONFIG, mode, experts: 1e300 };
        validateLmTrainConfig(c);
        checkMemory(estimateMemory("lm", c, "wasm"), WASM);
      }),
      caught(() => {
        const c = { ...DEFAULT_VIT_CONFIG, mode, experts: 1e300 };
        validateVitTrainConfig(c);
        checkMemory(estimateMemory("vit", c, "wasm"), WASM);
      }),
    ];
    for (const e of errs) {
      ok(e instanceof RangeError, String(e));
      ok(
        mode === "moge"
          ? /1e\+300/.test(e.message)
          : /needs about .* more than the 4\.0 GiB/.test(e.message),
        e.message,
      );
    }
    ok(performance.now() - t0 < 1000);
  }
});

Deno.test("lastEvenBlocks(depth, n) is the last n of 1, 3, 5, ... < depth, without building all of them (--depth 1e9 was slow)", () => {
  // Law: equal to the brute-force list range(1, depth, 2)[-n:] for small depths.
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 0, max: 300 }), (depth, n) => {
      const all: number[] = [];
      for (let i = 1; i < depth; i += 2) all.push(i);
      deepEqual(lastEvenBlocks(depth, n), n === 0 ? [] : all.slice(-n));
    }),
  );
  const t0 = performance.now();
  deepEqual(lastEvenBlocks(1e9, 2), [999999997, 999999999]);
  const c = { ...DEFAULT_VIT_CONFIG, depth: 1e9 };
  validateVitTrainConfig(c);
  throws(() => checkMemory(estimateMemory("vit", c, "wasm"), WASM), /needs about/);
  ok(performance.now() - t0 < 1000);
});
