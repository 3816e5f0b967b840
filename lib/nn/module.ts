// module.ts — nn.Module, the base class of every layer: a tree of named parameters, buffers and child
// modules, with PyTorch's bookkeeping (parameters(), namedParameters(), stateDict(),
// loadStateDict(), train()/eval(), zeroGrad()).
//
// Writing a layer:
//
//   class MLP extends nn.Module {
//     declare fc1: nn.Linear;            // `declare`: see "Fields" below
//     declare scale: Tensor;
//     constructor() {
//       super();
//       this.registerModule('fc1', new nn.Linear(8, 32));
//       this.registerParameter('scale', ones([32]));
//     }
//     forward(x: Tensor): Tensor {
//       return this.fc1.forward(x).mul(this.scale).tanh();
//     }
//   }
//
// Registration makes `this.<name>` an accessor over the module's tables, so reassigning
// `this.fc1 = other` replaces the registered child (checked as at registration; a reassigned
// parameter keeps its own requiresGrad). Names in a state dict are paths ("fc1.weight", "0.bias"),
// a module's own entries first and then its children's, in registration order, as in PyTorch.
//
// Fields. With ES2022 class fields a subclass field written `fc1!: nn.Linear;` is (re)defined as
// `undefined` right after the base constructor returns. Registering in the same class's
// constructor is fine (it runs after that), but a field redeclared in a *further* subclass would
// hide the accessor; declare registered names with `declare` to be safe.
//
// Lifetime. Parameters and buffers are the module's: registering keeps them from tidy() (like a
// tfjs Variable), and module.dispose() releases them. stateDict() returns the module's own tensors
// (as PyTorch, sharing storage), not copies, unless asked for clones.
// `[Symbol.dispose]` below needs this lib in a user's compilation too (target ES2022 lacks it); preserve keeps
// the directive in the emitted declarations, which TS 5.5+ would otherwise drop.
/// <reference lib="esnext.disposable" preserve="true" />
import { Tensor, keep, isFloating } from '../tensor';
import { native } from '../native';
import { describe, shapeStr, typeError, rangeError, optionsOf } from '../errors';

/** A state dict: names ("fc1.weight") to tensors, in registration order. */
export type StateDict = Record<string, Tensor>;

export interface LoadStateDictResult {
  /** Names the module has but the state dict lacked (only possible with strict: false). */
  missingKeys: string[];
  /** Names in the state dict the module does not have (only possible with strict: false). */
  unexpectedKeys: string[];
}

type Slot =
  | { kind: 'parameter'; value: Tensor | null }
  | { kind: 'buffer'; value: Tensor | null; persistent: boolean }
  | { kind: 'module'; value: Module | null };

/** The modules a dispose() in progress has reached (each is disposed once). */
let disposing: Set<Module> | null = null;

/** The base class of layers. A Module with no forward() is a plain container. */
export class Module {
  /** True in training mode (the default), false after eval(); layers such as dropout read it. */
  training = true;
  // One table for the three kinds keeps a name unique across them and keeps registration order.
  readonly #slots = new Map<string, Slot>();

  /**
   * The layer's computation. Subclasses override it; the base class has none, so calling it on a
   * plain container is an error.
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  forward(..._inputs: any[]): any {
    typeError(`nn.${this.constructor.name}.forward`, `${this.constructor.name} does not define forward(); subclasses of nn.Module implement it`);
  }

  // ---- registration ----

  /**
   * Registers a parameter (a floating leaf tensor; null is allowed for an absent optional one, as
   * PyTorch's `bias=None`). Sets `requiresGrad` (default true) and makes `this[name]` refer to it.
   * Returns the tensor.
   */
  registerParameter<T extends Tensor | null>(name: string, t: T, opts: { requiresGrad?: boolean } = {}): T {
    const fn = `nn.${this.constructor.name}.registerParameter`;
    this.#checkName(fn, name);
    opts = optionsOf(fn, opts, ['requiresGrad']);
    const requiresGrad = opts.requiresGrad ?? true;
    if (typeof requiresGrad !== 'boolean') typeError(fn, `'requiresGrad' must be a boolean, got ${describe(requiresGrad)}`);
    checkParameter(fn, name, t);
    if (t) {
      t.requiresGrad = requiresGrad;
      keep(t);
    }
    this.#slots.set(name, { kind: 'parameter', value: t });
    this.#defineAccessor(name);
    return t;
  }

