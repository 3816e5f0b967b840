// elementwise.test.ts — add sub mul div pow maximum minimum (broadcasting, number operands), the
// unary math ops, comparisons and where: forward against float64 references (float32, float64, and
// float16/bfloat16 for a few ops), every gradient with gradcheck, views as inputs, leak checks.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as S from '../lib/index';
import type { Tensor } from '../lib/index';
import * as R from './reference/ops';
import { checkOp, throwsLike, liveCounts, assertNoLeak, rng } from './helpers';
import { native } from '../lib/native';

type Bin = (a: Tensor, b: Tensor) => Tensor;
const binaries: [string, Bin, (x: number, y: number) => number, [number, number][]?][] = [
  ['add', S.add, (x, y) => x + y],
  ['sub', S.sub, (x, y) => x - y],
  ['mul', S.mul, (x, y) => x * y],
  ['div', S.div, (x, y) => x / y, [[-2, 2], [0.5, 2.5]]],
  ['pow', S.pow, (x, y) => x ** y, [[0.5, 2], [-2, 2]]],
  ['maximum', S.maximum, Math.max],
  ['minimum', S.minimum, Math.min],
];

// shapes that broadcast in every way, with the odd sizes 1, 3, 17, 129
const broadcastCases: number[][][] = [
  [[3, 4], [3, 4]],
  [[1], [1]],
  [[129], [129]],
  [[3, 1], [1, 17]],
  [[17], [5, 17]],
  [[2, 1, 3], [4, 1]],
  [[], [3, 2]],
  [[3, 2], []],
  [[0, 3], [3]],
];

/** Where an op is not differentiable (checkOp keeps gradcheck's inputs away): ties of maximum / minimum,
 * abs / relu at 0, clamp at its bounds, maximum / minimum with a number at the number. */
const KINKS: Record<string, { points?: number[]; ties?: boolean }> = {
  maximum: { ties: true }, minimum: { ties: true }, abs: { points: [0] }, relu: { points: [0] },
  'clamp(-1, 0.5)': { points: [-1, 0.5] }, 'clamp(min only)': { points: [0.25] }, 'clamp(max only)': { points: [-0.25] },
  'maximum(x, 0.5)': { points: [0.5] }, 'minimum(0.5, x)': { points: [0.5] },
};

for (const [name, f, ref, ranges] of binaries) {
  const kinks = KINKS[name];
  for (const shapes of broadcastCases) {
    test(`${name} ${JSON.stringify(shapes)}`, () => {
      checkOp({ shapes, fn: f, ref: (a, b) => R.zip([a, b], ref), ranges, kinks });
    });
  }
  test(`${name} with views as inputs (transposed, narrowed)`, () => {
    checkOp({ shapes: [[3, 17], [3, 17]], fn: f, ref: (a, b) => R.zip([a, b], ref), ranges, layout: 'transposed', kinks });
    checkOp({ shapes: [[4, 5], [1, 5]], fn: f, ref: (a, b) => R.zip([a, b], ref), ranges, layout: 'narrowed', kinks });
  });
}

test('binary ops in float16 and bfloat16 (forward, per-dtype tolerance)', () => {
  for (const [name, f, ref, ranges] of binaries) {
    if (name === 'pow') continue;
    checkOp({ shapes: [[17, 3], [3]], fn: f, ref: (a, b) => R.zip([a, b], ref), ranges, dtype: ['float16', 'bfloat16'], grad: false });
  }
});

