// tensor.ts — the Tensor class (a typed view over a native handle: dtype, shape, strides, offset,
// device, autograd state) and tensor lifetime: dispose / `using` / tidy / keep, the
// FinalizationRegistry backstop, memory(), and the environment functions (threads, backend, cuda).
//
// The native side (csrc/) owns the bytes; a handle holds one reference to its storage, so a view is
// just another handle on the same storage and disposing the base never invalidates a view. JS keeps
// the layout (shape, strides and offset in elements) because native ops always return fresh
// contiguous tensors whose shape the op already knows.
// `[Symbol.dispose]` below needs this lib in a user's compilation too (target ES2022 lacks it); preserve keeps
// the directive in the emitted declarations, which TS 5.5+ would otherwise drop.
/// <reference lib="esnext.disposable" preserve="true" />
import { native, nativePath, DTYPE_CODES, DTYPE_BYTES, DEVICE_CODES, type Handle, type DType, type BackendInfo } from './native';
import { shapeStr, typeError, rangeError, checkInt, describe, numel, MAX_DIMS } from './errors';
import type { GradNode, Hook } from './autograd';
import * as autograd from './autograd';
import * as ew from './ops/elementwise';
import * as red from './ops/reduce';
import * as dense from './ops/dense';

// util.inspect.custom is this registered symbol: console.log(t) prints like toString(). Taken by name so
// the declaration files do not need @types/node.
const INSPECT: unique symbol = Symbol.for('nodejs.util.inspect.custom') as never;
import * as shp from './ops/shape';

export type { DType } from './native';
export type TypedArray = Float32Array | Float64Array | Int32Array | Uint8Array | Uint16Array;
/** 'cpu', 'cuda' (= 'cuda:0'), 'cuda:N', or 'cuda-emu' (test builds). */
export type Device = 'cpu' | 'cuda' | `cuda:${number}` | 'cuda-emu';

export const DTYPES: readonly DType[] = Object.keys(DTYPE_CODES) as DType[];
export const FLOAT_DTYPES: readonly DType[] = ['float32', 'float64', 'float16', 'bfloat16'];

export function isFloating(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float64' || dtype === 'float16' || dtype === 'bfloat16';
}

/** A parsed device: the native codes and the canonical name ('cpu', 'cuda:0', 'cuda-emu'). */
export interface DeviceSpec {
  readonly type: number;
  readonly index: number;
  readonly name: string;
}
export const CPU: DeviceSpec = Object.freeze({ type: DEVICE_CODES.cpu, index: 0, name: 'cpu' });

/** Parses and checks a device argument; devices this build cannot use are a TypeError that says why. */
export function parseDevice(fn: string, v: unknown): DeviceSpec {
  if (v === undefined || v === 'cpu') return CPU;
  if (typeof v !== 'string') typeError(fn, `'device' must be a string such as 'cpu' or 'cuda', got ${describe(v)}`);
  const m = /^(cuda)(?::(\d+))?$|^(cuda-emu)$/.exec(v);
  if (!m) rangeError(fn, `'device' must be 'cpu', 'cuda', 'cuda:N' or 'cuda-emu', got '${v}'`);
  const spec: DeviceSpec = m[3]
    ? { type: DEVICE_CODES['cuda-emu'], index: 0, name: 'cuda-emu' }
    : { type: DEVICE_CODES.cuda, index: Number(m[2] ?? 0), name: `cuda:${Number(m[2] ?? 0)}` };
  // Say why a device is missing here rather than failing in C++.
  const info = native().backend();
  if (spec.type === DEVICE_CODES['cuda-emu']) {
    if (!info.cudaEmu)
      typeError(fn, `device 'cuda-emu' is not available in this build: it was built without the emulated device (build with cmake-js and the CMake option STRUCTURA_CUDA_EMU=ON, the default; node-gyp builds have none)`);
  } else if (!info.cuda) {
    typeError(fn, `device '${v}' is not available ${info.cudaCompiled ? 'on this machine' : 'in this build'}: ${info.reason || 'no CUDA device'} (use 'cpu')`);
  } else if (spec.index >= info.devices.length) {
    typeError(fn, `device '${v}' is not available: this machine has ${info.devices.length} CUDA device(s)`);
  }
  return spec;
}

