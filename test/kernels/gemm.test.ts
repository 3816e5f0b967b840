// gemm.test.ts — the CPU GEMM core (csrc/cpu/gemm.cc) through the raw native binding: matmul and the
// in-place gemm against the float64 reference of test/reference/dense.ts.
//
// Coverage: every SIMD level × 1 and 2 threads; M and N across the register-tile edges (1 … 2·MR+1,
// 1 … 2·NR+1, and 4·MR+1 so that two threads split rows) and K across the K-block edges (1, 2, KC−1,
// KC, KC+1), with the tile sizes asked from the binding (gemmBlocking) so the edges follow any retuning;
// primes (97, 257), skinny and transposed shapes, thin shapes (one of M, N, K small), strided views,
// batched and broadcast batch dims, 1-D operands, empty dimensions, alpha/beta with NaN in C when
// beta = 0 (and in A, B when alpha = 0),
// the bias and per-block epilogue, and bad arguments.
//
// Tolerances: small-integer inputs must come out EXACTLY (every partial sum is an integer below 2^24).
// Random inputs: |C − Cref| ≤ c·K·u·(|A|·|B|) per element with c = 2 (the classical bound for any
// summation order is K·u·(|A||B|) to first order; the blocked K loop and the alpha/beta update stay
// within twice that), u = 2^−24 (float32) or 2^−53 (float64). float16 / bfloat16 are computed in float32
// from the rounded inputs and rounded once, so they get one ulp of their own type at the reference on
// top of the float32 bound (kernel_util.tolerance).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { DType, Handle } from '../../lib/native';
import * as R from '../reference/core';
import * as D from '../reference/dense';
import {
  N, SEED, atEachSimdLevel, check, checkExact, code, input, keep, leakCheck, poisonHeap, poisoned, rngFor,
  stridedView, tensor, throwsLike, tolerance, values,
} from './kernel_util';

const t = suite('gemm');
leakCheck(t);

const C_BOUND = 2; // the c of c·K·u·(|A||B|)

function withThreads(n: number, fn: () => void): void {
  const before = N.getNumThreads();
  N.setNumThreads(n);
  try {
    fn();
  } finally {
    N.setNumThreads(before);
  }
}

const uniq = (xs: number[]) => [...new Set(xs.filter((x) => x >= 1))].sort((a, b) => a - b);

/** Stored shape of op(X) = [r, c]: [c, r] when transposed. */
const stored = (r: number, c: number, trans: boolean) => (trans ? [c, r] : [r, c]);

/** Checks out (a handle of `dtype`) against the reference result with the random-input tolerance. */
function checkClose(out: Handle, ref: { out: R.Arr; abs: Float64Array; k?: number }, k: number, dtype: DType, ctx: string) {
  assert.equal(N.read(out).length, ref.out.data.length, `${ctx}: size (seed ${SEED})`);
  const got = values(out);
  check(got, ref.out.data, (i) => tolerance(dtype, C_BOUND * Math.max(k, 1), ref.abs[i], ref.out.data[i]), ctx, dtype);
}

// ---- exact results at the tile and block edges ----------------------------------------------------

t('small integers come out exactly at every tile and K-block edge (each SIMD level, 1 and 2 threads)', () => {
  const rng = rngFor('exact edges');
  for (const threads of [1, 2]) {
    withThreads(threads, () => {
      atEachSimdLevel((level) => {
        for (const dtype of ['float32', 'float64'] as const) {
          const { mr, nr, kc } = N.gemmBlocking(code(dtype));
          const Ms = uniq([1, 2, 3, mr - 1, mr, mr + 1, 2 * mr - 1, 2 * mr, 2 * mr + 1, 4 * mr + 1]);
          const Ns = uniq([1, 2, 3, nr / 2 - 1, nr / 2, nr - 1, nr, nr + 1, 2 * nr - 1, 2 * nr, 2 * nr + 1]);
          const Ks = uniq([1, 2, kc - 1, kc, kc + 1]);
          let n = 0;
          for (const M of Ms) {
            for (const Nn of Ns) {
              for (const K of Ks) {
                const ta = rng.uniform() < 0.3, tb = rng.uniform() < 0.3;
                const a = input(dtype, stored(M, K, ta), rng.ints(M * K, -3, 3));
                const b = input(dtype, stored(K, Nn, tb), rng.ints(K * Nn, -3, 3));
                const ref = D.matmul(a.x, b.x, { transA: ta, transB: tb });
                const ctx = `${level} ${threads}T ${dtype} M=${M} N=${Nn} K=${K} ta=${ta} tb=${tb}`;
                if (n++ % 2 === 0) {
                  poisonHeap(M * Nn * 8);
                  const c = keep(N.matmul(a.h, b.h, ta, tb));
                  checkExact(values(c), ref.data, `matmul ${ctx}`);
                } else {
                  const c = poisoned(dtype, [M, Nn]); // beta = 0 must not read the NaN
                  N.gemm(c, a.h, b.h, 1, 0, ta, tb);
                  checkExact(values(c), ref.data, `gemm ${ctx}`);
                }
                N.dispose(a.h);
                N.dispose(b.h);
              }
            }
          }
        }
      });
    });
  }
});