  /**
   * Registers a buffer: a tensor that belongs to the module's state but is not trained (running
   * statistics, masks, fixed tables). Persistent buffers appear in stateDict(). Returns the tensor.
   */
  registerBuffer<T extends Tensor | null>(name: string, t: T, opts: { persistent?: boolean } = {}): T {
    const fn = `nn.${this.constructor.name}.registerBuffer`;
    this.#checkName(fn, name);
    opts = optionsOf(fn, opts, ['persistent']);
    const persistent = opts.persistent ?? true;
    if (typeof persistent !== 'boolean') typeError(fn, `'persistent' must be a boolean, got ${describe(persistent)}`);
    checkBuffer(fn, name, t);
    if (t) keep(t);
    this.#slots.set(name, { kind: 'buffer', value: t, persistent });
    this.#defineAccessor(name);
    return t;
  }

  /** Registers a child module (or null as a placeholder). Returns it. */
  registerModule<M extends Module | null>(name: string, m: M): M {
    const fn = `nn.${this.constructor.name}.registerModule`;
    this.#checkName(fn, name);
    checkModule(fn, name, m);
    if ((m as unknown) === this) rangeError(fn, `a module cannot be its own child ('${name}')`);
    this.#slots.set(name, { kind: 'module', value: m });
    this.#defineAccessor(name);
    return m;
  }

  #checkName(fn: string, name: unknown): asserts name is string {
    if (typeof name !== 'string') typeError(fn, `'name' must be a string, got ${describe(name)}`);
    if (name === '' || name.includes('.'))
      rangeError(fn, `'name' must be non-empty and contain no '.', got '${name}'`);
    if (this.#slots.has(name)) rangeError(fn, `'${name}' is already registered as a ${this.#slots.get(name)!.kind}`);
    // A name shadowing a method or a base-class property (forward, training, …) would break the
    // module; an own field that is still undefined is the subclass declaring the name, which is fine.
    if (name in this && !(Object.prototype.hasOwnProperty.call(this, name) && (this as Record<string, unknown>)[name] === undefined))
      rangeError(fn, `'${name}' is already a property of ${this.constructor.name}; choose another name`);
  }

