// lr_scheduler.test.ts — optim's learning-rate schedules against PyTorch's chainable update rules
// (torch/optim/lr_scheduler.py get_lr, written again below) over 60 steps and two parameter groups,
// and against the closed forms those rules amount to; two schedulers stepped together and a second
// one made later (values printed by PyTorch 1.13's lr_scheduler for the same calls); transformers'
// two warmup schedules at hand-computed points; the rate an optimizer step really uses; stateDict /
// loadStateDict resuming; bad arguments.
//
// Tolerance: the recursive rule and the closed form differ by the rounding of up to 60 chained
// multiplications: 60 · 2 · ε₆₄ ≈ 1.3e-14 relative; 1e-12 (of the base rate) leaves room.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as S from '../lib/index';
import { throwsLike } from './helpers';

const { optim } = S;

function twoGroups(lrs = [0.1, 0.02]) {
  const a = S.zeros([2], { requiresGrad: true }), b = S.zeros([3], { requiresGrad: true });
  const opt = new optim.SGD([{ params: [a] }, { params: [b], lr: lrs[1] }], { lr: lrs[0] });
  return { opt, dispose: () => S.dispose([a, b]) };
}

/** Runs `steps` steps; the rates of every group after construction and after each step. */
function rates(sched: { step(): void; getLastLr(): number[] }, steps: number): number[][] {
  const out = [sched.getLastLr()];
  for (let i = 0; i < steps; i++) {
    sched.step();
    out.push(sched.getLastLr());
  }
  return out;
}

/** PyTorch's chainable rule: lr_t from lr_{t−1} (t ≥ 1), lr_0 from the base. */
function chained(base: number[], steps: number, first: (b: number) => number, next: (prev: number, t: number, b: number) => number): number[][] {
  const out = [base.map(first)];
  for (let t = 1; t <= steps; t++) out.push(out[t - 1].map((prev, i) => next(prev, t, base[i])));
  return out;
}

function assertRates(got: number[][], want: number[][], what: string): void {
  assert.is(got.length, want.length, what);
  got.forEach((row, t) =>
    row.forEach((v, i) => {
      if (!(Math.abs(v - want[t][i]) <= 1e-12 * Math.max(1e-3, Math.abs(want[t][i]))))
        assert.unreachable(`${what}: step ${t}, group ${i}: ${v}, PyTorch's rule gives ${want[t][i]}`);
    }),
  );
}

const BASE = [0.1, 0.02];
const N = 60;

test('StepLR, MultiStepLR, ExponentialLR, LinearLR, CosineAnnealingLR, LambdaLR equal PyTorch\'s chainable rules over 60 steps', () => {
  const cases: [string, (o: S.optim.Optimizer<object>) => S.optim.LRScheduler, number[][]][] = [
    ['StepLR(7, 0.5)', (o) => new optim.StepLR(o, { stepSize: 7, gamma: 0.5 }),
      chained(BASE, N, (b) => b, (p, t) => (t % 7 === 0 ? p * 0.5 : p))],
    ['MultiStepLR([5, 20, 20, 41], 0.3)', (o) => new optim.MultiStepLR(o, { milestones: [20, 5, 41, 20], gamma: 0.3 }),
      chained(BASE, N, (b) => b, (p, t) => p * 0.3 ** [5, 20, 20, 41].filter((m) => m === t).length)],
    ['ExponentialLR(0.93)', (o) => new optim.ExponentialLR(o, { gamma: 0.93 }), chained(BASE, N, (b) => b, (p) => p * 0.93)],
    ['LinearLR(0.25, 0.9, 17)', (o) => new optim.LinearLR(o, { startFactor: 0.25, endFactor: 0.9, totalIters: 17 }),
      chained(BASE, N, (b) => b * 0.25, (p, t) => (t > 17 ? p : p * (1 + (0.9 - 0.25) / (17 * 0.25 + (t - 1) * (0.9 - 0.25)))))],
    ['LinearLR defaults', (o) => new optim.LinearLR(o),
      chained(BASE, N, (b) => b / 3, (p, t) => (t > 5 ? p : p * (1 + (1 - 1 / 3) / (5 / 3 + (t - 1) * (1 - 1 / 3)))))],
    ['CosineAnnealingLR(13, 0.001)', (o) => new optim.CosineAnnealingLR(o, { tMax: 13, etaMin: 0.001 }),
      chained(BASE, N, (b) => b, (p, t, b) => {
        const T = 13, eta = 0.001;
        if ((t - 1 - T) % (2 * T) === 0) return p + ((b - eta) * (1 - Math.cos(Math.PI / T))) / 2;
        return ((1 + Math.cos((Math.PI * t) / T)) / (1 + Math.cos((Math.PI * (t - 1)) / T))) * (p - eta) + eta;
      })],
    ['LambdaLR(one per group)', (o) => new optim.LambdaLR(o, { lrLambda: [(t) => 1 / (1 + t), (t) => 0.99 ** t] }),
      chained(BASE, N, (b) => b, (_p, t, b) => (b === BASE[0] ? BASE[0] / (1 + t) : BASE[1] * 0.99 ** t))],
  ];
  // what the rules amount to while nothing else writes lr
  const closed: Record<string, (t: number, b: number) => number> = {
    'StepLR(7, 0.5)': (t, b) => b * 0.5 ** Math.floor(t / 7),
    'ExponentialLR(0.93)': (t, b) => b * 0.93 ** t,
    'LinearLR(0.25, 0.9, 17)': (t, b) => b * (0.25 + ((0.9 - 0.25) * Math.min(t, 17)) / 17),
    'CosineAnnealingLR(13, 0.001)': (t, b) => 0.001 + ((b - 0.001) * (1 + Math.cos((Math.PI * t) / 13))) / 2,
  };
  for (const [what, make, want] of cases) {
    const { opt, dispose } = twoGroups(BASE);
    const s = make(opt);
    assert.is(s.lastEpoch, 0, what);
    const got = rates(s, N);
    assertRates(got, want, what);
    if (closed[what]) assertRates(got, got.map((_, t) => BASE.map((b) => closed[what](t, b))), `${what} (closed form)`);
    assert.equal(opt.paramGroups.map((g) => g.lr), got[N], `${what}: the groups' lr are the last rates`);
    dispose();
  }
});