t('float16 and bfloat16: small integers exactly, through float32', () => {
  const rng = rngFor('exact half');
  for (const threads of [1, 2]) {
    withThreads(threads, () => {
      atEachSimdLevel((level) => {
        for (const dtype of ['float16', 'bfloat16'] as const) {
          // |sums| ≤ 4·K ≤ 256: integers exact in bfloat16 (8 significant bits) and float16
          for (const [M, Nn, K] of [[1, 1, 1], [3, 33, 17], [13, 65, 64], [49, 40, 63], [2, 5, 64]]) {
            const ta = rng.uniform() < 0.5, tb = rng.uniform() < 0.5;
            const a = input(dtype, stored(M, K, ta), rng.ints(M * K, -2, 2));
            const b = input(dtype, stored(K, Nn, tb), rng.ints(K * Nn, -2, 2));
            const ref = D.matmul(a.x, b.x, { transA: ta, transB: tb });
            const c = keep(N.matmul(a.h, b.h, ta, tb));
            checkExact(values(c), ref.data, `${level} ${threads}T ${dtype} ${M}x${K}x${Nn} ta=${ta} tb=${tb}`);
          }
        }
      });
    });
  }
});

// ---- random inputs ------------------------------------------------------------------------------------

const RANDOM_SHAPES: [number, number, number][] = [
  [97, 257, 97], [257, 97, 300], [1, 1000, 513], [16, 300, 1000], [130, 70, 1], [5, 3, 800], [300, 2, 40],
  [2, 300, 600], [40, 1, 300], [1, 1, 5000], [17, 129, 1000],
  [245, 990, 40], // N ≥ 4·M: threads split the columns, each over two row blocks
];

t('random inputs within c·K·u·(|A||B|): float32, float64, float16, bfloat16, transposes, 1 and 2 threads', () => {
  const rng = rngFor('random');
  for (const threads of [1, 2]) {
    withThreads(threads, () => {
      for (const dtype of ['float32', 'float64', 'float16', 'bfloat16'] as const) {
        for (const [M, Nn, K] of RANDOM_SHAPES) {
          for (const [ta, tb] of [[false, false], [false, true], [true, false], [true, true]]) {
            const a = input(dtype, stored(M, K, ta), rng.normals(M * K));
            const b = input(dtype, stored(K, Nn, tb), rng.normals(K * Nn));
            const ref = D.matmulWithAbs(a.x, b.x, { transA: ta, transB: tb });
            const c = keep(N.matmul(a.h, b.h, ta, tb));
            checkClose(c, ref, K, dtype, `${threads}T ${dtype} ${M}x${K}x${Nn} ta=${ta} tb=${tb}`);
            N.dispose(a.h);
            N.dispose(b.h);
          }
        }
      }
    });
  }
});

t('random inputs at every SIMD level (float32 and float64, primes and skinny shapes)', () => {
  const rng = rngFor('random simd');
  for (const threads of [1, 2]) {
    withThreads(threads, () => {
      atEachSimdLevel((level) => {
        for (const dtype of ['float32', 'float64'] as const) {
          for (const [M, Nn, K] of [[97, 257, 97], [257, 97, 257], [1, 700, 300], [16, 200, 513], [150, 5, 70]]) {
            const ta = rng.uniform() < 0.5, tb = rng.uniform() < 0.5;
            const a = input(dtype, stored(M, K, ta), rng.normals(M * K));
            const b = input(dtype, stored(K, Nn, tb), rng.normals(K * Nn));
            const ref = D.matmulWithAbs(a.x, b.x, { transA: ta, transB: tb });
            checkClose(keep(N.matmul(a.h, b.h, ta, tb)), ref, K, dtype, `${level} ${threads}T ${dtype} ${M}x${K}x${Nn} ta=${ta} tb=${tb}`);
          }
        }
      });
    });
  }
});

