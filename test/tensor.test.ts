// tensor.test.ts — creating tensors (tensor, zeros, ones, full, eye, arange, randn, rand, *Like),
// their properties, reading (data, dataSync, item, toArray), printing (PyTorch-like toString),
// devices and dtypes, and bad arguments (shapes, data, dtypes, devices).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as S from '../lib/index';
import { Tensor } from '../lib/index';
import { throwsLike, liveCounts, assertNoLeak } from './helpers';
import { roundBF16, roundF16 } from './reference/core';
import { native, DTYPE_CODES, DTYPE_BYTES } from '../lib/native';

function withLeakCheck(name: string, fn: () => void): void {
  test(name, () => {
    const before = liveCounts();
    fn();
    assertNoLeak(before, name);
  });
}

withLeakCheck('tensor(): numbers, nested arrays (shape inferred), TypedArrays, shape option', () => {
  const cases: [Tensor, number[], S.DType, number[]][] = [
    [S.tensor(3.5), [], 'float32', [3.5]],
    [S.tensor(true), [], 'float32', [1]],
    [S.tensor([1, 2, 3]), [3], 'float32', [1, 2, 3]],
    [S.tensor([[1, 2, 3], [4, 5, 6]]), [2, 3], 'float32', [1, 2, 3, 4, 5, 6]],
    [S.tensor([[[1], [2]], [[3], [4]]]), [2, 2, 1], 'float32', [1, 2, 3, 4]],
    [S.tensor([]), [0], 'float32', []],
    [S.tensor([[], []]), [2, 0], 'float32', []],
    [S.tensor([1, 2, 3, 4], { shape: [2, 2] }), [2, 2], 'float32', [1, 2, 3, 4]],
    [S.tensor(new Float64Array([1, 2])), [2], 'float64', [1, 2]],
    [S.tensor(new Int32Array([1, -2])), [2], 'int32', [1, -2]],
    [S.tensor(new Uint8Array([1, 255])), [2], 'uint8', [1, 255]],
    [S.tensor(new Uint16Array([1, 65535])), [2], 'uint16', [1, 65535]],
    [S.tensor(new Float32Array(6).fill(2), { shape: [3, 2] }), [3, 2], 'float32', [2, 2, 2, 2, 2, 2]],
    [S.tensor(new Float64Array([1.5, -2]), { dtype: 'float32' }), [2], 'float32', [1.5, -2]],
    [S.tensor([1, 2], { dtype: 'int32' }), [2], 'int32', [1, 2]],
    [S.tensor([0.1, 2], { dtype: 'float64' }), [2], 'float64', [0.1, 2]],
    [S.tensor([1.0009765625, 65504], { dtype: 'float16' }), [2], 'float16', [1.0009765625, 65504]],
    [S.tensor(new Float32Array([1.5, -3]), { dtype: 'bfloat16' }), [2], 'bfloat16', [1.5, -3]],
    // float16 from raw bits: 0x3c00 = 1, 0xc000 = −2
    [S.tensor(new Uint16Array([0x3c00, 0xc000]), { dtype: 'float16' }), [2], 'float16', [1, -2]],
    // views of a SharedArrayBuffer (worker data) are copied (they were "Error: Invalid argument")
    [S.tensor(new Float32Array(new SharedArrayBuffer(8)).fill(2.5)), [2], 'float32', [2.5, 2.5]],
    [S.tensor(new Uint16Array(new SharedArrayBuffer(4)).fill(0x3f80), { dtype: 'bfloat16' }), [2], 'bfloat16', [1, 1]],
    [S.tensor(new Float32Array(new SharedArrayBuffer(4)).fill(-3), { dtype: 'float16' }), [1], 'float16', [-3]],
  ];
  for (const [t, shape, dtype, values] of cases) {
    assert.equal(t.shape, shape);
    assert.is(t.dtype, dtype);
    assert.equal(Array.from(t.dataSync()), values);
    assert.is(t.device, 'cpu');
    t.dispose();
  }
  const f = S.tensor([0.1]);
  assert.is(f.item(), Math.fround(0.1), 'float32 rounds');
  f.dispose();
});

withLeakCheck('tensor(): ragged arrays, non-numbers and length mismatches are errors naming the problem', () => {
  throwsLike(() => S.tensor([[1, 2], [3]]), RangeError, /structura\.tensor: 'data' is ragged: data\[1\] has length 1 but the first array at that depth has length 2/);
  throwsLike(() => S.tensor([[1, 2], 3] as never), RangeError, /'data' is ragged: data\[1\] is a number/);
  throwsLike(() => S.tensor([1, [2]] as never), RangeError, /'data' is ragged: data\[1\] is an array/);
  throwsLike(() => S.tensor([1, 'a'] as never), TypeError, /'data' must hold numbers, but data\[1\] is string 'a'/);
  throwsLike(() => S.tensor('abc' as never), TypeError, /'data' must be a number, nested arrays of numbers, a TypedArray or an array-like of numbers, got string/);
  throwsLike(() => S.tensor(null as never), TypeError, /got null/);
  throwsLike(() => S.tensor([1, 2, 3], { shape: [2, 2] }), RangeError, /'data' has 3 elements but 'shape' \[2, 2\] needs 4/);
  throwsLike(() => S.tensor(new Float32Array(5), { shape: [2, 3] }), RangeError, /'data' has 5 elements but 'shape' \[2, 3\] needs 6/);
  throwsLike(() => S.tensor([1.5], { dtype: 'int32' }), RangeError, /'data' element 0 is 1\.5, which is not an int32 value/);
  throwsLike(() => S.tensor([256], { dtype: 'uint8' }), RangeError, /not a uint8 value/);
  throwsLike(() => S.tensor([-1], { dtype: 'uint16' }), RangeError, /not a uint16 value/);
  throwsLike(() => S.tensor(new Int8Array(2)), TypeError, /'data' is an Int8Array; pass a Float32Array/);
  throwsLike(() => S.tensor([1], { dtype: 'float8' as S.DType }), TypeError, /'dtype' must be one of 'float32', 'float64'/);
  throwsLike(() => S.tensor([1], { requiresGrad: 1 as unknown as boolean }), TypeError, /'requiresGrad' must be a boolean/);
  throwsLike(() => S.tensor([1], { dtype: 'int32', requiresGrad: true }), TypeError, /only floating tensors can require gradients, this one is int32/);
  throwsLike(() => S.tensor([1], 'float32' as never), TypeError, /'opts' must be an object/);
  const t = S.tensor([1, 2]);
  throwsLike(() => S.tensor(t as never), TypeError, /'data' is a Tensor; use \.clone\(\)/);
  t.dispose();
});

