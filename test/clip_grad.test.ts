// clip_grad.test.ts — nn.utils.clipGradNorm_ and clipGradValue_ against float64 references written here
// (PyTorch's clip_grad_norm_: total = ‖(‖g_i‖_p)_i‖_p, each g_i ← g_i·min(1, maxNorm/(total + 1e-6))),
// for p ∈ {1, 2, 3, ∞}, float64 / float32 / bfloat16 / float16 gradients of odd shapes (an empty one, a parameter
// without a gradient, a strided gradient) on the CPU, cuda-emu and a GPU when there is one; every
// element checked, the same tensors rewritten in place, NaN handling, bad arguments, and no leaks.
//
// Tolerances: float64 — the norms are the same sums in another order, a few ulps·√n: 1e-13 relative.
// float32 — each square rounds (ε = 6e-8), the sums accumulate in double and round once, sqrt and the
// norm of norms add a few more: < 1e-6 relative for the norm and for the scaled elements. bfloat16 —
// the norm as float32 (the inputs are exact); each element is g·coef rounded once to bfloat16: half an
// ulp, at most 2⁻⁸ relative (float16: 2⁻¹¹) (+ the factor's 1e-6).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as S from '../lib/index';
import type { Tensor, DType } from '../lib/index';
import { rng, freshSeed, liveCounts, assertNoLeak, throwsLike, uniform } from './helpers';

const { nn } = S;
const devices = ['cpu', ...(S.backend().cudaEmu ? ['cuda-emu'] : []), ...(S.backend().cuda ? ['cuda'] : [])];

/** ‖v‖_p in float64. */
function norm(v: ArrayLike<number>, p: number): number {
  let s = 0;
  if (p === Infinity) {
    for (let i = 0; i < v.length; i++) s = Math.max(s, Math.abs(v[i]));
    return s;
  }
  for (let i = 0; i < v.length; i++) s += Math.abs(v[i]) ** p;
  return s ** (1 / p);
}

const SHAPES = [[7, 5], [13], [0, 3], [2, 3, 4], [1]];

/** Parameters of SHAPES with random gradients (values exact in dt), a gradient-less one, and their values. */
function makeParams(seed: number, dt: DType, dev: string, scale: number) {
  const r = rng(seed);
  const params: Tensor[] = [];
  const grads: Float64Array[] = [];
  for (const shape of SHAPES) {
    const n = shape.reduce((a, b) => a * b, 1);
    const p = S.zeros(shape, { dtype: dt, device: dev, requiresGrad: true });
    const host = S.tensor(uniform(r, n, -scale, scale), { shape, dtype: dt });
    const gv = host.to(dev);
    if (gv !== host) host.dispose();
    p.grad = gv;
    grads.push(Float64Array.from(gv.dataSync() as ArrayLike<number>));
    params.push(p);
  }
  params.push(S.zeros([3], { dtype: dt, device: dev, requiresGrad: true })); // no gradient: skipped
  return { params, grads };
}

