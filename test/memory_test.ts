import fc from "fast-check";
import { equal, ok, throws } from "./asserts.ts";
import { useBackend } from "../src/backend.ts";
import {
  backendMemoryLimit,
  checkMemory,
  estimateClassifierMemory,
  estimateMemory,
  formatBytes,
  memoryLimitOf,
  WASM_HEAP_BYTES,
} from "../src/train/memory.ts";
import { DEFAULT_CONFIG, PRESETS } from "../src/train/classifier_config.ts";
import { buildModel } from "../src/train/classifier_task.ts";
import { buildVit, DEFAULT_VIT_CONFIG, VIT_PRESETS } from "../src/train/vit_task.ts";
import { DEFAULT_LM_CONFIG, LM_PRESETS, lmModelConfig } from "../src/train/lm_task.ts";
import { MoeLm } from "../src/models/lm.ts";
import { tf } from "../src/deps.ts";

const GiB = 1024 ** 3;
const WASM = memoryLimitOf("wasm", { systemBytes: 16 * GiB });

/** Trainable scalars of a model's variables (then frees them). */
function countAndDispose(params: Record<string, tf.Variable>): number {
  const n = Object.values(params).reduce((a, v) => a + v.size, 0);
  tf.dispose(Object.values(params));
  return n;
}

Deno.test("estimateClassifierMemory() counts the paper classifier's parameters (hand-computed)", () => {
  // E = 64, d_ff = 64: router 784·64 = 50176; each expert 784·64 + 64 + 64·784 + 784 = 101200,
  // so 64 experts 6476800; head 784·10 + 10 = 7850. P = 50176 + 6476800 + 7850 = 6534826.
  const m = estimateClassifierMemory(DEFAULT_CONFIG);
  equal(m.parameters, 6534826);
  equal(m.parameterBytes, 4 * 6534826);
  equal(m.optimizerBytes, 3 * 4 * 6534826); // gradients, AdamW m and v
  equal(m.totalBytes, m.parameterBytes + m.optimizerBytes + m.activationBytes);
});

Deno.test("the estimated parameter counts equal the built models' (classifier, ViT and LM presets)", async () => {
  await useBackend("cpu");
  for (const cfg of [DEFAULT_CONFIG, { ...DEFAULT_CONFIG, ...PRESETS.tiny }]) {
    const model = buildModel(cfg, { imageSize: 28, numClasses: 10 } as never);
    equal(estimateMemory("classifier", cfg, "cpu").parameters, countAndDispose(model.params));
  }
  for (const name of ["vit-tiny", "vit-smoke"]) {
    const cfg = { ...DEFAULT_VIT_CONFIG, ...VIT_PRESETS[name] };
    equal(
      estimateMemory("vit", cfg, "cpu").parameters,
      countAndDispose(buildVit(cfg).params),
      name,
    );
  }
  for (const name of ["lm-small", "lm-tiny", "lm-paper"]) {
    const cfg = { ...DEFAULT_LM_CONFIG, ...LM_PRESETS[name] };
    const model = new MoeLm(lmModelConfig(cfg, 77), 1);
    equal(estimateMemory("lm", cfg, "cpu", 77).parameters, countAndDispose(model.params), name);
  }
});

Deno.test("checkMemory() refuses --experts 20000 / 100000 / 1e9 / 1e300 on wasm in one line naming need and limit", () => {
  for (const experts of [20000, 100000, 1e9, 1e300]) {
    const t0 = performance.now();
    const need = estimateMemory("classifier", { ...DEFAULT_CONFIG, experts }, "wasm");
    throws(
      () => checkMemory(need, WASM, `--experts ${experts}`),
      (e: unknown) => {
        ok(e instanceof RangeError, String(e));
        ok(!e.message.includes("\n"));
        ok(e.message.startsWith(`--experts ${experts} needs about `), e.message);
        ok(e.message.includes("more than the 4.0 GiB the wasm backend can use"), e.message);
        ok(e.message.includes("tfjs-wasm's 4 GiB heap"), e.message);
        return true;
      },
    );
    ok(performance.now() - t0 < 100);
  }
  // E = 20000 (the 4.4 GB crash): 20000 experts of 101200 parameters plus the
  // router 784·20000 and the head: P = 2.04e9 and 16 bytes each for weights, gradients,
  // m and v: 30.4 GiB before activations.
  const need = estimateMemory("classifier", { ...DEFAULT_CONFIG, experts: 20000 }, "wasm");
  equal(need.parameters, 784 * 20000 + 20000 * 101200 + 7850);
  ok(need.totalBytes > 30 * GiB, formatBytes(need.totalBytes));
});

