// ops/elementwise.ts — elementwise ops and their gradients, side by side.
//
// Binary ops broadcast as numpy does; either operand may be a number (scalar kernels where the addon
// has them, else a 0-d tensor). Gradients are written with the public ops; a broadcast input gets
// the gradient summed back to its shape (sumTo). Comparisons and sign give no gradient.
import { native, type UnaryOp, type BinaryOp } from '../native';
import { Tensor, fromHandle, checkTensor, checkSameKind, checkFloating } from '../tensor';
import { record } from '../autograd';
import { shapeStr, broadcastShapes, typeError, rangeError, checkNumber, aDType, optionsOf, describe, checkProbability } from '../errors';
import { scalarLike, seedOf } from './creation';
import { sumTo } from './reduce';
import { alias } from './shape';

export type Operand = Tensor | number;

// ---------------------------------------------------------------------------------------------
// plumbing

/** Runs a native unary op on x (output: x's shape and dtype). */
function un(op: UnaryOp, x: Tensor, alpha?: number, beta?: number): Tensor {
  const h = alpha === undefined ? native().unary(op, x._h) : beta === undefined ? native().unary(op, x._h, alpha) : native().unary(op, x._h, alpha, beta);
  return fromHandle(h, x.dtype, x._shape, x._dev);
}

/** Runs a native binary op on two checked tensors of one dtype and device. */
function bin(fn: string, op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  const shape = broadcastShapes(a._shape, b._shape);
  if (!shape) rangeError(fn, `'a' ${shapeStr(a._shape)} and 'b' ${shapeStr(b._shape)} do not broadcast`);
  return fromHandle(native().binary(op, a._h, b._h), a.dtype, shape, a._dev);
}

function checkUnary(fn: string, x: unknown, floating = true): asserts x is Tensor {
  checkTensor(fn, 'x', x);
  if (floating) checkFloating(fn, 'x', x);
}

const INT_RANGE: Partial<Record<string, [number, number]>> = { int32: [-(2 ** 31), 2 ** 31 - 1], uint8: [0, 255], uint16: [0, 65535] };

/** Checks a binary op's operands: tensors (same dtype and device) or numbers, at least one tensor. A
 * number beside an integer tensor must be a value of its dtype: there is no type promotion, and
 * rounding 7.5 to 7 (or NaN to 0) would compare, clamp or select silently wrong. */
function checkOperands(fn: string, a: unknown, b: unknown): void {
  if (typeof a === 'number' && typeof b === 'number') typeError(fn, `at least one of 'a' and 'b' must be a Tensor, got two numbers`);
  if (typeof a !== 'number') checkTensor(fn, 'a', a);
  if (typeof b !== 'number') checkTensor(fn, 'b', b);
  if (a instanceof Tensor && b instanceof Tensor) checkSameKind(fn, ['a', 'b'], [a, b]);
  else if (typeof a === 'number') checkScalarOperand(fn, 'a', a, b as Tensor, 'b');
  else checkScalarOperand(fn, 'b', b as number, a as Tensor, 'a');
}

function checkScalarOperand(fn: string, arg: string, v: number, t: Tensor, other: string): void {
  const range = INT_RANGE[t.dtype];
  if (range && !(Number.isInteger(v) && v >= range[0] && v <= range[1]))
    typeError(fn, `'${arg}' is ${v}, which is not ${aDType(t.dtype)} value, and '${other}' is ${t.dtype} (no type promotion: cast '${other}' to a floating dtype first)`);
}

/** Integer dtypes take number operands through a 0-d tensor and the tensor kernels (the scalar row
 * kernels take float operands: −(−2^31) and 2 − x do not fit them). */
const isInt = (t: Tensor): boolean => INT_RANGE[t.dtype] !== undefined;