function oneGroup(lr = 1) {
  const w = S.zeros([1], { requiresGrad: true });
  return { opt: new optim.SGD([w], { lr }), dispose: () => w.dispose() };
}

test('two schedulers stepped together compose; a later one starts from the current rate; a refused one records nothing (PyTorch 1.13\'s values)', () => {
  const near = (got: number[], want: number[], what: string) =>
    got.forEach((v, i) => assert.ok(Math.abs(v - want[i]) <= 1e-12 * Math.abs(want[i]), `${what}: step ${i}: ${v}, PyTorch ${want[i]}`));
  {
    const { opt, dispose } = oneGroup();
    const a = new optim.ExponentialLR(opt, { gamma: 0.9 }), b = new optim.MultiStepLR(opt, { milestones: [3], gamma: 0.1 });
    const got = [opt.paramGroups[0].lr];
    for (let i = 0; i < 5; i++) (a.step(), b.step(), got.push(opt.paramGroups[0].lr));
    near(got, [1, 0.9, 0.81, 0.0729, 0.06561, 0.059049], 'ExponentialLR + MultiStepLR');
    // resumed from the three state dicts in either order, the pair goes on as it would have
    for (const order of [['a', 'b'], ['b', 'a']]) {
      const { opt: o2, dispose: d2 } = oneGroup(7);
      const a2 = new optim.ExponentialLR(o2, { gamma: 0.9 }), b2 = new optim.MultiStepLR(o2, { milestones: [3], gamma: 0.1 });
      o2.loadStateDict(opt.stateDict());
      for (const k of order) (k === 'a' ? a2.loadStateDict(a.stateDict()) : b2.loadStateDict(b.stateDict()));
      const more = [0, 1].map(() => (a2.step(), b2.step(), o2.paramGroups[0].lr));
      near(more, [0.059049 * 0.9, 0.059049 * 0.81], `resumed (${order.join(', ')})`);
      d2();
    }
    dispose();
  }
  {
    const { opt, dispose } = oneGroup();
    const s1 = new optim.StepLR(opt, { stepSize: 1, gamma: 0.5 });
    s1.step();
    s1.step();
    const s2 = new optim.StepLR(opt, { stepSize: 2, gamma: 0.1 });
    assert.equal(s2.baseLrs, [1], "the base is the group's initial lr");
    const got = [opt.paramGroups[0].lr];
    for (let i = 0; i < 4; i++) (s2.step(), got.push(opt.paramGroups[0].lr));
    near(got, [0.25, 0.25, 0.025, 0.025, 0.0025], 'a second StepLR');
    dispose();
  }
  {
    const { opt, dispose } = oneGroup();
    const c = new optim.CosineAnnealingLR(opt, { tMax: 4, etaMin: 0.1 }), l = new optim.LinearLR(opt, { startFactor: 0.5, endFactor: 1, totalIters: 3 });
    const got = [opt.paramGroups[0].lr];
    for (let i = 0; i < 10; i++) (c.step(), l.step(), got.push(opt.paramGroups[0].lr));
    near(got, [0.5, 0.5885618083164126, 0.48274110156778766, 0.25452272785247504, 0.1, 0.2318019484660536, 0.55, 0.8681980515339467,
      1.0000000000000004, 0.8681980515339468, 0.5500000000000004], 'CosineAnnealingLR + LinearLR');
    dispose();
  }
  {
    const { opt, dispose } = oneGroup(0.1);
    throwsLike(() => new optim.LinearLR(opt, { startFactor: 2 }), RangeError, /'startFactor' must be in \(0, 1\]/);
    throwsLike(() => new optim.LambdaLR(opt, { lrLambda: () => -1 }), RangeError, /a learning rate of -0\.1 at step 0/);
    assert.is(opt.paramGroups[0].lr, 0.1, 'the refused schedulers left the rate alone');
    opt.paramGroups[0].lr = 0.5;
    const s = new optim.LinearLR(opt, { startFactor: 0.5, totalIters: 2 });
    assert.equal([s.baseLrs[0], opt.paramGroups[0].lr], [0.5, 0.25], 'no initial lr was recorded by the refused ones');
    dispose();
  }
});

