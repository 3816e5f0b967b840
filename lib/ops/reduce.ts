// ops/reduce.ts — reductions (sum, mean, max, min, argmax, argmin), softmax / logSoftmax, and the
// losses (mseLoss, crossEntropy), with their gradients.
//
// Reductions take tfjs-style positional arguments: (t, axis?, keepDims = false); axis is a number or
// an array of numbers, negative counting from the end, and all axes when left out.
import { native } from '../native';
import { Tensor, fromHandle, checkTensor, checkFloating, checkSameKind } from '../tensor';
import { record, isGradEnabled } from '../autograd';
import { shapeStr, normAxes, normAxis, sameShape, typeError, rangeError, describe, optionsOf } from '../errors';
import { add, sub, mul, div, eq, ne, exp, square, neg } from './elementwise';
import { reshape, expand } from './shape';
import { zeros, full } from './creation';

type Axis = number | number[] | null | undefined;

function reducedShape(shape: readonly number[], axes: readonly number[], keepDims: boolean): number[] {
  const out: number[] = [];
  for (let i = 0; i < shape.length; i++) {
    if (axes.includes(i)) {
      if (keepDims) out.push(1);
    } else {
      out.push(shape[i]);
    }
  }
  return out;
}

function checkKeepDims(fn: string, keepDims: unknown): boolean {
  if (typeof keepDims !== 'boolean') typeError(fn, `'keepDims' must be a boolean, got ${describe(keepDims)}`);
  return keepDims;
}

/** g (the gradient of a reduction over `axes`) broadcast back to the input's shape, as a view. */
function expandBack(g: Tensor, inShape: readonly number[], axes: readonly number[]): Tensor {
  const keep = inShape.map((d, i) => (axes.includes(i) ? 1 : d));
  return expand(reshape(g, keep), inShape as number[]);
}

/**
 * g summed down to `shape` (the inverse of broadcasting): sums the leading axes g has in excess
 * and the axes where shape has 1. Returns g itself when the shapes already agree.
 */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g._shape, shape)) return g;
  const lead = g._shape.length - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g._shape.length; i++) if (i < lead || (shape[i - lead] === 1 && g._shape[i] !== 1)) axes.push(i);
  const s = sum(g, axes, true);
  if (sameShape(s._shape, shape)) return s;
  const r = reshape(s, shape as number[]);
  s.dispose();
  return r;
}

function reduceImpl(fn: string, op: 'sum' | 'mean' | 'max' | 'min', x: Tensor, axis: Axis, keepDims: boolean): { out: Tensor; axes: number[] } {
  checkTensor(fn, 'x', x);
  const axes = normAxes(fn, axis, x._shape.length, x._shape);
  checkKeepDims(fn, keepDims);
  if ((op === 'max' || op === 'min') && axes.some((a) => x._shape[a] === 0))
    rangeError(fn, `cannot take the ${op} over an empty axis of shape ${shapeStr(x._shape)}`);
  const shape = reducedShape(x._shape, axes, keepDims);
  return { out: fromHandle(native().reduce(op, x._h, axes, keepDims), x.dtype, shape, x._dev), axes };
}

/** Sum over axis (all axes when left out). */
export function sum(x: Tensor, axis?: Axis, keepDims = false): Tensor {
  const { out, axes } = reduceImpl('sum', 'sum', x, axis, keepDims);
  const inShape = x._shape;
  return record('Sum', [x], out, [], (g) => [expandBack(g, inShape, axes)]);
}

/** Mean over axis (all axes when left out). */
export function mean(x: Tensor, axis?: Axis, keepDims = false): Tensor {
  const { out, axes } = reduceImpl('mean', 'mean', x, axis, keepDims);
  const inShape = x._shape;
  const n = axes.reduce((p, a) => p * inShape[a], 1);
  return record('Mean', [x], out, [], (g) => [expandBack(div(g, n), inShape, axes)]);
}

/** Maximum over axis; the gradient goes to the maxima, split evenly between ties. */
export function max(x: Tensor, axis?: Axis, keepDims = false): Tensor {
  return extremum('max', x, axis, keepDims);
}

