// ops/creation.ts — making tensors: tensor() from numbers / nested arrays / TypedArrays, zeros, ones,
// full, eye, arange, and seeded random tensors (randn, rand) from a counter-based generator in the
// addon (splitmix64 of seed and element index), so the same seed gives the same numbers everywhere.
import { native, DTYPE_CODES, type DType } from '../native';
import {
  Tensor, fromHandle, parseDevice, parseDType, isFloating, type DeviceSpec, type TypedArray, type Device,
} from '../tensor';
import { checkShape, typeError, rangeError, describe, shapeStr, numel, checkNumber, optionsOf, aDType, MAX_NUMEL } from '../errors';

export interface TensorOptions {
  /** Default float32 (for TypedArray data: the array's own type). */
  dtype?: DType;
  /** Default 'cpu'. */
  device?: Device | string;
  /** Make the tensor a leaf that collects gradients (floating dtypes only). */
  requiresGrad?: boolean;
}

export interface RandomOptions extends TensorOptions {
  /** Seed of this draw; without it the default generator (see manualSeed) gives a fresh seed per call. */
  seed?: number;
}

type NestedArray = number | boolean | NestedArray[];

const TENSOR_KEYS = ['dtype', 'device', 'requiresGrad'] as const;

/** opts must be a plain object of the known keys (a misspelt {dtpye} was ignored silently). */
function checkOptions(fn: string, opts: unknown, known: readonly string[] = TENSOR_KEYS): void {
  optionsOf(fn, opts as object, known, "{dtype: 'float32'}");
}

function finish(fn: string, t: Tensor, opts: TensorOptions): Tensor {
  if (opts.requiresGrad !== undefined) {
    if (typeof opts.requiresGrad !== 'boolean') {
      t.dispose();
      typeError(fn, `'requiresGrad' must be a boolean, got ${describe(opts.requiresGrad)}`);
    }
    if (opts.requiresGrad && !isFloating(t.dtype)) {
      t.dispose();
      typeError(fn, `only floating tensors can require gradients, this one is ${t.dtype}`);
    }
    t._requiresGrad = opts.requiresGrad;
  }
  return t;
}

function shapeArg(fn: string, shape: unknown): number[] {
  if (typeof shape === 'number') return checkShape(fn, 'shape', [shape]);
  return checkShape(fn, 'shape', shape);
}

// ---------------------------------------------------------------------------------------------
// tensor()

const ARRAY_DTYPE: [new (n: number) => ArrayLike<number>, DType][] = [
  [Float32Array, 'float32'],
  [Float64Array, 'float64'],
  [Int32Array, 'int32'],
  [Uint8Array, 'uint8'], // Node's Buffer too (a subclass)
  [Uint16Array, 'uint16'],
];
/** The dtype a typed array is of (by instanceof, so subclasses count), or undefined. */
function ownDType(data: unknown): DType | undefined {
  for (const [C, d] of ARRAY_DTYPE) if (data instanceof C) return d;
  return undefined;
}

const INT_RANGE: Partial<Record<DType, [number, number]>> = {
  int32: [-2147483648, 2147483647],
  uint8: [0, 255],
  uint16: [0, 65535],
};

/** The TypedArray the addon takes for dtype (float16/bfloat16: float32 values). */
function arrayFor(dtype: DType, n: number): TypedArray {
  switch (dtype) {
    case 'float64':
      return new Float64Array(n);
    case 'int32':
      return new Int32Array(n);
    case 'uint8':
      return new Uint8Array(n);
    case 'uint16':
      return new Uint16Array(n);
    default:
      return new Float32Array(n);
  }
}

/** Copies values into the dtype's array; integer dtypes take integers in range only. */
function convert(fn: string, src: ArrayLike<number>, dtype: DType): TypedArray {
  const out = arrayFor(dtype, src.length);
  const range = INT_RANGE[dtype];
  for (let i = 0; i < src.length; i++) {
    const v = src[i];
    if (range && (!Number.isInteger(v) || v < range[0] || v > range[1]))
      rangeError(fn, `'data' element ${i} is ${v}, which is not ${aDType(dtype)} value`);
    out[i] = v;
  }
  return out;
}

