// shape.test.ts — views (reshape, transpose, permute, narrow, squeeze, unsqueeze, expand, flatten)
// and copies (contiguous, clone, cast, concat, stack): values against float64 references, which ones
// share storage, their gradients (gradcheck), leak checks and bad arguments.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as S from '../lib/index';
import type { Tensor } from '../lib/index';
import { native } from '../lib/native';
import * as R from './reference/ops';
import { checkOp, throwsLike, liveCounts, assertNoLeak } from './helpers';

const same = (x: R.NDArray, shape: number[]): R.NDArray => ({ data: x.data, shape });
const sharesStorage = (a: Tensor, b: Tensor) => native().storageId(a._h) === native().storageId(b._h);

test('reshape: -1 inference, both call forms, 0-d and empty; views of contiguous tensors', () => {
  checkOp({ shapes: [[3, 17]], fn: (x) => S.reshape(x, [17, 3]), ref: (x) => same(x, [17, 3]) });
  checkOp({ shapes: [[3, 17]], fn: (x) => x.reshape(-1), ref: (x) => same(x, [51]) });
  checkOp({ shapes: [[2, 3, 5]], fn: (x) => x.reshape(5, -1, 2), ref: (x) => same(x, [5, 3, 2]) });
  checkOp({ shapes: [[]], fn: (x) => x.reshape([1, 1]), ref: (x) => same(x, [1, 1]) });
  checkOp({ shapes: [[1, 1]], fn: (x) => x.reshape([]), ref: (x) => same(x, []) });
  checkOp({ shapes: [[0, 4]], fn: (x) => x.reshape(2, 0, 2), ref: (x) => same(x, [2, 0, 2]) });
  const before = liveCounts();
  const x = S.arange(12);
  const v = x.reshape(3, 4);
  assert.ok(sharesStorage(x, v), 'reshape of a contiguous tensor is a view');
  assert.equal(v.strides, [4, 1]);
  x.dispose();
  v.dispose();
  assertNoLeak(before, 'view');
});

test('reshape of non-contiguous tensors: a view when the layout allows, else a copy (right values either way)', () => {
  // transposed [5, 3]ᵀ → reshape merges non-adjacent strides: must copy
  checkOp({ shapes: [[3, 5]], fn: (x) => x.reshape(15), ref: (x) => same(x, [15]), layout: 'transposed' });
  // narrowed rows: splitting the leading axis keeps the view
  checkOp({ shapes: [[4, 6]], fn: (x) => x.reshape(2, 2, 6), ref: (x) => same(x, [2, 2, 6]), layout: 'narrowed' });
  checkOp({ shapes: [[4, 6]], fn: (x) => x.reshape(4, 2, 3), ref: (x) => same(x, [4, 2, 3]), layout: 'narrowed' });
  checkOp({ shapes: [[4, 6]], fn: (x) => x.reshape(24), ref: (x) => same(x, [24]), layout: 'narrowed' });
  const before = liveCounts();
  const base = S.tidy(() => S.arange(24).reshape(4, 6));
  const n = base.narrow(1, 1, 4); // [4, 4], strides [6, 1]
  const split = n.reshape(4, 2, 2);
  assert.ok(sharesStorage(base, split), 'splitting an axis of a strided view needs no copy');
  assert.equal(split.strides, [6, 2, 1]);
  const merged = n.reshape(16);
  assert.not.ok(sharesStorage(base, merged), 'merging across a gap copies');
  assert.equal(Array.from(merged.dataSync()), [1, 2, 3, 4, 7, 8, 9, 10, 13, 14, 15, 16, 19, 20, 21, 22]);
  for (const t of [base, n, split, merged]) t.dispose();
  assertNoLeak(before, 'non-contiguous');
});