/** Checks a dtype argument (undefined → `dflt`). */
export function parseDType(fn: string, v: unknown, dflt: DType = 'float32'): DType {
  if (v === undefined) return dflt;
  if (typeof v !== 'string' || !(v in DTYPE_CODES))
    typeError(fn, `'dtype' must be one of ${DTYPES.map((d) => `'${d}'`).join(', ')}, got ${typeof v === 'string' ? `'${v}'` : describe(v)}`);
  return v as DType;
}

// ---------------------------------------------------------------------------------------------
// lifetime: scopes (tidy), the live count, the FinalizationRegistry backstop

/** The stack of tidy scopes; a new tensor joins the innermost. */
const scopes: Set<Tensor>[] = [];
let liveTensors = 0;
let nextId = 1;

interface Held {
  h: Handle;
  node: GradNode | null;
}
// A Tensor collected without dispose() releases its handle (and its graph node's reference) here.
const registry = new FinalizationRegistry<Held>((held) => {
  liveTensors--;
  try {
    native().dispose(held.h);
  } catch {
    // the addon may already be unloading with the environment
  }
  if (held.node) held.node.decRef();
});

// Registering a tensor costs a weak cell and an entry in the registry's token table (about a third
// of a small op's time, measured), yet most tensors are disposed — by hand or by tidy — a few ops
// after they are made. So a new tensor waits in `unregistered` and is registered only if it is still
// live when the list is flushed: at 256 tensors or 16 MiB of elements, or at the next turn of the
// event loop. Until then the list holds it, which delays the backstop by that much and no more.
const unregistered: Tensor[] = [];
let unregisteredBytes = 0;
let flushQueued = false;
const FLUSH_TENSORS = 256;
const FLUSH_BYTES = 16 * 2 ** 20;

function flushUnregistered(): void {
  for (const t of unregistered) {
    if (t._disposed) continue;
    registry.register(t, t._held, t);
    t._registered = true;
  }
  unregistered.length = 0;
  unregisteredBytes = 0;
}

function awaitRegistration(t: Tensor): void {
  unregistered.push(t);
  if (!t._isView) unregisteredBytes += numel(t._shape) * DTYPE_BYTES[t.dtype];
  if (unregistered.length >= FLUSH_TENSORS || unregisteredBytes >= FLUSH_BYTES) flushUnregistered();
  else if (!flushQueued) {
    // one immediate at a time: a loop that never yields flushes by count, and queues no more
    flushQueued = true;
    setImmediate(() => {
      flushQueued = false;
      flushUnregistered();
    }).unref();
  }
}

const INTERNAL = Symbol('structura.internal');

/**
 * A tensor: a dtype, a shape and a device over native storage, with autograd state.
 * Create tensors with `tensor()`, `zeros()`, `randn()` and the ops; the constructor is internal.
 */
export class Tensor {
  /** @internal */ _h: Handle;
  /** @internal */ readonly _shape: readonly number[];
  /** @internal */ readonly _strides: readonly number[];
  /** @internal */ readonly _offset: number;
  /** @internal */ readonly _dev: DeviceSpec;
  /** @internal true when this handle shares storage that another tensor created (views, aliases). */
  readonly _isView: boolean;
  /** @internal */ _disposed = false;
  /** @internal */ _kept = false;
  /** @internal in the FinalizationRegistry (see awaitRegistration) */
  _registered = false;
  /** @internal */ _requiresGrad = false;
  /** @internal */ _gradFn: GradNode | null = null;
  /** @internal */ _grad: Tensor | null = null;
  /** @internal hooks of a leaf (a non-leaf keeps them on its graph node) */
  _hooks: Hook[] | null = null;
  /** @internal */ readonly _held: Held;

  readonly dtype: DType;
  /** A number unique to this tensor object, for debugging. */
  readonly id: number;

  /**
   * Not for use: tensors come from tensor(), zeros(), randn() and the ops (the token is private to
   * the library; anything else throws). Declared, not stripped, so that `new Tensor()` is a type error.
   */
  constructor(
    token: symbol,
    h: Handle,
    dtype: DType,
    shape: readonly number[],
    strides: readonly number[],
    offset: number,
    dev: DeviceSpec,
    isView: boolean,
    track = true,
  ) {
    if (token !== INTERNAL)
      throw new TypeError('structura.Tensor: use tensor(), zeros(), randn() or an op to make tensors; the constructor is internal');
    this._h = h;
    this.dtype = dtype;
    this._shape = shape;
    this._strides = strides;
    this._offset = offset;
    this._dev = dev;
    this._isView = isView;
    this.id = nextId++;
    this._held = { h, node: null };
    liveTensors++;
    awaitRegistration(this);
    if (track && scopes.length > 0) scopes[scopes.length - 1].add(this);
  }