t('large products, checked on sampled entries (1024³ and skinny, NN and NT, 2 threads)', () => {
  const rng = rngFor('large');
  withThreads(2, () => {
    for (const dtype of ['float32', 'float64'] as const) {
      for (const [M, Nn, K, tb] of [[1024, 1024, 1024, false], [1024, 1024, 1024, true], [1, 3000, 2048, false],
        [16, 2048, 1500, true], [600, 8, 2000, false]] as [number, number, number, boolean][]) {
        const seed = rng.int(0, 2 ** 30);
        const ah = keep(N.random('normal', code(dtype), [M, K], seed, 0, 0));
        const bh = keep(N.random('normal', code(dtype), tb ? [Nn, K] : [K, Nn], seed + 1, 0, 0));
        const A = values(ah), B = values(bh);
        const C = values(keep(N.matmul(ah, bh, false, tb)));
        let bad = '';
        for (let s = 0; s < 1500; s++) {
          const i = rng.int(0, M - 1), j = rng.int(0, Nn - 1);
          let ref = 0, abs = 0;
          for (let k = 0; k < K; k++) {
            const p = A[i * K + k] * (tb ? B[j * K + k] : B[k * Nn + j]);
            ref += p;
            abs += Math.abs(p);
          }
          const got = C[i * Nn + j];
          if (!(Math.abs(got - ref) <= tolerance(dtype, C_BOUND * K, abs, ref))) {
            bad = `[${i}, ${j}] got ${got}, expected ${ref}`;
            break;
          }
        }
        assert.is(bad, '', `${dtype} ${M}x${K}x${Nn} tb=${tb} (seed ${SEED})`);
      }
    }
  });
});

// ---- thin products: one of M, N, K small, the others large (low-rank factors) -------------------------------

// Each path of a thin product: N ≤ 16 with many rows (computed transposed, A streamed unpacked), N ≤ 64
// with row-major A read in place by the kernels (row and column edges, K > KC), small N or
// small K with B packed whole (no barriers; K > KC or N > NC so that there are several blocks), and a
// small-rank update of C (K small, beta = 1, as in the fused LoRA epilogue).
const THIN_SHAPES: [number, number, number][] = [
  [257, 1, 300], [300, 7, 129], [129, 9, 600], [257, 15, 257], [300, 16, 1000], [97, 17, 513], [600, 33, 300],
  [300, 64, 700], [300, 100, 300], [61, 128, 270], [129, 256, 1000], [300, 300, 1], [257, 513, 8], [300, 4200, 3], [129, 5000, 16], [257, 700, 64],
  [17, 1000, 256],
];

t('thin products at every SIMD level: small N, small K, odd sizes, strided operands, exact (1 and 2 threads)', () => {
  const rng = rngFor('thin');
  for (const threads of [1, 2]) {
    withThreads(threads, () => {
      atEachSimdLevel((level) => {
        for (const dtype of ['float32', 'float64'] as const) {
          for (const [M, Nn, K] of THIN_SHAPES) {
            const ta = rng.uniform() < 0.3, tb = rng.uniform() < 0.5;
            const sa = stored(M, K, ta), sb = stored(K, Nn, tb);
            const xa = { data: Float64Array.from(rng.ints(M * K, -3, 3)), shape: sa };
            const xb = { data: Float64Array.from(rng.ints(K * Nn, -3, 3)), shape: sb };
            // half the time strided views (permuted storage, steps of 1 or 2, offsets), read in place
            const strided = rng.uniform() < 0.5;
            const ah = strided ? keep(stridedView(rng, dtype, xa)) : keep(tensor(dtype, sa, xa.data));
            const bh = strided ? keep(stridedView(rng, dtype, xb)) : keep(tensor(dtype, sb, xb.data));
            const ref = D.matmul(xa, xb, { transA: ta, transB: tb });
            const ctx = `${level} ${threads}T ${dtype} M=${M} N=${Nn} K=${K} ta=${ta} tb=${tb} strided=${strided}`;
            checkExact(values(keep(N.matmul(ah, bh, ta, tb))), ref.data, `matmul ${ctx}`);
            // C += A·B with a bias, into a column slice of a wider matrix (the epilogue's rank update)
            const c0 = Float64Array.from(rng.ints(M * Nn, -5, 5));
            const bias = Float64Array.from(rng.ints(Nn, -3, 3));
            const sdata = new Float64Array(M * (Nn + 5)).fill(NaN);
            for (let i = 0; i < M; i++) for (let j = 0; j < Nn; j++) sdata[i * (Nn + 5) + j + 2] = c0[i * Nn + j];
            const base = keep(tensor(dtype, [M, Nn + 5], sdata));
            const ch = keep(N.view(base, [M, Nn], [Nn + 5, 1], 2));
            N.gemm(ch, ah, bh, 1, 1, ta, tb, keep(tensor(dtype, [Nn], bias)));
            const ref2 = D.gemm({ data: c0, shape: [M, Nn] }, xa, xb, 1, 1, { transA: ta, transB: tb, bias });
            checkExact(values(ch), ref2.out.data, `gemm beta=1 ${ctx}`);
            const all = values(base);
            for (let i = 0; i < M; i++)
              for (const j of [0, 1, Nn + 2, Nn + 3, Nn + 4])
                assert.ok(Number.isNaN(all[i * (Nn + 5) + j]), `${ctx}: wrote outside C at [${i}, ${j}] (seed ${SEED})`);
          }
        }
      });
    });
  }
});

