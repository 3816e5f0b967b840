// reduce.test.ts — native reduce / argReduce / softmax / crossEntropy(+Backward) against the float64
// references of test/reference/core.ts: every op, every float dtype and int32, odd sizes, every
// subset of axes, keepDims, strided views, the long-row and tall-column (split) paths, NaN, empty
// tensors, each SIMD level, thread-count independence, and bad arguments.
//
// Tolerances (per element):
//   sum / mean: float32, float16 and bfloat16 accumulate in double, float64 in double; the reference
//     sums in double too. Each double sum is off by at most n·u₆₄·Σ|x| (γₙ bound), so the result may
//     differ from the reference by 2n·u₆₄·Σ|x| plus the final rounding to the dtype (one ulp for
//     float32, float16, bfloat16 with margin: 2·u·|ref|).
//   max / min / argmax / argmin / int32 sums: exact.
//   softmax: x − max is rounded in float32 (relative error u·|x − max| after exp), exp is ≤ 2 ulp, the
//     sum is in double, then 1/s and the product: k = 2·(6 + |x − max|) units of roundoff of |y|.
//     log-softmax y = x − (max + log s): k = 6 units of (|x| + |max| + |log s| + 1).
//   cross-entropy: the loss per row is max + log s − x[label] with log s off by u·(4 + max|x − max|):
//     k = 2 units of (8 + range + |loss|). Its gradient as softmax, scaled by |g|/M.
//   float16 / bfloat16 results get one ulp of their type on top (rounded once from float32).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { DType, Handle, ReduceOp } from '../../lib/native';
import * as R from '../reference/core';
import {
  N, FLOAT_DTYPES, assertShape, atEachSimdLevel, check, checkExact, code, input, keep, leakCheck, poisonHeap, rngFor,
  stridedView, tensor, throwsLike, tolerance, values,
} from './kernel_util';

const t = suite('reduce');
leakCheck(t);

const U64 = 2 ** -53;

function subsets(nd: number): number[][] {
  const out: number[][] = [];
  for (let m = 0; m < 1 << nd; m++) out.push([...Array(nd).keys()].filter((d) => m & (1 << d)));
  return out;
}

function sumTol(dt: DType, ref: number, n: number, absSum: number): number {
  const acc = 2 * n * U64 * absSum;
  if (dt === 'float64') return acc;
  const rounding = dt === 'float32' ? 2 * 2 ** -24 * Math.abs(ref) : R.ulp(dt as R.FloatDType, ref);
  return acc + rounding + 2 ** -126;
}

function runReduce(op: ReduceOp, dt: DType, h: Handle, x: R.Arr, axes: number[], keep_: boolean, ctx: string) {
  const ref = R.reduce(op, x, axes, keep_);
  poisonHeap(ref.data.length * 8);
  const y = keep(N.reduce(op, h, axes, keep_));
  assertShape(y, ref.shape, ctx);
  const got = values(y);
  if (op === 'max' || op === 'min') return checkExact(got, ref.data, ctx);
  if (dt === 'int32') return checkExact(got, ref.data.map((v) => v | 0), ctx);
  const count = axes.reduce((c, d) => c * x.shape[d], 1);
  const abs = R.absSum(x, axes);
  const div = op === 'mean' ? count : 1;
  check(got, ref.data, (i) => sumTol(dt, ref.data[i], count, abs[i] / div), ctx, dt);
}

const SMALL_SHAPES: number[][] = [[], [1], [3], [17], [1000], [17, 129], [3, 5, 7], [2, 3, 4, 5], [5, 1, 7]];
// Long rows and tall columns take the split paths; a middle axis takes the [O, R, I] column path;
// narrow columns (I < 128) the folded path, short rows (R < 32) the inline one.
const LARGE_CASES: [number[], number[]][] = [
  [[3, 100003], [1]], [[100003, 3], [0]], [[40000], [0]], [[4, 2000, 3], [1]], [[1000, 129], [0]], [[1000, 129], [1]],
  [[129, 1000], [0]], [[2, 70000], [0, 1]], [[7, 3000, 5], [0, 2]], [[999, 5], [0]], [[3, 517, 2], [1]],
  [[100003, 4], [1]], [[5000, 31], [1]], [[70, 2100], [0]], [[2, 37, 2050], [1]],
];

