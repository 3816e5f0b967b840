// optim.test.ts — optim.SGD and optim.AdamW against float64 re-implementations of PyTorch's update
// formulas (written below, independently of lib/optim), weight decay, parameter groups and
// learning-rate changes, stateDict round trips, in-place updates (same tensors, same storage, no
// native buffer growth across steps), and bad arguments.
//
// Reference formulas (PyTorch 2.x, torch/optim/sgd.py and adamw.py, single-tensor path):
//   SGD:   g ← −g if maximize; g ← g + wd·p; if μ ≠ 0: b ← g (first step) else b ← μ·b + (1 − τ)·g,
//          g ← g + μ·b if nesterov else b;  p ← p − lr·g
//   AdamW: t ← t + 1; g ← −g if maximize; p ← p·(1 − lr·wd); m ← β₁m + (1 − β₁)g; v ← β₂v + (1 − β₂)g²;
//          v̂ ← max(v̂, v) (amsgrad, then used for v); p ← p − (lr/(1 − β₁ᵗ))·m/(√v/√(1 − β₂ᵗ) + ε)
//
// Tolerances. In float64 the library and the reference evaluate the same formulas in a slightly
// different order (e.g. multiplying by 1/√(1 − β₂ᵗ) instead of dividing), so they differ by a few
// roundings per step: T = 12 steps × about 8 ops × ε₆₄ (1.1e-16) ≈ 1e-14 of the largest magnitude
// (measured: 1.3e-16). In float32 every op rounds to ε₃₂ = 6e-8 relative: T × 8 × ε₃₂ ≈ 6e-6 of the
// largest magnitude (measured: 5.9e-7). Parameters and gradients start float32-representable, so
// both sides see the same inputs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tensor, randn, zeros, memory, mseLoss, matmul, add, tidy, nn, optim, Tensor } from '../lib/index';
import { native } from '../lib/native';