test('transpose, permute, T: views with permuted strides', () => {
  checkOp({ shapes: [[3, 17]], fn: (x) => S.transpose(x, 0, 1), ref: (x) => R.permute(x, [1, 0]) });
  checkOp({ shapes: [[2, 3, 5]], fn: (x) => x.transpose(-1, 0), ref: (x) => R.permute(x, [2, 1, 0]) });
  checkOp({ shapes: [[2, 3, 5]], fn: (x) => x.transpose(), ref: (x) => R.permute(x, [2, 1, 0]) });
  checkOp({ shapes: [[2, 3, 5]], fn: (x) => S.permute(x, [1, 2, 0]), ref: (x) => R.permute(x, [1, 2, 0]) });
  checkOp({ shapes: [[2, 3, 5]], fn: (x) => x.permute(2, 0, 1), ref: (x) => R.permute(x, [2, 0, 1]) });
  checkOp({ shapes: [[4, 3, 5]], fn: (x) => x.T, ref: (x) => R.permute(x, [0, 2, 1]) });
  checkOp({ shapes: [[4, 6]], fn: (x) => x.T, ref: (x) => R.permute(x, [1, 0]), layout: 'narrowed' });
  checkOp({ shapes: [[4, 6]], fn: (x) => x.T, ref: (x) => R.permute(x, [1, 0]), layout: 'transposed' });
  const before = liveCounts();
  const x = S.zeros([2, 3, 4]);
  const p = x.permute(2, 0, 1);
  assert.equal(p.shape, [4, 2, 3]);
  assert.equal(p.strides, [1, 12, 4]);
  assert.ok(sharesStorage(x, p));
  assert.not.ok(p.isContiguous);
  x.dispose();
  p.dispose();
  assertNoLeak(before, 'permute');
});

test('narrow: views along any axis, negative start; gradient is zero outside the window', () => {
  checkOp({ shapes: [[7, 5]], fn: (x) => S.narrow(x, 0, 2, 3), ref: (x) => R.narrow(x, 0, 2, 3) });
  checkOp({ shapes: [[7, 5]], fn: (x) => x.narrow(1, 1, 4), ref: (x) => R.narrow(x, 1, 1, 4) });
  checkOp({ shapes: [[7, 5]], fn: (x) => x.narrow(-1, -2, 2), ref: (x) => R.narrow(x, 1, 3, 2) });
  checkOp({ shapes: [[129]], fn: (x) => x.narrow(0, 17, 0), ref: (x) => R.narrow(x, 0, 17, 0) });
  checkOp({ shapes: [[2, 3, 5]], fn: (x) => x.narrow(1, 1, 1), ref: (x) => R.narrow(x, 1, 1, 1), layout: 'transposed' });
  const before = liveCounts();
  const x = S.arange(10, { requiresGrad: true });
  const y = S.tidy(() => x.narrow(0, 3, 4).mul(2).sum());
  y.backward();
  assert.equal(Array.from(x.grad!.dataSync()), [0, 0, 0, 2, 2, 2, 2, 0, 0, 0]);
  x.dispose();
  y.dispose();
  assertNoLeak(before, 'narrow grad');
});