const gen = (dt: DType, rng: R.Rng, n: number, op: ReduceOp) =>
  dt === 'int32' ? rng.ints(n, -1000, 1000) : op === 'max' || op === 'min' ? rng.ints(n, -20, 20).map((v) => v + rng.normal()) : rng.normals(n);

for (const op of ['sum', 'mean', 'max', 'min'] as ReduceOp[]) {
  t(`reduce ${op}: every dtype, every subset of axes, keepDims, strided views, vs float64`, () => {
    const rng = rngFor(`reduce ${op}`);
    const dtypes: DType[] = [...FLOAT_DTYPES, ...(op === 'mean' ? [] : ['int32' as const])];
    for (const dt of dtypes) {
      for (const shape of SMALL_SHAPES) {
        const a = input(dt, shape, gen(dt, rng, R.numel(shape), op));
        const view = shape.length >= 2 ? stridedView(rng, dt, a.x) : undefined;
        for (const axes of subsets(shape.length)) {
          for (const kd of [false, true]) {
            const ctx = `${op}(${dt} ${JSON.stringify(shape)}, axes ${JSON.stringify(axes)}, keepDims ${kd})`;
            runReduce(op, dt, a.h, a.x, axes, kd, ctx);
            if (view) runReduce(op, dt, view, a.x, axes, kd, `strided ${ctx}`);
          }
        }
      }
    }
  });

  t(`reduce ${op}: long rows, tall columns and middle axes (split and column paths)`, () => {
    const rng = rngFor(`reduce large ${op}`);
    for (const dt of ['float32', 'float64', 'bfloat16', ...(op === 'mean' ? [] : ['int32'])] as DType[]) {
      for (const [shape, axes] of LARGE_CASES) {
        const a = input(dt, shape, gen(dt, rng, R.numel(shape), op));
        runReduce(op, dt, a.h, a.x, axes, false, `${op}(${dt} ${JSON.stringify(shape)}, axes ${JSON.stringify(axes)})`);
      }
    }
  });
}

t('reductions, softmax and crossEntropy of large transposed and permuted views (tiled copy path)', () => {
  const rng = rngFor('large views');
  for (const dt of [...FLOAT_DTYPES, 'int32' as const]) {
    for (const shape of [[257, 129], [5, 67, 61]]) {
      const a = input(dt, shape, gen(dt, rng, R.numel(shape), 'sum'));
      for (let rep = 0; rep < 2; rep++) {
        const v = stridedView(rng, dt, a.x);
        for (const axes of subsets(shape.length).slice(1)) {
          runReduce('sum', dt, v, a.x, axes, false, `sum(strided ${dt} ${shape}, ${axes})`);
          runReduce('max', dt, v, a.x, axes, false, `max(strided ${dt} ${shape}, ${axes})`);
        }
        if (dt === 'int32') continue;
        runSoftmax(dt, v, a.x, -1, false, `softmax(strided ${dt} ${shape})`);
        runSoftmax(dt, v, a.x, 0, true, `logsoftmax(strided ${dt} ${shape}, axis 0)`);
      }
    }
  }
});

