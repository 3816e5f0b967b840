// multilora.test.ts — nn.MultiLoRALinear (many LoRA adapters over one frozen Linear, chosen per row) and
// its model-level helpers (injectMultiLora, useAdapters, setActiveAdapter, deleteAdapter, adapterNames,
// io.loadPeftAdapter's adapterName, unloadLora with merge: false). Every output element is checked
// against the float64 definition y_m = x_m·Wᵀ + b + scale_e·(x_m·A_eᵀ)·B_eᵀ for adapters of different
// ranks and scales in one batch (rows without one: the base alone), for float64, float32 and bfloat16
// bases and on 'cuda-emu'; the slots hold A and scale·B zero-padded, rounded once; a model loading two
// PEFT adapter directories that savePeftAdapter wrote serves both in one batch with each sample equal
// to its own LoRA model's output; gradcheck through x; every refusal leaves the layers as they were; no
// leaks. Devices: STRUCTURA_TEST_DEVICES (comma list), else the CPU, cuda-emu, and cuda when
// backend().cuda.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as S from '../lib/index';
import { nn, io, type Tensor } from '../lib/index';
import { native } from '../lib/native';
import { liveCounts, assertNoLeak, throwsLike, rng, freshSeed, uniform, assertClose, DEFAULT_TOL } from './helpers';

type Adapter = { A: Float64Array; B: Float64Array; r: number; scale: number };

/** The float64 definition: rows of x [M, IN] with adapter ids[m] (−1: none). With `L`, L[m, o] gets
 * Σ_k |scale·T_k·B_ok|, what rounding T = x·Aᵀ to the dtype may move y by (lowrank.loraBatched's bound,
 * test/conformance/lowrank_family.ts: the devices round T for the second product). */
function reference(x: ArrayLike<number>, M: number, IN: number, OUT: number, W: ArrayLike<number>, bias: ArrayLike<number> | null, ads: Adapter[], ids: number[], L?: Float64Array): Float64Array {
  const y = new Float64Array(M * OUT);
  for (let m = 0; m < M; m++) {
    const ad = ids[m] >= 0 ? ads[ids[m]] : null;
    const t = new Float64Array(ad ? ad.r : 0);
    if (ad) for (let k = 0; k < ad.r; k++) for (let i = 0; i < IN; i++) t[k] += x[m * IN + i] * ad.A[k * IN + i];
    for (let o = 0; o < OUT; o++) {
      let s = bias ? bias[o] : 0;
      for (let i = 0; i < IN; i++) s += x[m * IN + i] * W[o * IN + i];
      if (ad) for (let k = 0; k < ad.r; k++) s += ad.scale * t[k] * ad.B[o * ad.r + k];
      if (ad && L) for (let k = 0; k < ad.r; k++) L[m * OUT + o] += Math.abs(ad.scale * t[k] * ad.B[o * ad.r + k]);
      y[m * OUT + o] = s;
    }
  }
  return y;
}

const f64 = (t: Tensor) => Float64Array.from(S.tidy(() => t.cast('float64').dataSync()) as Float64Array);

function adapter(seed: number, r: number, IN: number, OUT: number, scale: number): Adapter {
  const g = rng(seed);
  return { A: uniform(g, r * IN, -1, 1), B: uniform(g, OUT * r, -1, 1), r, scale };
}

const T = (a: Float64Array, shape: number[], dtype: S.DType = 'float64', device = 'cpu') => S.tensor(a, { shape, dtype, device });

