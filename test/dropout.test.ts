// dropout.test.ts — the dropout op (csrc/cpu/elementwise.cc cpu_dropout, cuda/elementwise.cu
// dropout_kernel), nn.Dropout and nn.LoRALinear's lora_dropout:
//   every element against the definition: dropped exactly where rand(shape, {seed, dtype: 'float64'}) < p,
//     the others x·(1/(1 − p)) computed in float32 (float64 for float64) and rounded once; float32,
//     float64, float16, bfloat16; odd sizes (1, 3, 17, 1001, and 70 001, past the CPU's parallel grain);
//     a transposed input; NaN and ±inf kept as x·0 / x·scale; p = 1, p = 0, training false
//   the devices (cuda-emu, and cuda when there is one) equal to the CPU bit for bit
//   the dropped fraction and the mean against their expectations (5σ), fresh masks per call and
//     reproducible under manualSeed
//   gradients: gradcheck in float64, the gradient is the same mask and scale, no leak
//   nn.Dropout in training / eval mode; nn.LoRALinear({dropout}) against PEFT's formulas in float64
//     (plain and DoRA), eval() giving the fused path, gradcheck of its parameters
//   bad arguments: TypeError / RangeError naming the argument.
// Devices: STRUCTURA_TEST_DEVICES (comma list) or cuda-emu plus cuda when backend().cuda.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as S from '../lib/index';
import { native, type DType } from '../lib/native';
import { freshSeed, rng, uniform, liveCounts, assertNoLeak, throwsLike } from './helpers';

const info = native().backend();
const requested = process.env.STRUCTURA_TEST_DEVICES;
const DEVICES: string[] = requested
  ? requested.split(',').map((s) => s.trim()).filter(Boolean)
  : [...(info.cudaEmu ? ['cuda-emu'] : []), ...(info.cuda ? ['cuda'] : [])];
const ALL_DEVICES = requested ? DEVICES : ['cpu', ...DEVICES];
const FLOATS: DType[] = ['float32', 'float64', 'float16', 'bfloat16'];

/** The test's seed, printed when it fails. */
function seeded(name: string, fn: (seed: number) => void) {
  test(name, () => {
    const seed = freshSeed();
    try {
      fn(seed);
    } catch (e) {
      console.error(`  ${name}: seed ${seed} (STRUCTURA_TEST_SEED=${seed} replays it)`);
      throw e;
    }
  });
}

/** What dropout(x, p, {seed}) must give, from the float64 values of x (already of x's dtype). */
function expected(xs: ArrayLike<number>, p: number, seed: number, dtype: DType): Float64Array {
  const n = xs.length;
  const u = S.tidy(() => S.rand([Math.max(n, 1)], { seed, dtype: 'float64' }).dataSync() as Float64Array);
  const scale = p === 1 ? 0 : dtype === 'float64' ? 1 / (1 - p) : Math.fround(1 / Math.fround(1 - p));
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const m = p === 1 || u[i] < p ? 0 : scale;
    out[i] = dtype === 'float64' ? xs[i] * m : Math.fround(xs[i] * m);
  }
  if (dtype === 'float16' || dtype === 'bfloat16') {
    // float32 → the 16-bit dtype, rounded once (tensor() rounds Float32Array values to it)
    const r = S.tidy(() => S.tensor(Float32Array.from(out), { dtype }).dataSync());
    for (let i = 0; i < n; i++) out[i] = r[i];
  }
  return out;
}

/** Equal element for element, NaN equal to NaN and −0 distinguished from 0. */
function assertSame(got: ArrayLike<number>, want: ArrayLike<number>, what: string) {
  assert.is(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++)
    if (!Object.is(got[i], want[i])) assert.unreachable(`${what}: element ${i} is ${got[i]}, expected ${want[i]}`);
}

// ---- values against the definition ------------------------------------------------------------

