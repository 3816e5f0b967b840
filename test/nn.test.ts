// nn.test.ts — nn.Linear against a float64 reference (odd sizes, batch shapes, float32 and float64),
// its initialisation (PyTorch's U(−1/√in, 1/√in), seeded), gradcheck of its parameters, the
// activation modules, and Module bookkeeping: registration, nested names, tied weights,
// stateDict / loadStateDict (round trip, shape mismatch, missing and unexpected keys), train/eval,
// zeroGrad, dispose, printing, and bad arguments.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  tensor, randn, ones, zeros, memory, gradcheck, relu, gelu, silu, tanh, sigmoid, manualSeed, tidy, nn, Tensor, backend,
} from '../lib/index';

const seed0 = Number(process.env.STRUCTURA_TEST_SEED ?? Date.now() % 100000);


/** ‖out − ref‖ / ‖mag‖: the error relative to the magnitudes of the summed terms. */
function errAgainst(out: ArrayLike<number>, ref: ArrayLike<number>, mag: ArrayLike<number>): number {
  assert.is(out.length, ref.length);
  let num = 0, den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (out[i] - ref[i]) ** 2;
    den += mag[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-300));
}

/** y[r, j] = Σ_k x[r, k]·W[j, k] + b[j] in float64, x flattened to rows. */
function linearRef(x: ArrayLike<number>, W: ArrayLike<number>, b: ArrayLike<number> | null, rows: number, I: number, O: number): Float64Array {
  const y = new Float64Array(rows * O);
  for (let r = 0; r < rows; r++)
    for (let j = 0; j < O; j++) {
      let s = b ? b[j] : 0;
      for (let k = 0; k < I; k++) s += x[r * I + k] * W[j * I + k];
      y[r * O + j] = s;
    }
  return y;
}

// ---- Linear forward ----

const shapes: [number, number, number[]][] = [
  [1, 1, [1]],
  [3, 17, [5]],
  [17, 3, [2, 3]],
  [129, 5, [7]],
  [8, 32, [4, 1, 3]],
  [33, 1, []],
];
for (const dtype of ['float32', 'float64'] as const) {
  for (const [I, O, batch] of shapes) {
    for (const bias of [true, false]) {
      test(`Linear(${I}, ${O}, bias ${bias}) ${dtype} on x [${[...batch, I]}] matches the float64 reference`, () => {
        const seed = seed0 + I * 31 + O;
        const lin = new nn.Linear(I, O, { bias, dtype, seed });
        const x = randn([...batch, I], { dtype, seed: seed + 7 });
        const y = lin.forward(x);
        assert.equal(y.shape, [...batch, O]);
        assert.is(y.dtype, dtype);
        const rows = batch.reduce((a, c) => a * c, 1);
        const ref = linearRef(x.dataSync(), lin.weight.dataSync(), bias ? lin.bias!.dataSync() : null, rows, I, O);
        // Each output is a dot product of K = in terms plus the bias: rounding errors of random sign
        // grow like √(K+1)·u·Σ|terms| (u = 2⁻²⁴ for float32, 2⁻⁵³ for float64; Higham §3.1). So the
        // error is measured against the magnitudes |x|·|W|ᵀ + |b|, not against y itself, whose
        // terms may cancel (one output of 33 terms did: relative to y its error was 1.9e-6).
        // Allow 4× that (measured float32: 2.1e-7 at K = 129 against a bound of 2.7e-6).
        const u = dtype === 'float32' ? 2 ** -24 : 2 ** -53;
        const tol = 4 * u * Math.sqrt(I + 1);
        const abs = (a: ArrayLike<number>) => Float64Array.from(a, Math.abs);
        const mag = linearRef(abs(x.dataSync()), abs(lin.weight.dataSync()), bias ? abs(lin.bias!.dataSync()) : null, rows, I, O);
        const err = errAgainst(y.dataSync(), ref, mag);
        assert.ok(err <= tol, `relative error ${err} > ${tol} (seed ${seed})`);
        assert.ok(y.dataSync().every((v) => Number.isFinite(v)), 'every output element written');
        for (const t of [x, y]) t.dispose();
        lin.dispose();
      });
    }
  }
}