test('MultiLoRALinear: adapters of different ranks and scales, chosen per row, per sample, for all rows, by default', () => {
  const before = liveCounts();
  const seed = freshSeed();
  const IN = 7, OUT = 5;
  const base = new nn.Linear(IN, OUT, { dtype: 'float64', seed });
  const layer = new nn.MultiLoRALinear(base, { slots: 3, r: 4 });
  assert.ok(!base.weight.requiresGrad && !base.bias!.requiresGrad, 'the base is frozen');
  assert.equal(layer.loraA.shape, [3, 4, IN]);
  assert.equal(layer.loraB.shape, [3, OUT, 4]);
  assert.equal(Object.keys(layer.stateDict()), ['base.weight', 'base.bias'], 'the slots are not in the state dict');
  const ads = [adapter(seed + 1, 2, IN, OUT, 3 / 2), adapter(seed + 2, 4, IN, OUT, 2 / Math.sqrt(4)), adapter(seed + 3, 1, IN, OUT, 0.3)];
  S.tidy(() => {
    assert.is(layer.addAdapter('a', T(ads[0].A, [2, IN]), T(ads[0].B, [OUT, 2]), { alpha: 3 }), 0);
    assert.is(layer.addAdapter('b', T(ads[1].A, [4, IN]), T(ads[1].B, [OUT, 4]), { alpha: 2, rslora: true }), 1);
    assert.is(layer.addAdapter('c', T(ads[2].A, [1, IN]), T(ads[2].B, [OUT, 1]), { scale: 0.3 }), 2);
  });
  assert.equal(layer.adapters, ['a', 'b', 'c']);
  assert.equal(layer.adapterInfo('b'), { slot: 1, r: 4, scale: 1 });
  const W = f64(base.weight), bias = f64(base.bias!);
  const M = 6;
  const xv = uniform(rng(seed + 4), M * IN);
  const x = T(xv, [M, IN]);
  const check = (y: Tensor, ids: number[], shape: number[], what: string) => {
    assertClose(f64(y), { data: reference(xv, M, IN, OUT, W, bias, ads, ids), shape }, y.shape, DEFAULT_TOL.float64, what);
  };
  S.tidy(() => {
    check(layer.forward(x, { adapters: ['a', null, 'b', 'c', '__base__', 'a'] }), [0, -1, 1, 2, -1, 0], [M, OUT], 'one a row');
    check(layer.forward(x, { adapters: 'b' }), [1, 1, 1, 1, 1, 1], [M, OUT], 'one for all');
    check(layer.forward(x), [-1, -1, -1, -1, -1, -1], [M, OUT], 'none by default');
    // [2, 3, IN]: one entry a sample covers its 3 rows; 6 entries, one a row
    const x3 = x.reshape([2, 3, IN]);
    check(layer.forward(x3, { adapters: ['c', 'a'] }), [2, 2, 2, 0, 0, 0], [2, 3, OUT], 'one a sample');
    check(layer.forward(x3, { adapters: ['c', 'a', 'a', null, 'b', 'c'] }), [2, 0, 0, -1, 1, 2], [2, 3, OUT], 'one a row of a 3-d x');
    // a 1-d x is one row
    const y1 = layer.forward(T(xv.slice(0, IN), [IN]), { adapters: ['b'] });
    assert.equal(y1.shape, [OUT]);
    assertClose(f64(y1), { data: reference(xv, 1, IN, OUT, W, bias, ads, [1]), shape: [OUT] }, [OUT], DEFAULT_TOL.float64, '1-d x');
    // empty batches: nothing to choose, the base's empty output
    assert.equal(layer.forward(S.zeros([0, IN], { dtype: 'float64' }), { adapters: [] }).shape, [0, OUT]);
    assert.equal(layer.forward(S.zeros([2, 0, IN], { dtype: 'float64' }), { adapters: ['a', 'b'] }).shape, [2, 0, OUT]);
    throwsLike(() => layer.forward(S.zeros([2, 0, IN], { dtype: 'float64' }), { adapters: ['a', 'zz'] }), RangeError, /no adapter 'zz'/);
    layer.setActiveAdapter('c');
    assert.is(layer.activeAdapter, 'c');
    check(layer.forward(x), [2, 2, 2, 2, 2, 2], [M, OUT], 'the active adapter');
    check(layer.forward(x, { adapters: null }), [-1, -1, -1, -1, -1, -1], [M, OUT], 'null overrides the active adapter');
    layer.setActiveAdapter(null);
  });
  x.dispose();
  layer.dispose();
  assertNoLeak(before, 'MultiLoRALinear forward');
});

