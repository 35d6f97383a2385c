import { cosineWithWarmup } from "../src/train/lr_schedule.ts";
import { assertClose, equal, ok, throws } from "./asserts.ts";

Deno.test("lr_schedule: linear warm-up reaches baseLr at the last warm-up step", () => {
  const lr = cosineWithWarmup({ baseLr: 1e-3, warmupSteps: 4, totalSteps: 20 });
  assertClose(lr(0), 0.25e-3);
  assertClose(lr(1), 0.5e-3);
  assertClose(lr(2), 0.75e-3);
  assertClose(lr(3), 1e-3);
  assertClose(lr(4), 1e-3, { msg: "first cosine step is the peak" });
});

Deno.test("lr_schedule: cosine decay to minLr, hand values", () => {
  // W = 10, T = 110: decay over 100 steps from 1e-3 to 1e-4
  const lr = cosineWithWarmup({ baseLr: 1e-3, warmupSteps: 10, totalSteps: 110, minLr: 1e-4 });
  assertClose(lr(10), 1e-3);
  // p = 0.25: 1e-4 + 9e-4 * 0.5 * (1 + cos(pi/4)) = 1e-4 + 9e-4 * 0.853553390593
  assertClose(lr(35), 8.6819805153e-4, { rtol: 1e-9 });
  assertClose(lr(60), 5.5e-4, { rtol: 1e-12 }); // p = 0.5
  // p = 0.75: 1e-4 + 9e-4 * 0.146446609407
  assertClose(lr(85), 2.3180194847e-4, { rtol: 1e-9 });
  assertClose(lr(110), 1e-4, { rtol: 1e-12 });
  equal(lr(500), lr(110), "constant at minLr after totalSteps");
  // fractional steps (e.g. per-epoch schedules) interpolate smoothly
  ok(lr(60.5) < lr(60) && lr(60.5) > lr(61));
});

Deno.test("lr_schedule: monotone up then down; no warm-up; all warm-up", () => {
  const lr = cosineWithWarmup({ baseLr: 2, warmupSteps: 5, totalSteps: 50 });
  for (let t = 0; t < 4; t++) ok(lr(t + 1) > lr(t));
  for (let t = 5; t < 50; t++) ok(lr(t + 1) < lr(t), `decreasing at ${t}`);
  const noWarm = cosineWithWarmup({ baseLr: 1, warmupSteps: 0, totalSteps: 4 });
  assertClose(noWarm(0), 1);
  assertClose(noWarm(2), 0.5);
  assertClose(noWarm(4), 0);
  const allWarm = cosineWithWarmup({ baseLr: 1, warmupSteps: 4, totalSteps: 4, minLr: 0.1 });
  assertClose(allWarm(3), 1);
  assertClose(allWarm(4), 0.1);
});

Deno.test("lr_schedule: the paper's Fashion-MNIST setting (150 epochs x 300 steps, 10 warm-up epochs)", () => {
  const lr = cosineWithWarmup({ baseLr: 1e-3, warmupSteps: 3000, totalSteps: 45000 });
  assertClose(lr(0), 1e-3 / 3000);
  assertClose(lr(2999), 1e-3);
  assertClose(lr(24000), 5e-4);
  ok(lr(44999) < 1e-10);
});

Deno.test("lr_schedule: bad options and steps are refused with clear errors", () => {
  throws(
    () => cosineWithWarmup({ baseLr: 0, warmupSteps: 0, totalSteps: 10 }),
    /baseLr = 0 is invalid/,
  );
  throws(
    () => cosineWithWarmup({ baseLr: 1, warmupSteps: 11, totalSteps: 10 }),
    /warmupSteps = 11 is invalid: warmupSteps must be an integer in \[0, 10\]/,
  );
  throws(
    () => cosineWithWarmup({ baseLr: 1, warmupSteps: 0, totalSteps: 0 }),
    /totalSteps = 0 is invalid/,
  );
  throws(
    () => cosineWithWarmup({ baseLr: 1, warmupSteps: 0, totalSteps: 5, minLr: 2 }),
    /minLr = 2 is invalid: minLr must be a finite number >= 0 <= 1/,
  );
  const lr = cosineWithWarmup({ baseLr: 1, warmupSteps: 1, totalSteps: 5 });
  throws(() => lr(-1), /step = -1 is invalid/);
  throws(() => lr(NaN), /step = NaN is invalid/);
});