test('squeeze, unsqueeze, expand, flatten', () => {
  checkOp({ shapes: [[3, 1, 5, 1]], fn: (x) => x.squeeze(), ref: (x) => same(x, [3, 5]) });
  checkOp({ shapes: [[3, 1, 5, 1]], fn: (x) => S.squeeze(x, -1), ref: (x) => same(x, [3, 1, 5]) });
  checkOp({ shapes: [[3, 1, 5, 1]], fn: (x) => S.squeeze(x, [1, 3]), ref: (x) => same(x, [3, 5]) });
  checkOp({ shapes: [[3, 5]], fn: (x) => x.unsqueeze(0), ref: (x) => same(x, [1, 3, 5]) });
  checkOp({ shapes: [[3, 5]], fn: (x) => S.unsqueeze(x, -1), ref: (x) => same(x, [3, 5, 1]) });
  checkOp({ shapes: [[3, 5]], fn: (x) => x.unsqueeze(1), ref: (x) => same(x, [3, 1, 5]), layout: 'transposed' });
  const bcast = (x: R.NDArray, shape: number[]) => R.zip([x, { data: new Float64Array(R.numel(shape)), shape }], (a) => a);
  checkOp({ shapes: [[3, 1]], fn: (x) => x.expand(3, 4), ref: (x) => bcast(x, [3, 4]) });
  checkOp({ shapes: [[3, 1]], fn: (x) => S.expand(x, [2, -1, 5]), ref: (x) => bcast(x, [2, 3, 5]) });
  checkOp({ shapes: [[]], fn: (x) => x.expand(17), ref: (x) => bcast(x, [17]) });
  checkOp({ shapes: [[2, 3, 5]], fn: (x) => x.flatten(), ref: (x) => same(x, [30]) });
  checkOp({ shapes: [[2, 3, 5]], fn: (x) => S.flatten(x, 1), ref: (x) => same(x, [2, 15]) });
  checkOp({ shapes: [[2, 3, 5, 1]], fn: (x) => x.flatten(0, -2), ref: (x) => same(x, [30, 1]) });
  S.tidy(() => {
    // messages name the shape given, not the one with the new axis; stack names its own mixed dtypes
    throwsLike(() => S.unsqueeze(S.zeros([2, 3]), 3), RangeError, /structura\.unsqueeze: 'axis' 3 is out of range for a new axis of \[2, 3\] \(expected -3 to 2\)/);
    throwsLike(() => S.stack([S.zeros([2]), S.zeros([2])], -4), RangeError, /structura\.stack: 'axis' -4 is out of range for a new axis of \[2\] \(expected -2 to 1\)/);
    throwsLike(() => S.stack([S.zeros([2]), S.zeros([2], { dtype: 'float64' })]), TypeError, /structura\.stack: 'tensors\[0\]' \[2\] is float32 but 'tensors\[1\]' \[2\] is float64/);
    throwsLike(() => S.mean(S.tensor([1, 2], { dtype: 'int32' })), TypeError, /structura\.mean: 'x' is int32/);
  });
  const before = liveCounts();
  const x = S.ones([3, 1]);
  const e = x.expand(3, 4);
  assert.equal(e.strides, [1, 0]);
  assert.ok(sharesStorage(x, e));
  x.dispose();
  e.dispose();
  assertNoLeak(before, 'expand');
});

test('contiguous, clone, cast: values, storage and gradients', () => {
  checkOp({ shapes: [[3, 17]], fn: (x) => x.contiguous(), ref: (x) => x, layout: 'transposed' });
  checkOp({ shapes: [[3, 17]], fn: (x) => S.contiguous(x), ref: (x) => x });
  checkOp({ shapes: [[3, 5]], fn: (x) => x.clone(), ref: (x) => x, layout: 'narrowed' });
  const toF32 = (x: R.NDArray) => R.map(x, Math.fround);
  checkOp({ shapes: [[3, 17]], fn: (x) => x.cast('float32'), ref: toF32, outDtype: () => 'float32', grad: false });
  // the gradient through float32 and back (gradcheck needs a float64 output)
  checkOp({ shapes: [[3, 17]], fn: (x) => S.tidy(() => x.cast('float32').cast('float64')), ref: toF32, outDtype: () => 'float64', dtype: 'float64', gradOpts: { eps: 1e-3, atol: 1e-4 } });
  checkOp({ shapes: [[3, 17]], fn: (x) => S.cast(x, 'float64'), ref: (x) => x, outDtype: () => 'float64' });
  checkOp({ shapes: [[2, 3]], fn: (x) => S.cast(x, 'int32'), ref: (x) => R.map(x, Math.trunc), outDtype: () => 'int32', grad: false, low: -50, high: 50 });
  const before = liveCounts();
  const x = S.tidy(() => S.arange(6).reshape(2, 3));
  const c = x.contiguous();
  assert.ok(sharesStorage(x, c), 'contiguous() of a contiguous tensor shares storage');
  const t = S.tidy(() => x.T.contiguous());
  assert.not.ok(sharesStorage(x, t));
  assert.equal(t.toArray(), [[0, 3], [1, 4], [2, 5]]);
  const k = x.clone();
  assert.not.ok(sharesStorage(x, k));
  const i = S.tidy(() => S.tensor([1, 2]).cast('int32'));
  const fromInt = i.cast('float32');
  assert.is(fromInt.requiresGrad, false);
  const h0 = S.tensor([1.0009765625, 3], { requiresGrad: true });
  const h = h0.cast('float16');
  assert.ok(h.requiresGrad, 'a cast between float dtypes is differentiable');
  assert.equal(Array.from(h.dataSync()), [1.0009765625, 3]);
  for (const z of [x, c, t, k, i, fromInt, h, h0]) z.dispose();
  assertNoLeak(before, 'copies');
});

