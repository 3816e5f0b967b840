// reduce.test.ts — sum, mean, max, min (all axes, one axis, several, negative axes, keepDims),
// argmax/argmin, softmax, logSoftmax, mseLoss and crossEntropy: forward against float64 references,
// gradients with gradcheck, views as inputs, float16/bfloat16 forwards, leak checks, bad arguments.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as S from '../lib/index';
import type { Tensor } from '../lib/index';
import * as R from './reference/ops';
import { checkOp, throwsLike, liveCounts, assertNoLeak, rng, type Tol } from './helpers';
import { native } from '../lib/native';

// float32 sums of up to a few thousand values in [−2, 2]: the reference's magnitude is ≲ 100, where
// a float32 ulp is ≤ 7.6e−6; 1e−5 absolute + 1e−5 relative allows a couple of ulps of rounding.
const SUM_TOL: Partial<Record<S.DType, Tol>> = {
  float32: { atol: 1e-5, rtol: 1e-5 },
  float64: { atol: 1e-12, rtol: 1e-11 },
  float16: { atol: 2e-2, rtol: 4e-3 },
  bfloat16: { atol: 1.5e-1, rtol: 3e-2 },
};

type Axis = number | number[] | undefined;
const axisCases: [number[], Axis][] = [
  [[1], undefined],
  [[129], undefined],
  [[129], 0],
  [[3, 17], undefined],
  [[3, 17], 0],
  [[3, 17], 1],
  [[3, 17], -1],
  [[3, 17], [0, 1]],
  [[2, 3, 5], [0, 2]],
  [[2, 3, 5], -2],
  [[4, 1, 3], 1],
  [[], undefined],
];

const reductions: [string, (x: Tensor, a?: Axis, k?: boolean) => Tensor, (x: R.NDArray, a: number[] | null, k: boolean) => R.NDArray][] = [
  ['sum', S.sum, R.sum],
  ['mean', S.mean, R.mean],
  ['max', S.max, R.max],
  ['min', S.min, R.min],
];

const axesOf = (a: Axis): number[] | null => (a === undefined ? null : Array.isArray(a) ? a : [a]);

for (const [name, f, ref] of reductions) {
  // max / min are not differentiable where two values tie: checkOp keeps gradcheck's inputs apart
  const kinks = name === 'max' || name === 'min' ? { ties: true } : undefined;
  test(`${name}: all axes, one, several, negative, keepDims; 0-d; odd sizes`, () => {
    for (const [shape, axis] of axisCases)
      for (const keepDims of [false, true])
        checkOp({ shapes: [shape], fn: (x) => f(x, axis, keepDims), ref: (x) => ref(x, axesOf(axis), keepDims), tol: SUM_TOL, kinks });
  });
  test(`${name}: transposed and narrowed inputs; float16/bfloat16`, () => {
    checkOp({ shapes: [[5, 17]], fn: (x) => f(x, 0), ref: (x) => ref(x, [0], false), layout: 'transposed', tol: SUM_TOL, kinks });
    checkOp({ shapes: [[3, 17]], fn: (x) => f(x, -1, true), ref: (x) => ref(x, [-1], true), layout: 'narrowed', tol: SUM_TOL, kinks });
    checkOp({ shapes: [[7, 33]], fn: (x) => f(x, 1), ref: (x) => ref(x, [1], false), dtype: ['float16', 'bfloat16'], grad: false, tol: SUM_TOL });
  });
}

test('float32 row sums: rows summed two at a time get the bits of a row summed alone', () => {
  // The row pass reads two rows side by side (csrc/cpu/elementwise_rows.inc sum2), the first half of
  // a task's rows with the second: each row's result must be that row's (right row, right place), the
  // same bits as the row summed alone, on any number of threads (odd halves included).
  const before = liveCounts();
  const threads = S.getNumThreads();
  for (const [rows, cols, nt] of [[37, 1500, threads], [2, 1031, threads], [9, 4096, 1], [9, 4096, 3]]) {
    S.setNumThreads(nt);
    const x = S.randn([rows, cols]);
    const whole = S.tidy(() => Array.from(S.sum(x, -1).dataSync()));
    const mean = S.tidy(() => Array.from(S.mean(x, -1).dataSync()));
    for (let r = 0; r < rows; r++) {
      const one = S.tidy(() => S.sum(x.narrow(0, r, 1), -1).dataSync()[0]);
      if (!Object.is(whole[r], one)) assert.unreachable(`[${rows}, ${cols}] row ${r}: ${whole[r]} in the pass over all rows, ${one} alone`);
      const ref = S.tidy(() => Array.from(x.narrow(0, r, 1).dataSync()).reduce((a, v) => a + v, 0));
      assert.ok(Math.abs(whole[r] - ref) <= 1e-6 * (1 + Math.abs(ref)), `row ${r}: ${whole[r]} vs ${ref}`);
      assert.ok(Math.abs(mean[r] - ref / cols) <= 1e-6 * (1 + Math.abs(ref / cols)), `mean row ${r}`);
    }
    x.dispose();
  }
  S.setNumThreads(threads);
  assertNoLeak(before, 'row sums');
});