test('Linear: initialisation is U(−1/√in, 1/√in) for weight and bias, reproducible by seed', () => {
  const I = 300, O = 400;
  const lin = new nn.Linear(I, O, { seed: 42 });
  assert.equal(lin.weight.shape, [O, I]);
  assert.equal(lin.bias!.shape, [O]);
  assert.ok(lin.weight.requiresGrad && lin.bias!.requiresGrad && lin.weight.isLeaf);
  const bound = 1 / Math.sqrt(I);
  const w = lin.weight.dataSync();
  let mean = 0, sq = 0;
  for (const v of w) {
    assert.ok(v >= -bound && v <= bound, `weight ${v} outside ±${bound}`);
    mean += v;
    sq += v * v;
  }
  mean /= w.length;
  const variance = sq / w.length - mean * mean;
  // U(−b, b): mean 0 and variance b²/3; with n = 120000 samples the standard errors are
  // b/√(3n) ≈ 1.7e-3·b for the mean and ≈ 2.6e-3 relative for the variance: allow 5 of them.
  assert.ok(Math.abs(mean) < 5 * bound / Math.sqrt(3 * w.length), `mean ${mean}`);
  assert.ok(Math.abs(variance / (bound * bound / 3) - 1) < 5 * Math.sqrt(0.8 / w.length), `variance ${variance} vs ${bound * bound / 3}`);
  for (const v of lin.bias!.dataSync()) assert.ok(v >= -bound && v <= bound, `bias ${v} outside ±${bound}`);
  // the same seed gives the same layer; another seed another one; weight and bias are different draws
  const same = new nn.Linear(I, O, { seed: 42 });
  const other = new nn.Linear(I, O, { seed: 43 });
  assert.equal(Array.from(same.weight.dataSync()), Array.from(w));
  assert.equal(Array.from(same.bias!.dataSync()), Array.from(lin.bias!.dataSync()));
  assert.not.equal(Array.from(other.weight.dataSync().slice(0, 10)), Array.from(w.slice(0, 10)));
  assert.not.equal(Array.from(lin.bias!.dataSync().slice(0, 10)), Array.from(w.slice(0, 10)));
  // without a seed, manualSeed makes the default draws reproducible
  manualSeed(7);
  const a = new nn.Linear(5, 4);
  manualSeed(7);
  const b = new nn.Linear(5, 4);
  assert.equal(Array.from(a.weight.dataSync()), Array.from(b.weight.dataSync()));
  assert.equal(Array.from(a.bias!.dataSync()), Array.from(b.bias!.dataSync()));
  for (const m of [lin, same, other, a, b]) m.dispose();
});

test('Linear: gradcheck of weight, bias and input (float64)', () => {
  for (const [I, O, batch] of [[5, 3, [4]], [1, 1, [2]], [7, 2, [2, 3]]] as [number, number, number[]][]) {
    const lin = new nn.Linear(I, O, { dtype: 'float64', seed: seed0 });
    const W0 = lin.weight, B0 = lin.bias;
    const x = randn([...batch, I], { dtype: 'float64', seed: seed0 + 1, requiresGrad: true });
    // gradcheck hands fresh tensors to fn; routing them through the module's own parameter slots
    // checks the module's forward with respect to its parameters.
    const f = (xx: Tensor, w: Tensor, b: Tensor): Tensor => {
      lin.weight = w;
      lin.bias = b;
      return lin.forward(xx);
    };
    try {
      assert.ok(gradcheck(f, [x, W0, B0], { eps: 1e-6, atol: 1e-8, rtol: 1e-6 }));
    } catch (e) {
      throw new Error(`Linear(${I}, ${O}) on [${batch}, ${I}] (seed ${seed0}): ${(e as Error).message}`);
    } finally {
      lin.weight = W0;
      lin.bias = B0;
    }
    // and backward() leaves the gradients in the parameters' .grad
    const y = lin.forward(x);
    const s = y.sum();
    s.backward();
    assert.equal(lin.weight.grad!.shape, [O, I]);
    assert.equal(lin.bias!.grad!.shape, [O]);
    // d Σy / d b_j = number of rows; d Σy / d W[o, i] = Σ over rows of x[…, i], in W's layout
    const rows = batch.reduce((p, c) => p * c, 1);
    for (const v of lin.bias!.grad!.dataSync()) assert.ok(Math.abs(v - rows) < 1e-12);
    assert.ok(lin.weight.grad!.isContiguous);
    const xs = x.dataSync(), gw = lin.weight.grad!.dataSync();
    for (let o = 0; o < O; o++)
      for (let i = 0; i < I; i++) {
        let want = 0;
        for (let r = 0; r < rows; r++) want += xs[r * I + i];
        assert.ok(Math.abs(gw[o * I + i] - want) < 1e-12, `dW[${o}, ${i}] = ${gw[o * I + i]}, want ${want}`);
      }
    for (const t of [x, y, s]) t.dispose();
    lin.dispose();
  }
});

