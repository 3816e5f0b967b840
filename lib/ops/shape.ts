// ops/shape.ts — views and shape functions, with their gradients: reshape, transpose, permute,
// narrow, squeeze, unsqueeze, expand, flatten (views with strides, no copy when the layout allows),
// and contiguous, clone, cast, concat, stack (copies).
import { native, DTYPE_CODES, type DType } from '../native';
import {
  Tensor, fromHandle, viewOf, aliasOf, checkTensor, checkSameKind, isFloating, isContiguousLayout, contiguousStrides, parseDType,
  type DeviceSpec,
} from '../tensor';
import { record } from '../autograd';
import { shapeStr, checkInt, normAxis, typeError, rangeError, describe, numel, MAX_NUMEL, MAX_DIMS } from '../errors';
import { sumTo } from './reduce';

/** PyTorch's rule for a 0-d tensor's axes: it takes 0 and −1, as if it had one axis (checked). */
function scalarAxis(fn: string, arg: string, axis: unknown): void {
  normAxis(fn, arg, axis, 1, [1]);
}

/** Accepts f(t, 2, 3), f(t, [2, 3]) and f(t) alike. */
function listArg(fn: string, arg: string, args: readonly unknown[]): unknown[] {
  if (args.length === 1 && Array.isArray(args[0])) return args[0];
  for (let i = 0; i < args.length; i++)
    if (typeof args[i] !== 'number') typeError(fn, `'${arg}' must be integers or one array of integers, got ${describe(args[i])} at position ${i}`);
  return args as unknown[];
}

/**
 * Strides for viewing (shape, strides) as newShape without a copy, or null when the elements are
 * not laid out compatibly (PyTorch's computeStride: dimensions merge only within contiguous chunks).
 */
function viewStrides(shape: readonly number[], strides: readonly number[], newShape: readonly number[]): number[] | null {
  if (numel(shape) === 0 || shape.length === 0) return contiguousStrides(newShape);
  const out = new Array<number>(newShape.length).fill(0);
  let viewD = newShape.length - 1;
  let chunkBase = strides[strides.length - 1];
  let tensorNumel = 1;
  let viewNumel = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    tensorNumel *= shape[d];
    if (d === 0 || (shape[d - 1] !== 1 && strides[d - 1] !== tensorNumel * chunkBase)) {
      while (viewD >= 0 && (viewNumel < tensorNumel || newShape[viewD] === 1)) {
        out[viewD] = viewNumel * chunkBase;
        viewNumel *= newShape[viewD];
        viewD--;
      }
      if (viewNumel !== tensorNumel) return null;
      if (d > 0) {
        chunkBase = strides[d - 1];
        tensorNumel = 1;
        viewNumel = 1;
      }
    }
  }
  return viewD === -1 ? out : null;
}

// ---------------------------------------------------------------------------------------------
// views

/**
 * x with a new shape (one entry may be −1: inferred). A view when the layout allows, else a copy.
 * reshape(x, 2, 3) or reshape(x, [2, 3]).
 */
export function reshape(x: Tensor, ...shape: number[] | [number[]]): Tensor {
  return reshapeImpl('reshape', x, shape, true);
}

/**
 * x with a new shape as a view, never a copy (Tensor.view): throws where reshape would copy, as
 * PyTorch's view does, so that a view that must share x's storage cannot silently not share it.
 */
export function view(x: Tensor, ...shape: number[] | [number[]]): Tensor {
  return reshapeImpl('view', x, shape, false);
}