/** Minimum over axis; the gradient goes to the minima, split evenly between ties. */
export function min(x: Tensor, axis?: Axis, keepDims = false): Tensor {
  return extremum('min', x, axis, keepDims);
}

function extremum(op: 'max' | 'min', x: Tensor, axis: Axis, keepDims: boolean): Tensor {
  const { out, axes } = reduceImpl(op, op, x, axis, keepDims);
  const inShape = x._shape;
  return record(op === 'max' ? 'Max' : 'Min', [x], out, [x, out], (g, [xs, m]) => {
    // the maxima, or the NaNs where the result is NaN (NaN ≠ NaN: the gradient would be NaN · 0)
    const mb = expandBack(m, inShape, axes);
    const hit = add(eq(xs, mb), mul(ne(xs, xs), ne(mb, mb)));
    const count = sum(hit, axes, true);
    return [mul(hit, expandBack(div(g, reshape(count, m._shape as number[])), inShape, axes))];
  });
}

function argImpl(op: 'argmax' | 'argmin', x: Tensor, axis: number | undefined | null, keepDims: boolean): Tensor {
  checkTensor(op, 'x', x);
  checkKeepDims(op, keepDims);
  if (axis === undefined || axis === null) {
    // over all elements, as an index into the flattened tensor
    if (x.size === 0) rangeError(op, `cannot take the ${op} of an empty tensor ${shapeStr(x._shape)}`);
    const flat = reshape(x, [-1]);
    try {
      const r = fromHandle(native().argReduce(op, flat._h, 0, false), 'int32', [], x._dev);
      if (!keepDims) return r;
      const k = reshape(r, x._shape.map(() => 1) as number[]);
      r.dispose();
      return k;
    } finally {
      flat.dispose();
    }
  }
  const a = normAxis(op, 'axis', axis, x._shape.length, x._shape);
  if (x._shape[a] === 0) rangeError(op, `cannot take the ${op} over an empty axis of shape ${shapeStr(x._shape)}`);
  const shape = reducedShape(x._shape, [a], keepDims);
  return fromHandle(native().argReduce(op, x._h, a, keepDims), 'int32', shape, x._dev);
}

/** Index (int32) of the maximum along axis, or into the flattened tensor when axis is left out. No grad. */
export function argmax(x: Tensor, axis?: number | null, keepDims = false): Tensor {
  return argImpl('argmax', x, axis, keepDims);
}

export function argmin(x: Tensor, axis?: number | null, keepDims = false): Tensor {
  return argImpl('argmin', x, axis, keepDims);
}

// ---------------------------------------------------------------------------------------------
// softmax

function softmaxImpl(fn: string, x: Tensor, axis: number, log: boolean): { out: Tensor; a: number } {
  checkTensor(fn, 'x', x);
  checkFloating(fn, 'x', x);
  if (x._shape.length === 0) rangeError(fn, `'x' must have at least one dimension, got a 0-d tensor`);
  const a = normAxis(fn, 'axis', axis, x._shape.length, x._shape);
  return { out: fromHandle(native().softmax(x._h, a, log), x.dtype, x._shape, x._dev), a };
}

/** exp(x) / Σ exp(x) along axis (default the last). */
export function softmax(x: Tensor, axis = -1): Tensor {
  const { out, a } = softmaxImpl('softmax', x, axis, false);
  // dx = y ⊙ (g − Σ g⊙y)
  return record('Softmax', [x], out, [out], (g, [y]) => [mul(y, sub(g, sum(mul(g, y), a, true)))]);
}

/** x − log Σ exp(x) along axis (default the last). */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  const { out, a } = softmaxImpl('logSoftmax', x, axis, true);
  // dx = g − softmax(x) ⊙ Σ g
  return record('LogSoftmax', [x], out, [out], (g, [y]) => [sub(g, mul(exp(y), sum(g, a, true)))]);
}

// ---------------------------------------------------------------------------------------------
// losses

const REDUCTIONS = { mean: 0, sum: 1, none: 2 } as const;