test('Linear without bias has bias null, no bias parameter, and a gradcheck-correct weight', () => {
  const lin = new nn.Linear(4, 2, { bias: false, dtype: 'float64', seed: 3 });
  assert.is(lin.bias, null);
  assert.equal(lin.namedParameters().map(([k]) => k), ['weight']);
  assert.equal(Object.keys(lin.stateDict()), ['weight']);
  const W0 = lin.weight;
  const x = randn([3, 4], { dtype: 'float64', seed: 4 });
  assert.ok(gradcheck((w: Tensor) => {
    lin.weight = w;
    return lin.forward(x);
  }, [W0], { atol: 1e-8, rtol: 1e-6 }));
  lin.weight = W0;
  lin.dispose();
  x.dispose();
});

// ---- activations ----

test('activation modules compute their ops (same values, same gradients)', () => {
  const x = tensor([-3, -1.5, -0.25, 0, 0.25, 1, 2.5, 4], { dtype: 'float64' });
  const X = Array.from(x.dataSync());
  const cases: [nn.Module, (t: Tensor) => Tensor, (v: number) => number | null][] = [
    [new nn.ReLU(), relu, (v) => Math.max(0, v)],
    [new nn.Tanh(), tanh, Math.tanh],
    [new nn.Sigmoid(), sigmoid, (v) => 1 / (1 + Math.exp(-v))],
    [new nn.SiLU(), silu, (v) => v / (1 + Math.exp(-v))],
    [new nn.GELU(), gelu, () => null], // no erf in JS: compared with the op (tested in its own suite)
  ];
  for (const [m, op, ref] of cases) {
    const y = m.forward(x) as Tensor;
    const yo = op(x);
    assert.equal(Array.from(y.dataSync()), Array.from(yo.dataSync()), m.constructor.name);
    X.forEach((v, i) => {
      const r = ref(v);
      if (r !== null) assert.ok(Math.abs(y.dataSync()[i] - r) <= 1e-15 * Math.max(1, Math.abs(r)), `${m.constructor.name}(${v})`);
    });
    assert.equal(m.parameters(), []);
    const xr = tensor([-0.7, 0.3, 1.9], { dtype: 'float64', requiresGrad: true });
    assert.ok(gradcheck((t: Tensor) => m.forward(t) as Tensor, [xr]));
    for (const t of [y, yo, xr]) t.dispose();
  }
  x.dispose();
});

// ---- Module bookkeeping ----

class Block extends nn.Module {
  declare body: nn.Sequential;
  declare head: nn.Linear;
  declare scale: Tensor;
  declare running: Tensor;
  constructor() {
    super();
    this.registerModule('body', new nn.Sequential(new nn.Linear(4, 8, { seed: 1 }), new nn.ReLU(), new nn.Linear(8, 6, { seed: 2 })));
    this.registerModule('head', new nn.Linear(6, 2, { seed: 3 }));
    this.registerParameter('scale', ones([2]));
    this.registerBuffer('running', zeros([2]));
  }
  forward(x: Tensor): Tensor {
    return this.head.forward(this.body.forward(x)).mul(this.scale);
  }
}