t('reduce over every transpose of a dense 3-D tensor (reduced in storage order, result reordered)', () => {
  const rng = rngFor('permutations');
  const shape = [5, 6, 7];
  const perms = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
  for (const dt of ['float32', 'float64', 'float16', 'int32'] as DType[]) {
    for (const p of perms) {
      // storage holds the dimensions in order p; the view presents them in order 0, 1, 2
      const sshape = p.map((d) => shape[d]);
      const sstr = R.stridesOf(sshape);
      const strides = [0, 0, 0];
      p.forEach((d, j) => (strides[d] = sstr[j]));
      const store = gen(dt, rng, R.numel(shape), 'sum');
      const base = tensor(dt, sshape, store);
      const v = keep(N.view(base, shape, strides, 0));
      const x = { data: values(keep(N.contiguous(v))), shape };
      for (const axes of subsets(3)) {
        for (const op of ['sum', 'max', ...(dt === 'int32' ? [] : ['mean'])] as ReduceOp[])
          runReduce(op, dt, v, x, axes, axes.length % 2 === 0, `${op}(${dt} transposed ${p}, axes ${axes})`);
      }
    }
  }
});

t('reduce: NaN propagates through sum/mean/max/min; ±inf', () => {
  const x = [1, NaN, 3, -Infinity, 5, 6, Infinity, 2, NaN, 0, 1, 1];
  for (const dt of FLOAT_DTYPES) {
    const a = input(dt, [3, 4], x);
    for (const op of ['sum', 'mean', 'max', 'min'] as ReduceOp[]) {
      for (const axes of [[0], [1], [0, 1]]) runReduce(op, dt, a.h, a.x, axes, false, `${op}(${dt} with NaN, ${axes})`);
    }
    // a NaN deep inside a long row and a tall column (vector lanes and splits)
    for (const [shape, axes, at] of [[[2, 50000], [1], 77777], [[50000, 2], [0], 61111]] as [number[], number[], number][]) {
      const v = new Float64Array(R.numel(shape)).fill(1);
      v[at] = NaN;
      const b = input(dt, shape, v);
      for (const op of ['max', 'min', 'sum'] as ReduceOp[]) runReduce(op, dt, b.h, b.x, axes, false, `${op}(${dt} ${shape} NaN at ${at})`);
    }
  }
});

t('reduce: int32 sums wrap like int32 arithmetic', () => {
  const a = input('int32', [2, 3], [2 ** 31 - 1, 2 ** 31 - 1, 5, -(2 ** 31), -(2 ** 31), -1]);
  runReduce('sum', 'int32', a.h, a.x, [1], false, 'int32 overflow');
  runReduce('sum', 'int32', a.h, a.x, [0, 1], false, 'int32 overflow all');
});

t('reduce: empty tensors and empty axes', () => {
  for (const dt of FLOAT_DTYPES) {
    const e = input(dt, [0], []);
    checkExact(values(keep(N.reduce('sum', e.h, [0], false))), [0], `sum of nothing (${dt})`);
    checkExact(values(keep(N.reduce('mean', e.h, [0], false))), [NaN], `mean of nothing (${dt})`);
    const e2 = input(dt, [3, 0], []);
    const s = keep(N.reduce('sum', e2.h, [1], true));
    assertShape(s, [3, 1], 'sum [3, 0] over 1');
    checkExact(values(s), [0, 0, 0], `sum [3, 0] over 1 (${dt})`);
    const m = keep(N.reduce('max', e2.h, [0], false));
    assertShape(m, [0], 'max [3, 0] over 0');
    throwsLike(() => N.reduce('max', e2.h, [1], false), RangeError, [/axis 1/, /\[3, 0\]/], 'max over an empty axis');
    throwsLike(() => N.reduce('min', e.h, [0], false), RangeError, [/size 0/], 'min of nothing');
  }
  // empty axes: a copy (contiguous, also from a strided view)
  const rng = rngFor('empty axes');
  for (const dt of [...FLOAT_DTYPES, 'int32' as const]) {
    const a = input(dt, [4, 5], rng.ints(20, -9, 9));
    const v = stridedView(rng, dt, a.x);
    for (const op of ['sum', 'max', ...(dt === 'int32' ? [] : ['mean'])] as ReduceOp[]) {
      const y = keep(N.reduce(op, v, [], false));
      assertShape(y, [4, 5], 'empty axes');
      checkExact(values(y), a.x.data, `${op}(${dt}, axes []) is a copy`);
    }
  }
});

