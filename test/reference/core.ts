// core.ts — float64 references for the core ops (elementwise, reductions, softmax, cross-entropy),
// written the obvious way in plain TypeScript on Float64Array + shape (row-major). They are the
// test oracle, independent of the native kernels. Also: rounding to float32 / float16 / bfloat16,
// a double-precision erf (JS has none), and a seeded random generator for test inputs.

export type Shape = number[];
/** A dense row-major array of float64 values and its shape. */
export interface Arr {
  data: Float64Array;
  shape: Shape;
}

export type UnaryName =
  | 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'abs' | 'relu' | 'gelu' | 'silu' | 'tanh' | 'sigmoid'
  | 'square' | 'reciprocal' | 'sign' | 'step' | 'erf' | 'sin' | 'cos' | 'gelu_grad' | 'silu_grad'
  | 'add_scalar' | 'mul_scalar' | 'pow_scalar' | 'rsub_scalar' | 'rdiv_scalar' | 'clamp';
export type BinaryName =
  | 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'maximum' | 'minimum' | 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge';
export type ReduceName = 'sum' | 'mean' | 'max' | 'min';

// ---- shapes ------------------------------------------------------------------------------------

export function numel(shape: Shape): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function stridesOf(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** Numpy broadcasting of any number of shapes; null if they do not broadcast. */
export function broadcastShapes(...shapes: Shape[]): Shape | null {
  const n = Math.max(0, ...shapes.map((s) => s.length));
  const out = new Array<number>(n).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const o = n - s.length + i;
      if (s[i] === out[o] || s[i] === 1) continue;
      if (out[o] !== 1) return null;
      out[o] = s[i];
    }
  }
  return out;
}

/** The element of `x` (shape `shape`) that broadcasts to flat index `k` of `outShape`. */
function broadcastIndex(k: number, outShape: Shape, shape: Shape): number {
  let idx = 0, stride = 1;
  for (let d = outShape.length - 1, e = shape.length - 1; d >= 0; d--, e--) {
    const i = k % outShape[d];
    k = (k - i) / outShape[d];
    if (e >= 0) {
      if (shape[e] !== 1) idx += i * stride;
      stride *= shape[e];
    }
  }
  return idx;
}

// ---- special functions -----------------------------------------------------------------------

/**
 * erf(x) to a few ulp: for |x| < 2 the series erf(x) = 2/√π·e^(−x²)·Σ 2ⁿx^(2n+1)/(1·3·…·(2n+1)),
 * whose terms are all positive (no cancellation); beyond, 1 − erfc(x) by the continued fraction
 * (erfc < 5e-3 there, so its own relative error barely reaches erf).
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax >= 2) return Math.sign(x) * (1 - erfcLarge(ax));
  let term = ax, sum = ax;
  const x2 = ax * ax;
  for (let n = 1; n < 500; n++) {
    term *= (2 * x2) / (2 * n + 1);
    sum += term;
    if (term < 1e-17 * sum) break;
  }
  return Math.sign(x) * sum * expNegSquare(ax) * 1.1283791670955126;
}

/**
 * e^(−x²) with x² formed exactly: x = hi + lo (Dekker's split, hi of 26 bits so hi² is exact).
 * Rounding x² first would cost x²·2⁻⁵³ of relative error — 16 ulp at x = 2.9 (it made the erf
 * reference, not the kernel, the less accurate side).
 */
function expNegSquare(x: number): number {
  const c = 134217729 * x;
  const hi = c - (c - x);
  const lo = x - hi;
  return Math.exp(-hi * hi) * Math.exp(-(2 * hi * lo + lo * lo));
}

/** erfc(x) = 1 − erf(x), accurate in the tail too (x ≥ 1: the continued fraction, ≤ 17 ulp against glibc; below, 1 − erf cancels too little to matter). */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 1) return 1 - erf(x);
  return erfcLarge(x);
}

/** erfc(x) for x ≥ 1 by the Laplace continued fraction (modified Lentz). */
function erfcLarge(x: number): number {
  if (x > 27) return 0;
  // erfc(x) = exp(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …)))))
  const tiny = 1e-300;
  let f = x, c = x, d = 0;
  for (let n = 1; n < 5000; n++) {
    const a = n / 2;
    d = x + a * d;
    d = d === 0 ? tiny : d;
    c = x + a / c;
    c = c === 0 ? tiny : c;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return expNegSquare(x) / (f * 1.7724538509055159);
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
// Φ(x), from erfc in the lower tail so that it keeps its relative accuracy there.
const cdf = (x: number) => (x < 0 ? 0.5 * erfc(-x * Math.SQRT1_2) : 0.5 * (1 + erf(x * Math.SQRT1_2)));
// NaN-propagating max/min (PyTorch's maximum/minimum/max/min).
const nanMax = (a: number, b: number) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.max(a, b));
const nanMin = (a: number, b: number) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.min(a, b));