  // ---- layout ----
  /** The shape (a copy). */
  get shape(): number[] {
    return this._shape.slice();
  }
  /** Strides in elements (a copy). */
  get strides(): number[] {
    return this._strides.slice();
  }
  /** Offset of the first element in the storage, in elements. */
  get storageOffset(): number {
    return this._offset;
  }
  get ndim(): number {
    return this._shape.length;
  }
  /** Number of elements. */
  get size(): number {
    return numel(this._shape);
  }
  /** 'cpu', 'cuda:0', … */
  get device(): string {
    return this._dev.name;
  }
  /** True if the elements are laid out row-major without gaps. */
  get isContiguous(): boolean {
    return isContiguousLayout(this._shape, this._strides);
  }
  get isDisposed(): boolean {
    return this._disposed;
  }

  // ---- autograd state ----
  /** Whether gradients flow to this tensor. Settable on leaves (tensors no op produced) only. */
  get requiresGrad(): boolean {
    return this._requiresGrad;
  }
  set requiresGrad(v: boolean) {
    this._check('requiresGrad');
    if (typeof v !== 'boolean') typeError('requiresGrad', `must be set to a boolean, got ${describe(v)}`);
    if (this._gradFn)
      typeError('requiresGrad', `can only be set on leaf tensors; this one comes from ${this._gradFn.name} (use .detach())`);
    if (v && !isFloating(this.dtype)) typeError('requiresGrad', `only floating tensors can require gradients, this one is ${this.dtype}`);
    this._requiresGrad = v;
  }
  /** The gradient accumulated by backward() (leaves only), or null. */
  get grad(): Tensor | null {
    return this._grad;
  }
  set grad(g: Tensor | null) {
    if (g !== null) {
      checkTensor('grad', 'grad', g);
      if (g.dtype !== this.dtype || g._shape.length !== this._shape.length || g._shape.some((d, i) => d !== this._shape[i]))
        typeError('grad', `assigned gradient ${shapeStr(g._shape)} ${g.dtype} does not match the tensor ${shapeStr(this._shape)} ${this.dtype}`);
      if (g._dev.name !== this._dev.name) typeError('grad', `assigned gradient is on ${g.device} but the tensor is on ${this.device}`);
    }
    this._grad = g;
  }
  /** The graph node that produced this tensor (null for leaves). */
  get gradFn(): GradNode | null {
    return this._gradFn;
  }
  /** True if no recorded op produced this tensor. */
  get isLeaf(): boolean {
    return this._gradFn === null;
  }
  /** Disposes .grad and sets it to null (what an optimizer's zeroGrad does). */
  zeroGrad(): void {
    if (this._grad) this._grad.dispose();
    this._grad = null;
  }

  /**
   * Backpropagates from this tensor: accumulates d(this)/d(leaf) · grad into every leaf's .grad.
   * `grad` defaults to 1 for a one-element tensor. The graph's saved tensors are freed afterwards
   * unless `retainGraph` is true.
   */
  backward(grad?: Tensor, opts: { retainGraph?: boolean } = {}): void {
    autograd.backward(this, grad, opts);
  }
  /** A tensor sharing this one's storage, cut from the graph (requiresGrad false). */
  detach(): Tensor {
    this._check('detach');
    return aliasOf(this, true);
  }
  /**
   * Calls fn(grad) with the gradient with respect to this tensor during backward(); fn may return a
   * replacement. The gradient given to fn is valid during the call only, and tensors fn makes are
   * disposed when it returns (as in tidy): `saved = keep(grad.clone())` holds on to a copy.
   * The graph keeps fn, and with it whatever fn refers to: a hook that captures a tensor of the same
   * graph (this one, another output of the op) keeps that tensor from being garbage-collected — dispose
   * such tensors, or remove() the hook, when done.
   */
  registerHook(fn: Hook): { remove(): void } {
    return autograd.registerHook(this, fn);
  }

