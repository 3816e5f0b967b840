// autograd.test.ts — backward (roots, explicit gradients, accumulation, shared inputs, deep graphs,
// retainGraph), detach, requiresGrad rules, noGrad / enableGrad, hooks, customOp, gradcheck (that it
// passes right gradients and catches wrong ones), and the graph's memory: saved tensors freed after
// backward or when outputs are disposed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as S from '../lib/index';
import type { Tensor } from '../lib/index';
import { throwsLike, liveCounts, assertNoLeak, checkOp, rng, freshSeed } from './helpers';
import * as R from './reference/ops';
import { native } from '../lib/native';

const arr = (t: Tensor | null) => Array.from(t!.dataSync());
const near = (a: number[], b: number[], tol = 1e-5) =>
  assert.ok(a.length === b.length && a.every((v, i) => Math.abs(v - b[i]) <= tol * (1 + Math.abs(b[i]))), `${a} ≉ ${b}`);

function leakFree(name: string, fn: () => void): void {
  test(name, () => {
    const before = liveCounts();
    fn();
    assertNoLeak(before, name);
  });
}

leakFree('backward of a scalar fills leaves’ .grad; y = x² + 3x; shared inputs sum', () => {
  const x = S.tensor([1, -2, 0.5], { requiresGrad: true });
  const y = S.tidy(() => x.mul(x).add(x.mul(3)).sum());
  y.backward();
  near(arr(x.grad), [5, -1, 4]);
  assert.is(x.grad!.dtype, 'float32');
  assert.ok(x.grad!.isLeaf && !x.grad!.requiresGrad);
  x.dispose();
  y.dispose();
});