for (const dev of devices)
  for (const dt of ['float64', 'float32', 'bfloat16', 'float16'] as DType[])
    test(`clipGradNorm_ ${dt} on ${dev}: p = 1, 2, 3, ∞; clipped and unclipped; every element`, () => {
      const seed = freshSeed();
      const before = liveCounts();
      try {
        for (const p of [2, 1, 3, Infinity])
          for (const clip of [true, false]) {
            const { params, grads } = makeParams(seed + p, dt, dev, 2);
            const total = norm(grads.map((g) => norm(g, p)), p);
            const maxNorm = clip ? total / 3 : total * 2;
            const coef = Math.min(1, maxNorm / (total + 1e-6));
            const same = params.map((q) => q.grad);
            const got = nn.utils.clipGradNorm_(params, maxNorm, { normType: p });
            const what = `${dt} on ${dev}, p = ${p}, maxNorm ${maxNorm} (seed ${seed})`;
            assert.equal(got.shape, [], what);
            assert.is(got.dtype, dt === 'float64' ? 'float64' : 'float32', what);
            assert.is(got.device, dev, what);
            const tn = got.item();
            const tolN = dt === 'float64' ? 1e-13 : 1e-6;
            assert.ok(Math.abs(tn - total) <= tolN * total, `${what}: total norm ${tn}, reference ${total}`);
            params.forEach((q, i) => assert.ok(q.grad === same[i], `${what}: parameter ${i}'s gradient was replaced, not rewritten`));
            assert.is(params[params.length - 1].grad, null);
            grads.forEach((g, i) => {
              const out = params[i].grad!.dataSync() as ArrayLike<number>;
              assert.is(out.length, g.length);
              const rel = dt === 'float64' ? 1e-13 : dt === 'float32' ? 1e-6 : dt === 'float16' ? 2 ** -11 + 1e-6 : 2 ** -8 + 1e-6;
              for (let e = 0; e < g.length; e++) {
                const want = g[e] * coef;
                if (!(Math.abs(out[e] - want) <= rel * Math.abs(want) + 1e-300))
                  assert.unreachable(`${what}: gradient ${i} element ${e} is ${out[e]}, want ${want}`);
              }
              if (!clip && (dt === 'float64' || dt === 'float32')) assert.equal(Array.from(out), Array.from(g), `${what}: an unclipped gradient changed`);
            });
            got.dispose();
            S.dispose([...same, ...params]);
          }
      } catch (e) {
        console.error(`  seed ${seed} (STRUCTURA_TEST_SEED=${seed} replays it)`);
        throw e;
      }
      assertNoLeak(before, `clipGradNorm_ ${dt} on ${dev}`);
    });

test('clipGradNorm_: a strided gradient, a gradient listed twice, one tensor, no gradients at all', () => {
  const before = liveCounts();
  S.tidy(() => {
    const q = S.zeros([4, 3], { requiresGrad: true });
    q.grad = S.tensor([[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]]).transpose(0, 1).transpose(0, 1);
    const r = S.zeros([2, 2], { requiresGrad: true });
    r.grad = S.tensor([[3, 0], [4, 0]]).transpose(0, 1); // strided: [[3, 4], [0, 0]]
    assert.ok(!r.grad.isContiguous);
    const t = nn.utils.clipGradNorm_([r, r], 1); // listed twice: clipped once
    assert.ok(Math.abs(t.item() - 5) < 1e-6);
    const out = Array.from(r.grad.dataSync());
    const c = 1 / (5 + 1e-6);
    [3 * c, 4 * c, 0, 0].forEach((v, i) => assert.ok(Math.abs(out[i] - v) < 1e-6, `strided gradient element ${i}: ${out[i]}`));
    const one = nn.utils.clipGradNorm_(q, 1e9); // a single tensor; unclipped
    assert.ok(Math.abs(one.item() - Math.sqrt(650)) < 1e-4);
    const none = nn.utils.clipGradNorm_([S.zeros([2], { requiresGrad: true })], 1);
    assert.is(none.item(), 0);
    // a large p: |g|^p would leave float32's range (20^100); the norm is scaled by max |g| first
    const big = S.zeros([2], { requiresGrad: true });
    big.grad = S.tensor([20, 10]);
    const tb = nn.utils.clipGradNorm_([big], 1e9, { normType: 100 });
    assert.ok(Math.abs(tb.item() - 20 * (1 + 0.5 ** 100) ** 0.01) < 1e-5, `p = 100: ${tb.item()}`);
    assert.equal(Array.from(big.grad.dataSync()), [20, 10]);
  });
  assertNoLeak(before, 'clipGradNorm_ edge cases');
});

test('clipGradNorm_: a NaN / Infinity gradient scales everything by it, or throws with errorIfNonfinite (gradients untouched)', () => {
  S.tidy(() => {
    const a = S.zeros([2], { requiresGrad: true }), b = S.zeros([2], { requiresGrad: true });
    a.grad = S.tensor([1, 2]);
    b.grad = S.tensor([NaN, 1]);
    throwsLike(() => nn.utils.clipGradNorm_([a, b], 1, { errorIfNonfinite: true }), RangeError,
      /nn\.utils\.clipGradNorm_: the total norm of order 2 of the gradients is NaN, so they cannot be clipped/);
    assert.equal(Array.from(a.grad.dataSync()), [1, 2]);
    b.grad = S.tensor([Infinity, 1]);
    throwsLike(() => nn.utils.clipGradNorm_([a, b], 1, { errorIfNonfinite: true, normType: Infinity }), RangeError, /order Infinity .* is Infinity/);
    const t = nn.utils.clipGradNorm_([a, b], 1); // PyTorch's default: coef = 1/(∞ + 1e-6) = 0
    assert.is(t.item(), Infinity);
    assert.equal(Array.from(a.grad.dataSync()), [0, 0]);
  });
});