test('nested modules: parameter names, order, buffers, children, numParameters', () => {
  const m = new Block();
  const names = ['body.0.weight', 'body.0.bias', 'body.2.weight', 'body.2.bias', 'head.weight', 'head.bias', 'scale'];
  // a module's own entries come before its children's, as PyTorch's named_parameters / state_dict
  assert.equal(m.namedParameters().map(([k]) => k), ['scale', ...names.slice(0, 6)]);
  assert.equal(m.parameters().length, 7);
  assert.equal(m.namedParameters({ recurse: false }).map(([k]) => k), ['scale']);
  assert.equal(m.namedBuffers().map(([k]) => k), ['running']);
  assert.equal(Object.keys(m.stateDict()), ['scale', 'running', ...names.slice(0, 6)]);
  assert.equal([...m.namedChildren()].map(([k]) => k), ['body', 'head']);
  assert.equal([...m.namedModules()].map(([k]) => k), ['', 'body', 'body.0', 'body.1', 'body.2', 'head']);
  assert.is(m.numParameters(), 4 * 8 + 8 + 8 * 6 + 6 + 6 * 2 + 2 + 2);
  assert.ok(m.body.at(0) instanceof nn.Linear);
  assert.ok(m.body.at(-1) === m.body.at(2));
  assert.is(m.body.length, 3);
  assert.is([...m.body].length, 3);
  assert.ok(m.stateDict()['head.weight'] === m.head.weight, 'the state dict holds the module\'s own tensors');
  const x = randn([5, 4], { seed: 1 });
  const y = m.forward(x);
  assert.equal(y.shape, [5, 2]);
  for (const t of [x, y]) t.dispose();
  m.dispose();
});

test('parameters are listed in registration order (the subclass example of the docs)', () => {
  const m = new nn.Sequential(new nn.Linear(3, 4), new nn.Tanh(), new nn.Linear(4, 1));
  assert.equal(m.namedParameters().map(([k]) => k), ['0.weight', '0.bias', '2.weight', '2.bias']);
  assert.equal(m.parameters().map((p) => p.shape), [[4, 3], [4], [1, 4], [1]]);
  m.dispose();
});

test('tied weights: one parameter in parameters(), every path in stateDict()', () => {
  const a = new nn.Linear(3, 3, { seed: 1 });
  const b = new nn.Linear(3, 3, { seed: 2 });
  b.weight = a.weight;
  const s = new nn.Sequential(a, b);
  assert.equal(s.namedParameters().map(([k]) => k), ['0.weight', '0.bias', '1.bias']);
  assert.equal(Object.keys(s.stateDict()), ['0.weight', '0.bias', '1.weight', '1.bias']);
  s.dispose();
});

test('stateDict / loadStateDict round trip: values copied in place, tensors kept', () => {
  const src = new Block();
  const dst = new Block();
  // make dst differ
  for (const p of dst.parameters()) nn.init.uniform_(p, -1, 1, { seed: 5 });
  const before = dst.parameters();
  const res = dst.loadStateDict(src.stateDict());
  assert.equal(res, { missingKeys: [], unexpectedKeys: [] });
  const after = dst.parameters();
  after.forEach((p, i) => assert.ok(p === before[i], 'same tensor objects after loading'));
  for (const [k, t] of Object.entries(src.stateDict())) assert.equal(Array.from(dst.stateDict()[k].dataSync()), Array.from(t.dataSync()), k);
  const x = randn([3, 4], { seed: 9 });
  const y1 = src.forward(x), y2 = dst.forward(x);
  assert.equal(Array.from(y1.dataSync()), Array.from(y2.dataSync()));
  // clones are independent snapshots; a Map works as input too
  const snap = src.stateDict({ clone: true });
  assert.ok(snap['head.weight'] !== src.head.weight);
  assert.not.ok(snap['head.weight'].requiresGrad);
  nn.init.zeros_(src.head.weight);
  assert.ok(snap['head.weight'].dataSync().some((v) => v !== 0));
  src.loadStateDict(new Map(Object.entries(snap)));
  assert.equal(Array.from(src.head.weight.dataSync()), Array.from(snap['head.weight'].dataSync()));
  for (const t of Object.values(snap)) t.dispose();
  for (const t of [x, y1, y2]) t.dispose();
  src.dispose();
  dst.dispose();
});