test('MultiLoRALinear: the slots hold A and scale·B zero-padded, rounded once; a freed slot keeps nothing', () => {
  const before = liveCounts();
  const seed = freshSeed();
  const IN = 9, OUT = 4;
  for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
    const layer = new nn.MultiLoRALinear(new nn.Linear(IN, OUT, { dtype, seed }), { slots: 2, r: 3 });
    const ad = adapter(seed + 1, 3, IN, OUT, 0.7);
    S.tidy(() => {
      // float32 factors, the scale in float64, one rounding to the slot's dtype
      const A = T(ad.A, [3, IN], 'float32'), B = T(ad.B, [OUT, 3], 'float32');
      layer.addAdapter('big', A, B, { scale: 0.7 });
      const wantA = f64(A.cast(dtype)), wantB = f64(B.cast('float64').mul(0.7).cast(dtype));
      assert.equal(Array.from(f64(layer.loraA).slice(0, 3 * IN)), Array.from(wantA), `${dtype}: slot 0's A`);
      assert.equal(Array.from(f64(layer.loraB).slice(0, OUT * 3)), Array.from(wantB), `${dtype}: slot 0's B`);
      layer.deleteAdapter('big');
      assert.ok(f64(layer.loraA).every((v) => v === 0) && f64(layer.loraB).every((v) => v === 0), `${dtype}: a deleted adapter is zeroed`);
      layer.addAdapter('big', A, B, { scale: 0.7 });
      // a rank-1 adapter in the other slot, then in the first once freed: the padding is zero
      const small = adapter(seed + 2, 1, IN, OUT, 1);
      layer.addAdapter('small', T(small.A, [1, IN], 'float32'), T(small.B, [OUT, 1], 'float32'));
      layer.deleteAdapter('big');
      assert.is(layer.addAdapter('tiny', T(small.A, [1, IN], 'float32'), T(small.B, [OUT, 1], 'float32'), { alpha: 2 }), 0);
      const a = f64(layer.loraA), b = f64(layer.loraB);
      for (let k = 1; k < 3; k++) for (let i = 0; i < IN; i++) assert.is(a[k * IN + i], 0, `${dtype}: A padding row ${k}`);
      for (let o = 0; o < OUT; o++) for (let k = 1; k < 3; k++) assert.is(b[o * 3 + k], 0, `${dtype}: B padding column ${k}`);
      assert.equal(Array.from({ length: OUT }, (_, o) => b[o * 3]), Array.from(f64(T(small.B, [OUT], 'float32').cast('float64').mul(2).cast(dtype))), `${dtype}: alpha 2 over r 1`);
    });
    layer.dispose();
  }
  assertNoLeak(before, 'slots');
});

test('MultiLoRALinear: float32 and bfloat16 bases on every device (cuda-emu; cuda when there is one), against the float64 definition over what the slots hold', () => {
  const before = liveCounts();
  const seed = freshSeed();
  const IN = 33, OUT = 17, M = 11;
  const b = S.backend();
  // STRUCTURA_TEST_DEVICES (test/gpu/multilora.test.ts: 'cuda') in place of the CPU and every device
  const requested = process.env.STRUCTURA_TEST_DEVICES;
  const devices = requested ? requested.split(',').map((d) => d.trim()).filter(Boolean) : ['cpu', ...(b.cudaEmu ? ['cuda-emu'] : []), ...(b.cuda ? ['cuda'] : [])];
  const cases = devices.flatMap((d) => [['float32', d], ['bfloat16', d]] as [S.DType, string][]);
  for (const [dtype, device] of cases) {
    const layer = new nn.MultiLoRALinear(new nn.Linear(IN, OUT, { dtype, seed, device }), { slots: 4, r: 8 });
    const ranks = [8, 3, 5];
    S.tidy(() => {
      ranks.forEach((r, e) => {
        const ad = adapter(seed + 10 + e, r, IN, OUT, 1);
        layer.addAdapter(`ad${e}`, T(ad.A, [r, IN], 'float32'), T(ad.B, [OUT, r], 'float32'), { alpha: 2 * r });
      });
      // the reference reads the slots (scale folded in: scale 1 there) and the base in float64
      const Av = f64(layer.loraA), Bv = f64(layer.loraB);
      const ads: Adapter[] = [0, 1, 2].map((e) => ({
        A: Av.slice(e * 8 * IN, (e + 1) * 8 * IN), B: Bv.slice(e * OUT * 8, (e + 1) * OUT * 8), r: 8, scale: 1,
      }));
      const xv = f64(T(uniform(rng(seed + 5), M * IN), [M, IN]).cast(dtype));
      const names = ['ad0', null, 'ad2', 'ad1', 'ad1', null, 'ad0', 'ad2', 'ad2', 'ad1', null];
      const ids = names.map((n) => (n === null ? -1 : Number(n.slice(2))));
      const y = layer.forward(T(xv, [M, IN], dtype, device), { adapters: names });
      assert.ok(y.device.startsWith(device), `y is on ${y.device}`);
      const L = new Float64Array(M * OUT);
      const ref = reference(xv, M, IN, OUT, f64(layer.base.weight), f64(layer.base.bias!), ads, ids, L);
      // the output's rounding (DEFAULT_TOL) plus T's (u·L, u = 2⁻⁸ for bfloat16, 2⁻²⁴ for float32)
      const tol = dtype === 'bfloat16' ? { atol: 8e-3, rtol: 1.6e-2 } : { atol: 2e-5, rtol: 2e-5 }; // bfloat16: DEFAULT_TOL's
      const u = dtype === 'bfloat16' ? 2 ** -8 : 2 ** -24;
      const out = f64(y);
      assert.equal(y.shape, [M, OUT]);
      for (let i = 0; i < out.length; i++) {
        const bound = tol.atol + tol.rtol * Math.abs(ref[i]) + u * L[i];
        if (!(Math.abs(out[i] - ref[i]) <= bound)) assert.unreachable(`${dtype} on ${device}: element ${i} is ${out[i]}, reference ${ref[i]} (bound ${bound})`);
      }
    });
    layer.dispose();
  }
  assertNoLeak(before, 'dtypes and devices');
});

