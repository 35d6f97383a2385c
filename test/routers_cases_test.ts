// The hand-worked router cases of docs/routers.md (EC-1, EC-2, SB-1, SSR-1,
// XM-1, GT-1, Z-1) through the real routers, on every available backend.
// Each expected value carries its derivation; the values are rounded to 4
// decimals, so they are compared at atol 1e-4. SSR-1 and GT-1 test this
// project's proposed (unverified) formulas.

import { tf } from "../src/deps.ts";
import { useBackend } from "../src/backend.ts";
import type { Tensor2D } from "../src/types.ts";
import {
  combineMatrix,
  createRouter,
  disposeDecision,
  expertChoiceCapacity,
  graphRouter,
  mixProbabilities,
  route,
  type Router,
  type RouterDecision,
  type RouterInput,
  type RouterOutput,
  similarityGraph,
  sinkhornPlan,
  statsOf,
  zLoss,
} from "../src/moe/routers/mod.ts";
import { disposeRouted, MoeLayer } from "../src/moe/moe_layer.ts";
import { assertAllClose, assertClose, deepEqual, equal, ok, throws } from "./asserts.ts";
import { availableBackends } from "./backends.ts";

const TOL = { atol: 1e-4, rtol: 0 };

/** Sets the router parameter `moe.router.${name}` to `values`. */
function setParam(router: Router, name: string, values: number[][] | number[]): void {
  const v = router.params[`moe.router.${name}`];
  ok(v, `router ${router.name} has no parameter ${name}`);
  const t = tf.tensor(values.flat(), v.shape);
  v.assign(t);
  t.dispose();
}

/** Routes and runs the forward pass; returns host copies and disposes the tensors. */
async function run(
  router: Router,
  input: RouterInput,
  training: boolean,
  extra: { step?: number } = {},
): Promise<
  {
    d: RouterDecision;
    gates: Float32Array;
    z: Float32Array;
    logits: Float32Array;
    aux: number;
    combine: Float64Array;
  }
> {
  const d = await route(router, input, { training, ...extra });
  const out: RouterOutput = router.forward(input, d);
  const [gates, z, logits, aux] = await Promise.all([
    out.gates.data(),
    out.z.data(),
    out.logits.data(),
    out.auxLoss.data(),
  ]) as Float32Array[];
  tf.dispose([out.gates, out.z, out.logits, out.auxLoss]);
  disposeDecision(d);
  return { d, gates, z, logits, aux: aux[0], combine: combineMatrix(d, gates) };
}

const eye = (n: number) =>
  Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => +(i === j)));