for (const dev of ALL_DEVICES) {
  seeded(`dropout: every element against the definition, 4 dtypes, odd sizes [${dev}]`, (seed) => {
    const before = liveCounts();
    const r = rng(seed);
    const sizes = dev === 'cpu' ? [1, 3, 17, 1001, 70001] : [1, 3, 17, 1001, 4099];
    for (const dtype of FLOATS)
      for (const n of sizes)
        for (const p of [0.1, 0.5, 0.9, r()]) {
          S.tidy(() => {
            const x = S.tensor(uniform(r, n, -3, 3), { dtype, device: dev });
            const xs = x.dataSync();
            const s = Math.floor(r() * 2 ** 40);
            const y = S.dropout(x, p, { seed: s });
            assert.equal(y.shape, [n]);
            assert.is(y.dtype, dtype);
            assertSame(y.dataSync(), expected(xs, p, s, dtype), `${dtype} n=${n} p=${p}`);
          });
        }
    assertNoLeak(before, 'dropout');
  });

  seeded(`dropout: views, specials, p = 1, p = 0, eval [${dev}]`, (seed) => {
    const r = rng(seed);
    S.tidy(() => {
      // a transposed view: element i is the i-th in row-major order of the view
      const base = S.tensor(uniform(r, 7 * 13), { shape: [7, 13], dtype: 'float32', device: dev });
      const xt = base.transpose(0, 1);
      const dense = xt.contiguous();
      const s = 1234 + Math.floor(r() * 1000);
      const yt = S.dropout(xt, 0.3, { seed: s });
      assert.equal(yt.shape, [13, 7]);
      assertSame(yt.dataSync(), S.dropout(dense, 0.3, { seed: s }).dataSync(), 'transposed view');
      assertSame(yt.dataSync(), expected(dense.dataSync(), 0.3, s, 'float32'), 'transposed view vs definition');

      // NaN and ±inf: x·0 where dropped (NaN), x·scale where kept
      const sp = [NaN, Infinity, -Infinity, -0, 0, -1e-30, 3e38];
      const xs = Float32Array.from({ length: 64 }, (_, i) => sp[i % sp.length]);
      const x = S.tensor(xs, { device: dev });
      assertSame(S.dropout(x, 0.5, { seed: 9 }).dataSync(), expected(xs, 0.5, 9, 'float32'), 'specials');

      // p = 1 zeroes everything (x·0: −0 for negatives, NaN stays NaN); p = 0 and eval leave x as it is
      assertSame(S.dropout(x, 1, { seed: 1 }).dataSync(), Array.from(xs, (v) => v * 0), 'p = 1');
      const y0 = S.dropout(x, 0);
      assert.ok(y0 !== x, 'p = 0 gives a new handle');
      assertSame(y0.dataSync(), xs, 'p = 0');
      assertSame(S.dropout(x, 0.7, { training: false, seed: 3 }).dataSync(), xs, 'training false');

      // an empty tensor, a 0-d tensor
      assert.equal(S.dropout(S.zeros([0, 5], { device: dev }), 0.5).shape, [0, 5]);
      const z = S.dropout(S.full([], 2, { device: dev }), 0.25, { seed: 77 });
      assert.equal(z.shape, []);
      assertSame(z.dataSync(), expected([2], 0.25, 77, 'float32'), '0-d');
    });
  });
}

// ---- devices against the CPU ------------------------------------------------------------------

for (const dev of DEVICES) {
  seeded(`dropout: ${dev} equals the CPU bit for bit`, (seed) => {
    const r = rng(seed);
    for (const dtype of FLOATS)
      for (const n of [5, 257, 3001])
        S.tidy(() => {
          const xc = S.tensor(uniform(r, n), { dtype });
          const s = Math.floor(r() * 1e9);
          const want = S.dropout(xc, 0.37, { seed: s }).dataSync();
          const got = S.dropout(xc.to(dev), 0.37, { seed: s }).dataSync();
          assertSame(got, want, `${dtype} n=${n}`);
          // and an unaligned start (the kernel's scalar path): a narrowed view at offset 1
          const xn = S.narrow(xc, 0, 1, n - 1);
          assertSame(S.dropout(xn.to(dev), 0.37, { seed: s }).dataSync(), S.dropout(xn, 0.37, { seed: s }).dataSync(), `${dtype} n=${n} offset 1`);
          const xd = S.narrow(xc.to(dev), 0, 1, n - 1);
          assertSame(S.dropout(xd, 0.37, { seed: s }).dataSync(), S.dropout(xn, 0.37, { seed: s }).dataSync(), `${dtype} n=${n} device view at offset 1`);
        });
  });
}

// ---- statistics and the default generator -----------------------------------------------------