t('thin products with random inputs within c·K·u·(|A||B|) (float32, float64, 2 threads)', () => {
  const rng = rngFor('thin random');
  withThreads(2, () => {
    for (const dtype of ['float32', 'float64'] as const) {
      for (const [M, Nn, K] of [[1500, 16, 2000], [1000, 8, 1500], [500, 64, 2000], [400, 3000, 64], [2000, 1500, 16]]) {
        const tb = rng.uniform() < 0.5;
        const a = input(dtype, [M, K], rng.normals(M * K));
        const b = input(dtype, stored(K, Nn, tb), rng.normals(K * Nn));
        const ref = D.matmulWithAbs(a.x, b.x, { transB: tb });
        checkClose(keep(N.matmul(a.h, b.h, false, tb)), ref, K, dtype, `${dtype} ${M}x${K}x${Nn} tb=${tb}`);
        N.dispose(a.h);
        N.dispose(b.h);
      }
    }
  });
});

// ---- layouts ---------------------------------------------------------------------------------------------

t('strided and permuted views as inputs (read in place or copied), 2-D and batched', () => {
  const rng = rngFor('strided');
  for (const threads of [1, 2]) {
    withThreads(threads, () => {
      for (const dtype of ['float32', 'float64', 'bfloat16'] as const) {
        for (const [as, bs] of [[[37, 53], [53, 29]], [[3, 17, 40], [40, 33]], [[2, 3, 9, 70], [3, 70, 11]], [[1, 300], [300, 70]]]) {
          for (let rep = 0; rep < 3; rep++) {
            const ta = rng.uniform() < 0.5, tb = rng.uniform() < 0.5;
            const sa = as.slice(), sb = bs.slice();
            if (ta) [sa[sa.length - 2], sa[sa.length - 1]] = [sa[sa.length - 1], sa[sa.length - 2]];
            if (tb) [sb[sb.length - 2], sb[sb.length - 1]] = [sb[sb.length - 1], sb[sb.length - 2]];
            const xa = { data: Float64Array.from(rng.ints(R.numel(sa), -4, 4)), shape: sa };
            const xb = { data: Float64Array.from(rng.ints(R.numel(sb), -4, 4)), shape: sb };
            const va = stridedView(rng, dtype, xa), vb = stridedView(rng, dtype, xb);
            const ref = D.matmul(xa, xb, { transA: ta, transB: tb });
            const c = keep(N.matmul(va, vb, ta, tb));
            // exact in float32; bfloat16 is the exact value rounded once
            check(values(c), ref.data, () => 0, `${threads}T ${dtype} ${JSON.stringify(sa)}·${JSON.stringify(sb)} ta=${ta} tb=${tb}`, dtype);
          }
        }
      }
    });
  }
});

t('row slices and column slices read in place (lda > columns)', () => {
  const rng = rngFor('slices');
  for (const dtype of ['float32', 'float64'] as const) {
    // A = big[3:3+M, 5:5+K] of a [M+7, K+11] storage; B = column slice of [K, N+9]
    const M = 45, K = 70, Nn = 33;
    const big = input(dtype, [M + 7, K + 11], rng.ints((M + 7) * (K + 11), -4, 4));
    const bb = input(dtype, [K, Nn + 9], rng.ints(K * (Nn + 9), -4, 4));
    const va = keep(N.view(big.h, [M, K], [K + 11, 1], 3 * (K + 11) + 5));
    const vb = keep(N.view(bb.h, [K, Nn], [Nn + 9, 1], 4));
    const xa = new Float64Array(M * K), xb = new Float64Array(K * Nn);
    for (let i = 0; i < M; i++) for (let k = 0; k < K; k++) xa[i * K + k] = big.x.data[(i + 3) * (K + 11) + k + 5];
    for (let k = 0; k < K; k++) for (let j = 0; j < Nn; j++) xb[k * Nn + j] = bb.x.data[k * (Nn + 9) + j + 4];
    const ref = D.matmul({ data: xa, shape: [M, K] }, { data: xb, shape: [K, Nn] });
    checkExact(values(keep(N.matmul(va, vb, false, false))), ref.data, `${dtype} slices`);
    // the same storage read transposed: op(A) = (view [K, M] with strides [1, K+11])ᵀ
    const vat = keep(N.view(big.h, [K, M], [1, K + 11], 3 * (K + 11) + 5));
    checkExact(values(keep(N.matmul(vat, vb, true, false))), ref.data, `${dtype} transposed slice`);
  }
});