t('reduce: results do not depend on the thread count (bitwise)', () => {
  const rng = rngFor('threads');
  const threads = N.getNumThreads();
  try {
    for (const [shape, axes] of LARGE_CASES) {
      const a = input('float32', shape, rng.normals(R.numel(shape)));
      const results = [1, 2, 3].map((nt) => {
        N.setNumThreads(nt);
        return values(keep(N.reduce('sum', a.h, axes, false)));
      });
      checkExact(results[1], results[0], `sum ${shape} over ${axes}: 2 threads vs 1`);
      checkExact(results[2], results[0], `sum ${shape} over ${axes}: 3 threads vs 1`);
    }
  } finally {
    N.setNumThreads(threads);
  }
});

// ---- argmax / argmin ------------------------------------------------------------------------------

t('argReduce: argmax/argmin, every dtype and axis (negative too), ties take the first, NaN wins', () => {
  const rng = rngFor('argReduce');
  const shapes = [[1], [3], [17], [1000], [17, 129], [3, 5, 7], [5, 1, 7], [3, 100003], [100003, 3]];
  for (const dt of [...FLOAT_DTYPES, 'int32' as const]) {
    for (const shape of shapes) {
      const n = R.numel(shape);
      const vals = rng.ints(n, -5, 5); // many ties
      if (dt !== 'int32' && n > 10) for (let k = 0; k < 3; k++) vals[rng.int(0, n - 1)] = NaN;
      const a = input(dt, shape, vals);
      const view = shape.length >= 2 && n < 10000 ? stridedView(rng, dt, a.x) : undefined;
      for (let axis = -shape.length; axis < shape.length; axis++) {
        const ax = axis < 0 ? axis + shape.length : axis;
        for (const op of ['argmax', 'argmin'] as const) {
          for (const kd of [false, true]) {
            const ref = R.argReduce(op, a.x, ax, kd);
            const ctx = `${op}(${dt} ${JSON.stringify(shape)}, axis ${axis}, keepDims ${kd})`;
            const y = keep(N.argReduce(op, a.h, axis, kd));
            assertShape(y, ref.shape, ctx);
            assert.instance(N.read(y), Int32Array, `${ctx}: int32 result`);
            checkExact(values(y), ref.data, ctx);
            if (view) checkExact(values(keep(N.argReduce(op, view, axis, kd))), ref.data, `strided ${ctx}`);
          }
        }
      }
    }
  }
  const s = input('float32', [], [4]);
  checkExact(values(keep(N.argReduce('argmax', s.h, 0, false))), [0], 'argmax of a 0-d tensor');
});

t('argReduce errors: axis out of range, empty axis, dtypes, op names', () => {
  const a = tensor('float32', [3, 4], new Float32Array(12));
  throwsLike(() => N.argReduce('argmax', a, 2, false), RangeError, [/'axis'/, /\[3, 4\]/], 'axis 2');
  throwsLike(() => N.argReduce('argmax', a, -3, false), RangeError, [/'axis'/], 'axis -3');
  throwsLike(() => N.argReduce('argmax', a, 0.5, false), RangeError, [/'axis'/], 'axis 0.5');
  throwsLike(() => N.argReduce('argmax', tensor('float32', [3, 0], []), 1, false), RangeError, [/empty/], 'empty axis');
  throwsLike(() => N.argReduce('argmax', tensor('uint8', [3], [1, 2, 3]), 0, false), TypeError, [/uint8/], 'uint8');
  throwsLike(() => N.argReduce('argmed' as 'argmax', a, 0, false), RangeError, [/'op'/], 'op');
  throwsLike(() => N.argReduce('argmax', a, 0, 1 as unknown as boolean), TypeError, [/'keepDims'/], 'keepDims');
});

// ---- softmax --------------------------------------------------------------------------------------

