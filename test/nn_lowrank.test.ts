// nn_lowrank.test.ts — nn.LowRankLinear (forward, rank prefix, truncate) and nn.LoRALinear (PEFT init,
// scale α/r and rsLoRA α/√r, forward against the float64 reference, DoRA with the detached norm,
// merge()/unmerge() exact to rounding, which parameters get gradients), with leak checks; and
// LoRALinear training on the devices as on the CPU.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as S from '../lib/index';
import type { Tensor } from '../lib/index';
import * as R from './reference/lowrank';
import { native } from '../lib/native';
import { liveCounts, assertNoLeak, toND, assertClose, freshSeed } from './helpers';

const { nn } = S;
const F64 = { atol: 1e-12, rtol: 1e-11 };

test('LowRankLinear: forward, rank prefix, truncate(k)', () => {
  const before = liveCounts();
  const seed = freshSeed();
  const layer = new nn.LowRankLinear(9, 7, 5, { dtype: 'float64', seed });
  const x = S.randn([2, 3, 9], { seed: seed + 10, dtype: 'float64' });
  assert.equal(layer.A.shape, [5, 9]);
  assert.equal(layer.B.shape, [7, 5]);
  assert.is(layer.parameters().length, 3);
  const y = layer.forward(x);
  assertClose(y.dataSync(), R.linear(toND(x), toND(layer.A), toND(layer.B), toND(layer.bias!)), y.shape, F64, `[seed ${seed}] forward`);
  const y3 = layer.forward(x, { rank: 3 });
  assertClose(y3.dataSync(), R.linear(toND(x), toND(layer.A), toND(layer.B), toND(layer.bias!), 3), y3.shape, F64, `[seed ${seed}] rank 3`);
  layer.truncate(3);
  assert.is(layer.rank, 3);
  assert.equal(layer.B.shape, [7, 3]);
  const yt = layer.forward(x);
  assertClose(yt.dataSync(), toND(y3), yt.shape, F64, 'truncate(3) equals the rank-3 prefix');
  assert.throws(() => layer.truncate(4), /'k' must be an integer in \[1, 3\]/);
  // gradients reach A, B and bias
  const l = S.tidy(() => layer.forward(x).sum());
  l.backward();
  for (const p of layer.parameters()) assert.ok(p.grad, 'every parameter gets a gradient');
  for (const t of [x, y, y3, yt, l]) t.dispose();
  layer.dispose();
  assertNoLeak(before, 'LowRankLinear');
});

function denseRef(x: Tensor, W: Float64Array, out: number, inF: number, b: Tensor | null, rowScale?: ArrayLike<number>) {
  const xd = x.dataSync();
  const M = x.size / inF;
  const y = new Float64Array(M * out);
  const bd = b?.dataSync();
  for (let m = 0; m < M; m++)
    for (let j = 0; j < out; j++) {
      let s = 0;
      for (let c = 0; c < inF; c++) s += xd[m * inF + c] * W[j * inF + c];
      y[m * out + j] = (rowScale ? rowScale[j] : 1) * s + (bd ? bd[j] : 0);
    }
  return { data: y, shape: [...x.shape.slice(0, -1), out] };
}