seeded('dropout: dropped fraction and mean within 5σ; fresh masks per call; manualSeed reproduces', (seed) => {
  const r = rng(seed);
  S.tidy(() => {
    const n = 200000;
    for (const p of [0.05, 0.5, 0.8]) {
      const y = S.dropout(S.ones([n], { dtype: 'float64' }), p, { seed: Math.floor(r() * 1e9) }).dataSync();
      let zeros = 0, sum = 0;
      for (let i = 0; i < n; i++) {
        if (y[i] === 0) zeros++;
        sum += y[i];
      }
      const sd = Math.sqrt(n * p * (1 - p));
      assert.ok(Math.abs(zeros - n * p) < 5 * sd, `p=${p}: ${zeros} of ${n} dropped`);
      // mean 1, each element's sd √(p/(1 − p))
      assert.ok(Math.abs(sum / n - 1) < 5 * Math.sqrt(p / (1 - p) / n), `p=${p}: mean ${sum / n}`);
    }
    const x = S.ones([4096]);
    S.manualSeed(seed);
    const a = S.dropout(x, 0.5).dataSync();
    const b = S.dropout(x, 0.5).dataSync();
    assert.ok(a.some((v, i) => v !== b[i]), 'two calls drew the same mask');
    S.manualSeed(seed);
    assertSame(S.dropout(x, 0.5).dataSync(), a, 'manualSeed reproduces the first mask');
    assertSame(S.dropout(x, 0.5).dataSync(), b, 'and the second');
    // eval and p = 0 do not advance the default generator
    S.manualSeed(seed);
    S.dropout(x, 0.5, { training: false });
    S.dropout(x, 0);
    assertSame(S.dropout(x, 0.5).dataSync(), a, 'eval / p = 0 drew no seed');
  });
});

// ---- gradients ----------------------------------------------------------------------------------

for (const dev of ALL_DEVICES)
  seeded(`dropout: gradcheck in float64, the gradient is the mask times the scale [${dev}]`, (seed) => {
    const r = rng(seed);
    const before = liveCounts();
    S.tidy(() => {
      const x = S.tensor(uniform(r, 3 * 11), { shape: [3, 11], dtype: 'float64', device: dev, requiresGrad: true });
      const s = Math.floor(r() * 1e9);
      assert.ok(S.gradcheck((t: S.Tensor) => S.dropout(t, 0.4, { seed: s }), [x]));
      // through a transposed view and a sum with weights: d/dx Σ w·dropout(xᵀ) = dropout(w)ᵀ
      const w = S.tensor(uniform(r, 33), { shape: [11, 3], dtype: 'float64', device: dev });
      const [g] = S.grad(S.mul(S.dropout(x.transpose(0, 1), 0.4, { seed: s }), w).sum(), [x]);
      assertSame(g!.dataSync(), S.dropout(w, 0.4, { seed: s }).transpose(0, 1).contiguous().dataSync(), 'gradient');
      // p = 1: a zero gradient; p = 0 and eval: the identity
      const [g1] = S.grad(S.dropout(x, 1, { seed: s }).sum(), [x]);
      assert.ok(Array.from(g1!.dataSync()).every((v) => v === 0), 'p = 1 gradient');
      const [g0] = S.grad(S.dropout(x, 0.6, { training: false }).sum(), [x]);
      assert.ok(Array.from(g0!.dataSync()).every((v) => v === 1), 'eval gradient');
    });
    assertNoLeak(before, 'dropout gradients');
  });

// ---- nn.Dropout ---------------------------------------------------------------------------------