/** Shape and row-major values of nested arrays; ragged arrays and non-numbers are errors. */
function flatten(fn: string, data: NestedArray[]): { shape: number[]; values: number[] } {
  const shape: number[] = [];
  for (let d: unknown = data; Array.isArray(d); d = d[0]) {
    shape.push(d.length);
    if (d.length === 0) break;
  }
  const values: number[] = [];
  const walk = (d: unknown, dim: number, path: string): void => {
    if (dim === shape.length) {
      if (typeof d === 'number') values.push(d);
      else if (typeof d === 'boolean') values.push(d ? 1 : 0);
      else if (Array.isArray(d)) rangeError(fn, `'data' is ragged: ${path} is an array but ${path.replace(/\[\d+\]/g, '[0]')} is a number`);
      else typeError(fn, `'data' must hold numbers, but ${path} is ${describe(d)}`);
      return;
    }
    if (!Array.isArray(d)) {
      if (typeof d === 'number' || typeof d === 'boolean')
        rangeError(fn, `'data' is ragged: ${path} is a number but the first element at that depth is an array of length ${shape[dim]}`);
      typeError(fn, `'data' must hold numbers or arrays, but ${path} is ${describe(d)}`);
    }
    if (d.length !== shape[dim])
      rangeError(fn, `'data' is ragged: ${path} has length ${d.length} but the first array at that depth has length ${shape[dim]}`);
    for (let i = 0; i < d.length; i++) walk(d[i], dim + 1, `${path}[${i}]`);
  };
  walk(data, 0, 'data');
  return { shape, values };
}

/**
 * A tensor holding a copy of `data`: a number (0-d), nested arrays (the shape is inferred; ragged
 * arrays are a RangeError), a TypedArray or any other array-like of numbers (1-D unless `shape` is
 * given). The dtype defaults to float32, or to the TypedArray's own type (Float32Array,
 * Float64Array, Int32Array, Uint8Array and Buffer, Uint16Array); other TypedArrays (Int8Array,
 * Int16Array, Uint32Array, …) need a dtype. A Uint16Array with dtype float16/bfloat16 is taken as raw bits.
 */
export function tensor(data: NestedArray | TypedArray | ArrayLike<number>, opts: TensorOptions & { shape?: number[] } = {}): Tensor {
  const fn = 'tensor';
  checkOptions(fn, opts, [...TENSOR_KEYS, 'shape']);
  const shapeOpt = opts.shape === undefined ? undefined : checkShape(fn, 'shape', opts.shape);
  const dev = parseDevice(fn, opts.device);
  let shape: number[];
  let dtype: DType;
  let arr: TypedArray;
  if (data instanceof Tensor) typeError(fn, "'data' is a Tensor; use .clone() (or .detach()) to copy one");
  if (typeof data === 'number' || typeof data === 'boolean') {
    dtype = parseDType(fn, opts.dtype);
    shape = [];
    arr = convert(fn, [Number(data)], dtype);
  } else if (ArrayBuffer.isView(data)) {
    const own = ownDType(data);
    if (data instanceof DataView) typeError(fn, "'data' is a DataView; pass a TypedArray");
    if (data instanceof BigInt64Array || data instanceof BigUint64Array)
      typeError(fn, `'data' is a ${(data as ArrayBufferView).constructor.name} (BigInts); pass numbers`);
    // An Int8Array is not silently made float32: the caller says which dtype its values become.
    if (own === undefined && opts.dtype === undefined)
      typeError(fn, `'data' is ${aDType((data as ArrayBufferView).constructor.name)}; pass a Float32Array, Float64Array, Int32Array, Uint8Array or Uint16Array, or give a dtype`);
    dtype = parseDType(fn, opts.dtype, own);
    const src = data as unknown as ArrayLike<number>;
    shape = [src.length];
    const bits = data instanceof Uint16Array && (dtype === 'float16' || dtype === 'bfloat16');
    // (a view of a SharedArrayBuffer is copied first: the addon reads only plain ArrayBuffers)
    const plain = typeof SharedArrayBuffer === 'undefined' || !(data.buffer instanceof SharedArrayBuffer);
    if (plain && (own === dtype || bits || (data instanceof Float32Array && (dtype === 'float16' || dtype === 'bfloat16')))) arr = data as TypedArray;
    else if (own === dtype || bits) arr = (data as TypedArray).slice();
    else arr = convert(fn, src, dtype);
  } else if (Array.isArray(data)) {
    dtype = parseDType(fn, opts.dtype);
    const f = flatten(fn, data);
    shape = f.shape;
    arr = convert(fn, f.values, dtype);
  } else if (data !== null && typeof data === 'object' && Number.isSafeInteger((data as ArrayLike<number>).length) && (data as ArrayLike<number>).length >= 0) {
    // another array-like ({length, 0: …}, arguments): 1-D, as a TypedArray
    dtype = parseDType(fn, opts.dtype);
    const len = (data as ArrayLike<unknown>).length;
    if (len > MAX_NUMEL) rangeError(fn, `'data' is an array-like of length ${len}, more than the limit of ${MAX_NUMEL} elements`);
    const values = Array.from(data as ArrayLike<unknown>);
    values.forEach((v, i) => {
      if (typeof v !== 'number' && typeof v !== 'boolean') typeError(fn, `'data' is an array-like whose element ${i} is ${describe(v)}, not a number`);
    });
    shape = [values.length];
    arr = convert(fn, values.map(Number), dtype);
  } else {
    typeError(fn, `'data' must be a number, nested arrays of numbers, a TypedArray or an array-like of numbers, got ${describe(data)}`);
  }
  if (shapeOpt) {
    if (numel(shapeOpt) !== arr.length)
      rangeError(fn, `'data' has ${arr.length} elements but 'shape' ${shapeStr(shapeOpt)} needs ${numel(shapeOpt)}`);
    shape = shapeOpt;
  }
  const t = fromHandle(native().fromArray(DTYPE_CODES[dtype], shape, arr, dev.type, dev.index), dtype, shape, dev);
  return finish(fn, t, opts);
}