  // ---- reading ----
  /** The elements in row-major order (float16/bfloat16 read as Float32Array). */
  async data(): Promise<TypedArray> {
    this._check('data');
    return this.dataSync();
  }
  /** The elements in row-major order, synchronously. */
  dataSync(): TypedArray {
    this._check('dataSync');
    return native().read(this._h);
  }
  /** The raw element bits (float16/bfloat16 as Uint16Array). */
  rawDataSync(): TypedArray {
    this._check('rawDataSync');
    return native().readRaw(this._h);
  }
  /** The value of a one-element tensor. */
  item(): number {
    this._check('item');
    if (this.size !== 1) rangeError('item', `only a one-element tensor has an item, this one has shape ${shapeStr(this._shape)}`);
    return native().item(this._h);
  }
  /** Nested arrays of numbers (a 0-d tensor gives a number). */
  toArray(): unknown {
    const d = this.dataSync();
    const build = (dim: number, at: number): unknown => {
      if (dim === this._shape.length) return d[at];
      const n = this._shape[dim];
      const step = numel(this._shape.slice(dim + 1));
      const out = new Array(n);
      for (let i = 0; i < n; i++) out[i] = build(dim + 1, at + i * step);
      return out;
    };
    return build(0, 0);
  }
  /** Prints like PyTorch: `tensor([[1.0000, 2.5000], …])`, abbreviated with … beyond 1000 elements. */
  toString(): string {
    if (this._disposed) return `tensor(<disposed>, shape=${shapeStr(this._shape)}, dtype=${this.dtype})`;
    return formatTensor(this);
  }
  [INSPECT](): string {
    return this.toString();
  }

