// conformance/lowrank_family.ts — the rest of the lowrank family on a device: loraBatched, loraMixture,
// sparsePlusLowRank (forward per dtype, gradients), svd and bad input. Registered next to
// registerLowrank (conformance/lowrank.ts) by test/lowrank_devices.test.ts and test/gpu/lowrank.test.ts.
//
// Forward: seeded inputs rounded to the dtype, the op on the device into a NaN-poisoned block, every
// element against the float64 reference of those inputs. The device computes (u = 2⁻²⁴, u_dt = 2⁻¹¹ /
// 2⁻⁸): T[m, c] = round_dt(scale·g·(x·Aᵀ)) with float32 dot products (sparsePlusLowRank: T = round_dt(x·Aᵀ)),
// then y = round_dt(float32 sum of x·Wᵀ (or bias and the S·x terms) and T·Bᵀ), any order. Per element
//   float32:       |y − ref| ≤ n·u·Sabs
//   float16/bf16:  |y − ref| ≤ u_dt·|ref| + u_dt·(1 + u_dt)·L + t·Σ_c|B_c| + n·u·Sabs·(1 + u_dt)² + tiny
// with n = in + R + 4 (R = rank of the adapters side by side: used ids·r for batched, E·r for the mixture;
// sparsePlusLowRank n = in + r + nnz of the row + 4), Sabs the same sum over absolute values of every
// product, L = Σ_c |scale·g·(x·Aᵀ)_c·B_c| (exact T: |round(a) − a| ≤ u_dt·|a|, the float32 error of a
// lies in Sabs), t = 2⁻²⁵ the absolute rounding of a float16 subnormal T (0 otherwise) and tiny = 2⁻²⁴
// for a float16 subnormal y. Over an output of ≥ 64 elements ‖y − ref‖ ≤ 2·‖ref_dt − ref‖ (DESIGN §5),
// ref_dt the unfused op in the dtype (each matmul, scaling and sum rounded).
// Gradients (float32, small): device and CPU each lie within γ_n·|grad| of the exact gradient, where
// |grad| is the same backward run in float64 on |inputs| (every gradient is a sum of products of the
// inputs, so that is the sum of their magnitudes) and n bounds the chain of float32 sums.
import * as assert from 'uvu/assert';
import * as S from '../../lib/index';
import type { Tensor } from '../../lib/index';
import { roundTo } from '../reference/core';
import { rng, throwsLike, seededTests } from '../helpers';
import { native } from '../../lib/native';

type Test = (name: string, fn: () => void | Promise<void>) => void;
type DT = 'float32' | 'float16' | 'bfloat16';
const U: Record<DT, number> = { float32: 2 ** -24, float16: 2 ** -11, bfloat16: 2 ** -8 };
const TINY: Record<DT, number> = { float32: 0, float16: 2 ** -24, bfloat16: 0 };
const TINY_T: Record<DT, number> = { float32: 0, float16: 2 ** -25, bfloat16: 0 };
const u32 = 2 ** -24;

function onDevice(v: ArrayLike<number>, shape: number[], dt: DT | 'float64' | 'int32', dev: string): Tensor {
  const c = dt === 'int32' ? S.tensor(Int32Array.from(v), { shape, dtype: 'int32' }) : S.tensor(Float64Array.from(v), { shape, dtype: 'float64' });
  const h = dt === 'int32' || dt === 'float64' ? c : c.cast(dt);
  const t = h.to(dev);
  if (h !== c) h.dispose();
  c.dispose();
  return t;
}

function values(r: () => number, len: number, dt: DT, amp = 1): Float64Array {
  const v = new Float64Array(len);
  for (let i = 0; i < len; i++) v[i] = roundTo(dt, amp * (2 * r() - 1));
  return v;
}

/** The reference of one output with its error scales (see the header). */
interface Ref { ref: Float64Array; sabs: Float64Array; low: Float64Array; lowB: Float64Array; n: Float64Array; refDt: Float64Array }
function newRef(len: number): Ref {
  const f = () => new Float64Array(len);
  return { ref: f(), sabs: f(), low: f(), lowB: f(), n: f(), refDt: f() };
}

function checkOutput(what: string, y: Tensor, shape: number[], dt: DT, R: Ref): void {
  assert.equal(y.shape, shape, `${what}: shape`);
  assert.is(y.dtype, dt, `${what}: dtype`);
  const host = y.to('cpu');
  const got = host.dataSync();
  host.dispose();
  const u = U[dt];
  let num = 0, refErr = 0;
  for (let e = 0; e < got.length; e++) {
    const g = Number(got[e]), want = R.ref[e], acc = R.n[e] * u32 * R.sabs[e];
    const bound = dt === 'float32' ? acc : u * Math.abs(want) + u * (1 + u) * R.low[e] + TINY_T[dt] * R.lowB[e] + acc * (1 + u) ** 2 + TINY[dt];
    const err = Math.abs(g - want);
    if (!(err <= bound)) assert.unreachable(`${what}: element ${e} is ${g}, reference ${want}, error ${err.toExponential(3)} > bound ${bound.toExponential(3)}`);
    num += err * err;
    refErr += (R.refDt[e] - want) ** 2;
  }
  // a norm over few elements says nothing: the per-element bound above is the check there
  if (dt !== 'float32' && got.length >= 64)
    assert.ok(Math.sqrt(num) <= 2 * Math.sqrt(refErr), `${what}: ‖y − ref‖ = ${Math.sqrt(num).toExponential(3)} > 2·‖ref_${dt} − ref‖ = ${(2 * Math.sqrt(refErr)).toExponential(3)}`);
}

