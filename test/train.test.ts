// train.test.ts — end to end: a 2-layer MLP (8 → 32 → 1, tanh) trained with AdamW on a synthetic
// regression task, y = sin(x·w) with x ~ N(0, I₈) and w ~ N(0, I₈)/√8 (so x·w ~ N(0, 1)), fixed
// seeds, full batch of 256, 200 steps at lr 1e-2. It must reach a training MSE below 0.01 and below 5%
// of the initial MSE, and generalise to 256 fresh points (MSE below 0.02). The initial MSE is about
// E[sin²(z)] + output noise ≈ 0.45.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randn, matmul, mseLoss, tidy, keep, memory, noGrad, nn, optim, Tensor } from '../lib/index';

const IN = 8, HIDDEN = 32, N = 256, STEPS = 200;

function data(seed: number, w: Tensor): { x: Tensor; y: Tensor } {
  return tidy(() => {
    const x = keep(randn([N, IN], { seed }));
    const y = keep(matmul(x, w).sin());
    return { x, y };
  });
}

test(`MLP ${IN} → ${HIDDEN} → 1 (tanh) with AdamW fits y = sin(x·w): MSE < 0.01 and < 5% of the start within ${STEPS} steps`, () => {
  const w = tidy(() => keep(randn([IN, 1], { seed: 1 }).mul(1 / Math.sqrt(IN))));
  const train = data(2, w);
  const heldOut = data(3, w);
  const model = new nn.Sequential(new nn.Linear(IN, HIDDEN, { seed: 10 }), new nn.Tanh(), new nn.Linear(HIDDEN, 1, { seed: 20 }));
  const opt = new optim.AdamW(model.parameters(), { lr: 1e-2, weightDecay: 1e-4 });
  const evalLoss = (d: { x: Tensor; y: Tensor }): number => tidy(() => noGrad(() => mseLoss(model.forward(d.x), d.y).item()));

  const t0 = performance.now();
  const initial = evalLoss(train);
  const losses: number[] = [];
  let memBefore = memory();
  for (let step = 0; step < STEPS; step++) {
    // after the first step the grads and AdamW's state exist; from then on memory must stay flat
    if (step === 1) memBefore = memory();
    tidy(() => {
      opt.zeroGrad();
      const loss = mseLoss(model.forward(train.x), train.y);
      loss.backward();
      opt.step();
      if (step % 50 === 0 || step === STEPS - 1) losses.push(loss.item());
    });
  }
  const final = evalLoss(train);
  const test = evalLoss(heldOut);
  const ms = performance.now() - t0;
  const memAfter = memory();
  console.log(`    initial MSE ${initial.toFixed(4)}, final ${final.toExponential(3)} (${((100 * final) / initial).toFixed(2)}%), held-out ${test.toExponential(3)}, ${STEPS} steps in ${ms.toFixed(0)} ms`);
  console.log(`    loss every 50 steps: ${losses.map((l) => l.toExponential(2)).join(' ')}`);
  assert.ok(initial > 0.2, `initial MSE ${initial} (the task is not trivially solved at init)`);
  assert.ok(final < 0.01, `final training MSE ${final} ≥ 0.01`);
  assert.ok(final < 0.05 * initial, `final training MSE ${final} ≥ 5% of the initial ${initial}`);
  assert.ok(test < 0.02, `held-out MSE ${test} ≥ 0.02`);
  assert.is(memAfter.cpu.buffers, memBefore.cpu.buffers, 'native buffers after the first step');
  assert.is(memAfter.numTensors, memBefore.numTensors, 'live tensors after the first step');
  opt.dispose();
  model.dispose();
  for (const t of [w, train.x, train.y, heldOut.x, heldOut.y]) t.dispose();
});

test('the same seeds give the same training run (determinism)', () => {
  const run = (): number[] => {
    const w = tidy(() => keep(randn([IN, 1], { seed: 1 }).mul(1 / Math.sqrt(IN))));
    const d = data(2, w);
    const model = new nn.Sequential(new nn.Linear(IN, HIDDEN, { seed: 10 }), new nn.Tanh(), new nn.Linear(HIDDEN, 1, { seed: 20 }));
    const opt = new optim.AdamW(model.parameters(), { lr: 1e-2 });
    for (let step = 0; step < 20; step++)
      tidy(() => {
        opt.zeroGrad();
        mseLoss(model.forward(d.x), d.y).backward();
        opt.step();
      });
    const out = Array.from(model.parameters()[2].dataSync());
    opt.dispose();
    model.dispose();
    for (const t of [w, d.x, d.y]) t.dispose();
    return out;
  };
  assert.equal(run(), run());
});

test.run();