// ---- elementwise -------------------------------------------------------------------------------

/** C99 / PyTorch pow: like Math.pow except pow(1, y) = 1 and pow(−1, ±inf) = 1 (JS gives NaN). */
export function pow(a: number, b: number): number {
  if (a === 1 || (a === -1 && (b === Infinity || b === -Infinity))) return 1;
  return Math.pow(a, b);
}

/** x ** alpha with PyTorch's special exponents (pow_tensor_scalar): ½ is √x (so (−inf)^½ is NaN), −½ is
 * 1/√x, 2, 3, −1, −2 are products; every other exponent is pow. */
export function powScalar(x: number, alpha: number): number {
  switch (alpha) {
    case 0.5: return Math.sqrt(x);
    case -0.5: return 1 / Math.sqrt(x);
    case 2: return x * x;
    case 3: return x * x * x;
    case -1: return 1 / x;
    case -2: return 1 / (x * x);
    default: return pow(x, alpha);
  }
}

/** One element of a unary op. */
export function unaryScalar(op: UnaryName, x: number, alpha = 0, beta = 0): number {
  switch (op) {
    case 'neg': return -x;
    case 'exp': return Math.exp(x);
    case 'log': return Math.log(x);
    case 'sqrt': return Math.sqrt(x);
    case 'rsqrt': return 1 / Math.sqrt(x);
    case 'abs': return Math.abs(x);
    case 'relu': return Number.isNaN(x) ? NaN : x > 0 ? x : 0;
    case 'gelu': return x * cdf(x);
    case 'silu': return x * sigmoid(x);
    case 'tanh': return Math.tanh(x);
    case 'sigmoid': return sigmoid(x);
    case 'square': return x * x;
    case 'reciprocal': return 1 / x;
    case 'sign': return Number.isNaN(x) ? NaN : x > 0 ? 1 : x < 0 ? -1 : 0;
    case 'step': return x > 0 ? 1 : 0;
    case 'erf': return erf(x);
    case 'sin': return Math.sin(x);
    case 'cos': return Math.cos(x);
    case 'gelu_grad': return cdf(x) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);
    case 'silu_grad': {
      const s = sigmoid(x);
      return s * (1 + x * (1 - s));
    }
    case 'add_scalar': return x + alpha;
    case 'mul_scalar': return x * alpha;
    case 'pow_scalar': return powScalar(x, alpha);
    case 'rsub_scalar': return alpha - x;
    case 'rdiv_scalar': return alpha / x;
    case 'clamp': return nanMin(nanMax(x, alpha), beta);
  }
}

export function unary(op: UnaryName, x: Float64Array, alpha = 0, beta = 0): Float64Array {
  return x.map((v) => unaryScalar(op, v, alpha, beta));
}

/** int32 semantics (wrapping two's complement) of the unary ops int32 supports. */
export function unaryInt32(op: UnaryName, x: Float64Array, alpha = 0, beta = 0): Float64Array {
  return x.map((v) => {
    switch (op) {
      case 'neg': return -v | 0;
      case 'abs': return Math.abs(v) | 0;
      case 'sign': return Math.sign(v);
      case 'square': return Math.imul(v, v);
      case 'add_scalar': return (v + alpha) | 0;
      case 'mul_scalar': return Math.imul(v, alpha);
      case 'clamp': return Math.min(Math.max(v, alpha), beta);
      default: throw new Error(`unaryInt32: ${op} is not an int32 op`);
    }
  });
}

export function binaryScalar(op: BinaryName, a: number, b: number): number {
  switch (op) {
    case 'add': return a + b;
    case 'sub': return a - b;
    case 'mul': return a * b;
    case 'div': return a / b;
    case 'pow': return pow(a, b);
    case 'maximum': return nanMax(a, b);
    case 'minimum': return nanMin(a, b);
    case 'eq': return a === b ? 1 : 0;
    case 'ne': return a !== b ? 1 : 0;
    case 'lt': return a < b ? 1 : 0;
    case 'le': return a <= b ? 1 : 0;
    case 'gt': return a > b ? 1 : 0;
    case 'ge': return a >= b ? 1 : 0;
  }
}

/** Broadcasting binary op. int32: wrapping add/sub/mul as two's complement. */
export function binary(op: BinaryName, a: Arr, b: Arr, opts: { int32?: boolean } = {}): Arr {
  const shape = broadcastShapes(a.shape, b.shape);
  if (!shape) throw new Error(`shapes ${a.shape} and ${b.shape} do not broadcast`);
  const n = numel(shape);
  const out = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const x = a.data[broadcastIndex(k, shape, a.shape)];
    const y = b.data[broadcastIndex(k, shape, b.shape)];
    if (opts.int32 && op === 'mul') out[k] = Math.imul(x, y);
    else if (opts.int32 && (op === 'add' || op === 'sub')) out[k] = binaryScalar(op, x, y) | 0;
    else out[k] = binaryScalar(op, x, y);
  }
  return { data: out, shape };
}

