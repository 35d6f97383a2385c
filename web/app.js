// The page of web/index.html: trains the tiny MoE classifier twice (MoE and
// MoGE, same seed and data) in the tab with dist/moge.js, alternating steps,
// and redraws each model's average routing map per class as it trains.
// State for tests: window.mogeState.
import * as moge from "./moge.js";

const { tf } = moge;
const params = new URLSearchParams(location.search);
const state = {
  backend: null,
  steps: { moe: 0, moge: 0 },
  losses: { moe: [], moge: [] },
  testAcc: { moe: null, moge: null },
  tensors: [],
  done: false,
  error: null,
};
globalThis.mogeState = state;
const status = document.getElementById("status");

// matplotlib viridis, 9 entries (CC0), interpolated.
const VIRIDIS = [
  [68, 1, 84],
  [71, 44, 122],
  [59, 81, 139],
  [44, 113, 142],
  [33, 144, 141],
  [39, 173, 129],
  [92, 200, 99],
  [170, 220, 50],
  [253, 231, 37],
];
function viridis(t) {
  const u = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const k = Math.min(VIRIDIS.length - 2, Math.floor(u)), f = u - k;
  return VIRIDIS[k].map((v, i) => Math.round(v + f * (VIRIDIS[k + 1][i] - v)));
}

function drawMaps(canvas, maps, rows, cols, names) {
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const per = 5, panel = Math.floor((canvas.width - 10) / per) - 8;
  const cell = Math.floor(Math.min(panel / cols, 50 / rows));
  let lo = Infinity, hi = -Infinity;
  for (const m of maps) for (const v of m) (lo = Math.min(lo, v)), (hi = Math.max(hi, v));
  maps.forEach((m, c) => {
    const x0 = 5 + (c % per) * (panel + 8), y0 = 14 + Math.floor(c / per) * (rows * cell + 22);
    ctx.fillStyle = "#333";
    ctx.font = "11px sans-serif";
    ctx.fillText(names[c], x0, y0 - 3);
    for (let r = 0; r < rows; r++) {
      for (let q = 0; q < cols; q++) {
        const [R, G, B] = viridis(hi > lo ? (m[r * cols + q] - lo) / (hi - lo) : 0.5);
        ctx.fillStyle = `rgb(${R},${G},${B})`;
        ctx.fillRect(x0 + q * cell, y0 + r * cell, cell, cell);
      }
    }
  });
}

function drawLoss() {
  const canvas = document.getElementById("loss");
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 50, B = 24;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, W, H);
  const all = [...state.losses.moe, ...state.losses.moge];
  if (all.length === 0) return;
  const hi = Math.max(...all), n = Math.max(state.losses.moe.length, state.losses.moge.length, 2);
  ctx.strokeStyle = "#999";
  ctx.strokeRect(L, 6, W - L - 10, H - B - 6);
  ctx.fillStyle = "#333";
  ctx.font = "11px sans-serif";
  ctx.fillText(hi.toFixed(2), 4, 14);
  ctx.fillText("0", 36, H - B);
  ctx.fillText(`step ${n}`, W - 60, H - 6);
  for (const [kind, color] of [["moe", "#1f77b4"], ["moge", "#ff7f0e"]]) {
    const ys = state.losses[kind];
    ctx.strokeStyle = color;
    ctx.beginPath();
    ys.forEach((y, i) => {
      const px = L + (i / (n - 1)) * (W - L - 10), py = 6 + (1 - y / hi) * (H - B - 6);
      i ? ctx.lineTo(px, py) : ctx.moveTo(px, py);
    });
    ctx.stroke();
    ctx.fillStyle = color;
    ctx.fillText(kind === "moe" ? "MoE" : "MoGE", W - 60, kind === "moe" ? 22 : 36);
  }
}