/** A loss's `reduction` option, checked (default 'mean'). */
function reductionOf(fn: string, v: unknown): keyof typeof REDUCTIONS {
  const r = v ?? 'mean';
  if (typeof r !== 'string' || !Object.prototype.hasOwnProperty.call(REDUCTIONS, r))
    (typeof r === 'string' ? rangeError : typeError)(fn, `'reduction' must be 'mean', 'sum' or 'none', got ${describe(r)}`);
  return r as keyof typeof REDUCTIONS;
}

/**
 * (pred − target)², reduced as PyTorch's F.mse_loss: `reduction` 'mean' (default: over all elements),
 * 'sum', or 'none' (the squares, pred's shape). Gradients for both.
 */
export function mseLoss(pred: Tensor, target: Tensor, opts: { reduction?: 'mean' | 'sum' | 'none' } = {}): Tensor {
  const fn = 'mseLoss';
  checkTensor(fn, 'pred', pred);
  checkTensor(fn, 'target', target);
  checkSameKind(fn, ['pred', 'target'], [pred, target]);
  checkFloating(fn, 'pred', pred);
  if (!sameShape(pred._shape, target._shape))
    rangeError(fn, `'pred' ${shapeStr(pred._shape)} and 'target' ${shapeStr(target._shape)} must have the same shape`);
  const reduction = reductionOf(fn, optionsOf(fn, opts, ['reduction']).reduction);
  if (reduction !== 'mean') {
    const d = sub(pred, target);
    const s = square(d);
    d.dispose();
    if (reduction === 'none') return s;
    const t = sum(s);
    s.dispose();
    return t;
  }
  if (pred._dev.name === 'cpu' && (pred.dtype === 'float32' || pred.dtype === 'float64')) {
    // One fused pass (sub, square and mean were three over the data and two full-size temporaries:
    // 0.44 ms for 2^21 float32 against torch's 0.18); d/dpred = 2(pred − target)·g/n = −d/dtarget.
    const out = fromHandle(native().mseLoss(pred._h, target._h), pred.dtype, [], pred._dev);
    const n = pred.size;
    return record('MseLoss', [pred, target], out, [pred, target], (g, [p, t], needs) => {
      const d = sub(p, t);
      const gp = mul(d, mul(g, 2 / n));
      d.dispose();
      return [needs[0] ? gp : null, needs[1] ? neg(gp) : null];
    });
  }
  // Composed of recorded ops; the graph keeps what it needs, so the intermediates go now.
  const d = sub(pred, target);
  const s = square(d);
  d.dispose();
  const m = mean(s);
  s.dispose();
  return m;
}

/** crossEntropy's options, PyTorch's F.cross_entropy's. */
export interface CrossEntropyOptions {
  /** 'mean' (default: over the rows not ignored; NaN if all are), 'sum', or 'none' (a loss per row). */
  reduction?: 'mean' | 'sum' | 'none';
  /**
   * Class weights [C], of the logits' dtype and device: a row's loss is scaled by its label's weight
   * (and label smoothing's share weighs each class), and 'mean' divides by the sum of the weights of
   * the rows not ignored, as PyTorch. Not differentiated (PyTorch neither).
   */
  weight?: Tensor | null;
  /** Rows whose label is this value add nothing, to the loss or the gradient (default −100, PyTorch's). */
  ignoreIndex?: number;
  /** ε in [0, 1]: the target is (1 − ε)·onehot + ε/C (default 0). */
  labelSmoothing?: number;
}

/**
 * −log softmax(logits)[label] a row, reduced: logits [M, C] (or [C] with a 0-d label), labels int32 [M]
 * with values in [0, C) or `ignoreIndex`. With label smoothing ε a row's loss is
 * logsumexp(row) − (1 − ε)·row[label] − ε·mean(row); with class weights w,
 * (1 − ε)·w[label]·(lse − row[label]) + ε/C·Σ_c w[c]·(lse − row[c]). Gradient for logits.
 */
