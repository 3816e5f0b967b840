// kernel_util.ts — helpers shared by the kernel suites (elementwise, reduce): seeded inputs, tensors
// made and read through the raw binding, strided views, element-by-element comparison against the
// float64 references with a stated tolerance, error checks, and the per-test leak check.
import * as assert from 'uvu/assert';
import { native, DTYPE_CODES, type DType, type Handle, type NativeBinding } from '../../lib/native';
import * as R from '../reference/core';

export const N: NativeBinding = native();
/** setSimd is exported by the addon for tests (not part of the typed contract). */
export const setSimd = (level: 'scalar' | 'avx2' | 'avx512'): string =>
  (N as unknown as { setSimd(l: string): string }).setSimd(level);

/** The run's seed: STRUCTURA_TEST_SEED, else fresh. Every failure message repeats it. */
export const SEED = process.env.STRUCTURA_TEST_SEED ? Number(process.env.STRUCTURA_TEST_SEED) : (Date.now() * 7919) % 2 ** 31;

/** A generator for one test: the run's seed mixed with the test's name, so a rerun reproduces it. */
export function rngFor(name: string): R.Rng {
  let h = SEED >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x9e3779b1) >>> 0;
  return new R.Rng(h);
}

export const FLOAT_DTYPES = ['float32', 'float64', 'float16', 'bfloat16'] as const;
export const code = (dt: DType): number => DTYPE_CODES[dt];

// ---- handles and leak check ---------------------------------------------------------------------

const live: Handle[] = [];
/** Registers a handle to dispose at the end of the test. */
export function keep(h: Handle): Handle {
  live.push(h);
  return h;
}

/** Installs the leak check on a suite: every handle kept during a test is disposed after it, and the
 * number of live native CPU buffers must then equal the number before the test. */
export function leakCheck(suite: { before: { each(fn: () => void): void }; after: { each(fn: () => void): void } }) {
  let before = 0;
  suite.before.each(() => {
    before = N.memory().cpu.buffers;
  });
  suite.after.each(() => {
    for (const h of live.splice(0)) N.dispose(h);
    assert.is(N.memory().cpu.buffers, before, `native CPU buffers leaked (seed ${SEED})`);
  });
}

// ---- tensors ------------------------------------------------------------------------------------

function typed(dtype: DType, values: ArrayLike<number>): ArrayBufferView {
  switch (dtype) {
    case 'float64': return Float64Array.from(values);
    case 'int32': return Int32Array.from(values);
    case 'uint8': return Uint8Array.from(values);
    case 'uint16': return Uint16Array.from(values);
    default: return Float32Array.from(values); // float32; float16/bfloat16 take float values (rounded natively)
  }
}

/** A kept tensor of `dtype` holding `values` (rounded to the dtype). */
export function tensor(dtype: DType, shape: number[], values: ArrayLike<number>): Handle {
  return keep(N.fromArray(code(dtype), shape, typed(dtype, values), 0, 0));
}

/** The tensor's values in logical order, as float64. */
export function values(h: Handle): Float64Array {
  return Float64Array.from(N.read(h) as ArrayLike<number>);
}

/** A tensor of `values` and the values it actually holds (after rounding to the dtype). */
export function input(dtype: DType, shape: number[], vals: ArrayLike<number>): { h: Handle; x: R.Arr } {
  const h = tensor(dtype, shape, vals);
  return { h, x: { data: values(h), shape: shape.slice() } };
}

/** A tensor filled with NaN (or −7 for integer dtypes), to catch elements a kernel never writes. */
export function poisoned(dtype: DType, shape: number[]): Handle {
  const v = dtype === 'int32' || dtype === 'uint8' || dtype === 'uint16' ? -7 : NaN;
  return keep(N.full(code(dtype), shape, v, 0, 0));
}

/** Fills and frees a few buffers of `bytes` with NaN so that a fresh output likely reuses poisoned memory. */
export function poisonHeap(bytes: number): void {
  const n = Math.max(1, Math.ceil(bytes / 4));
  const hs = [0, 1, 2].map(() => N.full(code('float32'), [n], NaN, 0, 0));
  for (const h of hs) N.dispose(h);
}

/**
 * A strided view holding logical values `x`: its storage has the dimensions in a random order,
 * every element of the innermost storage dimension `step` apart, and an offset; the gaps hold NaN
 * (or −7), so reading a wrong element fails. Returns the view (kept; its storage tensor too).
 */