function runSoftmax(dt: DType, h: Handle, x: R.Arr, axis: number, log: boolean, ctx: string) {
  const ax = axis < 0 ? axis + Math.max(1, x.shape.length) : axis;
  const xs = x.shape.length ? x : { data: x.data, shape: [1] };
  const ref = R.softmax(xs, ax, log).data;
  // per element: the max and log-sum of its slice, for the tolerance
  const mx = R.reduce('max', xs, [ax], true);
  const sh = R.binary('sub', xs, mx);
  const ls = R.reduce('sum', { data: sh.data.map(Math.exp), shape: xs.shape }, [ax], true);
  const mb = R.binary('add', { data: new Float64Array(sh.data.length), shape: xs.shape }, mx).data;
  const lb = R.binary('add', { data: new Float64Array(sh.data.length), shape: xs.shape }, { data: ls.data.map(Math.log), shape: ls.shape }).data;
  poisonHeap(ref.length * 8);
  const y = keep(N.softmax(h, axis, log));
  assertShape(y, x.shape, ctx);
  const tol = log
    ? (i: number) => tolerance(dt, 6, Math.abs(x.data[i]) + Math.abs(mb[i]) + Math.abs(lb[i]) + 1, ref[i])
    : (i: number) => tolerance(dt, 2 * (6 + Math.abs(sh.data[i])), Math.abs(ref[i]), ref[i]);
  check(values(y), ref, tol, ctx, dt);
}

t('softmax / log-softmax: every float dtype, every axis, odd sizes, strided views, vs float64', () => {
  const rng = rngFor('softmax');
  const shapes = [[], [1], [3], [17], [1000], [17, 129], [3, 5, 7], [2, 3000], [2000, 5], [300, 1, 3]];
  for (const dt of FLOAT_DTYPES) {
    for (const shape of shapes) {
      const a = input(dt, shape, rng.normals(R.numel(shape), 3));
      const view = shape.length >= 2 ? stridedView(rng, dt, a.x) : undefined;
      for (let axis = -Math.max(1, shape.length); axis < Math.max(1, shape.length); axis++) {
        for (const log of [false, true]) {
          const ctx = `${log ? 'log' : ''}softmax(${dt} ${JSON.stringify(shape)}, axis ${axis})`;
          runSoftmax(dt, a.h, a.x, axis, log, ctx);
          if (view) runSoftmax(dt, view, a.x, axis, log, `strided ${ctx}`);
        }
      }
    }
  }
});

t('softmax: masked (−inf) entries, all-masked and NaN slices, large logits', () => {
  const x = [0, -Infinity, 1, 2, -Infinity, -Infinity, -Infinity, -Infinity, 1, NaN, 3, 4, 1000, 999, -1000, 0];
  for (const dt of FLOAT_DTYPES) {
    const a = input(dt, [4, 4], x);
    for (const axis of [0, 1]) for (const log of [false, true]) runSoftmax(dt, a.h, a.x, axis, log, `softmax specials ${dt} axis ${axis} log ${log}`);
  }
});

t('softmax and log-softmax at every SIMD level (rows and columns)', () => {
  const rng = rngFor('softmax simd');
  atEachSimdLevel((level) => {
    for (const dt of ['float32', 'float16'] as const) {
      for (const shape of [[5, 33], [33, 7], [1, 1000]]) {
        const a = input(dt, shape, rng.normals(R.numel(shape), 4));
        for (const axis of [0, 1]) for (const log of [false, true]) runSoftmax(dt, a.h, a.x, axis, log, `${level}: softmax ${dt} ${shape} axis ${axis}`);
      }
    }
  });
});

t('softmax errors: int32, axis out of range, log not a boolean', () => {
  const a = tensor('float32', [2, 3], new Float32Array(6));
  throwsLike(() => N.softmax(tensor('int32', [2], [1, 2]), 0, false), TypeError, [/'a'/, /int32/], 'int32');
  throwsLike(() => N.softmax(a, 2, false), RangeError, [/'axis'/, /\[2, 3\]/], 'axis 2');
  throwsLike(() => N.softmax(a, -3, false), RangeError, [/'axis'/], 'axis -3');
  throwsLike(() => N.softmax(a, 0, 'yes' as unknown as boolean), TypeError, [/'log'/], 'log');
});

