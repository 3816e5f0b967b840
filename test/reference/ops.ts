// reference/ops.ts — float64 references for the core ops (no structura code, no autograd): plain
// loops over row-major Float64Arrays. They are the test oracle for lib/ops/*, written the obvious way.

export interface NDArray {
  data: Float64Array;
  shape: number[];
}

export function nd(data: ArrayLike<number>, shape: number[]): NDArray {
  return { data: Float64Array.from(data), shape: shape.slice() };
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return idx;
}

export function broadcastShape(...shapes: number[][]): number[] {
  const n = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    let d = 1;
    for (const s of shapes) {
      const v = i < n - s.length ? 1 : s[i - (n - s.length)];
      if (v !== 1) {
        if (d !== 1 && d !== v) throw new Error(`reference: shapes ${JSON.stringify(shapes)} do not broadcast`);
        d = v;
      }
    }
    out.push(d);
  }
  return out;
}

/** Element of a (broadcast to `shape`) at the multi-index idx of `shape`. */
function at(a: NDArray, idx: readonly number[]): number {
  const lead = idx.length - a.shape.length;
  let off = 0;
  let stride = 1;
  for (let d = a.shape.length - 1; d >= 0; d--) {
    const i = a.shape[d] === 1 ? 0 : idx[d + lead];
    off += i * stride;
    stride *= a.shape[d];
  }
  return a.data[off];
}

export function map(a: NDArray, f: (x: number) => number): NDArray {
  return { data: a.data.map(f), shape: a.shape.slice() };
}

export function zip(arrays: NDArray[], f: (...xs: number[]) => number): NDArray {
  const shape = broadcastShape(...arrays.map((a) => a.shape));
  const n = numel(shape);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const idx = unravel(i, shape);
    out[i] = f(...arrays.map((a) => at(a, idx)));
  }
  return { data: out, shape };
}

// ---- scalar functions ----
/** erf to ~1e-16 (Abramowitz–Stegun 7.1.26 is too coarse): series for small |x|, continued fraction beyond. */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax < 2.5) {
    // Maclaurin series: erf x = 2/√π Σ (−1)^n x^(2n+1) / (n! (2n+1))
    let term = ax;
    let sum = ax;
    for (let n = 1; n < 200; n++) {
      term *= (-ax * ax) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc x = e^(−x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + …)))) (Lentz)
  let f = ax;
  let c = ax;
  let dd = 0;
  for (let n = 1; n < 300; n++) {
    const an = n / 2;
    dd = ax + an * dd;
    dd = 1 / dd;
    c = ax + an / c;
    const delta = c * dd;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

export const gelu = (x: number): number => 0.5 * x * (1 + erf(x / Math.SQRT2));
export const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));
export const silu = (x: number): number => x * sigmoid(x);

// ---- reductions ----
function reduceAxes(a: NDArray, axes: number[] | null, keepDims: boolean, init: number, f: (acc: number, x: number) => number): NDArray {
  const nd_ = a.shape.length;
  const ax = axes === null ? Array.from({ length: nd_ }, (_, i) => i) : axes.map((x) => (x < 0 ? x + nd_ : x));
  const outFull = a.shape.map((d, i) => (ax.includes(i) ? 1 : d));
  const outStr = stridesOf(outFull);
  const acc = new Float64Array(numel(outFull)).fill(init);
  for (let i = 0; i < a.data.length; i++) {
    const idx = unravel(i, a.shape);
    let o = 0;
    for (let d = 0; d < nd_; d++) if (!ax.includes(d)) o += idx[d] * outStr[d];
    acc[o] = f(acc[o], a.data[i]);
  }
  const shape = keepDims ? outFull : a.shape.filter((_, i) => !ax.includes(i));
  return { data: acc, shape };
}