test('number operands on either side', () => {
  const cases: [string, (x: Tensor) => Tensor, (x: number) => number, [number, number]?][] = [
    ['x + 2.5', (x) => S.add(x, 2.5), (x) => x + 2.5],
    ['2.5 + x', (x) => S.add(2.5, x), (x) => 2.5 + x],
    ['x - 1.25', (x) => S.sub(x, 1.25), (x) => x - 1.25],
    ['1.25 - x', (x) => S.sub(1.25, x), (x) => 1.25 - x],
    ['x * -3', (x) => S.mul(x, -3), (x) => x * -3],
    ['-3 * x', (x) => S.mul(-3, x), (x) => -3 * x],
    ['x / 3', (x) => S.div(x, 3), (x) => x / 3],
    ['3 / x', (x) => S.div(3, x), (x) => 3 / x, [0.5, 2]],
    ['x ** 3', (x) => S.pow(x, 3), (x) => x ** 3],
    ['x ** 0.5', (x) => S.pow(x, 0.5), (x) => x ** 0.5, [0.5, 2]],
    ['x ** 0', (x) => S.pow(x, 0), () => 1],
    ['2 ** x', (x) => S.pow(2, x), (x) => 2 ** x],
    ['maximum(x, 0.5)', (x) => S.maximum(x, 0.5), (x) => Math.max(x, 0.5)],
    ['minimum(0.5, x)', (x) => S.minimum(0.5, x), (x) => Math.min(0.5, x)],
    // a chain inside tidy: the intermediates are disposed at once, the graph keeps what it needs
    ['x.add(1).mul(2).sub(3).div(4)', (x) => S.tidy(() => x.add(1).mul(2).sub(3).div(4)), (x) => ((x + 1) * 2 - 3) / 4],
  ];
  for (const [what, fn, ref, range] of cases) {
    try {
      checkOp({ shapes: [[3, 17]], fn, ref: (a) => R.map(a, ref), ranges: [range], kinks: KINKS[what] });
    } catch (e) {
      (e as Error).message = `${what}: ${(e as Error).message}`;
      throw e;
    }
  }
});

test('signed zeros: a broadcast −0 (tensor or number, clamp bounds) keeps its sign, every float dtype, every row path', () => {
  const before = liveCounts();
  // Values every dtype holds exactly, ±0 among them; sizes that take the SIMD body, the tail and both.
  const pool = [0, -0, 1.5, -2, 0.25, -0.75, 3, -1];
  const ops: [string, (x: Tensor, z: Tensor | number) => Tensor, (x: number, z: number) => number][] = [
    ['mul', S.mul, (x, z) => x * z],
    ['div', S.div, (x, z) => x / z],
    ['add', S.add, (x, z) => x + z],
    ['sub', S.sub, (x, z) => x - z],
  ];
  for (const dtype of ['float32', 'float64', 'float16', 'bfloat16'] as const) {
    for (const n of [1, 3, 17, 129]) {
      const xs = Array.from({ length: n }, (_, i) => pool[(i * 5 + n) % pool.length]);
      S.tidy(() => {
        const x = S.tensor(xs, { dtype });
        const zt = S.tensor([-0], { dtype });
        for (const [name, f, ref] of ops) {
          for (const [how, y, want] of [
            ['x ∘ tensor(−0)', f(x, zt), xs.map((v) => ref(v, -0))],
            ['x ∘ −0', f(x, -0), xs.map((v) => ref(v, -0))],
            ['tensor(−0) ∘ x', f(zt, x), xs.map((v) => ref(-0, v))],
          ] as [string, Tensor, number[]][]) {
            const got = Array.from(y.dataSync());
            for (let i = 0; i < n; i++)
              if (!Object.is(got[i], want[i]))
                assert.unreachable(`${name} ${dtype} [${n}] ${how}: element ${i} (x = ${Object.is(xs[i], -0) ? '-0' : xs[i]}) is ${Object.is(got[i], -0) ? '-0' : got[i]}, IEEE gives ${Object.is(want[i], -0) ? '-0' : want[i]}`);
          }
        }
        const c = Array.from(S.clamp(x, -0, -0).dataSync());
        for (let i = 0; i < n; i++) {
          // max(v, −0) is −0 for v ≤ 0 (+0 > −0 is false), then min(·, −0) is −0 for every v
          if (!Object.is(c[i], -0)) assert.unreachable(`clamp(x, −0, −0) ${dtype} [${n}]: element ${i} (x = ${xs[i]}) is ${c[i]}, expected -0`);
        }
      });
    }
  }
  assertNoLeak(before, 'signed zeros');
});