// ---- cross-entropy ----------------------------------------------------------------------------------

t('crossEntropy and its backward: every float dtype, odd sizes, strided logits, vs float64', () => {
  const rng = rngFor('crossEntropy');
  for (const dt of FLOAT_DTYPES) {
    for (const [M, C] of [[1, 1], [3, 5], [17, 129], [1000, 10], [4, 3000], [129, 3]]) {
      const a = input(dt, [M, C], rng.normals(M * C, 3));
      const labels = tensor('int32', [M], rng.ints(M, 0, C - 1));
      const lab = Array.from(N.read(labels) as Int32Array);
      const loss = R.crossEntropy(a.x, lab);
      let range = 0;
      for (let m = 0; m < M; m++) {
        const row = Array.from(a.x.data.subarray(m * C, (m + 1) * C));
        range = Math.max(range, Math.max(...row) - Math.min(...row));
      }
      const ctx = `crossEntropy(${dt} [${M}, ${C}])`;
      for (const h of [a.h, stridedView(rng, dt, a.x)]) {
        const y = keep(N.crossEntropy(h, labels));
        assertShape(y, [], ctx);
        check(values(y), [loss], () => tolerance(dt, 2, 8 + range + Math.abs(loss), loss), ctx, dt);
        const gval = rng.normal() * 2;
        const g = tensor(dt, [], [gval]);
        const gv = values(g)[0];
        const ref = R.crossEntropyBackward(a.x, lab, gv);
        const p = R.softmax(a.x, 1).data;
        const sh = R.binary('sub', a.x, R.reduce('max', a.x, [1], true)).data;
        const dx = keep(N.crossEntropyBackward(h, labels, g));
        assertShape(dx, [M, C], `${ctx} backward`);
        check(values(dx), ref.data, (i) => tolerance(dt, 2 * (8 + Math.abs(sh[i])), ((p[i] + (i % C === lab[Math.floor(i / C)] ? 1 : 0)) * Math.abs(gv)) / M, ref.data[i]), `${ctx} backward`, dt);
      }
    }
  }
});

t('crossEntropy: zero rows give NaN (mean of nothing); large logits stay finite', () => {
  const e = tensor('float32', [0, 4], []);
  checkExact(values(keep(N.crossEntropy(e, tensor('int32', [0], [])))), [NaN], 'M = 0');
  const a = input('float32', [2, 3], [1000, -1000, 0, -5000, 5000, 4999]);
  const lab = [1, 2];
  const loss = R.crossEntropy(a.x, lab);
  check(values(keep(N.crossEntropy(a.h, tensor('int32', [2], lab)))), [loss], () => tolerance('float32', 2, 8 + 10000 + loss, loss), 'large logits');
});

t('crossEntropy errors: labels out of range name the row; dtypes and shapes', () => {
  const logits = tensor('float32', [4, 3], new Float32Array(12));
  const g = tensor('float32', [], [1]);
  for (const bad of [3, -1, 100]) {
    const labels = tensor('int32', [4], [0, 1, bad, 2]);
    throwsLike(() => N.crossEntropy(logits, labels), RangeError, [/labels\[2\]/, new RegExp(`${bad}`), /\[0, 3\)/], `label ${bad}`);
    throwsLike(() => N.crossEntropyBackward(logits, labels, g), RangeError, [/labels\[2\]/], `backward label ${bad}`);
  }
  const ok = tensor('int32', [4], [0, 1, 2, 0]);
  throwsLike(() => N.crossEntropy(logits, tensor('float32', [4], [0, 1, 2, 0])), TypeError, [/'labels'/, /int32/], 'float labels');
  throwsLike(() => N.crossEntropy(logits, tensor('int32', [3], [0, 1, 2])), RangeError, [/'labels'/, /\[4, 3\]/], 'labels length');
  throwsLike(() => N.crossEntropy(tensor('float32', [12], new Float32Array(12)), ok), RangeError, [/'logits'/, /2-D/], '1-D logits');
  throwsLike(() => N.crossEntropy(tensor('int32', [4, 3], new Int32Array(12)), ok), TypeError, [/'logits'/], 'int logits');
  throwsLike(() => N.crossEntropyBackward(logits, ok, tensor('float32', [2], [1, 1])), RangeError, [/'g'/], 'g of two elements');
  throwsLike(() => N.crossEntropyBackward(logits, ok, tensor('int32', [], [1])), TypeError, [/'g'/], 'int g');
  throwsLike(() => N.crossEntropyBackward(logits, ok, undefined as unknown as Handle), TypeError, [/'g'/], 'missing g');
});