/** A binary op with a number operand made a 0-d tensor of the other's dtype (disposed after). */
function withScalar(fn: string, a: Operand, b: Operand, f: (x: Tensor, y: Tensor) => Tensor): Tensor {
  checkOperands(fn, a, b);
  const ta = typeof a === 'number' ? scalarLike(a, b as Tensor) : a;
  const tb = typeof b === 'number' ? scalarLike(b, a as Tensor) : b;
  try {
    return f(ta, tb);
  } finally {
    if (ta !== a) ta.dispose();
    if (tb !== b) tb.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// arithmetic

/** a + b (broadcasting). */
export function add(a: Operand, b: Operand): Tensor {
  checkOperands('add', a, b);
  if (typeof a === 'number' || typeof b === 'number') {
    const [t, s] = typeof a === 'number' ? [b as Tensor, a] : [a, b as number];
    return record('AddScalar', [t], un('add_scalar', t, s), [], (g) => [g]);
  }
  const out = bin('add', 'add', a, b);
  const sa = a._shape, sb = b._shape;
  return record('Add', [a, b], out, [], (g, _, needs) => [needs[0] ? sumTo(g, sa) : null, needs[1] ? sumTo(g, sb) : null]);
}

/** a − b (broadcasting). */
export function sub(a: Operand, b: Operand): Tensor {
  checkOperands('sub', a, b);
  if ((typeof a === 'number' && isInt(b as Tensor)) || (typeof b === 'number' && isInt(a as Tensor)))
    return withScalar('sub', a, b, (x, y) => bin('sub', 'sub', x, y));
  if (typeof b === 'number') return record('SubScalar', [a], un('add_scalar', a as Tensor, -b), [], (g) => [g]);
  if (typeof a === 'number') return record('RSubScalar', [b], un('rsub_scalar', b, a), [], (g) => [neg(g)]);
  const out = bin('sub', 'sub', a, b);
  const sa = a._shape, sb = b._shape;
  return record('Sub', [a, b], out, [], (g, _, needs) => [needs[0] ? sumTo(g, sa) : null, needs[1] ? sumTo(neg(g), sb) : null]);
}

/** a · b elementwise (broadcasting). */
export function mul(a: Operand, b: Operand): Tensor {
  checkOperands('mul', a, b);
  if (typeof a === 'number' || typeof b === 'number') {
    const [t, s] = typeof a === 'number' ? [b as Tensor, a] : [a, b as number];
    return record('MulScalar', [t], un('mul_scalar', t, s), [], (g) => [un('mul_scalar', g, s)]);
  }
  const out = bin('mul', 'mul', a, b);
  const sa = a._shape, sb = b._shape;
  return record('Mul', [a, b], out, [a, b], (g, [x, y], needs) => [
    needs[0] ? sumTo(mul(g, y), sa) : null,
    needs[1] ? sumTo(mul(g, x), sb) : null,
  ]);
}

/** a / b elementwise (broadcasting). */
export function div(a: Operand, b: Operand): Tensor {
  checkOperands('div', a, b);
  if (typeof a === 'number') {
    // s / x: d/dx = −s/x² = −out/x
    const out = un('rdiv_scalar', b as Tensor, a);
    return record('RDivScalar', [b], out, [b as Tensor, out], (g, [x, y]) => [neg(div(mul(g, y), x))]);
  }
  if (typeof b === 'number') {
    return withScalar('div', a, b, (x, s) => record('DivScalar', [x], bin('div', 'div', x, s), [], (g) => [withScalar('div', g, b, (gg, ss) => bin('div', 'div', gg, ss))]));
  }
  const out = bin('div', 'div', a, b);
  const sa = a._shape, sb = b._shape;
  return record('Div', [a, b], out, [b, out], (g, [y, q], needs) => {
    const ga = div(g, y);
    return [needs[0] ? sumTo(ga, sa) : null, needs[1] ? sumTo(neg(mul(ga, q)), sb) : null];
  });
}

/** a ** b elementwise (broadcasting). */
export function pow(a: Operand, b: Operand): Tensor {
  checkOperands('pow', a, b);
  if (typeof b === 'number') {
    const x = a as Tensor;
    checkFloating('pow', 'a', x);
    // d/dx x^p = p·x^(p−1)
    return record('PowScalar', [x], un('pow_scalar', x, b), [x], (g, [xs]) => [
      b === 0 ? mul(g, 0) : mul(g, un('mul_scalar', un('pow_scalar', xs, b - 1), b)),
    ]);
  }
  if (typeof a === 'number') {
    checkFloating('pow', 'b', b);
    // d/dy s^y = s^y·ln s
    const lnA = Math.log(a);
    return withScalar('pow', a, b, (s, y) => {
      const out = bin('pow', 'pow', s, y);
      // 0^y: PyTorch's gradient is 0 where y ≥ 0 (0·ln 0 would be NaN, and −inf at y = 0)
      return record('RPowScalar', [y], out, [out, y], (g, [o, ys]) => [
        a === 0 ? where(ge(ys, 0), 0, mul(mul(g, o), lnA)) : mul(mul(g, o), lnA),
      ]);
    });
  }
  checkFloating('pow', 'a', a);
  const out = bin('pow', 'pow', a, b);
  const sa = a._shape, sb = b._shape;
  // As PyTorch: the base's gradient is 0 where y = 0 (0·0^−1 would be NaN), the exponent's 0 where
  // x = 0 and y ≥ 0 (0·ln 0 would be NaN, 1·ln 0 −inf).
  return record('Pow', [a, b], out, [a, b, out], (g, [x, y, o], needs) => [
    needs[0] ? sumTo(where(eq(y, 0), 0, mul(g, mul(y, pow(x, sub(y, 1))))), sa) : null,
    needs[1] ? sumTo(where(mul(eq(x, 0), ge(y, 0)), 0, mul(mul(g, o), log(x))), sb) : null,
  ]);
}

/** Elementwise maximum (broadcasting); where a = b the gradient is split evenly, as PyTorch. */
export function maximum(a: Operand, b: Operand): Tensor {
  return withScalar('maximum', a, b, (x, y) => minmax('maximum', 'Maximum', x, y, a instanceof Tensor, b instanceof Tensor));
}

/** Elementwise minimum (broadcasting); where a = b the gradient is split evenly. */
export function minimum(a: Operand, b: Operand): Tensor {
  return withScalar('minimum', a, b, (x, y) => minmax('minimum', 'Minimum', x, y, a instanceof Tensor, b instanceof Tensor));
}

function minmax(fn: 'maximum' | 'minimum', name: string, a: Tensor, b: Tensor, gradA: boolean, gradB: boolean): Tensor {
  const out = bin(fn, fn, a, b);
  const sa = a._shape, sb = b._shape;
  const ins = [gradA ? a : null, gradB ? b : null];
  return record(name, ins, out, [a, b], (g, [x, y], needs) => {
    // share of a: 1 where a wins, ½ on ties
    const wins = fn === 'maximum' ? bin(fn, 'gt', x, y) : bin(fn, 'lt', x, y);
    const shareA = add(wins, mul(bin(fn, 'eq', x, y), 0.5));
    return [needs[0] ? sumTo(mul(g, shareA), sa) : null, needs[1] ? sumTo(mul(g, sub(1, shareA)), sb) : null];
  });
}

/** −x */
export function neg(x: Tensor): Tensor {
  checkUnary('neg', x, false);
  return record('Neg', [x], un('neg', x), [], (g) => [neg(g)]);
}

// ---------------------------------------------------------------------------------------------
// comparisons: 1 or 0 in the inputs' dtype, no gradient

function compare(fn: BinaryOp & ('eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge'), a: Operand, b: Operand): Tensor {
  return withScalar(fn, a, b, (x, y) => bin(fn, fn, x, y));
}
export const eq = (a: Operand, b: Operand): Tensor => compare('eq', a, b);
export const ne = (a: Operand, b: Operand): Tensor => compare('ne', a, b);
export const lt = (a: Operand, b: Operand): Tensor => compare('lt', a, b);
export const le = (a: Operand, b: Operand): Tensor => compare('le', a, b);
export const gt = (a: Operand, b: Operand): Tensor => compare('gt', a, b);
export const ge = (a: Operand, b: Operand): Tensor => compare('ge', a, b);

/** where(cond ≠ 0, a, b), broadcasting all three; gradients flow to a and b. */
export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  const fn = 'where';
  checkTensor(fn, 'cond', cond);
  checkOperands(fn, a, b);
  const like = (a instanceof Tensor ? a : b) as Tensor;
  if (cond._dev.name !== like._dev.name) typeError(fn, `'cond' is on ${cond.device} but the values are on ${like.device}`);
  return withScalar(fn, a, b, (x, y) => {
    const xy = broadcastShapes(x._shape, y._shape);
    const shape = xy && broadcastShapes(cond._shape, xy);
    if (!shape)
      rangeError(fn, `'cond' ${shapeStr(cond._shape)}, 'a' ${shapeStr(x._shape)} and 'b' ${shapeStr(y._shape)} do not broadcast`);
    const out = fromHandle(native().where(cond._h, x._h, y._h), x.dtype, shape, x._dev);
    const sa = x._shape, sb = y._shape;
    return record('Where', [cond, a instanceof Tensor ? x : null, b instanceof Tensor ? y : null], out, [cond], (g, [c], needs) => [
      null,
      needs[1] ? sumTo(where(c, g, 0), sa) : null,
      needs[2] ? sumTo(where(c, 0, g), sb) : null,
    ]);
  });
}

// ---------------------------------------------------------------------------------------------
// unary math

export function exp(x: Tensor): Tensor {
  checkUnary('exp', x);
  const out = un('exp', x);
  return record('Exp', [x], out, [out], (g, [y]) => [mul(g, y)]);
}

export function log(x: Tensor): Tensor {
  checkUnary('log', x);
  return record('Log', [x], un('log', x), [x], (g, [xs]) => [div(g, xs)]);
}

export function sqrt(x: Tensor): Tensor {
  checkUnary('sqrt', x);
  const out = un('sqrt', x);
  return record('Sqrt', [x], out, [out], (g, [y]) => [div(g, mul(y, 2))]);
}

/** 1/√x */
export function rsqrt(x: Tensor): Tensor {
  checkUnary('rsqrt', x);
  const out = un('rsqrt', x);
  // d/dx x^−½ = −½·y³
  return record('Rsqrt', [x], out, [out], (g, [y]) => [mul(g, mul(pow(y, 3), -0.5))]);
}

export function abs(x: Tensor): Tensor {
  checkUnary('abs', x, false);
  return record('Abs', [x], un('abs', x), [x], (g, [xs]) => [mul(g, un('sign', xs))]);
}

export function square(x: Tensor): Tensor {
  checkUnary('square', x, false);
  return record('Square', [x], un('square', x), [x], (g, [xs]) => [mul(g, mul(xs, 2))]);
}

/** 1/x */
export function reciprocal(x: Tensor): Tensor {
  checkUnary('reciprocal', x);
  const out = un('reciprocal', x);
  return record('Reciprocal', [x], out, [out], (g, [y]) => [neg(mul(g, square(y)))]);
}

/** −1, 0 or 1 (no gradient). */
export function sign(x: Tensor): Tensor {
  checkUnary('sign', x, false);
  return un('sign', x);
}

export function relu(x: Tensor): Tensor {
  checkUnary('relu', x);
  // step(x) = 1 where x > 0: the gradient at 0 is 0, as PyTorch
  return record('Relu', [x], un('relu', x), [x], (g, [xs]) => [mul(g, un('step', xs))]);
}

/** x·Φ(x), the exact (erf) form. */
export function gelu(x: Tensor): Tensor {
  checkUnary('gelu', x);
  return record('Gelu', [x], un('gelu', x), [x], (g, [xs]) => [mul(g, un('gelu_grad', xs))]);
}

/** x·σ(x) */
export function silu(x: Tensor): Tensor {
  checkUnary('silu', x);
  return record('Silu', [x], un('silu', x), [x], (g, [xs]) => [mul(g, un('silu_grad', xs))]);
}

export function tanh(x: Tensor): Tensor {
  checkUnary('tanh', x);
  const out = un('tanh', x);
  return record('Tanh', [x], out, [out], (g, [y]) => [mul(g, sub(1, square(y)))]);
}

export function sigmoid(x: Tensor): Tensor {
  checkUnary('sigmoid', x);
  const out = un('sigmoid', x);
  return record('Sigmoid', [x], out, [out], (g, [y]) => [mul(g, mul(y, sub(1, y)))]);
}

export function erf(x: Tensor): Tensor {
  checkUnary('erf', x);
  // d/dx erf(x) = 2/√π · e^(−x²)
  return record('Erf', [x], un('erf', x), [x], (g, [xs]) => [mul(g, mul(exp(neg(square(xs))), 2 / Math.sqrt(Math.PI)))]);
}

export function sin(x: Tensor): Tensor {
  checkUnary('sin', x);
  return record('Sin', [x], un('sin', x), [x], (g, [xs]) => [mul(g, cos(xs))]);
}

export function cos(x: Tensor): Tensor {
  checkUnary('cos', x);
  return record('Cos', [x], un('cos', x), [x], (g, [xs]) => [neg(mul(g, sin(xs)))]);
}

/** Clamps x to [min, max] (either bound may be left out); the gradient passes where min ≤ x ≤ max. */
export function clamp(x: Tensor, min?: number, max?: number): Tensor {
  checkUnary('clamp', x, false);
  if (min === undefined && max === undefined) typeError('clamp', "give 'min', 'max' or both");
  const lo = min === undefined ? -Infinity : checkNumber('clamp', 'min', min);
  const hi = max === undefined ? Infinity : checkNumber('clamp', 'max', max);
  if (lo > hi) rangeError('clamp', `'min' ${lo} is greater than 'max' ${hi}`);
  return record('Clamp', [x], un('clamp', x, lo, hi), [x], (g, [xs]) => {
    let m = g;
    if (lo !== -Infinity) m = mul(m, ge(xs, lo));
    if (hi !== Infinity) m = mul(m, le(xs, hi));
    return [m];
  });
}

// ---------------------------------------------------------------------------------------------
// dropout

export interface DropoutOptions {
  /** false: x passes through unchanged (evaluation), as PyTorch's `training` argument. Default true. */
  training?: boolean;
  /** The mask's seed; without it the default generator gives a fresh one per call (see manualSeed). */
  seed?: number;
}

/** The dropout of x with a fixed seed, recorded: its gradient is the same dropout of g (the mask drawn
 * again from the seed, never stored). */
function dropoutSeeded(x: Tensor, p: number, seed: number): Tensor {
  const out = fromHandle(native().dropout(x._h, p, seed), x.dtype, x._shape, x._dev);
  return record('Dropout', [x], out, [], (g) => [dropoutSeeded(g, p, seed)]);
}

/**
 * Dropout (PyTorch's F.dropout): each element of x is zeroed with probability p and the others scaled by
 * 1/(1 − p), so the expectation is x. Element i (row-major) is dropped when draw i of the seed's uniform
 * stream is below p — exactly where `rand(x.shape, {seed, dtype: 'float64'})` is < p, on every device and
 * thread count. Computed as x·(kept ? 1/(1 − p) : 0) in float32 (float64 for float64 tensors), so NaN
 * stays NaN where dropped, as in PyTorch. p = 1 zeroes everything; p = 0 or `training: false` returns x
 * unchanged (a view sharing its storage). The mask is not stored: the backward draws it again.
 */
export function dropout(x: Tensor, p = 0.5, opts: DropoutOptions = {}): Tensor {
  const o = optionsOf('dropout', opts, ['training', 'seed'], '{training: true}');
  const training = o.training ?? true;
  if (typeof training !== 'boolean') typeError('dropout', `'training' must be a boolean, got ${describe(training)}`);
  return dropoutImpl('dropout', x, p, training, o.seed);
}

/** @internal dropout's checks and work, errors named by `fn` (nn.Dropout's forward calls it too). */
export function dropoutImpl(fn: string, x: Tensor, p: number, training: boolean, seed: number | undefined): Tensor {
  checkUnary(fn, x, false);
  checkProbability(fn, 'p', p);
  if (p === 0 || !training) {
    if (seed !== undefined) seedOf(fn, seed); // checked all the same; the default generator is not advanced
    return alias(x);
  }
  checkFloating(fn, 'x', x); // (a pass-through takes any dtype, as PyTorch's)
  return dropoutSeeded(x, p, seedOf(fn, seed));
}