  // ---- lifetime ----
  /** Releases the native memory (once; later calls do nothing). A leaf's .grad is disposed too. */
  dispose(): void {
    if (this._disposed) return;
    this._disposed = true;
    liveTensors--;
    if (this._registered) registry.unregister(this);
    native().dispose(this._h);
    if (this._grad) {
      this._grad.dispose();
      this._grad = null;
    }
    const node = this._gradFn;
    this._held.node = null;
    if (node) node.decRef();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
  /** @internal throws if disposed */
  _check(fn: string, arg = 'tensor'): void {
    if (this._disposed) typeError(fn, `'${arg}' is a disposed tensor (shape ${shapeStr(this._shape)}, ${this.dtype})`);
  }
  /** @internal attaches the graph node that produced this tensor */
  _setGradFn(node: GradNode): void {
    this._gradFn = node;
    this._requiresGrad = true;
    this._held.node = node;
  }

  // ---- device and dtype ----
  /** This tensor on `device` (gradients flow back). Same device: a new tensor sharing this one's storage (like PyTorch returning self, but safe to dispose separately). */
  to(device: Device | string): Tensor {
    this._check('to');
    const d = parseDevice('to', device);
    if (d.type === this._dev.type && d.index === this._dev.index) return shp.alias(this);
    return shp.toDevice(this, d);  // a copy there, in the graph
  }
  /** A copy converted to dtype (gradients flow back for floating dtypes). */
  cast(dtype: DType): Tensor {
    return shp.cast(this, dtype);
  }
  /** A contiguous copy (gradients flow back). */
  clone(): Tensor {
    return shp.clone(this);
  }

  // ---- views and shapes ----
  reshape(...shape: number[] | [number[]]): Tensor {
    return shp.reshape(this, ...shape);
  }
  /** A view with a new shape, never a copy: a RangeError where the strides need one (use reshape). */
  view(...shape: number[] | [number[]]): Tensor {
    return shp.view(this, ...shape);
  }
  transpose(d0?: number, d1?: number): Tensor {
    return shp.transpose(this, d0, d1);
  }
  /** The 2-D transpose (this.transpose(-2, -1) for a batch of matrices). */
  get T(): Tensor {
    return shp.transpose(this, this.ndim < 2 ? undefined : -2, this.ndim < 2 ? undefined : -1);
  }
  permute(...dims: number[] | [number[]]): Tensor {
    return shp.permute(this, ...dims);
  }
  narrow(axis: number, start: number, length: number): Tensor {
    return shp.narrow(this, axis, start, length);
  }
  contiguous(): Tensor {
    return shp.contiguous(this);
  }
  squeeze(axis?: number | number[]): Tensor {
    return shp.squeeze(this, axis);
  }
  unsqueeze(axis: number): Tensor {
    return shp.unsqueeze(this, axis);
  }
  expand(...shape: number[] | [number[]]): Tensor {
    return shp.expand(this, ...shape);
  }
  flatten(startAxis = 0, endAxis = -1): Tensor {
    return shp.flatten(this, startAxis, endAxis);
  }

  // ---- arithmetic ----
  add(b: Tensor | number): Tensor {
    return ew.add(this, b);
  }
  sub(b: Tensor | number): Tensor {
    return ew.sub(this, b);
  }
  mul(b: Tensor | number): Tensor {
    return ew.mul(this, b);
  }
  div(b: Tensor | number): Tensor {
    return ew.div(this, b);
  }
  pow(b: Tensor | number): Tensor {
    return ew.pow(this, b);
  }
  maximum(b: Tensor | number): Tensor {
    return ew.maximum(this, b);
  }
  minimum(b: Tensor | number): Tensor {
    return ew.minimum(this, b);
  }
  eq(b: Tensor | number): Tensor {
    return ew.eq(this, b);
  }
  ne(b: Tensor | number): Tensor {
    return ew.ne(this, b);
  }
  lt(b: Tensor | number): Tensor {
    return ew.lt(this, b);
  }
  le(b: Tensor | number): Tensor {
    return ew.le(this, b);
  }
  gt(b: Tensor | number): Tensor {
    return ew.gt(this, b);
  }
  ge(b: Tensor | number): Tensor {
    return ew.ge(this, b);
  }
  neg(): Tensor {
    return ew.neg(this);
  }
  exp(): Tensor {
    return ew.exp(this);
  }
  log(): Tensor {
    return ew.log(this);
  }
  sqrt(): Tensor {
    return ew.sqrt(this);
  }
  rsqrt(): Tensor {
    return ew.rsqrt(this);
  }
  abs(): Tensor {
    return ew.abs(this);
  }
  relu(): Tensor {
    return ew.relu(this);
  }
  gelu(): Tensor {
    return ew.gelu(this);
  }
  silu(): Tensor {
    return ew.silu(this);
  }
  tanh(): Tensor {
    return ew.tanh(this);
  }
  sigmoid(): Tensor {
    return ew.sigmoid(this);
  }
  square(): Tensor {
    return ew.square(this);
  }
  reciprocal(): Tensor {
    return ew.reciprocal(this);
  }
  sign(): Tensor {
    return ew.sign(this);
  }
  erf(): Tensor {
    return ew.erf(this);
  }
  sin(): Tensor {
    return ew.sin(this);
  }
  cos(): Tensor {
    return ew.cos(this);
  }
  clamp(min?: number, max?: number): Tensor {
    return ew.clamp(this, min, max);
  }
  matmul(b: Tensor): Tensor {
    return dense.matmul(this, b);
  }

  // ---- reductions ----
  sum(axis?: number | number[] | null, keepDims = false): Tensor {
    return red.sum(this, axis, keepDims);
  }
  mean(axis?: number | number[] | null, keepDims = false): Tensor {
    return red.mean(this, axis, keepDims);
  }
  max(axis?: number | number[] | null, keepDims = false): Tensor {
    return red.max(this, axis, keepDims);
  }
  min(axis?: number | number[] | null, keepDims = false): Tensor {
    return red.min(this, axis, keepDims);
  }
  argmax(axis?: number, keepDims = false): Tensor {
    return red.argmax(this, axis, keepDims);
  }
  argmin(axis?: number, keepDims = false): Tensor {
    return red.argmin(this, axis, keepDims);
  }
  softmax(axis = -1): Tensor {
    return red.softmax(this, axis);
  }
  logSoftmax(axis = -1): Tensor {
    return red.logSoftmax(this, axis);
  }
}

// ---------------------------------------------------------------------------------------------
// internal constructors

export function isContiguousLayout(shape: readonly number[], strides: readonly number[]): boolean {
  let expect = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && strides[i] !== expect) return false;
    expect *= shape[i];
  }
  return true;
}

export function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** @internal wraps a fresh contiguous native result. */
export function fromHandle(h: Handle, dtype: DType, shape: readonly number[], dev: DeviceSpec, track = true): Tensor {
  return new Tensor(INTERNAL, h, dtype, shape.slice(), contiguousStrides(shape), 0, dev, false, track);
}