test('loadStateDict: shape mismatch is a RangeError naming the key; nothing is copied', () => {
  const m = new nn.Sequential(new nn.Linear(3, 4, { seed: 1 }), new nn.Linear(4, 2, { seed: 2 }));
  const other = new nn.Sequential(new nn.Linear(3, 4, { seed: 3 }), new nn.Linear(5, 2, { seed: 4 }));
  const w0 = Array.from(m.at(0).stateDict().weight.dataSync());
  assert.throws(() => m.loadStateDict(other.stateDict()), (e: Error) =>
    e instanceof RangeError && /size mismatch for '1\.weight': the state dict has shape \[2, 5\], the module has \[2, 4\]/.test(e.message));
  assert.equal(Array.from(m.at(0).stateDict().weight.dataSync()), w0, 'checks happen before any copy');
  m.dispose();
  other.dispose();
});

test('loadStateDict: missing and unexpected keys (strict and not)', () => {
  const m = new nn.Sequential(new nn.Linear(2, 2, { seed: 1 }), new nn.Linear(2, 2, { seed: 2 }));
  const full = new nn.Sequential(new nn.Linear(2, 2, { seed: 3 }), new nn.Linear(2, 2, { seed: 4 }));
  const sd = full.stateDict();
  const partial = { '0.weight': sd['0.weight'], '0.bias': sd['0.bias'], '1.weight': sd['1.weight'] };
  assert.throws(() => m.loadStateDict(partial), (e: Error) => e instanceof RangeError && /missing keys: '1\.bias'/.test(e.message));
  const extra = { ...sd, '2.weight': sd['0.weight'] };
  assert.throws(() => m.loadStateDict(extra), (e: Error) => e instanceof RangeError && /unexpected keys: '2\.weight'/.test(e.message));
  const res = m.loadStateDict({ ...partial, 'fc.weight': sd['0.weight'] }, { strict: false });
  assert.equal(res, { missingKeys: ['1.bias'], unexpectedKeys: ['fc.weight'] });
  assert.equal(Array.from(m.at(1).stateDict().weight.dataSync()), Array.from(sd['1.weight'].dataSync()));
  assert.not.equal(Array.from(m.at(1).stateDict().bias.dataSync()), Array.from(sd['1.bias'].dataSync()));
  // wrong kinds
  assert.throws(() => m.loadStateDict({ ...sd, '0.bias': [1, 2] as never }), (e: Error) => e instanceof TypeError && /'0\.bias' must be a Tensor/.test(e.message));
  assert.throws(() => m.loadStateDict(null as never), TypeError);
  assert.throws(() => m.loadStateDict(sd, { strict: 'yes' as never }), TypeError);
  // another floating dtype is converted, as PyTorch's copy_
  const sd64 = Object.fromEntries(Object.entries(sd).map(([k, t]) => [k, t.cast('float64')]));
  m.loadStateDict(sd64);
  assert.equal(m.at(0).stateDict().weight.dtype, 'float32');
  assert.equal(Array.from(m.at(0).stateDict().weight.dataSync()), Array.from(sd['0.weight'].dataSync()));
  for (const t of Object.values(sd64)) t.dispose();
  m.dispose();
  full.dispose();
});