// ---------------------------------------------------------------------------------------------
// loraBatched / loraMixture

export interface AdapterCase {
  m: number;
  k: number; // in
  n: number; // out
  r: number;
  E: number;
  scale: number;
  /** batched: explicit ids, 'random' (−1 first, repeats, adapter 1 unused when E > 2; M = 1: adapter E − 1) or 'none' (all −1). */
  ids?: number[] | 'random' | 'none';
  bias?: boolean;
}

function makeIds(r: () => number, c: AdapterCase): number[] {
  if (Array.isArray(c.ids)) return c.ids;
  const ids: number[] = [];
  for (let i = 0; i < c.m; i++) {
    let v = c.ids === 'none' ? -1 : Math.floor(r() * (c.E + 1)) - 1;
    if (c.E > 2 && v === 1) v = 0;
    ids.push(v);
  }
  if (c.m > 1) ids[0] = -1;
  else if (c.ids === 'random') ids[0] = c.E - 1; // a single row uses an adapter
  return ids;
}

/** Gates in [−1, 1] with about a quarter zeros, adapter 1 gated off (E > 2) and row 1 all zero (M > 2). */
function makeGates(r: () => number, c: AdapterCase, dt: DT): Float64Array {
  const g = values(r, c.m * c.E, dt);
  for (let i = 0; i < g.length; i++) if (r() < 0.25) g[i] = 0;
  for (let m = 0; m < c.m; m++) if (c.E > 2) g[m * c.E + 1] = 0;
  if (c.m > 2) for (let e = 0; e < c.E; e++) g[c.E + e] = 0;
  return g;
}