leakFree('backward with an explicit gradient; a leaf root; errors for roots', () => {
  const x = S.tensor([[1, 2], [3, 4]], { requiresGrad: true });
  const y = x.mul(2);
  const g = S.tensor([[1, 0], [0.5, -1]]);
  y.backward(g);
  near(arr(x.grad), [2, 0, 1, -2]);
  throwsLike(() => y.backward(), RangeError, /'grad' can be left out only for a one-element tensor; this one has shape \[2, 2\]/);
  const g3 = S.ones([3]);
  throwsLike(() => y.backward(g3), RangeError, /'grad' \[3\] must have the tensor's shape \[2, 2\]/);
  const g64 = S.ones([2, 2], { dtype: 'float64' });
  throwsLike(() => y.backward(g64), TypeError, /'grad' is float64 but the tensor is float32/);
  const plain = S.ones([1]);
  throwsLike(() => plain.backward(), TypeError, /does not require grad/);
  // a leaf root: its own gradient, copied (g stays the caller's)
  const leaf = S.tensor([1, 2], { requiresGrad: true });
  const lg = S.tensor([3, 4]);
  leaf.backward(lg);
  near(arr(leaf.grad), [3, 4]);
  assert.ok(leaf.grad !== lg);
  for (const t of [x, y, g, g3, g64, plain, leaf, lg]) t.dispose();
});

leakFree('gradients accumulate across backward calls, in place (the .grad object stays); zeroGrad', () => {
  const x = S.tensor([1, 2], { requiresGrad: true });
  const y1 = S.tidy(() => x.mul(x).sum());
  y1.backward();
  const first = x.grad;
  const y2 = S.tidy(() => x.mul(10).sum());
  y2.backward();
  assert.ok(x.grad === first, 'accumulated into the same tensor');
  near(arr(x.grad), [12, 14]);
  x.zeroGrad();
  assert.is(x.grad, null);
  assert.ok(first!.isDisposed);
  for (const t of [x, y1, y2]) t.dispose();
});

leakFree('a deep chain (5000 ops) does not overflow the stack', () => {
  const x = S.tensor([0.5], { requiresGrad: true });
  const y = S.tidy(() => {
    let h = x;
    for (let i = 0; i < 5000; i++) h = h.mul(1.0001);
    return h.sum();
  });
  y.backward();
  near(arr(x.grad), [1.0001 ** 5000], 1e-4);
  x.dispose();
  y.dispose();
});

leakFree('retainGraph: a second backward needs it; without it the error says so', () => {
  const x = S.tensor([2], { requiresGrad: true });
  const y = S.tidy(() => x.mul(x).sum());
  y.backward(undefined, { retainGraph: true });
  y.backward();
  near(arr(x.grad), [8]);
  assert.throws(() => y.backward(), /already freed by an earlier backward\(\) or grad\(\); pass \{retainGraph: true\}/);
  // a graph that saved nothing can run again
  const z = S.tidy(() => x.add(1).sum());
  z.backward();
  z.backward();
  near(arr(x.grad), [10]);
  for (const t of [x, y, z]) t.dispose();
});

leakFree('detach shares storage and stops gradients; requiresGrad is settable on leaves only', () => {
  const x = S.tensor([1, 2], { requiresGrad: true });
  const d = x.detach();
  assert.not.ok(d.requiresGrad);
  assert.ok(d.isLeaf);
  const y = S.tidy(() => x.mul(d).sum());
  y.backward();
  near(arr(x.grad), [1, 2], 0);
  const m = x.mul(2);
  throwsLike(() => { m.requiresGrad = false; }, TypeError, /can only be set on leaf tensors; this one comes from MulScalar/);
  const i = S.tensor([1], { dtype: 'int32' });
  throwsLike(() => { i.requiresGrad = true; }, TypeError, /only floating tensors can require gradients/);
  const w = S.ones([2]);
  w.requiresGrad = true;
  assert.ok(w.requiresGrad);
  for (const t of [x, d, y, m, i, w]) t.dispose();
});

leakFree('noGrad records nothing; enableGrad inside turns it back on; the mode is restored after a throw', () => {
  const x = S.tensor([1, 2], { requiresGrad: true });
  const y = S.noGrad(() => x.mul(2));
  assert.not.ok(y.requiresGrad);
  assert.is(y.gradFn, null);
  assert.ok(S.isGradEnabled());
  const z = S.noGrad(() => {
    assert.not.ok(S.isGradEnabled());
    return S.enableGrad(() => x.mul(3));
  });
  assert.ok(z.requiresGrad);
  assert.throws(() => S.noGrad(() => { throw new Error('boom'); }), /boom/);
  assert.ok(S.isGradEnabled(), 'restored');
  const prev = S.setGradEnabled(false);
  assert.ok(prev);
  const w = x.mul(4);
  assert.not.ok(w.requiresGrad);
  S.setGradEnabled(true);
  for (const t of [x, y, z, w]) t.dispose();
});

leakFree('hooks: on leaves and intermediate tensors, see the gradient, may replace it, can be removed', () => {
  const x = S.tensor([1, 2, 3], { requiresGrad: true });
  const seen: number[][] = [];
  const h1 = x.registerHook((g) => {
    seen.push(Array.from(g.dataSync()));
  });
  const mid = x.mul(2);
  const h2 = mid.registerHook((g) => g.mul(10)); // replaces the gradient flowing into mid
  const y = S.tidy(() => mid.sum());
  y.backward(undefined, { retainGraph: true });
  near(seen[0], [20, 20, 20]);
  near(arr(x.grad), [20, 20, 20]);
  h2.remove();
  h1.remove();
  x.zeroGrad();
  y.backward();
  near(arr(x.grad), [2, 2, 2]);
  assert.is(seen.length, 1, 'removed hooks are not called');
  const bad = x.registerHook(() => S.ones([2]));
  const y2 = S.tidy(() => x.mul(1).sum());
  throwsLike(() => y2.backward(), TypeError, /a hook on a leaf \[3\] returned \[2\] float32 on cpu; it must return nothing or a gradient \[3\] float32 on cpu/);
  bad.remove();
  const plain = S.ones([2]);
  throwsLike(() => plain.registerHook(() => undefined), TypeError, /cannot register a hook on a tensor that does not require grad/);
  throwsLike(() => x.registerHook(3 as never), TypeError, /'fn' must be a function/);
  {
    const leaf = S.tensor([1, 2], { requiresGrad: true });
    const rm = leaf.registerHook((g) => g.dispose());
    throwsLike(() => S.tidy(() => leaf.mul(3).sum().backward()), TypeError, /a hook on a leaf \[2\] disposed the gradient it was given/);
    rm.remove();
    // backward() inside a hook: the pass runs with grad mode off, which the error now says
    const other = S.tensor([3], { requiresGrad: true });
    const rm2 = leaf.registerHook(() => S.tidy(() => other.mul(2).sum().backward()));
    throwsLike(() => S.tidy(() => leaf.mul(3).sum().backward()), TypeError, /it was made inside a backward pass \(a hook or a customOp's backward\)/);
    rm2.remove();
    S.tidy(() => leaf.mul(3).sum().backward()); // and the next pass runs normally
    other.dispose();
    leaf.zeroGrad();
    leaf.dispose();
  }
  for (const t of [x, mid, y, y2, plain]) t.dispose();
});

const cube = S.customOp({
  name: 'Cube',
  forward(ctx, x: Tensor) {
    ctx.saveForBackward(x);
    const sq = x.mul(x); // an intermediate: disposed when forward returns
    return sq.mul(x);
  },
  backward(ctx, g) {
    const [x] = ctx.saved;
    return g.mul(x.mul(x).mul(3));
  },
});

// Unannotated parameters are Tensors (customOp's default type argument): this must type-check.
const square = S.customOp({
  name: 'Square',
  forward(ctx, x) {
    ctx.saveForBackward(x);
    return x.mul(x);
  },
  backward(ctx, g) {
    return g.mul(ctx.saved[0]).mul(2);
  },
});

leakFree('customOp: forward/backward, saved tensors, gradcheck, intermediates disposed', () => {
  checkOp({ shapes: [[3, 17]], fn: (x) => cube(x), ref: (x) => R.map(x, (v) => v ** 3) });
  checkOp({ shapes: [[5]], fn: (x) => square(x), ref: (x) => R.map(x, (v) => v * v) });
  const x = S.tensor([2], { requiresGrad: true });
  const y = cube(x);
  assert.is(y.gradFn!.name, 'Cube');
  const s = y.sum();
  s.backward();
  near(arr(x.grad), [12]);
  for (const t of [x, y, s]) t.dispose();
});

// A backward may return a saved tensor or one its closure holds (PyTorch allows it): the pass takes its
// own handle, since the node's saved tensors are freed before the gradient reaches the leaf (it once
// threw "a disposed tensor"), and the leaf gets a copy: accumulating into .grad must not write into x.
leakFree('customOp: a backward returning a saved tensor or a tensor of its closure; the leaf gets its own copy', () => {
  const k = S.tensor([5, 6, 7]);
  const f = S.customOp({
    name: 'SavedAsGrad',
    forward(ctx, a: Tensor) {
      ctx.saveForBackward(a);
      return a.mul(2);
    },
    backward(ctx) {
      return ctx.saved[0];
    },
  });
  const g = S.customOp({ name: 'ClosureGrad', forward: (_ctx, a: Tensor) => a.mul(3), backward: () => k });
  const x = S.tensor([1, 2, 3], { requiresGrad: true });
  for (let i = 0; i < 2; i++) S.tidy(() => f(x).sum().backward());
  assert.equal(arr(x.grad), [2, 4, 6], 'x + x, accumulated into .grad');
  assert.equal(arr(x), [1, 2, 3], 'x itself unchanged');
  x.zeroGrad();
  S.tidy(() => g(x).sum().backward());
  S.tidy(() => g(x).sum().backward());
  assert.equal([arr(x.grad), arr(k)], [[10, 12, 14], [5, 6, 7]]);
  const [d] = S.tidy(() => S.grad(f(x).sum(), [x]));
  assert.equal(arr(d!), [1, 2, 3]);
  for (const t of [x, k, d!]) t.dispose();
});

leakFree('customOp: several inputs, non-tensor arguments, needsInputGrad, an input passed through', () => {
  let needs: readonly boolean[] = [];
  const scaledAdd = S.customOp({
    name: 'ScaledAdd',
    forward(ctx, a: Tensor, b: Tensor, k: number) {
      ctx.k = k;
      return a.add(b.mul(k));
    },
    backward(ctx, g) {
      needs = ctx.needsInputGrad;
      return [g, g.mul(ctx.k as number), null];
    },
  });
  const a = S.tensor([1, 2], { requiresGrad: true });
  const b = S.tensor([3, 4]);
  const y = scaledAdd(a, b, 5);
  near(arr(y), [16, 22]);
  const s = y.sum();
  s.backward();
  near(arr(a.grad), [1, 1]);
  assert.equal(needs, [true, false, false]);
  assert.is(b.grad, null);
  const ident = S.customOp({ name: 'Ident', forward: (_ctx, t: Tensor) => t, backward: (_ctx, g) => g });
  const i = ident(a);
  assert.ok(i !== a, 'an input passed through gets its own handle');
  assert.ok(a.isLeaf, 'the input is not touched');
  for (const t of [a, b, y, s, i]) t.dispose();
});

leakFree('customOp: bad specs and bad backward results are descriptive errors', () => {
  throwsLike(() => S.customOp({ name: '', forward: () => null as never, backward: () => null }), TypeError, /'name' must be a non-empty string/);
  throwsLike(() => S.customOp({ name: 'X', forward: 1 as never, backward: () => null }), TypeError, /'forward' of X must be a function/);
  const noOut = S.customOp({ name: 'NoOut', forward: (_c, _t: Tensor) => 3 as never, backward: () => null });
  const x = S.tensor([1, 2], { requiresGrad: true });
  throwsLike(() => noOut(x), TypeError, /structura\.NoOut: forward must return a live Tensor, got number 3/);
  const wrong = S.customOp({ name: 'Wrong', forward: (_c, t: Tensor) => t.mul(2), backward: () => S.ones([3]) });
  const y = wrong(x);
  const s = y.sum();
  throwsLike(() => s.backward(), RangeError, /the backward of Wrong returned a gradient \[3\] float32 for input 0, which is \[2\] float32/);
  // one gradient per forward input: fewer would drop one silently, more would be ignored (PyTorch
  // raises too; extra trailing nulls are fine)
  const b = S.tensor([3, 4], { requiresGrad: true });
  for (const [what, r, re] of [
    ['a bare Tensor', (g: Tensor) => g, /backward returned 1 gradient for 2 inputs/],
    ['too few', (g: Tensor) => [g], /backward returned 1 gradient for 2 inputs/],
    ['too many', (g: Tensor) => [g, g, g], /backward returned 3 gradients for 2 inputs/],
  ] as const) {
    const op = S.customOp({ name: 'Two', forward: (_c, p: Tensor, q: Tensor) => p.add(q), backward: (_c, g) => r(g) });
    S.tidy(() => throwsLike(() => op(x, b).sum().backward(), TypeError, re));
    assert.is(x.grad, null, what);
  }
  // a gradient for an argument that is not a tensor: a TypeError, as PyTorch's
  const scaled = S.customOp({ name: 'Scaled', forward: (_c, p: Tensor, k: number) => p.mul(k), backward: (_c, g) => [g.mul(2), g] });
  S.tidy(() => throwsLike(() => scaled(x, 2).sum().backward(), TypeError, /the backward of Scaled returned a Tensor .* as the gradient of input 1, which is not a tensor; return null there/));
  assert.is(x.grad, null);
  const padded = S.customOp({ name: 'Padded', forward: (_c, p: Tensor, q: Tensor) => p.add(q), backward: (_c, g) => [g, g, null] });
  S.tidy(() => padded(x, b).sum().backward());
  near(arr(b.grad), [1, 1]);
  // a disposed gradient is named as such
  const gone = S.customOp({ name: 'Gone', forward: (_c, t: Tensor) => t.mul(2), backward: (_c, g) => { const d = g.mul(2); d.dispose(); return d; } });
  S.tidy(() => throwsLike(() => gone(x).sum().backward(), TypeError, /the backward of Gone returned a disposed Tensor as the gradient of input 0/));
  for (const t of [x.grad, b.grad, x, y, s, b]) t?.dispose();
});

// Two outputs of one op: p = a·b and s = a + b elementwise; backward gets one gradient per output.
let seenGrads: number[][] = [];
const prodSum = S.customOp({
  name: 'ProdSum',
  forward(ctx, a: Tensor, b: Tensor) {
    ctx.saveForBackward(a, b);
    return [a.mul(b), a.add(b)];
  },
  backward(ctx, gp, gs) {
    seenGrads = [arr(gp), arr(gs)];
    const [a, b] = ctx.saved;
    return [gp.mul(b).add(gs), gp.mul(a).add(gs)];
  },
});

leakFree('customOp with several outputs: one node, one gradient per output, zeros for an unused one, gradcheck', () => {
  const a = S.tensor([1, 2, 3], { requiresGrad: true });
  const b = S.tensor([4, -5, 6], { requiresGrad: true });
  const [p, s] = prodSum(a, b);
  near(arr(p), [4, -10, 18]);
  near(arr(s), [5, -3, 9]);
  assert.ok(p.gradFn !== null && p.gradFn === s.gradFn, 'both outputs come from one node');
  assert.is(p.gradFn!.numOutputs, 2);
  // only p reaches the root: s's gradient is zeros, materialized for the backward
  S.tidy(() => p.mul(S.tensor([1, 2, 3])).sum().backward(undefined, { retainGraph: true }));
  assert.equal(seenGrads, [[1, 2, 3], [0, 0, 0]]);
  near(arr(a.grad), [4, -10, 18]);
  near(arr(b.grad), [1, 4, 9]);
  a.zeroGrad();
  b.zeroGrad();
  // both outputs, and both feeding one consumer: each output's gradient summed in its own slot
  S.tidy(() => p.mul(s).add(s).sum().backward());
  assert.equal(seenGrads, [[5, -3, 9], [5, -9, 19]]);
  near(arr(a.grad), [5 * 4 + 5, -3 * -5 - 9, 9 * 6 + 19]);
  near(arr(b.grad), [5 * 1 + 5, -3 * 2 - 9, 9 * 3 + 19]);
  for (const t of [a, b, p, s]) t.dispose();
  const x = S.tensor([[0.5, -1.2, 2], [0.3, 0.9, -0.4]], { dtype: 'float64', requiresGrad: true });
  const y = S.tensor([[1.5, 0.2, -2], [0.7, -0.9, 1.4]], { dtype: 'float64', requiresGrad: true });
  assert.is(S.gradcheck((u: Tensor, v: Tensor) => { const [q, r] = prodSum(u, v); return q.mul(r).add(q.tanh()); }, [x, y]), true);
  assert.is(S.gradcheck((u: Tensor, v: Tensor) => prodSum(u, v)[1].exp(), [x, y]), true);
  // gradcheck of the outputs themselves, each weighed; a backward that mishandles the second output's
  // gradient is caught there
  assert.is(S.gradcheck((u: Tensor, v: Tensor) => prodSum(u, v), [x, y]), true);
  const sloppy = S.customOp({
    name: 'Sloppy',
    forward: (_c, a: Tensor, b: Tensor) => [a.mul(b), a.add(b)],
    backward: (_c, gp, _gs) => [gp, gp], // drops the sum's gradient and b·, a· factors
  });
  throwsLike(() => S.gradcheck((u: Tensor, v: Tensor) => sloppy(u, v), [x, y]), Error, /the gradient of inputs\[0\] \[2, 3\] is wrong/);
  // integer outputs are left out; a float32 one is a mistake
  const withIndex = (u: Tensor) => [u.tanh(), S.tensor([1, 2], { dtype: 'int32' })];
  assert.is(S.gradcheck(withIndex, [x]), true);
  throwsLike(() => S.gradcheck((u: Tensor) => [u.tanh(), u.cast('float32')], [x]), TypeError, /output 1 of fn is float32; with float64 inputs it must be float64/);
  throwsLike(() => S.gradcheck((_u: Tensor) => [], [x]), TypeError, /fn returned an empty array/);
  // found by review: what fn made inside a wrong result (nested arrays, objects) was left undisposed
  // (the leak check of this test)
  throwsLike(() => S.gradcheck((u: Tensor) => [[u.exp(), u.sin()]] as never, [x]), TypeError, /output is an array of length 2/);
  throwsLike(() => S.gradcheck((u: Tensor) => ({ y: u.exp() }) as never, [x]), TypeError, /output is an object/);
  for (const t of [x, y]) t.dispose();
});

leakFree('customOp with several outputs: hooks per output, an integer output, outputs passed through, memory, errors', () => {
  const a = S.tensor([1, 2], { requiresGrad: true });
  const b = S.tensor([3, 4], { requiresGrad: true });
  const [p, s] = prodSum(a, b);
  const hooked: number[][] = [];
  s.registerHook((g) => {
    hooked.push(arr(g));
    return g.mul(10);
  });
  S.tidy(() => p.add(s).sum().backward(undefined, { retainGraph: true }));
  assert.equal(hooked, [[1, 1]], "s's hook sees s's gradient only");
  assert.equal(seenGrads, [[1, 1], [10, 10]]);
  near(arr(a.grad), [3 + 10, 4 + 10]);
  // a root that is itself the second output
  a.zeroGrad();
  S.tidy(() => s.backward(S.tensor([1, 2])));
  assert.equal(seenGrads, [[0, 0], [10, 20]]);
  for (const t of [a, b, p, s]) t.dispose();

  // values and int32 indices, as a top-k would return: the indices are not differentiable
  const halfAndIndex = S.customOp({
    name: 'HalfAndIndex',
    forward: (_c, t: Tensor) => [t.mul(0.5), S.tensor([0, 1, 2], { dtype: 'int32' })],
    backward: (_c, g, gi) => {
      assert.is(gi.dtype, 'int32');
      assert.equal(arr(gi), [0, 0, 0]);
      return g.mul(0.5);
    },
  });
  const x = S.tensor([2, 4, 6], { requiresGrad: true });
  const [h, idx] = halfAndIndex(x);
  assert.ok(!idx.requiresGrad && idx.isLeaf, 'an integer output has no graph');
  S.tidy(() => h.sum().backward());
  near(arr(x.grad), [0.5, 0.5, 0.5]);
  for (const t of [h, idx]) t.dispose();

  // found by review: a backward handing back the zeros it was given for an unused output (the usual
  // pass-through backward) had them disposed before they reached the input
  const both = S.customOp({
    name: 'Both',
    forward: (_c, p: Tensor, q: Tensor) => [p.mul(1), q.mul(1)],
    backward: (_c, gp, gq) => [gp, gq],
  });
  const pu = S.tensor([1, 2], { requiresGrad: true });
  const pv = S.tensor([3, 4], { requiresGrad: true });
  for (let round = 0; round < 2; round++) { // v without a .grad, then with one
    S.tidy(() => both(pu, pv)[0].sum().backward());
    near(arr(pv.grad), [0, 0]);
  }
  S.tidy(() => both(pu.mul(2), pv.mul(3))[0].sum().backward()); // intermediates as inputs
  near(arr(pu.grad), [4, 4]);
  near(arr(pv.grad), [0, 0]);
  for (const t of [pu, pv]) t.dispose();

  // an input passed through, and one tensor returned twice: each output its own handle
  const twice = S.customOp({
    name: 'Twice',
    forward: (_c, t: Tensor) => {
      const d = t.mul(2);
      return [d, d, t];
    },
    backward: (_c, g0, g1, g2) => g0.mul(2).add(g1.mul(2)).add(g2),
  });
  const outs = twice(x);
  assert.is(outs.length, 3);
  assert.ok(outs[0] !== outs[1] && outs[2] !== x && x.isLeaf);
  x.zeroGrad();
  S.tidy(() => outs[0].add(outs[1]).add(outs[2]).sum().backward(undefined, { retainGraph: true }));
  near(arr(x.grad), [5, 5, 5]);
  outs[0].dispose(); // disposing one output leaves the other's graph intact
  assert.is(outs[1].gradFn!.name, 'Twice');
  x.zeroGrad();
  S.tidy(() => outs[1].sum().backward());
  near(arr(x.grad), [2, 2, 2]);
  for (const t of [outs[1], outs[2], x]) t.dispose();

  // the saved tensors go when the last output is disposed, with no backward run
  const before = liveCounts();
  const u = S.tensor([1, 2], { requiresGrad: true });
  const v = S.tensor([3, 4]);
  const [q, r] = prodSum(u, v);
  q.dispose();
  r.dispose();
  u.dispose();
  v.dispose();
  assertNoLeak(before, 'several outputs disposed without backward');

  const e = S.tensor([1], { requiresGrad: true });
  const empty = S.customOp({ name: 'Empty', forward: (_c, _t: Tensor) => [] as never, backward: () => null });
  throwsLike(() => empty(e), TypeError, /structura\.Empty: forward returned an empty array/);
  const notAll = S.customOp({ name: 'NotAll', forward: (_c, t: Tensor) => [t.mul(2), 7] as never, backward: () => null });
  throwsLike(() => notAll(e), TypeError, /structura\.NotAll: forward must return a live Tensor or an array of them, got number 7 at \[1\]/);
  e.dispose();
});

leakFree('customOp outputs are typed: a tuple destructures to Tensors, a mapped array is Tensor[], one output gets one gradient', () => {
  const many = S.customOp({
    name: 'Many',
    forward: (_c, a: Tensor) => [1, 2, 3].map((k) => a.mul(k)),
    backward: (_c, ...gs) => gs.reduce((x, g, k) => x.add(g.mul(k + 1))),
  });
  const x = S.tensor([1, 2], { requiresGrad: true });
  const outs: Tensor[] = many(x);
  assert.is(outs.length, 3);
  S.tidy(() => outs[0].add(outs[2]).sum().backward());
  near(arr(x.grad), [4, 4]);
  // @ts-expect-error a one-output op's backward gets one gradient
  S.customOp({ name: 'Bad', forward: (_c, a: Tensor) => a.mul(2), backward: (_c, g, h) => g.add(h) });
  for (const t of [x, ...outs]) t.dispose();
});

leakFree('grad(): gradients of leaves and intermediates returned, no .grad touched, only the graph between them run', () => {
  const x = S.tensor([1, 2, 3], { requiresGrad: true });
  const w = S.tensor([0.5, -1, 2], { requiresGrad: true });
  let ranBelow = 0;
  const spy = S.customOp({ name: 'Spy', forward: (_c, t: Tensor) => t.mul(1), backward: (_c, g) => (ranBelow++, g) });
  const sx = spy(x);
  const h = sx.mul(w); // h = x·w
  const eh = h.exp();
  const y = eh.sum();
  // leaves
  const [gx, gw] = S.grad(y, [x, w], { retainGraph: true });
  near(arr(gx), [0.5, -1, 2].map((v, i) => v * Math.exp(v * (i + 1))));
  near(arr(gw), [1, 2, 3].map((v, i) => v * Math.exp(v * [0.5, -1, 2][i])));
  assert.is(x.grad, null, 'no .grad written');
  assert.is(w.grad, null);
  assert.is(ranBelow, 1);
  // an intermediate: the nodes below it do not run
  const gh = S.grad(y, h, { retainGraph: true });
  near(arr(gh), [0.5, -2, 6].map(Math.exp));
  assert.is(ranBelow, 1, 'the graph below h did not run');
  // the output itself, and one input twice: separate tensors
  const gy = S.grad(y, y, { retainGraph: true });
  near(arr(gy), [1]);
  const [a1, a2] = S.grad(y, [w, w], { retainGraph: true });
  assert.ok(a1 !== a2);
  near(arr(a1), arr(a2));
  // a hook holding on to a copy of its gradient: keep()s it (what a hook makes is disposed otherwise)
  let copy: Tensor | null = null, dropped: Tensor | null = null;
  const hc = h.registerHook((g) => {
    copy = S.keep(g.clone());
    dropped = g.clone();
  });
  S.tidy(() => y.backward(undefined, { retainGraph: true }));
  hc.remove();
  near(arr(copy), [0.5, -2, 6].map(Math.exp));
  assert.ok(dropped!.isDisposed, 'a tensor a hook made and did not keep is freed');
  copy!.dispose();
  x.zeroGrad();
  w.zeroGrad();
  // a hook on an intermediate input: its result is the gradient, as in backward()
  const hk = h.registerHook((g) => g.mul(10));
  const gh10 = S.grad(y, h, { retainGraph: true });
  near(arr(gh10), [0.5, -2, 6].map((v) => 10 * Math.exp(v)), 1e-5);
  hk.remove();
  // gradOutput for a non-scalar output; the graph is freed afterwards without retainGraph
  const gv = S.tensor([1, 0, 2]);
  const gx2 = S.grad(h, x, { gradOutput: gv });
  near(arr(gx2), [0.5, 0, 4]);
  throwsLike(() => S.grad(h, x, { gradOutput: gv }), Error, /already freed by an earlier backward/);
  for (const t of [x, w, sx, h, eh, y, gx, gw, gh, gy, a1, a2, gh10, gv, gx2]) t?.dispose();
});

leakFree('grad(): unused inputs, bad arguments, several outputs, and agreement with backward() on random graphs', () => {
  const x = S.tensor([1, 2], { requiresGrad: true });
  const z = S.tensor([3, 4], { requiresGrad: true });
  const c = S.tensor([5, 6]);
  const xx = x.mul(x);
  const y = xx.sum();
  throwsLike(() => S.grad(y, [x, z], { retainGraph: true }), TypeError, /the output does not depend on inputs\[1\] \[2\]; pass \{allowUnused: true\}/);
  const [gx, gz] = S.grad(y, [x, z], { allowUnused: true, retainGraph: true });
  near(arr(gx), [2, 4]);
  assert.is(gz, null);
  throwsLike(() => S.grad(y, c), TypeError, /'inputs' \[2\] does not require grad|inputs \[2\] does not require grad/);
  throwsLike(() => S.grad(y, []), RangeError, /'inputs' is an empty array/);
  throwsLike(() => S.grad(y, 3 as never), TypeError, /'inputs' must be a Tensor or an array of Tensors/);
  S.tidy(() => throwsLike(() => S.grad(x.mul(2), x), RangeError, /'gradOutput' can be left out only for a one-element tensor/));
  S.tidy(() => throwsLike(() => S.grad(y, x, { gradOutput: S.tensor([1, 2]) }), RangeError, /'gradOutput' \[2\] must have the tensor's shape \[\]/));
  throwsLike(() => S.grad(y, x, { retain: true } as never), TypeError, /unknown option 'retain'/);
  // an output of a several-output op as the input
  const [p, s] = prodSum(x, z);
  const ps = p.mul(s);
  const out = ps.sum();
  const [gp, gs] = S.grad(out, [p, s], { retainGraph: true });
  near(arr(gp), arr(s));
  near(arr(gs), arr(p));
  // against backward() on random graphs of leaves and intermediates
  const r = rng(freshSeed());
  for (let it = 0; it < 30; it++) {
    const a = S.tensor([r() - 0.5, r() - 0.5, r() - 0.5], { requiresGrad: true, dtype: 'float64' });
    const b = S.tensor([r() - 0.5, r() - 0.5, r() - 0.5], { requiresGrad: true, dtype: 'float64' });
    S.tidy(() => {
      const pool: Tensor[] = [a, b];
      for (let k = 0; k < 6; k++) {
        const u = pool[Math.floor(r() * pool.length)], v = pool[Math.floor(r() * pool.length)];
        pool.push(r() < 0.4 ? u.mul(v) : r() < 0.7 ? u.add(v.tanh()) : prodSum(u, v)[Math.floor(r() * 2)]);
      }
      const root = pool[pool.length - 1].mul(pool[3]).sum();
      const mid = pool[2 + Math.floor(r() * 4)];
      const got = S.grad(root, [a, b, mid], { retainGraph: true, allowUnused: true });
      // backward() through root and through mid (with got[2] as its gradient) give the same leaves' grads
      root.backward(undefined, { retainGraph: true });
      const want = [a.grad ? arr(a.grad) : [0, 0, 0], b.grad ? arr(b.grad) : [0, 0, 0]];
      want.forEach((wv, i) => near(got[i] ? arr(got[i]) : [0, 0, 0], wv, 1e-12));
      a.zeroGrad();
      b.zeroGrad();
      if (got[2] && mid.gradFn) {
        const viaMid = S.grad(mid, [a, b], { gradOutput: got[2], allowUnused: true, retainGraph: true });
        viaMid.forEach((g) => assert.ok(g === null || g.shape.length === 1));
      }
    });
    a.dispose();
    b.dispose();
  }
  for (const t of [x, z, c, xx, y, gx, p, s, ps, out, gp, gs]) t?.dispose();
});

leakFree('grad(): found by review — pass-through gradients returned alive, captured ones freed on an error, the right output of a several-output op, only the needed gradients computed', () => {
  // a gradient that flows on unchanged (add's backward passes it through) and is summed downstream
  const x = S.tensor([1, 2, 3], { requiresGrad: true });
  const p = x.add(1);
  const p3 = p.mul(3), x5 = x.mul(5), s1 = p3.sum(), s2 = x5.sum();
  const y = s1.add(s2);
  const [gp, gx, gx2] = S.grad(y, [p, x, x], { retainGraph: true });
  assert.ok(!gp!.isDisposed && !gx!.isDisposed && !gx2!.isDisposed, 'every result alive');
  near(arr(gp), [3, 3, 3]);
  near(arr(gx), [8, 8, 8]);
  near(arr(gx2), [8, 8, 8]);
  // an error after some gradients were captured (the graph freed): they are freed (the leak check)
  const h = x.mul(x), hs = h.sum();
  hs.backward();
  x.zeroGrad();
  throwsLike(() => S.grad(hs, [h, x]), Error, /structura\.grad: the graph through Mul was already freed by an earlier backward\(\) or grad\(\)/);
  // an input that is one output of a several-output op: the graph below the other output does not run
  let spied = 0;
  const spy = S.customOp({ name: 'Spy', forward: (_c, t: Tensor) => t.mul(1), backward: (_c, g) => (spied++, g) });
  const [pp, ss] = prodSum(x, p);
  const sp = spy(ss);
  const pps = pp.sum(), sps = sp.sum();
  const root = pps.add(sps);
  const gpp = S.grad(root, pp, { retainGraph: true });
  near(arr(gpp), [1, 1, 1]);
  assert.is(spied, 0, 'Spy lies below the other output');
  // only the needed inputs' gradients: needsInputGrad says so, and hooks elsewhere do not fire
  let needs: readonly boolean[] = [];
  const two = S.customOp({ name: 'Two', forward: (_c, a: Tensor, b: Tensor) => a.mul(b), backward: (c, g) => ((needs = c.needsInputGrad), [g.mul(2), g.mul(3)]) });
  const k = x.sin();
  let hooked = 0;
  k.registerHook(() => void hooked++);
  const t2 = two(p, k);
  const r2 = t2.sum();
  const g2 = S.grad(r2, p, { retainGraph: true });
  assert.equal(needs, [true, false]);
  assert.is(hooked, 0, 'no gradient sent toward k');
  // a kept tensor a hook returns stays the hook's: backward gives the leaf a copy
  let saved: Tensor | null = null;
  const hk = x.registerHook((g) => (saved = S.keep(g.mul(1))));
  S.tidy(() => x.mul(2).sum().backward());
  hk.remove();
  assert.ok(!saved!.isDisposed && x.grad !== saved);
  near(arr(saved), [2, 2, 2]);
  // holes and non-boolean options
  throwsLike(() => S.grad(y, [x, , x] as Tensor[]), TypeError, /'inputs\[1\]' must be a Tensor, got undefined/);
  throwsLike(() => S.grad(y, x, { allowUnused: 1 as never }), TypeError, /'allowUnused' must be a boolean, got number 1/);
  throwsLike(() => y.backward(undefined, { retainGraph: 'yes' as never }), TypeError, /structura\.backward: 'retainGraph' must be a boolean, got string 'yes'/);
  for (const t of [x, p, p3, x5, s1, s2, y, gp, gx, gx2, h, hs, pp, ss, sp, pps, sps, root, gpp, k, t2, r2, g2, saved, x.grad]) t?.dispose();
});

leakFree('grad() of several outputs: their gradients summed, a root feeding another root, a leaf root, errors', () => {
  const x = S.tensor([1, 2], { requiresGrad: true });
  const z = S.tensor([3, -1], { requiresGrad: true });
  const h = x.mul(z); // h feeds e: both are roots, e's gradient reaches h before h runs
  const e = h.exp();
  const gh = S.tensor([1, 2]), ge = S.tensor([0.5, -1]), gz = S.tensor([2, 2]);
  const [gx, gzz] = S.grad([h, e, z], [x, z], { gradOutput: [gh, ge, gz], retainGraph: true });
  // ∂/∂x Σ gh·h + ge·e + gz·z = (gh + ge·e)·z ; ∂/∂z = (gh + ge·e)·x + gz
  const ev = [Math.exp(3), Math.exp(-2)];
  near(arr(gx), [0, 1].map((i) => ([1, 2][i] + [0.5, -1][i] * ev[i]) * [3, -1][i]), 1e-5);
  near(arr(gzz), [0, 1].map((i) => ([1, 2][i] + [0.5, -1][i] * ev[i]) * [1, 2][i] + 2), 1e-5);
  // one-element outputs need no gradOutput; a root given twice counts twice
  const s1 = h.sum();
  const g2 = S.grad([s1, s1], x, { retainGraph: true });
  near(arr(g2), [6, -2]);
  throwsLike(() => S.grad([h, e], x, { gradOutput: [gh] }), RangeError, /'gradOutput' has 1 entries for 2 outputs/);
  throwsLike(() => S.grad(h, x, { gradOutput: [gh] }), TypeError, /'gradOutput' is an array but 'output' is one Tensor/);
  throwsLike(() => S.grad([h, e], x, { gradOutput: [gh, null] }), RangeError, /'gradOutput\[1\]' can be left out only for a one-element tensor/);
  throwsLike(() => S.grad([], x), RangeError, /'output' is an empty array/);
  for (const t of [x, z, h, e, gh, ge, gz, gx, gzz, s1, g2]) t?.dispose();
});

leakFree('a hook or a backward that throws leaves nothing behind; a leaf frozen after the forward gets no .grad', () => {
  const x = S.tensor([1, 2, 3], { requiresGrad: true });
  const boom = S.customOp({
    name: 'Boom',
    forward: (_c, t: Tensor) => t.mul(2),
    backward: (_c, g) => {
      g.mul(2);
      g.add(1); // made, then the backward fails: both must be freed (the leak check of this test)
      throw new Error('boom');
    },
  });
  for (let i = 0; i < 3; i++) S.tidy(() => assert.throws(() => boom(x).sum().backward(), /boom/));
  const h = x.registerHook((g) => {
    g.mul(3);
    throw new Error('hook boom');
  });
  S.tidy(() => assert.throws(() => x.mul(2).sum().backward(), /hook boom/));
  h.remove();
  assert.is(x.grad, null);
  // requiresGrad turned off between forward and backward: PyTorch's AccumulateGrad skips the leaf
  const w = S.tensor([1, 2, 3], { requiresGrad: true });
  S.tidy(() => {
    const z = x.mul(w).sum();
    w.requiresGrad = false;
    z.backward();
  });
  assert.is(w.grad, null);
  near(arr(x.grad), [1, 2, 3]);
  for (const t of [x.grad, x, w]) t?.dispose();
});

leakFree('gradcheck passes right gradients and names the worst element of a wrong one', () => {
  const x = S.tensor([[0.5, -1.2, 2], [0.3, 0.9, -0.4]], { dtype: 'float64', requiresGrad: true });
  // fn leaves its intermediates undisposed: gradcheck cleans up after it (the leak check of this test)
  assert.is(S.gradcheck((t: Tensor) => t.tanh().mul(t).sum(1), [x]), true);
  const almostSquare = S.customOp({
    name: 'AlmostSquare',
    forward: (ctx, t: Tensor) => {
      ctx.saveForBackward(t);
      return t.mul(t);
    },
    // wrong by 1% everywhere, and by 0.5 more at [1, 2]
    backward: (ctx, g) =>
      S.tidy(() => g.mul(ctx.saved[0]).mul(2.02).add(S.tensor([[0, 0, 0], [0, 0, 0.5]], { dtype: 'float64' }))),
  });
  assert.throws(
    () => S.gradcheck((t: Tensor) => almostSquare(t), [x]),
    /structura\.gradcheck: the gradient of inputs\[0\] \[2, 3\] is wrong at element \[1, 2\]: analytical .*, numerical .*; 6 of 6 elements differ/,
  );
  const f32 = S.tensor([1], { requiresGrad: true });
  throwsLike(() => S.gradcheck((t: Tensor) => t.mul(2), [f32]), TypeError, /inputs\[0\] \[1\] is float32; gradcheck needs float64/);
  const nograd = S.tensor([1], { dtype: 'float64' });
  throwsLike(() => S.gradcheck((t: Tensor) => t.mul(2), [nograd]), TypeError, /no input requires grad/);
  throwsLike(() => S.gradcheck((t: Tensor) => t.detach(), [x]), TypeError, /does not depend on any input that requires grad/);
  throwsLike(() => S.gradcheck((t: Tensor) => t, [x], { atol: -1 }), RangeError, /'atol' and 'rtol' must be ≥ 0/);
  throwsLike(() => S.gradcheck((t: Tensor) => t, [x], { eps: 0 }), RangeError, /'eps' must be > 0/);
  throwsLike(() => S.gradcheck((t: Tensor) => t, [x], { seed: 1.5 }), RangeError, /'seed' must be an integer, got 1\.5/);
  // fn returning one of its inputs, or a tensor it captured: gradcheck leaves them alone (it disposed
  // them, so the identity's gradient read as 0, and a captured tensor was gone after the call)
  assert.is(S.gradcheck((t: Tensor) => t, [x]), true);
  const captured = S.tensor([1, 2], { dtype: 'float64' });
  throwsLike(() => S.gradcheck((_t: Tensor) => captured, [x]), TypeError, /does not depend on any input that requires grad/);
  assert.is(captured.isDisposed, false);
  // fn runs on each input's own device (it was given CPU copies: a backward wrong only on a device passed)
  if (S.backend().cudaEmu) {
    const xd = x.to('cuda-emu');
    const seen = new Set<string>();
    assert.is(S.gradcheck((t: Tensor) => (seen.add(t.device), t.mul(t).sum(1)), [xd]), true);
    assert.equal([...seen], ['cuda-emu']);
    // outputs on two devices (their weighted sums meet on the CPU)
    assert.is(S.gradcheck((t: Tensor) => [t.mul(2), t.to('cpu').mul(3)], [xd]), true);
    xd.dispose();
  }
  for (const t of [x, f32, nograd, captured]) t.dispose();
});

// PyTorch's version counter: a tensor the graph saved, written in place before backward(), would give
// the gradient of other values than the forward's (it gave x.grad from the new weight, silently).
leakFree('backward refuses a saved tensor written in place since the forward (an optimizer step, an init); a clone is fine', () => {
  const lin = new S.nn.Linear(2, 1, { seed: 1 });
  const x = S.tensor([[1, 2]], { requiresGrad: true });
  S.tidy(() => {
    // a refused write changes nothing, so it fails no graph (the natives bumped the version first)
    const y0 = lin.forward(x).sum();
    throwsLike(() => native().copyInto(lin.weight._h, S.zeros([3, 3])._h), RangeError, /does not broadcast/);
    throwsLike(() => native().gemm(lin.weight._h, S.zeros([1, 3])._h, S.zeros([3, 3])._h, 1, 0, false, false), RangeError, /shapes do not match/);
    y0.backward();
    lin.zeroGrad();
    x.zeroGrad();
    const y = lin.forward(x).sum();
    S.nn.init.constant_(lin.weight, 5);
    throwsLike(() => y.backward(), Error, /structura\.backward: a tensor \[1, 2\] float32 that Linear saved for its gradient was written in place after the forward \(storage version \d+, \d+ when saved\)/);
  });
  S.tidy(() => {
    const w = S.tensor([3, 4], { requiresGrad: true });
    const opt = new S.optim.SGD([w], { lr: 0.1 });
    const loss = w.mul(w).sum();
    loss.backward(undefined, { retainGraph: true });
    opt.step(); // w written in place: the retained graph's saved w is stale
    throwsLike(() => loss.backward(), Error, /that Mul saved for its gradient was written in place/);
    // the values the graph saved are not the parameter's when a clone goes in
    const c = w.clone();
    const l2 = c.mul(c).sum();
    opt.step();
    l2.backward();
    assert.ok(w.grad !== null);
    opt.zeroGrad();
    w.dispose();
  });
  x.dispose();
  lin.dispose();
});

leakFree('the graph frees its saved tensors after backward, and when outputs are disposed without backward', () => {
  const x = S.randn([64, 64], { requiresGrad: true, seed: 1 });
  const base = liveCounts();
  // forward only, then dispose the outputs: every intermediate and saved tensor goes
  const a = x.exp();
  const b = a.mul(x);
  const c = b.tanh();
  assert.ok(liveCounts().buffers > base.buffers);
  c.dispose();
  b.dispose();
  a.dispose();
  assertNoLeak(base, 'forward without backward');
  // inside tidy, then backward: only x.grad remains once the loss is disposed
  const loss = S.tidy(() => x.exp().mul(x).tanh().sum());
  loss.backward();
  loss.dispose();
  const after = liveCounts();
  assert.is(after.buffers, base.buffers + 1, 'only the new x.grad');
  x.dispose();
});

leakFree('float16 and float64 leaves get gradients of their own dtype', () => {
  for (const dtype of ['float16', 'bfloat16', 'float64'] as const) {
    const x = S.tensor([1, 2], { dtype, requiresGrad: true });
    const y = S.tidy(() => x.mul(x).sum());
    y.backward();
    assert.is(x.grad!.dtype, dtype);
    near(arr(x.grad), [2, 4]);
    x.dispose();
    y.dispose();
  }
});

leakFree('a two-layer MLP: gradients of every parameter through matmul, tanh, mseLoss and crossEntropy', () => {
  const labels = (r: () => number) => [S.tensor(Int32Array.from({ length: 4 }, () => Math.floor(r() * 3)), { shape: [4] })];
  const mlp = (x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor) => S.tidy(() => x.matmul(w1.T).add(b1).tanh().matmul(w2.T));
  const refMlp = (x: R.NDArray, w1: R.NDArray, b1: R.NDArray, w2: R.NDArray) =>
    R.matmul(R.map(R.zip([R.matmul(x, R.permute(w1, [1, 0])), b1], (p, q) => p + q), Math.tanh), R.permute(w2, [1, 0]));
  checkOp({
    shapes: [[4, 5], [6, 5], [6], [3, 6]],
    extra: labels,
    fn: (x, w1, b1, w2, y) => S.tidy(() => S.crossEntropy(mlp(x, w1, b1, w2), y)),
    ref: (x, w1, b1, w2, y) => R.crossEntropy(refMlp(x, w1, b1, w2), y),
    tol: { float32: { atol: 1e-5, rtol: 1e-5 }, float64: { atol: 1e-12, rtol: 1e-11 } },
  });
  checkOp({
    shapes: [[4, 5], [6, 5], [6], [3, 6], [4, 3]],
    fn: (x, w1, b1, w2, t) => S.tidy(() => S.mseLoss(mlp(x, w1, b1, w2), t)),
    ref: (x, w1, b1, w2, t) => R.mse(refMlp(x, w1, b1, w2), t),
    tol: { float32: { atol: 1e-5, rtol: 1e-5 }, float64: { atol: 1e-12, rtol: 1e-11 } },
  });
});

// ---- backward() from several tensors (torch.autograd.backward) ----------------------------------

test('backward([t1, t2], [g1, g2]) accumulates Σ g_i·∂t_i in one pass; shared nodes run once', () => {
  const before = liveCounts();
  S.tidy(() => {
    const r = rng(freshSeed());
    const vals = (n: number) => Float64Array.from({ length: n }, () => r() * 2 - 1);
    const x = S.tensor(vals(12), { shape: [3, 4], dtype: 'float64', requiresGrad: true });
    const w = S.tensor(vals(4), { shape: [4], dtype: 'float64', requiresGrad: true });
    let calls = 0;
    const shared = S.customOp({
      name: 'Counted',
      forward: (_ctx, t: Tensor) => S.mul(t, 2),
      backward: (_ctx, g: Tensor) => {
        calls++;
        return [S.mul(g, 2)];
      },
    });
    const make = () => {
      const h = shared(S.mul(x, w));
      return [S.tanh(h), S.sum(S.square(h), 1)] as const;
    };
    const g1 = S.tensor(vals(12), { shape: [3, 4], dtype: 'float64' });
    const g2 = S.tensor(vals(3), { shape: [3], dtype: 'float64' });
    // the reference: one root, Σ g_i·t_i
    const [a, b] = make();
    S.sum(S.add(S.sum(S.mul(a, g1)), S.sum(S.mul(b, g2)))).backward();
    const gx = x.grad!.clone(), gw = w.grad!.clone();
    x.zeroGrad();
    w.zeroGrad();
    calls = 0;
    const [c, d] = make();
    S.backward([c, d], [g1, g2]);
    assert.is(calls, 1, 'the node both roots share ran once');
    const close = (p: ArrayLike<number>, q: ArrayLike<number>, what: string) => {
      for (let i = 0; i < q.length; i++) assert.ok(Math.abs(p[i] - q[i]) <= 1e-14 * (1 + Math.abs(q[i])), `${what}[${i}]: ${p[i]} vs ${q[i]}`);
    };
    close(x.grad!.dataSync(), gx.dataSync(), 'x.grad');
    close(w.grad!.dataSync(), gw.dataSync(), 'w.grad');
    // one-element roots need no gradient; a leaf may be a root; the same root twice counts twice
    x.zeroGrad();
    w.zeroGrad();
    const s1 = S.sum(S.mul(x, x));
    S.backward([s1, w, s1], [null, S.ones([4], { dtype: 'float64' }), null]);
    close(x.grad!.dataSync(), Array.from(x.dataSync(), (v) => 4 * v), '2·∂Σx²');
    close(w.grad!.dataSync(), [1, 1, 1, 1], 'a leaf root');
    // retainGraph keeps the graph for a second pass
    x.zeroGrad();
    const s2 = S.sum(S.exp(x));
    S.backward([s2], null, { retainGraph: true });
    S.backward([s2]);
    close(x.grad!.dataSync(), Array.from(x.dataSync(), (v) => 2 * Math.exp(v)), 'two passes');
    x.zeroGrad();
    w.zeroGrad();
  });
  assertNoLeak(before, 'backward from several tensors');
});

test('backward(): bad tensors and grads are TypeErrors / RangeErrors naming them', () => {
  S.tidy(() => {
    const x = S.tensor([1, 2, 3], { requiresGrad: true });
    const y = S.mul(x, 2);
    const s = S.sum(y);
    const plain = S.ones([3]);
    throwsLike(() => S.backward([]), RangeError, /backward.*'tensors' is an empty array/);
    throwsLike(() => S.backward([s, 3 as unknown as Tensor]), TypeError, /backward.*'tensors\[1\]'/);
    throwsLike(() => S.backward([s, plain], [null, S.ones([3])]), TypeError, /backward.*'tensors\[1\]' \[3\] does not require grad/);
    throwsLike(() => S.backward([s, y], [null]), RangeError, /'grads' has 1 entries for 2 tensors/);
    throwsLike(() => S.backward([s, y], S.ones([3])), TypeError, /'grads' must be an array of one gradient \(or null\) per tensor/);
    throwsLike(() => S.backward([s, y], [null, S.ones([4])]), RangeError, /'grads\[1\]' \[4\] must have the tensor's shape \[3\]/);
    throwsLike(() => S.backward([s, y]), RangeError, /'grads\[1\]' can be left out only for a one-element tensor/);
    throwsLike(() => S.backward(s, [S.ones([])]), TypeError, /'grad' is an array but the tensor is one Tensor/);
    throwsLike(() => S.backward([s], null, { retainGraph: 1 as unknown as boolean }), TypeError, /'retainGraph' must be a boolean/);
    assert.is(x.grad, null, 'nothing ran');
  });
});

test('GradNode.nextFunctions: [node, output index] per input, as PyTorch; [null, 0] for leaves and inputs without grad', () => {
  S.tidy(() => {
    const x = S.tensor([1, 2, 3], { requiresGrad: true });
    const split = S.customOp({
      name: 'Split',
      forward: (_ctx, t: Tensor) => [S.mul(t, 2), S.mul(t, 3)] as [Tensor, Tensor],
      backward: (_ctx, g1: Tensor, g2: Tensor) => [S.add(S.mul(g1, 2), S.mul(g2, 3))],
    });
    const [a, b] = split(x);
    const y = S.mul(b, S.ones([3]));
    const z = S.add(a, y);
    const [m0, m1] = z.gradFn!.nextFunctions;
    assert.is(m0[0], a.gradFn);
    assert.is(m0[1], 0);
    assert.is(m1[0], y.gradFn);
    const [fromB, fromOnes] = y.gradFn!.nextFunctions;
    assert.equal([fromB[0]?.name, fromB[1]], ['Split', 1], 'the second output of Split');
    assert.equal(fromOnes, [null, 0], 'an input without grad');
    assert.equal(a.gradFn!.nextFunctions, [[null, 0]], 'a leaf');
  });
});

test.run();