// viewOf's layout, [shape, strides], reused by every view: the addon reads it in place (viewPacked).
const layoutScratch = new Float64Array(2 * MAX_DIMS);
/** @internal a view of t's storage with the given layout (bounds checked natively). */
export function viewOf(t: Tensor, shape: readonly number[], strides: readonly number[], offset: number, track = true): Tensor {
  const nd = shape.length;
  if (nd > MAX_DIMS || strides.length !== nd) rangeError('view', `shape ${shapeStr(shape)} and strides ${shapeStr(strides)} must have one entry per dimension, at most ${MAX_DIMS}`);
  for (let i = 0; i < nd; i++) {
    layoutScratch[i] = shape[i];
    layoutScratch[nd + i] = strides[i];
  }
  const h = native().viewPacked(t._h, layoutScratch, nd, offset);
  return new Tensor(INTERNAL, h, t.dtype, shape.slice(), strides.slice(), offset, t._dev, true, track);
}

/** @internal a second handle on t's storage with t's layout (the graph keeps these for backward). */
export function aliasOf(t: Tensor, track = true): Tensor {
  return new Tensor(INTERNAL, native().alias(t._h), t.dtype, t._shape, t._strides, t._offset, t._dev, true, track);
}

/** Throws unless v is a live Tensor. */
export function checkTensor(fn: string, arg: string, v: unknown): asserts v is Tensor {
  if (!(v instanceof Tensor)) typeError(fn, `'${arg}' must be a Tensor, got ${describe(v)}`);
  if (v._disposed) typeError(fn, `'${arg}' is a disposed tensor (shape ${shapeStr(v._shape)}, ${v.dtype})`);
}

/** Throws unless every tensor shares a's dtype and device. */
export function checkSameKind(fn: string, names: readonly string[], ts: readonly Tensor[]): void {
  const a = ts[0];
  for (let i = 1; i < ts.length; i++) {
    const b = ts[i];
    if (b.dtype !== a.dtype)
      typeError(fn, `'${names[0]}' ${shapeStr(a._shape)} is ${a.dtype} but '${names[i]}' ${shapeStr(b._shape)} is ${b.dtype} (convert one with .cast())`);
    if (b._dev.type !== a._dev.type || b._dev.index !== a._dev.index)
      typeError(fn, `'${names[0]}' is on ${a.device} but '${names[i]}' is on ${b.device} (move one with .to())`);
  }
}

export function checkFloating(fn: string, arg: string, t: Tensor): void {
  if (!isFloating(t.dtype)) typeError(fn, `'${arg}' must be a floating tensor (float32, float64, float16, bfloat16), got ${t.dtype}`);
}

// ---------------------------------------------------------------------------------------------
// memory management

/** A value tidy's fn may return: anything but a promise (the scope ends when fn returns). */
export type NotPromise<T> = T extends PromiseLike<unknown> ? never : T;

/**
 * Runs fn and disposes every tensor created inside it, except those it returns (found in nested
 * arrays, plain objects and Maps) and those passed to keep(). Returned tensors move to the enclosing
 * tidy, if any. fn must be synchronous: an async fn is a type error (and a TypeError at run time),
 * since its tensors would outlive the scope.
 */
export function tidy<T>(fn: () => NotPromise<T>): T;
export function tidy<T>(name: string, fn: () => NotPromise<T>): T;
export function tidy<T>(a: string | (() => T), b?: () => T): T {
  const fn = typeof a === 'function' ? a : b;
  if (typeof fn !== 'function') typeError('tidy', `'fn' must be a function, got ${describe(typeof a === 'string' ? b : a)}`);
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    endScope(scope, new Set());
    throw e;
  }
  scopes.pop();
  if (result instanceof Promise) {
    endScope(scope, new Set());
    typeError('tidy', 'fn returned a Promise; tidy only works with synchronous functions');
  }
  endScope(scope, collectTensors(result));
  return result;
}

function endScope(scope: Set<Tensor>, keepSet: Set<Tensor>): void {
  const parent = scopes.length > 0 ? scopes[scopes.length - 1] : null;
  for (const t of scope) {
    if (t._disposed) continue;
    if (keepSet.has(t) || t._kept) {
      if (parent && !t._kept) parent.add(t);
    } else {
      t.dispose();
    }
  }
}

/** @internal starts a scope that collects new tensors (the backward pass owns its own). */
export function pushScope(): Set<Tensor> {
  const s = new Set<Tensor>();
  scopes.push(s);
  return s;
}
/** @internal ends the innermost scope without disposing anything; returns what it collected. */
export function popScope(s: Set<Tensor>): Set<Tensor> {
  const top = scopes.pop();
  if (top !== s) throw new Error('structura: internal error: tensor scopes popped out of order');
  return s;
}
/** @internal adds t to the innermost scope (a tensor made inside a scope of its own that outlives it). */
export function adopt(t: Tensor): void {
  if (scopes.length > 0) scopes[scopes.length - 1].add(t);
}
/** @internal removes t from every scope (it now belongs to a leaf's .grad or the graph). */
export function untrack(t: Tensor): void {
  for (const s of scopes) s.delete(t);
}