export function checkAdapters(dev: string, dt: DT, kind: 'batched' | 'mixture', c: AdapterCase, seed: number): void {
  const r = rng(seed);
  const { m: M, k: K, n: N, r: rk, E, scale } = c;
  const x = values(r, M * K, dt), W = values(r, N * K, dt), A = values(r, E * rk * K, dt), B = values(r, E * N * rk, dt);
  const ids = kind === 'batched' ? makeIds(r, c) : [];
  const gates = kind === 'mixture' ? makeGates(r, c, dt) : new Float64Array(0);
  const gate = (i: number, e: number) => (kind === 'mixture' ? gates[i * E + e] : ids[i] === e ? 1 : 0);
  const bias = c.bias ? values(r, N, dt) : null;
  const Rtot = kind === 'mixture' ? E * rk : new Set(ids.filter((v) => v >= 0)).size * rk;
  const rd = (v: number) => roundTo(dt, v);
  const R = newRef(M * N);
  R.n.fill(K + Rtot + 4);
  const T = new Float64Array(E * rk), Tabs = new Float64Array(E * rk);
  for (let i = 0; i < M; i++) {
    for (let e = 0; e < E; e++)
      for (let j = 0; j < rk; j++) {
        let s = 0, sa = 0;
        if (gate(i, e) !== 0)
          for (let p = 0; p < K; p++) {
            const t = x[i * K + p] * A[(e * rk + j) * K + p];
            s += t;
            sa += Math.abs(t);
          }
        T[e * rk + j] = s;
        Tabs[e * rk + j] = sa;
      }
    for (let o = 0; o < N; o++) {
      let d = 0, da = 0;
      for (let p = 0; p < K; p++) {
        const t = x[i * K + p] * W[o * K + p];
        d += t;
        da += Math.abs(t);
      }
      const el = i * N + o;
      let low = 0, sab = da, L = 0, LB = 0, dtAcc = rd(d);
      for (let e = 0; e < E; e++) {
        const g = gate(i, e);
        if (g === 0) continue;
        let l = 0, la = 0, lh = 0, lb = 0;
        for (let j = 0; j < rk; j++) {
          const b = B[(e * N + o) * rk + j];
          l += T[e * rk + j] * b;
          la += Tabs[e * rk + j] * Math.abs(b);
          L += Math.abs(scale * g * T[e * rk + j] * b);
          lh += rd(T[e * rk + j]) * b;
          lb += Math.abs(b);
        }
        low += scale * g * l;
        sab += Math.abs(scale * g) * la;
        LB += lb;
        const term = rd(scale * rd(lh));
        dtAcc = rd(dtAcc + (kind === 'mixture' ? rd(g * term) : term));
      }
      const bv = bias ? bias[o] : 0;
      R.ref[el] = d + low + bv;
      R.sabs[el] = sab + Math.abs(bv);
      R.low[el] = L;
      R.lowB[el] = LB;
      R.refDt[el] = bias ? rd(dtAcc + bv) : dtAcc;
    }
  }
  const tx = onDevice(x, [M, K], dt, dev), tW = onDevice(W, [N, K], dt, dev), tA = onDevice(A, [E, rk, K], dt, dev), tB = onDevice(B, [E, N, rk], dt, dev);
  const sel = kind === 'batched' ? onDevice(ids, [M], 'int32', dev) : onDevice(gates, [M, E], dt, dev);
  const tb = bias ? onDevice(bias, [N], dt, dev) : null;
  const what = `lowrank.lora${kind === 'batched' ? 'Batched' : 'Mixture'} ${dt} on ${dev}: x [${M}, ${K}], out ${N}, r ${rk}, E ${E}, scale ${scale}${kind === 'batched' ? `, ids [${ids.length <= 20 ? ids.join(', ') : ids.slice(0, 20).join(', ') + ', …'}]` : ''}${bias ? ', bias' : ''}`;
  let y: Tensor | null = null;
  try {
    S.full([M, N], NaN, { dtype: dt, device: dev }).dispose();
    y = kind === 'batched' ? S.lowrank.loraBatched(tx, tW, tA, tB, sel, { scale, bias: tb }) : S.lowrank.loraMixture(tx, tW, tA, tB, sel, { scale, bias: tb });
    checkOutput(what, y, [M, N], dt, R);
  } finally {
    for (const t of [tx, tW, tA, tB, sel, tb, y]) t?.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// sparsePlusLowRank

export interface SparseCase {
  m: number;
  k: number;
  n: number;
  r: number;
  /** Chance of each position of S (0: nnz = 0 unless fullRow). */
  density: number;
  /** A row of S with every column set. */
  fullRow?: number;
  bias?: boolean;
}

export function checkSparse(dev: string, dt: DT, c: SparseCase, seed: number): void {
  const r = rng(seed);
  const { m: M, k: K, n: N, r: rk } = c;
  const x = values(r, M * K, dt), A = values(r, rk * K, dt), B = values(r, N * rk, dt), bias = values(r, N, dt);
  const idx: number[] = [], rowStart = new Int32Array(N + 1);
  for (let o = 0; o < N; o++) {
    rowStart[o] = idx.length;
    for (let p = 0; p < K; p++) if (o === c.fullRow || r() < c.density) idx.push(o * K + p);
  }
  rowStart[N] = idx.length;
  const sv = values(r, idx.length, dt);
  const rd = (v: number) => roundTo(dt, v);
  const R = newRef(M * N);
  const T = new Float64Array(rk), Tabs = new Float64Array(rk);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < rk; j++) {
      let s = 0, sa = 0;
      for (let p = 0; p < K; p++) {
        const t = x[i * K + p] * A[j * K + p];
        s += t;
        sa += Math.abs(t);
      }
      T[j] = s;
      Tabs[j] = sa;
    }
    for (let o = 0; o < N; o++) {
      let l = 0, la = 0, lh = 0, lb = 0, L = 0;
      for (let j = 0; j < rk; j++) {
        const b = B[o * rk + j];
        l += T[j] * b;
        L += Math.abs(T[j] * b);
        la += Tabs[j] * Math.abs(b);
        lh += rd(T[j]) * b;
        lb += Math.abs(b);
      }
      let sp = 0, spa = 0;
      for (let q = rowStart[o]; q < rowStart[o + 1]; q++) {
        const t = sv[q] * x[i * K + (idx[q] - o * K)];
        sp += t;
        spa += Math.abs(t);
      }
      const bv = c.bias ? bias[o] : 0, el = i * N + o;
      R.ref[el] = l + sp + bv;
      R.sabs[el] = la + spa + Math.abs(bv);
      R.low[el] = L;
      R.lowB[el] = lb;
      R.n[el] = K + rk + (rowStart[o + 1] - rowStart[o]) + 4;
      R.refDt[el] = rd(rd(rd(lh) + rd(sp)) + bv);
    }
  }
  const tx = onDevice(x, [M, K], dt, dev), tA = onDevice(A, [rk, K], dt, dev), tB = onDevice(B, [N, rk], dt, dev);
  const ti = onDevice(idx, [idx.length], 'int32', dev), tv = onDevice(sv, [idx.length], dt, dev), tb = onDevice(bias, [N], dt, dev);
  const what = `lowrank.sparsePlusLowRank ${dt} on ${dev}: x [${M}, ${K}], out ${N}, r ${rk}, nnz ${idx.length}${c.fullRow !== undefined ? `, row ${c.fullRow} full` : ''}${c.bias ? ', bias' : ''}`;
  let y: Tensor | null = null;
  try {
    S.full([M, N], NaN, { dtype: dt, device: dev }).dispose();
    y = S.lowrank.sparsePlusLowRank(tx, tA, tB, { indices: ti, values: tv, shape: [N, K] }, { bias: c.bias ? tb : undefined });
    checkOutput(what, y, [M, N], dt, R);
  } finally {
    for (const t of [tx, tA, tB, ti, tv, tb, y]) t?.dispose();
  }
}