export function sum(a: NDArray, axes: number[] | null = null, keepDims = false): NDArray {
  return reduceAxes(a, axes, keepDims, 0, (s, x) => s + x);
}
export function mean(a: NDArray, axes: number[] | null = null, keepDims = false): NDArray {
  const s = sum(a, axes, keepDims);
  const n = a.data.length / Math.max(1, s.data.length);
  return map(s, (x) => x / n);
}
export function max(a: NDArray, axes: number[] | null = null, keepDims = false): NDArray {
  return reduceAxes(a, axes, keepDims, -Infinity, (m, x) => Math.max(m, x));
}
export function min(a: NDArray, axes: number[] | null = null, keepDims = false): NDArray {
  return reduceAxes(a, axes, keepDims, Infinity, (m, x) => Math.min(m, x));
}

/** Index of the first maximum (or minimum) along axis. */
export function argReduce(a: NDArray, axis: number, keepDims: boolean, isMax: boolean): NDArray {
  const ax = axis < 0 ? axis + a.shape.length : axis;
  const outFull = a.shape.map((d, i) => (i === ax ? 1 : d));
  const best = new Float64Array(numel(outFull)).fill(isMax ? -Infinity : Infinity);
  const arg = new Float64Array(numel(outFull)).fill(-1);
  const outStr = stridesOf(outFull);
  for (let i = 0; i < a.data.length; i++) {
    const idx = unravel(i, a.shape);
    let o = 0;
    for (let d = 0; d < a.shape.length; d++) if (d !== ax) o += idx[d] * outStr[d];
    const v = a.data[i];
    if (arg[o] < 0 || (isMax ? v > best[o] : v < best[o])) {
      best[o] = v;
      arg[o] = idx[ax];
    }
  }
  return { data: arg, shape: keepDims ? outFull : a.shape.filter((_, i) => i !== ax) };
}

/** softmax (or log-softmax) along axis, computed stably in float64. */
export function softmax(a: NDArray, axis = -1, log = false): NDArray {
  const ax = axis < 0 ? axis + a.shape.length : axis;
  const m = max(a, [ax], true);
  const shifted = zip([a, m], (x, mm) => x - mm);
  const lse = sum(map(shifted, Math.exp), [ax], true);
  return log ? zip([shifted, lse], (x, s) => x - Math.log(s)) : zip([shifted, lse], (x, s) => Math.exp(x) / s);
}

export function mse(p: NDArray, t: NDArray): NDArray {
  let s = 0;
  for (let i = 0; i < p.data.length; i++) s += (p.data[i] - t.data[i]) ** 2;
  return { data: Float64Array.of(s / p.data.length), shape: [] };
}

/** Mean over rows of −log softmax(logits)[label]; logits [M, C], labels [M]. */
/** F.cross_entropy with reduction, ignore_index, label_smoothing and class weights, in float64: a row's
 * loss is (1 − ε)·w[y]·(−log p[y]) + ε/C·Σ_j w[j]·(−log p[j]) (w = 1 without weights), and 'mean'
 * divides by Σ w[y] over the rows not ignored (their count without weights). */
export function crossEntropyWith(
  logits: NDArray,
  labels: NDArray,
  o: { reduction: 'mean' | 'sum' | 'none'; ignoreIndex: number; labelSmoothing: number; weight?: ArrayLike<number> },
): NDArray {
  const [m, c] = logits.shape;
  const rows = new Float64Array(m);
  const w = (j: number) => (o.weight ? o.weight[j] : 1);
  let kept = 0;
  for (let r = 0; r < m; r++) {
    const y = labels.data[r];
    if (y === o.ignoreIndex) continue;
    kept += w(y);
    let mx = -Infinity;
    for (let j = 0; j < c; j++) mx = Math.max(mx, logits.data[r * c + j]);
    let z = 0;
    for (let j = 0; j < c; j++) z += Math.exp(logits.data[r * c + j] - mx);
    const lse = Math.log(z) + mx;
    let spread = 0;
    for (let j = 0; j < c; j++) spread += w(j) * (lse - logits.data[r * c + j]);
    rows[r] = (1 - o.labelSmoothing) * w(y) * (lse - logits.data[r * c + y]) + (o.labelSmoothing / c) * spread;
  }
  if (o.reduction === 'none') return { data: rows, shape: [m] };
  const total = rows.reduce((a, v) => a + v, 0);
  return { data: Float64Array.of(o.reduction === 'sum' ? total : total / kept), shape: [] };
}