test('sum over an empty axis is 0 and mean is NaN; max of an empty axis is an error', () => {
  checkOp({ shapes: [[0, 3]], fn: (x) => S.sum(x, 0), ref: (x) => R.sum(x, [0]) });
  const before = liveCounts();
  const e = S.zeros([0, 3]);
  const m = S.mean(e, 0);
  assert.ok(Array.from(m.dataSync()).every(Number.isNaN));
  throwsLike(() => S.max(e, 0), RangeError, /empty axis/);
  m.dispose();
  e.dispose();
  assertNoLeak(before, 'empty');
});

test('max/min split the gradient evenly between ties', () => {
  const before = liveCounts();
  const x = S.tensor([[1, 3, 3], [2, 0, -1]], { requiresGrad: true });
  const y = S.max(x, 1);
  const g = S.tensor([1, 1]);
  y.backward(g);
  g.dispose();
  assert.equal(x.grad!.toArray(), [[0, 0.5, 0.5], [1, 0, 0]]);
  const z = S.min(x);
  x.zeroGrad();
  z.backward();
  assert.equal(x.grad!.toArray(), [[0, 0, 0], [0, 0, 1]]);
  for (const t of [x, y, z]) t.dispose();
  assertNoLeak(before, 'ties');
});

test('sum and max of int32 stay int32 and exact', () => {
  const before = liveCounts();
  const x = S.tensor([[1, -2, 3], [4, 5, -6]], { dtype: 'int32' });
  const cases: [Tensor, unknown][] = [
    [S.sum(x), 5],
    [S.sum(x, 0), [5, 3, -3]],
    [S.max(x, 1), [3, 5]],
    [S.min(x, 1, true), [[-2], [-6]]],
  ];
  for (const [t, want] of cases) {
    assert.is(t.dtype, 'int32');
    assert.equal(t.toArray(), want);
    t.dispose();
  }
  x.dispose();
  assertNoLeak(before, 'int32');
});

test('argmax / argmin: along an axis, over all elements, keepDims; int32; no grad', () => {
  for (const [shape, axis] of [[[3, 17], 1], [[3, 17], 0], [[129], 0], [[2, 3, 5], -2], [[1], 0]] as [number[], number][]) {
    for (const keepDims of [false, true]) {
      checkOp({ shapes: [shape], fn: (x) => S.argmax(x, axis, keepDims), ref: (x) => R.argReduce(x, axis, keepDims, true), outDtype: () => 'int32', grad: false, tol: { atol: 0, rtol: 0 } });
      checkOp({ shapes: [shape], fn: (x) => x.argmin(axis, keepDims), ref: (x) => R.argReduce(x, axis, keepDims, false), outDtype: () => 'int32', grad: false, tol: { atol: 0, rtol: 0 } });
    }
  }
  const flat = (x: R.NDArray, isMax: boolean, keep: boolean): R.NDArray => {
    const r = R.argReduce({ data: x.data, shape: [x.data.length] }, 0, false, isMax);
    return { data: r.data, shape: keep ? x.shape.map(() => 1) : [] };
  };
  checkOp({ shapes: [[4, 7]], fn: (x) => S.argmax(x), ref: (x) => flat(x, true, false), outDtype: () => 'int32', grad: false, tol: { atol: 0, rtol: 0 } });
  checkOp({ shapes: [[4, 7]], fn: (x) => S.argmin(x, undefined, true), ref: (x) => flat(x, false, true), outDtype: () => 'int32', grad: false, tol: { atol: 0, rtol: 0 } });
  checkOp({ shapes: [[5, 6]], fn: (x) => S.argmax(x, 1), ref: (x) => R.argReduce(x, 1, false, true), outDtype: () => 'int32', grad: false, tol: { atol: 0, rtol: 0 }, layout: 'transposed' });
});

for (const [name, f, log] of [['softmax', S.softmax, false], ['logSoftmax', S.logSoftmax, true]] as const) {
  test(`${name} along every axis; views; float16/bfloat16`, () => {
    const cases: [number[], number][] = [[[3, 17], -1], [[3, 17], 0], [[129], 0], [[1], 0], [[2, 3, 5], 1], [[4, 1], -1]];
    for (const [shape, axis] of cases) checkOp({ shapes: [shape], fn: (x) => f(x, axis), ref: (x) => R.softmax(x, axis, log), low: -4, high: 4 });
    checkOp({ shapes: [[5, 3]], fn: (x) => f(x), ref: (x) => R.softmax(x, -1, log), layout: 'transposed' });
    checkOp({ shapes: [[3, 9]], fn: (x) => f(x), ref: (x) => R.softmax(x, -1, log), layout: 'narrowed' });
    checkOp({ shapes: [[7, 33]], fn: (x) => f(x), ref: (x) => R.softmax(x, -1, log), dtype: ['float16', 'bfloat16'], grad: false });
    // large logits: stable (no overflow to inf/NaN). Subtracting max + log Σ (≈ 800) rounds at 800's
    // float32 spacing, 6.1e−5, so the absolute tolerance is two of those.
    checkOp({ shapes: [[4, 9]], fn: (x) => f(x), ref: (x) => R.softmax(x, -1, log), low: 500, high: 800, grad: false, tol: { float32: { atol: 1.2e-4, rtol: 1e-5 }, float64: { atol: 1e-12, rtol: 1e-11 } } });
  });
}

