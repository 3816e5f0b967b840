// denormals.test.ts — subnormals: large (pooled) and small (inline) CPU ops keep them by default, as the
// devices and PyTorch; setFlushDenormal(true) turns the pool's FTZ/DAZ on (csrc/threadpool.cc), and
// that mode stays inside its jobs: after large parallel CPU ops (elementwise, a reduction, a matmul),
// JavaScript on the calling thread still computes with IEEE subnormals (5e-324 · 1 = 5e-324), and a
// float32 subnormal round-trips through a Float32Array.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as S from '../lib/index';
import { native, DTYPE_CODES, DEVICE_CODES } from '../lib/native';

const N = native();

// Read at run time through an array, so no engine can fold the products at compile time.
const tiny = [5e-324, -5e-324, 2.2250738585072014e-308 / 3];
function jsKeepsSubnormals(what: string) {
  const one = [1, 1, 1];
  for (let i = 0; i < tiny.length; i++) {
    const p = tiny[i] * one[i];
    assert.ok(p === tiny[i] && p !== 0, `${what}: ${tiny[i]} * 1 is ${p} in JavaScript`);
  }
  assert.is(Math.fround(1e-40), 9.99994610111476e-41, `${what}: Math.fround(1e-40)`);
  const f = new Float32Array(1);
  const bits = new Uint32Array(f.buffer);
  for (const b of [0x00000001, 0x80000001, 0x007fffff, 0x00400000]) {
    bits[0] = b;
    const v = f[0]; // a float32 subnormal widened to a double
    assert.ok(v !== 0, `${what}: float32 bits ${b.toString(16)} read as 0`);
    f[0] = v * 1; // and narrowed back
    assert.is(bits[0], b, `${what}: float32 bits ${b.toString(16)} round-trip`);
  }
}

test('JavaScript keeps subnormals after large parallel CPU ops', () => {
  jsKeepsSubnormals('before any op');
  const threads = N.getNumThreads();
  N.setNumThreads(Math.max(2, threads)); // a parallel job even on a 1-core machine
  try {
    S.tidy(() => {
      const x = S.full([1 << 20], 1.5);
      x.mul(x).neg().sum().dataSync(); // elementwise, reduction: split over the pool
      jsKeepsSubnormals('after elementwise and sum');
      const a = S.full([256, 256], 0.25);
      S.matmul(a, a).dataSync();
      jsKeepsSubnormals('after matmul');
    });
  } finally {
    N.setNumThreads(threads);
  }
});

test('a small op run inline on this thread keeps float32 subnormals', () => {
  // Inline work runs in the caller's own (IEEE) mode: 2⁻¹⁴⁰ · 2 = 2⁻¹³⁹, both subnormal.
  const h = N.fromArray(DTYPE_CODES.float32, [3], Float32Array.of(2 ** -140, -(2 ** -140), 2 ** -126), DEVICE_CODES.cpu, 0);
  const y = N.unary('mul_scalar', h, 2);
  assert.equal(Array.from(N.read(y) as Float32Array), [2 ** -139, -(2 ** -139), 2 ** -125]);
  N.dispose(y);
  N.dispose(h);
  jsKeepsSubnormals('after a small op');
});

// A large op (run by the pool) and a small one (inline) give the same IEEE results by default, as the
// devices and PyTorch: the pool flushed subnormals (FTZ/DAZ), so the max of a [100000, 2] tensor of
// 0 and 1e-40 was 0 and of a [4, 2] one 1e-40. setFlushDenormal(true) is torch.set_flush_denormal.
test('subnormals kept by large parallel ops by default; setFlushDenormal(true) flushes them there, JavaScript untouched', () => {
  const threads = N.getNumThreads();
  N.setNumThreads(Math.max(2, threads));
  const tiny = Math.fround(1e-40);
  const rows = (n: number) => {
    const v = new Float32Array(2 * n);
    for (let i = 0; i < n; i++) v[2 * i + 1] = tiny;
    return S.tensor(v, { shape: [n, 2] });
  };
  try {
    S.tidy(() => {
      for (const n of [4, 100000]) {
        const x = rows(n);
        assert.is(S.max(x, 1).dataSync()[n - 1], tiny, `max of ${n} rows`);
        assert.is(S.mul(x, 1).dataSync()[2 * n - 1], tiny, `mul of ${n} rows`);
        assert.is(S.gt(x, 0).dataSync()[2 * n - 1], 1, `gt of ${n} rows`);
      }
      assert.is(S.setFlushDenormal(true), true);
      const big = rows(100000);
      assert.is(S.max(big, 1).dataSync()[99999], 0, 'flushed in a parallel job');
      assert.is(S.max(rows(4), 1).dataSync()[3], 0, 'and inline (a small op): the same mode at every size');
      N.setNumThreads(1);
      assert.is(S.max(big, 1).dataSync()[99999], 0, 'and on one thread');
      N.setNumThreads(Math.max(2, threads));
      jsKeepsSubnormals('with the flush on');
      S.setFlushDenormal(false);
      assert.is(S.max(big, 1).dataSync()[99999], tiny, 'kept again');
      assert.throws(() => S.setFlushDenormal(1 as never), /'mode' must be a boolean/);
    });
  } finally {
    S.setFlushDenormal(false);
    N.setNumThreads(threads);
  }
});

test.run();