// ---- batches ---------------------------------------------------------------------------------------------

t('batched products with broadcast batch dimensions and 1-D operands', () => {
  const rng = rngFor('batched');
  const cases: [number[], number[]][] = [
    [[2, 1, 5, 7], [3, 7, 4]], [[6, 7], [4, 7, 3]], [[4, 5, 6, 7], [7, 3]], [[3, 1, 17, 33], [1, 2, 33, 9]],
    [[7], [3, 7, 2]], [[2, 3, 5, 7], [7]], [[7], [7]], [[200, 3, 4], [200, 4, 5]], [[2, 150, 150], [2, 150, 150]],
    [[5, 1, 40], [5, 40, 70]], [[1, 1, 3, 4], [4, 5]], [[3, 13, 100], [1, 100, 40]],
  ];
  for (const threads of [1, 2]) {
    withThreads(threads, () => {
      for (const dtype of ['float32', 'float64', 'float16'] as const) {
        for (const [as0, bs0] of cases) {
          for (const [ta, tb] of [[false, false], [true, true]]) {
            const as = as0.slice(), bs = bs0.slice();
            if (ta && as.length > 1) [as[as.length - 2], as[as.length - 1]] = [as[as.length - 1], as[as.length - 2]];
            if (tb && bs.length > 1) [bs[bs.length - 2], bs[bs.length - 1]] = [bs[bs.length - 1], bs[bs.length - 2]];
            const a = input(dtype, as, rng.ints(R.numel(as), -2, 2));
            const b = input(dtype, bs, rng.ints(R.numel(bs), -2, 2));
            const ref = D.matmul(a.x, b.x, { transA: ta, transB: tb });
            const c = keep(N.matmul(a.h, b.h, ta, tb));
            const ctx = `${threads}T ${dtype} ${JSON.stringify(as)}·${JSON.stringify(bs)} ta=${ta} tb=${tb}`;
            const got = N.read(c);
            assert.is(got.length, ref.data.length, `${ctx}: size`);
            checkExact(values(c), ref.data, ctx);
          }
        }
      }
    });
  }
});

t('batched random inputs (float32, float64) with strided batch dimensions', () => {
  const rng = rngFor('batched random');
  for (const dtype of ['float32', 'float64'] as const) {
    for (const [as, bs] of [[[4, 3, 37, 50], [3, 50, 21]], [[8, 20, 30], [30, 64]], [[2, 1, 100, 17], [5, 17, 9]]]) {
      const xa = { data: rng.normals(R.numel(as)), shape: as };
      const xb = { data: rng.normals(R.numel(bs)), shape: bs };
      const va = stridedView(rng, dtype, xa), vb = stridedView(rng, dtype, xb);
      const ra = { data: values(va), shape: as }, rb = { data: values(vb), shape: bs };
      const ref = D.matmulWithAbs(ra, rb);
      checkClose(keep(N.matmul(va, vb, false, false)), ref, ref.k, dtype, `${dtype} ${JSON.stringify(as)}·${JSON.stringify(bs)}`);
    }
  }
});

t('batches of mid-size products, one per thread (each GEMM runs inline with fewer threads than it would pick)', () => {
  const rng = rngFor('nested');
  withThreads(2, () => {
    atEachSimdLevel((level) => {
      for (const dtype of ['float32', 'float64'] as const) {
        // skinny row-major B, skinny Bᵀ, column split, row split: every path of one GEMM
        for (const [as, bs, tb] of [[[6, 16, 100], [6, 100, 1000], false], [[6, 16, 100], [6, 1000, 100], true],
          [[6, 20, 100], [6, 100, 500], false], [[6, 100, 100], [6, 100, 100], false]] as [number[], number[], boolean][]) {
          const a = input(dtype, as, rng.normals(R.numel(as)));
          const b = input(dtype, bs, rng.normals(R.numel(bs)));
          const ref = D.matmulWithAbs(a.x, b.x, { transB: tb });
          checkClose(keep(N.matmul(a.h, b.h, false, tb)), ref, ref.k, dtype, `${level} ${dtype} ${JSON.stringify(as)}·${JSON.stringify(bs)} tb=${tb}`);
        }
      }
    });
  });
});