const unaries: [string, (x: Tensor) => Tensor, (x: number) => number, [number, number]?][] = [
  ['neg', S.neg, (x) => -x],
  ['exp', S.exp, Math.exp],
  ['log', S.log, Math.log, [0.2, 3]],
  ['sqrt', S.sqrt, Math.sqrt, [0.2, 3]],
  ['rsqrt', S.rsqrt, (x) => 1 / Math.sqrt(x), [0.2, 3]],
  ['abs', S.abs, Math.abs],
  ['relu', S.relu, (x) => Math.max(x, 0)],
  ['gelu', S.gelu, R.gelu, [-5, 5]],
  ['silu', S.silu, R.silu, [-5, 5]],
  ['tanh', S.tanh, Math.tanh, [-4, 4]],
  ['sigmoid', S.sigmoid, R.sigmoid, [-6, 6]],
  ['square', S.square, (x) => x * x],
  ['reciprocal', S.reciprocal, (x) => 1 / x, [0.2, 3]],
  ['erf', S.erf, R.erf, [-3, 3]],
  ['sin', S.sin, Math.sin, [-4, 4]],
  ['cos', S.cos, Math.cos, [-4, 4]],
  ['clamp(-1, 0.5)', (x) => S.clamp(x, -1, 0.5), (x) => Math.min(Math.max(x, -1), 0.5)],
  ['clamp(min only)', (x) => S.clamp(x, 0.25), (x) => Math.max(x, 0.25)],
  ['clamp(max only)', (x) => x.clamp(undefined, -0.25), (x) => Math.min(x, -0.25)],
];

for (const [name, f, ref, range] of unaries) {
  const kinks = KINKS[name];
  test(`${name}: sizes 1, 3×17, 129, 0, 0-d; transposed and narrowed views`, () => {
    for (const shape of [[1], [3, 17], [129], [0], []])
      checkOp({ shapes: [shape], fn: f, ref: (a) => R.map(a, ref), ranges: [range], kinks });
    checkOp({ shapes: [[5, 3]], fn: f, ref: (a) => R.map(a, ref), ranges: [range], layout: 'transposed', kinks });
    checkOp({ shapes: [[2, 7]], fn: f, ref: (a) => R.map(a, ref), ranges: [range], layout: 'narrowed', kinks });
  });
}

test('erf and GELU in float32: error bounds on a dense grid of [−10, 10]', () => {
  // Bounds as csrc/cpu/elementwise_rows.inc states them: erf ≤ 1.6 ulp (evaluated in double; 1.59 is
  // the worst over every float32 of ±[1/8, 4]); GELU's erf is the same rational in float: ≤ 3.6 ulp for
  // x ≥ 0 (3.51 without FMA), and for x < 0, where 1 + erf rounds away most of the small Φ(x),
  // ≤ 3e−7·|x| absolute (torch's float GELU measured 8.4 ulp and 2.9e−7·|x|).
  const n = 1 << 16;
  const xs = new Float32Array(n + 6);
  for (let i = 0; i < n; i++) xs[i] = -10 + (20 * i) / (n - 1);
  xs.set([0, -0, 1e-30, -1e-30, 4 * Math.SQRT2, -4 * Math.SQRT2], n);
  const x = S.tensor(xs, { shape: [xs.length] });
  const e = Array.from(S.erf(x).dataSync());
  const g = Array.from(S.gelu(x).dataSync());
  x.dispose();
  const ulp = (v: number) => {
    const f = Math.fround(Math.abs(v));
    const a = new Float32Array([f]);
    new Uint32Array(a.buffer)[0]++;
    return Math.max(a[0] - f, 2 ** -149);
  };
  let worstE = 0, worstGp = 0, worstGn = 0;
  for (let i = 0; i < xs.length; i++) {
    const v = xs[i];
    const re = R.erf(v), rg = R.gelu(v);
    worstE = Math.max(worstE, Math.abs(e[i] - re) / ulp(re));
    if (v >= 0) worstGp = Math.max(worstGp, Math.abs(g[i] - rg) / ulp(rg));
    else worstGn = Math.max(worstGn, Math.abs(g[i] - rg) / Math.abs(v));
    if (Object.is(v, -0) && !Object.is(g[i], -0) && g[i] !== 0) assert.unreachable(`gelu(−0) is ${g[i]}`);
  }
  assert.ok(worstE <= 1.6, `erf: ${worstE.toFixed(2)} ulp`);
  assert.ok(worstGp <= 3.6, `gelu, x ≥ 0: ${worstGp.toFixed(2)} ulp`);
  assert.ok(worstGn <= 3e-7, `gelu, x < 0: ${worstGn.toExponential(2)}·|x|`);
  const special = S.tensor([NaN, Infinity, -Infinity]);
  const gs = Array.from(S.gelu(special).dataSync());
  special.dispose();
  // −∞·Φ(−∞) = −∞·0: NaN, as torch.nn.functional.gelu gives
  assert.ok(Number.isNaN(gs[0]) && gs[1] === Infinity && Number.isNaN(gs[2]), `gelu(NaN, ∞, −∞) = ${gs}`);
});