// ---- a seeded float64 generator for the problems (mulberry32 + Box–Muller) ----
function rng(seed: number): () => number {
  let s = seed >>> 0;
  const u = (): number => {
    s = (s + 0x6d2b79f5) | 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}
function normals(seed: number, n: number): Float64Array {
  const r = rng(seed);
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = r();
  return a;
}

// ---- the float64 references ----
interface SGDRef { lr: number; momentum?: number; dampening?: number; weightDecay?: number; nesterov?: boolean; maximize?: boolean }
function sgdRef(p: Float64Array, grads: Float64Array[], o: SGDRef): Float64Array[] {
  const { lr, momentum = 0, dampening = 0, weightDecay = 0, nesterov = false, maximize = false } = o;
  p = p.slice();
  let buf: Float64Array<ArrayBufferLike> | null = null;
  const traj: Float64Array[] = [];
  for (const g0 of grads) {
    const g = g0.map((v, i) => (maximize ? -v : v) + weightDecay * p[i]);
    let d: Float64Array<ArrayBufferLike> = g;
    if (momentum !== 0) {
      if (!buf) buf = g.slice();
      else for (let i = 0; i < g.length; i++) buf[i] = momentum * buf[i] + (1 - dampening) * g[i];
      d = nesterov ? g.map((v, i) => v + momentum * buf![i]) : buf;
    }
    for (let i = 0; i < p.length; i++) p[i] -= lr * d[i];
    traj.push(p.slice());
  }
  return traj;
}

interface AdamWRef { lr: number; betas?: [number, number]; eps?: number; weightDecay?: number; amsgrad?: boolean; maximize?: boolean }
function adamwRef(p: Float64Array, grads: Float64Array[], o: AdamWRef): Float64Array[] {
  const { lr, betas = [0.9, 0.999], eps = 1e-8, weightDecay = 1e-2, amsgrad = false, maximize = false } = o;
  const [b1, b2] = betas;
  p = p.slice();
  const m = new Float64Array(p.length), v = new Float64Array(p.length), vmax = new Float64Array(p.length);
  const traj: Float64Array[] = [];
  let t = 0;
  for (const g0 of grads) {
    t++;
    for (let i = 0; i < p.length; i++) {
      const g = maximize ? -g0[i] : g0[i];
      p[i] *= 1 - lr * weightDecay;
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      let vv = v[i];
      if (amsgrad) vv = vmax[i] = Math.max(vmax[i], v[i]);
      const denom = Math.sqrt(vv) / Math.sqrt(1 - b2 ** t) + eps;
      p[i] -= (lr / (1 - b1 ** t)) * (m[i] / denom);
    }
    traj.push(p.slice());
  }
  return traj;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.is(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const STEPS = 12;

/**
 * Runs `make(params)` for STEPS steps on two parameters (shapes [17] and [3, 5]) with seeded random
 * gradients assigned to .grad, and compares every step with the reference.
 */
function compare(name: string, dtype: 'float32' | 'float64', make: (ps: Tensor[]) => optim.Optimizer<object>,
  ref: (p: Float64Array, grads: Float64Array[]) => Float64Array[], seed: number): void {
  const shapes = [[17], [3, 5]];
  const sizes = shapes.map((s) => s.reduce((a, b) => a * b, 1));
  const p0 = sizes.map((n, k) => normals(seed + k, n));
  // float32 parameters start from float32-rounded values, so both sides see the same start.
  const start = p0.map((a) => (dtype === 'float32' ? Float64Array.from(Float32Array.from(a)) : a));
  const grads = sizes.map((n, k) => Array.from({ length: STEPS }, (_, t) => {
    const g = normals(seed + 100 * (k + 1) + t, n);
    return dtype === 'float32' ? Float64Array.from(Float32Array.from(g)) : g;
  }));
  const params = start.map((a, k) => tensor(a, { shape: shapes[k], dtype, requiresGrad: true }));
  const opt = make(params);
  const expect = start.map((a, k) => ref(a, grads[k]));
  const tol = (k: number): number => (dtype === 'float64' ? 1e-14 : 6e-6) * Math.max(1, maxAbs(expect[k][STEPS - 1]));
  for (let t = 0; t < STEPS; t++) {
    params.forEach((p, k) => {
      p.grad = tensor(grads[k][t], { shape: shapes[k], dtype });
    });
    opt.step();
    params.forEach((p, k) => {
      const err = maxDiff(p.dataSync(), expect[k][t]);
      if (!(err <= tol(k))) assert.unreachable(`${name} ${dtype}: step ${t + 1}, param ${k}: max error ${err} > ${tol(k)} (seed ${seed})`);
    });
  }
  opt.dispose();
  for (const p of params) p.dispose();
}

const sgdCases: [string, SGDRef][] = [
  ['plain', { lr: 0.1 }],
  ['momentum', { lr: 0.05, momentum: 0.9 }],
  ['momentum + dampening', { lr: 0.05, momentum: 0.8, dampening: 0.3 }],
  ['nesterov', { lr: 0.05, momentum: 0.9, nesterov: true }],
  ['weight decay', { lr: 0.1, weightDecay: 0.05 }],
  ['everything', { lr: 0.03, momentum: 0.7, weightDecay: 0.02, nesterov: true, maximize: true }],
];
for (const [name, o] of sgdCases) {
  for (const dtype of ['float64', 'float32'] as const) {
    test(`SGD ${name} (${dtype}) matches the float64 reference over ${STEPS} steps`, () => {
      compare(`SGD ${name}`, dtype, (ps) => new optim.SGD(ps, o), (p, g) => sgdRef(p, g, o), 1000 + name.length);
    });
  }
}

const adamCases: [string, AdamWRef][] = [
  ['defaults (lr 1e-3, wd 1e-2)', { lr: 1e-3 }],
  ['lr 0.1, wd 0.1', { lr: 0.1, weightDecay: 0.1 }],
  ['betas, eps', { lr: 0.05, betas: [0.8, 0.99], eps: 1e-3, weightDecay: 0 }],
  ['amsgrad', { lr: 0.05, amsgrad: true, weightDecay: 0.01 }],
  ['maximize', { lr: 0.02, maximize: true, weightDecay: 0.03 }],
];
for (const [name, o] of adamCases) {
  for (const dtype of ['float64', 'float32'] as const) {
    test(`AdamW ${name} (${dtype}) matches the float64 reference over ${STEPS} steps`, () => {
      compare(`AdamW ${name}`, dtype, (ps) => new optim.AdamW(ps, o), (p, g) => adamwRef(p, g, o), 2000 + name.length);
    });
  }
}

test('weight decay alone: SGD is p·(1 − lr·wd)ᵗ, and so is AdamW (decoupled) with zero gradients', () => {
  const p0 = [1.5, -2, 0.25, 3];
  const lr = 0.1, wd = 0.2, T = 5;
  for (const Opt of [optim.SGD, optim.AdamW]) {
    const p = tensor(p0, { dtype: 'float64', requiresGrad: true });
    const opt = new Opt([p], { lr, weightDecay: wd });
    for (let t = 0; t < T; t++) {
      p.grad = zeros([4], { dtype: 'float64' });
      opt.step();
    }
    const got = p.dataSync();
    // AdamW with g = 0: m = v = 0, so the Adam part is 0/(0 + ε) = 0 and only the decay acts.
    p0.forEach((v, i) => assert.ok(Math.abs(got[i] - v * (1 - lr * wd) ** T) <= 1e-15 * Math.abs(v), `${Opt.name}: ${got[i]} vs ${v * (1 - lr * wd) ** T}`));
    opt.dispose();
    p.dispose();
  }
});

test('AdamW: weight decay is decoupled (not added to the gradient as SGD does)', () => {
  // With a constant gradient the Adam part of the first step is exactly lr·sign(g) (m̂/√v̂ = g/|g|,
  // up to ε), independent of wd; coupled decay would change g and hence the step.
  const p = tensor([2, -3], { dtype: 'float64', requiresGrad: true });
  const opt = new optim.AdamW([p], { lr: 0.1, weightDecay: 0.5, eps: 0 });
  p.grad = tensor([0.3, 0.7], { dtype: 'float64' });
  opt.step();
  const got = p.dataSync();
  assert.ok(Math.abs(got[0] - (2 * (1 - 0.05) - 0.1)) < 1e-15, String(got[0]));
  assert.ok(Math.abs(got[1] - (-3 * (1 - 0.05) - 0.1)) < 1e-15, String(got[1]));
  opt.dispose();
  p.dispose();
});

test('AdamW trains a float64 Linear through autograd exactly as the reference with analytic MSE gradients', () => {
  // loss = mean((x·Wᵀ + b − y)²) over N·O elements; dL/dŶ = 2(Ŷ − y)/(N·O); dW = dŶᵀ·x; db = Σ_rows dŶ.
  const N = 9, I = 5, O = 3, T = 15;
  const lin = new nn.Linear(I, O, { dtype: 'float64', seed: 11 });
  const X = normals(5, N * I), Y = normals(6, N * O);
  const x = tensor(X, { shape: [N, I], dtype: 'float64' });
  const y = tensor(Y, { shape: [N, O], dtype: 'float64' });
  const W = Float64Array.from(lin.weight.dataSync()), B = Float64Array.from(lin.bias!.dataSync());
  const o = { lr: 0.05, betas: [0.9, 0.95] as [number, number], eps: 1e-8, weightDecay: 0.1 };
  const opt = new optim.AdamW(lin.parameters(), o);
  // reference state
  const P = [W, B];
  const m = P.map((a) => new Float64Array(a.length)), v = P.map((a) => new Float64Array(a.length));
  for (let t = 1; t <= T; t++) {
    // library step
    opt.zeroGrad();
    const pred = lin.forward(x);
    const loss = mseLoss(pred, y);
    loss.backward();
    opt.step();
    pred.dispose();
    loss.dispose();
    // reference step
    const dY = new Float64Array(N * O);
    for (let n = 0; n < N; n++)
      for (let j = 0; j < O; j++) {
        let s = B[j];
        for (let k = 0; k < I; k++) s += X[n * I + k] * W[j * I + k];
        dY[n * O + j] = (2 * (s - Y[n * O + j])) / (N * O);
      }
    const dW = new Float64Array(O * I), dB = new Float64Array(O);
    for (let n = 0; n < N; n++)
      for (let j = 0; j < O; j++) {
        dB[j] += dY[n * O + j];
        for (let k = 0; k < I; k++) dW[j * I + k] += dY[n * O + j] * X[n * I + k];
      }
    [dW, dB].forEach((g, q) => {
      const p = P[q];
      for (let i = 0; i < p.length; i++) {
        p[i] *= 1 - o.lr * o.weightDecay;
        m[q][i] = o.betas[0] * m[q][i] + (1 - o.betas[0]) * g[i];
        v[q][i] = o.betas[1] * v[q][i] + (1 - o.betas[1]) * g[i] * g[i];
        p[i] -= (o.lr / (1 - o.betas[0] ** t)) * (m[q][i] / (Math.sqrt(v[q][i]) / Math.sqrt(1 - o.betas[1] ** t) + o.eps));
      }
    });
    const ew = maxDiff(lin.weight.dataSync(), W), eb = maxDiff(lin.bias!.dataSync(), B);
    // The gradients come from GEMMs summing in another order than the loops above (≈ K·ε₆₄ relative),
    // and Adam's m/√v can magnify that where a gradient element nearly cancels: 1e-12 absolute on
    // weights of size ≈ 0.5 still catches any formula error (those show at ≥ 1e-4).
    assert.ok(ew <= 1e-12 && eb <= 1e-12, `step ${t}: weight error ${ew}, bias error ${eb}`);
  }
  opt.dispose();
  lin.dispose();
  x.dispose();
  y.dispose();
});

test('updates are in place: same Tensor objects, same storage, grads untouched', () => {
  const lin = new nn.Linear(4, 3, { seed: 1 });
  const params = lin.parameters();
  const ids = params.map((p) => native().storageId(p._h));
  for (const opt of [new optim.SGD(params, { lr: 0.1, momentum: 0.9 }), new optim.AdamW(params, { lr: 0.1 })]) {
    params.forEach((p) => (p.grad = randn(p.shape, { seed: 3 })));
    const gBefore = params.map((p) => Array.from(p.grad!.dataSync()));
    opt.step();
    assert.ok(lin.weight === params[0] && lin.bias === params[1]);
    params.forEach((p, i) => {
      assert.is(native().storageId(p._h), ids[i]);
      assert.equal(Array.from(p.grad!.dataSync()), gBefore[i]);
    });
    opt.zeroGrad();
    params.forEach((p) => assert.is(p.grad, null));
    opt.dispose();
  }
  lin.dispose();
});

test('no native buffers or tensors are left behind per step (after the state is allocated)', () => {
  const lin = new nn.Linear(33, 17, { seed: 2 });
  const params = lin.parameters();
  params.forEach((p) => (p.grad = randn(p.shape, { seed: 4 })));
  const opts: optim.Optimizer<object>[] = [
    new optim.SGD(params, { lr: 0.01, momentum: 0.9, weightDecay: 0.1, nesterov: true, maximize: true }),
    new optim.SGD(params, { lr: 0.01, momentum: 0.5, dampening: 0.5 }),
    new optim.AdamW(params, { lr: 0.01, amsgrad: true, maximize: true }),
    new optim.AdamW(params, { lr: 0.01 }),
  ];
  for (const opt of opts) {
    opt.step(); // warm-up: allocates the state
    const before = memory();
    for (let i = 0; i < 20; i++) opt.step();
    const after = memory();
    assert.is(after.cpu.buffers, before.cpu.buffers, `${opt.constructor.name}: native buffers ${before.cpu.buffers} → ${after.cpu.buffers}`);
    assert.is(after.cpu.bytes, before.cpu.bytes);
    assert.is(after.numTensors, before.numTensors);
    const held = before.cpu.buffers;
    opt.dispose();
    assert.ok(memory().cpu.buffers < held, 'dispose() releases the state');
  }
  lin.dispose();
});

test('a full training step in a loop (forward, backward, step, zeroGrad) does not grow memory', () => {
  const model = new nn.Sequential(new nn.Linear(6, 10, { seed: 1 }), new nn.Tanh(), new nn.Linear(10, 2, { seed: 2 }));
  const x = randn([16, 6], { seed: 3 }), y = randn([16, 2], { seed: 4 });
  const opt = new optim.AdamW(model.parameters(), { lr: 1e-2 });
  // Every tensor of a step is made inside tidy(), so only the parameters, grads and state remain.
  const stepOnce = (): void =>
    tidy(() => {
      opt.zeroGrad();
      mseLoss(model.forward(x), y).backward();
      opt.step();
    });
  stepOnce();
  stepOnce();
  const before = memory();
  for (let i = 0; i < 10; i++) stepOnce();
  const after = memory();
  assert.is(after.cpu.buffers, before.cpu.buffers);
  assert.is(after.numTensors, before.numTensors);
  opt.dispose();
  model.dispose();
  x.dispose();
  y.dispose();
});

test('a strided (non-contiguous) parameter is updated through its view', () => {
  const base = tensor([[1, 2, 3], [4, 5, 6]], { dtype: 'float64' });
  const p = base.transpose(0, 1).detach(); // [3, 2], strides [1, 3]
  p.requiresGrad = true;
  assert.not.ok(p.isContiguous);
  const opt = new optim.SGD([p], { lr: 0.5, momentum: 0.9 });
  p.grad = tensor([[1, 0], [0, 1], [2, 2]], { dtype: 'float64' });
  opt.step();
  opt.step();
  // two steps with the same g: b = g then 1.9·g; p = p0 − 0.5·(g + 1.9·g) = p0 − 1.45·g
  assert.equal(p.toArray(), [[1 - 1.45, 4], [2, 5 - 1.45], [3 - 2.9, 6 - 2.9]]);
  assert.equal(base.toArray(), [[1 - 1.45, 2, 3 - 2.9], [4, 5 - 1.45, 6 - 2.9]]);
  opt.dispose();
  p.dispose();
  base.dispose();
});

test('parameter groups have their own options; changing group.lr takes effect at the next step', () => {
  const a = tensor([1, 1], { dtype: 'float64', requiresGrad: true });
  const b = tensor([1, 1], { dtype: 'float64', requiresGrad: true });
  const opt = new optim.SGD([{ params: [a] }, { params: [b], lr: 0.5 }], { lr: 0.1 });
  assert.is(opt.paramGroups[0].lr, 0.1);
  assert.is(opt.paramGroups[1].lr, 0.5);
  assert.is(opt.paramGroups[1].momentum, 0);
  a.grad = tensor([1, 2], { dtype: 'float64' });
  b.grad = tensor([1, 2], { dtype: 'float64' });
  opt.step();
  assert.equal(Array.from(a.dataSync()), [1 - 0.1, 1 - 0.2]);
  assert.equal(Array.from(b.dataSync()), [1 - 0.5, 1 - 1.0]);
  opt.paramGroups[0].lr = 1;
  opt.step();
  assert.ok(Math.abs(a.dataSync()[0] - (0.9 - 1)) < 1e-15);
  // a parameter without a gradient is skipped
  a.grad = null;
  const before = Array.from(a.dataSync());
  opt.step();
  assert.equal(Array.from(a.dataSync()), before);
  opt.dispose();
  a.dispose();
  b.dispose();
});

test('step(closure) runs the closure with grad on and returns its result', () => {
  const p = tensor([3], { dtype: 'float64', requiresGrad: true });
  const opt = new optim.SGD([p], { lr: 0.25 });
  const loss = opt.step(() => {
    opt.zeroGrad();
    const l = p.mul(p).sum(); // d/dp p² = 2p = 6
    l.backward();
    return l.item();
  });
  assert.is(loss, 9);
  assert.is(p.item(), 3 - 0.25 * 6);
  opt.dispose();
  p.dispose();
});

for (const kind of ['SGD', 'AdamW'] as const) {
  test(`${kind}: stateDict / loadStateDict round trip continues identically`, () => {
    const make = (ps: Tensor[]): optim.SGD | optim.AdamW =>
      kind === 'SGD' ? new optim.SGD(ps, { lr: 0.1, momentum: 0.9 }) : new optim.AdamW(ps, { lr: 0.1, amsgrad: true });
    const p1 = [randn([5], { seed: 1, dtype: 'float64' }), randn([2, 3], { seed: 2, dtype: 'float64' })];
    p1.forEach((p) => (p.requiresGrad = true));
    const grads = (t: number): Tensor[] => p1.map((p, k) => randn(p.shape, { seed: 100 + 10 * t + k, dtype: 'float64' }));
    const o1 = make(p1);
    for (let t = 0; t < 3; t++) {
      grads(t).forEach((g, k) => (p1[k].grad = g));
      o1.step();
    }
    const sd = o1.stateDict();
    assert.equal(Object.keys(sd.state), ['0', '1']);
    assert.equal(sd.paramGroups.map((g) => g.params), [[0, 1]]);
    if (kind === 'AdamW') assert.is(sd.state[0].step, 3);
    const p2 = p1.map((p) => {
      const c = p.detach().clone();
      c.requiresGrad = true;
      return c;
    });
    const o2 = make(p2);
    o2.paramGroups[0].lr = 123; // replaced by the loaded options
    o2.loadStateDict(sd as never);
    assert.is(o2.paramGroups[0].lr, 0.1);
    // the loaded state is a copy: changing o1 afterwards does not touch o2
    for (let t = 3; t < 6; t++) {
      const g = grads(t);
      g.forEach((gi, k) => {
        p1[k].grad = gi;
        p2[k].grad = gi.clone();
      });
      o1.step();
      o2.step();
    }
    p1.forEach((p, k) => assert.equal(Array.from(p.dataSync()), Array.from(p2[k].dataSync())));
    o1.dispose();
    o2.dispose();
    [...p1, ...p2].forEach((p) => p.dispose());
  });
}

test('loadStateDict rejects mismatched groups and shapes, and changes nothing then', () => {
  const a = tensor([1, 2, 3], { requiresGrad: true });
  const b = tensor([[1, 2], [3, 4]], { requiresGrad: true });
  const o1 = new optim.AdamW([a, b], { lr: 0.1 });
  a.grad = tensor([1, 1, 1]);
  b.grad = tensor([[1, 1], [1, 1]]);
  o1.step();
  const sd = o1.stateDict();
  const c = tensor([1, 2, 3, 4], { requiresGrad: true });
  const o2 = new optim.AdamW([a, c], { lr: 0.1 });
  assert.throws(() => o2.loadStateDict(sd), (e: Error) => e instanceof RangeError && /state\[1\]\.expAvg has shape \[2, 2\].*\[4\]/.test(e.message));
  assert.is(o2.state.size, 0);
  const o3 = new optim.AdamW([{ params: [a] }, { params: [b] }]);
  assert.throws(() => o3.loadStateDict(sd), (e: Error) => e instanceof RangeError && /1 parameter groups.*2/.test(e.message));
  const o4 = new optim.SGD([a, b]);
  // an AdamW state dict given to SGD: its group options are unknown to SGD
  assert.throws(() => o4.loadStateDict(sd as never), (e: Error) => e instanceof TypeError && /optim\.SGD\.loadStateDict.*unknown option 'betas'/.test(e.message));
  const { params: _p, ...sgdOpts } = o4.stateDict().paramGroups[0];
  const foreign = { state: sd.state, paramGroups: [{ ...sgdOpts, params: [0, 1] }] };
  assert.throws(() => o4.loadStateDict(foreign as never), (e: Error) => e instanceof RangeError && /state\[0\]\.step is not part of optim\.SGD/.test(e.message));
  assert.throws(() => o4.loadStateDict(null as never), TypeError);
  // a partial AdamW state (it made step NaN, half-applied a step, or leaked the tensor it overwrote)
  const o5 = new optim.AdamW([a, b], { lr: 0.1 });
  const part = (drop: string) => ({ ...sd, state: { 0: sd.state[0], 1: Object.fromEntries(Object.entries(sd.state[1]).filter(([k]) => k !== drop)) } });
  assert.throws(() => o5.loadStateDict(part('step') as never), (e: Error) => e instanceof RangeError && /state\[1\] has expAvg, expAvgSq but not step: optim\.AdamW keeps step, expAvg, expAvgSq of a parameter together/.test(e.message));
  assert.throws(() => o5.loadStateDict(part('expAvgSq') as never), (e: Error) => e instanceof RangeError && /but not expAvgSq/.test(e.message));
  assert.throws(() => o5.loadStateDict({ ...sd, state: { 0: { ...sd.state[0], step: -1 } } } as never), (e: Error) => e instanceof RangeError && /state\[0\]\.step must be a step count \(an integer ≥ 0\), got -1/.test(e.message));
  assert.throws(() => o5.loadStateDict({ ...sd, state: { 0: { ...sd.state[0], step: 1.5 } } } as never), RangeError);
  assert.throws(() => o5.loadStateDict({ ...sd, state: { '00': sd.state[0] } } as never), (e: Error) => e instanceof RangeError && /state\["00"\] refers to no parameter/.test(e.message));
  assert.is(o5.state.size, 0);
  o5.loadStateDict({ ...sd, state: { 0: sd.state[0] } }); // a parameter without state is fine (it starts fresh)
  assert.is(o5.state.size, 1);
  for (const o of [o1, o2, o3, o4, o5]) o.dispose();
  for (const t of [a, b, c]) t.dispose();
});

test("loadStateDict of the optimizer's own stateDict() returns to it; a failing step() changes nothing", () => {
  for (const make of [(ps: Tensor[]) => new optim.SGD(ps, { lr: 0.1, momentum: 0.9 }), (ps: Tensor[]) => new optim.AdamW(ps, { lr: 0.1 })]) {
    const run = (selfLoad: boolean) => {
      const p = tensor([1, 2, 3], { dtype: 'float64', requiresGrad: true });
      const o = make([p]);
      p.grad = tensor([1, 1, 1], { dtype: 'float64' });
      o.step();
      // the state dict holds the optimizer's own tensors: the load copies all of it before the old goes
      if (selfLoad) o.loadStateDict(o.stateDict() as never);
      o.step();
      const v = Array.from(p.dataSync());
      o.dispose();
      p.dispose();
      return v;
    };
    assert.equal(run(true), run(false));
  }
  // a bad group (lr < 0 set by a schedule) or a gradient on another device: nothing is stepped
  const a = tensor([1, 2], { requiresGrad: true }), b = tensor([3], { requiresGrad: true });
  const o = new optim.SGD([{ params: [a] }, { params: [b] }], { lr: 0.5 });
  a.grad = tensor([1, 1]);
  b.grad = tensor([1]);
  o.paramGroups[1].lr = -1;
  assert.throws(() => o.step(), (e: Error) => e instanceof RangeError && /paramGroups\[1\].*'lr'/.test(e.message));
  assert.equal(Array.from(a.dataSync()), [1, 2]);
  o.paramGroups[1].lr = 0.5;
  const before = Array.from(b.dataSync());
  b.dispose();
  assert.throws(() => o.step(), (e: Error) => e instanceof TypeError && /paramGroups\[1\]\.params\[0\] \[1\] was disposed/.test(e.message));
  assert.equal(Array.from(a.dataSync()), [1, 2]);
  assert.equal(before, [3]);
  o.dispose();
  for (const t of [a.grad!, a]) t.dispose();
});

test('bad arguments: TypeError for wrong kinds, RangeError for bad values', () => {
  const p = tensor([1, 2], { requiresGrad: true });
  const lin = new nn.Linear(2, 2);
  const rangeErr = (f: () => unknown, re: RegExp): void =>
    assert.throws(f, (e: Error) => e instanceof RangeError && re.test(e.message), re.source);
  const typeErr = (f: () => unknown, re: RegExp): void =>
    assert.throws(f, (e: Error) => e instanceof TypeError && re.test(e.message), re.source);
  rangeErr(() => new optim.SGD([p], { lr: -0.1 }), /'lr' must be a finite number ≥ 0, got -0\.1/);
  rangeErr(() => new optim.AdamW([p], { lr: -1 }), /optim\.AdamW.*'lr'/);
  rangeErr(() => new optim.AdamW([p], { lr: NaN }), /'lr'/);
  typeErr(() => new optim.SGD([p], { lr: '0.1' as never }), /'lr' must be a number, got string/);
  rangeErr(() => new optim.SGD([p], { momentum: -0.5 }), /'momentum'/);
  rangeErr(() => new optim.SGD([p], { weightDecay: -1 }), /'weightDecay'/);
  rangeErr(() => new optim.SGD([p], { nesterov: true }), /nesterov.*momentum > 0/);
  rangeErr(() => new optim.SGD([p], { nesterov: true, momentum: 0.9, dampening: 0.1 }), /dampening = 0/);
  rangeErr(() => new optim.AdamW([p], { betas: [1, 0.9] }), /'betas\[0\]' must be in \[0, 1\), got 1/);
  rangeErr(() => new optim.AdamW([p], { betas: [0.9, -0.1] }), /'betas\[1\]'/);
  typeErr(() => new optim.AdamW([p], { betas: [0.9] as never }), /'betas' must be an array of two numbers/);
  rangeErr(() => new optim.AdamW([p], { eps: -1e-8 }), /'eps'/);
  typeErr(() => new optim.AdamW([p], { amsgrad: 1 as never }), /'amsgrad' must be a boolean/);
  typeErr(() => new optim.AdamW([p], { weight_decay: 0.1 } as never), /unknown option 'weight_decay' \(did you mean 'weightDecay'\?\)/);
  typeErr(() => new optim.SGD([p], null as never), /'opts' must be an object/);
  // params
  typeErr(() => new optim.SGD([p, [1, 2]] as never), /params\[1\] must be a Tensor, got an array/);
  typeErr(() => new optim.SGD([1, 2] as never), /must be an object \{params/);
  typeErr(() => new optim.SGD(p as never), /single Tensor/);
  typeErr(() => new optim.SGD(lin as never), /module\.parameters\(\)/);
  typeErr(() => new optim.SGD(undefined as never), /'params' must be an iterable/);
  rangeErr(() => new optim.SGD([]), /empty/);
  rangeErr(() => new optim.SGD([p, p]), /more than once/);
  rangeErr(() => new optim.SGD([{ params: [p] }, { params: [p] }]), /more than once/);
  typeErr(() => new optim.SGD([tensor([1, 2], { dtype: 'int32' })]), /floating/);
  const q = tensor([1, 2], { requiresGrad: true });
  const nonLeaf = q.mul(2);
  typeErr(() => new optim.SGD([nonLeaf]), /not a leaf/);
  // a learning rate made invalid after construction is caught at step()
  const opt = new optim.SGD([p], { lr: 0.1 });
  p.grad = tensor([1, 1]);
  opt.paramGroups[0].lr = -1;
  rangeErr(() => opt.step(), /'lr'/);
  typeErr(() => opt.step(42 as never), /'closure' must be a function/);
  opt.dispose();
  for (const t of [p, q, nonLeaf]) t.dispose();
  lin.dispose();
});

test('matmul + add are what Linear computes (sanity for the reference above)', () => {
  const lin = new nn.Linear(3, 2, { dtype: 'float64', seed: 9 });
  const x = randn([4, 3], { dtype: 'float64', seed: 8 });
  const y1 = lin.forward(x);
  const y2 = add(matmul(x, lin.weight.transpose(0, 1)), lin.bias!);
  assert.equal(Array.from(y1.dataSync()), Array.from(y2.dataSync()));
  lin.dispose();
});

test.run();