Deno.test("the presets that run on wasm today fit its limit; vmoe-s (155M parameters) does not", () => {
  for (const cfg of [DEFAULT_CONFIG, { ...DEFAULT_CONFIG, ...PRESETS.paper }]) {
    checkMemory(estimateMemory("classifier", cfg, "wasm"), WASM);
  }
  for (const name of ["vit-tiny", "vit-smoke"]) {
    checkMemory(
      estimateMemory("vit", { ...DEFAULT_VIT_CONFIG, ...VIT_PRESETS[name] }, "wasm"),
      WASM,
    );
  }
  for (const name of ["lm-small", "lm-tiny"]) {
    checkMemory(estimateMemory("lm", { ...DEFAULT_LM_CONFIG, ...LM_PRESETS[name] }, "wasm"), WASM);
  }
  throws(
    () =>
      checkMemory(
        estimateMemory("vit", { ...DEFAULT_VIT_CONFIG, ...VIT_PRESETS["vmoe-s"] }, "wasm"),
        WASM,
      ),
    /1\.55e\+8 parameters.*more than the 4\.0 GiB the wasm backend can use/,
  );
});

Deno.test("memoryLimitOf(): wasm's 4 GiB heap, 3/4 of system memory for cpu, the adapter's buffer size for one webgpu tensor", () => {
  equal(memoryLimitOf("wasm", { systemBytes: 64 * GiB }).totalBytes, WASM_HEAP_BYTES);
  equal(memoryLimitOf("wasm", { systemBytes: 2 * GiB }).totalBytes, 1.5 * GiB);
  equal(memoryLimitOf("cpu", { systemBytes: 16 * GiB }).totalBytes, 12 * GiB);
  const gpu = memoryLimitOf("webgpu", {
    systemBytes: 16 * GiB,
    maxBufferSize: 256 * 1024 ** 2,
    maxStorageBufferBindingSize: 128 * 1024 ** 2,
  });
  equal(gpu.tensorBytes, 128 * 1024 ** 2);
  equal(gpu.totalBytes, 12 * GiB);
  // A batch of 100000 images routed over E = 400 makes a [N, k, E] tensor of 4e7 floats,
  // 160 MB: more than the 128 MiB binding.
  const need = estimateMemory(
    "classifier",
    { ...DEFAULT_CONFIG, experts: 400, batchSize: 100000 },
    "webgpu",
  );
  throws(
    () => checkMemory(need, gpu, "--batch-size 100000"),
    /^RangeError: --batch-size 100000 needs a 152\.6 MiB tensor \(router scores \[N, k, E\]\), more than the 128\.0 MiB one webgpu buffer can hold/,
  );
});

Deno.test("backendMemoryLimit() reads this machine's memory (and the adapter when webgpu)", async () => {
  const cpu = await backendMemoryLimit("cpu");
  ok(cpu.totalBytes > 0 && Number.isFinite(cpu.totalBytes), JSON.stringify(cpu));
  ok((await backendMemoryLimit("wasm")).totalBytes <= WASM_HEAP_BYTES);
});

Deno.test("estimated memory never decreases when E, the width or the batch grows (monotone law)", () => {
  const arb = fc.record({
    experts: fc.integer({ min: 1, max: 5000 }),
    topK: fc.constant(1),
    hiddenDim: fc.integer({ min: 1, max: 512 }),
    batchSize: fc.integer({ min: 1, max: 2000 }),
    capacityFactor: fc.constantFrom(0, 1, 4),
  });
  fc.assert(
    fc.property(
      arb,
      fc.constantFrom("experts", "hiddenDim", "batchSize"),
      fc.integer({ min: 1, max: 1000 }),
      fc.constantFrom("cpu", "webgpu") as fc.Arbitrary<"cpu" | "webgpu">,
      (c, field, more, backend) => {
        const a = estimateMemory("classifier", c, backend).totalBytes;
        const b = estimateMemory("classifier", { ...c, [field]: c[field] + more }, backend)
          .totalBytes;
        ok(b >= a, `${field} +${more}: ${a} -> ${b}`);
      },
    ),
  );
});

Deno.test("formatBytes() uses binary units", () => {
  equal(formatBytes(512), "512 B");
  equal(formatBytes(1536), "1.5 KiB");
  equal(formatBytes(4294901760), "4.0 GiB");
  equal(formatBytes(Infinity), "Infinity B");
});