test('mseLoss: forward and gradients for both inputs', () => {
  for (const shape of [[3, 17], [129], [1], [2, 3, 5]])
    checkOp({ shapes: [shape, shape], fn: (p: Tensor, t: Tensor) => S.mseLoss(p, t), ref: R.mse, tol: SUM_TOL });
  checkOp({ shapes: [[4, 5], [4, 5]], fn: (p: Tensor, t: Tensor) => S.mseLoss(p, t), ref: R.mse, layout: 'transposed', tol: SUM_TOL });
});

test('mseLoss in one pass (CPU float32 / float64): many chunks, a tail, empty, gradients', () => {
  // csrc/cpu/reduce.cc cpu_mse: chunks of 2^16 elements summed in float64, in order; 300 × 701 is four
  // chunks and a tail that no vector fills. Reference: the same sum in JavaScript doubles.
  const before = liveCounts();
  for (const dtype of ['float32', 'float64'] as const) {
    S.tidy(() => {
      const p = S.randn([300, 701], { dtype, seed: 5 }), t = S.randn([300, 701], { dtype, seed: 6 });
      const pv = p.dataSync(), tv = t.dataSync();
      let ref = 0;
      for (let i = 0; i < pv.length; i++) ref += (pv[i] - tv[i]) ** 2;
      ref /= pv.length;
      const got = S.mseLoss(p, t).item();
      const tol = dtype === 'float32' ? 2 ** -23 : 1e-13;
      assert.ok(Math.abs(got - ref) <= tol * ref, `${dtype}: ${got} vs ${ref}`);
      assert.ok(Number.isNaN(S.mseLoss(S.zeros([0, 3], { dtype }), S.zeros([0, 3], { dtype })).item()), 'empty: NaN');
      const pg = S.randn([7, 9], { dtype, seed: 7, requiresGrad: true }), tg = S.randn([7, 9], { dtype, seed: 8, requiresGrad: true });
      S.mseLoss(pg, tg).backward();
      const a = pg.dataSync(), b = tg.dataSync(), ga = pg.grad!.dataSync(), gb = tg.grad!.dataSync();
      for (let i = 0; i < a.length; i++) {
        const want = (2 * (a[i] - b[i])) / a.length;
        assert.ok(Math.abs(ga[i] - want) <= 1e-6 * (1 + Math.abs(want)) && Math.abs(gb[i] + want) <= 1e-6 * (1 + Math.abs(want)), `grad ${i}`);
      }
      pg.grad!.dispose(), tg.grad!.dispose();
    });
  }
  assertNoLeak(before, 'mseLoss one pass');
});

test('crossEntropy: [M, C] with int32 labels, [C] with a 0-d label; gradient for logits', () => {
  for (const [m, c] of [[1, 1], [3, 17], [17, 3], [129, 5], [4, 129]]) {
    const labels = (r: () => number) => [S.tensor(Int32Array.from({ length: m }, () => Math.floor(r() * c)), { shape: [m] })];
    checkOp({ shapes: [[m, c]], extra: labels, fn: (l: Tensor, y: Tensor) => S.crossEntropy(l, y), ref: R.crossEntropy, low: -4, high: 4, tol: SUM_TOL });
  }
  const one = (r: () => number) => [S.tensor(Math.floor(r() * 7), { dtype: 'int32' })];
  checkOp({
    shapes: [[7]],
    extra: one,
    fn: (l: Tensor, y: Tensor) => S.crossEntropy(l, y),
    ref: (l, y) => R.crossEntropy({ data: l.data, shape: [1, 7] }, { data: y.data, shape: [1] }),
    tol: SUM_TOL,
  });
  const labels = (r: () => number) => [S.tensor(Int32Array.from({ length: 5 }, () => Math.floor(r() * 6)), { shape: [5] })];
  checkOp({ shapes: [[5, 6]], extra: labels, fn: (l: Tensor, y: Tensor) => S.crossEntropy(l, y), ref: R.crossEntropy, layout: 'transposed', tol: SUM_TOL });
  checkOp({ shapes: [[5, 6]], extra: labels, fn: (l: Tensor, y: Tensor) => S.crossEntropy(l, y), ref: R.crossEntropy, dtype: ['float16', 'bfloat16'], grad: false, tol: SUM_TOL });
});