test('sin and cos in float32: correctly rounded below 2^20, libm beyond; ±0, subnormals, ∞, NaN; every SIMD level', () => {
  // csrc/cpu/elementwise_rows.inc vsincos: k·π/2 removed in double with a two-part π/2, fdlibm's
  // kernels in double, one rounding: ≤ 0.5 ulp (+ 2^-29) for |x| < 2^20; beyond, libm's sinf / cosf
  // (≤ 1 ulp). Inputs: a dense grid of [−10, 10], a spread to ±4·10^6 (both sides of 2^20), near
  // multiples of π/2, 2^-149…2^21 of either sign; more than the pool's grain, so the pool (FTZ/DAZ) runs it.
  const n = 1 << 18;
  const xs = new Float32Array(n);
  const rnd = rng(0x51ec05);
  for (let i = 0; i < n; i++) {
    const u = i / n;
    if (i % 4 === 0) xs[i] = -10 + 20 * u;
    else if (i % 4 === 1) xs[i] = (rnd() - 0.5) * 8e6;
    else if (i % 4 === 2) xs[i] = Math.round((rnd() - 0.5) * 1.3e6) * (Math.PI / 2) * (1 + (rnd() - 0.5) * 1e-7);
    else xs[i] = (rnd() < 0.5 ? -1 : 1) * 2 ** (-149 + 170 * rnd());
  }
  const special = [0, -0, 1e-45, -1e-45, 1.1e-38, -2.44e-4, 2.45e-4, 1048575.94, 1048576, -1048576, 3.4e38, Infinity, -Infinity, NaN];
  xs.set(special, 0);
  const ulp = (v: number) => {
    const f = Math.fround(Math.abs(v));
    const a = new Float32Array([f]);
    new Uint32Array(a.buffer)[0]++;
    return Math.max(a[0] - f, 2 ** -149);
  };
  const n2 = native() as unknown as { setSimd(level: string): string };
  const hw = S.backend().simd;
  const levels = ['scalar', 'avx2', 'avx512'].slice(0, ['scalar', 'avx2', 'avx512'].indexOf(hw) + 1);
  const x = S.tensor(xs, { shape: [n] });
  try {
    for (const level of levels) {
      n2.setSimd(level);
      for (const [name, f, ref] of [['sin', S.sin, Math.sin], ['cos', S.cos, Math.cos]] as const) {
        const y = f(x);
        const got = y.dataSync();
        y.dispose();
        let worstIn = 0, worstOut = 0;
        for (let i = 0; i < n; i++) {
          const v = xs[i], want = ref(v);
          if (Number.isNaN(want)) {
            if (!Number.isNaN(got[i])) assert.unreachable(`${name}(${v}) at ${level} is ${got[i]}, not NaN`);
            continue;
          }
          if (want === 0 && !Object.is(got[i], want)) assert.unreachable(`${name}(${Object.is(v, -0) ? '-0' : v}) at ${level} is ${got[i]}`);
          if (name === 'sin' && Math.abs(v) < 2 ** -12 && got[i] !== v) assert.unreachable(`sin(${v}) at ${level} is ${got[i]}: sin x rounds to x there`);
          const e = Math.abs(got[i] - want) / ulp(want);
          if (Math.abs(v) < 2 ** 20) worstIn = Math.max(worstIn, e);
          else worstOut = Math.max(worstOut, e);
        }
        assert.ok(worstIn <= 0.5 + 1e-6, `${name} at ${level}, |x| < 2^20: ${worstIn} ulp`);
        assert.ok(worstOut <= 1, `${name} at ${level}, |x| ≥ 2^20: ${worstOut} ulp`);
      }
    }
  } finally {
    n2.setSimd(hw);
    x.dispose();
  }
});