test('more than 8 dimensions (shapes and strides held out of place natively): views, copies, reductions, broadcasting, batched matmul', () => {
  // 12-d [2, 1, 3, 1, 2, 1, 1, 2, 1, 3, 1, 2]: 144 elements
  const big = [2, 1, 3, 1, 2, 1, 1, 2, 1, 3, 1, 2];
  const perm = [11, 3, 0, 7, 1, 10, 2, 8, 5, 9, 4, 6];
  for (const layout of ['contiguous', 'transposed', 'narrowed'] as const) {
    checkOp({ shapes: [big], layout, fn: (x) => S.tidy(() => x.permute(perm).contiguous()), ref: (x) => R.permute(x, perm) });
    checkOp({ shapes: [big], layout, fn: (x) => S.tidy(() => x.permute(perm).reshape(-1)), ref: (x) => same(R.permute(x, perm), [144]) });
    checkOp({ shapes: [big], layout, fn: (x) => S.sum(x, [0, 4, 9, 11]), ref: (x) => R.sum(x, [0, 4, 9, 11]) });
    checkOp({ shapes: [big], layout, fn: (x) => S.max(x, 9, true), ref: (x) => R.max(x, [9], true), kinks: { ties: true } });
    checkOp({ shapes: [big, [3, 1, 2, 1, 1, 1, 3, 1, 1]], layout, fn: (x, y) => S.add(x, y), ref: (x, y) => R.zip([x, y], (a, b) => a + b) });
  }
  // batch dimensions [2, 1, 2, 1, 1, 2, 1, 1] broadcast against [1, 3, 1, 1, 1, 1, 1, 1]: 10-d operands
  checkOp({
    shapes: [[2, 1, 2, 1, 1, 2, 1, 1, 3, 5], [1, 3, 1, 1, 1, 1, 1, 1, 5, 4]],
    fn: (a, b) => S.matmul(a, b),
    ref: (a, b) => R.matmul(a, b),
  });
  const before = liveCounts();
  const x = S.zeros(big);
  const u = S.tidy(() => x.unsqueeze(0).unsqueeze(-1).expand([5, ...big, 4]));
  assert.equal(u.shape, [5, ...big, 4]);
  assert.equal(u.strides[0], 0);
  assert.is(S.tidy(() => u.contiguous().sum().item()), 0);
  x.dispose();
  u.dispose();
  assertNoLeak(before, 'high-rank views');
});

test('the raw viewPacked (the views\' entry point) checks its layout as view() does, and agrees with it', () => {
  const before = liveCounts();
  const n = native();
  const x = S.arange(12);
  const F = (v: number[]) => new Float64Array(v);
  const a = n.viewPacked(x._h, F([3, 2, 1, 3, 99]), 2, 1), b = n.view(x._h, [3, 2], [1, 3], 1);
  assert.equal(Array.from(n.read(a)), Array.from(n.read(b)));
  assert.equal(Array.from(n.read(a)), [1, 4, 2, 5, 3, 6]);
  throwsLike(() => n.viewPacked(x._h, [3, 2, 1, 3] as never, 2, 0), TypeError, /'layout' must be a Float64Array/);
  throwsLike(() => n.viewPacked(x._h, new Float32Array(4) as never, 2, 0), TypeError, /'layout' must be a Float64Array/);
  throwsLike(() => n.viewPacked(x._h, F([3, 2, 1]), 2, 0), RangeError, /'layout' has 3 entries, fewer than 2 · ndim = 4/);
  throwsLike(() => n.viewPacked(x._h, F([3, 2, 1, 3]), 65, 0), RangeError, /argument 'ndim' must be in \[0, 64\]/);
  throwsLike(() => n.viewPacked(x._h, F([3, 2.5, 1, 3]), 2, 0), RangeError, /shape\[1\] must be an integer/);
  throwsLike(() => n.viewPacked(x._h, F([3, NaN, 1, 3]), 2, 0), RangeError, /shape\[1\] must be an integer/);
  throwsLike(() => n.viewPacked(x._h, F([3, 2, -1, 3]), 2, 0), RangeError, /strides\[0\] must be an integer in \[0, 2\^53\]/);
  throwsLike(() => n.viewPacked(x._h, F([2 ** 30, 2 ** 30, 1, 1]), 2, 0), RangeError, /has too many elements/);
  throwsLike(() => n.viewPacked(x._h, F([3, 2, 1, 10]), 2, 0), RangeError, /reach past the end of a storage of 12 elements/);
  const c = n.viewPacked(x._h, F([]), 0, 11);
  assert.equal(Array.from(n.read(c)), [11], 'a 0-d view at the last element');
  for (const h of [a, b, c]) n.dispose(h);
  x.dispose();
  assertNoLeak(before, 'viewPacked');
});