for (const backend of await availableBackends()) {
  Deno.test(`[${backend}] EC-1: experts choose their top-C tokens; gates are S, not renormalized`, async () => {
    await useBackend(backend);
    const before = tf.memory().numTensors;
    // W_g = I₃, bias 0, so L = X. S = softmax rows:
    //   t0 [2,0,0]: e²/(e²+2) = .7870, 1/(e²+2) = .1065
    //   t2 [1,1,0]: e/(2e+1) = .4223, 1/(2e+1) = .1554
    //   t3 [0,0,.5]: 1/(2+e^.5) = .2741, e^.5/(2+e^.5) = .4519
    const X = tf.tensor2d([[2, 0, 0], [0, 2, 0], [1, 1, 0], [0, 0, 0.5]]);
    const S = [
      [.7870, .1065, .1065],
      [.1065, .7870, .1065],
      [.4223, .4223, .1554],
      [.2741, .2741, .4519],
    ];
    const make = (capacityFactor: number, minCapacity: number) => {
      const r = createRouter("expert-choice", {
        inputDim: 3,
        numExperts: 3,
        topK: 1,
        capacityFactor,
        minCapacity,
      });
      setParam(r, "w", eye(3));
      return r;
    };
    // cf 1.5, C_min 1: C = round(1.5·4/3) = 2. e0 column [.787,.1065,.4223,.2741] -> t0, t2;
    // e1 -> t1, t2; e2 column [.1065,.1065,.1554,.4519] -> t3, t2.
    let r = make(1.5, 1);
    let res = await run(r, { x: X }, true);
    equal(res.d.plan.capacity, 2);
    deepEqual(Array.from(res.d.plan.load), [2, 2, 2]);
    assertAllClose(res.combine, [.7870, 0, 0, 0, .7870, 0, .4223, .4223, .1554, 0, 0, .4519], TOL);
    assertClose(res.combine[6] + res.combine[7] + res.combine[8], 1, TOL); // t2 is used by all 3
    equal(res.d.leftBehind, 0);
    equal(res.d.plan.dropped, 0);
    equal(res.aux, 0); // no load-balancing loss
    assertAllClose(res.z, S.flat(), TOL); // z = S
    r.dispose();
    // cf .75: C = round(.75·4/3) = round(1) = 1: e0 -> t0, e1 -> t1, e2 -> t3; t2 left behind.
    r = make(0.75, 1);
    res = await run(r, { x: X }, true);
    equal(res.d.plan.capacity, 1);
    assertAllClose(res.combine, [.7870, 0, 0, 0, .7870, 0, 0, 0, 0, 0, 0, .4519], TOL);
    equal(res.d.leftBehind, 1);
    equal(statsOf(res.d, res.gates, res.z).leftBehind, 1);
    r.dispose();
    // cf 1.5, C_min 4: C = max(4, 2) = 4 = N: every expert takes every token, combine = S.
    r = make(1.5, 4);
    res = await run(r, { x: X }, true);
    equal(res.d.plan.capacity, 4);
    equal(res.d.plan.k, 3);
    assertAllClose(res.combine, S.flat(), TOL);
    r.dispose();
    X.dispose();
    equal(tf.memory().numTensors, before, "no tensor leaks");
  });

  Deno.test(`[${backend}] EC-2: C = 1; tokens 1 and 2 get zero MoE output`, async () => {
    await useBackend(backend);
    // S = softmax([[2,0],[1,0],[0,.5],[0,1]]) = [[.8808,.1192],[.7311,.2689],[.3775,.6225],[.2689,.7311]].
    // cf .5: C = round(.5·4/2) = 1. e0 column max is t0 (.8808); e1 column max is t3 (.7311).
    const r = createRouter("expert-choice", {
      inputDim: 2,
      numExperts: 2,
      topK: 1,
      capacityFactor: 0.5,
    });
    setParam(r, "w", eye(2));
    const x = tf.tensor2d([[2, 0], [1, 0], [0, .5], [0, 1]]);
    const res = await run(r, { x }, false);
    assertAllClose(res.combine, [.8808, 0, 0, 0, 0, 0, 0, .7311], TOL);
    equal(res.d.leftBehind, 2);
    r.dispose();
    x.dispose();
  });

  Deno.test(`[${backend}] SB-1: Sinkhorn balances 3:1 to 2:2 in training; gates are sigmoid(L)`, async () => {
    await useBackend(backend);
    const before = tf.memory().numTensors;
    const L = [[2, 0], [1.5, 0], [1, 0], [0, .5]];
    // Π from log-domain Sinkhorn to convergence (checked in float64):
    // rows sum to 1/4, columns to 1/2.
    const { pi, converged } = sinkhornPlan(L.flat(), 4, 2, { tol: 1e-6, maxIters: 500 });
    ok(converged);
    assertAllClose(pi, [.1806, .0694, .1531, .0969, .1223, .1277, .0440, .2060], TOL);
    const r = createRouter("sinkhorn", { inputDim: 2, numExperts: 2, topK: 1, capacityFactor: 0 });
    setParam(r, "w", eye(2));
    const x = tf.tensor2d(L);
    // Training: argmax Π = [0,0,1,1]; gates sigmoid(L[n,e(n)]) = σ(2), σ(1.5), σ(0), σ(.5)
    // = [.8808, .8176, .5000, .6225] (token 2 moved to its second choice, σ(0)).
    let res = await run(r, { x }, true);
    deepEqual(Array.from(res.d.plan.expert), [0, 0, 1, 1]);
    deepEqual(Array.from(res.d.plan.load), [2, 2]);
    assertAllClose(res.gates, [.8808, .8176, .5, .6225], TOL);
    equal(res.aux, 0);
    // Eval: plain top-1 of σ(L): [0,0,0,1], gates σ(2), σ(1.5), σ(1) = .7311, σ(.5).
    res = await run(r, { x }, false);
    deepEqual(Array.from(res.d.plan.expert), [0, 0, 0, 1]);
    assertAllClose(res.gates, [.8808, .8176, .7311, .6225], TOL);
    r.dispose();
    x.dispose();
    equal(tf.memory().numTensors, before, "no tensor leaks");
  });

  Deno.test(`[${backend}] SSR-1 (proposal): gates from the transport map Ĝ = N·Π (rows of Π normalized)`, async () => {
    await useBackend(backend);
    // Same L as SB-1, ε = 1, run to convergence (50 iterations): Ĝ = 4·Π =
    // [[.7225,.2775],[.6123,.3877],[.4892,.5108],[.1761,.8239]]; top-1 [0,0,1,1].
    const r = createRouter("ssr", {
      inputDim: 2,
      numExperts: 2,
      topK: 1,
      capacityFactor: 0,
      pSinkhorn: 1,
      iterations: 50,
    });
    setParam(r, "w", eye(2));
    const x = tf.tensor2d([[2, 0], [1.5, 0], [1, 0], [0, .5]]);
    const res = await run(r, { x }, true, { step: 0 });
    equal(res.d.mode, "train-sinkhorn");
    assertAllClose(res.z, [.7225, .2775, .6123, .3877, .4892, .5108, .1761, .8239], TOL);
    deepEqual(Array.from(res.d.plan.expert), [0, 0, 1, 1]);
    assertAllClose(res.gates, [.7225, .6123, .5108, .8239], TOL);
    // Columns of Π = Ĝ/N sum to 1/E = .5.
    for (const e of [0, 1]) {
      assertClose((res.z[e] + res.z[2 + e] + res.z[4 + e] + res.z[6 + e]) / 4, 0.5, TOL);
    }
    equal(res.aux, 0);
    // Evaluation is softmax mode: z = softmax(L), top-1 [0,0,0,1].
    const ev = await run(r, { x }, false);
    equal(ev.d.mode, "eval");
    deepEqual(Array.from(ev.d.plan.expert), [0, 0, 0, 1]);
    r.dispose();
    x.dispose();
  });

  Deno.test(`[${backend}] XM-1: torchscale X-MoE (experts renormed to 1.5, cosine logits, l_aux 1)`, async () => {
    await useBackend(backend);
    const r = createRouter("xmoe", {
      inputDim: 2,
      numExperts: 2,
      topK: 1,
      capacityFactor: 1,
      projDim: 2,
    });
    setParam(r, "proj", eye(2));
    setParam(r, "experts", [[1, 0], [0, 2]]);
    const H = [[3, 1], [1, 1], [.5, 2], [-1, .2]];
    const x = tf.tensor2d(H);
    const res = await run(r, { x }, true);
    // 1. Rows rescaled to norm 1.5 in place.
    assertAllClose(await r.params["moe.router.experts"].data(), [1.5, 0, 0, 1.5], TOL);
    // 2. Normalized experts are the unit vectors, so logits = H.
    assertAllClose(res.logits, H.flat(), TOL);
    // 3. softmax rows: [e³,e]/(e³+e) = [.8808,.1192]; tie [.5,.5]; σ(-1.5) = .1824; σ(-1.2) = .2315.
    assertAllClose(res.z, [.8808, .1192, .5, .5, .1824, .8176, .2315, .7685], TOL);
    // 4. top-1 [0,0,1,1], the tie resolves to the lower index; raw gates.
    deepEqual(Array.from(res.d.plan.expert), [0, 0, 1, 1]);
    assertAllClose(res.gates, [.8808, .5, .8176, .7685], TOL);
    // 5. capacity int(1·ceil(4/2)) = 2, nothing dropped.
    equal(res.d.plan.capacity, 2);
    equal(res.d.plan.dropped, 0);
    // 6. me = [.4487,.5513], ce = [.5,.5]: l_aux = E·Σ me·ce = 2·(.5·1) = 1.
    assertClose(res.aux, 1, TOL);
    r.dispose();

    // Paper-style: cos = [[.9487,.3162],[.7071,.7071],[.2425,.9701],[-.9806,.1961]];
    // τ = .5 gives softmax(2·cos) = [[.7799,.2201],[.5,.5],[.1892,.8108],[.0868,.9132]],
    // both as a fixed τ and as tutel's θ = log(1/.5).
    const paper = [.7799, .2201, .5, .5, .1892, .8108, .0868, .9132];
    for (const temperature of ["fixed", "learnable-log"]) {
      const p = createRouter("xmoe", {
        inputDim: 2,
        numExperts: 2,
        topK: 1,
        capacityFactor: 1,
        projDim: 2,
        normalizeTokens: true,
        temperature,
        temperatureValue: 0.5,
      });
      setParam(p, "proj", eye(2));
      setParam(p, "experts", [[1, 0], [0, 2]]);
      assertAllClose((await run(p, { x }, false)).z, paper, { ...TOL, msg: temperature });
      p.dispose();
    }
    // τ = .07 (learnable, at its initial value): [[.9999,.0001],[.5,.5],[≈0,≈1],[≈0,≈1]].
    const sharp = createRouter("xmoe", {
      inputDim: 2,
      numExperts: 2,
      topK: 1,
      capacityFactor: 1,
      projDim: 2,
      normalizeTokens: true,
      temperature: "learnable",
    });
    setParam(sharp, "proj", eye(2));
    setParam(sharp, "experts", [[1, 0], [0, 2]]);
    assertAllClose((await run(sharp, { x }, false)).z, [.9999, .0001, .5, .5, 0, 1, 0, 1], TOL);
    sharp.dispose();
    x.dispose();
  });

  Deno.test(`[${backend}] X-MoE top-2: the second expert is kept with chance 2·g2 in training`, async () => {
    await useBackend(backend);
    const r = createRouter("xmoe", {
      inputDim: 2,
      numExperts: 2,
      topK: 2,
      capacityFactor: 1,
      projDim: 2,
    });
    setParam(r, "proj", eye(2));
    setParam(r, "experts", eye(2));
    // Logits = x. t0 [1, 1]: a tie, g2 = .5, kept since 2·.5 = 1 > U[0, 1) always; gates [.5, .5].
    // t1 [30, -30]: g2 = e⁻⁶⁰/(1 + e⁻⁶⁰) ≈ 0, never kept; gates [g1 = 1, 0].
    // Capacity 2·floor(1·ceil(2/2)) = 2: e0 gets t0 and t1, e1 gets t0; nothing dropped.
    const x = tf.tensor2d([[1, 1], [30, -30]]);
    for (let i = 0; i < 3; i++) {
      const res = await run(r, { x }, true);
      deepEqual(Array.from(res.d.valid), [1, 1, 1, 0]);
      assertAllClose(res.gates, [.5, .5, 1, 0], TOL);
      deepEqual(Array.from(res.d.plan.load), [2, 1]);
      equal(res.d.plan.dropped, 0);
    }
    // Evaluation keeps both: t1's second gate is the renormalized g2 ≈ 0, but it is routed.
    const ev = await run(r, { x }, false);
    deepEqual(Array.from(ev.d.valid), [1, 1, 1, 1]);
    deepEqual(Array.from(ev.d.plan.load), [2, 2]);
    r.dispose();
    x.dispose();
  });

  Deno.test(`[${backend}] GT-1 (proposal): a token follows its neighbours through P̃ = M·P`, async () => {
    await useBackend(backend);
    const L = [[2, 0], [1.5, 0], [.2, 0], [0, 1]];
    const x = tf.tensor2d(L);
    // P = softmax(L) = [[.8808,.1192],[.8176,.1824],[.5498,.4502],[.2689,.7311]], top-1 [0,0,0,1].
    // Similarity-aware with the fixed block graph M (pairs averaged):
    // P̃ = [[.8492,.1508],[.8492,.1508],[.4094,.5906],[.4094,.5906]], top-1 [0,0,1,1].
    const M = tf.tensor3d([[[.5, .5, 0, 0], [.5, .5, 0, 0], [0, 0, .5, .5], [0, 0, .5, .5]]]);
    const fixed = graphRouter(
      "similarity",
      { inputDim: 2, numExperts: 2, topK: 1, capacityFactor: 0 },
      {},
      () => M,
    );
    setParam(fixed, "w", eye(2));
    let res = await run(fixed, { x }, false);
    assertAllClose(res.z, [.8492, .1508, .8492, .1508, .4094, .5906, .4094, .5906], TOL);
    deepEqual(Array.from(res.d.plan.expert), [0, 0, 1, 1]);
    assertAllClose(res.gates, [.8492, .8492, .5906, .5906], TOL);
    fixed.dispose();
    // Attention-aware with the causal Ā: P̃ = Ā·P =
    // [[.8808,.1192],[.8492,.1508],[.6963,.3037],[.4973,.5027]], top-1 [0,0,0,1].
    const A = tf.tensor3d([[[1, 0, 0, 0], [.5, .5, 0, 0], [.2, .3, .5, 0], [.1, .1, .4, .4]]]);
    const att = createRouter("attention", {
      inputDim: 2,
      numExperts: 2,
      topK: 1,
      capacityFactor: 0,
    });
    setParam(att, "w", eye(2));
    res = await run(att, { x, attention: A, sequenceLength: 4 }, true);
    assertAllClose(res.z, [.8808, .1192, .8492, .1508, .6963, .3037, .4973, .5027], TOL);
    deepEqual(Array.from(res.d.plan.expert), [0, 0, 0, 1]);
    att.dispose();
    // λ = .5 mixes halfway: (M·P + P)/2, row 2 = ([.4094,.5906] + [.5498,.4502])/2.
    const P = tf.softmax(x) as Tensor2D;
    const half = await mixProbabilities(P, M, 0.5).data();
    assertAllClose(half.slice(4, 6), [.4796, .5204], TOL);
    tf.dispose([x, M, A, P]);
  });

  Deno.test(`[${backend}] similarity graph: softmax of token dot products, causal-masked`, async () => {
    await useBackend(backend);
    // u = I₂: ⟨u_i,u_j⟩ = I, softmax rows [e,1]/(e+1) = [.7311,.2689]; causal row 0 = [1, 0].
    const u = tf.tensor2d([[1, 0], [0, 1]]);
    assertAllClose(await similarityGraph(u, 2, 1, false).data(), [.7311, .2689, .2689, .7311], TOL);
    assertAllClose(await similarityGraph(u, 2, 1, true).data(), [1, 0, .2689, .7311], TOL);
    // Two sequences of one token: each token's only neighbour is itself.
    assertAllClose(await similarityGraph(u, 1, 1, false).data(), [1, 1], TOL);
    u.dispose();
  });

  Deno.test(`[${backend}] Z-1: router z-loss and its gradient (2/N)·lse·softmax`, async () => {
    await useBackend(backend);
    // lse = [ln 2, 1 + ln 2, ln(e² + 1)] = [.6931, 1.6931, 2.1269];
    // lse² = [.4805, 2.8667, 4.5238]; mean = 2.6237; weighted 1e-3: .0026237.
    const L = tf.tensor2d([[0, 0], [1, 1], [2, 0]]);
    const value = (await zLoss(L).data())[0];
    assertClose(value, 2.6237, TOL);
    assertClose(1e-3 * value, 0.0026237, { atol: 1e-7, rtol: 0 });
    // Row 2: (2/3)·2.1269·[.8808, .1192] = [1.2489, .1690]; row 0: (2/3)·.6931·.5 = .2310.
    const g = await tf.grad((l: tf.Tensor) => zLoss(l as Tensor2D))(L).data();
    assertAllClose(g, [.2310, .2310, .5644, .5644, 1.2489, .1690], TOL);
    // Masked (Megatron): row 1 left out of sum and count: (ln²2 + ln²(e² + 1))/2
    // = (.480453 + 4.523823)/2 = 2.502138.
    const m = tf.tensor1d([1, 0, 1]);
    assertClose((await zLoss(L, m).data())[0], 2.502138, { atol: 2e-6, rtol: 0 });
    tf.dispose([L, m]);
  });
}