/** Every tensor in a value: a Tensor, or nested arrays / plain objects / Maps / Sets of them. */
export function collectTensors(v: unknown, out = new Set<Tensor>(), seen = new Set<unknown>()): Set<Tensor> {
  if (v instanceof Tensor) {
    out.add(v);
    return out;
  }
  if (v === null || typeof v !== 'object' || seen.has(v) || ArrayBuffer.isView(v)) return out;
  seen.add(v);
  if (Array.isArray(v) || v instanceof Set) for (const x of v) collectTensors(x, out, seen);
  else if (v instanceof Map) for (const x of v.values()) collectTensors(x, out, seen);
  else for (const k of Object.keys(v)) collectTensors((v as Record<string, unknown>)[k], out, seen);
  return out;
}

/** Keeps t from being disposed by any tidy (it is then disposed only by t.dispose()). Returns t. */
export function keep<T extends Tensor>(t: T): T {
  checkTensor('keep', 't', t);
  t._kept = true;
  return t;
}

/** Disposes a tensor or every tensor in nested arrays / objects / Maps. */
export function dispose(tensors: unknown): void {
  for (const t of collectTensors(tensors)) t.dispose();
}

/** Live buffers and bytes of one device; `cached` / `cachedBlocks`: free blocks its caching allocator
 * holds for reuse (on the CPU, buffers of 256 KiB and more), not counted in `bytes`; `reserved` (devices):
 * all bytes obtained from the device, live and cached. */
export interface DeviceMemory {
  buffers: number;
  bytes: number;
  cached?: number;
  cachedBlocks?: number;
  reserved?: number;
}

export interface Memory {
  /** Live Tensor objects (each handle, views included). */
  numTensors: number;
  /** Native buffers and bytes per device (views share their base's buffer). */
  cpu: DeviceMemory;
  [device: string]: number | DeviceMemory;
}

/** Live tensors, and native buffers and bytes per device. */
export function memory(): Memory {
  const m = native().memory();
  return { numTensors: liveTensors, cpu: m.cpu ?? { buffers: 0, bytes: 0 }, ...m };
}

/** Frees the blocks the caching allocators hold for reuse — the CPU's large buffers, and every CUDA
 * (and cuda-emu) device's — without touching live tensors. Like torch.cuda.empty_cache(). */
export function emptyCache(): void {
  const n = native();
  n.emptyCache(0);
  const m = n.memory();
  if (m.cuda) n.emptyCache(1);
  if (m['cuda-emu']) n.emptyCache(2);
}

export function setNumThreads(n: number): void {
  checkInt('setNumThreads', 'n', n, 1, 256);
  native().setNumThreads(n);
}

export function getNumThreads(): number {
  return native().getNumThreads();
}

/**
 * As torch.set_flush_denormal (but for the whole process, not one thread): with mode true the CPU
 * kernels flush subnormal inputs and results to zero (FTZ/DAZ: faster where subnormals are common, on
 * CPUs that slow down on them), at every size and thread count; off by default, as in PyTorch, so ops
 * keep IEEE subnormals, as the devices do (a bfloat16 × bfloat16 matmul on AVX512-BF16 flushes them
 * always: its instruction does). JavaScript's own arithmetic is never affected. Returns false where the
 * CPU has no such mode (x86-64 has).
 */
export function setFlushDenormal(mode: boolean): boolean {
  if (typeof mode !== 'boolean') typeError('setFlushDenormal', `'mode' must be a boolean, got ${describe(mode)}`);
  return native().setFlushDenormal(mode);
}

/** The backend: CUDA availability (and why not), devices, SIMD level, threads, version, and the binary loaded. */
export function backend(): BackendInfo {
  return { ...native().backend(), binary: nativePath() };
}

export const cuda = {
  /** True when CUDA tensors can be used. */
  isAvailable(): boolean {
    return native().backend().cuda;
  },
  /** Waits for the work queued on every device in use (cuda, cuda-emu); a device error from an earlier op is thrown here. */
  synchronize(): void {
    native().synchronize();
  },
};