test('concat and stack: any axis, views as inputs, gradients to every input', () => {
  checkOp({ shapes: [[2, 3], [4, 3]], fn: (a, b) => S.concat([a, b], 0), ref: (a, b) => R.concat([a, b], 0) });
  checkOp({ shapes: [[3, 2], [3, 17], [3, 1]], fn: (a, b, c) => S.concat([a, b, c], -1), ref: (a, b, c) => R.concat([a, b, c], 1) });
  checkOp({ shapes: [[2, 3, 4], [2, 1, 4]], fn: (a, b) => S.concat([a, b], 1), ref: (a, b) => R.concat([a, b], 1), layout: 'transposed' });
  checkOp({ shapes: [[129]], fn: (a) => S.concat([a], 0), ref: (a) => a });
  checkOp({ shapes: [[0, 3], [2, 3]], fn: (a, b) => S.concat([a, b]), ref: (a, b) => R.concat([a, b], 0) });
  const stackRef = (xs: R.NDArray[], axis: number) => R.concat(xs.map((x) => { const s = x.shape.slice(); s.splice(axis, 0, 1); return same(x, s); }), axis);
  checkOp({ shapes: [[2, 3], [2, 3]], fn: (a, b) => S.stack([a, b]), ref: (a, b) => stackRef([a, b], 0) });
  checkOp({ shapes: [[2, 3], [2, 3], [2, 3]], fn: (a, b, c) => S.stack([a, b, c], -1), ref: (a, b, c) => stackRef([a, b, c], 2) });
});

test('concat along the last axis copies every dtype exactly, from contiguous and transposed inputs', () => {
  // Each output row is filled by typed loops (csrc/tensor.cc copy_into): 1-, 2-, 4- and 8-byte elements,
  // a strided source (a transposed view) and a contiguous one (one memcpy a row).
  const before = liveCounts();
  for (const dtype of ['float64', 'float32', 'bfloat16', 'float16', 'int32', 'uint8'] as const) {
    const av = Array.from({ length: 35 }, (_, i) => (i * 7) % 23), bv = Array.from({ length: 21 }, (_, i) => 100 - i);
    S.tidy(() => {
      const a = S.tensor(av, { shape: [5, 7], dtype }).transpose(0, 1); // [7, 5], strides (1, 7)
      const b = S.tensor(bv, { shape: [7, 3], dtype });
      const got = Array.from(S.concat([a, b, a], -1).dataSync() as ArrayLike<number>);
      const want: number[] = [];
      for (let i = 0; i < 7; i++) {
        for (let j = 0; j < 5; j++) want.push(av[j * 7 + i]);
        for (let j = 0; j < 3; j++) want.push(bv[i * 3 + j]);
        for (let j = 0; j < 5; j++) want.push(av[j * 7 + i]);
      }
      assert.equal(got, want, dtype);
    });
  }
  assertNoLeak(before, 'concat dtypes');
});