test('methods match the functions', () => {
  const before = liveCounts();
  const x = S.randn([3, 4], { seed: 3 });
  const pairs: [Tensor, Tensor][] = [
    [x.sum(), S.sum(x)],
    [x.sum(1, true), S.sum(x, 1, true)],
    [x.mean([0, 1]), S.mean(x, [0, 1])],
    [x.max(-1), S.max(x, -1)],
    [x.min(0), S.min(x, 0)],
    [x.softmax(), S.softmax(x, -1)],
    [x.logSoftmax(0), S.logSoftmax(x, 0)],
  ];
  for (const [a, b] of pairs) {
    assert.equal(a.shape, b.shape);
    assert.equal(Array.from(a.dataSync()), Array.from(b.dataSync()));
    a.dispose();
    b.dispose();
  }
  x.dispose();
  assertNoLeak(before, 'methods');
});

test('max / min: a NaN takes the gradient where the result is NaN (PyTorch), not NaN for the whole slice', () => {
  S.tidy(() => {
    const x = S.tensor([[1, NaN, 3], [1, 2, 3]], { dtype: 'float64', requiresGrad: true });
    S.max(x, 1).sum().backward();
    assert.equal(Array.from(x.grad!.dataSync()), [0, 1, 0, 0, 0, 1]);
    const y = S.tensor([1, NaN, 3], { requiresGrad: true });
    S.min(y).backward();
    assert.equal(Array.from(y.grad!.dataSync()), [0, 1, 0]);
  });
});

test('bad arguments', () => {
  const before = liveCounts();
  const x = S.ones([2, 3]);
  const x32 = S.ones([3, 2]);
  const x3 = S.ones([2, 3, 1]);
  const lab = S.tensor([0, 1], { dtype: 'int32' });
  const lab3 = S.tensor([0, 1, 2], { dtype: 'int32' });
  const labF = S.tensor([0, 1]);
  const bad = S.tensor([0, 3], { dtype: 'int32' });
  throwsLike(() => S.sum(x, 2), RangeError, /structura\.sum: 'axis' 2 is out of range for shape \[2, 3\]/);
  throwsLike(() => S.sum(x, -3), RangeError, /out of range/);
  throwsLike(() => S.mean(x, [0, 0]), RangeError, /repeats axis 0/);
  throwsLike(() => S.max(x, [0, -2]), RangeError, /repeats axis 0/);
  throwsLike(() => S.sum(x, 0.5), RangeError, /'axis' must be an integer, got 0\.5/);
  throwsLike(() => S.sum(x, '0' as unknown as number), TypeError, /'axis' must be an integer/);
  throwsLike(() => S.sum(x, 0, 1 as unknown as boolean), TypeError, /'keepDims' must be a boolean/);
  throwsLike(() => S.sum([1, 2] as unknown as Tensor), TypeError, /structura\.sum: 'x' must be a Tensor/);
  throwsLike(() => S.softmax(x, 2), RangeError, /structura\.softmax: 'axis' 2 is out of range/);
  throwsLike(() => S.softmax(lab), TypeError, /must be a floating tensor/);
  throwsLike(() => S.argmax(x, 5), RangeError, /out of range/);
  throwsLike(() => S.mseLoss(x, x32), RangeError, /'pred' \[2, 3\] and 'target' \[3, 2\] must have the same shape/);
  throwsLike(() => S.crossEntropy(x, labF), TypeError, /'labels' must be int32/);
  throwsLike(() => S.crossEntropy(x, lab3), RangeError, /'labels' must be \[2\]/);
  throwsLike(() => S.crossEntropy(x3, lab), RangeError, /'logits' must be \[M, C\]/);
  throwsLike(() => S.crossEntropy(x, bad), RangeError, /labels\[1\] = 3/);
  for (const t of [x, x32, x3, lab, lab3, labF, bad]) t.dispose();
  assertNoLeak(before, 'bad arguments');
});