withLeakCheck('zeros, ones, full, eye, *Like', () => {
  const z = S.zeros([2, 3]);
  assert.equal(z.toArray(), [[0, 0, 0], [0, 0, 0]]);
  const o = S.ones(3, { dtype: 'int32' });
  assert.equal(o.toArray(), [1, 1, 1]);
  assert.is(o.dtype, 'int32');
  const f = S.full([2], -1.5, { dtype: 'float64' });
  assert.equal(f.toArray(), [-1.5, -1.5]);
  const e = S.eye(3);
  assert.equal(e.toArray(), [[1, 0, 0], [0, 1, 0], [0, 0, 1]]);
  const e2 = S.eye(2, 3, { dtype: 'float64' });
  assert.equal(e2.toArray(), [[1, 0, 0], [0, 1, 0]]);
  const zl = S.zerosLike(f);
  assert.is(zl.dtype, 'float64');
  assert.equal(zl.shape, [2]);
  const ol = S.onesLike(z, { dtype: 'float16' });
  assert.is(ol.dtype, 'float16');
  const fl = S.fullLike(z, 7);
  assert.equal(fl.toArray(), [[7, 7, 7], [7, 7, 7]]);
  const s = S.zeros([]);
  assert.equal(s.shape, []);
  assert.is(s.size, 1);
  const empty = S.ones([0, 5]);
  assert.is(empty.size, 0);
  assert.equal(Array.from(empty.dataSync()), []);
  const leaf = S.zeros([2], { requiresGrad: true });
  assert.ok(leaf.requiresGrad && leaf.isLeaf);
  for (const t of [z, o, f, e, e2, zl, ol, fl, s, empty, leaf]) t.dispose();
  throwsLike(() => S.full([2], 1.5, { dtype: 'int32' }), RangeError, /'value' 1\.5 is not an int32 value/);
  throwsLike(() => S.full([2], 'a' as never), TypeError, /'value' must be a number/);
});

withLeakCheck('arange: one, two, three arguments, negative and fractional steps, int32', () => {
  const cases: [Tensor, number[]][] = [
    [S.arange(5), [0, 1, 2, 3, 4]],
    [S.arange(2, 5), [2, 3, 4]],
    [S.arange(0, 1, 0.25), [0, 0.25, 0.5, 0.75]],
    [S.arange(5, 0, -2), [5, 3, 1]],
    [S.arange(3, 3), []],
    [S.arange(4, { dtype: 'int32' }), [0, 1, 2, 3]],
    [S.arange(1, 4, { dtype: 'float64' }), [1, 2, 3]],
  ];
  for (const [t, want] of cases) {
    assert.equal(Array.from(t.dataSync()), want);
    t.dispose();
  }
  throwsLike(() => S.arange(0, 1, 0), RangeError, /'step' must not be 0/);
  throwsLike(() => S.arange(Infinity), RangeError, /'start' must be finite/);
  throwsLike(() => S.arange(0, 2 ** 45), RangeError, /would have/);
  throwsLike(() => S.arange(0, 1, 0.5, { dtype: 'int32' }), RangeError, /not int32/);
});

withLeakCheck('arange and full at sizes the pool splits: every element, every dtype, subnormals kept under its FTZ', () => {
  // start + i·step in double, rounded once to the dtype (Math.fround for float32: IEEE, subnormals kept)
  const specs: [number, number, number, S.DType][] = [
    [0, 1, 300007, 'float32'], [-3e-38, 1.00001e-42, 60001, 'float32'], [1e-3, -1e-7, 200003, 'float32'], [0.5, 0.125, 100003, 'float64'],
    [-70000, 3, 66667, 'int32'], [2 ** 31 - 1, -65536, 65536, 'int32'], [0, 1, 70001, 'bfloat16'], [0, 0.5, 70001, 'float16'],
  ];
  for (const [a, st, n, dt] of specs) {
    const t = S.arange(a, a + n * st - st / 2, st, { dtype: dt });
    const got = t.dataSync();
    t.dispose();
    assert.is(got.length, n, `arange(${a}, …, ${st}) ${dt}: length`);
    const round = dt === 'float32' ? Math.fround : dt === 'bfloat16' ? (v: number) => roundBF16(Math.fround(v)) : dt === 'float16' ? (v: number) => roundF16(Math.fround(v)) : (v: number) => v;
    for (let i = 0; i < n; i++) {
      const want = round(a + i * st);
      if (!Object.is(got[i], want)) assert.unreachable(`arange(${a}, …, ${st}) ${dt}: element ${i} is ${got[i]}, expected ${want}`);
    }
  }
  // the raw addon past int32's range saturates, as every dtype's conversion does (a wrapping fast path did not)
  const sat = native().arange(DTYPE_CODES.int32, 2147483600, 100, 3, 0, 0);
  assert.equal(Array.from(native().read(sat) as Int32Array), [2147483600, 2147483647, 2147483647]);
  native().dispose(sat);
  for (const [dt, v] of [['float32', -1.5], ['float64', Math.PI], ['float16', 0.333], ['bfloat16', -7.25], ['int32', -123456], ['uint8', 200], ['uint16', 60000], ['float32', 0], ['float32', -0]] as [S.DType, number][]) {
    const n = 100003;
    const t = S.full([n], v, { dtype: dt });
    const got = t.dataSync();
    t.dispose();
    const want = dt === 'float32' ? Math.fround(v) : dt === 'float16' ? roundF16(v) : dt === 'bfloat16' ? roundBF16(v) : v;
    for (let i = 0; i < n; i++) if (!Object.is(got[i], want)) assert.unreachable(`full(${v}) ${dt}: element ${i} is ${got[i]}, expected ${want}`);
  }
});