test('getLinearScheduleWithWarmup / getCosineScheduleWithWarmup: transformers\' factors at hand-computed steps', () => {
  const { opt, dispose } = twoGroups([1, 0.5]);
  const lin = optim.getLinearScheduleWithWarmup(opt, { numWarmupSteps: 10, numTrainingSteps: 110 });
  const r = rates(lin, 130);
  for (const [t, f] of [[0, 0], [1, 0.1], [5, 0.5], [10, 1], [60, 0.5], [85, 0.25], [110, 0], [130, 0]])
    assert.ok(Math.abs(r[t][0] - f) < 1e-15 && Math.abs(r[t][1] - 0.5 * f) < 1e-15, `linear, step ${t}: ${r[t]}, want factor ${f}`);
  const cos = optim.getCosineScheduleWithWarmup(opt, { numWarmupSteps: 4, numTrainingSteps: 104 });
  const c = rates(cos, 120); // past numTrainingSteps transformers' factor rises again (progress is not clamped)
  for (const [t, f] of [[0, 0], [2, 0.5], [4, 1], [29, (1 + Math.cos(Math.PI / 4)) / 2], [54, 0.5], [104, 0], [120, (1 + Math.cos(Math.PI * 1.16)) / 2]])
    assert.ok(Math.abs(c[t][0] - f) < 1e-15, `cosine, step ${t}: ${c[t][0]}, want ${f}`);
  // numCycles = 1: down to 0 at the middle and back up to 1 at the end
  const full = optim.getCosineScheduleWithWarmup(opt, { numWarmupSteps: 0, numTrainingSteps: 100, numCycles: 1 });
  const fr = rates(full, 100);
  assert.ok(fr[0][0] === 1 && Math.abs(fr[50][0]) < 1e-15 && Math.abs(fr[100][0] - 1) < 1e-15, `${fr[0][0]} ${fr[50][0]} ${fr[100][0]}`);
  dispose();
});

