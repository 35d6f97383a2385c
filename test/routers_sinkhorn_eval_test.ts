// Sinkhorn router at evaluation: plain top-k of a(L) (Megatron-LM), where the
// activation a saturates in float32 (σ(L) = 1 for L ≳ 17; softmax = 0 far
// below the row's top). The selection must follow the logits' order, not
// break the float32 ties by the lowest expert or token index.

import { tf } from "../src/deps.ts";
import { useBackend } from "../src/backend.ts";
import { createRouter, disposeDecision, route, type Router } from "../src/moe/routers/mod.ts";
import { assertAllClose, deepEqual, equal, ok } from "./asserts.ts";

const TOL = { atol: 1e-4, rtol: 0 };
import { availableBackends } from "./backends.ts";

/** A Sinkhorn router with W_g = I (so L = X). */
function identityRouter(E: number, topK: number, capacityFactor: number): Router {
  const r = createRouter("sinkhorn", { inputDim: E, numExperts: E, topK, capacityFactor });
  const w = r.params["moe.router.w"];
  const eye = tf.eye(E);
  w.assign(eye);
  eye.dispose();
  return r;
}

for (const backend of await availableBackends()) {
  Deno.test(`[${backend}] sinkhorn eval: saturated σ(L) does not tie-break to expert 0`, async () => {
    await useBackend(backend);
    const before = tf.memory().numTensors;
    // σ(20) = 1 − 2.1e-9 and σ(30) = 1 − 9.4e-14 both round to 1 in float32,
    // so top-1 of σ(L) would pick expert 0; argmax L = expert 1.
    const s = tf.tidy(() => tf.sigmoid(tf.tensor1d([20, 30])));
    const check = await s.data();
    s.dispose();
    equal(check[0], check[1], "the two sigmoids saturate to the same float32");
    const r = identityRouter(2, 1, 0);
    const x = tf.tensor2d([[20, 30], [30, 20]]); // [N, E]
    const d = await route(r, { x }, { training: false });
    deepEqual(Array.from(d.plan.expert), [1, 0]);
    disposeDecision(d);
    r.dispose();
    x.dispose();
    equal(tf.memory().numTensors, before, "no tensor leaks");
  });

  Deno.test(`[${backend}] sinkhorn eval: batch priority follows the logits when σ saturates`, async () => {
    await useBackend(backend);
    // Both tokens choose expert 1 (logit 25 resp. 30 against 0); with
    // C_f = 0.5, N = 2, E = 2 the capacity is one slot, and batch-prioritized
    // routing gives it to the token with the larger score: token 1 (30 > 25).
    // σ(25) = σ(30) = 1 in float32, so a tie would hand it to token 0.
    const r = identityRouter(2, 1, 0.5);
    const x = tf.tensor2d([[0, 25], [0, 30]]);
    const d = await route(r, { x }, { training: false });
    equal(d.plan.capacity, 1);
    equal(d.plan.dropped, 1);
    const { slotOfChoice, active, slots } = d.plan;
    const empty = active.length * slots;
    ok(slotOfChoice[0] === empty, "token 0 (logit 25) is the one dropped");
    ok(slotOfChoice[1] !== empty, "token 1 (logit 30) keeps the slot");
    disposeDecision(d);
    r.dispose();
    x.dispose();
  });

  Deno.test(`[${backend}] sinkhorn eval, k = 2: the second choice follows the logits where softmax underflows`, async () => {
    await useBackend(backend);
    // softmax([0, −300, −200]) = [1, e^−300, e^−200] = [1, 0, 0] in float32
    // (the smallest denormal is 1.4e-45 ≈ e^−103):
    // top-2 of it would take expert 1 (lower index of the tie); the logits' second is expert 2.
    const r = identityRouter(3, 2, 0);
    const x = tf.tensor2d([[0, -300, -200]]);
    const d = await route(r, { x }, { training: false });
    deepEqual(Array.from(d.plan.expert), [0, 2]);
    disposeDecision(d);
    r.dispose();
    x.dispose();
  });
}