export function crossEntropy(logits: NDArray, labels: NDArray): NDArray {
  const [m, c] = logits.shape;
  let s = 0;
  for (let r = 0; r < m; r++) {
    let mx = -Infinity;
    for (let j = 0; j < c; j++) mx = Math.max(mx, logits.data[r * c + j]);
    let z = 0;
    for (let j = 0; j < c; j++) z += Math.exp(logits.data[r * c + j] - mx);
    s += Math.log(z) + mx - logits.data[r * c + labels.data[r]];
  }
  return { data: Float64Array.of(s / m), shape: [] };
}

// ---- matmul ----
/** numpy matmul: 1-D promotion, batch broadcast. */
export function matmul(a: NDArray, b: NDArray): NDArray {
  const a2 = a.shape.length === 1 ? { data: a.data, shape: [1, a.shape[0]] } : a;
  const b2 = b.shape.length === 1 ? { data: b.data, shape: [b.shape[0], 1] } : b;
  const [m, k] = a2.shape.slice(-2);
  const [k2, n] = b2.shape.slice(-2);
  if (k !== k2) throw new Error('reference matmul: inner dimensions differ');
  const batch = broadcastShape(a2.shape.slice(0, -2), b2.shape.slice(0, -2));
  const nb = numel(batch);
  const out = new Float64Array(nb * m * n);
  const offOf = (x: NDArray, bi: number, mat: number): number => {
    const bs = x.shape.slice(0, -2);
    const idx = unravel(bi, batch);
    const lead = batch.length - bs.length;
    let off = 0;
    let stride = 1;
    for (let d = bs.length - 1; d >= 0; d--) {
      off += (bs[d] === 1 ? 0 : idx[d + lead]) * stride;
      stride *= bs[d];
    }
    return off * mat;
  };
  for (let bi = 0; bi < nb; bi++) {
    const ao = offOf(a2, bi, m * k);
    const bo = offOf(b2, bi, k * n);
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += a2.data[ao + i * k + p] * b2.data[bo + p * n + j];
        out[bi * m * n + i * n + j] = s;
      }
  }
  const shape = [...batch, m, n];
  if (b.shape.length === 1) shape.pop();
  if (a.shape.length === 1) shape.splice(shape.length - (b.shape.length === 1 ? 1 : 2), 1);
  return { data: out, shape };
}

// ---- shapes ----
export function permute(a: NDArray, perm: number[]): NDArray {
  const shape = perm.map((p) => a.shape[p]);
  const inStr = stridesOf(a.shape);
  const out = new Float64Array(a.data.length);
  for (let i = 0; i < out.length; i++) {
    const idx = unravel(i, shape);
    let off = 0;
    for (let d = 0; d < perm.length; d++) off += idx[d] * inStr[perm[d]];
    out[i] = a.data[off];
  }
  return { data: out, shape };
}

export function narrow(a: NDArray, axis: number, start: number, length: number): NDArray {
  const ax = axis < 0 ? axis + a.shape.length : axis;
  const shape = a.shape.slice();
  shape[ax] = length;
  const inStr = stridesOf(a.shape);
  const out = new Float64Array(numel(shape));
  for (let i = 0; i < out.length; i++) {
    const idx = unravel(i, shape);
    idx[ax] += start;
    out[i] = a.data[idx.reduce((o, v, d) => o + v * inStr[d], 0)];
  }
  return { data: out, shape };
}

export function concat(arrays: NDArray[], axis: number): NDArray {
  const ax = axis < 0 ? axis + arrays[0].shape.length : axis;
  const shape = arrays[0].shape.slice();
  shape[ax] = arrays.reduce((s, a) => s + a.shape[ax], 0);
  const out = new Float64Array(numel(shape));
  const outStr = stridesOf(shape);
  let base = 0;
  for (const a of arrays) {
    for (let i = 0; i < a.data.length; i++) {
      const idx = unravel(i, a.shape);
      idx[ax] += base;
      out[idx.reduce((o, v, d) => o + v * outStr[d], 0)] = a.data[i];
    }
    base += a.shape[ax];
  }
  return { data: out, shape };
}