test('nn.Dropout: training mode drops, eval() passes through, p checked', () => {
  S.tidy(() => {
    const m = new S.nn.Dropout(0.25);
    assert.is(m.p, 0.25);
    assert.match(m.toString(), /Dropout\(p=0\.25\)/);
    const x = S.ones([1000]);
    S.manualSeed(11);
    const y = m.forward(x).dataSync();
    S.manualSeed(11);
    assertSame(y, S.dropout(x, 0.25).dataSync(), 'training mode = dropout(x, p)');
    assert.ok(y.some((v) => v === 0) && y.some((v) => v !== 0));
    m.eval();
    assertSame(m.forward(x).dataSync(), x.dataSync(), 'eval');
    assert.is(new S.nn.Dropout().p, 0.5);
  });
  throwsLike(() => new S.nn.Dropout(1.5), RangeError, /nn\.Dropout.*'p' must be a probability in \[0, 1\], got 1\.5/);
  throwsLike(() => new S.nn.Dropout('0.1' as unknown as number), TypeError, /nn\.Dropout.*'p' must be a number/);
  throwsLike(() => new S.nn.Dropout(0.1).forward([1, 2] as unknown as S.Tensor), TypeError, /nn\.Dropout\.forward.*'x'/);
  S.tidy(() => {
    const xi = S.tensor(new Int32Array([1, 2, 3]));
    throwsLike(() => new S.nn.Dropout(0.1).forward(xi), TypeError, /nn\.Dropout\.forward.*'x'/);
    // a pass-through takes any dtype, as PyTorch's
    assert.equal(Array.from(new S.nn.Dropout(0.1).eval().forward(xi).dataSync()), [1, 2, 3]);
    assert.equal(Array.from(S.dropout(xi, 0).dataSync()), [1, 2, 3]);
  });
});

// ---- nn.LoRALinear with lora_dropout ----------------------------------------------------------

/** y = x·Wᵀ + b + PEFT's adapter term, in float64 from plain arrays: x [M, I], W [O, I], A [r, I], B [O, r]. */
function loraRef(x: Float64Array, xd: Float64Array, W: ArrayLike<number>, b: ArrayLike<number>, A: ArrayLike<number>, B: ArrayLike<number>,
  M: number, I: number, O: number, r: number, scale: number, f: Float64Array | null): Float64Array {
  const mm = (u: ArrayLike<number>, V: ArrayLike<number>, rows: number, k: number, cols: number) => {
    const out = new Float64Array(rows * cols); // u [rows, k] · Vᵀ, V [cols, k]
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) {
      let s = 0;
      for (let q = 0; q < k; q++) s += u[i * k + q] * V[j * k + q];
      out[i * cols + j] = s;
    }
    return out;
  };
  const base = mm(x, W, M, I, O), xdW = mm(xd, W, M, I, O);
  const lr = mm(mm(xd, A, M, I, r), B, M, r, O);
  const y = new Float64Array(M * O);
  for (let i = 0; i < M; i++) for (let j = 0; j < O; j++) {
    const k = i * O + j;
    y[k] = f ? base[k] + b[j] - xdW[k] + f[j] * (xdW[k] + scale * lr[k]) : base[k] + b[j] + scale * lr[k];
  }
  return y;
}