test('train() / eval() set the flag on every module; zeroGrad clears the grads', () => {
  const m = new Block();
  assert.ok([...m.modules()].every((x) => x.training));
  assert.is(m.eval(), m);
  assert.ok([...m.modules()].every((x) => !x.training));
  m.train();
  assert.ok([...m.modules()].every((x) => x.training));
  m.body.train(false);
  assert.ok(m.training && !m.body.training && !m.body.at(0).training && m.head.training);
  const x = randn([2, 4], { seed: 1 });
  const y = m.forward(x);
  const s = y.sum();
  s.backward();
  assert.ok(m.parameters().every((p) => p.grad !== null));
  m.zeroGrad();
  assert.ok(m.parameters().every((p) => p.grad === null));
  // requiresGrad_(false) freezes
  m.requiresGrad_(false);
  assert.ok(m.parameters().every((p) => !p.requiresGrad));
  for (const t of [x, y, s]) t.dispose();
  m.dispose();
});

test('registered tensors survive tidy(); dispose() releases them', () => {
  const before = memory().cpu.buffers;
  let m!: nn.Sequential;
  tidy(() => {
    m = new nn.Sequential(new nn.Linear(3, 5), new nn.GELU(), new nn.Linear(5, 2));
  });
  assert.ok(m.parameters().every((p) => !p.isDisposed));
  assert.is(memory().cpu.buffers, before + 4);
  m.dispose();
  assert.ok(m.parameters().every((p) => p.isDisposed));
  assert.is(memory().cpu.buffers, before);
});

test('toString prints the tree', () => {
  const m = new nn.Sequential(new nn.Linear(8, 32, { seed: 1 }), new nn.Tanh(), new nn.Linear(32, 1, { bias: false, seed: 2 }));
  assert.is(m.toString(), [
    'Sequential(',
    '  (0): Linear(inFeatures=8, outFeatures=32, bias=true)',
    '  (1): Tanh()',
    '  (2): Linear(inFeatures=32, outFeatures=1, bias=false)',
    ')',
  ].join('\n'));
  m.dispose();
});

test('registration checks: names, kinds, leaves, reassignment', () => {
  class M extends nn.Module {}
  const m = new M();
  const t = ones([2], { requiresGrad: false });
  const rangeErr = (f: () => unknown, re: RegExp): void => assert.throws(f, (e: Error) => e instanceof RangeError && re.test(e.message), re.source);
  const typeErr = (f: () => unknown, re: RegExp): void => assert.throws(f, (e: Error) => e instanceof TypeError && re.test(e.message), re.source);
  m.registerParameter('w', t);
  assert.ok(t.requiresGrad, 'registerParameter sets requiresGrad');
  rangeErr(() => m.registerParameter('w', ones([2])), /'w' is already registered as a parameter/);
  rangeErr(() => m.registerBuffer('a.b', ones([2])), /no '\.'/);
  rangeErr(() => m.registerParameter('', ones([2])), /non-empty/);
  rangeErr(() => m.registerParameter('forward', ones([2])), /'forward' is already a property/);
  rangeErr(() => m.registerModule('training', new nn.ReLU()), /'training' is already a property/);
  typeErr(() => m.registerParameter('p', [1, 2] as never), /parameter 'p' must be a Tensor or null, got an array/);
  typeErr(() => m.registerParameter('q', tensor([1, 2], { dtype: 'int32' })), /must be a floating tensor, got int32/);
  const leaf = ones([2], { requiresGrad: true });
  const nonLeaf = leaf.mul(3);
  typeErr(() => m.registerParameter('r', nonLeaf), /must be a leaf tensor/);
  typeErr(() => m.registerModule('s', {} as never), /module 's' must be an nn\.Module or null/);
  typeErr(() => m.registerParameter(3 as never, ones([1])), /'name' must be a string/);
  // reassignment through the accessor is checked too
  const mm = m as unknown as { w: unknown };
  typeErr(() => (mm.w = 'x'), /parameter 'w' must be a Tensor or null, got string/);
  const t2 = ones([3]);
  mm.w = t2;
  assert.ok(m.parameters()[0] === t2);
  mm.w = null;
  assert.equal(m.parameters(), []);
  rangeErr(() => m.registerModule('self', m), /its own child/);
  typeErr(() => new nn.Sequential(new nn.ReLU(), 'relu' as never), /'modules\[1\]' must be an nn\.Module, got string/);
  typeErr(() => new M().forward(t), /M does not define forward\(\)/);
  for (const x of [t, leaf, nonLeaf, t2]) x.dispose();
});