function reshapeImpl(fn: string, x: Tensor, shape: number[] | [number[]], copyOk: boolean): Tensor {
  checkTensor(fn, 'x', x);
  const req = listArg(fn, 'shape', shape);
  const n = x.size;
  let infer = -1;
  let known = 1;
  if (req.length > MAX_DIMS) rangeError(fn, `'shape' has ${req.length} dimensions, more than the limit of ${MAX_DIMS}`);
  req.forEach((d, i) => {
    if (typeof d !== 'number') typeError(fn, `'shape' must hold integers, but shape[${i}] is ${describe(d)}`);
    if (d === -1) {
      if (infer >= 0) rangeError(fn, `'shape' ${shapeStr(req as number[])} has more than one −1`);
      infer = i;
    } else {
      if (!Number.isInteger(d) || d < 0) rangeError(fn, `'shape' ${shapeStr(req as number[])} must hold non-negative integers (or one −1), but shape[${i}] is ${d}`);
      if (d > MAX_NUMEL) rangeError(fn, `'shape' ${shapeStr(req as number[])}: shape[${i}] is more than ${MAX_NUMEL}`);
      known *= d;
    }
  });
  const newShape = (req as number[]).slice();
  if (infer >= 0) {
    if (known === 0 || n % known !== 0)
      rangeError(fn, `cannot reshape ${shapeStr(x._shape)} (${n} elements) into ${shapeStr(newShape)}`);
    newShape[infer] = n / known;
  } else if (known !== n) {
    rangeError(fn, `cannot reshape ${shapeStr(x._shape)} (${n} elements) into ${shapeStr(newShape)} (${known > MAX_NUMEL ? 'too many' : known} elements)`);
  }
  const inShape = x._shape;
  const strides = viewStrides(x._shape, x._strides, newShape);
  let out: Tensor;
  if (strides) {
    out = viewOf(x, newShape, strides, x._offset);
  } else if (!copyOk) {
    rangeError(fn, `${shapeStr(x._shape)} with strides ${shapeStr(x._strides)} cannot be viewed as ${shapeStr(newShape)} ` +
      '(an axis to merge spans two separate runs of memory): use reshape(), which copies, or contiguous() first');
  } else {
    const c = fromHandle(native().contiguous(x._h), x.dtype, x._shape, x._dev, false);
    out = viewOf(c, newShape, contiguousStrides(newShape), 0);
    c.dispose();
  }
  return record('Reshape', [x], out, [], (g) => [reshape(g, inShape as number[])]);
}

/** Swaps axes d0 and d1 (a view). With no axes, reverses them all (numpy's transpose). */
export function transpose(x: Tensor, d0?: number, d1?: number): Tensor {
  const fn = 'transpose';
  checkTensor(fn, 'x', x);
  const nd = x._shape.length;
  if (d0 === undefined && d1 === undefined) return permuteImpl(fn, x, Array.from({ length: nd }, (_, i) => nd - 1 - i));
  if (d0 === undefined || d1 === undefined) typeError(fn, "give both axes 'd0' and 'd1' (or neither to reverse all axes)");
  if (nd === 0) {
    scalarAxis(fn, 'd0', d0);
    scalarAxis(fn, 'd1', d1);
    return permuteImpl(fn, x, []);  // nothing moves
  }
  const a = normAxis(fn, 'd0', d0, nd, x._shape);
  const b = normAxis(fn, 'd1', d1, nd, x._shape);
  const perm = Array.from({ length: nd }, (_, i) => i);
  perm[a] = b;
  perm[b] = a;
  return permuteImpl(fn, x, perm);
}

/** Reorders the axes: output axis i is input axis dims[i] (a view). */
export function permute(x: Tensor, ...dims: number[] | [number[]]): Tensor {
  const fn = 'permute';
  checkTensor(fn, 'x', x);
  const req = listArg(fn, 'dims', dims);
  const nd = x._shape.length;
  if (req.length !== nd) rangeError(fn, `'dims' ${shapeStr(req as number[])} must list each of the ${nd} axes of ${shapeStr(x._shape)} once`);
  const perm = req.map((d, i) => normAxis(fn, `dims[${i}]`, d, nd, x._shape));
  if (new Set(perm).size !== nd) rangeError(fn, `'dims' ${shapeStr(req as number[])} repeats an axis`);
  return permuteImpl(fn, x, perm);
}

function permuteImpl(fn: string, x: Tensor, perm: number[]): Tensor {
  const out = viewOf(x, perm.map((p) => x._shape[p]), perm.map((p) => x._strides[p]), x._offset);
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return record(fn === 'transpose' ? 'Transpose' : 'Permute', [x], out, [], (g) => [permute(g, inv)]);
}