for (const rslora of [false, true]) {
  test(`LoRALinear (rslora ${rslora}): PEFT init, scale, forward, gradients, merge/unmerge`, () => {
    const before = liveCounts();
    const seed = freshSeed();
    const base = new nn.Linear(11, 6, { dtype: 'float64', seed });
    const lora = new nn.LoRALinear(base, { r: 4, alpha: 8, rslora, seed: seed + 1 });
    assert.is(lora.scale, rslora ? 8 / 2 : 8 / 4);
    assert.equal(lora.loraA.shape, [4, 11]);
    assert.equal(lora.loraB.shape, [6, 4]);
    assert.ok(Array.from(lora.loraB.dataSync()).every((v) => v === 0), 'B starts at zero');
    const bound = 1 / Math.sqrt(11);
    assert.ok(Array.from(lora.loraA.dataSync()).every((v) => Math.abs(v) <= bound), 'A is kaiming-uniform(a=√5)');
    assert.is(base.weight.requiresGrad, false);
    const x = S.randn([5, 11], { seed: seed + 2, dtype: 'float64' });
    const y0 = lora.forward(x);
    const yb = base.forward(x);
    assertClose(y0.dataSync(), toND(yb), y0.shape, F64, 'B = 0: the base output');
    // give B values, then compare with W + scale·B·A
    S.noGrad(() => S.tidy(() => {
      const b = S.randn([6, 4], { seed: seed + 3, dtype: 'float64' });
      lora.loadStateDict({ ...lora.stateDict(), loraB: b });
    }));
    const y = lora.forward(x);
    const ref = R.lora(toND(x), toND(base.weight), toND(lora.loraA), toND(lora.loraB), lora.scale, toND(base.bias!));
    assertClose(y.dataSync(), ref, y.shape, F64, `[seed ${seed}] forward`);
    const l = S.tidy(() => lora.forward(x).square().sum());
    l.backward();
    assert.ok(lora.loraA.grad && lora.loraB.grad);
    assert.is(base.weight.grad, null);
    // merge: the base layer alone gives the same output; unmerge restores W to rounding
    const W0 = Float64Array.from(base.weight.dataSync());
    lora.merge();
    assert.ok(lora.merged);
    const ym = lora.forward(x);
    assertClose(ym.dataSync(), ref, ym.shape, F64, 'merged forward');
    lora.unmerge();
    const W1 = base.weight.dataSync();
    W0.forEach((v, i) => assert.ok(Math.abs(W1[i] - v) <= 1e-14 * (1 + Math.abs(v)), `W[${i}] ${W1[i]} vs ${v}`));
    for (const t of [x, y0, yb, y, l, ym]) t.dispose();
    lora.dispose();
    assertNoLeak(before, 'LoRALinear');
  });
}

test('LoRALinear with DoRA: magnitude init, forward with the detached norm, gradients, merge/unmerge', () => {
  const before = liveCounts();
  const seed = freshSeed();
  const base = new nn.Linear(7, 5, { dtype: 'float64', seed });
  const lora = new nn.LoRALinear(base, { r: 3, alpha: 6, dora: true, seed: seed + 1 });
  const W = base.weight.dataSync();
  const mag = lora.magnitude!.dataSync();
  for (let j = 0; j < 5; j++) {
    let s = 0;
    for (let c = 0; c < 7; c++) s += W[j * 7 + c] ** 2;
    assert.ok(Math.abs(mag[j] - Math.sqrt(s)) < 1e-12, 'magnitude = ‖W‖ per row');
  }
  S.noGrad(() => S.tidy(() => {
    lora.loadStateDict({ ...lora.stateDict(), loraB: S.randn([5, 3], { seed: seed + 3, dtype: 'float64' }), magnitude: S.rand([5], { seed: seed + 4, dtype: 'float64' }).add(0.5) });
  }));
  const x = S.randn([4, 7], { seed: seed + 2, dtype: 'float64' });
  const Wd = R.densify(toND(lora.loraA), toND(lora.loraB), 3, lora.scale);
  const Wt = base.weight.dataSync();
  for (let i = 0; i < Wd.length; i++) Wd[i] += Wt[i];
  const m = lora.magnitude!.dataSync();
  const f = Array.from({ length: 5 }, (_, j) => {
    let s = 0;
    for (let c = 0; c < 7; c++) s += Wd[j * 7 + c] ** 2;
    return m[j] / Math.sqrt(s);
  });
  const ref = denseRef(x, Wd, 5, 7, base.bias, f);
  const y = lora.forward(x);
  assertClose(y.dataSync(), ref, y.shape, F64, `[seed ${seed}] DoRA forward`);
  // with the norm detached, d/dm of Σ y = Σ_rows (x·(W + sBA)ᵀ)_j / ‖·‖_j
  const l = S.tidy(() => lora.forward(x).sum());
  l.backward();
  const gm = lora.magnitude!.grad!.dataSync();
  const z = denseRef(x, Wd, 5, 7, null);
  for (let j = 0; j < 5; j++) {
    let s = 0;
    for (let r = 0; r < 4; r++) s += z.data[r * 5 + j];
    assert.ok(Math.abs(gm[j] - (s * f[j]) / m[j]) < 1e-10, `dm[${j}] ${gm[j]} vs ${(s * f[j]) / m[j]}`);
  }
  assert.ok(lora.loraA.grad && lora.loraB.grad);
  assert.is(base.weight.grad, null);
  const W0 = Float64Array.from(base.weight.dataSync());
  lora.merge();
  const ym = lora.forward(x);
  assertClose(ym.dataSync(), ref, ym.shape, F64, 'DoRA merged forward');
  lora.unmerge();
  const W1 = base.weight.dataSync();
  W0.forEach((v, i) => assert.ok(Math.abs(W1[i] - v) <= 1e-13 * (1 + Math.abs(v)), `W[${i}] ${W1[i]} vs ${v}`));
  for (const t of [x, y, l, ym]) t.dispose();
  lora.dispose();
  assertNoLeak(before, 'DoRA');
});