// ---------------------------------------------------------------------------------------------
// printing, as PyTorch's _tensor_str: 4 decimals, or scientific when the range is wide, integers
// as "1.", summarised with "..." past 1000 elements (3 items at each edge)

const THRESHOLD = 1000;
const EDGE = 3;
const LINE_WIDTH = 80;

function formatTensor(t: Tensor): string {
  const shape = t._shape;
  const summarize = t.size > THRESHOLD;
  const values = t.dataSync();
  const strides = contiguousStrides(shape);
  // The elements that will be printed decide the format.
  const shown: number[] = [];
  const visit = (dim: number, at: number): void => {
    if (dim === shape.length) {
      shown.push(values[at]);
      return;
    }
    for (const i of indices(shape[dim], summarize)) if (i >= 0) visit(dim + 1, at + i * strides[dim]);
  };
  visit(0, 0);
  const fmt = formatter(shown, isFloating(t.dtype));
  const width = shown.reduce((w, v) => Math.max(w, fmt(v).length), 1);
  const indent = 'tensor('.length;
  const body = (dim: number, at: number, ind: number): string => {
    if (dim === shape.length) return fmt(values[at]).padStart(width);
    const items: string[] = [];
    for (const i of indices(shape[dim], summarize)) items.push(i < 0 ? '...' : body(dim + 1, at + i * strides[dim], ind + 1));
    if (dim === shape.length - 1) {
      // the last dimension wraps at the line width
      const perLine = Math.max(1, Math.floor((LINE_WIDTH - ind - 1) / (width + 2)));
      const lines: string[] = [];
      for (let i = 0; i < items.length; i += perLine) lines.push(items.slice(i, i + perLine).join(', '));
      return '[' + lines.join(',\n' + ' '.repeat(ind + 1)) + ']';
    }
    const sep = ',' + '\n'.repeat(shape.length - dim - 1) + ' '.repeat(ind + 1);
    return '[' + items.join(sep) + ']';
  };
  let s = shape.length === 0 ? fmt(values[0]) : body(0, 0, indent);
  if (t.size === 0 && shape.length > 1) s = `[], size=${shapeStr(shape)}`;
  const extra: string[] = [];
  if (t.dtype !== 'float32') extra.push(`dtype=${t.dtype}`);
  if (t._dev.type !== DEVICE_CODES.cpu) extra.push(`device='${t.device}'`);
  if (t._gradFn) extra.push(`gradFn=<${t._gradFn.name}>`);
  else if (t._requiresGrad) extra.push('requiresGrad=true');
  return `tensor(${s}${extra.length ? ', ' + extra.join(', ') : ''})`;
}

/** Indices printed along a dimension of n; -1 marks the "..." gap. */
function indices(n: number, summarize: boolean): number[] {
  if (!summarize || n <= 2 * EDGE) return Array.from({ length: n }, (_, i) => i);
  return [0, 1, 2, -1, n - 3, n - 2, n - 1];
}

function formatter(shown: number[], floating: boolean): (v: number) => string {
  const special = (v: number): string | null => (Number.isNaN(v) ? 'nan' : v === Infinity ? 'inf' : v === -Infinity ? '-inf' : null);
  if (!floating) return (v) => String(v);
  const finite = shown.filter((v) => Number.isFinite(v));
  const abs = finite.map(Math.abs).filter((v) => v > 0);
  const max = abs.length ? Math.max(...abs) : 0;
  const min = abs.length ? Math.min(...abs) : 0;
  const allInt = finite.every((v) => Number.isInteger(v));
  if (allInt) {
    const sci = abs.length > 0 && (max / min > 1000 || max > 1e8);
    if (sci) return (v) => special(v) ?? expStr(v);
    return (v) => special(v) ?? (Object.is(v, -0) ? '-0.' : `${v}.`);
  }
  const sci = abs.length > 0 && (max / min > 1000 || max > 1e8 || min < 1e-4);
  if (sci) return (v) => special(v) ?? expStr(v);
  return (v) => special(v) ?? v.toFixed(4);
}

/** 1.2346e+02 (two exponent digits, as Python's "{:.4e}"). */
function expStr(v: number): string {
  const [m, e] = v.toExponential(4).split('e');
  const sign = e[0] === '-' ? '-' : '+';
  const digits = e.replace(/^[+-]/, '').padStart(2, '0');
  return `${m}e${sign}${digits}`;
}