// ---------------------------------------------------------------------------------------------
// filled tensors

function fullImpl(fn: string, shape: number[], value: number, opts: TensorOptions): Tensor {
  checkOptions(fn, opts);
  const dtype = parseDType(fn, opts.dtype);
  const dev = parseDevice(fn, opts.device);
  const range = INT_RANGE[dtype];
  if (range && (!Number.isInteger(value) || value < range[0] || value > range[1]))
    rangeError(fn, `'value' ${value} is not ${aDType(dtype)} value`);
  const t = fromHandle(native().full(DTYPE_CODES[dtype], shape, value, dev.type, dev.index), dtype, shape, dev);
  return finish(fn, t, opts);
}

/** A tensor of zeros; shape is an array (or a number for 1-D). */
export function zeros(shape: number[] | number, opts: TensorOptions = {}): Tensor {
  return fullImpl('zeros', shapeArg('zeros', shape), 0, opts);
}

export function ones(shape: number[] | number, opts: TensorOptions = {}): Tensor {
  return fullImpl('ones', shapeArg('ones', shape), 1, opts);
}

export function full(shape: number[] | number, value: number, opts: TensorOptions = {}): Tensor {
  const s = shapeArg('full', shape);
  checkNumber('full', 'value', value);
  return fullImpl('full', s, value, opts);
}

function likeOpts(fn: string, t: Tensor, opts: TensorOptions): TensorOptions {
  if (!(t instanceof Tensor)) typeError(fn, `'t' must be a Tensor, got ${describe(t)}`);
  t._check(fn, 't');
  checkOptions(fn, opts);
  return { dtype: t.dtype, device: t.device, ...opts };
}

/** Zeros with t's shape, dtype and device (opts override dtype and device). */
export function zerosLike(t: Tensor, opts: TensorOptions = {}): Tensor {
  return fullImpl('zerosLike', t._shape.slice(), 0, likeOpts('zerosLike', t, opts));
}

export function onesLike(t: Tensor, opts: TensorOptions = {}): Tensor {
  return fullImpl('onesLike', t._shape.slice(), 1, likeOpts('onesLike', t, opts));
}

export function fullLike(t: Tensor, value: number, opts: TensorOptions = {}): Tensor {
  checkNumber('fullLike', 'value', value);
  return fullImpl('fullLike', t._shape.slice(), value, likeOpts('fullLike', t, opts));
}

/** @internal a 0-d tensor holding v, of t's dtype and device (not tracked by tidy: the caller disposes it). */
export function scalarLike(v: number, t: Tensor): Tensor {
  return fromHandle(native().full(DTYPE_CODES[t.dtype], [], v, t._dev.type, t._dev.index), t.dtype, [], t._dev, false);
}

/** The n×m identity (m defaults to n). */
export function eye(n: number, m?: number | TensorOptions, opts: TensorOptions = {}): Tensor {
  if (typeof m === 'object') {
    opts = m;
    m = undefined;
  }
  const [rows, cols] = checkShape('eye', 'shape', [n, m ?? n]);
  checkOptions('eye', opts);
  const dtype = parseDType('eye', opts.dtype);
  const data = arrayFor(dtype, rows * cols);
  for (let i = 0; i < Math.min(rows, cols); i++) data[i * cols + i] = 1;
  return tensor(data, { ...opts, dtype, shape: [rows, cols] });
}

