// optimizer.ts — the Optimizer base class: parameter groups with their hyperparameters, per-parameter
// state, zeroGrad(), stateDict()/loadStateDict(), and the in-place update machinery the optimizers
// share.
//
// Updates run directly on the native storage of each parameter (native elementwise ops writing to
// `out` = the parameter), outside autograd: the parameters stay the same Tensor objects, no graph is
// recorded, and every temporary is a bare native handle released before step() returns. State
// tensors (momentum buffers, moments) are owned by the optimizer, untouched by tidy(), and
// released by dispose().
// `[Symbol.dispose]` below needs this lib in a user's compilation too (target ES2022 lacks it); preserve keeps
// the directive in the emitted declarations, which TS 5.5+ would otherwise drop.
/// <reference lib="esnext.disposable" preserve="true" />
import { Tensor, fromHandle, isFloating } from '../tensor';
import { native, DTYPE_CODES, type Handle } from '../native';
import { describe, shapeStr, typeError, rangeError, checkKnownKeys } from '../errors';

export { checkKnownKeys };
import { enableGrad } from '../autograd';

/** A value in a parameter's state: a tensor shaped like the parameter, or a number (a step count). */
export type StateValue = Tensor | number;
export type ParamState = Record<string, StateValue>;

/** A parameter group: its parameters and its own values of the optimizer's options. */
export type ParamGroup<O> = O & { params: Tensor[] };

/** What the constructor takes for a group: params plus any options overriding the defaults. */
export type ParamGroupInput<O> = Partial<O> & { params: Iterable<Tensor> };

/**
 * An optimizer's state as PyTorch lays it out: parameters are numbered in group order across all
 * groups; `state[i]` is parameter i's state (absent before its first update); `paramGroups` holds
 * each group's options and the numbers of its parameters.
 */
export interface OptimizerStateDict<O> {
  state: Record<number, ParamState>;
  paramGroups: (O & { params: number[] })[];
}

/** How a subclass describes one entry of its per-parameter state. */
export type StateSpec = Record<string, 'tensor' | 'number'>;

export abstract class Optimizer<O extends object> {
  readonly defaults: Readonly<O>;
  readonly paramGroups: ParamGroup<O>[] = [];
  /** Per-parameter state, keyed by the parameter tensor. */
  readonly state = new Map<Tensor, ParamState>();
  /** 'optim.SGD', … (for messages) */
  protected readonly name: string;

  /**
   * @param name     for messages ('optim.AdamW')
   * @param params   tensors, or groups `{params, ...options}`
   * @param defaults the options given to the constructor (already checked)
   */
  protected constructor(name: string, params: Iterable<Tensor> | Iterable<ParamGroupInput<O>>, defaults: O) {
    this.name = name;
    this.defaults = Object.freeze({ ...defaults });
    if (params instanceof Tensor) typeError(name, `'params' must be an iterable of tensors or of parameter groups, got a single Tensor (wrap it in an array)`);
    if (params !== null && typeof params === 'object' && typeof (params as { parameters?: unknown }).parameters === 'function' && !(Symbol.iterator in params))
      typeError(name, `'params' must be an iterable of tensors or of parameter groups, got ${describe(params)}; pass module.parameters()`);
    if (params === null || typeof params !== 'object' || !(Symbol.iterator in params))
      typeError(name, `'params' must be an iterable of tensors or of parameter groups, got ${describe(params)}`);
    const list = [...(params as Iterable<unknown>)];
    if (list.length === 0) rangeError(name, `'params' is empty: the optimizer got no parameters`);
    if (list[0] instanceof Tensor) this.addParamGroup({ params: list as Tensor[] } as unknown as ParamGroupInput<O>);
    else for (const g of list) this.addParamGroup(g as ParamGroupInput<O>);
  }

  /**
   * Checks options (the subclass's rules) and fills the missing ones from `base`. Unknown keys are a
   * TypeError, so a misspelt option never goes silently unused.
   */
  protected abstract checkOptions(fn: string, opts: Record<string, unknown>, base: O): O;

  /** The per-parameter state entries of this optimizer (used to check loadStateDict). */
  protected abstract readonly stateSpec: StateSpec;

  /** The entries a parameter's state must have all of once it has any (loadStateDict checks them: a
   * partial state made AdamW's step NaN or half-apply). */
  protected get requiredState(): readonly string[] {
    return [];
  }