export function crossEntropy(logits: Tensor, labels: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const fn = 'crossEntropy';
  checkTensor(fn, 'logits', logits);
  checkTensor(fn, 'labels', labels);
  checkFloating(fn, 'logits', logits);
  opts = optionsOf(fn, opts, ['reduction', 'ignoreIndex', 'labelSmoothing', 'weight']);
  const reduction = reductionOf(fn, opts.reduction);
  const red = REDUCTIONS[reduction];
  const ignore = opts.ignoreIndex ?? -100;
  if (typeof ignore !== 'number') typeError(fn, `'ignoreIndex' must be an integer, got ${describe(ignore)}`);
  if (!Number.isInteger(ignore) || ignore < -(2 ** 31) || ignore >= 2 ** 31) rangeError(fn, `'ignoreIndex' must be an int32 integer, got ${ignore}`);
  const eps = opts.labelSmoothing ?? 0;
  if (typeof eps !== 'number') typeError(fn, `'labelSmoothing' must be a number in [0, 1], got ${describe(eps)}`);
  if (!(eps >= 0 && eps <= 1)) rangeError(fn, `'labelSmoothing' must be in [0, 1], got ${eps}`);
  if (labels.dtype !== 'int32') typeError(fn, `'labels' must be int32 class indices, got ${labels.dtype}`);
  if (labels._dev.name !== logits._dev.name) typeError(fn, `'logits' is on ${logits.device} but 'labels' is on ${labels.device}`);
  const weight = opts.weight ?? undefined;  // null: none, as torch's None
  if (weight !== undefined) {
    checkTensor(fn, 'weight', weight);
    checkSameKind(fn, ['logits', 'weight'], [logits, weight]);
    // torch refuses it in the forward too, where the op would be recorded (not under no_grad)
    if (weight.requiresGrad && isGradEnabled())
      typeError(fn, `'weight' requires gradients, but class weights are not differentiated (PyTorch neither): pass weight.detach()`);
    if (logits._shape.length === 1 || logits._shape.length === 2) {
      const c = logits._shape[logits._shape.length - 1];
      if (weight._shape.length !== 1 || weight._shape[0] !== c)
        rangeError(fn, `'weight' must be [${c}] (one weight a class) to match 'logits' ${shapeStr(logits._shape)}, got ${shapeStr(weight._shape)}`);
    }
  }
  if (logits._shape.length === 1 && labels._shape.length === 0) {
    const l2 = reshape(logits, [1, -1]);
    const y2 = reshape(labels, [1]);
    try {
      const r = crossEntropy(l2, y2, opts);
      if (reduction !== 'none') return r;
      const r0 = reshape(r, []); // one row's loss, 0-d as the label
      r.dispose();
      return r0;
    } finally {
      l2.dispose();
      y2.dispose();
    }
  }
  if (logits._shape.length !== 2) rangeError(fn, `'logits' must be [M, C] (or [C]), got ${shapeStr(logits._shape)}`);
  const [m, c] = logits._shape;
  if (labels._shape.length !== 1 || labels._shape[0] !== m)
    rangeError(fn, `'labels' must be [${m}] to match 'logits' ${shapeStr(logits._shape)}, got ${shapeStr(labels._shape)}`);
  if (m === 0) {
    // no rows (a batch filtered empty): torch's NaN mean (0 / 0), 0 sum, [] for 'none'; the gradient is empty
    const shape = logits._shape.slice(), like = { dtype: logits.dtype, device: logits.device };
    const out = red === 2 ? zeros([0], like) : full([], red === 0 ? NaN : 0, like);
    return record('CrossEntropy', [logits, labels], out, [], () => [zeros(shape, like), null]);
  }
  if (c === 0) rangeError(fn, `'logits' ${shapeStr(logits._shape)} has no classes`);
  const wh = weight ? weight._h : null;
  const out = fromHandle(native().crossEntropy(logits._h, labels._h, ignore, eps, red, wh), logits.dtype, red === 2 ? [m] : [], logits._dev);
  const saved = weight ? [logits, labels, weight] : [logits, labels];
  return record('CrossEntropy', [logits, labels], out, saved, (g, [l, y, w]) => [
    fromHandle(native().crossEntropyBackward(l._h, y._h, g._h, ignore, eps, red, w ? w._h : null), l.dtype, l._shape, l._dev),
    null,
  ]);
}