/** The elements start … start+length−1 along axis (a view). start may be negative (from the end). */
export function narrow(x: Tensor, axis: number, start: number, length: number): Tensor {
  const fn = 'narrow';
  checkTensor(fn, 'x', x);
  const nd = x._shape.length;
  if (nd === 0) rangeError(fn, "cannot narrow a 0-d tensor");
  const a = normAxis(fn, 'axis', axis, nd, x._shape);
  const dim = x._shape[a];
  let s = checkInt(fn, 'start', start, -dim, dim);
  if (s < 0) s += dim;
  const len = checkInt(fn, 'length', length, 0, MAX_NUMEL);
  if (s + len > dim) rangeError(fn, `start ${start} + length ${len} exceeds size ${dim} of axis ${a} of ${shapeStr(x._shape)}`);
  const shape = x._shape.slice();
  shape[a] = len;
  const out = viewOf(x, shape, x._strides, x._offset + (len > 0 ? s * x._strides[a] : 0));
  const inShape = x._shape;
  const xs = x;
  return record('Narrow', [x], out, [], (g) => [narrowBackward(g, inShape, xs.dtype, a, s)]);
}

/** Zeros of the input's shape with g written into the narrowed part. */
function narrowBackward(g: Tensor, inShape: readonly number[], dtype: DType, axis: number, start: number): Tensor {
  const z = fromHandle(native().full(DTYPE_CODES[dtype], inShape as number[], 0, g._dev.type, g._dev.index), dtype, inShape, g._dev);
  if (g.size > 0) {
    const v = viewOf(z, g._shape, z._strides, start * z._strides[axis], false);
    native().copyInto(v._h, g._h);
    v.dispose();
  }
  return z;
}

/** Removes axes of size 1: the given ones (each must be 1) or all of them. A view. */
export function squeeze(x: Tensor, axis?: number | number[]): Tensor {
  const fn = 'squeeze';
  checkTensor(fn, 'x', x);
  const nd = x._shape.length;
  let drop: number[];
  if (nd === 0 && axis !== undefined) {
    for (const [i, d] of (Array.isArray(axis) ? axis : [axis]).entries()) scalarAxis(fn, Array.isArray(axis) ? `axis[${i}]` : 'axis', d);
    return reshape(x, []);  // stays 0-d
  }
  if (axis === undefined) drop = x._shape.flatMap((d, i) => (d === 1 ? [i] : []));
  else {
    const list = Array.isArray(axis) ? axis : [axis];
    drop = list.map((d, i) => normAxis(fn, Array.isArray(axis) ? `axis[${i}]` : 'axis', d, nd, x._shape));
    for (const d of drop) if (x._shape[d] !== 1) rangeError(fn, `axis ${d} of ${shapeStr(x._shape)} has size ${x._shape[d]}, not 1`);
  }
  return reshape(x, x._shape.filter((_, i) => !drop.includes(i)));
}

/** The position of a new axis in a result of rank ndim + 1 (negative from the end), checked. */
function newAxis(fn: string, axis: unknown, shape: readonly number[]): number {
  const nd = shape.length;
  if (typeof axis === 'number' && Number.isInteger(axis) && (axis < -(nd + 1) || axis > nd))
    rangeError(fn, `'axis' ${axis} is out of range for a new axis of ${shapeStr(shape)} (expected ${-(nd + 1)} to ${nd})`);
  return normAxis(fn, 'axis', axis, nd + 1, [...shape, 1]);
}

/** Inserts an axis of size 1 at `axis` (in [−ndim−1, ndim]). A view. */
export function unsqueeze(x: Tensor, axis: number): Tensor {
  const fn = 'unsqueeze';
  checkTensor(fn, 'x', x);
  const nd = x._shape.length;
  if (nd >= MAX_DIMS) rangeError(fn, `${shapeStr(x._shape)} already has ${nd} dimensions, the limit`);
  const a = newAxis(fn, axis, x._shape);
  const shape = x._shape.slice();
  shape.splice(a, 0, 1);
  return reshape(x, shape);
}