async function main() {
  moge.setWasmPaths(new URL("./", location.href).href);
  const request = params.get("backend") ?? "auto";
  state.backend = await moge.useBackend(request);
  const bytes = new Uint8Array(await (await fetch("./fashion-mnist-small.bin")).arrayBuffer());
  const data = moge.decodeDataset(bytes, "fashion-mnist-small.bin");
  const names = moge.CLASS_NAMES["fashion-mnist"];
  const epochs = Number(params.get("epochs") ?? 20);
  const base = { ...moge.DEFAULT_CONFIG, ...moge.PRESETS.tiny, epochs, seed: 1 };
  const nTrain = data.trainLabels.length;
  const stepsPerEpoch = Math.ceil(nTrain / base.batchSize);
  const totalSteps = stepsPerEpoch * epochs;
  const sigmaAt = moge.sigmaSchedule({
    sigmaMax: base.sigmaMax,
    sigmaMin: base.sigmaMin,
    gamma: base.gamma,
    totalSteps,
  });
  const lrAt = moge.cosineWithWarmup({
    baseLr: base.learningRate,
    warmupSteps: Math.round(base.warmupEpochs * stepsPerEpoch),
    totalSteps,
  });
  const layout = moge.topographicLayout(base.experts, 1);
  const models = {};
  for (const mode of ["moe", "moge"]) {
    const cfg = { ...base, mode };
    models[mode] = {
      cfg,
      model: moge.buildModel(cfg, data),
      opt: new moge.AdamW({
        learningRate: cfg.learningRate,
        weightDecay: cfg.weightDecay,
        excludeFromWeightDecay: (name) => /\.b\d?(\.\d+)?$/.test(name),
      }),
    };
  }
  // 200 test images for the maps (the test split is stored by class: take a shuffle).
  const order = Array.from(new moge.Rng(7).permutation(data.testLabels.length)).slice(0, 200);
  const probe = moge.makeBatch(data.testImages, data.testLabels, order);
  const probeLabels = order.map((i) => data.testLabels[i]);
  const redraw = async (kind) => {
    const { model, cfg } = models[kind];
    const z = tf.tidy(() => tf.softmax(model.moe.logits(probe.x)));
    const zs = await z.data();
    z.dispose();
    const maps = moge.classMeanMaps(zs, probeLabels, cfg.experts, data.numClasses);
    drawMaps(document.querySelector(`#${kind} canvas`), maps, layout.rows, layout.cols, names);
  };
  const t0 = performance.now();
  for (let step = 0; step < totalSteps; step++) {
    const epoch = Math.floor(step / stepsPerEpoch), s = step % stepsPerEpoch;
    const perm = new moge.Rng(1000 + epoch).permutation(nTrain);
    const idx = Array.from(perm.subarray(s * base.batchSize, (s + 1) * base.batchSize));
    for (const kind of ["moe", "moge"]) {
      const { model, opt, cfg } = models[kind];
      const { x, y } = moge.makeBatch(data.trainImages, data.trainLabels, idx);
      const reg = kind === "moge"
        ? {
          lambda: cfg.lambda,
          sigma: sigmaAt(step),
          filterSize: cfg.filterSize,
          filter: cfg.filter,
        }
        : null;
      const { stats, routing } = moge.trainStep(model, opt, x, y, {
        noiseSeed: 1 + step,
        reg,
        lr: lrAt(step),
      });
      const [loss, , , r, correct] = await stats.data();
      tf.dispose([stats, x, y]);
      routing.counts?.dispose(); // webgpu: the step's routing counts (unused here)
      state.losses[kind].push(loss);
      state.steps[kind] = step + 1;
      const el = document.querySelector(`#${kind} .stats`);
      el.textContent =
        `step ${step + 1}/${totalSteps} · loss ${loss.toFixed(3)} · batch acc ${
          (correct / idx.length * 100).toFixed(0)
        }%` + (kind === "moge" ? ` · R(z) ${r.toFixed(3)} · σ ${sigmaAt(step).toFixed(2)}` : "");
    }
    if (step % 2 === 1 || step === totalSteps - 1) {
      await redraw("moe");
      await redraw("moge");
      drawLoss();
    }
    state.tensors.push(tf.memory().numTensors);
    const sec = (performance.now() - t0) / 1000;
    status.textContent = `backend ${state.backend.backend}` +
      (state.backend.adapter ? ` (adapter: ${state.backend.adapter.description || "?"})` : "") +
      ` · epoch ${epoch + 1}/${epochs} · ${(2 * (step + 1) / sec).toFixed(1)} steps/s · ` +
      `tensors ${tf.memory().numTensors}`;
    await new Promise((r) => setTimeout(r, 0)); // let the page paint
  }
  state.done = true;
  status.textContent += " · done";
}

main().catch((e) => {
  state.error = String(e?.stack ?? e);
  status.textContent = `error: ${e?.message ?? e}`;
  console.error(e);
});