export function stridedView(rng: R.Rng, dtype: DType, x: R.Arr): Handle {
  const nd = x.shape.length;
  const perm = [...Array(nd).keys()];
  for (let i = nd - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  const step = rng.int(1, 2), offset = rng.int(0, 3);
  const sshape = perm.map((d) => x.shape[d]);
  const sstr = R.stridesOf(sshape).map((s) => s * step);
  const strides = new Array<number>(nd);
  perm.forEach((d, j) => (strides[d] = sstr[j]));
  const total = offset + Math.max(1, R.numel(x.shape)) * step + 1;
  const filler = dtype === 'int32' ? -7 : NaN;
  const store = new Float64Array(total).fill(filler);
  const n = R.numel(x.shape);
  const idx = new Array<number>(nd).fill(0);
  for (let k = 0; k < n; k++) {
    let off = offset;
    for (let d = 0; d < nd; d++) off += idx[d] * strides[d];
    store[off] = x.data[k];
    for (let d = nd - 1; d >= 0; d--) {
      if (++idx[d] < x.shape[d]) break;
      idx[d] = 0;
    }
  }
  const base = tensor(dtype, [total], store);
  return keep(N.view(base, x.shape, strides, offset));
}

// ---- comparison ---------------------------------------------------------------------------------

/**
 * Checks every element: got[i] passes if it is ref[i] rounded to the dtype (this covers ±inf and
 * NaN), or if |got[i] − ref[i]| ≤ tol(i). Fails with the worst elements, the context and the seed.
 */
export function check(got: ArrayLike<number>, ref: ArrayLike<number>, tol: (i: number) => number, ctx: string,
                      dtype: DType = 'float64'): void {
  assert.is(got.length, ref.length, `${ctx}: ${got.length} elements, expected ${ref.length} (seed ${SEED})`);
  const bad: string[] = [];
  let nbad = 0, worst = 0;
  for (let i = 0; i < ref.length; i++) {
    const g = got[i], r = ref[i];
    const rr = dtype === 'int32' ? r : R.roundTo(dtype as R.FloatDType, r);
    if (Object.is(g, rr) || g === rr || (Number.isNaN(g) && Number.isNaN(r))) continue;
    if (Number.isFinite(g) && Number.isFinite(r) && Math.abs(g - r) <= tol(i)) {
      if (TOL_STATS) worst = Math.max(worst, Math.abs(g - r) / tol(i));
      continue;
    }
    if (nbad++ < 6) bad.push(`[${i}] got ${g}, expected ${r} (tolerance ${tol(i).toExponential(2)})`);
  }
  if (nbad) assert.unreachable(`${ctx}: ${nbad} of ${ref.length} elements wrong (seed ${SEED}):\n  ${bad.join('\n  ')}`);
  if (TOL_STATS && worst > 0) {
    const key = ctx.replace(/\b\d+\b|[[\],]/g, '').replace(/ +/g, ' ').trim().slice(0, 48);
    if (worst > (tolStats.get(key) ?? 0)) tolStats.set(key, worst);
  }
}

// STRUCTURA_TOL_STATS=1 prints, per kind of check, the largest |error| / tolerance seen (how tight they are).
const TOL_STATS = !!process.env.STRUCTURA_TOL_STATS;
const tolStats = new Map<string, number>();
if (TOL_STATS)
  process.on('exit', () => {
    for (const [k, v] of [...tolStats].sort((a, b) => b[1] - a[1]).slice(0, 60)) console.log(`${v.toFixed(3)}  ${k}`);
  });

/** Exact equality of every element (NaN equals NaN). */
export function checkExact(got: ArrayLike<number>, ref: ArrayLike<number>, ctx: string): void {
  check(got, ref, () => 0, ctx, 'float64');
}

/**
 * The tolerance for a result of `dtype` computed in float32 (float64 for float64) with an error of at
 * most k units of roundoff u of the compute type times `scale`: float64 and float32 get k·u·scale;
 * float16 and bfloat16 are rounded once from float32, so they get one ulp of their own type at the
 * reference (twice the largest rounding error) plus the float32 error.
 */
export function tolerance(dtype: DType, k: number, scale: number, ref: number): number {
  // The CPU threads run with FTZ/DAZ (kernels_design.md §4): a result below the smallest normal
  // number of the compute type may come out as 0.
  if (dtype === 'float64') return k * R.unitRoundoff('float64') * scale + 2 ** -1022;
  const f32 = k * R.unitRoundoff('float32') * scale + 2 ** -126;
  if (dtype === 'float16' || dtype === 'bfloat16') return R.ulp(dtype, ref) + f32;
  return f32;
}

// ---- errors -------------------------------------------------------------------------------------

/** fn must throw an instance of `type` whose message matches every pattern. */
export function throwsLike(fn: () => unknown, type: ErrorConstructor, patterns: RegExp[], ctx: string): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err !== undefined, `${ctx}: did not throw`);
  assert.ok(err instanceof type, `${ctx}: threw ${(err as Error)?.name}: ${(err as Error)?.message}, expected a ${type.name}`);
  for (const p of patterns) assert.match((err as Error).message, p, `${ctx}: message "${(err as Error).message}" lacks ${p}`);
}

/** Runs fn at each SIMD level the machine has (scalar always), restoring the level in use before. */
export function atEachSimdLevel(fn: (level: string) => void): void {
  const levels: ('scalar' | 'avx2' | 'avx512')[] = ['scalar', 'avx2', 'avx512'];
  const initial = N.backend().simd;
  const seen = new Set<string>();
  try {
    for (const l of levels) {
      const got = setSimd(l);
      if (seen.has(got)) continue;
      seen.add(got);
      fn(got);
    }
  } finally {
    setSimd(initial);
  }
}

/**
 * Asserts that h has exactly `shape` (the binding has no shape getter): its number of dimensions by
 * which axes reduce() accepts, and its sizes by broadcasting against a tensor of `shape` (the
 * broadcast keeps the element count only if every size matches).
 */
export function assertShape(h: Handle, shape: number[], ctx: string): void {
  const nd = shape.length;
  if (nd > 0) N.dispose(N.reduce('sum', h, [nd - 1], false));
  throwsLike(() => N.reduce('sum', h, [nd], false), RangeError, [], `${ctx}: has more than ${nd} dimensions`);
  const n = R.numel(shape);
  assert.is(N.read(h).length, n, `${ctx}: ${N.read(h).length} elements, expected ${n} for ${JSON.stringify(shape)}`);
  if (n === 0) return;
  const z = N.full(code('float32'), shape, 0, 0, 0);
  const hf = N.cast(h, code('float32'));
  try {
    const s = N.binary('add', hf, z);
    const m = N.read(s).length;
    N.dispose(s);
    assert.is(m, n, `${ctx}: shape is not ${JSON.stringify(shape)}`);
  } finally {
    N.dispose(z);
    N.dispose(hf);
  }
}