test('bad arguments: shapes, axes, dims', () => {
  const before = liveCounts();
  const x = S.zeros([2, 3]);
  const y = S.zeros([2, 4]);
  const d = S.zeros([2, 3], { dtype: 'float64' });
  throwsLike(() => x.reshape(4, 2), RangeError, /structura\.reshape: cannot reshape \[2, 3\] \(6 elements\) into \[4, 2\]/);
  throwsLike(() => x.reshape(-1, -1), RangeError, /more than one −1/);
  throwsLike(() => x.reshape(4, -1), RangeError, /cannot reshape \[2, 3\]/);
  throwsLike(() => x.reshape(2, 1.5, 2), RangeError, /shape\[1\] is 1\.5/);
  throwsLike(() => x.reshape(-2, -3), RangeError, /non-negative/);
  throwsLike(() => x.reshape('a' as unknown as number), TypeError, /'shape' must be integers/);
  throwsLike(() => x.transpose(0, 2), RangeError, /structura\.transpose: 'd1' 2 is out of range for shape \[2, 3\]/);
  throwsLike(() => x.transpose(0), TypeError, /give both axes/);
  throwsLike(() => x.permute(0, 0), RangeError, /repeats an axis/);
  throwsLike(() => x.permute(0), RangeError, /must list each of the 2 axes/);
  throwsLike(() => x.narrow(1, 2, 2), RangeError, /start 2 \+ length 2 exceeds size 3 of axis 1 of \[2, 3\]/);
  throwsLike(() => x.narrow(0, 0, -1), RangeError, /'length' must be in/);
  throwsLike(() => x.narrow(0, 0.5, 1), RangeError, /'start' must be an integer/);
  throwsLike(() => x.squeeze(0), RangeError, /axis 0 of \[2, 3\] has size 2, not 1/);
  throwsLike(() => x.unsqueeze(3), RangeError, /out of range/);
  throwsLike(() => x.expand(4, 3), RangeError, /cannot expand \[2, 3\] to \[4, 3\]/);
  throwsLike(() => x.expand(3), RangeError, /to fewer dimensions/);
  throwsLike(() => x.flatten(1, 0), RangeError, /comes after/);
  throwsLike(() => S.concat([x, y]), RangeError, /structura\.concat: tensors\[1\] \[2, 4\] does not match tensors\[0\] \[2, 3\] outside axis 0/);
  throwsLike(() => S.concat([x, d], 1), TypeError, /is float32 but 'tensors\[1\]' \[2, 3\] is float64/);
  throwsLike(() => S.concat([]), RangeError, /'tensors' is empty/);
  throwsLike(() => S.concat(x as unknown as Tensor[]), TypeError, /must be an array of tensors/);
  throwsLike(() => S.concat([x, 1 as unknown as Tensor]), TypeError, /'tensors\[1\]' must be a Tensor, got number 1/);
  throwsLike(() => S.stack([x, y]), RangeError, /does not match/);
  throwsLike(() => x.cast('float8' as S.DType), TypeError, /'dtype' must be one of/);
  for (const t of [x, y, d]) t.dispose();
  assertNoLeak(before, 'bad arguments');
});

test('view never copies: a RangeError where reshape would copy; views of empty tensors with huge sizes', () => {
  const before = liveCounts();
  const a = S.tensor([[1, 2, 3], [4, 5, 6]]);
  const v = a.view(3, 2);
  assert.ok(sharesStorage(v, a));
  assert.equal(Array.from(v.dataSync()), [1, 2, 3, 4, 5, 6]);
  const t = a.T;
  throwsLike(() => t.view(6), RangeError,
    /structura\.view: \[3, 2\] with strides \[1, 3\] cannot be viewed as \[6\] .*use reshape\(\), which copies, or contiguous\(\) first/);
  const r = t.reshape(6);
  assert.not.ok(sharesStorage(r, a));
  assert.equal(Array.from(r.dataSync()), [1, 4, 2, 5, 3, 6]);
  const tv = t.view(3, 1, 2); // splitting / adding size-1 axes stays a view
  assert.ok(sharesStorage(tv, a));
  // An empty tensor's contiguous strides can pass 2^40 (here 2^50): its views work as in PyTorch.
  S.tidy(() => {
    const z = S.zeros([0, 2 ** 30, 2 ** 20]);
    assert.equal(z.T.shape, [0, 2 ** 20, 2 ** 30]);
    assert.equal(z.narrow(1, 5, 10).shape, [0, 10, 2 ** 20]);
    assert.equal(z.unsqueeze(0).shape, [1, 0, 2 ** 30, 2 ** 20]);
    assert.equal(z.permute(2, 0, 1).contiguous().shape, [2 ** 20, 0, 2 ** 30]);
    assert.equal(S.zeros([0]).reshape(0, 2 ** 21, 2 ** 20).shape, [0, 2 ** 21, 2 ** 20]);
  });
  S.dispose([a, v, t, r, tv]);
  assertNoLeak(before, 'view');
});