test('math review mends: tanh keeps −0 and tiny x, GELU of x < 0 is never positive, silu / silu\' / pow(x, −2) exact where the pool flushed an intermediate', () => {
  const n2 = native() as unknown as { setSimd(level: string): string };
  const hw = S.backend().simd;
  const levels = ['scalar', 'avx2', 'avx512'].slice(0, ['scalar', 'avx2', 'avx512'].indexOf(hw) + 1);
  // Each value at the front of a tensor large enough for the pool (FTZ/DAZ) and alone (the calling thread).
  const both = (v: number, f: (t: Tensor) => Tensor): [number, number] => {
    const big = S.full([40000], v), small = S.full([3], v);
    const a = f(big), b = f(small);
    const r: [number, number] = [a.dataSync()[39999], b.dataSync()[2]];
    S.dispose([big, small, a, b]);
    return r;
  };
  try {
    for (const level of levels) {
      n2.setSimd(level);
      for (const [v, want] of [[-0, -0], [0, 0], [-1e-30, -1e-30], [2e-4, Math.fround(Math.tanh(Math.fround(2e-4)))]] as [number, number][]) {
        const [pooled, inline] = both(v, S.tanh);
        assert.ok(Object.is(pooled, Math.fround(want)) && Object.is(inline, Math.fround(want)), `tanh(${Object.is(v, -0) ? '-0' : v}) at ${level}: ${pooled} / ${inline}`);
      }
      // verf_fast dips below −1 near x = −5.4: GELU came out positive there
      const xs = new Float32Array(20001);
      for (let i = 0; i < xs.length; i++) xs[i] = -10 + (10 * i) / (xs.length - 1) - 1e-3;
      const x = S.tensor(xs);
      const g = S.gelu(x);
      const gv = g.dataSync();
      for (let i = 0; i < xs.length; i++) if (gv[i] > 0) assert.unreachable(`gelu(${xs[i]}) at ${level} is ${gv[i]} > 0`);
      S.dispose([x, g]);
      // normal results whose old intermediate was subnormal: σ(−88) (silu, silu'), x·x at 1e−19 (pow −2)
      const silu = (t: number) => t / (1 + Math.exp(-t));
      const sig = (t: number) => 1 / (1 + Math.exp(-t));
      const dsilu = (t: number) => sig(t) * (1 + t * (1 - sig(t)));
      for (const [name, f, ref, v, ulps] of [
        ['silu', S.silu, silu, -88, 4], ['silu', S.silu, silu, -87.5, 4], ['pow(x, −2)', (t: Tensor) => S.pow(t, -2), (t: number) => t ** -2, 1e-19, 2],
        ['pow(x, −2)', (t: Tensor) => S.pow(t, -2), (t: number) => t ** -2, -7e-20, 2],
      ] as [string, (t: Tensor) => Tensor, (t: number) => number, number, number][]) {
        const want = ref(Math.fround(v));
        for (const got of both(v, f)) {
          const err = Math.abs(got - want) / (Math.abs(want) * 2 ** -23);
          assert.ok(err <= ulps, `${name}(${v}) at ${level}: ${got}, expected ${want} (${err.toFixed(2)} ulp)`);
        }
      }
      const leaf = S.full([40000], -88, { requiresGrad: true });
      const y = S.sum(S.silu(leaf));
      y.backward();
      const gr = leaf.grad!.dataSync()[0], want = dsilu(-88);
      assert.ok(Math.abs(gr - want) <= 4 * Math.abs(want) * 2 ** -23, `silu'(−88) at ${level}: ${gr}, expected ${want}`);
      S.dispose([leaf, y]);
    }
  } finally {
    n2.setSimd(hw);
  }
});

test('logSoftmax of large logits: (x − max) − log Σ, as torch (max + log Σ rounded to float lost half an ulp of max)', () => {
  // rows ≥ 32 (row kernel), short rows, columns (axis 0), and the float64 paths; every device
  const devices = ['cpu', ...(S.backend().cudaEmu ? ['cuda-emu'] : [])];
  const lse = (row: number[]) => {
    const m = Math.max(...row);
    const s = row.reduce((a, v) => a + Math.exp(v - m), 0);
    return row.map((v) => v - m - Math.log(s));
  };
  for (const device of devices)
    for (const dtype of ['float32', 'float64'] as const)
      for (const len of [2, 5, 40]) {
        const row = Array.from({ length: len }, (_, i) => 1e6 - (i % 3) * 0.5);
        const want = lse(row.map((v) => (dtype === 'float32' ? Math.fround(v) : v)));
        for (const axis of [-1, 0]) {
          const data = axis === -1 ? [row, row] : row.map((v) => [v, v]);
          const x = S.tensor(data, { dtype, device });
          const y = S.logSoftmax(x, axis);
          const got = y.dataSync();
          S.dispose([x, y]);
          for (let i = 0; i < len; i++) {
            const g = axis === -1 ? got[i] : got[2 * i];
            const tol = dtype === 'float32' ? 4 * 2 ** -24 * 1.5 : 1e-12;
            assert.ok(Math.abs(g - want[i]) <= tol, `logSoftmax ${device} ${dtype} len ${len} axis ${axis}: element ${i} is ${g}, expected ${want[i]}`);
          }
        }
      }
});