test('max / min over rows: NaN anywhere wins, ±inf, every SIMD level, rows of every length around the vector blocks', () => {
  // csrc/cpu/elementwise_rows.inc minmax: plain maxps accumulators with NaNs noted beside them, the
  // row rescanned for its first NaN; an inf also makes the note NaN (the rescan then finds none).
  const n2 = native() as unknown as { setSimd(level: string): string };
  const hw = S.backend().simd;
  const levels = ['scalar', 'avx2', 'avx512'].slice(0, ['scalar', 'avx2', 'avx512'].indexOf(hw) + 1);
  const r = rng(4242);
  try {
    for (const level of levels) {
      n2.setSimd(level);
      for (const len of [1, 7, 16, 31, 63, 64, 65, 127, 200, 1031]) {
        const rows = 12;
        const data = new Float32Array(rows * len);
        for (let i = 0; i < data.length; i++) data[i] = (r() - 0.5) * 100;
        // row 1: NaN at the end, row 2: NaN first, row 3: +inf, row 4: −inf, row 5: all −inf, row 6: NaN and +inf, row 7: all NaN
        const at = (row: number, k: number, v: number) => (data[row * len + Math.min(k, len - 1)] = v);
        at(1, len - 1, NaN); at(2, 0, NaN); at(3, len >> 1, Infinity); at(4, len >> 2, -Infinity);
        for (let k = 0; k < len; k++) at(5, k, -Infinity);
        at(6, len >> 1, Infinity); at(6, len - 1, NaN);
        for (let k = 0; k < len; k++) at(7, k, NaN);
        const x = S.tensor(data, { shape: [rows, len] });
        for (const [op, pick] of [['max', (a: number, b: number) => Math.max(a, b)], ['min', (a: number, b: number) => Math.min(a, b)]] as const) {
          const y = (op === 'max' ? S.max : S.min)(x, -1);
          const got = Array.from(y.dataSync());
          y.dispose();
          for (let row = 0; row < rows; row++) {
            let want = op === 'max' ? -Infinity : Infinity;
            for (let k = 0; k < len; k++) want = pick(want, data[row * len + k]); // Math.max: NaN wins
            if (!Object.is(got[row], want)) assert.unreachable(`${op} at ${level}, row ${row} of length ${len}: ${got[row]}, expected ${want}`);
          }
        }
        x.dispose();
      }
    }
  } finally {
    n2.setSimd(hw);
  }
});

test('crossEntropy options (PyTorch\'s): reduction mean / sum / none, ignoreIndex, labelSmoothing, class weights — values and gradients, every device', () => {
  const devices = ['cpu', ...(S.backend().cudaEmu ? ['cuda-emu'] : [])];
  const r = rng(777);
  const before = liveCounts();
  for (const device of devices)
    for (const [m, c] of [[1, 1], [5, 3], [17, 40], [3, 300]])
      for (const reduction of ['mean', 'sum', 'none'] as const)
        for (const [ignoreIndex, labelSmoothing, weighted] of [[-100, 0, false], [-1, 0.1, false], [2, 0.35, false], [-100, 0, true], [-1, 0.2, true]] as const) {
          // weights in [0.25, 2.25), the odd one 0 (a class that counts for nothing)
          const weight = weighted ? Float64Array.from({ length: c }, (_, j) => (j % 5 === 3 ? 0 : 0.25 + 2 * r())) : undefined;
          const o = { reduction, ignoreIndex, labelSmoothing };
          const lab = Int32Array.from({ length: m }, (_, i) => (i % 3 === 1 ? ignoreIndex : Math.floor(r() * c)));
          if (lab.every((v) => v === ignoreIndex || weight?.[v] === 0) && reduction === 'mean') lab[0] = 0, weight && (weight[0] = 1);
          const data = Float64Array.from({ length: m * c }, () => (r() - 0.5) * 8);
          const want = R.crossEntropyWith({ data, shape: [m, c] }, { data: Float64Array.from(lab), shape: [m] }, { ...o, weight });
          for (const dtype of ['float64', 'float32'] as const) {
            const x = S.tensor(data, { shape: [m, c], dtype, device });
            const y = S.tensor(lab, { device });
            const wt = weight ? S.tensor(weight, { dtype, device }) : undefined;
            const ow = wt ? { ...o, weight: wt } : o;
            const got = S.crossEntropy(x, y, ow);
            assert.equal(got.shape, reduction === 'none' ? [m] : [], `${device} ${reduction}: shape`);
            const gv = got.dataSync();
            const tol = dtype === 'float64' ? 1e-12 : 2e-6;
            for (let i = 0; i < want.data.length; i++)
              assert.ok(Math.abs(gv[i] - want.data[i]) <= tol * (1 + Math.abs(want.data[i]) + c),
                `crossEntropy ${device} ${dtype} [${m}, ${c}] ${JSON.stringify(o)} weighted ${weighted}: element ${i} ${gv[i]}, expected ${want.data[i]}`);
            S.dispose([x, got]);
            if (dtype === 'float64') {
              // 'none': a weighted sum of the rows, so every row's gradient is checked with its own weight
              const f = (t: S.Tensor, yy: S.Tensor, w: S.Tensor, cw?: S.Tensor) => {
                const l = S.crossEntropy(t, yy, cw ? { ...o, weight: cw } : o);
                if (reduction !== 'none') return l;
                const p = S.mul(l, w);
                l.dispose();
                const s = S.sum(p);
                p.dispose();
                return s;
              };
              const wv = Float64Array.from({ length: m }, (_, i) => 0.5 + i);
              if (device === 'cpu') {
                const xl = S.tensor(data, { shape: [m, c], dtype, requiresGrad: true });
                const w = S.tensor(wv, { dtype });
                S.gradcheck((t: S.Tensor) => f(t, y, w, wt), [xl]);
                S.dispose([xl, w]);
              } else {
                // on the device: the gradient equals the CPU's (which gradcheck checks above)
                const grads = ['cpu', device].map((d) => {
                  const xl = S.tensor(data, { shape: [m, c], dtype, device: d, requiresGrad: true });
                  const yd = S.tensor(lab, { device: d }), w = S.tensor(wv, { dtype, device: d });
                  const cw = weight ? S.tensor(weight, { dtype, device: d }) : undefined;
                  const loss = f(xl, yd, w, cw);
                  loss.backward();
                  const gr = Array.from(xl.grad!.dataSync());
                  S.dispose([xl, yd, w, loss, cw]);
                  return gr;
                });
                for (let i = 0; i < grads[0].length; i++)
                  assert.ok(Math.abs(grads[1][i] - grads[0][i]) <= 1e-12 * (1 + Math.abs(grads[0][i])),
                    `crossEntropy gradient ${device} [${m}, ${c}] ${JSON.stringify(o)}: element ${i} ${grads[1][i]}, CPU ${grads[0][i]}`);
              }
            }
            y.dispose();
            wt?.dispose();
          }
        }
  assertNoLeak(before, 'crossEntropy options');
});