  /** Adds a group of parameters with its own options (the rest from the defaults). */
  addParamGroup(group: ParamGroupInput<O>): void {
    const fn = `${this.name}.addParamGroup`;
    const where = `paramGroups[${this.paramGroups.length}]`;
    if (group === null || typeof group !== 'object' || Array.isArray(group) || group instanceof Tensor)
      typeError(fn, `a parameter group must be an object {params, ...options}, got ${describe(group)}`);
    const { params, ...rest } = group as { params: unknown } & Record<string, unknown>;
    if (params instanceof Tensor) typeError(fn, `${where}.params must be an iterable of tensors, got a single Tensor (wrap it in an array)`);
    if (params === null || typeof params !== 'object' || !(Symbol.iterator in params))
      typeError(fn, `${where}.params must be an iterable of tensors, got ${describe(params)}`);
    const ps = [...(params as Iterable<unknown>)];
    if (ps.length === 0) rangeError(fn, `${where}.params is empty`);
    const seen = new Set<Tensor>();
    for (const g of this.paramGroups) for (const p of g.params) seen.add(p);
    ps.forEach((p, i) => {
      if (!(p instanceof Tensor)) typeError(fn, `${where}.params[${i}] must be a Tensor, got ${describe(p)}`);
      if (p.isDisposed) typeError(fn, `${where}.params[${i}] is a disposed tensor (shape ${shapeStr(p.shape)})`);
      if (!isFloating(p.dtype)) typeError(fn, `${where}.params[${i}] must be a floating tensor, got ${p.dtype}`);
      if (!p.isLeaf)
        typeError(fn, `${where}.params[${i}] ${shapeStr(p.shape)} is not a leaf tensor (it comes from ${p.gradFn!.name}); optimize leaves only`);
      if (seen.has(p)) rangeError(fn, `${where}.params[${i}] ${shapeStr(p.shape)} appears more than once among the parameter groups`);
      seen.add(p);
    });
    const opts = this.checkOptions(fn, rest, this.defaults as O);
    this.paramGroups.push({ ...opts, params: ps as Tensor[] });
  }