// On a device (the emulated 'cuda-emu', and 'cuda' when present) the layers run the device ops
// (lowrank.lora, matmul, the elementwise and reduction kernels, AdamW's updates) and must train as on
// the CPU: 3 AdamW steps, then forward, merge() and unmerge(). float32 sums of ≤ 24 products of
// values ≲ 1, in another order: their rounding is relative to the terms, not to the result, so an
// output that cancels to near 0 keeps the absolute error of the others (seed 910087087: output 32 is
// −0.0096 and 1.3e−6 apart). 1e-5 of the largest output (plus 1e-6) bounds the difference.
// AdamW runs with eps = 1e-3: its first update of a parameter (B at step 1, A at step 2, whose gradient
// is 0 while B is) moves it by lr·g/(|g| + eps), whose slope lr·eps/(|g| + eps)² turns a gradient
// difference Δg into a step difference of up to lr·Δg/eps — 5e6·Δg with the default eps 1e-8 — and a
// gradient element that cancels to ~1e−7 differs by ~1e−8 between the CPU's and the device's summation
// orders (both within float32 rounding of its terms): 0.75% of seeds failed so (seed 55965118: B[78]
// 0.048603 against 0.048636 after step 1). With eps 1e-3 the gain is at most 50, and B's gradients
// (~1e−2 to 1e−1) stay well above eps, so the steps still depend on them.
const devices = [...(S.backend().cudaEmu ? ['cuda-emu'] : []), ...(S.backend().cuda ? ['cuda'] : [])];
for (const dev of devices)
  test(`LoRALinear (with and without DoRA) trains on ${dev} as on the CPU; merge/unmerge there`, () => {
    const seed = freshSeed();
    const run = (d: string, dora: boolean) => {
      const base = new nn.Linear(24, 20, { device: d, seed });
      const m = new nn.LoRALinear(base, { r: 4, alpha: 8, dora, seed: seed + 1 });
      const x = S.randn([6, 24], { seed: seed + 2 }).to(d);
      const opt = new S.optim.AdamW(m.parameters().filter((p: Tensor) => p.requiresGrad), { lr: 0.05, eps: 1e-3 });
      for (let i = 0; i < 3; i++) {
        opt.zeroGrad();
        const y = m.forward(x);
        const loss = S.mean(S.mul(y, y));
        loss.backward();
        opt.step();
        S.dispose([y, loss]);
      }
      const read = () => {
        const y = m.forward(x);
        const h = y.to('cpu');
        const v = Float64Array.from(h.dataSync());
        S.dispose([y, h]);
        return v;
      };
      const y1 = read();
      m.merge();
      const y2 = read();
      m.unmerge();
      const y3 = read();
      assert.is(m.loraA.device, d);
      return { y1, y2, y3 };
    };
    for (const dora of [false, true]) {
      const cpu = run('cpu', dora), got = run(dev, dora);
      const what = `[seed ${seed}] dora=${dora}`;
      const scale = cpu.y1.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
      for (let i = 0; i < cpu.y1.length; i++) {
        const tol = 1e-5 * scale + 1e-6;
        assert.ok(Math.abs(got.y1[i] - cpu.y1[i]) <= tol, `${what}: output ${i} is ${got.y1[i]} on ${dev}, ${cpu.y1[i]} on the CPU`);
        assert.ok(Math.abs(got.y2[i] - got.y1[i]) <= tol, `${what}: merged output ${i} on ${dev} differs: ${got.y2[i]} vs ${got.y1[i]}`);
        assert.ok(Math.abs(got.y3[i] - got.y1[i]) <= tol, `${what}: unmerged output ${i} on ${dev} differs: ${got.y3[i]} vs ${got.y1[i]}`);
      }
    }
  });