test('clipGradValue_: clamps in place (contiguous and strided), skips missing gradients', () => {
  for (const dev of devices)
    S.tidy(() => {
      const a = S.zeros([5], { requiresGrad: true, device: dev }), b = S.zeros([2, 2], { requiresGrad: true, device: dev });
      a.grad = S.tensor([-3, -0.5, 0, 0.5, 3]).to(dev);
      const ga = a.grad;
      b.grad = S.tensor([[5, -5], [0.25, 1]]).to(dev).transpose(0, 1);
      const c = S.zeros([1], { requiresGrad: true });
      nn.utils.clipGradValue_([a, b, c], 1);
      assert.ok(a.grad === ga);
      assert.equal(Array.from(a.grad.dataSync()), [-1, -0.5, 0, 0.5, 1], dev);
      assert.equal(Array.from(b.grad.dataSync()), [1, 0.25, -1, 1], dev);
      assert.is(c.grad, null);
    });
});

test('clipGradNorm_ / clipGradValue_: bad arguments are TypeError / RangeError naming them', () => {
  const p = S.zeros([2], { requiresGrad: true });
  p.grad = S.ones([2]);
  throwsLike(() => nn.utils.clipGradNorm_([p], -1), RangeError, /'maxNorm' must be ≥ 0, got -1/);
  throwsLike(() => nn.utils.clipGradNorm_([p], NaN), RangeError, /'maxNorm' must be ≥ 0, got NaN/);
  throwsLike(() => nn.utils.clipGradNorm_([p], '1' as never), TypeError, /'maxNorm' must be a number, got string/);
  throwsLike(() => nn.utils.clipGradNorm_([p], 1, { normType: 0 }), RangeError, /'normType' must be > 0 or Infinity, got 0/);
  throwsLike(() => nn.utils.clipGradNorm_([p], 1, { normType: '2' as never }), TypeError, /'normType' must be a number/);
  throwsLike(() => nn.utils.clipGradNorm_([p], 1, { norm: 2 } as never), TypeError, /unknown option 'norm'/);
  throwsLike(() => nn.utils.clipGradNorm_([p], 1, { errorIfNonfinite: 1 as never }), TypeError, /'errorIfNonfinite' must be a boolean/);
  throwsLike(() => nn.utils.clipGradNorm_(new nn.Linear(2, 2) as never, 1), TypeError, /pass module\.parameters\(\)/);
  throwsLike(() => nn.utils.clipGradNorm_([p, 3 as never], 1), TypeError, /'parameters'\[1\] must be a Tensor, got number 3/);
  throwsLike(() => nn.utils.clipGradNorm_(5 as never, 1), TypeError, /'parameters' must be a Tensor or an iterable of tensors/);
  throwsLike(() => nn.utils.clipGradValue_([p], -0.5), RangeError, /'clipValue' must be ≥ 0, got -0.5/);
  const d = S.zeros([2], { requiresGrad: true });
  d.dispose();
  throwsLike(() => nn.utils.clipGradValue_([d], 1), TypeError, /'parameters'\[0\] is a disposed tensor/);
  assert.equal(Array.from(p.grad!.dataSync()), [1, 1]);
  p.dispose();
});

test('clipGradNorm_ in a training loop: the step uses the clipped gradients', () => {
  S.tidy(() => {
    const w = S.tensor([3, 4], { requiresGrad: true });
    const opt = new S.optim.SGD([w], { lr: 0.5 });
    w.mul(w).sum().div(2).backward(); // grad = w = [3, 4], norm 5
    const t = nn.utils.clipGradNorm_([w], 1);
    assert.ok(Math.abs(t.item() - 5) < 1e-6);
    opt.step();
    const out = Array.from(w.dataSync());
    const c = 1 / (5 + 1e-6);
    assert.ok(Math.abs(out[0] - (3 - 0.5 * 3 * c)) < 1e-6 && Math.abs(out[1] - (4 - 0.5 * 4 * c)) < 1e-6, `${out}`);
    opt.zeroGrad();
  });
});

test.run();