withLeakCheck('randn / rand: seeded and reproducible; manualSeed; statistics; dtypes', () => {
  const a = S.randn([1000], { seed: 42 });
  const b = S.randn([1000], { seed: 42 });
  const c = S.randn([1000], { seed: 43 });
  assert.equal(Array.from(a.dataSync()), Array.from(b.dataSync()));
  assert.not.equal(Array.from(a.dataSync()), Array.from(c.dataSync()));
  S.manualSeed(7);
  const d1 = S.rand([5]);
  const d2 = S.rand([5]);
  S.manualSeed(7);
  const e1 = S.rand([5]);
  const e2 = S.rand([5]);
  assert.equal(Array.from(d1.dataSync()), Array.from(e1.dataSync()));
  assert.equal(Array.from(d2.dataSync()), Array.from(e2.dataSync()));
  assert.not.equal(Array.from(d1.dataSync()), Array.from(d2.dataSync()), 'successive draws differ');
  const n = S.randn([200000], { seed: 1, dtype: 'float64' });
  const v = Array.from(n.dataSync());
  const mean = v.reduce((p, x) => p + x, 0) / v.length;
  const sd = Math.sqrt(v.reduce((p, x) => p + (x - mean) ** 2, 0) / v.length);
  // standard errors: 1/√n ≈ 0.0022 for the mean, ≈ 0.0016 for the s.d.
  assert.ok(Math.abs(mean) < 0.01, `mean ${mean}`);
  assert.ok(Math.abs(sd - 1) < 0.01, `sd ${sd}`);
  const u = S.rand([100000], { seed: 2 });
  const uv = Array.from(u.dataSync());
  assert.ok(uv.every((x) => x > 0 && x < 1));
  assert.ok(Math.abs(uv.reduce((p, x) => p + x, 0) / uv.length - 0.5) < 0.01);
  const h = S.randn([3, 4], { dtype: 'bfloat16', seed: 3 });
  assert.is(h.dtype, 'bfloat16');
  for (const t of [a, b, c, d1, d2, e1, e2, n, u, h]) t.dispose();
  throwsLike(() => S.randn([2], { dtype: 'int32' }), TypeError, /'dtype' must be floating/);
  throwsLike(() => S.randn([2], { seed: 1.5 }), RangeError, /'seed' must be a safe integer/);
  throwsLike(() => S.manualSeed(NaN), RangeError, /safe integer/);
});