/**
 * start, start + step, … below stop (arange(n) = 0 … n−1). Default dtype float32.
 * arange(stop), arange(start, stop), arange(start, stop, step), each optionally followed by opts.
 */
export function arange(start: number, stop?: number | TensorOptions, step?: number | TensorOptions, opts: TensorOptions = {}): Tensor {
  const fn = 'arange';
  if (typeof stop === 'object') [opts, stop, step] = [stop, undefined, undefined];
  else if (typeof step === 'object') [opts, step] = [step, undefined];
  checkOptions(fn, opts);
  checkNumber(fn, 'start', start, { finite: true });
  if (stop !== undefined) checkNumber(fn, 'stop', stop, { finite: true });
  if (step !== undefined) checkNumber(fn, 'step', step, { finite: true });
  const [a, b] = stop === undefined ? [0, start] : [start, stop];
  const s = step ?? 1;
  if (s === 0) rangeError(fn, "'step' must not be 0");
  const n = Math.max(0, Math.ceil((b - a) / s));
  if (n > MAX_NUMEL) rangeError(fn, `arange(${a}, ${b}, ${s}) would have ${n} elements`);
  const dtype = parseDType(fn, opts.dtype);
  const dev = parseDevice(fn, opts.device);
  const range = INT_RANGE[dtype];
  if (range && n > 0 && (!Number.isInteger(a) || !Number.isInteger(s) || a < range[0] || a + (n - 1) * s > range[1] || a + (n - 1) * s < range[0]))
    rangeError(fn, `arange(${a}, ${b}, ${s}) has values that are not ${dtype}`);
  const t = fromHandle(native().arange(DTYPE_CODES[dtype], a, s, n, dev.type, dev.index), dtype, [n], dev);
  return finish(fn, t, opts);
}

// ---------------------------------------------------------------------------------------------
// random

// The default generator: a splitmix64 sequence of seeds, one per call.
let genState = BigInt(Math.floor(Math.random() * 2 ** 52));
const MASK64 = (1n << 64n) - 1n;

/** Seeds the default generator: the draws without an explicit seed become reproducible. */
export function manualSeed(seed: number): void {
  if (typeof seed !== 'number') typeError('manualSeed', `'seed' must be an integer, got ${describe(seed)}`);
  if (!Number.isSafeInteger(seed)) rangeError('manualSeed', `'seed' must be a safe integer, got ${seed}`);
  genState = BigInt.asUintN(64, BigInt(seed));
}

function nextSeed(): number {
  genState = (genState + 0x9e3779b97f4a7c15n) & MASK64;
  let z = genState;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  z ^= z >> 31n;
  return Number(z >> 11n); // 53 bits: exact as a double
}

/** A draw's seed: `seed` checked (a safe integer), or the default generator's next one (see manualSeed). */
export function seedOf(fn: string, seed: unknown): number {
  if (seed === undefined) return nextSeed();
  checkNumber(fn, 'seed', seed);
  if (!Number.isSafeInteger(seed)) rangeError(fn, `'seed' must be a safe integer, got ${seed}`);
  return seed as number;
}

function randomImpl(fn: string, kind: 'normal' | 'uniform', shape: unknown, opts: RandomOptions): Tensor {
  const s = shapeArg(fn, shape);
  checkOptions(fn, opts, [...TENSOR_KEYS, 'seed']);
  const dtype = parseDType(fn, opts.dtype);
  if (!isFloating(dtype)) typeError(fn, `'dtype' must be floating for random values, got ${dtype}`);
  const dev: DeviceSpec = parseDevice(fn, opts.device);
  const seed = seedOf(fn, opts.seed);
  const t = fromHandle(native().random(kind, DTYPE_CODES[dtype], s, seed, dev.type, dev.index), dtype, s, dev);
  return finish(fn, t, opts);
}

/** Standard normal samples. */
export function randn(shape: number[] | number, opts: RandomOptions = {}): Tensor {
  return randomImpl('randn', 'normal', shape, opts);
}

/** Uniform samples in (0, 1). */
export function rand(shape: number[] | number, opts: RandomOptions = {}): Tensor {
  return randomImpl('rand', 'uniform', shape, opts);
}