  #defineAccessor(name: string): void {
    const slots = this.#slots;
    const owner = this.constructor.name;
    Object.defineProperty(this, name, {
      configurable: true,
      enumerable: true,
      get: () => slots.get(name)!.value,
      set: (v: unknown) => {
        const slot = slots.get(name)!;
        const fn = `nn.${owner}.${name}`;
        if (slot.kind === 'parameter') {
          checkParameter(fn, name, v);
          if (v) keep(v as Tensor);
        } else if (slot.kind === 'buffer') {
          checkBuffer(fn, name, v);
          if (v) keep(v as Tensor);
        } else {
          checkModule(fn, name, v);
          if (v === this) rangeError(fn, `a module cannot be its own child ('${name}')`);
        }
        slot.value = v as never;
      },
    });
  }

  // ---- traversal ----

  /** The direct children, as [name, module] in registration order (null placeholders skipped). */
  *namedChildren(): IterableIterator<[string, Module]> {
    for (const [name, s] of this.#slots) if (s.kind === 'module' && s.value) yield [name, s.value];
  }

  *children(): IterableIterator<Module> {
    for (const [, m] of this.namedChildren()) yield m;
  }

  /** This module and every descendant as [path, module]; this one has path ''. Each module once, at its
   * first path, unless removeDuplicate is false (PyTorch's remove_duplicate): then a module held by
   * several parents comes once per path (a cycle is still cut). `seen` is the walk's own. */
  *namedModules(prefix = '', seen = new Set<Module>(), removeDuplicate = true): IterableIterator<[string, Module]> {
    if (seen.has(this)) return;
    seen.add(this);
    yield [prefix, this];
    for (const [name, m] of this.namedChildren()) yield* m.namedModules(prefix ? `${prefix}.${name}` : name, seen, removeDuplicate);
    if (!removeDuplicate) seen.delete(this); // then `seen` holds the ancestors only
  }

  *modules(): IterableIterator<Module> {
    for (const [, m] of this.namedModules()) yield m;
  }

  /**
   * Every parameter of this module and its descendants as [path, tensor], depth first in
   * registration order. A tensor shared by several modules (tied weights) appears once, under the
   * first path that reaches it.
   */
  namedParameters(opts: { recurse?: boolean } = {}): [string, Tensor][] {
    opts = optionsOf(`nn.${this.constructor.name}.namedParameters`, opts, ['recurse']);
    return this.#collect('parameter', opts.recurse ?? true, false);
  }

  /** The parameters (each tensor once), in namedParameters() order. */
  parameters(opts: { recurse?: boolean } = {}): Tensor[] {
    return this.namedParameters(opts).map(([, t]) => t);
  }

  /** Every buffer as [path, tensor] (persistent or not), each tensor once. */
  namedBuffers(opts: { recurse?: boolean } = {}): [string, Tensor][] {
    opts = optionsOf(`nn.${this.constructor.name}.namedBuffers`, opts, ['recurse']);
    return this.#collect('buffer', opts.recurse ?? true, false);
  }

  buffers(opts: { recurse?: boolean } = {}): Tensor[] {
    return this.namedBuffers(opts).map(([, t]) => t);
  }

  #collect(kind: 'parameter' | 'buffer', recurse: boolean, persistentOnly: boolean): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    const mods: Iterable<[string, Module]> = recurse ? this.namedModules() : [['', this]];
    for (const [prefix, m] of mods) {
      for (const [name, s] of m.#slots) {
        if (s.kind !== kind || !s.value || seen.has(s.value)) continue;
        if (persistentOnly && s.kind === 'buffer' && !s.persistent) continue;
        seen.add(s.value);
        out.push([prefix ? `${prefix}.${name}` : name, s.value]);
      }
    }
    return out;
  }

  /** The state-dict entries as [path, tensor]: every parameter and persistent buffer, by path (tied
   * tensors and tied modules under each path, as PyTorch's state_dict). */
  #stateEntries(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [prefix, m] of this.namedModules('', new Set(), false)) {
      for (const [name, s] of m.#slots) {
        if (s.kind === 'module' || !s.value) continue;
        if (s.kind === 'buffer' && !s.persistent) continue;
        out.push([prefix ? `${prefix}.${name}` : name, s.value]);
      }
    }
    return out;
  }

  // ---- state ----

  /**
   * The parameters and persistent buffers by path ("0.weight"), in registration order. The values
   * are the module's own tensors (sharing storage, as PyTorch), so do not dispose them; pass
   * `{clone: true}` for detached copies that you own.
   */
  stateDict(opts: { clone?: boolean } = {}): StateDict {
    opts = optionsOf(`nn.${this.constructor.name}.stateDict`, opts, ['clone']);
    const sd: StateDict = {};
    for (const [k, t] of this.#stateEntries()) {
      if (opts.clone) {
        const d = t.detach();
        sd[k] = d.clone();
        d.dispose();
      } else {
        sd[k] = t;
      }
    }
    return sd;
  }

  /**
   * Copies the values of a state dict (an object or Map of path → Tensor) into the module's tensors
   * in place: the tensors stay the same objects, so optimizers keep working. Everything is checked
   * before anything is copied: a shape mismatch is a RangeError naming the key and both shapes;
   * with `strict` (the default) missing or unexpected keys are a RangeError listing them. Values of
   * another floating dtype are converted (as PyTorch's copy_).
   */
  loadStateDict(sd: StateDict | Map<string, Tensor>, opts: { strict?: boolean } = {}): LoadStateDictResult {
    const fn = `nn.${this.constructor.name}.loadStateDict`;
    opts = optionsOf(fn, opts, ['strict']);
    const strict = opts.strict ?? true;
    if (typeof strict !== 'boolean') typeError(fn, `'strict' must be a boolean, got ${describe(strict)}`);
    let given: [string, unknown][];
    if (sd instanceof Map) given = [...sd.entries()];
    else if (sd !== null && typeof sd === 'object' && !Array.isArray(sd) && !(sd instanceof Tensor)) given = Object.entries(sd);
    else return typeError(fn, `'stateDict' must be an object or a Map of name → Tensor, got ${describe(sd)}`);

    const own = new Map(this.#stateEntries());
    const values = new Map<string, Tensor>();
    const unexpectedKeys: string[] = [];
    for (const [k, v] of given) {
      if (typeof k !== 'string') typeError(fn, `state dict keys must be strings, got ${describe(k)}`);
      if (!own.has(k)) {
        unexpectedKeys.push(k);
        continue;
      }
      if (!(v instanceof Tensor)) typeError(fn, `state dict entry '${k}' must be a Tensor, got ${describe(v)}`);
      if (v.isDisposed) typeError(fn, `state dict entry '${k}' is a disposed tensor (shape ${shapeStr(v.shape)})`);
      const target = own.get(k)!;
      if (!sameShape(v.shape, target.shape))
        rangeError(fn, `size mismatch for '${k}': the state dict has shape ${shapeStr(v.shape)}, the module has ${shapeStr(target.shape)}`);
      if (isFloating(target.dtype) !== isFloating(v.dtype))
        typeError(fn, `dtype mismatch for '${k}': the state dict has ${v.dtype}, the module has ${target.dtype}`);
      if (v.device !== target.device)
        typeError(fn, `device mismatch for '${k}': the state dict has it on ${v.device}, the module on ${target.device}`);
      values.set(k, v);
    }
    const missingKeys = [...own.keys()].filter((k) => !values.has(k));
    if (strict && (missingKeys.length > 0 || unexpectedKeys.length > 0)) {
      const parts: string[] = [];
      if (missingKeys.length) parts.push(`missing keys: ${missingKeys.map((k) => `'${k}'`).join(', ')}`);
      if (unexpectedKeys.length) parts.push(`unexpected keys: ${unexpectedKeys.map((k) => `'${k}'`).join(', ')}`);
      rangeError(fn, `the state dict does not match ${this.constructor.name}: ${parts.join('; ')} (pass {strict: false} to load the rest)`);
    }
    // Direct native copies: loading is not an op to differentiate, and the targets must stay the
    // same tensor objects.
    for (const [k, v] of values) {
      const target = own.get(k)!;
      if (v._h !== target._h) native().copyInto(target._h, v._h);
    }
    return { missingKeys, unexpectedKeys };
  }

  // ---- modes and gradients ----

  /** Sets training mode on this module and every descendant. Returns this. */
  train(mode = true): this {
    if (typeof mode !== 'boolean') typeError(`nn.${this.constructor.name}.train`, `'mode' must be a boolean, got ${describe(mode)}`);
    for (const m of this.modules()) m.training = mode;
    return this;
  }

  /** Evaluation mode: train(false). Returns this. */
  eval(): this {
    return this.train(false);
  }

  /** Disposes every parameter's .grad and sets it to null. */
  zeroGrad(): void {
    for (const p of this.parameters()) p.zeroGrad();
  }

  /** Sets requiresGrad on every parameter (false freezes the module). Returns this. */
  requiresGrad_(requiresGrad = true): this {
    if (typeof requiresGrad !== 'boolean')
      typeError(`nn.${this.constructor.name}.requiresGrad_`, `'requiresGrad' must be a boolean, got ${describe(requiresGrad)}`);
    for (const p of this.parameters()) p.requiresGrad = requiresGrad;
    return this;
  }

  /** Calls fn on every module (children first, then this one, as PyTorch's apply). Returns this. */
  apply(fn: (m: Module) => void): this {
    if (typeof fn !== 'function') typeError(`nn.${this.constructor.name}.apply`, `'fn' must be a function, got ${describe(fn)}`);
    for (const m of this.children()) m.apply(fn);
    fn(this);
    return this;
  }

  /** Number of elements in the parameters (each shared tensor once). */
  numParameters(): number {
    let n = 0;
    for (const p of this.parameters()) n += p.size;
    return n;
  }

  /**
   * Disposes every parameter and buffer of this module and its descendants (and their grads), through
   * each child's own dispose(), called once per module (tied ones, cycles), so that a layer holding
   * tensors besides its parameters frees them too; a child whose dispose() throws does not stop the
   * others (the first error is thrown at the end).
   */
  dispose(): void {
    const top = disposing === null;
    const seen = (disposing ??= new Set());
    let error: unknown = null;
    try {
      if (seen.has(this)) return;
      seen.add(this);
      for (const p of this.parameters({ recurse: false })) p.dispose();
      for (const b of this.buffers({ recurse: false })) b.dispose();
      for (const c of this.children()) {
        if (seen.has(c)) continue; // its dispose() already ran (a subclass's own code too)
        try {
          c.dispose();
        } catch (e) {
          error ??= { e };
        }
      }
    } finally {
      if (top) disposing = null;
    }
    if (error) throw (error as { e: unknown }).e;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  // ---- printing ----

  /** The part inside the parentheses of toString(), e.g. "inFeatures=8, outFeatures=32, bias=true". */
  extraRepr(): string {
    return '';
  }

  /** A tree like PyTorch's: `Sequential(\n  (0): Linear(inFeatures=8, …)\n)`. */
  toString(): string {
    const name = this.constructor.name;
    const extra = this.extraRepr();
    const children = [...this.namedChildren()];
    if (children.length === 0 && !extra.includes('\n')) return `${name}(${extra})`;
    const lines: string[] = extra ? extra.split('\n') : [];
    for (const [key, m] of children) {
      const sub = m.toString().split('\n');
      lines.push(`(${key}): ${sub[0]}`, ...sub.slice(1));
    }
    return `${name}(\n${lines.map((l) => '  ' + l).join('\n')}\n)`;
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function checkParameter(fn: string, name: string, t: unknown): void {
  if (t === null) return;
  if (!(t instanceof Tensor)) typeError(fn, `parameter '${name}' must be a Tensor or null, got ${describe(t)}`);
  if (t.isDisposed) typeError(fn, `parameter '${name}' is a disposed tensor (shape ${shapeStr(t.shape)})`);
  if (!isFloating(t.dtype)) typeError(fn, `parameter '${name}' must be a floating tensor, got ${t.dtype}`);
  if (!t.isLeaf)
    typeError(fn, `parameter '${name}' must be a leaf tensor, but it comes from ${t.gradFn!.name}; register t.detach() (or a clone of it)`);
}

function checkBuffer(fn: string, name: string, t: unknown): void {
  if (t === null) return;
  if (!(t instanceof Tensor)) typeError(fn, `buffer '${name}' must be a Tensor or null, got ${describe(t)}`);
  if (t.isDisposed) typeError(fn, `buffer '${name}' is a disposed tensor (shape ${shapeStr(t.shape)})`);
}

function checkModule(fn: string, name: string, m: unknown): void {
  if (m !== null && !(m instanceof Module)) typeError(fn, `module '${name}' must be an nn.Module or null, got ${describe(m)}`);
}
