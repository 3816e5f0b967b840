// helpers.ts — the one-line op checker (in the spirit of tinygrad's helper_test_op) and shared test
// utilities: seeded random inputs, element-by-element comparison with a float64 reference, gradcheck
// in float64, and a leak check of native buffers and live tensors around every op test.
import * as assert from 'uvu/assert';
import { native } from '../lib/native';
import { Tensor, tensor, gradcheck, memory, type DType } from '../lib/index';
import type { GradcheckOptions } from '../lib/autograd';
import { type NDArray, numel } from './reference/ops';

export type { NDArray } from './reference/ops';

/** mulberry32: a small seeded generator (uniform in [0, 1)). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A fresh seed per call (printed on failure), or STRUCTURA_TEST_SEED to replay one. */
export function freshSeed(): number {
  const env = process.env.STRUCTURA_TEST_SEED;
  return env ? Number(env) : Math.floor(Math.random() * 2 ** 31);
}

/**
 * A registrar of seeded tests for one device (the conformance suites): `withSeed(name, fn)` registers
 * "<name> [<dev>]", runs fn with a fresh seed, and prints the seed (and how to replay it) on failure.
 */
export function seededTests(
  test: (name: string, fn: () => void | Promise<void>) => void,
  dev: string,
): (name: string, fn: (seed: number) => void) => void {
  return (name, fn) =>
    test(`${name} [${dev}]`, () => {
      const seed = freshSeed();
      try {
        fn(seed);
      } catch (e) {
        console.error(`  ${name} [${dev}]: seed ${seed} (STRUCTURA_TEST_SEED=${seed} replays it)`);
        throw e;
      }
    });
}

export function uniform(r: () => number, n: number, low = -2, high = 2): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = low + (high - low) * r();
  return out;
}

/** The values of a tensor as a float64 NDArray. */
export function toND(t: Tensor): NDArray {
  return { data: Float64Array.from(t.dataSync()), shape: t.shape };
}

/** Per element: |out − ref| ≤ atol + rtol·|ref|; or over the whole output: ‖out − ref‖₂ ≤ relNorm·‖ref‖₂
 * (‖scale‖₂ in place of ‖ref‖₂ when assertClose is given a magnitude reference, as CheckOpSpec.scale). */
export type Tol = { atol: number; rtol: number } | { relNorm: number };

/** Elementwise default tolerances: a few units in the last place of each dtype. */
export const DEFAULT_TOL: Record<string, Tol> = {
  float64: { atol: 1e-12, rtol: 1e-11 },
  float32: { atol: 1e-6, rtol: 1e-5 },
  float16: { atol: 1e-3, rtol: 2e-3 }, // 2^−10 ≈ 9.8e−4 per ulp
  bfloat16: { atol: 8e-3, rtol: 1.6e-2 }, // 2^−7 ≈ 7.8e−3 per ulp
};

/**
 * Asserts out matches ref everywhere: same shape, every element finite where the reference is
 * (NaN only where it is NaN), and |out − ref| ≤ atol + rtol·|ref|. Names the worst element.
 */
export function assertClose(out: ArrayLike<number>, ref: NDArray, outShape: number[], tol: Tol, what = 'output', scale?: NDArray): void {
  assert.equal(outShape, ref.shape, `${what}: shape ${JSON.stringify(outShape)} but the reference has ${JSON.stringify(ref.shape)}`);
  assert.is(out.length, ref.data.length, `${what}: ${out.length} elements, reference ${ref.data.length}`);
  if (scale) assert.is(scale.data.length, ref.data.length, `${what}: the scale has ${scale.data.length} elements, the reference ${ref.data.length}`);
  if ('relNorm' in tol) {
    let num = 0;
    let den = 0;
    for (let i = 0; i < out.length; i++) {
      if (!Number.isFinite(out[i]) && Number.isFinite(ref.data[i]))
        assert.unreachable(`${what}: element ${i} is ${out[i]}, reference ${ref.data[i]}`);
      num += (out[i] - ref.data[i]) ** 2;
      den += (scale ? scale.data[i] : ref.data[i]) ** 2;
    }
    const rel = Math.sqrt(num) / Math.max(Math.sqrt(den), Number.MIN_VALUE);
    if (!(rel <= tol.relNorm)) assert.unreachable(`${what}: ‖out − ref‖/‖${scale ? 'scale' : 'ref'}‖ = ${rel.toExponential(3)} > ${tol.relNorm}`);
    return;
  }
  let worst = -1;
  let worstExcess = -Infinity;
  let bad = 0;
  for (let i = 0; i < out.length; i++) {
    const o = out[i];
    const r = ref.data[i];
    let excess: number;
    if (Number.isNaN(r)) excess = Number.isNaN(o) ? -1 : Infinity;
    else if (!Number.isFinite(r)) excess = o === r ? -1 : Infinity;
    else if (!Number.isFinite(o)) excess = Infinity;
    else excess = Math.abs(o - r) - (tol.atol + tol.rtol * Math.abs(r));
    if (excess > 0) bad++;
    if (excess > worstExcess) {
      worstExcess = excess;
      worst = i;
    }
  }
  if (bad > 0)
    assert.unreachable(
      `${what}: ${bad} of ${out.length} elements differ; worst at flat index ${worst}: got ${out[worst]}, reference ${ref.data[worst]} ` +
        `(atol ${tol.atol}, rtol ${tol.rtol})`,
    );
}