test('MultiLoRALinear: the same outputs as an nn.LoRALinear with the adapter; gradcheck through x', () => {
  const before = liveCounts();
  const seed = freshSeed();
  const IN = 6, OUT = 5;
  const lora = new nn.LoRALinear(new nn.Linear(IN, OUT, { dtype: 'float64', seed }), { r: 3, alpha: 5, rslora: true, seed });
  S.noGrad(() => S.tidy(() => native().copyInto(lora.loraB._h, S.tensor(uniform(rng(seed), OUT * 3), { shape: [OUT, 3], dtype: 'float64' })._h)));
  const bank = new nn.MultiLoRALinear(new nn.Linear(IN, OUT, { dtype: 'float64', seed }), { slots: 2, r: 4 });
  bank.addAdapter('x', lora.loraA, lora.loraB, { alpha: 5, rslora: true });
  const x = S.tensor(uniform(rng(seed + 1), 4 * IN), { shape: [4, IN], dtype: 'float64', requiresGrad: true });
  S.tidy(() => {
    const want = f64(lora.forward(x));
    assertClose(f64(bank.forward(x, { adapters: 'x' })), { data: want, shape: [4, OUT] }, [4, OUT], DEFAULT_TOL.float64, 'bank vs LoRALinear');
    assert.is(S.gradcheck((u: Tensor) => bank.forward(u, { adapters: ['x', null, 'x', null] }), [x]), true);
    assert.is(S.gradcheck((u: Tensor) => bank.forward(u.reshape([2, 2, IN]), { adapters: [null, 'x'] }), [x]), true);
  });
  x.dispose();
  lora.dispose();
  bank.dispose();
  assertNoLeak(before, 'LoRALinear equivalence');
});