test('LoRALinear over a 16-bit base: float32 adapters (PEFT\'s autocast_adapter_dtype), cast for the fused kernel, merges in float32', () => {
  const before = liveCounts();
  const seed = freshSeed();
  for (const dtype of ['bfloat16', 'float16'] as const)
    for (const dora of [false, true])
      S.tidy(() => {
        const base = new nn.Linear(9, 7, { dtype, seed });
        const layer = new nn.LoRALinear(base, { r: 3, alpha: 6, dora, seed: seed + 1 });
        assert.is(layer.adapterDtype, 'float32');
        assert.equal([layer.loraA.dtype, layer.loraB.dtype, layer.magnitude?.dtype ?? 'float32'], ['float32', 'float32', 'float32']);
        S.nn.init.uniform_(layer.loraB, -0.5, 0.5, { seed: seed + 2 });
        const x = S.randn([4, 9], { seed: seed + 3, dtype });
        const W = base.weight;
        // what the fused kernel computes with the adapters cast to the base's dtype, leaves of their own
        const A16 = layer.loraA.detach().cast(dtype), B16 = layer.loraB.detach().cast(dtype);
        A16.requiresGrad = true;
        B16.requiresGrad = true;
        let want: Tensor;
        if (!dora) want = S.lowrank.lora(x, W, A16, B16, { scale: layer.scale, bias: base.bias });
        else {
          const W32 = W.cast('float32');
          const Wd = S.add(W32, S.mul(S.matmul(layer.loraB.detach(), layer.loraA.detach()), layer.scale));
          const f = S.div(layer.magnitude!.detach(), S.sqrt(S.sum(S.mul(Wd, Wd), 1))).cast(dtype);
          want = S.add(S.mul(S.lowrank.lora(x, W, A16, B16, { scale: layer.scale }), f), base.bias!);
        }
        const y = layer.forward(x);
        assert.is(y.dtype, dtype);
        assert.equal(Array.from(y.dataSync()), Array.from(want.dataSync()), `${dtype} dora=${dora}: forward`);
        // the gradients come back to the float32 parameters: the 16-bit ones, widened
        S.sum(y).backward();
        S.sum(want).backward();
        assert.is(layer.loraA.grad!.dtype, 'float32');
        assert.equal(Array.from(layer.loraA.grad!.dataSync()), Array.from(A16.grad!.cast('float32').dataSync()), `${dtype} dora=${dora}: dA`);
        layer.zeroGrad();
        // merge: W + scale·B·A computed in float32 and rounded once to the base's dtype
        if (!dora) {
          const expectMerged = S.add(W.cast('float32'), S.mul(S.matmul(layer.loraB, layer.loraA), layer.scale)).cast(dtype).dataSync();
          layer.merge();
          assert.equal(Array.from(W.dataSync()), Array.from(expectMerged), `${dtype}: merged weight`);
          layer.unmerge();
        }
        layer.dispose();
      });
  // adapterDtype keeps 16-bit adapters when asked; a bad one is a TypeError
  const base = new nn.Linear(5, 4, { dtype: 'bfloat16' });
  const l16 = new nn.LoRALinear(base, { r: 2, adapterDtype: 'bfloat16' });
  assert.equal([l16.loraA.dtype, l16.loraB.dtype], ['bfloat16', 'bfloat16']);
  let err: unknown;
  try {
    new nn.LoRALinear(base, { r: 2, adapterDtype: 'int32' });
  } catch (e) {
    err = e;
  }
  assert.instance(err, TypeError);
  assert.match((err as Error).message, /nn\.LoRALinear/);
  l16.dispose();
  assertNoLeak(before, 'LoRALinear over a 16-bit base');
});