export type Layout = 'contiguous' | 'transposed' | 'narrowed';

export interface CheckOpSpec {
  /** Shapes of the random floating inputs. */
  shapes: number[][];
  /** Our op on tensors (random inputs first, then `extra`). */
  fn: (...xs: Tensor[]) => Tensor;
  /** The float64 reference on the same values. */
  ref: (...xs: NDArray[]) => NDArray;
  /** dtypes to check the forward in (default float32 and float64). */
  dtype?: DType | DType[];
  /** Tolerances (default DEFAULT_TOL per dtype), one for all dtypes or per dtype. */
  tol?: Tol | Partial<Record<DType, Tol>>;
  /** Run gradcheck in float64 (default true). */
  grad?: boolean;
  gradOpts?: GradcheckOptions;
  /** Range of the random inputs (default [−2, 2]). */
  low?: number;
  high?: number;
  /** Per-input ranges, overriding low/high. */
  ranges?: ([number, number] | undefined)[];
  /** How the inputs reach the op: fresh, as a transposed view, or as a narrowed view (default contiguous). */
  layout?: Layout;
  /** Non-differentiable inputs appended after the random ones (e.g. int32 labels); made per dtype. */
  extra?: (r: () => number) => Tensor[];
  /** Expected output dtype (default the input dtype). */
  outDtype?: (dtype: DType) => DType;
  /** For a relNorm tolerance: the magnitudes the rounding error scales with, in place of ref (a dot
   * product's error is relative to Σ|aᵢbᵢ|, not to a sum that cancels: |A|·|B| for matmul). */
  scale?: (...xs: NDArray[]) => NDArray;
  /** Points where the op is not differentiable: inputs equal to one of `points`, or two input values
   * tied (`ties`: maximum / minimum, max / min reductions). gradcheck's central differences (eps 1e−6)
   * are meaningless within eps of them, so its float64 inputs are redrawn (deterministically from the
   * seed) until every value is at least 1e−4 from each point and from every other value. The forward
   * is checked on the plain draw. */
  kinks?: { points?: number[]; ties?: boolean };
  seed?: number;
}

