// denormals.test.ts — the pool's FTZ/DAZ (csrc/threadpool.cc) stays inside its jobs: after large
// parallel CPU ops (elementwise, a reduction, a matmul), JavaScript on the calling thread still computes
// with IEEE subnormals (5e-324 · 1 = 5e-324), a float32 subnormal round-trips through a Float32Array,
// and a small op run inline on this thread keeps subnormals.
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

test.run();