// lowrank.sparse: S prepared once must give the plain S's bits (forward, dx, dS.values: the same
// kernels read the same pattern), keep its own copy of the indices, and fail clearly.
export function checkPreparedSparse(dev: string, seed: number): void {
  const r = rng(seed);
  // M ≥ 32: the CPU takes its transposed-rows kernels for the plain S too, so both give the same bits
  const M = 40, K = 37, N = 21, rk = 3;
  const idx: number[] = [];
  for (let f = 0; f < N * K; f++) if (Math.floor(f / K) === 4 || r() < 0.15) idx.push(f); // row 4 full
  const other = idx.map((f, e) => e); // another sorted, unique pattern of the same length
  const own: Tensor[] = [];
  const keep = <T extends Tensor>(t: T) => (own.push(t), t);
  const leaf = (v: Float64Array, shape: number[]) => {
    const t = keep(onDevice(v, shape, 'float32', dev));
    t.requiresGrad = true;
    return t;
  };
  const bits = (t: Tensor) => {
    const h = t.to('cpu');
    const a = Array.from(h.dataSync() as Float32Array);
    if (h !== t) h.dispose();
    return a;
  };
  const same = (a: number[], b: number[], what: string) => {
    assert.is(a.length, b.length, `${what}: length`);
    for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) assert.unreachable(`${what}[${i}]: ${a[i]} against ${b[i]} [${dev}]`);
  };
  try {
    const x = leaf(values(r, M * K, 'float32'), [M, K]), v = leaf(values(r, idx.length, 'float32'), [idx.length]);
    const A = keep(onDevice(values(r, rk * K, 'float32'), [rk, K], 'float32', dev));
    const B = keep(onDevice(values(r, N * rk, 'float32'), [N, rk], 'float32', dev));
    const g = keep(onDevice(values(r, M * N, 'float32'), [M, N], 'float32', dev));
    const t = keep(onDevice(idx, [idx.length], 'int32', dev));
    const run = (Sm: S.SparseMatrix) => {
      x.grad?.dispose();
      v.grad?.dispose();
      x.grad = null;
      v.grad = null;
      const y = keep(S.lowrank.sparsePlusLowRank(x, A, B, Sm));
      y.backward(g);
      return { y: bits(y), dx: bits(x.grad!), dv: bits(v.grad!) };
    };
    const plain = run({ indices: t, values: v, shape: [N, K] });
    const P = S.lowrank.sparse({ indices: t, values: v, shape: [N, K] });
    assert.equal(P.shape, [N, K]);
    const prepared = run(P);
    same(prepared.y, plain.y, 'prepared S: y');
    same(prepared.dx, plain.dx, 'prepared S: dx');
    same(prepared.dv, plain.dv, 'prepared S: dS.values');
    // a later write to the caller's indices: the plain S sees it, the prepared one keeps its copy
    const o = keep(onDevice(other, [other.length], 'int32', dev));
    native().copyInto(t._h, o._h);
    const moved = run({ indices: t, values: v, shape: [N, K] });
    assert.ok(moved.y.some((e, i) => !Object.is(e, plain.y[i])), `the write to the indices changed the plain S's result [${dev}]`);
    same(run(P).y, plain.y, 'prepared S after the caller wrote its indices: y');
    // bad input names the argument; a disposed pattern is refused
    const i32 = (a: number[]) => keep(onDevice(a, [a.length], 'int32', dev));
    const v3 = keep(onDevice([1, 2, 3], [3], 'float32', dev));
    throwsLike(() => S.lowrank.sparse({ indices: i32([5, 3, 9]), values: v3, shape: [N, K] }), RangeError, /lowrank\.sparse.*'S\.indices'.*unsorted/);
    throwsLike(() => S.lowrank.sparse({ indices: i32([3, 3, 9]), values: v3, shape: [N, K] }), RangeError, /duplicate/);
    throwsLike(() => S.lowrank.sparse({ indices: i32([1, 2, N * K]), values: v3, shape: [N, K] }), RangeError, /out of range for S of shape/);
    throwsLike(() => S.lowrank.sparse({ indices: i32([1, 2]), values: v3, shape: [N, K] }), RangeError, /'S\.values' \[3\] must have shape \[2\]/);
    throwsLike(() => S.lowrank.sparse({ indices: i32([1, 2, 3]), values: v3, shape: [N] as unknown as [number, number] }), TypeError, /'S\.shape'/);
    throwsLike(() => S.lowrank.sparsePlusLowRank(keep(onDevice(values(r, M * (K + 1), 'float32'), [M, K + 1], 'float32', dev)), keep(onDevice(values(r, rk * (K + 1), 'float32'), [rk, K + 1], 'float32', dev)), B, P), RangeError, /'S\.shape' \[21, 37\] must be \[out, in\] = \[21, 38\]/);
    // the pattern goes with a spread, not with other indices
    same(run({ ...P, values: v }).y, plain.y, 'a spread of the prepared S: y');
    throwsLike(() => S.lowrank.sparsePlusLowRank(x, A, B, { ...P, indices: o }), TypeError, /prepared pattern \(lowrank\.sparse\) of other indices/);
    // disposed between the forward and the backward (after the caller wrote its indices): the backward
    // computes from the pattern's own support, as it would have before the dispose
    const before = run(P);
    x.grad?.dispose();
    v.grad?.dispose();
    x.grad = null;
    v.grad = null;
    const y = keep(S.lowrank.sparsePlusLowRank(x, A, B, P));
    P.dispose();
    y.backward(g);
    same(bits(x.grad!), before.dx, 'pattern disposed before the backward: dx');
    same(bits(v.grad!), before.dv, 'pattern disposed before the backward: dS.values');
    P.dispose(); // twice is harmless
    throwsLike(() => S.lowrank.sparsePlusLowRank(x, A, B, P), TypeError, /disposed sparsity pattern/);
  } finally {
    for (const t of own) t.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// gradients: the device against the CPU

interface GradSpec {
  /** Differentiable inputs: name, shape, float32-representable values. */
  params: { name: string; shape: number[]; v: Float64Array }[];
  /** The op on the params (on device d, in dtype dt); returns y and tensors to keep alive until backward. */
  call: (ps: Tensor[], d: string, dt: 'float32' | 'float64', abs: boolean) => { y: Tensor; keep: Tensor[] };
  /** Longest chain of float32 operations behind one gradient element. */
  chain: number;
}

function gradsOf(spec: GradSpec, gOut: Float64Array, d: string, dt: 'float32' | 'float64', abs: boolean): Float64Array[] {
  const f = (v: Float64Array) => (abs ? v.map(Math.abs) : v);
  const ps = spec.params.map((p) => {
    const t = onDevice(f(p.v), p.shape, dt as DT, d);
    t.requiresGrad = true;
    return t;
  });
  const { y, keep } = spec.call(ps, d, dt, abs);
  const g = onDevice(f(gOut), y.shape, dt as DT, d);
  try {
    y.backward(g);
    return ps.map((t) => {
      const h = t.grad!.to('cpu');
      const out = Float64Array.from(h.dataSync());
      h.dispose();
      return out;
    });
  } finally {
    for (const t of [...ps, y, g, ...keep]) t.dispose();
  }
}

function checkGrads(dev: string, what: string, spec: GradSpec, gOut: Float64Array): void {
  const cpu = gradsOf(spec, gOut, 'cpu', 'float32', false);
  const got = gradsOf(spec, gOut, dev, 'float32', false);
  const mag = gradsOf(spec, gOut, 'cpu', 'float64', true);
  const nu = spec.chain * u32, gamma = nu / (1 - nu);
  spec.params.forEach((p, i) => {
    assert.is(got[i].length, cpu[i].length, `${what}: grad of ${p.name}: length`);
    for (let j = 0; j < cpu[i].length; j++) {
      const bound = 2 * gamma * mag[i][j];
      if (!(Math.abs(got[i][j] - cpu[i][j]) <= bound))
        assert.unreachable(`${what}: grad of ${p.name}[${j}] is ${got[i][j]} on ${dev}, ${cpu[i][j]} on the CPU; |Δ| ${Math.abs(got[i][j] - cpu[i][j]).toExponential(3)} > 2·γ_${spec.chain}·|grad| = ${bound.toExponential(3)}`);
    }
  });
}

// ---------------------------------------------------------------------------------------------

export function registerLowrankFamily(test: Test, dev: string, opts: { large?: boolean } = {}): void {
  const withSeed = seededTests(test, dev);
  const batched: AdapterCase[] = [
    { m: 1, k: 5, n: 7, r: 1, E: 1, scale: 1.5, ids: [0] },
    { m: 3, k: 33, n: 7, r: 3, E: 2, scale: -0.5, ids: [-1, 1, 1] }, // adapter 0 unused, a repeat
    { m: 17, k: 64, n: 129, r: 8, E: 5, scale: 0.75, ids: 'random', bias: true },
    { m: 130, k: 33, n: 129, r: 5, E: 4, scale: 1.5, ids: 'random' },
    { m: 17, k: 33, n: 7, r: 2, E: 3, scale: 2, ids: 'none', bias: true }, // all −1: x·Wᵀ + bias alone
    { m: 2, k: 1032, n: 20, r: 4, E: 3, scale: 0.5, ids: [2, 0], bias: true }, // in ≥ 1024: T's product split along in
  ];
  const mixture: AdapterCase[] = [
    { m: 1, k: 5, n: 7, r: 1, E: 1, scale: 1.5 },
    { m: 3, k: 33, n: 129, r: 2, E: 3, scale: -2, bias: true },
    { m: 17, k: 64, n: 7, r: 8, E: 5, scale: 0.5 },
    { m: 130, k: 33, n: 129, r: 3, E: 2, scale: 0.75, bias: true },
    { m: 3, k: 1040, n: 8, r: 2, E: 2, scale: -1 }, // in ≥ 1024: split along in
  ];
  const sparse: SparseCase[] = [
    { m: 1, k: 5, n: 7, r: 1, density: 0 }, // nnz 0
    { m: 3, k: 33, n: 7, r: 3, density: 0.3, fullRow: 2, bias: true },
    { m: 17, k: 64, n: 129, r: 8, density: 0.1, fullRow: 128, bias: true },
    { m: 130, k: 33, n: 129, r: 5, density: 0.05, fullRow: 0 },
    { m: 17, k: 5, n: 129, r: 2, density: 0, bias: true },
    { m: 2, k: 1032, n: 20, r: 4, density: 0.02, fullRow: 5, bias: true }, // in ≥ 1024: split along in
  ];
  if (opts.large) {
    const big = [{ m: 1, k: 4096, n: 4096 }, { m: 16, k: 4096, n: 4096 }, { m: 257, k: 1024, n: 1000 }];
    for (const b of big) {
      batched.push({ ...b, r: 16, E: 8, scale: 0.5, ids: 'random', bias: true });
      mixture.push({ ...b, r: 16, E: 8, scale: 0.5, bias: b.m > 1 }); // M = 1 without: the decode epilogue both ways
      sparse.push({ ...b, r: 16, density: b.k === 4096 ? 0.001 : 0.01, fullRow: b.n - 1, bias: true });
    }
  }
  for (const dt of ['float32', 'float16', 'bfloat16'] as DT[]) {
    withSeed(`lowrank.loraBatched ${dt}: ids with −1, repeats, unused adapters, an all −1 batch; every element within the rounding bound`, (seed) => {
      batched.forEach((c, i) => checkAdapters(dev, dt, 'batched', c, seed + i));
    });
    withSeed(`lowrank.loraMixture ${dt}: gates with zeros and negatives; every element within the rounding bound`, (seed) => {
      mixture.forEach((c, i) => checkAdapters(dev, dt, 'mixture', c, seed + i));
    });
    withSeed(`lowrank.sparsePlusLowRank ${dt}: nnz 0, full rows, bias; every element within the rounding bound`, (seed) => {
      sparse.forEach((c, i) => checkSparse(dev, dt, c, seed + i));
    });
  }

  if (dev !== 'cpu')
    withSeed('lowrank.loraBatched: ids on the CPU (planned on the host, nothing read back) give the same bits as ids on the device', (seed) => {
      const r = rng(seed);
      for (const dt of ['float32', 'bfloat16'] as DT[]) {
        const [M, K, N, rk, E] = [19, 40, 33, 4, 3];
        const ids = Array.from({ length: M }, () => Math.floor(r() * (E + 1)) - 1);
        const own = [
          onDevice(values(r, M * K, dt), [M, K], dt, dev), onDevice(values(r, N * K, dt), [N, K], dt, dev),
          onDevice(values(r, E * rk * K, dt), [E, rk, K], dt, dev), onDevice(values(r, E * N * rk, dt), [E, N, rk], dt, dev),
          onDevice(ids, [M], 'int32', dev), onDevice(ids, [M], 'int32', 'cpu'),
        ];
        try {
          const [x, W, A, B, onDev, onCpu] = own;
          const y1 = S.lowrank.loraBatched(x, W, A, B, onDev, { scale: 0.5 }), y2 = S.lowrank.loraBatched(x, W, A, B, onCpu, { scale: 0.5 });
          own.push(y1, y2);
          assert.is(y2.device, y1.device);
          assert.equal(Array.from(y2.dataSync()), Array.from(y1.dataSync()), `${dt}: ids [${ids.join(', ')}]`);
        } finally {
          for (const t of own) t.dispose();
        }
      }
    });

  // Gradients. Chains (float32 operations behind one element, from lib/ops/lowrank.ts's backward):
  // mixture/batched dx = g·W + scale·Σ_e (G⊙(g·B_e))·A_e: out + 1 + r + E + 2; dA: out + 1 + M + 1;
  // dB: in + 1 + M + 1; dW: M; dgates: out + in + 1 + r + 1. All ≤ in + out + M + E·r + 4.
  // sparsePlusLowRank dx = (g·B)·A + g·S: out + r + 1 (nnz of a column ≤ out); dA: out + M; dB: in + M;
  // dvalues: M; dbias: M. All ≤ in + out + M + r + 4.
  const [M, K, N, rk, E] = [6, 24, 20, 4, 3];
  const p32 = (r: () => number, name: string, shape: number[]) => ({ name, shape, v: values(r, shape.reduce((a, b) => a * b, 1), 'float32', 2) });
  withSeed('lowrank.loraBatched float32: gradients of x, W, A, B and bias on the device equal the CPU\'s', (seed) => {
    const r = rng(seed);
    const ids = [-1, 2, 2, 0, -1, 2]; // adapter 1 unused
    const params = [p32(r, 'x', [M, K]), p32(r, 'W', [N, K]), p32(r, 'A', [E, rk, K]), p32(r, 'B', [E, N, rk]), p32(r, 'bias', [N])];
    const spec: GradSpec = {
      params,
      chain: K + N + M + E * rk + 4,
      call: ([x, W, A, B, b], d, _dt, abs) => {
        const t = onDevice(ids, [M], 'int32', d);
        return { y: S.lowrank.loraBatched(x, W, A, B, t, { scale: abs ? 1.5 : -1.5, bias: b }), keep: [t] };
      },
    };
    checkGrads(dev, 'lowrank.loraBatched', spec, values(r, M * N, 'float32', 2));
  });
  withSeed('lowrank.loraMixture float32: gradients of x, W, A, B, gates and bias on the device equal the CPU\'s', (seed) => {
    const r = rng(seed);
    const gates = values(r, M * E, 'float32');
    gates[1] = gates[E + 2] = 0;
    const params = [p32(r, 'x', [M, K]), p32(r, 'W', [N, K]), p32(r, 'A', [E, rk, K]), p32(r, 'B', [E, N, rk]), { name: 'gates', shape: [M, E], v: gates }, p32(r, 'bias', [N])];
    const spec: GradSpec = {
      params,
      chain: K + N + M + E * rk + 4,
      call: ([x, W, A, B, G, b], _d, _dt, abs) => ({ y: S.lowrank.loraMixture(x, W, A, B, G, { scale: abs ? 0.5 : -0.5, bias: b }), keep: [] }),
    };
    checkGrads(dev, 'lowrank.loraMixture', spec, values(r, M * N, 'float32', 2));
  });
  withSeed('lowrank.sparsePlusLowRank float32: gradients of x, A, B, S.values and bias on the device equal the CPU\'s', (seed) => {
    const r = rng(seed);
    const idx: number[] = [];
    for (let f = 0; f < N * K; f++) if (Math.floor(f / K) === 3 || r() < 0.2) idx.push(f); // row 3 full
    const params = [p32(r, 'x', [M, K]), p32(r, 'A', [rk, K]), p32(r, 'B', [N, rk]), p32(r, 'S.values', [idx.length]), p32(r, 'bias', [N])];
    const spec: GradSpec = {
      params,
      chain: K + N + M + rk + 4,
      call: ([x, A, B, v, b], d) => {
        const t = onDevice(idx, [idx.length], 'int32', d);
        return { y: S.lowrank.sparsePlusLowRank(x, A, B, { indices: t, values: v, shape: [N, K] }, { bias: b }), keep: [t] };
      },
    };
    checkGrads(dev, 'lowrank.sparsePlusLowRank', spec, values(r, M * N, 'float32', 2));
  });

  withSeed('lowrank.sparse: a prepared S gives the plain S\'s bits forward and backward, keeps its own copy of the indices, fails clearly', (seed) =>
    checkPreparedSparse(dev, seed));

  withSeed('lowrank.svd of a device W: A, B, s on the device, bit-equal to the CPU\'s', (seed) => {
    const r = rng(seed);
    const cases: [number, number, DT, S.SvdOptions][] = [
      [17, 9, 'float32', { rank: 3, seed }],
      [9, 29, 'bfloat16', { rank: 5, seed: seed + 1 }],
      [12, 12, 'float16', { energy: 0.9, seed: 7 }],
    ];
    for (const [m, n, dt, o] of cases) {
      const w = values(r, m * n, dt);
      const Wc = onDevice(w, [m, n], dt, 'cpu'), Wd = onDevice(w, [m, n], dt, dev);
      const want = S.lowrank.svd(Wc, o), got = S.lowrank.svd(Wd, o);
      try {
        for (const key of ['A', 'B', 's'] as const) {
          const what = `lowrank.svd ${dt} [${m}, ${n}] ${JSON.stringify(o)} on ${dev}: ${key}`;
          assert.is(got[key].device, Wd.device, `${what}: device`);
          assert.is(got[key].dtype, dt, `${what}: dtype`);
          assert.equal(got[key].shape, want[key].shape, `${what}: shape`);
          const h = got[key].to('cpu');
          const a = h.dataSync(), b = want[key].dataSync();
          h.dispose();
          for (let i = 0; i < b.length; i++) if (!Object.is(a[i], b[i])) assert.unreachable(`${what}[${i}] is ${a[i]}, the CPU's ${b[i]}`);
        }
      } finally {
        for (const t of [Wc, Wd, want.A, want.B, want.s, got.A, got.B, got.s]) t.dispose();
      }
    }
  });

  // Empty dimensions, forward and backward: no kernel may refuse them (the device's sddmm once rejected
  // an S with no columns even with nothing to compute). x has no features: y = bias; the gradients are
  // zeros or empty, of the inputs' shapes.
  test(`lowrank.sparsePlusLowRank / loraBatched with in = 0 or M = 0: forward and backward [${dev}]`, () => {
    for (const [M, K] of [[3, 0], [0, 4]]) {
      S.tidy(() => {
        const N = 5, r = 2;
        const x = S.ones([M, K], { device: dev, requiresGrad: true });
        const A = S.ones([r, K], { device: dev, requiresGrad: true }), B = S.ones([N, r], { device: dev, requiresGrad: true });
        const bias = S.tensor([1, 2, 3, 4, 5]).to(dev);
        bias.requiresGrad = true;
        const nnz = K === 0 ? 0 : 2;
        const values = S.full([nnz], 0.5, { device: dev, requiresGrad: true });
        const indices = onDevice(nnz ? [1, 6] : [], [nnz], 'int32', dev);
        const y = S.lowrank.sparsePlusLowRank(x, A, B, { indices, values, shape: [N, K] }, { bias });
        assert.equal(y.shape, [M, N]);
        if (M > 0) assert.equal(Array.from(y.dataSync()), Array(M).fill([1, 2, 3, 4, 5]).flat(), `y with in = 0 [${dev}]`);
        y.sum().backward();
        assert.equal([x.grad!.shape, A.grad!.shape, B.grad!.shape, values.grad!.shape], [[M, K], [r, K], [N, r], [nnz]]);
        assert.ok(Array.from(B.grad!.dataSync()).every((v) => v === 0) && Array.from(values.grad!.dataSync()).every((v) => v === 0));
        assert.equal(Array.from(bias.grad!.dataSync()), Array(N).fill(M), `dbias [${dev}]`);
        const W = S.ones([N, K], { device: dev }), A3 = S.ones([2, r, K], { device: dev }), B3 = S.ones([2, N, r], { device: dev });
        const yb = S.lowrank.loraBatched(x, W, A3, B3, S.tensor(Array(M).fill(1), { dtype: 'int32' }), { bias });
        if (M > 0) assert.equal(Array.from(yb.dataSync()), Array(M).fill([1, 2, 3, 4, 5]).flat(), `loraBatched with in = 0 [${dev}]`);
        else assert.equal(yb.shape, [0, N]);
      });
    }
  });

  test(`lowrank.loraBatched / loraMixture / sparsePlusLowRank: bad input on the device names the argument [${dev}]`, () => {
    const own: Tensor[] = [];
    const z = (shape: number[], dtype: DT | 'float64' = 'float32', d = dev) => (own.push(S.zeros(shape, { dtype, device: d })), own[own.length - 1]);
    const i32 = (v: number[], d = dev) => (own.push(onDevice(v, [v.length], 'int32', d)), own[own.length - 1]);
    try {
      const x = z([4, 6]), W = z([5, 6]), A3 = z([2, 3, 6]), B3 = z([2, 5, 3]), A = z([3, 6]), B = z([5, 3]), v = z([3]), g = z([4, 2]);
      const ids = i32([0, 1, -1, 1]);
      const lr = S.lowrank;
      throwsLike(() => lr.loraBatched(x, W, A3, B3, i32([0, 1, 2, 0])), RangeError, /'ids'.*ids\[2\] = 2/);
      throwsLike(() => lr.loraBatched(x, W, A3, B3, i32([0, -2, 1, 0])), RangeError, /'ids'.*ids\[1\] = -2/);
      throwsLike(() => lr.loraMixture(x, W, A3, B3, z([4, 3])), RangeError, /'gates' \[4, 3\]/);
      throwsLike(() => lr.loraMixture(x, W, A3, B3, z([2, 2])), RangeError, /'gates' \[2, 2\]/);
      const Sp = (indices: Tensor, values = v) => ({ indices, values, shape: [5, 6] });
      throwsLike(() => lr.sparsePlusLowRank(x, A, B, Sp(i32([5, 3, 9]))), RangeError, /indices.*unsorted/);
      throwsLike(() => lr.sparsePlusLowRank(x, A, B, Sp(i32([3, 3, 9]))), RangeError, /indices.*duplicate/);
      if (dev === 'cpu') return; // devices and float64 below are a device's errors
      const named = (arg: string) => (e: string) => e.includes(`'${arg}'`) && e.includes(dev);
      const typeErr = (fn: () => unknown, ok: (m: string) => boolean, what: string) => {
        try {
          fn();
        } catch (e) {
          assert.instance(e, TypeError, `${what}: expected a TypeError, got ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
          assert.ok(ok((e as Error).message), `${what}: message '${(e as Error).message}'`);
          return;
        }
        assert.unreachable(`${what}: nothing was thrown`);
      };
      const cpu = (shape: number[]) => z(shape, 'float32', 'cpu');
      // (ids on the CPU serve a device's x: the test above; on a device they must be x's)
      typeErr(() => lr.loraBatched(cpu([4, 6]), cpu([5, 6]), cpu([2, 3, 6]), cpu([2, 5, 3]), ids), named('ids'), 'ids on the device, x on the CPU');
      typeErr(() => lr.loraBatched(x, W, cpu([2, 3, 6]), B3, ids), named('A'), 'A on the CPU');
      typeErr(() => lr.loraMixture(x, W, A3, B3, cpu([4, 2])), named('gates'), 'gates on the CPU');
      typeErr(() => lr.loraMixture(cpu([4, 6]), W, A3, B3, g), named('W'), 'x on the CPU');
      typeErr(() => lr.sparsePlusLowRank(x, A, B, Sp(i32([1, 7, 9], 'cpu'))), named('S.indices'), 'S.indices on the CPU');
      typeErr(() => lr.sparsePlusLowRank(x, A, B, Sp(i32([1, 7, 9]), cpu([3]))), named('S.values'), 'S.values on the CPU');
      typeErr(() => lr.sparsePlusLowRank(x, A, B, Sp(i32([1, 7, 9])), { bias: cpu([5]) }), named('bias'), 'bias on the CPU');
      const f64 = /float64/;
      const x64 = z([4, 6], 'float64'), W64 = z([5, 6], 'float64'), A64 = z([2, 3, 6], 'float64'), B64 = z([2, 5, 3], 'float64');
      typeErr(() => lr.loraBatched(x64, W64, A64, B64, ids), (m) => f64.test(m), 'loraBatched float64');
      typeErr(() => lr.loraMixture(x64, W64, A64, B64, z([4, 2], 'float64')), (m) => f64.test(m), 'loraMixture float64');
      typeErr(() => lr.sparsePlusLowRank(x64, z([3, 6], 'float64'), z([5, 3], 'float64'), Sp(i32([1, 7, 9]), z([3], 'float64'))), (m) => f64.test(m), 'sparsePlusLowRank float64');
    } finally {
      for (const t of own) t.dispose();
    }
  });
}