/** Redraws values of `vals` (in their ranges) that lie within 1e−4 of a kink point or (ties) of another value. */
function awayFromKinks(vals: Float64Array[], ranges: [number, number][], kinks: { points?: number[]; ties?: boolean }, seed: number): void {
  const GAP = 1e-4;
  const points = kinks.points ?? [];
  const r = rng((seed ^ 0x5bd1e995) >>> 0);
  const taken: number[] = []; // sorted, for ties
  const lower = (v: number) => {
    let lo = 0, hi = taken.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (taken[mid] < v) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const bad = (v: number) => {
    if (points.some((p) => Math.abs(v - p) < GAP)) return true;
    if (!kinks.ties) return false;
    const k = lower(v);
    return (k < taken.length && taken[k] - v < GAP) || (k > 0 && v - taken[k - 1] < GAP);
  };
  vals.forEach((a, i) => {
    const [lo, hi] = ranges[i];
    for (let j = 0; j < a.length; j++) {
      let v = a[j];
      for (let tries = 0; bad(v); tries++) {
        if (tries > 1000) throw new Error(`checkOp: cannot keep ${a.length} values of [${lo}, ${hi}] 1e-4 apart from the kinks`);
        v = lo + (hi - lo) * r();
      }
      a[j] = v;
      if (kinks.ties) taken.splice(lower(v), 0, v);
    }
  });
}

/** An input of `shape` with the values `vals`, laid out as asked (a view for transposed/narrowed). */
function makeInput(vals: Float64Array, shape: number[], dtype: DType, layout: Layout, requiresGrad = false): { base: Tensor; view: (b: Tensor) => Tensor } {
  const nd = shape.length;
  if (layout === 'transposed' && nd >= 2) {
    // base holds the transpose, so base.transpose(-2, -1) has the logical values
    const c = tensor(Float64Array.from(vals), { shape, dtype: 'float64' });
    const tr = c.transpose(-2, -1);
    const base0 = tr.contiguous();
    const base = base0.cast(dtype);
    c.dispose();
    tr.dispose();
    base0.dispose();
    base.requiresGrad = requiresGrad;
    return { base, view: (b) => b.transpose(-2, -1) };
  }
  if (layout === 'narrowed' && nd >= 1) {
    // two extra columns around the data in the last axis
    const last = shape[nd - 1];
    const wide = shape.slice();
    wide[nd - 1] = last + 2;
    const data = new Float64Array(numel(wide)).fill(7.5);
    const rows = numel(shape) / Math.max(1, last);
    for (let r = 0; r < rows; r++) for (let j = 0; j < last; j++) data[r * (last + 2) + 1 + j] = vals[r * last + j];
    const base = tensor(data, { shape: wide, dtype, requiresGrad });
    return { base, view: (b) => b.narrow(-1, 1, last) };
  }
  const base = tensor(dtype === 'float64' ? vals : Float32Array.from(vals), { shape, dtype, requiresGrad });
  return { base, view: (b) => b };
}

function tolFor(spec: CheckOpSpec, dtype: DType): Tol {
  const t = spec.tol;
  if (t && ('atol' in t || 'relNorm' in t)) return t as Tol;
  return (t as Partial<Record<DType, Tol>> | undefined)?.[dtype] ?? DEFAULT_TOL[dtype];
}

/** Live native buffers and tensors, for leak checks. */
export function liveCounts(): { buffers: number; tensors: number } {
  return { buffers: native().memory().cpu.buffers, tensors: memory().numTensors };
}

export function assertNoLeak(before: { buffers: number; tensors: number }, what: string): void {
  const after = liveCounts();
  assert.is(after.buffers, before.buffers, `${what}: ${after.buffers - before.buffers} native buffers leaked`);
  assert.is(after.tensors, before.tensors, `${what}: ${after.tensors - before.tensors} tensors leaked`);
}

/**
 * Checks an op: forward against the float64 reference in each dtype on seeded random inputs (every
 * element), gradients with gradcheck in float64, and that no native buffer or tensor leaks.
 */
export function checkOp(spec: CheckOpSpec): void {
  const seed = spec.seed ?? freshSeed();
  const dtypes = spec.dtype === undefined ? (['float32', 'float64'] as DType[]) : Array.isArray(spec.dtype) ? spec.dtype : [spec.dtype];
  const layout = spec.layout ?? 'contiguous';
  const low = spec.low ?? -2;
  const high = spec.high ?? 2;
  const rangeOf = (i: number): [number, number] => spec.ranges?.[i] ?? [low, high];
  try {
    const before = liveCounts();
    for (const dtype of dtypes) {
      const r = rng(seed);
      const ins = spec.shapes.map((s, i) => makeInput(uniform(r, numel(s), ...rangeOf(i)), s, dtype, layout));
      const views = ins.map((i) => i.view(i.base));
      const extra = spec.extra ? spec.extra(r) : [];
      let out: Tensor | undefined;
      try {
        out = spec.fn(...views, ...extra);
        assert.ok(out instanceof Tensor, 'fn must return a Tensor');
        const want = spec.outDtype ? spec.outDtype(dtype) : dtype;
        assert.is(out.dtype, want, `output dtype ${out.dtype}, expected ${want}`);
        const ref = spec.ref(...views.map(toND), ...extra.map(toND));
        const scale = spec.scale ? spec.scale(...views.map(toND), ...extra.map(toND)) : undefined;
        assertClose(out.dataSync(), ref, out.shape, tolFor(spec, dtype), `${dtype} ${layout} forward`, scale);
      } finally {
        out?.dispose();
        for (const v of views) v.dispose();
        for (const i of ins) i.base.dispose();
        for (const e of extra) e.dispose();
      }
    }
    assertNoLeak(before, 'forward');
    if (spec.grad !== false) {
      const r = rng(seed);
      const vals = spec.shapes.map((s, i) => uniform(r, numel(s), ...rangeOf(i)));
      if (spec.kinks) awayFromKinks(vals, spec.shapes.map((_, i) => rangeOf(i)), spec.kinks, seed);
      const ins = spec.shapes.map((s, i) => makeInput(vals[i], s, 'float64', layout, true));
      const extra = spec.extra ? spec.extra(r) : [];
      const n = ins.length;
      try {
        gradcheck((...xs: Tensor[]) => {
          const views = xs.slice(0, n).map((x, i) => ins[i].view(x));
          try {
            return spec.fn(...views, ...xs.slice(n));
          } finally {
            views.forEach((v, i) => v !== xs[i] && v.dispose());
          }
        }, [...ins.map((i) => i.base), ...extra], spec.gradOpts);
      } finally {
        for (const i of ins) i.base.dispose();
        for (const e of extra) e.dispose();
      }
      assertNoLeak(before, 'gradcheck');
    }
  } catch (e) {
    if (e instanceof Error) e.message = `[seed ${seed}] ${e.message}`;
    throw e;
  }
}

/** Asserts fn throws an error of the class `type` whose message matches `re`. */
export function throwsLike(fn: () => unknown, type: new (...a: any[]) => Error, re: RegExp): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, type, `expected a ${type.name}, got ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
    assert.match((e as Error).message, re);
    return;
  }
  assert.unreachable(`expected a ${type.name} matching ${re}, but nothing was thrown`);
}