test('0-d tensors take axis 0 / −1 where PyTorch does (squeeze, transpose, flatten), others are out of range', () => {
  const before = liveCounts();
  const s = S.tensor(3);
  for (const y of [s.squeeze(0), s.squeeze(-1), s.squeeze([0]), s.transpose(0, 0), s.transpose(-1, 0)]) {
    assert.equal(y.shape, []);
    assert.is(y.item(), 3);
    y.dispose();
  }
  const f = s.flatten(0, -1);
  assert.equal(f.shape, [1]);
  f.dispose();
  throwsLike(() => s.squeeze(1), RangeError, /'axis' 1 is out of range/);
  throwsLike(() => s.transpose(0, 1), RangeError, /'d1' 1 is out of range/);
  throwsLike(() => s.flatten(5, 9), RangeError, /structura\.flatten: 'startAxis' 5 is out of range/);
  s.dispose();
  assertNoLeak(before, '0-d axes');
});

test('bad arguments found by review: sparse arrays, non-numbers, too many dimensions, huge sizes', () => {
  const before = liveCounts();
  const a = S.tensor([1, 2]);
  throwsLike(() => S.concat([a, , a] as unknown as Tensor[]), TypeError, /structura\.concat: 'tensors\[1\]' must be a Tensor, got undefined/);
  throwsLike(() => S.stack([a, , a] as unknown as Tensor[]), TypeError, /structura\.stack: 'tensors\[1\]' must be a Tensor, got undefined/);
  throwsLike(() => a.expand([2, 'a'] as unknown as number[]), TypeError, /structura\.expand: 'shape' must hold integers, but shape\[1\] is string/);
  throwsLike(() => a.expand(new Array(65).fill(1)), RangeError, /structura\.expand: 'shape' has 65 dimensions, more than the limit of 64/);
  throwsLike(() => a.expand(0, 2 ** 41), RangeError, /structura\.expand: .*shape\[1\] is 2199023255552/);
  const e = S.zeros([0]);
  throwsLike(() => e.reshape(2 ** 41, 0), RangeError, /structura\.reshape: .*shape\[0\] is more than 1099511627776/);
  throwsLike(() => a.reshape(new Array(65).fill(1).concat([2])), RangeError, /structura\.reshape: 'shape' has 66 dimensions/);
  const deep = S.zeros(new Array(64).fill(1));
  throwsLike(() => deep.unsqueeze(0), RangeError, /structura\.unsqueeze: .* already has 64 dimensions, the limit/);
  // The raw addon's view: (size − 1)·stride past 2^63 wrapped to 0 and the view was accepted (reading it crashed).
  const n = native();
  const x = S.zeros([4]);
  throwsLike(() => n.view(x._h, [2 ** 24 + 1], [2 ** 40], 0), RangeError, /reach past the end of a storage of 4 elements/);
  throwsLike(() => n.view(x._h, [2, 2 ** 20 + 1], [2 ** 40, 2 ** 40], 0), RangeError, /reach past the end/);
  throwsLike(() => n.view(x._h, [2], [2 ** 41], 0), RangeError, /'strides\[0\]' is 2199023255552, more than 1099511627776/);
  throwsLike(() => n.view(x._h, [2], [1.5], 0), RangeError, /argument 'strides\[0\]' must be an integer in \[0, \d+\], got 1\.5$/);
  S.dispose([a, e, deep, x]);
  assertNoLeak(before, 'bad arguments found by review');
});

test.run();