test('crossEntropy with class weights: subnormal gradients are kept (the pool flushes them to zero; the devices do not)', () => {
  const before = liveCounts();
  // weights near float32's smallest normal make every gradient element subnormal: the CPU kernel must
  // round its double products to those subnormals, not to 0, on its vector path (C = 37) and its tail,
  // in the pool's threads (FTZ; M rows enough to reach them) as in the caller's
  const C = 37, M = 2048;
  const x = Array.from({ length: C }, (_, c) => -c / 8);
  const w = x.map((_, c) => Math.fround(2e-38 * (1 + c / 10)));
  for (const device of ['cpu', ...(S.backend().cudaEmu ? ['cuda-emu'] : [])])
    for (const eps of [0, 0.1]) {
      const xt = S.tensor(Array.from({ length: M }, () => x).flat(), { shape: [M, C], device, requiresGrad: true });
      const yt = S.zeros([M], { dtype: 'int32', device }), wt = S.tensor(w, { device });
      const loss = S.crossEntropy(xt, yt, { weight: wt, reduction: 'sum', labelSmoothing: eps });
      loss.backward();
      const g = xt.grad!.dataSync();
      // the gradient in double from float32 exps: g·(a·softmax − (1 − ε)·w[y]·onehot − ε/C·w), a = (1 − ε)·w[y] + ε/C·Σw
      const e = x.map((v) => Math.fround(Math.exp(v - x[0])));
      const s = e.reduce((p, v) => p + v, 0);
      const a = (1 - eps) * w[0] + (eps !== 0 ? (eps / C) * w.reduce((p, v) => p + v, 0) : 0);
      for (let c = 0; c < C; c++) {
        let want = e[c] * (a / s);
        if (c === 0) want -= (1 - eps) * w[0];
        want -= (eps / C) * w[c];
        if (c > 0) assert.ok(Math.abs(want) < 2 ** -126 && want !== 0, `test setup: element ${c} is subnormal`); // the label's is not
        for (let m = 0; m < M; m++)
          assert.ok(g[m * C + c] !== 0 && Math.abs(g[m * C + c] - want) <= 1e-4 * Math.abs(want) + 2 ** -149,
            `${device} ε ${eps}: element [${m}, ${c}] ${g[m * C + c]}, expected the subnormal ${want}`);
      }
      S.dispose([xt, yt, wt, loss]);
    }
  assertNoLeak(before, 'subnormal gradients');
});