test('unary ops in float16 and bfloat16 (forward, per-dtype tolerance)', () => {
  for (const [name, f, ref, range] of unaries) {
    if (name.startsWith('clamp')) continue;
    try {
      checkOp({ shapes: [[129]], fn: f, ref: (a) => R.map(a, ref), ranges: [range], dtype: ['float16', 'bfloat16'], grad: false });
    } catch (e) {
      (e as Error).message = `${name}: ${(e as Error).message}`;
      throw e;
    }
  }
});

test('methods match the functions', () => {
  const before = liveCounts();
  const x = S.tensor([[0.5, -1.5, 2]]);
  const pairs: [Tensor, Tensor][] = [
    [x.add(1), S.add(x, 1)],
    [x.sub(x), S.sub(x, x)],
    [x.mul(x), S.mul(x, x)],
    [x.div(2), S.div(x, 2)],
    [x.exp(), S.exp(x)],
    [S.tidy(() => x.abs().sqrt()), S.tidy(() => S.sqrt(S.abs(x)))],
    [x.relu(), S.relu(x)],
    [x.tanh(), S.tanh(x)],
    [x.sigmoid(), S.sigmoid(x)],
  ];
  for (const [a, b] of pairs) {
    assert.equal(Array.from(a.dataSync()), Array.from(b.dataSync()));
    a.dispose();
    b.dispose();
  }
  x.dispose();
  assertNoLeak(before, 'methods');
});

test('comparisons give 1/0 in the input dtype, broadcast, accept numbers, and carry no gradient', () => {
  const before = liveCounts();
  const a = S.tensor([[1, 2, 3]], { requiresGrad: true });
  const b = S.tensor([[2], [2]]);
  const cases: [Tensor, number[][]][] = [
    [S.eq(a, b), [[0, 1, 0], [0, 1, 0]]],
    [S.ne(a, b), [[1, 0, 1], [1, 0, 1]]],
    [S.lt(a, b), [[1, 0, 0], [1, 0, 0]]],
    [S.le(a, b), [[1, 1, 0], [1, 1, 0]]],
    [S.gt(a, b), [[0, 0, 1], [0, 0, 1]]],
    [S.ge(a, b), [[0, 1, 1], [0, 1, 1]]],
    [a.gt(2), [[0, 0, 1]]],
    [S.lt(2, a), [[0, 0, 1]]],
  ];
  for (const [t, want] of cases) {
    assert.is(t.dtype, 'float32');
    assert.is(t.requiresGrad, false);
    assert.equal(t.toArray(), want);
    t.dispose();
  }
  const s = a.sign();
  assert.is(s.requiresGrad, false);
  s.dispose();
  a.dispose();
  b.dispose();
  assertNoLeak(before, 'comparisons');
});

test('where: broadcasting, numbers, gradients to both branches', () => {
  const cond = (r: () => number) => [S.tensor(Float32Array.from({ length: 12 }, () => (r() < 0.5 ? 1 : 0)), { shape: [3, 4] })];
  // extra inputs are float32 masks; the float64 gradcheck needs them cast in fn
  checkOp({
    shapes: [[3, 4], [1, 4]],
    extra: cond,
    fn: (a, b, c) => {
      const cc = c.cast(a.dtype);
      try {
        return S.where(cc, a, b);
      } finally {
        cc.dispose();
      }
    },
    ref: (a, b, c) => R.zip([c, a, b], (m, x, y) => (m !== 0 ? x : y)),
  });
  checkOp({
    shapes: [[3, 4]],
    extra: cond,
    fn: (a, c) => {
      const cc = c.cast(a.dtype);
      try {
        return S.where(cc, a, 0.5);
      } finally {
        cc.dispose();
      }
    },
    ref: (a, c) => R.zip([c, a], (m, x) => (m !== 0 ? x : 0.5)),
  });
});