test('LoRALinear over a 16-bit base, inference: the cast adapters are kept while unchanged, made again after any write', () => {
  const before = liveCounts();
  const seed = freshSeed();
  S.tidy(() => {
    const base = new nn.Linear(9, 7, { dtype: 'bfloat16', seed });
    const layer = new nn.LoRALinear(base, { r: 3, seed: seed + 1 });
    S.nn.init.uniform_(layer.loraB, -0.5, 0.5, { seed: seed + 2 });
    layer.loraA.requiresGrad = false;
    layer.loraB.requiresGrad = false;
    layer.eval();
    const x = S.randn([2, 9], { seed: seed + 3, dtype: 'bfloat16' });
    const fresh = () => S.lowrank.lora(x, base.weight, layer.loraA.cast('bfloat16'), layer.loraB.cast('bfloat16'), { scale: layer.scale, bias: base.bias }).dataSync();
    const run = () => S.tidy(() => Array.from(layer.forward(x).dataSync()));
    const y1 = run();
    const live = S.memory().numTensors;
    assert.equal(run(), y1, 'the same result from the kept casts');
    assert.is(S.memory().numTensors, live, 'no new tensors kept by a second call');
    assert.equal(y1, Array.from(fresh()));
    // writes in place (an init, an out= op, copyInto) are seen
    S.nn.init.uniform_(layer.loraB, -0.5, 0.5, { seed: seed + 4 });
    const y2 = run();
    assert.not.equal(y2, y1);
    assert.equal(y2, Array.from(fresh()), 'after init');
    native().unary('mul_scalar', layer.loraA._h, 2, undefined, layer.loraA._h);
    assert.equal(run(), Array.from(fresh()), 'after an out= op');
    // a parameter reassigned, and gradients wanted: fresh casts
    const oldA = layer.loraA;
    layer.loraA = S.zeros([3, 9]);
    oldA.dispose();
    assert.equal(run(), Array.from(fresh()), 'after reassigning loraA');
    layer.loraA.requiresGrad = true;
    const y = layer.forward(x);
    S.sum(y).backward();
    assert.ok(layer.loraA.grad !== null, 'the gradient reached loraA');
    layer.dispose();
  });
  assertNoLeak(before, 'cast cache');
});

test('a model disposes its LoRALinear layers through their own dispose(): merge norms and kept casts too', () => {
  const before = liveCounts();
  const seed = freshSeed();
  const a = new nn.LoRALinear(new nn.Linear(6, 5, { dtype: 'bfloat16', seed }), { r: 2, dora: true, seed });
  const b = new nn.LoRALinear(new nn.Linear(5, 4, { dtype: 'bfloat16', seed: seed + 1 }), { r: 2, seed });
  const model = new nn.Module();
  model.registerModule('a', a);
  model.registerModule('b', b);
  model.registerModule('tied', a); // reachable twice: disposed once
  model.eval();
  for (const p of model.parameters()) p.requiresGrad = false;
  S.tidy(() => {
    b.forward(a.forward(S.randn([3, 6], { seed, dtype: 'bfloat16' }))); // keeps casts and DoRA's norm
  });
  a.merge(); // keeps the DoRA norms merge() used
  model.dispose();
  assertNoLeak(before, 'model.dispose()');
});

test.run();