Deno.test("expert-choice capacity rounds half up and applies the minimum", () => {
  equal(expertChoiceCapacity(4, 3, 1.5, 1), 2); // round(2.0)
  equal(expertChoiceCapacity(4, 3, 0.75, 1), 1); // round(1.0)
  equal(expertChoiceCapacity(4, 2, 0.25, 0), 1); // round(.5) = 1 (half up; at least 1)
  equal(expertChoiceCapacity(4, 3, 1.5, 4), 4); // the minimum
  equal(expertChoiceCapacity(4, 3, 9, 1), 4); // capped at N
});

Deno.test("routers refuse bad settings with messages naming the value", async () => {
  await useBackend("cpu");
  throws(
    () =>
      createRouter("expert-choice", {
        inputDim: 2,
        numExperts: 2,
        topK: 1,
        capacityFactor: 1,
        causal: true,
      }),
    /cannot be used on a causal model/,
  );
  throws(
    () =>
      createRouter("nope" as "topk", { inputDim: 2, numExperts: 2, topK: 1, capacityFactor: 1 }),
    /router = "nope" is invalid: allowed are topk, expert-choice, sinkhorn, ssr, xmoe, similarity, attention/,
  );
  throws(
    () => createRouter("topk", { inputDim: 2, numExperts: 2, topK: 3, capacityFactor: 1 }),
    /topK = 3 is invalid/,
  );
  throws(
    () =>
      createRouter("ssr", { inputDim: 2, numExperts: 2, topK: 1, capacityFactor: 1, pSinkhorn: 2 }),
    /pSinkhorn = 2 is invalid/,
  );
  throws(
    () =>
      createRouter("xmoe", {
        inputDim: 2,
        numExperts: 2,
        topK: 1,
        capacityFactor: 1,
        temperature: "hot",
      }),
    /temperature = "hot" is invalid/,
  );
  const att = createRouter("attention", { inputDim: 2, numExperts: 2, topK: 1, capacityFactor: 0 });
  const x = tf.ones([4, 2]) as Tensor2D;
  await assertRejects(
    () => route(att, { x, sequenceLength: 2 }, { training: false }),
    /needs RouterInput.attention/,
  );
  const sim = createRouter("similarity", {
    inputDim: 2,
    numExperts: 2,
    topK: 1,
    capacityFactor: 0,
  });
  await assertRejects(
    () => route(sim, { x, sequenceLength: 3 }, { training: false }),
    /sequenceLength = 3 is invalid/,
  );
  const ec = createRouter("expert-choice", {
    inputDim: 2,
    numExperts: 2,
    topK: 1,
    capacityFactor: 1,
  });
  const bad = tf.tensor2d([[NaN, 0], [0, 0], [0, 0], [0, 0]]);
  await assertRejects(() => route(ec, { x: bad }, { training: true }), /contains NaN/);
  tf.dispose([x, bad]);
  [att, sim, ec].forEach((r) => r.dispose());
});