test('gradients through broadcasting reduce back to each input shape', () => {
  const before = liveCounts();
  const a = S.randn([3, 1], { requiresGrad: true, seed: 1 });
  const b = S.randn([4], { requiresGrad: true, seed: 2 });
  const y = S.tidy(() => S.mul(a, b).sum());
  y.backward();
  assert.equal(a.grad!.shape, [3, 1]);
  assert.equal(b.grad!.shape, [4]);
  const bs = Array.from(b.dataSync()).reduce((p, v) => p + v, 0);
  const as = Array.from(a.dataSync()).reduce((p, v) => p + v, 0);
  for (const v of a.grad!.dataSync()) assert.ok(Math.abs(v - bs) < 1e-5);
  for (const v of b.grad!.dataSync()) assert.ok(Math.abs(v - as) < 1e-5);
  y.dispose();
  a.dispose();
  b.dispose();
  assertNoLeak(before, 'broadcast grads');
});

test('bad arguments: non-tensors, two numbers, shapes that do not broadcast, mixed dtypes, disposed, integer math', () => {
  const a = S.ones([2, 3]);
  const b = S.ones([4, 5]);
  const d = S.ones([2, 3], { dtype: 'float64' });
  const i = S.ones([2, 3], { dtype: 'int32' });
  throwsLike(() => S.add(a, b), RangeError, /structura\.add: 'a' \[2, 3\] and 'b' \[4, 5\] do not broadcast/);
  throwsLike(() => S.mul(a, d), TypeError, /structura\.mul: 'a' \[2, 3\] is float32 but 'b' \[2, 3\] is float64/);
  throwsLike(() => S.add(a, [1, 2] as unknown as Tensor), TypeError, /structura\.add: 'b' must be a Tensor, got an array/);
  throwsLike(() => S.add(2 as unknown as Tensor, 3), TypeError, /at least one of 'a' and 'b' must be a Tensor/);
  throwsLike(() => S.exp('x' as unknown as Tensor), TypeError, /structura\.exp: 'x' must be a Tensor, got string/);
  throwsLike(() => S.exp(i), TypeError, /structura\.exp: 'x' must be a floating tensor/);
  throwsLike(() => S.clamp(a), TypeError, /give 'min', 'max' or both/);
  throwsLike(() => S.clamp(a, 2, 1), RangeError, /'min' 2 is greater than 'max' 1/);
  throwsLike(() => S.where(a, a, d), TypeError, /float64/);
  const c = S.ones([3]);
  c.dispose();
  throwsLike(() => S.add(a, c), TypeError, /structura\.add: 'b' is a disposed tensor/);
  throwsLike(() => c.exp(), TypeError, /disposed/);
  throwsLike(() => c.dataSync(), TypeError, /disposed/);
  // integer tensors: add works (exact), transcendental ops are refused
  const s = S.add(i, i);
  assert.is(s.dtype, 'int32');
  assert.equal(Array.from(s.dataSync()), [2, 2, 2, 2, 2, 2]);
  throwsLike(() => S.add(i, 0.5), TypeError, /structura\.add: 'b' is 0\.5, which is not an int32 value, and 'a' is int32 \(no type promotion/);
  for (const t of [a, b, d, i, s]) t.dispose();
});

// Two expand() views of legal sizes can broadcast to a shape whose element count wraps int64 (2^64 + 2
// here), and an empty tensor can reduce to a huge one: refused before anything is allocated (they once
// made a 2-element "[A, B]" tensor, or crashed the process reading it).
test('results past 2^40 elements (wrapping int64 when multiplied) are a RangeError, not a crash', () => {
  const before = liveCounts();
  const A = 694428065361, B = 26563938; // A·B = 2^64 + 2
  for (const dev of ['cpu', ...(S.backend().cudaEmu ? ['cuda-emu'] : [])])
    S.tidy(() => {
      const col = S.ones([1], { device: dev }).expand([A, 1]), row = S.ones([1], { device: dev }).expand([1, B]);
      throwsLike(() => col.add(row), RangeError, /structura\.binary\(add\): the result would have shape \[694428065361, 26563938\], more than 2\^40 elements/);
      throwsLike(() => S.where(col, row, 0), RangeError, /structura\.where: the result would have shape/);
      throwsLike(() => S.ones([1], { device: dev }).expand([2 ** 31, 1]).mul(S.ones([1], { device: dev }).expand([1, 2 ** 32])), RangeError, /\[2147483648, 4294967296\]/);
      throwsLike(() => S.zeros([0, 2 ** 40, 2 ** 40], { device: dev }).sum(0), RangeError, /structura\.sum: the result would have shape \[1099511627776, 1099511627776\]/);
    });
  assertNoLeak(before, 'huge results');
});

test('a number beside an integer tensor must be a value of its dtype; integer sub with any int32 number', () => {
  S.tidy(() => {
    const i = S.tensor([7, -7], { dtype: 'int32' });
    // 7.5 rounded to 7 (or NaN to 0, ±inf saturated) would compare, clamp or select silently wrong
    for (const [name, f, arg] of [
      ['eq', () => S.eq(i, 7.5), 'b'], ['lt', () => S.lt(i, 7.5), 'b'], ['gt', () => S.gt(-7.5, i), 'a'], ['ne', () => S.ne(i, NaN), 'b'],
      ['eq', () => S.eq(i, Infinity), 'b'], ['maximum', () => S.maximum(i, 1e10), 'b'], ['minimum', () => S.minimum(i, 2.5), 'b'],
      ['where', () => S.where(i, i, 2.5), 'b'], ['mul', () => S.mul(i, NaN), 'b'], ['sub', () => S.sub(2.5, i), 'a'],
    ] as const)
      throwsLike(f, TypeError, new RegExp(`structura\\.${name}: '${arg}' is .*, which is not an int32 value`));
    throwsLike(() => S.add(S.tensor([1], { dtype: 'uint8' }), 256), TypeError, /'b' is 256, which is not a uint8 value/);
    // exact values work, sub included where −b or the reversed form do not fit the scalar kernels
    assert.equal(Array.from(S.eq(i, 7).dataSync()), [1, 0]);
    assert.equal(Array.from(S.maximum(i, 0).dataSync()), [7, 0]);
    assert.equal(Array.from(S.sub(2, i).dataSync()), [-5, 9]);
    assert.equal(Array.from(S.sub(S.tensor([5, -5], { dtype: 'int32' }), -2147483648).dataSync()), Array.from(Int32Array.from([5 + 2 ** 31, -5 + 2 ** 31])));
  });
});

test('pow gradients at a zero base are 0 where PyTorch masks them (not NaN or −inf)', () => {
  S.tidy(() => {
    const x = S.tensor([0, 0, 0, 2, 0], { dtype: 'float64', requiresGrad: true });
    const y = S.tensor([2, 0, 0.5, 3, -1], { dtype: 'float64', requiresGrad: true });
    S.pow(x, y).sum().backward();
    // PyTorch 1.13: dx = [0, 0, inf, 12, −inf], dy = [0, 0, 0, 8 ln 2, −inf] (y < 0 is not masked: 0^−1 · ln 0)
    assert.equal(Array.from(x.grad!.dataSync()), [0, 0, Infinity, 12, -Infinity]);
    const dy = Array.from(y.grad!.dataSync());
    assert.equal([dy[0], dy[1], dy[2], dy[4]], [0, 0, 0, -Infinity]);
    assert.ok(Math.abs(dy[3] - 8 * Math.log(2)) < 1e-12, `dy ${dy}`);
    const e = S.tensor([2, 0, 0.5, -1], { dtype: 'float64', requiresGrad: true });
    S.pow(0, e).sum().backward();
    const de = Array.from(e.grad!.dataSync());
    assert.equal(de.slice(0, 3), [0, 0, 0]);
    assert.is(de[3], -Infinity); // 0^−1 · ln 0 = inf · −inf, as PyTorch
    // elsewhere the gradients are unchanged
    const p = S.tensor([0.5, 1.5, 2], { dtype: 'float64', requiresGrad: true });
    const q = S.tensor([0, 2, -1.5], { dtype: 'float64', requiresGrad: true });
    assert.is(S.gradcheck((u: Tensor, v: Tensor) => S.pow(u, v), [p, q]), true);
  });
});

test.run();