export function where(cond: Arr, a: Arr, b: Arr): Arr {
  const shape = broadcastShapes(cond.shape, a.shape, b.shape);
  if (!shape) throw new Error('shapes do not broadcast');
  const n = numel(shape);
  const out = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const c = cond.data[broadcastIndex(k, shape, cond.shape)];
    out[k] = c !== 0 ? a.data[broadcastIndex(k, shape, a.shape)] : b.data[broadcastIndex(k, shape, b.shape)];
  }
  return { data: out, shape };
}

// ---- reductions --------------------------------------------------------------------------------

/** Calls fn(outIndex, inIndex) for every input element; out has the kept dimensions. */
function forEachReduced(shape: Shape, axes: number[], fn: (o: number, i: number) => void): Shape {
  const red = shape.map((_, d) => axes.includes(d));
  const outShape = shape.filter((_, d) => !red[d]);
  const n = numel(shape);
  const idx = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    let o = 0;
    for (let d = 0; d < shape.length; d++) if (!red[d]) o = o * shape[d] + idx[d];
    fn(o, i);
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return outShape;
}

function keptShape(shape: Shape, axes: number[], keepDims: boolean): Shape {
  return keepDims ? shape.map((s, d) => (axes.includes(d) ? 1 : s)) : shape.filter((_, d) => !axes.includes(d));
}

/** sum / mean / max / min over `axes` (sums in float64, sequentially). */
export function reduce(op: ReduceName, x: Arr, axes: number[], keepDims = false): Arr {
  const kept = x.shape.filter((_, d) => !axes.includes(d));
  const n = numel(kept);
  const init = op === 'max' ? -Infinity : op === 'min' ? Infinity : 0;
  const out = new Float64Array(n).fill(init);
  forEachReduced(x.shape, axes, (o, i) => {
    const v = x.data[i];
    if (op === 'sum' || op === 'mean') out[o] += v;
    else if (op === 'max') out[o] = nanMax(out[o], v);
    else out[o] = nanMin(out[o], v);
  });
  if (op === 'mean') {
    const count = axes.reduce((c, d) => c * x.shape[d], 1);
    for (let k = 0; k < n; k++) out[k] /= count;
  }
  return { data: out, shape: keptShape(x.shape, axes, keepDims) };
}

/** Σ|x| over the same groups as reduce(): the scale of a sum's rounding error. */
export function absSum(x: Arr, axes: number[]): Float64Array {
  const kept = x.shape.filter((_, d) => !axes.includes(d));
  const out = new Float64Array(numel(kept));
  forEachReduced(x.shape, axes, (o, i) => (out[o] += Math.abs(x.data[i])));
  return out;
}

/** First index of the max (min) along axis; NaN counts as the extreme (first NaN wins). */
export function argReduce(op: 'argmax' | 'argmin', x: Arr, axis: number, keepDims = false): Arr {
  const outer = numel(x.shape.slice(0, axis)), R = x.shape[axis], inner = numel(x.shape.slice(axis + 1));
  const out = new Float64Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let best = x.data[o * R * inner + i], bi = 0;
      for (let r = 1; r < R && !Number.isNaN(best); r++) {
        const v = x.data[(o * R + r) * inner + i];
        if (Number.isNaN(v) || (op === 'argmax' ? v > best : v < best)) (best = v), (bi = r);
      }
      out[o * inner + i] = bi;
    }
  }
  return { data: out, shape: keptShape(x.shape, [axis], keepDims) };
}

/** softmax or log-softmax along axis (max subtracted first). */
export function softmax(x: Arr, axis: number, log = false): Arr {
  const outer = numel(x.shape.slice(0, axis)), R = x.shape[axis], inner = numel(x.shape.slice(axis + 1));
  const out = new Float64Array(x.data.length);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const at = (r: number) => (o * R + r) * inner + i;
      let m = -Infinity;
      for (let r = 0; r < R; r++) m = nanMax(m, x.data[at(r)]);
      let s = 0;
      for (let r = 0; r < R; r++) s += Math.exp(x.data[at(r)] - m);
      for (let r = 0; r < R; r++)
        out[at(r)] = log ? x.data[at(r)] - m - Math.log(s) : Math.exp(x.data[at(r)] - m) / s;
    }
  }
  return { data: out, shape: x.shape.slice() };
}