/** Broadcasts x to `shape` (−1 keeps a size; new axes go in front) as a view with zero strides. */
export function expand(x: Tensor, ...shape: number[] | [number[]]): Tensor {
  const fn = 'expand';
  checkTensor(fn, 'x', x);
  const req = listArg(fn, 'shape', shape) as number[];
  if (req.length > MAX_DIMS) rangeError(fn, `'shape' has ${req.length} dimensions, more than the limit of ${MAX_DIMS}`);
  const lead = req.length - x._shape.length;
  if (lead < 0) rangeError(fn, `cannot expand ${shapeStr(x._shape)} to fewer dimensions ${shapeStr(req)}`);
  const outShape: number[] = [];
  const strides: number[] = [];
  for (let i = 0; i < req.length; i++) {
    const d = req[i];
    const have = i >= lead ? x._shape[i - lead] : 1;
    if (typeof d !== 'number') typeError(fn, `'shape' must hold integers, but shape[${i}] is ${describe(d)}`);
    if (!Number.isInteger(d) || d < -1 || d > MAX_NUMEL)
      rangeError(fn, `'shape' ${shapeStr(req)} must hold integers in [0, ${MAX_NUMEL}] (or −1), but shape[${i}] is ${d}`);
    if (d === -1 && i < lead) rangeError(fn, `'shape' ${shapeStr(req)}: −1 is not allowed for a new leading axis`);
    const size = d === -1 ? have : d;
    if (have !== size && have !== 1) rangeError(fn, `cannot expand ${shapeStr(x._shape)} to ${shapeStr(req)}: axis ${i} has size ${have}`);
    outShape.push(size);
    strides.push(i < lead || (have === 1 && size !== 1) ? 0 : x._strides[i - lead]);
  }
  if (numel(outShape) > MAX_NUMEL) rangeError(fn, `'shape' ${shapeStr(outShape)} has too many elements`);
  const out = viewOf(x, outShape, strides, x._offset);
  const inShape = x._shape;
  return record('Expand', [x], out, [], (g) => [sumTo(g, inShape)]);
}

/** Merges axes startAxis … endAxis into one. */
export function flatten(x: Tensor, startAxis = 0, endAxis = -1): Tensor {
  const fn = 'flatten';
  checkTensor(fn, 'x', x);
  if (x._shape.length === 0) {
    scalarAxis(fn, 'startAxis', startAxis);
    scalarAxis(fn, 'endAxis', endAxis);
    return reshape(x, [1]);
  }
  const a = normAxis(fn, 'startAxis', startAxis, x._shape.length, x._shape);
  const b = normAxis(fn, 'endAxis', endAxis, x._shape.length, x._shape);
  if (a > b) rangeError(fn, `'startAxis' ${startAxis} comes after 'endAxis' ${endAxis}`);
  const shape = [...x._shape.slice(0, a), numel(x._shape.slice(a, b + 1)), ...x._shape.slice(b + 1)];
  return reshape(x, shape);
}

// ---------------------------------------------------------------------------------------------
// copies

/** x laid out row-major: x's storage when it already is (a new tensor sharing it), else a copy. */
export function contiguous(x: Tensor): Tensor {
  checkTensor('contiguous', 'x', x);
  const out = isContiguousLayout(x._shape, x._strides)
    ? aliasOf(x)
    : fromHandle(native().contiguous(x._h), x.dtype, x._shape, x._dev);
  return record('Contiguous', [x], out, [], (g) => [g]);
}

/** @internal a new tensor sharing x's storage and layout, in the graph (identity gradient). */
export function alias(x: Tensor): Tensor {
  return record('Alias', [x], aliasOf(x), [], (g) => [g]);
}

/** @internal x copied to another device; its gradient goes back to x's device, as PyTorch's to(). */
export function toDevice(x: Tensor, d: DeviceSpec): Tensor {
  const out = fromHandle(native().to(x._h, d.type, d.index), x.dtype, x._shape, d);
  const from = x.device;
  return record('To', [x], out, [], (g) => [g.to(from)]);
}