// ---- reduce errors ----------------------------------------------------------------------------------

t('reduce errors: axes unsorted, repeated, out of range, fractional, not numbers; dtypes; op names', () => {
  const a = tensor('float32', [2, 3, 4], new Float32Array(24));
  throwsLike(() => N.reduce('sum', a, [1, 0], false), RangeError, [/'axes'/, /sorted/], 'unsorted');
  throwsLike(() => N.reduce('sum', a, [1, 1], false), RangeError, [/'axes'/, /unique/], 'repeated');
  throwsLike(() => N.reduce('sum', a, [3], false), RangeError, [/axes\[0\]/, /\[2, 3, 4\]/], 'out of range');
  throwsLike(() => N.reduce('sum', a, [-1], false), RangeError, [/axes\[0\]/], 'negative');
  throwsLike(() => N.reduce('sum', a, [0.5], false), RangeError, [/axes\[0\]/], 'fractional');
  throwsLike(() => N.reduce('sum', a, [0, 1, 2, 2], false), RangeError, [/'axes'/], 'too many');
  throwsLike(() => N.reduce('sum', a, ['0'] as unknown as number[], false), TypeError, [/'axes'/], 'strings');
  throwsLike(() => N.reduce('sum', a, 0 as unknown as number[], false), TypeError, [/'axes'/], 'not an array');
  throwsLike(() => N.reduce('sum', a, [0], undefined as unknown as boolean), TypeError, [/'keepDims'/], 'keepDims');
  throwsLike(() => N.reduce('prod' as ReduceOp, a, [0], false), RangeError, [/'op'/, /prod/], 'op');
  throwsLike(() => N.reduce('mean', tensor('int32', [3], [1, 2, 3]), [0], false), TypeError, [/int32/, /float/], 'int32 mean');
  throwsLike(() => N.reduce('sum', tensor('uint8', [3], [1, 2, 3]), [0], false), TypeError, [/uint8/], 'uint8');
  throwsLike(() => N.reduce('sum', null as unknown as Handle, [0], false), TypeError, [/'a'/], 'null a');
});

t('reductions at every SIMD level: float32 rows and columns of sum/max/min, crossEntropy', () => {
  const rng = rngFor('reduce simd');
  atEachSimdLevel((level) => {
    for (const [shape, axes] of [[[5, 33], [1]], [[33, 5], [0]], [[3, 1000], [1]], [[4, 17, 3], [1]]] as [number[], number[]][]) {
      for (const op of ['sum', 'mean', 'max', 'min'] as ReduceOp[]) {
        const a = input('float32', shape, gen('float32', rng, R.numel(shape), op));
        runReduce(op, 'float32', a.h, a.x, axes, false, `${level}: ${op} ${shape} over ${axes}`);
      }
    }
    const a = input('float32', [7, 33], rng.normals(7 * 33));
    const lab = rng.ints(7, 0, 32);
    const loss = R.crossEntropy(a.x, lab);
    check(values(keep(N.crossEntropy(a.h, tensor('int32', [7], lab)))), [loss], () => tolerance('float32', 2, 20 + loss, loss), `${level}: crossEntropy`);
  });
});

void code;
t.run();