/** Mean over rows of logsumexp(row) − row[label]; logits [M, C]. NaN for M = 0. */
export function crossEntropy(logits: Arr, labels: ArrayLike<number>): number {
  const [M, C] = logits.shape;
  let total = 0;
  for (let m = 0; m < M; m++) {
    const row = logits.data.subarray(m * C, (m + 1) * C);
    let mx = -Infinity;
    for (const v of row) mx = nanMax(mx, v);
    let s = 0;
    for (const v of row) s += Math.exp(v - mx);
    total += mx + Math.log(s) - row[labels[m]];
  }
  return total / M;
}

/** d loss / d logits = (softmax − onehot)·g/M. */
export function crossEntropyBackward(logits: Arr, labels: ArrayLike<number>, g: number): Arr {
  const [M, C] = logits.shape;
  const p = softmax(logits, 1).data;
  for (let m = 0; m < M; m++) {
    for (let c = 0; c < C; c++) p[m * C + c] = ((p[m * C + c] - (c === labels[m] ? 1 : 0)) * g) / M;
  }
  return { data: p, shape: logits.shape.slice() };
}

// ---- dtypes ------------------------------------------------------------------------------------

export type FloatDType = 'float32' | 'float64' | 'float16' | 'bfloat16';

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

export function roundF32(x: number): number {
  return Math.fround(x);
}

/** floor(log2(x)) for finite x > 0, exact (Math.log2 may round across a power of two). */
function exponentOf(x: number): number {
  let e = Math.floor(Math.log2(x));
  if (Math.pow(2, e) > x) e--;
  else if (Math.pow(2, e + 1) <= x) e++;
  return e;
}

/** Round to the nearest bfloat16 (ties to even), via float32. */
export function roundBF16(x: number): number {
  f32buf[0] = x;
  const u = u32buf[0];
  if ((u & 0x7fffffff) > 0x7f800000) return NaN;
  u32buf[0] = ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) << 16;
  return f32buf[0];
}

/** Round to the nearest float16 (ties to even; overflow to ±inf; subnormals kept). */
export function roundF16(x: number): number {
  if (!Number.isFinite(x)) return x;
  const ax = Math.abs(x);
  if (ax >= 65520) return Math.sign(x) * Infinity;
  // The spacing of float16 values near ax: 2^(e − 10), at least 2^−24 (subnormals).
  const e = Math.max(exponentOf(ax || 1), -14);
  const ulp = Math.pow(2, e - 10);
  let q = ax / ulp;
  const fl = Math.floor(q);
  const rem = q - fl;
  q = rem > 0.5 || (rem === 0.5 && fl % 2 === 1) ? fl + 1 : fl;
  return Math.sign(x) * q * ulp;
}

export function roundTo(dtype: FloatDType | 'int32', x: number): number {
  switch (dtype) {
    case 'float32': return roundF32(x);
    case 'float16': return roundF16(x);
    case 'bfloat16': return roundBF16(x);
    default: return x;
  }
}

/** The unit roundoff u (half the spacing at 1) of a float dtype. */
export function unitRoundoff(dtype: FloatDType): number {
  switch (dtype) {
    case 'float64': return 2 ** -53;
    case 'float32': return 2 ** -24;
    case 'float16': return 2 ** -11;
    case 'bfloat16': return 2 ** -8;
  }
}

/** The spacing of the dtype's values at |x| (one ulp), counting subnormals. */
export function ulp(dtype: FloatDType, x: number): number {
  const ax = Math.abs(x);
  const minExp = { float64: -1022, float32: -126, float16: -14, bfloat16: -126 }[dtype];
  const mant = { float64: 52, float32: 23, float16: 10, bfloat16: 7 }[dtype];
  const e = Math.max(ax > 0 ? exponentOf(ax) : minExp, minExp);
  return Math.pow(2, e - mant);
}

// ---- random inputs -----------------------------------------------------------------------------

/** A seeded generator (mulberry32) of uniform [0, 1) and normal numbers. */
export class Rng {
  private s: number;
  constructor(readonly seed: number) {
    this.s = seed >>> 0;
  }
  uniform(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  normal(): number {
    const u = 1 - this.uniform(), v = this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.uniform() * (hi - lo + 1));
  }
  normals(n: number, scale = 1): Float64Array {
    const a = new Float64Array(n);
    for (let i = 0; i < n; i++) a[i] = this.normal() * scale;
    return a;
  }
  uniforms(n: number, lo: number, hi: number): Float64Array {
    const a = new Float64Array(n);
    for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * this.uniform();
    return a;
  }
  ints(n: number, lo: number, hi: number): Float64Array {
    const a = new Float64Array(n);
    for (let i = 0; i < n; i++) a[i] = this.int(lo, hi);
    return a;
  }
}