test('crossEntropy options: PyTorch\'s edge cases and bad values', () => {
  const before = liveCounts();
  const x = S.tensor([[1, 2, 3], [3, 2, 1]]);
  const allIgnored = S.tensor([-100, -100], { dtype: 'int32' });
  const l = S.crossEntropy(x, allIgnored);
  assert.ok(Number.isNaN(l.item()), 'mean over no row: NaN (torch)');
  const ls = S.crossEntropy(x, allIgnored, { reduction: 'sum' });
  assert.is(ls.item(), 0);
  const ln = S.crossEntropy(x, allIgnored, { reduction: 'none' });
  assert.equal(Array.from(ln.dataSync()), [0, 0]);
  const v = S.tensor([1, 2, 3]);
  const two = S.tensor(2, { dtype: 'int32' });
  const one = S.crossEntropy(v, two, { reduction: 'none' });
  assert.equal(one.shape, []);
  const bad = S.tensor([0, -5], { dtype: 'int32' });
  throwsLike(() => S.crossEntropy(x, bad), RangeError, /labels\[1\] = -5 is not a class index in \[0, 3\) .* nor the ignored index -100/);
  throwsLike(() => S.crossEntropy(x, bad, { reduction: 'avg' as never }), RangeError, /'reduction' must be 'mean', 'sum' or 'none', got string 'avg'/);
  throwsLike(() => S.crossEntropy(x, bad, { ignoreIndex: 1.5 }), RangeError, /'ignoreIndex' must be an int32 integer, got 1\.5/);
  throwsLike(() => S.crossEntropy(x, bad, { labelSmoothing: 1.5 }), RangeError, /'labelSmoothing' must be in \[0, 1\], got 1\.5/);
  throwsLike(() => S.crossEntropy(x, bad, { weights: v } as never), TypeError, /unknown option 'weights'/);
  // class weights: of the logits' dtype, device and [C]; not differentiated; a mean over zero weight is NaN
  S.tidy(() => {
    const ok2 = S.tensor([0, 1], { dtype: 'int32' });
    throwsLike(() => S.crossEntropy(x, ok2, { weight: S.tensor([1, 2]) }), RangeError, /'weight' must be \[3\] \(one weight a class\) to match 'logits' \[2, 3\], got \[2\]/);
    throwsLike(() => S.crossEntropy(x, ok2, { weight: S.tensor([1, 2, 3], { dtype: 'float64' }) }), TypeError, /'logits' \[2, 3\] is float32 but 'weight' \[3\] is float64/);
    throwsLike(() => S.crossEntropy(x, ok2, { weight: 3 as never }), TypeError, /'weight' must be a Tensor, got number 3/);
    const wg = S.tensor([1, 2, 3], { requiresGrad: true });
    throwsLike(() => S.crossEntropy(x, ok2, { weight: wg }), TypeError, /'weight' requires gradients, but class weights are not differentiated/);
    throwsLike(() => native().crossEntropy(x._h, ok2._h, -100, 0, 0, S.tensor([1, 2, 3], { dtype: 'float64' })._h), TypeError, /'weight' is float64 but 'logits' is float32/);
    throwsLike(() => native().crossEntropy(x._h, ok2._h, -100, 0, 0, S.tensor([[1, 2, 3]])._h), RangeError, /'weight' must have shape \[3\]/);
    throwsLike(() => native().crossEntropy(x._h, ok2._h, -100, 0, 0, 7 as never), TypeError, /argument 'weight' must be a tensor handle/);
    const zw = S.tensor([0, 0, 5]);
    assert.ok(Number.isNaN(S.crossEntropy(x, ok2, { weight: zw }).item()), 'mean over rows of weight 0: NaN (torch\'s 0 / 0)');
    assert.is(S.crossEntropy(x, ok2, { weight: zw, reduction: 'sum' }).item(), 0);
    // found by review: a NaN / infinite weight of a class no row uses left every gradient NaN without
    // smoothing (0·Σw); kept weights that cancel to 0 gave NaN where torch gives ±inf; C = 0 crashed the
    // raw addon (an integer division by C); a weight requiring grad is fine under noGrad (torch's too)
    for (const device of ['cpu', ...(S.backend().cudaEmu ? ['cuda-emu'] : [])]) {
      const xd = S.tensor([[1, 2, 3], [3, 2, 1]], { device, requiresGrad: true }), yd = S.tensor([0, 1], { dtype: 'int32', device });
      const grads = [NaN, Infinity, 1].map((bad) => {
        xd.zeroGrad();
        S.crossEntropy(xd, yd, { weight: S.tensor([0.5, 2, bad], { device }) }).backward();
        return Array.from(xd.grad!.dataSync());
      });
      assert.equal(grads[0], grads[2], `${device}: a NaN weight of an unused class changes nothing`);
      assert.equal(grads[1], grads[2], `${device}: nor an infinite one`);
      const cancel = S.crossEntropy(xd, yd, { weight: S.tensor([1, -1, 0], { device }) });
      assert.is(cancel.item(), Infinity, `${device}: kept weights summing to 0 under a positive loss: +inf (torch)`);
      // with label smoothing torch divides its label and smoothing parts by the weight sum apart: the
      // label part's 0 / 0 makes the mean NaN (it was +inf: the smoothing part over 0)
      const zs = S.crossEntropy(xd, S.tensor([0, 0], { dtype: 'int32', device }), { weight: S.tensor([0, 1, 1], { device }), labelSmoothing: 0.1 });
      assert.ok(Number.isNaN(zs.item()), `${device}: weights of the kept labels 0 with smoothing: NaN (torch), got ${zs.item()}`);
      assert.ok(Number.isNaN(S.crossEntropy(xd, S.tensor([-100, -100], { dtype: 'int32', device }), { weight: S.tensor([1, 2, 3], { device }) }).item()), `${device}: no row kept: NaN`);
    }
    throwsLike(() => native().crossEntropy(S.zeros([2, 0])._h, S.tensor([-100, -100], { dtype: 'int32' })._h, -100, 0, 1), RangeError, /'logits' \[2, 0\] has no classes/);
    throwsLike(() => native().crossEntropyBackward(S.zeros([2, 0])._h, S.tensor([-100, -100], { dtype: 'int32' })._h, S.tensor(1)._h, -100, 0, 1), RangeError, /has no classes/);
    assert.ok(Number.isFinite(S.noGrad(() => S.crossEntropy(x, ok2, { weight: wg }).item())), 'a weight requiring grad under noGrad');
    assert.is(S.crossEntropy(x, ok2, { weight: null }).item(), S.crossEntropy(x, ok2).item(), 'weight null: none, as torch\'s None');
    throwsLike(() => S.crossEntropy(S.tensor(1), ok2, { weight: S.tensor([1]) }), RangeError, /'logits' must be \[M, C\] \(or \[C\]\), got \[\]/);
    if (S.backend().cudaEmu) {
      const we = S.tensor([1, 2, 3], { device: 'cuda-emu' });
      throwsLike(() => S.crossEntropy(x, ok2, { weight: we }), TypeError, /'logits' is on cpu but 'weight' is on cuda-emu/);
      we.dispose();
    }
  });
  // the raw addon without an ignoreIndex ignores nothing (INT32_MIN stood for "none" and was ignored as a label)
  const n = native();
  const lowest = S.tensor([-(2 ** 31), 1], { dtype: 'int32' });
  throwsLike(() => n.crossEntropy(x._h, lowest._h), RangeError, /labels\[0\] = -2147483648 is not a class index in \[0, 3\) \(row 0 of 'logits' \[2, 3\]\)$/);
  // its backward's g for mean / sum is 0-d, as it says ([1] was taken)
  const ok = S.tensor([0, 1], { dtype: 'int32' }), g1 = S.tensor([1]);
  throwsLike(() => n.crossEntropyBackward(x._h, ok._h, g1._h, -100, 0, 0), RangeError, /'g' must be 0-d for this reduction, got shape \[1\]/);
  S.dispose([lowest, ok, g1]);
  S.dispose([x, allIgnored, l, ls, ln, v, two, one, bad]);
  assertNoLeak(before, 'crossEntropy edge cases');
});