for (const dora of [false, true])
  seeded(`nn.LoRALinear({dropout})${dora ? ' with DoRA' : ''}: PEFT's formula in training mode, the fused path in eval, gradcheck`, (seed) => {
    const r = rng(seed);
    const before = liveCounts();
    const [M, I, O, rank] = [5, 9, 7, 3];
    const base = new S.nn.Linear(I, O, { dtype: 'float64', seed });
    const layer = new S.nn.LoRALinear(base, { r: rank, alpha: 6, dropout: 0.3, dora, seed: seed + 7 });
    assert.is(layer.dropout, 0.3);
    assert.match(layer.toString(), /r=3, alpha=6, scale=2, dora=(true|false), dropout=0\.3, merged=false/);
    S.tidy(() => {
      // B starts at zero (PEFT's init): give it values so that the adapter term is seen
      S.nn.init.uniform_(layer.loraB, -1, 1, { seed: seed + 9 });
      const x = S.tensor(uniform(r, M * I), { shape: [M, I], dtype: 'float64' });
      S.manualSeed(seed);
      const y = layer.forward(x).dataSync();
      S.manualSeed(seed);
      const xd = S.dropout(x, 0.3).dataSync() as Float64Array;
      assert.ok(xd.some((v) => v === 0), 'some inputs dropped');
      let f: Float64Array | null = null;
      const W = base.weight.dataSync(), A = layer.loraA.dataSync(), B = layer.loraB.dataSync();
      if (dora) {
        const m = layer.magnitude!.dataSync();
        f = new Float64Array(O);
        for (let j = 0; j < O; j++) {
          let s = 0;
          for (let k = 0; k < I; k++) {
            let d = 0;
            for (let q = 0; q < rank; q++) d += B[j * rank + q] * A[q * I + k];
            s += (W[j * I + k] + layer.scale * d) ** 2;
          }
          f[j] = m[j] / Math.sqrt(s);
        }
      }
      const want = loraRef(x.dataSync() as Float64Array, xd, W, base.bias!.dataSync(), A, B, M, I, O, rank, layer.scale, f);
      for (let i = 0; i < want.length; i++) assert.ok(Math.abs(y[i] - want[i]) <= 1e-12 * (1 + Math.abs(want[i])), `y[${i}] = ${y[i]}, expected ${want[i]}`);
      // gradients of the adapter's parameters (and x) with the mask fixed by the seed
      const xg = S.tensor(uniform(r, M * I), { shape: [M, I], dtype: 'float64', requiresGrad: true });
      const params = dora ? [xg, layer.loraA, layer.loraB, layer.magnitude!] : [xg, layer.loraA, layer.loraB];
      assert.ok(S.gradcheck(() => {
        S.manualSeed(seed + 1);
        return layer.forward(xg);
      }, params));
      // eval(): no dropout, the fused lowrank.lora path
      layer.eval();
      const ye = layer.forward(x).dataSync();
      layer.train();
      S.manualSeed(seed);
      const lr = dora ? null : S.lowrank.lora(x, base.weight, layer.loraA, layer.loraB, { scale: layer.scale, bias: base.bias }).dataSync();
      if (lr) assertSame(ye, lr, 'eval = lowrank.lora');
      const noDrop = new S.nn.LoRALinear(base, { r: rank, alpha: 6, dora, seed: seed + 7 });
      S.nn.init.uniform_(noDrop.loraB, -1, 1, { seed: seed + 9 });
      assertSame(ye, noDrop.forward(x).dataSync(), 'eval = the layer without dropout');
      noDrop.unload({ merge: false }); // (its base is the other layer's too)
    });
    layer.dispose();
    assertNoLeak(before, 'LoRALinear with dropout');
  });

test('nn.LoRALinear: a bad dropout is a RangeError / TypeError naming it', () => {
  const base = new S.nn.Linear(4, 3);
  throwsLike(() => new S.nn.LoRALinear(base, { dropout: -0.1 }), RangeError, /nn\.LoRALinear.*'dropout' must be a probability in \[0, 1\], got -0\.1/);
  throwsLike(() => new S.nn.LoRALinear(base, { dropout: true as unknown as number }), TypeError, /nn\.LoRALinear.*'dropout' must be a number/);
  base.dispose();
});

// ---- bad arguments ------------------------------------------------------------------------------

test('dropout: bad arguments are TypeErrors / RangeErrors naming them', () => {
  S.tidy(() => {
    const x = S.ones([4]);
    throwsLike(() => S.dropout(x, 1.5), RangeError, /dropout.*'p' must be a probability in \[0, 1\], got 1\.5/);
    throwsLike(() => S.dropout(x, -0.5), RangeError, /'p' must be a probability/);
    throwsLike(() => S.dropout(x, NaN), RangeError, /'p' must be a probability/);
    throwsLike(() => S.dropout(x, '0.5' as unknown as number), TypeError, /dropout.*'p'/);
    throwsLike(() => S.dropout(S.ones([4], { dtype: 'int32' }), 0.5), TypeError, /dropout.*'x'.*int32/);
    throwsLike(() => S.dropout([1, 2] as unknown as S.Tensor, 0.5), TypeError, /dropout.*'x'/);
    throwsLike(() => S.dropout(x, 0.5, { training: 1 as unknown as boolean }), TypeError, /'training' must be a boolean, got number 1/);
    throwsLike(() => S.dropout(x, 0.5, { seed: 1.5 }), RangeError, /'seed' must be a safe integer, got 1\.5/);
    throwsLike(() => S.dropout(x, 0, { seed: 1.5 }), RangeError, /'seed' must be a safe integer/);
    throwsLike(() => S.dropout(x, 0.5, { inplace: true } as unknown as S.DropoutOptions), TypeError, /unknown option 'inplace'/);
    const d = S.ones([2]);
    d.dispose();
    throwsLike(() => S.dropout(d, 0.5), TypeError, /dropout.*'x'.*disposed/);
  });
});

test.run();