async function assertRejects(f: () => Promise<unknown>, re: RegExp): Promise<void> {
  let err: unknown = null;
  try {
    await f();
  } catch (e) {
    err = e;
  }
  ok(err instanceof Error && re.test(err.message), `expected an error matching ${re}, got ${err}`);
}

for (const routingOrder of ["softmax-topk", "topk-softmax"] as const) {
  Deno.test(`[cpu] the topk router reproduces MoeLayer's routing (${routingOrder}): weights, plan, z, L_aux, y`, async () => {
    await useBackend("cpu");
    const [N, d, E, k] = [12, 5, 6, 2];
    const layer = new MoeLayer({
      inputDim: d,
      hiddenDim: 3,
      numExperts: E,
      topK: k,
      routingOrder,
      routerBias: true,
      activation: "relu",
      capacityFactor: 1,
      loadBalanceWeight: 1,
    }, { seed: 4 });
    const router = createRouter("topk", {
      inputDim: d,
      numExperts: E,
      topK: k,
      capacityFactor: 1,
      routingOrder,
      routerBias: true,
    }, { seed: 4 });
    // Same seed, same first draw: the router's kernel is the layer's.
    assertAllClose(
      await router.params["moe.router.w"].data(),
      await layer.params["moe.router.w"].data(),
      { atol: 0, rtol: 0 },
    );
    const x = tf.randomNormal([N, d], 0, 1, "float32", 9) as Tensor2D;
    for (const training of [false, true]) {
      const logits = layer.logits(x);
      const routed = await layer.route({ x }, { training, noiseSeed: 11 });
      const out = layer.apply({ x }, routed, null);
      const dec = await route(router, { x }, { training, noiseSeed: 11 });
      const mine = router.forward({ x }, dec);
      deepEqual(Array.from(dec.plan.expert), Array.from(routed.plan.expert));
      deepEqual(Array.from(dec.plan.slotOfChoice), Array.from(routed.plan.slotOfChoice));
      equal(dec.plan.dropped, routed.plan.dropped);
      assertAllClose(await mine.z.data(), await out.z.data(), { atol: 1e-6, rtol: 1e-5 });
      assertClose((await mine.auxLoss.data())[0], (await out.auxLoss.data())[0], {
        atol: 1e-6,
        rtol: 1e-5,
      });
      // The layer's y equals Σ_e W[n,e]·FFN_e(x_n) with W the combine matrix of the router's gates.
      const W = combineMatrix(dec, await mine.gates.data());
      const xs = await x.data();
      const p = Object.fromEntries(
        await Promise.all(
          Object.entries(layer.params).map(async ([key, v]) => [key, await v.data()] as const),
        ),
      );
      const want = new Float64Array(N * d);
      for (let n = 0; n < N; n++) {
        for (let e = 0; e < E; e++) {
          if (W[n * E + e] === 0) continue;
          const h = [0, 1, 2].map((u) => {
            let s = p[`moe.experts.b1.${e}`][u];
            for (let i = 0; i < d; i++) s += xs[n * d + i] * p[`moe.experts.w1.${e}`][i * 3 + u];
            return Math.max(0, s);
          });
          for (let v = 0; v < d; v++) {
            let s = p[`moe.experts.b2.${e}`][v];
            for (let u = 0; u < 3; u++) s += h[u] * p[`moe.experts.w2.${e}`][u * d + v];
            want[n * d + v] += W[n * E + e] * s;
          }
        }
      }
      assertAllClose(await out.y.data(), want, { atol: 1e-5, rtol: 1e-4, msg: "y" });
      tf.dispose([logits, out.y, out.z, out.auxLoss, out.regularizer, out.penalty]);
      tf.dispose([mine.logits, mine.z, mine.gates, mine.auxLoss]);
      disposeRouted(routed);
      disposeDecision(dec);
    }
    x.dispose();
    layer.dispose();
    router.dispose();
  });
}