t('empty dimensions: M = 0, N = 0, batch 0, and K = 0 gives zeros', () => {
  for (const dtype of ['float32', 'float64', 'bfloat16'] as const) {
    const z = (shape: number[]) => tensor(dtype, shape, new Float64Array(R.numel(shape)));
    const c1 = keep(N.matmul(z([0, 5]), z([5, 3]), false, false));
    assert.is(N.read(c1).length, 0);
    const c2 = keep(N.matmul(z([4, 5]), z([5, 0]), false, false));
    assert.is(N.read(c2).length, 0);
    const c3 = keep(N.matmul(z([0, 4, 5]), z([5, 3]), false, false));
    assert.is(N.read(c3).length, 0);
    const c4 = keep(N.matmul(z([4, 0]), z([0, 3]), false, false));
    checkExact(values(c4), new Float64Array(12), `${dtype} K = 0`);
  }
  for (const dtype of ['float32', 'float64'] as const) {
    const c = poisoned(dtype, [3, 4]);
    N.gemm(c, tensor(dtype, [3, 0], []), tensor(dtype, [0, 4], []), 1, 0, false, false);
    checkExact(values(c), new Float64Array(12), `${dtype} gemm K = 0, beta = 0`);
    const c2 = tensor(dtype, [3, 4], Array.from({ length: 12 }, (_, i) => i));
    N.gemm(c2, tensor(dtype, [3, 0], []), tensor(dtype, [0, 4], []), 1, 2, false, false);
    checkExact(values(c2), Float64Array.from({ length: 12 }, (_, i) => 2 * i), `${dtype} gemm K = 0, beta = 2`);
  }
});

// ---- in-place gemm: alpha, beta, strided C, bias, the block hook -----------------------------------------

t('gemm: alpha and beta (NaN in C when beta = 0, in A and B when alpha = 0), strided C, bias', () => {
  const rng = rngFor('alpha beta');
  for (const threads of [1, 2]) {
    withThreads(threads, () => {
      atEachSimdLevel((level) => {
        for (const dtype of ['float32', 'float64'] as const) {
          for (const [M, Nn, K] of [[1, 1, 1], [13, 70, 257], [50, 3, 100], [97, 33, 5], [3, 200, 300], [64, 64, 64]]) {
            for (const alpha of [1, -0.5, 2, 0]) {
              for (const beta of [0, 1, -0.5]) {
                const ta = rng.uniform() < 0.5, tb = rng.uniform() < 0.5;
                const layout = rng.int(0, 2); // 0 contiguous, 1 transposed storage, 2 column slice
                const withBias = rng.uniform() < 0.5;
                const a = alpha === 0 ? { h: poisoned(dtype, stored(M, K, ta)), x: { data: new Float64Array(M * K), shape: stored(M, K, ta) } }
                  : input(dtype, stored(M, K, ta), rng.ints(M * K, -3, 3));
                const b = alpha === 0 ? { h: poisoned(dtype, stored(K, Nn, tb)), x: { data: new Float64Array(K * Nn), shape: stored(K, Nn, tb) } }
                  : input(dtype, stored(K, Nn, tb), rng.ints(K * Nn, -3, 3));
                const c0 = beta === 0 ? new Float64Array(M * Nn).fill(NaN) : Float64Array.from(rng.ints(M * Nn, -5, 5));
                let ch: Handle, storeShape: number[], strides: number[], offset = 0;
                if (layout === 0) {
                  storeShape = [M, Nn], strides = [Nn, 1];
                } else if (layout === 1) {
                  storeShape = [Nn, M], strides = [1, M];
                } else {
                  storeShape = [M, Nn + 6], strides = [Nn + 6, 1], offset = 3;
                }
                const storeN = R.numel(storeShape);
                const sdata = new Float64Array(storeN).fill(NaN);
                for (let i = 0; i < M; i++) for (let j = 0; j < Nn; j++) sdata[offset + i * strides[0] + j * strides[1]] = c0[i * Nn + j];
                const base = tensor(dtype, storeShape, sdata);
                ch = keep(N.view(base, [M, Nn], strides, offset));
                const bias = withBias ? Float64Array.from(rng.ints(Nn, -3, 3)) : undefined;
                const bh = bias ? tensor(dtype, [Nn], bias) : undefined;
                N.gemm(ch, a.h, b.h, alpha, beta, ta, tb, bh);
                const ref = D.gemm({ data: c0, shape: [M, Nn] }, a.x, b.x, alpha, beta, { transA: ta, transB: tb, bias });
                const ctx = `${level} ${threads}T ${dtype} ${M}x${K}x${Nn} alpha=${alpha} beta=${beta} layout=${layout} bias=${withBias}`;
                checkExact(values(ch), ref.out.data, ctx);
                // elements of the storage outside the view are untouched (still NaN)
                const all = values(base);
                for (let e = 0; e < storeN; e++) {
                  const inView = layout === 2 ? (e % (Nn + 6) >= 3 && e % (Nn + 6) < Nn + 3) : true;
                  if (!inView) assert.ok(Number.isNaN(all[e]), `${ctx}: wrote outside C at storage element ${e} (seed ${SEED})`);
                }
              }
            }
          }
        }
      });
    });
  }
});

