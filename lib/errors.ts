// errors.ts — argument checks shared by every public function. Messages name the function and the
// argument and show shapes, e.g. "structura.matmul: 'a' [2, 3] and 'b' [4, 5]: inner dimensions 3
// and 4 differ". Wrong kinds of values are TypeErrors; values of the right kind out of range are
// RangeErrors (as the native checks in csrc/tensor.h).

/** Largest element count of one tensor (csrc/tensor.h kMaxNumel). */
export const MAX_NUMEL = 2 ** 40;
/** Most dimensions of one tensor (csrc/tensor.cc get_shape). */
export const MAX_DIMS = 64;

/** "an int32", "a float32", "a uint8": a dtype with its article, for messages. */
export function aDType(dtype: string): string {
  return `${/^(int|Int)/.test(dtype) ? 'an' : 'a'} ${dtype}`;
}

/** "[2, 3]" — a shape as the messages show it. */
export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** A short description of any value for "got …" in messages. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'number') return `number ${v}`;
  if (typeof v === 'string') return `string '${v.length > 40 ? v.slice(0, 40) + '…' : v}'`;
  if (typeof v === 'boolean') return `boolean ${v}`;
  if (typeof v === 'bigint') return `bigint ${v}`;
  if (typeof v === 'function') return 'a function';
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name}`;
  const name = (v as object).constructor?.name;
  return name && name !== 'Object' ? `a ${name}` : 'an object';
}

/** Throws a TypeError "structura.<fn>: msg". */
export function typeError(fn: string, msg: string): never {
  throw new TypeError(`structura.${fn}: ${msg}`);
}

/** Throws a RangeError "structura.<fn>: msg". */
export function rangeError(fn: string, msg: string): never {
  throw new RangeError(`structura.${fn}: ${msg}`);
}

/** An integer in [lo, hi], else TypeError (not a number) or RangeError (fractional, out of range). */
export function checkInt(fn: string, arg: string, v: unknown, lo: number, hi: number): number {
  if (typeof v !== 'number') typeError(fn, `'${arg}' must be an integer, got ${describe(v)}`);
  if (!Number.isInteger(v)) rangeError(fn, `'${arg}' must be an integer, got ${v}`);
  if (v < lo || v > hi) rangeError(fn, `'${arg}' must be in [${lo}, ${hi}], got ${v}`);
  return v;
}

/** A finite number, else TypeError/RangeError. */
export function checkNumber(fn: string, arg: string, v: unknown, { finite = false } = {}): number {
  if (typeof v !== 'number') typeError(fn, `'${arg}' must be a number, got ${describe(v)}`);
  if (finite && !Number.isFinite(v)) rangeError(fn, `'${arg}' must be finite, got ${v}`);
  return v;
}

/** A shape: an array of non-negative integers whose product is at most MAX_NUMEL. */
export function checkShape(fn: string, arg: string, v: unknown): number[] {
  if (!Array.isArray(v)) typeError(fn, `'${arg}' must be an array of non-negative integers, got ${describe(v)}`);
  if (v.length > MAX_DIMS) rangeError(fn, `'${arg}' has ${v.length} dimensions, more than the limit of ${MAX_DIMS}`);
  let n = 1;
  for (let i = 0; i < v.length; i++) {
    const d = v[i];
    if (typeof d !== 'number') typeError(fn, `'${arg}' must be an array of non-negative integers, but ${arg}[${i}] is ${describe(d)}`);
    if (!Number.isInteger(d) || d < 0)
      rangeError(fn, `'${arg}' must be an array of non-negative integers, but ${arg}[${i}] is ${d}`);
    n *= d;
  }
  if (n > MAX_NUMEL) rangeError(fn, `'${arg}' ${shapeStr(v)} has ${n} elements, more than the limit of 2^40`);
  return v.slice();
}

/** Normalises an axis (negative counts from the end) for a tensor of `ndim` dimensions. */
export function normAxis(fn: string, arg: string, axis: unknown, ndim: number, shape: readonly number[]): number {
  if (typeof axis !== 'number') typeError(fn, `'${arg}' must be an integer, got ${describe(axis)}`);
  if (!Number.isInteger(axis)) rangeError(fn, `'${arg}' must be an integer, got ${axis}`);
  if (axis < -ndim || axis >= ndim) {
    if (ndim === 0) rangeError(fn, `'${arg}' ${axis} is out of range for a 0-d tensor`);
    rangeError(fn, `'${arg}' ${axis} is out of range for shape ${shapeStr(shape)} (expected ${-ndim} to ${ndim - 1})`);
  }
  return axis < 0 ? axis + ndim : axis;
}

/**
 * Normalises the axes of a reduction: undefined/null = all axes; a number or an array of numbers
 * (negative allowed, no repeats). Returns them sorted.
 */
export function normAxes(fn: string, axis: unknown, ndim: number, shape: readonly number[]): number[] {
  if (axis === undefined || axis === null) return Array.from({ length: ndim }, (_, i) => i);
  const list = Array.isArray(axis) ? axis : [axis];
  if (!Array.isArray(axis) && typeof axis !== 'number')
    typeError(fn, `'axis' must be an integer or an array of integers, got ${describe(axis)}`);
  const out = list.map((a, i) => normAxis(fn, Array.isArray(axis) ? `axis[${i}]` : 'axis', a, ndim, shape));
  const sorted = out.slice().sort((x, y) => x - y);
  for (let i = 1; i < sorted.length; i++)
    if (sorted[i] === sorted[i - 1]) rangeError(fn, `'axis' ${shapeStr(list as number[])} repeats axis ${sorted[i]}`);
  return sorted;
}

/** Numpy broadcasting of two shapes, or null if they do not broadcast. */
export function broadcastShapes(a: readonly number[], b: readonly number[]): number[] | null {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const x = i < n - a.length ? 1 : a[i - (n - a.length)];
    const y = i < n - b.length ? 1 : b[i - (n - b.length)];
    if (x !== y && x !== 1 && y !== 1) return null;
    out[i] = x === 1 ? y : x;
  }
  return out;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * opts (an options argument) as an object of the known keys: undefined gives {}, anything else but a
 * plain object is a TypeError (naming `example` when given), and so is an unknown key — a misspelt
 * option never goes silently unused.
 */
export function optionsOf<T extends object>(fn: string, opts: T | undefined, known: readonly string[], example?: string): T {
  if (opts === undefined) return {} as T;
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts))
    typeError(fn, `'opts' must be an object${example ? ` such as ${example}` : ''}, got ${describe(opts)}`);
  checkKnownKeys(fn, opts as Record<string, unknown>, known);
  return opts;
}

/** Throws a TypeError for keys not in `known` (with a hint for snake_case spellings): a misspelt
 * option would otherwise be ignored silently. */
export function checkKnownKeys(fn: string, opts: Record<string, unknown>, known: readonly string[]): void {
  for (const k of Object.keys(opts)) {
    if (known.includes(k)) continue;
    const camel = k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
    const hint = camel !== k && known.includes(camel) ? ` (did you mean '${camel}'?)` : ` (known options: ${known.join(', ')})`;
    typeError(fn, `unknown option '${k}'${hint}`);
  }
}

/** A probability argument: a number in [0, 1] (a TypeError otherwise, a RangeError outside). */
export function checkProbability(fn: string, arg: string, p: unknown): number {
  if (typeof p !== 'number') typeError(fn, `'${arg}' must be a number in [0, 1], got ${describe(p)}`);
  if (!(p >= 0 && p <= 1)) rangeError(fn, `'${arg}' must be a probability in [0, 1], got ${p}`);
  return p as number;
}