/** A contiguous copy of x (gradients flow back). */
export function clone(x: Tensor): Tensor {
  checkTensor('clone', 'x', x);
  const out = fromHandle(native().cast(x._h, DTYPE_CODES[x.dtype]), x.dtype, x._shape, x._dev);
  return record('Clone', [x], out, [], (g) => [g]);
}

/** A copy of x converted to dtype (rounding to nearest for floats; gradients flow between floating dtypes). */
export function cast(x: Tensor, dtype: DType): Tensor {
  checkTensor('cast', 'x', x);
  if (dtype === undefined) typeError('cast', "'dtype' is required");
  const dt = parseDType('cast', dtype);
  const out = fromHandle(native().cast(x._h, DTYPE_CODES[dt]), dt, x._shape, x._dev);
  if (!isFloating(dt) || !isFloating(x.dtype)) return out;
  const from = x.dtype;
  return record('Cast', [x], out, [], (g) => [cast(g, from)]);
}

/** Joins tensors along an existing axis; all other sizes must agree. */
export function concat(tensors: readonly Tensor[], axis = 0): Tensor {
  const fn = 'concat';
  if (!Array.isArray(tensors)) typeError(fn, `'tensors' must be an array of tensors, got ${describe(tensors)}`);
  if (tensors.length === 0) rangeError(fn, "'tensors' is empty");
  // An index loop, not forEach: forEach skips the holes of a sparse array ([a, , b]).
  for (let i = 0; i < tensors.length; i++) checkTensor(fn, `tensors[${i}]`, tensors[i]);
  checkSameKind(fn, tensors.map((_, i) => `tensors[${i}]`), tensors);
  const t0 = tensors[0];
  const nd = t0._shape.length;
  if (nd === 0) rangeError(fn, 'cannot concatenate 0-d tensors (unsqueeze them, or use stack)');
  const a = normAxis(fn, 'axis', axis, nd, t0._shape);
  const shape = t0._shape.slice();
  shape[a] = 0;
  const sizes: number[] = [];
  tensors.forEach((t, i) => {
    if (t._shape.length !== nd || t._shape.some((d: number, j: number) => j !== a && d !== t0._shape[j]))
      rangeError(fn, `tensors[${i}] ${shapeStr(t._shape)} does not match tensors[0] ${shapeStr(t0._shape)} outside axis ${a}`);
    sizes.push(t._shape[a]);
    shape[a] += t._shape[a];
  });
  const out = fromHandle(native().concat(tensors.map((t) => t._h), a), t0.dtype, shape, t0._dev);
  return record('Concat', tensors, out, [], (g, _, needs) => {
    let at = 0;
    return sizes.map((n, i) => {
      const r = needs[i] ? narrow(g, a, at, n) : null;
      at += n;
      return r;
    });
  });
}

/** Joins tensors of one shape along a new axis. */
export function stack(tensors: readonly Tensor[], axis = 0): Tensor {
  const fn = 'stack';
  if (!Array.isArray(tensors)) typeError(fn, `'tensors' must be an array of tensors, got ${describe(tensors)}`);
  if (tensors.length === 0) rangeError(fn, "'tensors' is empty");
  // An index loop, not forEach: forEach skips the holes of a sparse array ([a, , b]).
  for (let i = 0; i < tensors.length; i++) checkTensor(fn, `tensors[${i}]`, tensors[i]);
  checkSameKind(fn, tensors.map((_, i) => `tensors[${i}]`), tensors);
  const nd = tensors[0]._shape.length;
  const a = newAxis(fn, axis, tensors[0]._shape);
  tensors.forEach((t, i) => {
    if (t._shape.length !== nd || t._shape.some((d: number, j: number) => d !== tensors[0]._shape[j]))
      rangeError(fn, `tensors[${i}] ${shapeStr(t._shape)} does not match tensors[0] ${shapeStr(tensors[0]._shape)}`);
  });
  const parts = tensors.map((t) => unsqueeze(t, a));
  try {
    return concat(parts, a);
  } finally {
    for (const p of parts) p.dispose();
  }
}