test('Linear: bad arguments are TypeError / RangeError naming the argument', () => {
  const rangeErr = (f: () => unknown, re: RegExp): void => assert.throws(f, (e: Error) => e instanceof RangeError && re.test(e.message), re.source);
  const typeErr = (f: () => unknown, re: RegExp): void => assert.throws(f, (e: Error) => e instanceof TypeError && re.test(e.message), re.source);
  rangeErr(() => new nn.Linear(0, 3), /'inFeatures' must be a positive integer, got 0/);
  rangeErr(() => new nn.Linear(3, -1), /'outFeatures' must be a positive integer, got -1/);
  rangeErr(() => new nn.Linear(2.5, 3), /'inFeatures' must be a positive integer, got 2\.5/);
  typeErr(() => new nn.Linear('3' as never, 4), /'inFeatures' must be a positive integer, got string/);
  typeErr(() => new nn.Linear(3, 4, { bias: 1 as never }), /'bias' must be a boolean/);
  typeErr(() => new nn.Linear(3, 4, { dtype: 'float8' as never }), /'dtype'/);
  typeErr(() => new nn.Linear(3, 4, { seed: 'a' as never }), /'seed'/);
  const lin = new nn.Linear(3, 4);
  const x = ones([2, 5]);
  rangeErr(() => lin.forward(x), /nn\.Linear\.forward: 'x' \[2, 5\] has 5 features in its last dimension, but inFeatures is 3/);
  typeErr(() => lin.forward([1, 2, 3] as never), /'x' must be a Tensor/);
  const s = tensor(1);
  rangeErr(() => lin.forward(s), /at least one dimension/);
  const x64 = ones([2, 3], { dtype: 'float64' });
  typeErr(() => lin.forward(x64), /float32.*float64|float64.*float32/);
  const d = ones([2, 3]);
  d.dispose();
  typeErr(() => lin.forward(d), /disposed/);
  for (const t of [x, s, x64]) t.dispose();
  lin.dispose();
  const x3 = ones([2, 3]);
  typeErr(() => lin.forward(x3), /nn\.Linear\.forward: its parameter 'weight' was disposed/);
  x3.dispose();
  // a misspelt option is not ignored; integer parameters are refused before anything is allocated
  const n0 = memory().numTensors;
  typeErr(() => new nn.Linear(3, 4, { biass: false } as never), /nn\.Linear: unknown option 'biass' \(known options: bias, dtype, device, seed\)/);
  typeErr(() => new nn.Linear(3, 4, { dtype: 'int32' }), /nn\.Linear: 'dtype' must be a floating dtype/);
  typeErr(() => new nn.LowRankLinear(3, 4, 2, { dtype: 'uint8' }), /nn\.LowRankLinear: 'dtype' must be a floating dtype/);
  const base = new nn.Linear(3, 4, { seed: 1 });
  typeErr(() => new nn.LoRALinear(base, { rank: 2 } as never), /nn\.LoRALinear: unknown option 'rank'/);
  base.dispose();
  assert.is(memory().numTensors, n0, 'nothing left by the refused constructors');
  // merge / unmerge name the disposed parameter (they reached matmul, which named its own argument 'b')
  const lora = new nn.LoRALinear(new nn.Linear(6, 5, { seed: 2 }), { r: 2 });
  lora.loraA.dispose();
  typeErr(() => lora.merge(), /nn\.LoRALinear\.merge: its parameter 'loraA' was disposed/);
  lora.dispose();
  const lora2 = new nn.LoRALinear(new nn.Linear(6, 5, { seed: 2 }), { r: 2 }).merge();
  lora2.loraB.dispose();
  typeErr(() => lora2.unmerge(), /nn\.LoRALinear\.unmerge: its parameter 'loraB' was disposed/);
  lora2.dispose();
  // a gradient assigned from another device is refused where it is assigned
  if (backend().cudaEmu) {
    const p = ones([2], { requiresGrad: true }), g = ones([2], { device: 'cuda-emu' });
    typeErr(() => (p.grad = g), /structura\.grad: assigned gradient is on cuda-emu but the tensor is on cpu/);
    p.dispose();
    g.dispose();
  }
});