test('MultiLoRALinear: bad input is refused by name, and the layer is left as it was', () => {
  const before = liveCounts();
  const IN = 4, OUT = 3;
  const layer = new nn.MultiLoRALinear(new nn.Linear(IN, OUT, { dtype: 'float32', seed: 1 }), { slots: 2, r: 2 });
  S.tidy(() => {
    const A = S.ones([2, IN]), B = S.ones([OUT, 2]);
    throwsLike(() => new nn.MultiLoRALinear({} as nn.Linear), TypeError, /'base' must be an nn\.Linear/);
    throwsLike(() => new nn.MultiLoRALinear(layer.base, { slots: 0 }), RangeError, /'slots' must be a positive integer/);
    throwsLike(() => new nn.MultiLoRALinear(layer.base, { rank: 2 } as never), TypeError, /rank/);
    layer.addAdapter('a', A, B);
    throwsLike(() => layer.addAdapter('a', A, B), RangeError, /already has an adapter 'a'/);
    throwsLike(() => layer.addAdapter('__base__', A, B), RangeError, /other than '__base__'/);
    throwsLike(() => layer.addAdapter('', A, B), RangeError, /non-empty/);
    throwsLike(() => layer.addAdapter('b', S.ones([3, IN]), S.ones([OUT, 3])), RangeError, /rank 3 .* above the layer's r = 2/);
    throwsLike(() => layer.addAdapter('b', S.ones([2, IN + 1]), B), RangeError, /'A' \[2, 5\] must be \[r, in\] with in = 4/);
    throwsLike(() => layer.addAdapter('b', A, S.ones([OUT, 1])), RangeError, /'B' \[3, 1\] must be \[out, r\] = \[3, 2\]/);
    throwsLike(() => layer.addAdapter('b', A, B, { scale: 2, alpha: 1 }), TypeError, /'scale' or 'alpha'/);
    throwsLike(() => layer.addAdapter('b', A, S.ones([OUT, 2], { dtype: 'int32' })), TypeError, /'B' must be floating/);
    layer.addAdapter('b', A, B);
    throwsLike(() => layer.addAdapter('c', A, B), RangeError, /all 2 slots are taken \('a', 'b'\)/);
    assert.equal(layer.adapters, ['a', 'b']);
    const x = S.ones([4, IN]);
    throwsLike(() => layer.forward(x, { adapters: 'zz' }), RangeError, /no adapter 'zz' \(it has 'a', 'b'\)/);
    throwsLike(() => layer.forward(x, { adapters: ['a', 'b', 'a'] }), RangeError, /'adapters' has 3 entries but 'x' \[4, 4\] has 4 samples and 4 rows/);
    throwsLike(() => layer.forward(x.reshape([2, 2, IN]), { adapters: ['a', 'b', 'a'] }), RangeError, /has 2 samples and 4 rows/);
    throwsLike(() => layer.forward(x, { adapters: ['a', 1, 'a', 'a'] as never }), TypeError, /'adapters'\[1\] must be an adapter's name or null, got number 1/);
    throwsLike(() => layer.forward(x, { adapters: 3 as never }), TypeError, /'adapters' must be an adapter's name or null/);
    throwsLike(() => layer.forward(S.ones([4, IN + 1]), { adapters: 'a' }), RangeError, /5 features .* inFeatures is 4/);
    throwsLike(() => layer.forward(S.ones([4, IN], { dtype: 'float64' }), { adapters: 'a' }), TypeError, /'x' is float64 but the base layer's weight is float32/);
    if (S.backend().cudaEmu) throwsLike(() => layer.forward(S.ones([4, IN], { device: 'cuda-emu' }), { adapters: 'a' }), TypeError, /'x' is on cuda-emu but the base layer's weight is on cpu/);
    throwsLike(() => layer.forward(x, { adapter: 'a' } as never), TypeError, /adapter/);
    throwsLike(() => layer.setActiveAdapter('zz'), RangeError, /no adapter 'zz'/);
    throwsLike(() => layer.deleteAdapter('zz'), RangeError, /no adapter 'zz'/);
    assert.equal(layer.adapters, ['a', 'b']);
    assert.is(layer.activeAdapter, null);
  });
  // float16: a scale·B past 65504 would be ±inf in the slot (nn.LoRALinear scales after the product): refused
  const half = new nn.MultiLoRALinear(new nn.Linear(IN, OUT, { dtype: 'float16', seed: 1 }), { slots: 1, r: 1 });
  S.tidy(() => {
    throwsLike(() => half.addAdapter('a', S.ones([1, IN]), S.full([OUT, 1], 2000), { alpha: 64 }), RangeError, /scale·B \(scale 64, \|B\| up to 2000\) overflows float16/);
    assert.equal(half.adapters, []);
    // ... and one below the smallest subnormal (2⁻²⁴) everywhere would be an adapter of zeros: refused too
    throwsLike(() => half.addAdapter('a', S.ones([1, IN]), S.full([OUT, 1], 1e-3), { scale: 1e-5 }), RangeError, /scale·B \(scale 0\.00001, \|B\| up to 0\.001.*\) underflows float16.*every element rounds to 0/);
    assert.equal(half.adapters, []);
    half.addAdapter('a', S.ones([1, IN]), S.full([OUT, 1], 1000), { alpha: 64 });
    assert.equal(Array.from(half.loraB.cast('float32').dataSync()), [64000, 64000, 64000]);
  });
  half.dispose();
  const base = layer.unload();
  assert.ok(base instanceof nn.Linear && !base.weight.isDisposed);
  S.tidy(() => {
    throwsLike(() => layer.forward(S.ones([1, IN])), TypeError, /unloaded/);
    throwsLike(() => layer.addAdapter('a', S.ones([1, IN]), S.ones([OUT, 1])), TypeError, /unloaded/);
  });
  base.dispose();
  assertNoLeak(before, 'refusals');
});

// ---- a model serving two PEFT adapters --------------------------------------------------------------

const IN = 6, HID = 5;
class Net extends nn.Module {
  declare q_proj: nn.Linear;
  declare o_proj: nn.Linear;
  constructor(seed: number) {
    super();
    this.registerModule('q_proj', new nn.Linear(IN, HID, { dtype: 'float64', seed }));
    this.registerModule('o_proj', new nn.Linear(HID, IN, { dtype: 'float64', seed: seed + 2 }));
  }
  forward(x: Tensor): Tensor {
    return this.o_proj.forward(this.q_proj.forward(x).gelu());
  }
}

/** A LoRA fine-tune of Net(seed): random lora_B (as after training), saved as a PEFT directory. */
function fineTune(seed: number, dir: string, opts: Partial<nn.InjectLoraOptions>): Net {
  const m = new Net(seed);
  nn.injectLora(m, { targetModules: ['q_proj', 'o_proj'], seed: seed + 7, ...opts });
  let k = 0;
  for (const l of m.modules())
    if (l instanceof nn.LoRALinear)
      S.noGrad(() => S.tidy(() => native().copyInto(l.loraB._h, S.tensor(uniform(rng(seed + 100 + k++), l.loraB.shape[0] * l.loraB.shape[1]), { shape: l.loraB.shape, dtype: 'float64' })._h)));
  io.savePeftAdapter(m, dir);
  return m;
}

test('a model serves two PEFT adapters in one batch: each sample equals its own fine-tune', () => {
  const before = liveCounts();
  const seed = freshSeed();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'structura-multilora-'));
  try {
    const one = fineTune(seed, path.join(tmp, 'one'), { r: 2, alpha: 4, rankPattern: { o_proj: 3 } });
    const two = fineTune(seed, path.join(tmp, 'two'), { r: 4, alpha: 2, rslora: true, targetModules: ['q_proj'] });
    const plain = new Net(seed);
    const served = new Net(seed);
    assert.equal(nn.injectMultiLora(served, { targetModules: ['q_proj', 'o_proj'], slots: 3, r: 4 }), ['q_proj', 'o_proj']);
    throwsLike(() => io.loadPeftAdapter(served, path.join(tmp, 'one')), RangeError, /'q_proj' is an nn\.MultiLoRALinear: load the adapter into its slots with the option \{adapterName\}/);
    const r1 = io.loadPeftAdapter(served, path.join(tmp, 'one'), { adapterName: 'one' });
    assert.equal(r1, { injected: [], loaded: ['q_proj', 'o_proj'], copied: [] });
    assert.is(served.training, false, 'eval mode, as PEFT\'s load_adapter');
    assert.ok(served.parameters().every((t) => !t.requiresGrad));
    io.loadPeftAdapter(served, path.join(tmp, 'two'), { adapterName: 'two' });
    assert.equal(nn.adapterNames(served), ['one', 'two']);
    assert.equal((served.o_proj as unknown as nn.MultiLoRALinear).adapters, ['one'], "'two' did not target o_proj");
    const x = S.tensor(uniform(rng(seed + 1), 4 * 3 * IN), { shape: [4, 3, IN], dtype: 'float64' });
    S.tidy(() => {
      const want = [one, two, plain, one].map((m, i) => f64(m.forward(x.narrow(0, i, 1))));
      const y = f64(nn.useAdapters(served, ['one', 'two', '__base__', 'one'], () => served.forward(x)));
      assertClose(y, { data: Float64Array.from(want.flatMap((w) => Array.from(w))), shape: [4, 3, IN] }, [4, 3, IN], DEFAULT_TOL.float64, 'mixed batch');
      // adapters off (PEFT's disable_adapter): the base, whatever the rows chose; back on afterwards
      const off = f64(nn.disableAdapters(served, () => nn.useAdapters(served, ['one', 'two', '__base__', 'one'], () => served.forward(x))));
      assert.equal(Array.from(off), Array.from(f64(plain.forward(x))), 'disableAdapters: the base model');
      assert.ok((served.q_proj as unknown as nn.MultiLoRALinear).adaptersEnabled);
      // the choice ends with useAdapters; setActiveAdapter sets a default
      assertClose(f64(served.forward(x)), { data: f64(plain.forward(x)), shape: [4, 3, IN] }, [4, 3, IN], DEFAULT_TOL.float64, 'after useAdapters');
      nn.setActiveAdapter(served, 'two');
      assertClose(f64(served.forward(x)), { data: f64(two.forward(x)), shape: [4, 3, IN] }, [4, 3, IN], DEFAULT_TOL.float64, 'active adapter');
      // a forward's own choice wins over useAdapters'; nested calls put the outer choice back
      const q = served.q_proj as unknown as nn.MultiLoRALinear;
      const x2 = x.reshape([12, IN]);
      nn.useAdapters(served, 'one', () => {
        assertClose(f64(q.forward(x2, { adapters: null })), { data: f64(q.base.forward(x2)), shape: [12, HID] }, [12, HID], DEFAULT_TOL.float64, 'own choice');
        const inner = f64(nn.useAdapters(served, 'two', () => served.forward(x)));
        assertClose(inner, { data: f64(two.forward(x)), shape: [4, 3, IN] }, [4, 3, IN], DEFAULT_TOL.float64, 'inner choice');
        assertClose(f64(served.forward(x)), { data: f64(one.forward(x)), shape: [4, 3, IN] }, [4, 3, IN], DEFAULT_TOL.float64, 'outer choice back');
      });
      assert.is((served.o_proj as unknown as nn.MultiLoRALinear).activeAdapter, 'two', "active in o_proj too, which lacks it (its rows run the base)");
      assert.is(nn.deleteAdapter(served, 'two'), 1);
      for (const p of ['q_proj', 'o_proj'] as const)
        assert.is((served[p] as unknown as nn.MultiLoRALinear).activeAdapter, null, `deleting the active adapter clears it in every layer (${p})`);
      assert.equal(nn.adapterNames(served), ['one']);
    });
    // refusals, each leaving the model's slots as they were
    const slots = () => nn.adapterNames(served).join(',') + '|' + (served.q_proj as unknown as nn.MultiLoRALinear).adapters.join(',');
    const was = slots();
    throwsLike(() => nn.useAdapters(served, ['one', 'nope'], () => 0), RangeError, /no layer of the module has an adapter 'nope' \(it has 'one'\)/);
    throwsLike(() => nn.useAdapters(served, 'one', (() => Promise.resolve(1)) as never), TypeError, /Promise/);
    throwsLike(() => io.loadPeftAdapter(served, path.join(tmp, 'one'), { adapterName: 'one' }), RangeError, /already has an adapter 'one'/);
    throwsLike(() => io.loadPeftAdapter(served, path.join(tmp, 'one'), { adapterName: 'x', trainable: true }), RangeError, /'trainable' cannot be true/);
    throwsLike(() => io.loadPeftAdapter(plain, path.join(tmp, 'one'), { adapterName: 'x' }), RangeError, /'q_proj' is an nn\.Linear; with 'adapterName' .*\(nn\.injectMultiLora makes them\)/);
    // a rank above the slots' r in the second layer: nothing is loaded in the first either
    const big = fineTune(seed, path.join(tmp, 'big'), { r: 2, rankPattern: { o_proj: 5 } });
    throwsLike(() => io.loadPeftAdapter(served, path.join(tmp, 'big'), { adapterName: 'big' }), RangeError, /rank 5 .* above the layer's r = 4/);
    const dora = fineTune(seed, path.join(tmp, 'dora'), { r: 2, dora: true });
    throwsLike(() => io.loadPeftAdapter(served, path.join(tmp, 'dora'), { adapterName: 'dora' }), RangeError, /use_dora/);
    assert.is(slots(), was);
    throwsLike(() => nn.injectMultiLora(served, { targetModules: ['q_proj'] }), RangeError, /'q_proj' is already an nn\.MultiLoRALinear/);
    throwsLike(() => nn.injectLora(served, { targetModules: ['q_proj'] }), RangeError, /'q_proj' is already an nn\.MultiLoRALinear/);
    throwsLike(() => nn.injectMultiLora(plain, { targetModules: ['k_proj'] }), RangeError, /no module of the model matches/);
    const seq = new nn.Sequential(new nn.Linear(2, 2), new nn.GELU());
    throwsLike(() => nn.injectMultiLora(seq, { targetModules: '.*' }), TypeError, /'1' matches 'targetModules' but is an GELU; only nn\.Linear layers/);
    assert.ok([...seq.modules()].every((m) => !(m instanceof nn.MultiLoRALinear)));
    seq.dispose();
    throwsLike(() => nn.injectMultiLora(plain, { targetModules: ['q_proj'], r: 0 }), RangeError, /'r' must be a positive integer/);
    assert.ok(plain.q_proj instanceof nn.Linear && plain.q_proj.weight.requiresGrad, 'a failed injectMultiLora leaves the model as it was');
    // the base inside a bank is not a target of its own
    throwsLike(() => nn.injectMultiLora(served, { targetModules: '.*base' }), RangeError, /no module of the model matches/);
    // PEFT's unload(): the bases back in place (merge refused: the slots serve different rows)
    throwsLike(() => nn.unloadLora(served), RangeError, /'q_proj' is an nn\.MultiLoRALinear, whose adapters serve different rows .* pass \{merge: false\}/);
    assert.ok(served.q_proj instanceof nn.MultiLoRALinear && served.o_proj instanceof nn.MultiLoRALinear);
    assert.equal(nn.unloadLora(served, { merge: false }), ['q_proj', 'o_proj']);
    assert.ok(served.q_proj instanceof nn.Linear && served.o_proj instanceof nn.Linear);
    S.tidy(() => assertClose(f64(served.forward(x)), { data: f64(plain.forward(x)), shape: [4, 3, IN] }, [4, 3, IN], DEFAULT_TOL.float64, 'unloaded'));
    for (const m of [one, two, plain, served, big, dora]) m.dispose();
    x.dispose();
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  assertNoLeak(before, 'serving');
});

test('a layer reached by two paths (tied) takes one slot, loaded from either path', () => {
  const before = liveCounts();
  const seed = freshSeed();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'structura-multilora-'));
  const tied = () => {
    const m = new Net(seed);
    m.registerModule('k_proj', m.q_proj); // the same Linear at 'q_proj' and 'k_proj'
    return m;
  };
  try {
    const tuned = tied();
    nn.injectLora(tuned, { targetModules: ['q_proj', 'k_proj'], r: 2, seed });
    S.noGrad(() => nn.init.normal_((tuned.q_proj as unknown as nn.LoRALinear).loraB, 0, 1, { seed }));
    assert.equal(io.savePeftAdapter(tuned, tmp), ['q_proj', 'k_proj']);
    const served = tied();
    assert.equal(nn.injectMultiLora(served, { targetModules: ['q_proj', 'k_proj'], slots: 2, r: 2 }), ['q_proj']);
    assert.ok(served.q_proj === (served as unknown as { k_proj: nn.Module }).k_proj);
    assert.equal(io.loadPeftAdapter(served, tmp, { adapterName: 't' }).loaded, ['q_proj', 'k_proj']);
    assert.equal((served.q_proj as unknown as nn.MultiLoRALinear).adapters, ['t']);
    const x = S.tensor(uniform(rng(seed), 2 * IN), { shape: [2, IN], dtype: 'float64' });
    S.tidy(() => assertClose(f64(nn.useAdapters(served, 't', () => served.forward(x))), { data: f64(tuned.forward(x)), shape: [2, IN] }, [2, IN], DEFAULT_TOL.float64, 'tied'));
    x.dispose();
    tuned.dispose();
    served.dispose();
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  assertNoLeak(before, 'tied');
});

test.run();