// The stream itself (csrc/ops/creation.cc): uniform draw i = ((h >> 11) + 0.5)·2^−53 with h =
// splitmix64(splitmix64(seed) ^ i·γ), bit for bit; normal draw i = √(−2 ln u_{2i})·cos(2π u_{2i+1}),
// within 4 ulp of JavaScript's Math.log / Math.cos on the same uniforms (the kernel has its own log and
// cos); and the same bits at every SIMD level, so a seed gives the same numbers on any machine.
withLeakCheck('rand / randn: the counter-based stream, and the same bits at every SIMD level', () => {
  const M = (1n << 64n) - 1n;
  const splitmix = (x: bigint) => {
    x = (x + 0x9e3779b97f4a7c15n) & M;
    x = ((x ^ (x >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
    x = ((x ^ (x >> 27n)) * 0x94d049bb133111ebn) & M;
    return x ^ (x >> 31n);
  };
  const seed = 20261129n, key = splitmix(seed);
  const uniform = (i: number) => (Number(splitmix(key ^ ((BigInt(i) * 0xd1b54a32d192ed03n) & M)) >> 11n) + 0.5) * 2 ** -53;
  const n = 1037; // odd: the kernels' vector tails
  const u = S.rand([n], { seed: Number(seed), dtype: 'float64' });
  const z = S.randn([n], { seed: Number(seed), dtype: 'float64' });
  const uv = u.dataSync(), zv = z.dataSync();
  for (let i = 0; i < n; i++) if (uv[i] !== uniform(i)) assert.unreachable(`rand element ${i}: ${uv[i]}, expected ${uniform(i)}`);
  for (let i = 0; i < n; i++) {
    const R = Math.sqrt(-2 * Math.log(uniform(2 * i)));
    const want = R * Math.cos(2 * Math.PI * uniform(2 * i + 1));
    // JavaScript rounds 2π·u (up to 2π·2^−53 off), which near cos's zeros is R·7e−16 in the value; the
    // kernel reduces u exactly first. Beyond that, 4 ulp.
    const tol = 4 * 2 ** (Math.floor(Math.log2(Math.abs(want))) - 52) + R * 2 * Math.PI * 2 ** -53;
    if (!(Math.abs(zv[i] - want) <= tol)) assert.unreachable(`randn element ${i}: ${zv[i]}, Box–Muller gives ${want}`);
  }
  const n2 = native() as unknown as { setSimd(level: string): string };
  const hw = S.backend().simd;
  const levels = ['scalar', 'avx2', 'avx512'].slice(0, ['scalar', 'avx2', 'avx512'].indexOf(hw) + 1);
  const bitsOf = (t: S.Tensor) => Array.from(new Uint32Array((t.rawDataSync() as Float64Array).slice().buffer));
  const want = [bitsOf(z), bitsOf(u)];
  try {
    for (const level of levels) {
      n2.setSimd(level);
      S.tidy(() => {
        assert.equal(bitsOf(S.randn([n], { seed: Number(seed), dtype: 'float64' })), want[0], `randn at ${level}`);
        assert.equal(bitsOf(S.rand([n], { seed: Number(seed), dtype: 'float64' })), want[1], `rand at ${level}`);
      });
    }
  } finally {
    n2.setSimd(hw);
  }
  // float32 draws are the float64 ones rounded
  const z32 = S.randn([n], { seed: Number(seed) });
  assert.equal(Array.from(z32.dataSync()), Array.from(zv, (v) => Math.fround(v)));
  S.dispose([u, z, z32]);
});

withLeakCheck('bad shapes: negative, fractional, huge, not arrays', () => {
  throwsLike(() => S.zeros([2, -1]), RangeError, /structura\.zeros: 'shape' must be an array of non-negative integers, but shape\[1\] is -1/);
  throwsLike(() => S.ones([2.5]), RangeError, /shape\[0\] is 2\.5/);
  throwsLike(() => S.zeros([2 ** 21, 2 ** 21]), RangeError, /has 4398046511104 elements, more than the limit/);
  throwsLike(() => S.zeros('3' as never), TypeError, /'shape' must be an array of non-negative integers, got string/);
  throwsLike(() => S.zeros([1, '2'] as never), TypeError, /shape\[1\] is string/);
  throwsLike(() => S.randn([NaN]), RangeError, /shape\[0\] is NaN/);
  throwsLike(() => S.zeros(new Array(65).fill(1)), RangeError, /structura\.zeros: 'shape' has 65 dimensions, more than the limit of 64/);
});

withLeakCheck('properties: shape (a copy), ndim, size, strides, dtype, device, isContiguous', () => {
  const t = S.zeros([2, 3, 4]);
  assert.equal(t.shape, [2, 3, 4]);
  t.shape.push(9);
  assert.equal(t.shape, [2, 3, 4], 'the shape getter returns a copy');
  assert.is(t.ndim, 3);
  assert.is(t.size, 24);
  assert.equal(t.strides, [12, 4, 1]);
  assert.is(t.dtype, 'float32');
  assert.is(t.device, 'cpu');
  assert.ok(t.isContiguous);
  assert.is(t.storageOffset, 0);
  const n = t.narrow(2, 1, 2);
  assert.is(n.storageOffset, 1);
  assert.not.ok(n.isContiguous);
  assert.throws(() => new (Tensor as unknown as new (...a: unknown[]) => Tensor)(), /constructor is internal/);
  t.dispose();
  n.dispose();
});

test('reading: data(), dataSync(), item(), toArray()', async () => {
  const before = liveCounts();
  const t = S.tensor([[1, 2], [3, 4]]);
  assert.instance(await t.data(), Float32Array);
  assert.equal(Array.from(await t.data()), [1, 2, 3, 4]);
  assert.equal(t.toArray(), [[1, 2], [3, 4]]);
  const s = t.sum();
  assert.is(s.item(), 10);
  throwsLike(() => t.item(), RangeError, /only a one-element tensor has an item, this one has shape \[2, 2\]/);
  const tr = t.T;
  assert.equal(Array.from(tr.dataSync()), [1, 3, 2, 4], 'a view reads in logical order');
  const h = S.tensor([1.5], { dtype: 'float16' });
  assert.instance(h.dataSync(), Float32Array);
  assert.equal(Array.from(h.rawDataSync()), [0x3e00]);
  const z = S.tensor(5, { dtype: 'int32' });
  assert.is(z.toArray(), 5);
  for (const x of [t, s, tr, h, z]) x.dispose();
  assertNoLeak(before, 'reading');
});

test('DTYPE_BYTES (the JS side\'s element sizes) agrees with the native buffers', () => {
  for (const [dtype, bytes] of Object.entries(DTYPE_BYTES)) {
    const b0 = native().memory().cpu.bytes;
    const t = S.zeros([7], { dtype: dtype as S.DType });
    assert.is(native().memory().cpu.bytes - b0, 7 * bytes, dtype);
    t.dispose();
  }
});

test('item() reads the one element of every dtype and device, views at an offset included', () => {
  const before = liveCounts();
  const devices = ['cpu', ...(S.backend().cudaEmu ? ['cuda-emu'] : [])];
  const values: Record<string, number[]> = {
    float32: [Math.fround(0.1), -0, NaN, Infinity], float64: [0.1, -1e-310, NaN], float16: [1.5, -65504, NaN],
    bfloat16: [-3.140625, 1.5 * 2 ** 120, NaN], int32: [-(2 ** 31), 2 ** 31 - 1], uint8: [255, 0], uint16: [65535],
  };
  for (const device of devices) {
    for (const [dtype, vs] of Object.entries(values)) {
      const t = S.tensor([7, ...vs], { dtype: dtype as S.DType, device });
      vs.forEach((v, i) => {
        const row = t.narrow(0, i + 1, 1);
        const e = row.reshape([]);
        row.dispose();
        assert.ok(Object.is(e.item(), (e.dataSync() as Float32Array)[0]), `${dtype} ${device} item ${i}: ${e.item()}`);
        assert.ok(Object.is(e.item(), v), `${dtype} ${device}: ${e.item()} is ${v}`);
        e.dispose();
      });
      throwsLike(() => native().item(t._h), RangeError, new RegExp(`only a one-element tensor has an item, this one has shape \\[${vs.length + 1}\\]`));
      t.dispose();
    }
  }
  assertNoLeak(before, 'item');
});

withLeakCheck('toString prints like PyTorch', () => {
  const cases: [() => Tensor, string][] = [
    [() => S.tensor([[1.5, 2], [3, 4]]), 'tensor([[1.5000, 2.0000],\n        [3.0000, 4.0000]])'],
    [() => S.tensor([1, 2, 3]), 'tensor([1., 2., 3.])'],
    [() => S.tensor([-1, 2, 3]), 'tensor([-1.,  2.,  3.])'],
    [() => S.tensor(3.25), 'tensor(3.2500)'],
    [() => S.tensor([1, 2], { dtype: 'int32' }), 'tensor([1, 2], dtype=int32)'],
    [() => S.tensor([0.5], { dtype: 'float64' }), 'tensor([0.5000], dtype=float64)'],
    [() => S.tensor([1e-5, 1, 1000]), 'tensor([1.0000e-05, 1.0000e+00, 1.0000e+03])'],
    [() => S.tensor([NaN, Infinity, 1.5]), 'tensor([   nan,    inf, 1.5000])'],
    [() => S.tensor([1], { requiresGrad: true }), 'tensor([1.], requiresGrad=true)'],
    [() => S.zeros([0, 3]), 'tensor([], size=[0, 3])'],
    [() => S.zeros([0]), 'tensor([])'],
  ];
  for (const [make, want] of cases) {
    const t = make();
    assert.is(t.toString(), want);
    t.dispose();
  }
  const x = S.tensor([1], { requiresGrad: true });
  const y = x.mul(2);
  assert.is(y.toString(), 'tensor([2.], gradFn=<MulScalar>)');
  const big = S.tidy(() => S.arange(2000).reshape(40, 50));
  const s = big.toString();
  assert.ok(s.startsWith('tensor([[0.0000e+00, 1.0000e+00, 2.0000e+00, ..., 4.7000e+01,'), s.split('\n')[0]);
  assert.ok(s.includes('        ...,\n'), 'rows are abbreviated');
  assert.ok(s.endsWith('1.9990e+03]])'), s);
  assert.ok(s.split('\n').length <= 14);
  const wide = S.arange(30);
  assert.is(wide.toString().split('\n').length, 3, 'a long row wraps at 80 columns');
  const d = S.zeros([2]);
  d.dispose();
  assert.is(d.toString(), 'tensor(<disposed>, shape=[2], dtype=float32)');
  for (const t of [x, y, big, wide]) t.dispose();
});

withLeakCheck('to() and cast(): same device gives a new tensor on the same storage; other devices say why', () => {
  const t = S.tensor([1, 2]);
  const u = t.to('cpu');
  assert.ok(u !== t);
  assert.equal(Array.from(u.dataSync()), [1, 2]);
  t.dispose();
  assert.equal(Array.from(u.dataSync()), [1, 2], 'disposing one handle keeps the other valid');
  throwsLike(() => u.to('cuda'), TypeError, /structura\.to: device 'cuda' is not available (in this build|on this machine): .+ \(use 'cpu'\)/);
  throwsLike(() => u.to('tpu'), RangeError, /'device' must be 'cpu', 'cuda', 'cuda:N' or 'cuda-emu', got 'tpu'/);
  throwsLike(() => S.zeros([2], { device: 'cuda:1' }), TypeError, /device 'cuda:1' is not available/);
  throwsLike(() => S.zeros([2], { device: 3 as never }), TypeError, /'device' must be a string/);
  const c = u.cast('float64');
  assert.is(c.dtype, 'float64');
  u.dispose();
  c.dispose();
});

withLeakCheck('environment: backend(), setNumThreads/getNumThreads, cuda', () => {
  const b = S.backend();
  assert.type(b.binary, 'string');
  assert.ok(['avx512', 'avx2', 'scalar'].includes(b.simd));
  assert.is(S.cuda.isAvailable(), b.cuda);
  S.cuda.synchronize();
  const n = S.getNumThreads();
  S.setNumThreads(1);
  assert.is(S.getNumThreads(), 1);
  S.setNumThreads(n);
  assert.is(S.getNumThreads(), n);
  throwsLike(() => S.setNumThreads(0), RangeError, /'n' must be in \[1, 256\], got 0/);
  throwsLike(() => S.setNumThreads(1.5), RangeError, /'n' must be an integer/);
  throwsLike(() => S.setNumThreads('2' as never), TypeError, /'n' must be an integer/);
});

// cast's typed conversions (csrc/tensor.cc convert_row): float32 → float64 / bfloat16 / float16 and
// float64 → float32 / bfloat16 / float16 (through float32), on 2^16 elements (the pool's jobs, which run
// with FTZ/DAZ) of every kind — NaN payloads, ±inf, ±0, float32 subnormals, bfloat16 ties, float64
// values beyond float32's range, float64 values that round to float32 subnormals — contiguous and as a
// strided view, each element against JavaScript, exactly: subnormals are kept both ways, under the
// pool's FTZ/DAZ too, as the devices keep them (the old cvtsd2ss flushed float64 → float32 / bfloat16).
withLeakCheck('cast between float32 / float64 and float64 / float32 / bfloat16 / float16: every kind of value, contiguous and strided', () => {
  const n = 1 << 16;
  let seed = 12345;
  const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const bits = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const u = (rnd() * 2 ** 32) >>> 0;
    switch (i % 6) {
      case 0: bits[i] = u; break;                                          // any pattern, NaN payloads included
      case 1: bits[i] = u & 0x807fffff; break;                             // subnormals and ±0
      case 2: bits[i] = (u & 0xffff0000) | 0x8000; break;                  // bfloat16 ties
      case 3: bits[i] = (u & 0x807fffff) | 0x7f800000; break;              // ±inf and NaNs
      default: bits[i] = (u & 0x80ffffff) | (((100 + (u % 56)) & 0xff) << 23); // near float16's range
    }
  }
  const f32 = new Float32Array(bits.buffer);
  const f64 = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const k = i % 5;
    f64[i] = k === 0 ? f32[i] : k === 1 ? (rnd() - 0.5) * 2 ** Math.floor(rnd() * 2200 - 1100) : k === 2 ? (rnd() - 0.5) * 2 ** -130 : k === 3 ? (rnd() - 0.5) * 2 ** 20 : [NaN, Infinity, -Infinity, 0, -0, 5e-324][i % 6];
  }
  const f32of = new Float32Array(1), u32of = new Uint32Array(f32of.buffer);
  const fromBF16 = (b: number) => ((u32of[0] = b << 16), f32of[0]);
  const fromF16 = (h: number) => {
    const e = (h >> 10) & 31, m = h & 1023, sg = h & 0x8000 ? -1 : 1;
    return e === 31 ? (m ? NaN : sg * Infinity) : sg * (e ? (1 + m / 1024) * 2 ** (e - 15) : (m / 1024) * 2 ** -14);
  };
  for (const [src, arr] of [['float32', f32], ['float64', f64]] as const) {
    const t = S.tensor(arr, { dtype: src });
    const pairs = t.reshape([n / 2, 2]);
    const view = pairs.T; // [2, n/2], element (a, b) = t[2b + a]
    for (const dst of (src === 'float32' ? ['float64', 'bfloat16', 'float16'] : ['float32', 'bfloat16', 'float16']) as S.DType[]) {
      for (const [how, x, at] of [['contiguous', t, (i: number) => i], ['strided', view, (i: number) => 2 * (i % (n / 2)) + Math.floor(i / (n / 2))]] as const) {
        const y = x.cast(dst);
        const raw = y.rawDataSync();
        y.dispose();
        for (let i = 0; i < n; i++) {
          const v = arr[at(i)];
          const got = dst === 'bfloat16' ? fromBF16(raw[i]) : dst === 'float16' ? fromF16(raw[i]) : raw[i];
          const through = Math.fround(v); // float64 sources go to the 16-bit dtypes through float32
          const want = dst === 'float64' ? v : dst === 'float32' ? through : dst === 'bfloat16' ? roundBF16(through) : roundF16(through);
          if (Number.isNaN(want) && Number.isNaN(got)) {
            // float32 → float16: the canonical NaN with the input's sign, as float_to_half and the devices
            // make it (the F16C conversion would keep the payload)
            const canon = ((bits[at(i)] >>> 16) & 0x8000) | 0x7e00;
            if (src === 'float32' && dst === 'float16' && raw[i] !== canon)
              assert.unreachable(`cast float32 → float16 (${how}) element ${i}: NaN ${bits[at(i)].toString(16)} gave ${raw[i].toString(16)}, expected ${canon.toString(16)}`);
            continue;
          }
          if (Object.is(got, want)) continue;
          assert.unreachable(`cast ${src} → ${dst} (${how}) element ${i}: ${v} gave ${got}, expected ${want}`);
        }
      }
    }
    S.dispose([t, pairs, view]);
  }
});

// The widening and integer casts of convert_row: bfloat16 / float16 → float32 for all 2^16 bit
// patterns (exact, subnormals kept under the pool's DAZ, a NaN made quiet with its payload, as the trip
// through double makes it and the devices reproduce), int32 / uint8 → float32 (one rounding), and
// float32 → int32 / uint8 (NaN → 0, saturated, truncated toward zero), contiguous and strided.
withLeakCheck('cast from bfloat16 / float16 / int32 / uint8 to float32 and from float32 to int32 / uint8: every bit pattern or edge, contiguous and strided', () => {
  const n = 1 << 16;
  const all = new Uint16Array(n).map((_, i) => i);
  const f32of = new Float32Array(1), u32of = new Uint32Array(f32of.buffer);
  const quiet = (u: number) => (((u & 0x7fffffff) >>> 0) > 0x7f800000 ? (u | 0x400000) >>> 0 : u >>> 0);
  const f16bits = (h: number) => {
    const e = (h >> 10) & 31, m = h & 1023, sg = h & 0x8000 ? -1 : 1;
    if (e === 31) return quiet(((h & 0x8000) << 16 | 0x7f800000 | (m << 13)) >>> 0);
    f32of[0] = sg * (e ? (1 + m / 1024) * 2 ** (e - 15) : (m / 1024) * 2 ** -14);
    return u32of[0];
  };
  const views = (t: S.Tensor) => [['contiguous', t, (i: number) => i], ['strided', t.reshape([t.size / 2, 2]).T, (i: number) => 2 * (i % (t.size / 2)) + Math.floor(i / (t.size / 2))]] as const;
  for (const [src, want] of [['bfloat16', (h: number) => quiet(h << 16)], ['float16', f16bits]] as const) {
    S.tidy(() => {
      for (const [how, x, at] of views(S.tensor(all, { dtype: src, shape: [n] }))) {
        const got = new Uint32Array((x.cast('float32').rawDataSync() as Float32Array).slice().buffer);
        for (let i = 0; i < n; i++)
          if (got[i] !== want(all[at(i)]))
            assert.unreachable(`cast ${src} → float32 (${how}): bits ${all[at(i)].toString(16)} gave ${got[i].toString(16)}, expected ${want(all[at(i)]).toString(16)}`);
      }
    });
  }
  let seed = 99;
  const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const ints = Int32Array.from({ length: n }, (_, i) => (i % 4 === 0 ? [2147483647, -2147483648, 16777217, -16777217][(i / 4) % 4] : Math.floor((rnd() - 0.5) * 2 ** 32)));
  const bytes = Uint8Array.from({ length: n }, (_, i) => i & 255);
  const edges = [NaN, Infinity, -Infinity, -0, 0.999, -0.999, 2147483648, -2147483648, 2147483520, -2147483904, 254.9, 255, 255.5, 1e30, -1e30, 3e-45];
  const floats = Float32Array.from({ length: n }, (_, i) => (i % 3 === 0 ? edges[(i / 3) % edges.length] : (rnd() - 0.5) * 2 ** (rnd() * 70 - 20)));
  const sat = (v: number, lo: number, hi: number) => (Number.isNaN(v) ? 0 : v <= lo ? lo : v >= hi ? hi : Math.trunc(v) + 0);
  const cases: [S.DType, ArrayLike<number>, S.DType, (v: number) => number][] = [
    ['int32', ints, 'float32', Math.fround],
    ['uint8', bytes, 'float32', (v) => v],
    ['float32', floats, 'int32', (v) => sat(v, -2147483648, 2147483647)],
    ['float32', floats, 'uint8', (v) => sat(v, 0, 255)],
  ];
  for (const [src, arr, dst, want] of cases) {
    S.tidy(() => {
      for (const [how, x, at] of views(S.tensor(arr as never, { dtype: src, shape: [n] }))) {
        const got = x.cast(dst).dataSync();
        for (let i = 0; i < n; i++)
          if (!Object.is(got[i], want(arr[at(i)])))
            assert.unreachable(`cast ${src} → ${dst} (${how}) element ${i}: ${arr[at(i)]} gave ${got[i]}, expected ${want(arr[at(i)])}`);
      }
    });
  }
});

withLeakCheck('a misspelt or unsupported option is a TypeError naming it, in every function that takes options', () => {
  const { lowrank, nn, gradcheck } = S;
  const x = S.randn([3, 4], { seed: 1 });
  const W = S.randn([5, 4], { seed: 2 });
  const A = S.randn([2, 4], { seed: 3 });
  const B = S.randn([5, 2], { seed: 4 });
  const As = S.randn([2, 2, 4], { seed: 5 });
  const Bs = S.randn([2, 5, 2], { seed: 6 });
  const ids = S.tensor([0, 1, -1], { dtype: 'int32' });
  const gates = S.rand([3, 2], { seed: 7 });
  const bias = S.zeros([5]);
  const Sp = { indices: S.tensor([0], { dtype: 'int32' }), values: S.ones([1]), shape: [5, 4] };
  const layer = new nn.Linear(4, 5, { seed: 1 });
  const lr = new nn.LowRankLinear(4, 5, 2, { seed: 1 });
  const p = S.zeros([3, 3]);
  const leaf = S.randn([2], { seed: 8, requiresGrad: true });
  const loss = S.sum(leaf);
  const bad = { tpyo: 1 } as never;
  const cases: [string, () => unknown, RegExp][] = [
    ['tensor', () => S.tensor([1, 2], { dtpye: 'float64' } as never), /structura\.tensor: unknown option 'dtpye' \(known options: dtype, device, requiresGrad, shape\)/],
    ['zeros', () => S.zeros([2], bad), /structura\.zeros: unknown option 'tpyo'/],
    ['ones', () => S.ones([2], bad), /structura\.ones: unknown option/],
    ['full', () => S.full([2], 3, bad), /structura\.full: unknown option/],
    ['zerosLike', () => S.zerosLike(x, bad), /structura\.zerosLike: unknown option/],
    ['eye', () => S.eye(2, bad), /structura\.eye: unknown option/],
    ['arange', () => S.arange(3, bad), /structura\.arange: unknown option/],
    ['randn', () => S.randn([2], { sed: 1 } as never), /structura\.randn: unknown option 'sed' \(known options: dtype, device, requiresGrad, seed\)/],
    ['rand', () => S.rand([2], { requires_grad: true } as never), /structura\.rand: unknown option 'requires_grad' \(did you mean 'requiresGrad'\?\)/],
    ['lowrank.linear', () => lowrank.linear(x, A, B, { rnk: 1 } as never), /structura\.lowrank\.linear: unknown option 'rnk'/],
    ['lowrank.lora', () => lowrank.lora(x, W, A, B, { scal: 2 } as never), /structura\.lowrank\.lora: unknown option 'scal'/],
    // (a rank prefix is lora's and linear's only)
    ['lowrank.loraBatched', () => lowrank.loraBatched(x, W, As, Bs, ids, { bias, rank: 1 } as never), /structura\.lowrank\.loraBatched: unknown option 'rank' \(known options: scale, bias\)/],
    ['lowrank.loraMixture', () => lowrank.loraMixture(x, W, As, Bs, gates, { rank: 1 } as never), /structura\.lowrank\.loraMixture: unknown option 'rank'/],
    ['lowrank.sparsePlusLowRank', () => lowrank.sparsePlusLowRank(x, A, B, Sp, { scale: 2 } as never), /structura\.lowrank\.sparsePlusLowRank: unknown option 'scale'/],
    ['lowrank.svd', () => lowrank.svd(W, { rank: 1, iters: 2 } as never), /structura\.lowrank\.svd: unknown option 'iters'/],
    ['gradcheck', () => gradcheck((t: S.Tensor) => t, [leaf], { tol: 1 } as never), /structura\.gradcheck: unknown option 'tol'/],
    ['backward', () => loss.backward(undefined, { retain: true } as never), /structura\.backward: unknown option 'retain'/],
    ['registerParameter', () => layer.registerParameter('p', p, bad), /registerParameter: unknown option/],
    ['registerBuffer', () => layer.registerBuffer('p', p, bad), /registerBuffer: unknown option/],
    ['namedParameters', () => layer.namedParameters(bad), /namedParameters: unknown option/],
    ['parameters', () => layer.parameters({ recursive: false } as never), /namedParameters: unknown option 'recursive'/],
    ['stateDict', () => layer.stateDict({ clne: true } as never), /stateDict: unknown option 'clne'/],
    ['loadStateDict', () => layer.loadStateDict({}, { strcit: false } as never), /loadStateDict: unknown option 'strcit'/],
    ['init.uniform_', () => nn.init.uniform_(p, 0, 1, bad), /structura\.nn\.init\.uniform_: unknown option/],
    ['init.normal_', () => nn.init.normal_(p, 0, 1, bad), /normal_: unknown option/],
    ['init.kaimingUniform_', () => nn.init.kaimingUniform_(p, { mod: 'fanOut' } as never), /kaimingUniform_: unknown option 'mod'/],
    ['init.kaimingNormal_', () => nn.init.kaimingNormal_(p, bad), /kaimingNormal_: unknown option/],
    ['init.xavierUniform_', () => nn.init.xavierUniform_(p, bad), /xavierUniform_: unknown option/],
    ['init.xavierNormal_', () => nn.init.xavierNormal_(p, bad), /xavierNormal_: unknown option/],
    ['LowRankLinear.forward', () => lr.forward(x, { rnk: 1 } as never), /nn\.LowRankLinear\.forward: unknown option 'rnk'/],
  ];
  for (const [name, f, re] of cases) {
    const before = S.memory().cpu.buffers;
    try {
      throwsLike(f, TypeError, re);
    } catch (e) {
      (e as Error).message = `${name}: ${(e as Error).message}`;
      throw e;
    }
    assert.is(S.memory().cpu.buffers, before, `${name}: a refused call allocated`);
  }
  S.dispose([x, W, A, B, As, Bs, ids, gates, bias, Sp.indices, Sp.values, p, leaf, loss]);
  layer.dispose();
  lr.dispose();
});

withLeakCheck('tensor() takes what its type allows: array-likes, every numeric TypedArray (with a dtype), Buffer', () => {
  const got = (t: Tensor) => {
    const r = { dtype: t.dtype, shape: t.shape, values: Array.from(t.dataSync() as ArrayLike<number>) };
    t.dispose();
    return r;
  };
  assert.equal(got(S.tensor({ length: 3, 0: 1, 1: 2, 2: 3 })), { dtype: 'float32', shape: [3], values: [1, 2, 3] });
  assert.equal(got(S.tensor({ length: 4, 0: 1, 1: 2, 2: 3, 3: 4 }, { dtype: 'int32', shape: [2, 2] })), { dtype: 'int32', shape: [2, 2], values: [1, 2, 3, 4] });
  assert.equal(got(S.tensor({ length: 0 })), { dtype: 'float32', shape: [0], values: [] });
  // no dtype of their own in structura: the caller gives one
  assert.equal(got(S.tensor(new Int8Array([-1, 2]), { dtype: 'float32' })), { dtype: 'float32', shape: [2], values: [-1, 2] });
  assert.equal(got(S.tensor(new Int16Array([-300, 2]), { dtype: 'int32' })), { dtype: 'int32', shape: [2], values: [-300, 2] });
  assert.equal(got(S.tensor(new Uint32Array([7, 2]), { dtype: 'float64' })), { dtype: 'float64', shape: [2], values: [7, 2] });
  assert.equal(got(S.tensor(new Uint8ClampedArray([255, 2]), { dtype: 'uint8' })), { dtype: 'uint8', shape: [2], values: [255, 2] });
  throwsLike(() => S.tensor(new Uint32Array(2)), TypeError, /'data' is a Uint32Array; pass a Float32Array, .* or give a dtype/);
  // a Buffer is a Uint8Array (a view into a pooled ArrayBuffer: the offset counts)
  assert.equal(got(S.tensor(Buffer.from([9, 8, 7, 6]).subarray(1))), { dtype: 'uint8', shape: [3], values: [8, 7, 6] });
  throwsLike(() => S.tensor({ length: 2, 0: 1, 1: 'a' } as never), TypeError, /'data' is an array-like whose element 1 is string 'a', not a number/);
  throwsLike(() => S.tensor(new BigInt64Array(2) as never), TypeError, /'data' is a BigInt64Array \(BigInts\); pass numbers/);
  throwsLike(() => S.tensor({} as never), TypeError, /'data' must be a number, nested arrays of numbers, a TypedArray or an array-like of numbers, got an object/);
  throwsLike(() => S.tensor({ length: 2 ** 41 }), RangeError, /structura\.tensor: 'data' is an array-like of length 2199023255552, more than the limit/);
  throwsLike(() => S.tensor(new Uint32Array([2 ** 31]), { dtype: 'int32' }), RangeError, /'data' element 0 is 2147483648, which is not an int32 value/);
});

test.run();