t('gemm: random inputs with alpha, beta and bias within tolerance', () => {
  const rng = rngFor('gemm random');
  for (const dtype of ['float32', 'float64'] as const) {
    for (const [M, Nn, K] of [[97, 257, 97], [1, 500, 400], [300, 4, 77]]) {
      const alpha = rng.normal(), beta = rng.normal();
      const a = input(dtype, [M, K], rng.normals(M * K));
      const b = input(dtype, [K, Nn], rng.normals(K * Nn));
      const c = input(dtype, [M, Nn], rng.normals(M * Nn));
      const bias = input(dtype, [Nn], rng.normals(Nn));
      // alpha and beta reach the kernel rounded to the dtype; the reference uses those values. The
      // update alpha·acc + beta·C + bias adds three roundings to the K of the sum.
      const ref = D.gemm(c.x, a.x, b.x, R.roundTo(dtype, alpha), R.roundTo(dtype, beta), { bias: bias.x.data });
      N.gemm(c.h, a.h, b.h, alpha, beta, false, false, bias.h);
      checkClose(c.h, ref, K + 3, dtype, `${dtype} ${M}x${K}x${Nn} alpha=${alpha} beta=${beta}`);
    }
  }
});

t('gemm block hook: blocks tile C exactly once and hold final values; a throwing hook reaches JS', () => {
  const rng = rngFor('probe');
  for (const threads of [1, 2]) {
    withThreads(threads, () => {
      atEachSimdLevel((level) => {
        for (const dtype of ['float32', 'float64'] as const) {
          for (const [M, Nn, K] of [[3, 4, 5], [300, 300, 300], [5, 1000, 300], [400, 3, 200], [1, 64, 2000], [40, 5000, 30]]) {
            const a = input(dtype, [M, K], rng.ints(M * K, -2, 2));
            const b = input(dtype, [K, Nn], rng.ints(K * Nn, -2, 2));
            const bias = input(dtype, [Nn], rng.ints(Nn, -2, 2));
            const c = poisoned(dtype, [M, Nn]);
            const r = N.gemm(c, a.h, b.h, 1, 0, false, false, bias.h, 'check') as { blocks: number; coverage: boolean; final: boolean };
            const ctx = `${level} ${threads}T ${dtype} ${M}x${K}x${Nn}`;
            assert.ok(r.blocks >= 1 && r.coverage && r.final, `${ctx}: ${JSON.stringify(r)} (seed ${SEED})`);
            const ref = D.gemm({ data: new Float64Array(M * Nn), shape: [M, Nn] }, a.x, b.x, 1, 0, { bias: bias.x.data });
            checkExact(values(c), ref.out.data, ctx);
            throwsLike(() => N.gemm(c, a.h, b.h, 1, 0, false, false, null, 'throw'), Error, [/probe exception/], `${ctx} throw`);
          }
        }
      });
      // the pool still works after a hook threw
      const a = input('float32', [200, 100], rng.ints(20000, -2, 2)), b = input('float32', [100, 150], rng.ints(15000, -2, 2));
      checkExact(values(keep(N.matmul(a.h, b.h, false, false))), D.matmul(a.x, b.x).data, 'after throw');
    });
  }
});

// ---- bad arguments -----------------------------------------------------------------------------------