for (const backend of await availableBackends()) {
  Deno.test(`[${backend}] sinkhorn z: rows of Π in training (what the plan selects by), softmax(L) at evaluation`, async () => {
    await useBackend(backend);
    const before = tf.memory().numTensors;
    // SB-1's L = [[2,0],[1.5,0],[1,0],[0,.5]]: Π (converged, rows 1/4, columns 1/2)
    // = [[.1806,.0694],[.1531,.0969],[.1223,.1277],[.0440,.2060]], so its rows
    // normalized are 4·Π = [[.7225,.2775],[.6123,.3877],[.4892,.5108],[.1761,.8239]]
    // (SSR-1's Ĝ); training selects argmax = [0,0,1,1] from it.
    const r = identityRouter(2, 1, 0);
    const x = tf.tensor2d([[2, 0], [1.5, 0], [1, 0], [0, .5]]);
    let d = await route(r, { x }, { training: true });
    let out = r.forward({ x }, d);
    deepEqual(Array.from(d.plan.expert), [0, 0, 1, 1]);
    assertAllClose(
      await out.z.data(),
      [.7225, .2775, .6123, .3877, .4892, .5108, .1761, .8239],
      TOL,
    );
    tf.dispose([out.z, out.gates, out.logits, out.auxLoss]);
    disposeDecision(d);
    // Evaluation routes by a(L), whose order is softmax(L)'s: z = P =
    // [σ(2), σ(−2)], [σ(1.5), σ(−1.5)], [σ(1), σ(−1)], [σ(−.5), σ(.5)].
    d = await route(r, { x }, { training: false });
    out = r.forward({ x }, d);
    assertAllClose(
      await out.z.data(),
      [.8808, .1192, .8176, .1824, .7311, .2689, .3775, .6225],
      TOL,
    );
    tf.dispose([out.z, out.gates, out.logits, out.auxLoss]);
    disposeDecision(d);
    r.dispose();
    x.dispose();
    equal(tf.memory().numTensors, before, "no tensor leaks");
  });

  Deno.test(`[${backend}] sinkhorn z in training: law: a loss on z does not push a column of L (Π(L + 1·c) = Π(L))`, async () => {
    await useBackend(backend);
    const before = tf.memory().numTensors;
    // Adding c_e to every logit of expert e leaves the transport plan
    // unchanged (the column scaling absorbs it), so for any loss ℓ(z) the
    // gradient dℓ/dL sums to 0 over the tokens of each column. (On
    // softmax(L) it does not: a loss there moves whole columns, the
    // per-expert offsets that evaluation, without Sinkhorn, routes by.)
    const N = 6, E = 3;
    const r = identityRouter(E, 1, 0);
    const x = tf.tidy(() => tf.mul(tf.randomNormal([N, E], 0, 1, "float32", 7), 2)) as tf.Tensor2D;
    const c = tf.randomUniform([N, E], 0, 1, "float32", 11); // ℓ(z) = Σ c ⊙ z
    const d = await route(r, { x }, { training: true });
    const dx = tf.tidy(() =>
      tf.grad((xi: tf.Tensor) => {
        const o = r.forward({ x: xi as tf.Tensor2D }, d);
        return tf.sum(tf.mul(c, o.z));
      })(x)
    ); // = dℓ/dL, since L = x·I
    const sums = tf.sum(dx, 0);
    const top = tf.tidy(() => tf.max(tf.abs(dx)));
    const colSums = await sums.data();
    const scale = (await top.data())[0];
    tf.dispose([sums, top]);
    ok(scale > 1e-3, `the gradient is not trivially zero (max |dℓ/dL| = ${scale})`);
    for (const v of colSums) ok(Math.abs(v) < 1e-4, `column sum of dℓ/dL = ${v}, expected 0`);
    tf.dispose([dx, c, x]);
    disposeDecision(d);
    r.dispose();
    equal(tf.memory().numTensors, before, `no tensor leaks (${tf.memory().numTensors - before})`);
  });
}