test('nn.init: fans, gains, kaiming / xavier bounds, constant', () => {
  const w = zeros([64, 32, 3]);
  assert.equal(nn.init.calculateFans(w), { fanIn: 96, fanOut: 192 });
  assert.is(nn.init.calculateGain('relu'), Math.SQRT2);
  assert.is(nn.init.calculateGain('leaky_relu', Math.sqrt(5)), Math.sqrt(1 / 3));
  nn.init.kaimingUniform_(w, { a: Math.sqrt(5), seed: 1 });
  assert.ok(w.dataSync().every((v) => Math.abs(v) <= 1 / Math.sqrt(96)));
  nn.init.xavierUniform_(w, { seed: 2 });
  assert.ok(w.dataSync().every((v) => Math.abs(v) <= Math.sqrt(6 / (96 + 192))));
  nn.init.constant_(w, 0.5);
  assert.ok(w.dataSync().every((v) => v === 0.5));
  assert.throws(() => nn.init.calculateFans(zeros([3])), RangeError);
  assert.throws(() => nn.init.uniform_(w, 1, 0), RangeError);
  assert.throws(() => nn.init.normal_(w, 0, -1), RangeError);
  assert.throws(() => nn.init.zeros_([1] as never), TypeError);
  w.dispose();
});

test("Module.dispose(): each child's own dispose() once (tied, nested), the others freed when one throws", () => {
  const before = memory().numTensors;
  let calls = 0;
  class Holder extends nn.Module {
    extra = tensor([1, 2, 3]); // a tensor of its own besides its parameters (kept from tidy by the module)
    constructor() {
      super();
      this.registerModule('fc', new nn.Linear(3, 2));
    }
    dispose(): void {
      calls++;
      this.extra.dispose();
      super.dispose();
    }
  }
  const h = new Holder();
  const root = new nn.Sequential(h, new nn.Sequential(h));
  root.registerModule('again', h);
  root.dispose();
  assert.is(calls, 1, 'the tied module was disposed once');
  assert.is(memory().numTensors, before, 'everything freed, its own tensor too');
  class Bad extends nn.Module {
    dispose(): void {
      throw new Error('bad dispose');
    }
  }
  const a = new nn.Linear(2, 2), b = new nn.Linear(2, 2);
  const m = new nn.Sequential(a, new Bad(), b);
  let err: unknown;
  try {
    m.dispose();
  } catch (e) {
    err = e;
  }
  assert.match((err as Error).message, /bad dispose/);
  assert.ok(a.weight.isDisposed && b.weight.isDisposed, 'the children after the one that threw are freed too');
  assert.is(memory().numTensors, before);
});

test('namedModules: each module once by default; once per path with removeDuplicate false (cycles still cut)', () => {
  const shared = new nn.Linear(2, 2);
  const inner = new nn.Sequential(shared);
  const root = new nn.Sequential(inner, shared);
  assert.equal([...root.namedModules()].map(([p]) => p), ['', '0', '0.0']);
  assert.equal([...root.namedModules('', new Set(), false)].map(([p]) => p), ['', '0', '0.0', '1']);
  // PyTorch's state_dict lists a tied module under each path; load_state_dict then expects each
  const sd = root.stateDict();
  assert.equal(Object.keys(sd), ['0.0.weight', '0.0.bias', '1.weight', '1.bias']);
  assert.is(sd['1.weight'], sd['0.0.weight']);
  const copy = new nn.Sequential(new nn.Sequential(new nn.Linear(2, 2)));
  copy.registerModule('1', (copy as unknown as Record<string, nn.Sequential>)['0']['0' as never] as unknown as nn.Module);
  const res = copy.loadStateDict(sd);
  assert.equal([res.missingKeys, res.unexpectedKeys], [[], []]);
  copy.dispose();
  root.dispose();
});

test.run();