  /**
   * Applies one update to every parameter that has a gradient. If `closure` is given it runs first
   * (with grad mode on) and its result is returned, as PyTorch's step(closure).
   */
  step<R = unknown>(closure?: () => R): R | undefined {
    let result: R | undefined;
    if (closure !== undefined) {
      if (typeof closure !== 'function') typeError(`${this.name}.step`, `'closure' must be a function, got ${describe(closure)}`);
      result = enableGrad(closure);
    }
    const fn = `${this.name}.step`;
    // Everything is checked before any parameter changes, so a bad group or gradient leaves the model
    // and the optimizer as they were (not half a step).
    const plan = this.paramGroups.map((group, gi) => {
      // Options may have been changed since (a learning-rate schedule sets group.lr): check again.
      const { params, ...rest } = group;
      const opts = this.checkOptions(`${fn} (paramGroups[${gi}])`, rest as Record<string, unknown>, this.defaults as O);
      params.forEach((p, i) => {
        const what = `paramGroups[${gi}].params[${i}] ${shapeStr(p.shape)}`;
        if (p.isDisposed) typeError(fn, `${what} was disposed`);
        const g = p.grad;
        if (g === null) return;
        if (g.isDisposed) typeError(fn, `the gradient of ${what} was disposed`);
        if (g.device !== p.device) typeError(fn, `the gradient of ${what} is on ${g.device} but the parameter is on ${p.device}`);
      });
      return { params, opts };
    });
    for (const { params, opts } of plan)
      for (const p of params) {
        const g = p.grad;
        if (g === null) continue;
        this.updateInPlace(p, (ph, temps) => this.update(p, ph, g._h, this.#stateOf(p), opts, temps));
      }
    return result;
  }

  /**
   * Updates one parameter: `ph` is the handle to write (contiguous, the parameter's layout), `gh`
   * its gradient, `state` its state (empty at first). Temporaries go through `temps` so they are
   * released even if an op throws.
   */
  protected abstract update(p: Tensor, ph: Handle, gh: Handle, state: ParamState, opts: O, temps: Temps): void;

  #stateOf(p: Tensor): ParamState {
    let s = this.state.get(p);
    if (!s) {
      s = {};
      this.state.set(p, s);
    }
    return s;
  }

  /** Runs f on a contiguous handle of p's values and writes the result back if p is a strided view. */
  private updateInPlace(p: Tensor, f: (ph: Handle, temps: Temps) => void): void {
    const temps = new Temps();
    try {
      if (p.isContiguous) {
        f(p._h, temps);
      } else {
        const work = temps.add(native().contiguous(p._h));
        f(work, temps);
        native().copyInto(p._h, work);
      }
    } finally {
      temps.release();
    }
  }

  /** Sets every parameter's .grad to null (disposing it), as PyTorch's zero_grad(set_to_none=True). */
  zeroGrad(): void {
    for (const g of this.paramGroups) for (const p of g.params) if (!p.isDisposed) p.zeroGrad();
  }

  /**
   * The state and the groups' options, parameters numbered in group order. The state tensors are
   * the optimizer's own (not copies): save them, do not dispose them.
   */
  stateDict(): OptimizerStateDict<O> {
    const state: Record<number, ParamState> = {};
    const paramGroups: (O & { params: number[] })[] = [];
    let index = 0;
    for (const { params, ...opts } of this.paramGroups) {
      const ids: number[] = [];
      for (const p of params) {
        const s = this.state.get(p);
        if (s && Object.keys(s).length > 0) state[index] = { ...s };
        ids.push(index++);
      }
      paramGroups.push({ ...(cloneOptions(opts) as unknown as O), params: ids });
    }
    return { state, paramGroups };
  }

  /**
   * Loads a state dict made by stateDict() of an optimizer of the same kind over parameters of the
   * same shapes, in the same groups. The state tensors are copied (cast to each parameter's dtype),
   * and the groups' options replace the current ones. Everything is checked before anything
   * changes: RangeError for mismatched groups, sizes or shapes, TypeError for wrong kinds.
   */
  loadStateDict(sd: OptimizerStateDict<O>): void {
    const fn = `${this.name}.loadStateDict`;
    if (sd === null || typeof sd !== 'object' || !Array.isArray(sd.paramGroups) || sd.state === null || typeof sd.state !== 'object')
      typeError(fn, `'stateDict' must be an object {state, paramGroups} as stateDict() returns, got ${describe(sd)}`);
    if (sd.paramGroups.length !== this.paramGroups.length)
      rangeError(fn, `the state dict has ${sd.paramGroups.length} parameter groups, the optimizer has ${this.paramGroups.length}`);
    const byIndex: Tensor[] = [];
    const groupOpts: O[] = [];
    sd.paramGroups.forEach((g, gi) => {
      if (g === null || typeof g !== 'object' || !Array.isArray(g.params))
        typeError(fn, `paramGroups[${gi}] must be an object with a params array, got ${describe(g)}`);
      const mine = this.paramGroups[gi].params;
      if (g.params.length !== mine.length)
        rangeError(fn, `paramGroups[${gi}] has ${g.params.length} parameters in the state dict, ${mine.length} in the optimizer`);
      g.params.forEach((id, i) => {
        if (typeof id !== 'number' || !Number.isInteger(id) || id < 0)
          typeError(fn, `paramGroups[${gi}].params[${i}] must be a parameter number, got ${describe(id)}`);
        if (byIndex[id] !== undefined) rangeError(fn, `parameter number ${id} appears twice in the state dict's groups`);
        byIndex[id] = mine[i];
      });
      const { params: _ids, ...opts } = g as unknown as Record<string, unknown>;
      groupOpts.push(this.checkOptions(`${fn} (paramGroups[${gi}])`, opts, this.defaults as O));
    });
    const loaded = new Map<Tensor, ParamState>();
    for (const [key, s] of Object.entries(sd.state)) {
      const id = Number(key);
      const p = byIndex[id];
      // '00', ' 0' and '' would all be parameter 0 (and silently overwrite one another)
      if (!Number.isInteger(id) || String(id) !== key || p === undefined) rangeError(fn, `state[${JSON.stringify(key)}] refers to no parameter of the state dict's groups`);
      if (s === null || typeof s !== 'object') typeError(fn, `state[${key}] must be an object, got ${describe(s)}`);
      const entry: ParamState = {};
      for (const [name, v] of Object.entries(s)) {
        const kind = this.stateSpec[name];
        if (!kind) rangeError(fn, `state[${key}].${name} is not part of ${this.name}'s state (expected ${Object.keys(this.stateSpec).join(', ')})`);
        if (kind === 'number') {
          if (typeof v !== 'number' || !Number.isFinite(v)) typeError(fn, `state[${key}].${name} must be a finite number, got ${describe(v)}`);
          // (the one number a state holds is a step count: a negative or fractional one made NaN)
          if (!Number.isInteger(v) || v < 0) rangeError(fn, `state[${key}].${name} must be a step count (an integer ≥ 0), got ${v}`);
          entry[name] = v;
        } else {
          if (!(v instanceof Tensor)) typeError(fn, `state[${key}].${name} must be a Tensor, got ${describe(v)}`);
          if (v.isDisposed) typeError(fn, `state[${key}].${name} is a disposed tensor`);
          if (!isFloating(v.dtype)) typeError(fn, `state[${key}].${name} must be a floating tensor, got ${v.dtype}`);
          if (v.device !== p.device) typeError(fn, `state[${key}].${name} is on ${v.device} but its parameter is on ${p.device}`);
          if (v.shape.length !== p.shape.length || v.shape.some((d, i) => d !== p.shape[i]))
            rangeError(fn, `state[${key}].${name} has shape ${shapeStr(v.shape)}, but its parameter has shape ${shapeStr(p.shape)}`);
          entry[name] = v;
        }
      }
      const have = Object.keys(entry);
      const missing = this.requiredState.filter((k) => !(k in entry));
      if (have.length > 0 && missing.length > 0)
        rangeError(fn, `state[${key}] has ${have.join(', ')} but not ${missing.join(', ')}: ${this.name} keeps ${this.requiredState.join(', ')} of a parameter together`);
      loaded.set(p, entry);
    }
    // All checked: now copy (cast to the parameter's dtype; a copy, so the caller keeps its tensors),
    // all of it before the old state goes — the incoming tensors may be that state (opt.loadStateDict(
    // opt.stateDict()) returned to the checkpoint it was taken at).
    const n = native();
    const fresh = new Map<Tensor, ParamState>();
    try {
      for (const [p, entry] of loaded) {
        const s: ParamState = {};
        fresh.set(p, s);
        for (const [name, v] of Object.entries(entry))
          s[name] = typeof v === 'number' ? v : stateTensor(n.cast(v._h, DTYPE_CODES[p.dtype]), p);
      }
    } catch (e) {
      for (const s of fresh.values()) disposeState(s);
      throw e;
    }
    for (const s of this.state.values()) disposeState(s);
    this.state.clear();
    for (const [p, s] of fresh) this.state.set(p, s);
    groupOpts.forEach((o, gi) => Object.assign(this.paramGroups[gi], o));
  }

  /** Releases the state tensors (the parameters are the caller's). */
  dispose(): void {
    for (const s of this.state.values()) disposeState(s);
    this.state.clear();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Native temporaries of one update, released together. */
export class Temps {
  readonly #handles: Handle[] = [];
  add(h: Handle): Handle {
    this.#handles.push(h);
    return h;
  }
  release(): void {
    const n = native();
    for (const h of this.#handles) n.dispose(h);
    this.#handles.length = 0;
  }
}

/** Wraps a fresh native handle shaped like p as optimizer state: outside every tidy scope. */
export function stateTensor(h: Handle, p: Tensor): Tensor {
  return fromHandle(h, p.dtype, p.shape, p._dev, false);
}

/** A zero tensor shaped like p, as optimizer state. */
export function zerosState(p: Tensor): Tensor {
  return stateTensor(native().full(DTYPE_CODES[p.dtype], p.shape, 0, p._dev.type, p._dev.index), p);
}

function disposeState(s: ParamState): void {
  for (const v of Object.values(s)) if (v instanceof Tensor) v.dispose();
}

function cloneOptions(o: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) out[k] = Array.isArray(v) ? v.slice() : v;
  return out;
}

// ---- option checks shared by the optimizers ----

/** The options argument of a constructor: an object (undefined → {}). */
export function checkOptionsObject(fn: string, opts: unknown): Record<string, unknown> {
  if (opts === undefined) return {};
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts))
    typeError(fn, `'opts' must be an object such as {lr: 0.01}, got ${describe(opts)}`);
  return opts as Record<string, unknown>;
}


/** A finite number ≥ min (or > min when `open`). */
export function checkNonNegative(fn: string, arg: string, v: unknown, { positive = false } = {}): number {
  if (typeof v !== 'number') typeError(fn, `'${arg}' must be a number, got ${describe(v)}`);
  if (!Number.isFinite(v) || v < 0 || (positive && v === 0))
    rangeError(fn, `'${arg}' must be a finite number ${positive ? '> 0' : '≥ 0'}, got ${v}`);
  return v;
}

export function checkBool(fn: string, arg: string, v: unknown): boolean {
  if (typeof v !== 'boolean') typeError(fn, `'${arg}' must be a boolean, got ${describe(v)}`);
  return v;
}