test('mseLoss reduction: mean / sum / none as F.mse_loss, gradients; bad values', () => {
  const before = liveCounts();
  const r = rng(31);
  const p = Float64Array.from({ length: 12 }, () => r() * 4 - 2), t = Float64Array.from({ length: 12 }, () => r() * 4 - 2);
  const sq = Array.from(p, (v, i) => (v - t[i]) ** 2);
  for (const [reduction, want] of [['mean', [sq.reduce((a, b) => a + b) / 12]], ['sum', [sq.reduce((a, b) => a + b)]], ['none', sq]] as const) {
    const x = S.tensor(p, { shape: [3, 4], dtype: 'float64', requiresGrad: true });
    const y = S.tensor(t, { shape: [3, 4], dtype: 'float64', requiresGrad: true });
    const l = S.mseLoss(x, y, { reduction });
    assert.equal(l.shape, reduction === 'none' ? [3, 4] : []);
    const got = Array.from(l.dataSync());
    for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= 1e-12 * (1 + Math.abs(want[i])), `${reduction}: ${got[i]} vs ${want[i]}`);
    S.gradcheck((a: S.Tensor, b: S.Tensor) => {
      const v = S.mseLoss(a, b, { reduction });
      if (reduction !== 'none') return v;
      const s = S.sum(S.mul(v, v));
      v.dispose();
      return s;
    }, [x, y]);
    S.dispose([x, y, l]);
  }
  const a = S.zeros([2]);
  throwsLike(() => S.mseLoss(a, a, { reduction: 'avg' as never }), RangeError, /structura\.mseLoss: 'reduction' must be 'mean', 'sum' or 'none', got string 'avg'/);
  throwsLike(() => S.mseLoss(a, a, { reduce: 'sum' } as never), TypeError, /unknown option 'reduce'/);
  a.dispose();
  assertNoLeak(before, 'mseLoss reduction');
});

// A batch filtered down to no rows is PyTorch's: NaN mean (0 / 0), 0 sum, [] for 'none', an empty
// gradient (it was a RangeError); no classes with rows stays an error.
test('crossEntropy of no rows: NaN mean, 0 sum, [] per row, an empty gradient, on every device', () => {
  const before = liveCounts();
  for (const device of ['cpu', ...(S.backend().cudaEmu ? ['cuda-emu'] : [])])
    S.tidy(() => {
      const x = S.zeros([0, 7], { device, requiresGrad: true }), y = S.tensor([], { dtype: 'int32' }).to(device);
      const mean = S.crossEntropy(x, y), sum = S.crossEntropy(x, y, { reduction: 'sum', weight: S.ones([7], { device }), labelSmoothing: 0.1 });
      const none = S.crossEntropy(x, y, { reduction: 'none' });
      assert.ok(Number.isNaN(mean.item()), device);
      assert.equal([sum.item(), none.shape, none.device], [0, [0], device]);
      sum.backward();
      assert.equal([x.grad!.shape, x.grad!.device], [[0, 7], device]);
      throwsLike(() => S.crossEntropy(S.zeros([2, 0], { device }), S.tensor([0, 0], { dtype: 'int32' }).to(device)), RangeError, /'logits' \[2, 0\] has no classes/);
    });
  assertNoLeak(before, 'crossEntropy of no rows');
});

test.run();