t('bad arguments throw TypeError / RangeError naming the argument', () => {
  const f32 = (shape: number[]) => tensor('float32', shape, new Float64Array(R.numel(shape)));
  const f64 = (shape: number[]) => tensor('float64', shape, new Float64Array(R.numel(shape)));
  const i32 = keep(N.fromArray(code('int32'), [2, 2], new Int32Array(4), 0, 0));
  const a = f32([2, 3]), b = f32([3, 4]);
  throwsLike(() => N.matmul(i32, i32, false, false), TypeError, [/'a'/, /int32/], 'int32');
  throwsLike(() => N.matmul(a, f64([3, 4]), false, false), TypeError, [/'a' is float32/, /'b' is float64/], 'mixed dtypes');
  throwsLike(() => N.matmul(a, f32([4, 5]), false, false), RangeError, [/\[2, 3\]/, /\[4, 5\]/], 'inner dims');
  throwsLike(() => N.matmul(a, b, true, false), RangeError, [/transA=true/], 'inner dims with transA');
  throwsLike(() => N.matmul(f32([2, 2, 3]), f32([3, 3, 4]), false, false), RangeError, [/\[2, 2, 3\]/, /\[3, 3, 4\]/, /broadcast/], 'batch');
  throwsLike(() => N.matmul(f32([]), b, false, false), RangeError, [/'a'/, /at least 1 dimension/], '0-d a');
  throwsLike(() => N.matmul(a, f32([]), false, false), RangeError, [/'b'/], '0-d b');
  const gone = N.fromArray(code('float32'), [3, 4], new Float32Array(12), 0, 0);
  N.dispose(gone);
  throwsLike(() => N.matmul(a, gone, false, false), TypeError, [/'b'/, /disposed/], 'disposed');
  const bad = N as unknown as Record<string, (...args: unknown[]) => unknown>;
  throwsLike(() => bad.matmul(1, 2, false, false), TypeError, [/'a'/], 'numbers');
  throwsLike(() => bad.matmul({}, b, false, false), TypeError, [/'a'/], 'object');
  throwsLike(() => bad.matmul(a), TypeError, [/'b'/], 'missing b');
  throwsLike(() => bad.matmul(a, b, 'yes', false), TypeError, [/transA/], 'string flag');
});

t('bad gemm arguments', () => {
  const f32 = (shape: number[]) => tensor('float32', shape, new Float64Array(R.numel(shape)));
  const a = f32([2, 3]), b = f32([3, 4]), c = f32([2, 4]);
  N.gemm(c, a, b, 1, 0, false, false); // a valid call
  const h16 = tensor('float16', [2, 4], new Float64Array(8));
  throwsLike(() => N.gemm(h16, a, b, 1, 0, false, false), TypeError, [/'C'/, /float16/], 'float16 C');
  throwsLike(() => N.gemm(c, tensor('float64', [2, 3], new Float64Array(6)), b, 1, 0, false, false), TypeError, [/'A'/, /float64/], 'A dtype');
  throwsLike(() => N.gemm(c, a, f32([4, 4]), 1, 0, false, false), RangeError, [/\[2, 4\]/, /\[2, 3\]/, /\[4, 4\]/], 'shapes');
  throwsLike(() => N.gemm(f32([2, 4, 1]), a, b, 1, 0, false, false), RangeError, [/2-D/], 'ndim');
  const big = f32([6, 4]);
  const cv = keep(N.view(big, [2, 4], [4, 1], 0));
  const av = keep(N.view(big, [2, 3], [4, 1], 8));
  throwsLike(() => N.gemm(cv, av, b, 1, 0, false, false), RangeError, [/'C' shares its storage with 'A'/], 'aliasing A');
  const big2 = f32([5, 4]);
  const cv2 = keep(N.view(big2, [2, 4], [4, 1], 0));
  const bv2 = keep(N.view(big2, [3, 4], [4, 1], 8));
  throwsLike(() => N.gemm(cv2, a, bv2, 1, 0, false, false), RangeError, [/'C' shares its storage with 'B'/], 'aliasing B');
  const self = keep(N.view(big, [2, 4], [0, 1], 0));
  throwsLike(() => N.gemm(self, a, b, 1, 0, false, false), RangeError, [/overlapping/], 'self-overlapping C');
  const bad = N as unknown as Record<string, (...args: unknown[]) => unknown>;
  throwsLike(() => bad.gemm(c, a, b, 'x', 0, false, false), TypeError, [/alpha/], 'alpha');
  throwsLike(() => bad.gemm(c, a, b, 1, 0, 1, false), TypeError, [/transA/], 'flag');
  throwsLike(() => N.gemm(c, a, b, 1, 0, false, false, f32([3])), RangeError, [/'bias'/, /\[4\]/], 'bias shape');
  throwsLike(() => bad.gemm(c, a, b, 1, 0, false, false, null, 'nope'), RangeError, [/probe/], 'probe');
  throwsLike(() => N.gemmBlocking(code('int32')), TypeError, [/dtype/], 'gemmBlocking');
});

t.run();