test('the optimizer steps with the scheduled rate; stateDict / loadStateDict resume the schedule exactly', () => {
  S.tidy(() => {
    const w = S.tensor([1, 1], { requiresGrad: true });
    const opt = new optim.SGD([w], { lr: 0.4 });
    const s = new optim.StepLR(opt, { stepSize: 2, gamma: 0.5 });
    const seen: number[] = [];
    for (let i = 0; i < 5; i++) {
      opt.zeroGrad();
      w.sum().backward(); // grad 1: each step moves w by exactly the rate
      const before = w.dataSync()[0];
      opt.step();
      seen.push(before - w.dataSync()[0]);
      s.step();
    }
    [0.4, 0.4, 0.2, 0.2, 0.1].forEach((v, i) => assert.ok(Math.abs(seen[i] - v) < 1e-7, `step ${i} moved ${seen[i]}, want ${v}`));
    const saved = JSON.parse(JSON.stringify(s.stateDict()));
    assert.equal(saved, { lastEpoch: 5, baseLrs: [0.4], lastLr: [0.4 * 0.25] });
    // a fresh optimizer and scheduler (made at another rate) pick up where it stopped: as PyTorch's, the
    // scheduler's state leaves lr alone and the optimizer's brings it back
    const w2 = S.tensor([0, 0], { requiresGrad: true });
    const opt2 = new optim.SGD([w2], { lr: 9 });
    const s2 = new optim.StepLR(opt2, { stepSize: 2, gamma: 0.5 });
    s2.loadStateDict(saved);
    assert.is(opt2.paramGroups[0].lr, 9);
    opt2.loadStateDict(opt.stateDict());
    assert.is(opt2.paramGroups[0].lr, 0.1);
    s.step();
    s2.step();
    assert.equal(s2.getLastLr(), s.getLastLr());
    assert.is(s2.lastEpoch, 6);
    throwsLike(() => s2.loadStateDict({ lastEpoch: -1, baseLrs: [1], lastLr: [1] }), RangeError, /'lastEpoch' must be an integer ≥ 0/);
    throwsLike(() => s2.loadStateDict({ lastEpoch: 1, baseLrs: [1, 2], lastLr: [1] }), RangeError, /'baseLrs' must be 1 finite numbers/);
  });
});

test('schedulers: bad arguments are TypeError / RangeError naming them', () => {
  const { opt, dispose } = twoGroups();
  throwsLike(() => new optim.StepLR(opt, { stepSize: 0 }), RangeError, /optim\.StepLR: 'stepSize' must be an integer ≥ 1, got 0/);
  throwsLike(() => new optim.StepLR(opt, {} as never), TypeError, /'stepSize' is required/);
  throwsLike(() => new optim.StepLR(opt, { stepSize: 2, gama: 0.5 } as never), TypeError, /unknown option 'gama'/);
  throwsLike(() => new optim.StepLR({} as never, { stepSize: 2 }), TypeError, /'optimizer' must be an optimizer/);
  throwsLike(() => new optim.ExponentialLR(opt, { gamma: NaN }), RangeError, /'gamma' must be finite/);
  throwsLike(() => new optim.ExponentialLR(opt, { gamma: -0.5 }), RangeError, /'gamma' must be ≥ 0 \(a learning rate is\), got -0\.5/);
  throwsLike(() => new optim.CosineAnnealingLR(opt, { tMax: 3, etaMin: -1e-3 }), RangeError, /'etaMin' must be ≥ 0/);
  throwsLike(() => new optim.MultiStepLR(opt, { milestones: [1.5] }), TypeError, /'milestones' must be an array of integers/);
  throwsLike(() => new optim.LinearLR(opt, { startFactor: 0 }), RangeError, /'startFactor' must be in \(0, 1\]/);
  throwsLike(() => new optim.LinearLR(opt, { endFactor: 1.5 }), RangeError, /'endFactor' must be in \[0, 1\]/);
  throwsLike(() => new optim.CosineAnnealingLR(opt, { tMax: 0 }), RangeError, /'tMax' must be an integer ≥ 1, got 0/);
  throwsLike(() => new optim.CosineAnnealingLR(opt, { tMax: 4 / 3 }), RangeError, /'tMax' must be an integer ≥ 1/);
  throwsLike(() => new optim.LambdaLR(opt, { lrLambda: [(t: number) => t] }), RangeError, /'lrLambda' has 1 functions but the optimizer has 2 parameter groups/);
  throwsLike(() => new optim.LambdaLR(opt, { lrLambda: 3 as never }), TypeError, /'lrLambda' must be a function/);
  throwsLike(() => new optim.LambdaLR(opt, { lrLambda: () => 'x' as never }), TypeError, /'lrLambda' returned string 'x' at step 0, not a number|'lrLambda' returned .* at step 0/);
  throwsLike(() => new optim.LambdaLR(opt, { lrLambda: () => NaN }), RangeError, /the schedule gave paramGroups\[0\] a learning rate of NaN at step 0/);
  throwsLike(() => optim.getLinearScheduleWithWarmup(opt, { numWarmupSteps: -1, numTrainingSteps: 10 }), RangeError,
    /optim\.getLinearScheduleWithWarmup: 'numWarmupSteps' must be an integer ≥ 0, got -1/);
  throwsLike(() => optim.getCosineScheduleWithWarmup(opt, { numWarmupSteps: 1 } as never), TypeError, /'numTrainingSteps' is required/);
  dispose();
});

test.run();
