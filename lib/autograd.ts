// autograd.ts — reverse-mode automatic differentiation over a graph recorded as ops run.
//
// An op whose inputs require grad (while grad mode is on) attaches a GradNode to its output (a
// customOp may have several: each output knows its index): the backward function (written beside the
// forward in lib/ops/<op>.ts, with public ops), the edges to the inputs' nodes (and which output of
// each) or leaves, and the tensors it saved. Saved tensors are aliases — second handles on the same
// storage — owned by the node, so disposing the tensors the user sees (or a tidy) never breaks a later
// backward(); the node frees them after backward() (unless retainGraph) or when it is no longer
// reachable: a node is reference-counted by its output tensors and the nodes that consume them, so
// disposing the outputs of a forward pass that never ran backward releases its memory at once.
//
// backward() walks the nodes in topological order (Kahn's algorithm from the roots), sums the
// gradients arriving at each output of a node, runs hooks, and accumulates into leaves' .grad. Every
// tensor it creates is disposed as soon as it is consumed, except the gradients handed to leaves.
import { native, DTYPE_CODES } from './native';
import {
  Tensor, aliasOf, fromHandle, pushScope, popScope, adopt, checkTensor, collectTensors, tidy, isFloating,
} from './tensor';
import type { DeviceSpec } from './tensor';
import { shapeStr, sameShape, describe, typeError, rangeError, checkNumber, optionsOf } from './errors';
import type { DType } from './native';
import * as ew from './ops/elementwise';
import * as creation from './ops/creation';
import * as red from './ops/reduce';

/** A gradient hook: receives the gradient, may return a replacement. */
export type Hook = (grad: Tensor) => Tensor | void | undefined | null;

/**
 * The backward function of one op: given the gradient of the output and the saved tensors, the
 * gradient of each input (null where none, or where needs[i] is false). Gradients must have the
 * input's shape and dtype.
 */
export type BackwardFn = (g: Tensor, saved: readonly Tensor[], needs: readonly boolean[]) => ReadonlyArray<Tensor | null | undefined>;

/** The backward of an op with several outputs: one gradient per output (zeros where none flowed). */
type MultiBackwardFn = (gs: readonly Tensor[], saved: readonly Tensor[], needs: readonly boolean[]) => ReadonlyArray<Tensor | null | undefined>;

type TensorMeta = { shape: readonly number[]; dtype: DType; device: string };

/** Where a gradient goes: output `index` of a node, or a leaf. */
type Edge = { node: GradNode; index: number; leaf?: undefined } | { leaf: Tensor; node?: undefined };

/** Disposes the tensors a scope made, but for those keep()-ed (as tidy leaves them) and those in `spare`. */
function freeScope(scope: Iterable<Tensor>, spare?: { has(t: Tensor): boolean }): void {
  for (const t of scope) if (!t._disposed && !t._kept && !spare?.has(t)) t.dispose();
}

// ---------------------------------------------------------------------------------------------
// grad mode

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Sets grad mode; returns the previous mode. */
export function setGradEnabled(on: boolean): boolean {
  if (typeof on !== 'boolean') typeError('setGradEnabled', `'on' must be a boolean, got ${describe(on)}`);
  const prev = gradEnabled;
  gradEnabled = on;
  return prev;
}

/** Runs fn (synchronously) with grad mode off: no graph is recorded. */
export function noGrad<T>(fn: () => T): T {
  if (typeof fn !== 'function') typeError('noGrad', `'fn' must be a function, got ${describe(fn)}`);
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Runs fn (synchronously) with grad mode on, e.g. inside noGrad. */
export function enableGrad<T>(fn: () => T): T {
  if (typeof fn !== 'function') typeError('enableGrad', `'fn' must be a function, got ${describe(fn)}`);
  const prev = gradEnabled;
  gradEnabled = true;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

// ---------------------------------------------------------------------------------------------
// the graph

const NO_VERSIONS: readonly number[] = [];

/** One recorded op: how to send the gradient of its output (or outputs) back to its inputs. */
export class GradNode {
  /** The op's name ('Add', 'Matmul', …). */
  readonly name: string;
  /** @internal */ _edges: (Edge | null)[];
  /** @internal */ readonly _inputs: (TensorMeta | null)[];
  /** @internal */ _saved: Tensor[] | null;
  /** @internal the saved tensors' storage versions when saved (an in-place write since is refused) */
  /** @internal */ readonly _versions: readonly number[];
  /** @internal */ readonly _hadSaved: boolean;
  /** @internal */ readonly _fn: BackwardFn | MultiBackwardFn;
  /** @internal the outputs of an op with several (a customOp returning an array), else null: _fn is then a MultiBackwardFn */
  readonly _outputs: readonly TensorMeta[] | null;
  /** @internal live output tensors + edges from consuming nodes */
  _refs = 1;
  /** @internal */ _released = false;
  /** @internal hooks registered on the output tensors, per output (made at the first one) */
  _hooks: Hook[][] | null = null;

  /** @internal */
  constructor(name: string, edges: (Edge | null)[], inputs: GradNode['_inputs'], saved: Tensor[], fn: BackwardFn | MultiBackwardFn,
    outputs: readonly TensorMeta[] | null = null) {
    this.name = name;
    this._edges = edges;
    this._inputs = inputs;
    this._saved = saved;
    this._hadSaved = saved.length > 0;
    this._versions = saved.length > 0 ? saved.map((t) => native().version(t._h)) : NO_VERSIONS;
    this._fn = fn;
    this._outputs = outputs;
  }

  /** The number of outputs of the op (1 but for a customOp returning several tensors). */
  get numOutputs(): number {
    return this._outputs ? this._outputs.length : 1;
  }

  /** Where this node sends gradients, one entry per input as PyTorch's next_functions: [node, which
   * output of it] for an input an op made, [null, 0] for a leaf or an input without grad. */
  get nextFunctions(): [GradNode | null, number][] {
    return this._edges.map((e) => (e?.node ? [e.node, e.index] : [null, 0]));
  }

  /** @internal frees the saved tensors (after backward, or when the node is released) */
  _freeSaved(): void {
    if (!this._saved) return;
    for (const t of this._saved) t.dispose();
    this._saved = null;
  }

  /** @internal drops one reference; at zero, frees the saved tensors and releases the inputs' nodes. */
  decRef(): void {
    const stack: GradNode[] = [this];
    while (stack.length > 0) {
      const n = stack.pop()!;
      if (n._released) continue;
      if (--n._refs > 0) continue;
      n._released = true;
      n._freeSaved();
      for (const e of n._edges) if (e?.node) stack.push(e.node);
      n._edges = [];
      n._hooks = null;
    }
  }
}

/**
 * Records `out` = op(inputs) when grad mode is on and an input requires grad: attaches a node with
 * `backward` and aliases of `save`. Entries of `inputs` that are not tensors (scalars, options) get
 * no gradient. Returns out.
 */
export function record(name: string, inputs: readonly unknown[], out: Tensor, save: readonly Tensor[], backward: BackwardFn): Tensor {
  if (!gradEnabled) return out;
  let any = false;
  for (const t of inputs) if (t instanceof Tensor && t._requiresGrad) any = true;
  if (!any) return out;
  out._setGradFn(makeNode(name, inputs, save, backward, null));
  return out;
}

/**
 * record() for an op with several outputs: one node, each floating output attached to it at its
 * index (an integer output is not differentiable: it stays a tensor without a graph). backward gets
 * one gradient per output, zeros where none flowed, as PyTorch's materialized gradients.
 */
function recordMulti(name: string, inputs: readonly unknown[], outs: readonly Tensor[], save: readonly Tensor[], backward: MultiBackwardFn): void {
  if (!needsGrad(...inputs)) return;
  const diff = outs.filter((t) => isFloating(t.dtype));
  if (diff.length === 0) return;
  const node = makeNode(name, inputs, save, backward, outs.map(metaOf));
  node._refs = diff.length;
  outs.forEach((t, i) => {
    if (!isFloating(t.dtype)) return;
    t._setGradFn(node);
    outIndex.set(t, i);
  });
}

/** Which output of its node a tensor is, for the outputs of a several-output op (kept off the Tensor:
 * every tensor would carry a field for the rare customOp with several outputs). */
const outIndex = new WeakMap<Tensor, number>();

function outIndexOf(t: Tensor): number {
  return t._gradFn !== null && t._gradFn._outputs !== null ? (outIndex.get(t) ?? 0) : 0;
}

function metaOf(t: Tensor): TensorMeta {
  return { shape: t._shape.slice(), dtype: t.dtype, device: t._dev.name };
}

function makeNode(name: string, inputs: readonly unknown[], save: readonly Tensor[], backward: BackwardFn | MultiBackwardFn,
  outputs: readonly TensorMeta[] | null): GradNode {
  const edges: (Edge | null)[] = inputs.map((t) =>
    t instanceof Tensor && t._requiresGrad ? (t._gradFn ? { node: t._gradFn, index: outIndexOf(t) } : { leaf: t }) : null,
  );
  const meta = inputs.map((t) => (t instanceof Tensor ? metaOf(t) : null));
  const saved = save.map((t) => aliasOf(t, false));
  for (const e of edges) if (e?.node) e.node._refs++;
  return new GradNode(name, edges, meta, saved, backward, outputs);
}

/** True if any input will need a gradient (the op should record). */
export function needsGrad(...inputs: unknown[]): boolean {
  if (!gradEnabled) return false;
  for (const t of inputs) if (t instanceof Tensor && t._requiresGrad) return true;
  return false;
}

export function registerHook(t: Tensor, fn: Hook): { remove(): void } {
  checkTensor('registerHook', 'tensor', t);
  if (typeof fn !== 'function') typeError('registerHook', `'fn' must be a function, got ${describe(fn)}`);
  if (!t._requiresGrad) typeError('registerHook', `cannot register a hook on a tensor that does not require grad (shape ${shapeStr(t._shape)})`);
  const node = t._gradFn;
  const list = node ? ((node._hooks ??= Array.from({ length: node.numOutputs }, () => []))[outIndexOf(t)]) : (t._hooks ??= []);
  list.push(fn);
  return {
    remove(): void {
      const i = list.indexOf(fn);
      if (i >= 0) list.splice(i, 1);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// backward

/**
 * Accumulates into the leaves' .grad the gradient of `tensors` — one tensor, or several (as
 * torch.autograd.backward: Σ grads_i · ∂tensors_i, in one pass that starts from every root at once, so a
 * node shared by them runs once) — with `grads` the gradient of each (its shape, dtype and device; null,
 * or left out, for a one-element tensor, which gets ones). t.backward(grad) is backward(t, grad).
 */
export function backward(tensors: Tensor | readonly Tensor[], grads?: Tensor | null | readonly (Tensor | null)[], opts: { retainGraph?: boolean } = {}): void {
  const fn = 'backward';
  const several = !(tensors instanceof Tensor);
  const roots = tensorList(fn, several ? 'tensors' : 'tensor', tensors);
  opts = optionsOf(fn, opts, ['retainGraph']);
  if (opts.retainGraph !== undefined && typeof opts.retainGraph !== 'boolean')
    typeError(fn, `'retainGraph' must be a boolean, got ${describe(opts.retainGraph)}`);
  const gs = rootGrads(fn, several, grads, roots.length, several ? 'grads' : 'grad', 'the tensor', 'tensor');
  roots.forEach((r, i) => checkRoot(fn, r, gs[i], several ? `grads[${i}]` : 'grad', several ? `'tensors[${i}]'` : undefined));
  new BackwardPass(!!opts.retainGraph).run(roots, gs);
}

/** The roots' gradients (null: ones, for a one-element root) from what backward() / grad() were given:
 * one gradient for one root, an array of one per root (or nothing) for an array of roots. `one` names
 * the single root, `item` a root, in the errors. */
function rootGrads(fn: string, several: boolean, given: unknown, n: number, arg: string, one: string, item: string): (Tensor | null)[] {
  if (!several) {
    if (Array.isArray(given)) typeError(fn, `'${arg}' is an array but ${one} is one Tensor`);
    return [(given as Tensor | null | undefined) ?? null];
  }
  if (given !== undefined && given !== null && !Array.isArray(given))
    typeError(fn, `'${arg}' must be an array of one gradient (or null) per ${item}, got ${describe(given)}`);
  const gs = (given as readonly (Tensor | null | undefined)[] | undefined | null) ?? [];
  if (given && gs.length !== n) rangeError(fn, `'${arg}' has ${gs.length} entries for ${n} ${item}s`);
  return Array.from({ length: n }, (_, i) => gs[i] ?? null);
}

/** Checks the tensor backpropagated from and its gradient (or that it needs none). */
function checkRoot(fn: string, root: Tensor, grad: Tensor | null | undefined, arg: string, name?: string): void {
  const what = `'${arg}'`;
  if (!root._requiresGrad && passesRunning > 0)
    typeError(fn, `${name ?? 'the tensor'} ${shapeStr(root._shape)} does not require grad: it was made inside a backward pass (a hook or a customOp's backward), ` +
      'which runs with grad mode off; run the other backward() after this one');
  if (!root._requiresGrad)
    typeError(fn, `${name ?? 'the tensor'} ${shapeStr(root._shape)} does not require grad: no input of the ops that made it has requiresGrad = true`);
  if (grad !== undefined && grad !== null) {
    checkTensor(fn, arg, grad);
    if (!sameShape(grad._shape, root._shape))
      rangeError(fn, `${what} ${shapeStr(grad._shape)} must have the tensor's shape ${shapeStr(root._shape)}`);
    if (grad.dtype !== root.dtype) typeError(fn, `${what} is ${grad.dtype} but the tensor is ${root.dtype}`);
    if (grad._dev.name !== root._dev.name) typeError(fn, `${what} is on ${grad.device} but the tensor is on ${root.device}`);
  } else if (root.size !== 1) {
    rangeError(fn, `${what} can be left out only for a one-element tensor; this one has shape ${shapeStr(root._shape)}`);
  }
}

export interface GradOptions {
  /** The gradient of `output` (its shape, dtype and device), or one per output when `output` is an array
   * (null for a one-element output, which gets ones); may be left out where every output has one element. */
  gradOutput?: Tensor | null | readonly (Tensor | null)[];
  /** Keep the graph's saved tensors for another backward() or grad() through it (default false). */
  retainGraph?: boolean;
  /** An input the output does not depend on gets null instead of an error (default false). */
  allowUnused?: boolean;
}

/**
 * The gradients of `output` (or of several outputs, their gradients summed: Σ gradOutput_i · ∂output_i)
 * with respect to `inputs` (leaves or intermediate tensors that require grad), returned instead of
 * accumulated into .grad, as torch.autograd.grad: only the part of the graph between them runs, and no
 * leaf's .grad changes. Hooks on the inputs run first, as in backward(). The gradients are new tensors
 * the caller owns (no graph: higher-order gradients are not supported). Returns one gradient per
 * input, or a single one for a single input.
 */
export function grad(output: Tensor | readonly Tensor[], inputs: Tensor, opts: GradOptions & { allowUnused: true }): Tensor | null;
export function grad(output: Tensor | readonly Tensor[], inputs: Tensor, opts?: GradOptions): Tensor;
export function grad(output: Tensor | readonly Tensor[], inputs: readonly Tensor[], opts?: GradOptions): (Tensor | null)[];
export function grad(output: Tensor | readonly Tensor[], inputs: Tensor | readonly Tensor[], opts: GradOptions = {}): Tensor | null | (Tensor | null)[] {
  opts = optionsOf('grad', opts, ['gradOutput', 'retainGraph', 'allowUnused']);
  const outs = tensorList('grad', 'output', output);
  const single = inputs instanceof Tensor;
  const list = tensorList('grad', 'inputs', inputs);
  list.forEach((t, i) => {
    if (!t._requiresGrad) typeError('grad', `'${single ? 'inputs' : `inputs[${i}]`}' ${shapeStr(t._shape)} does not require grad, so it has no gradient`);
  });
  for (const k of ['retainGraph', 'allowUnused'] as const)
    if (opts[k] !== undefined && typeof opts[k] !== 'boolean') typeError('grad', `'${k}' must be a boolean, got ${describe(opts[k])}`);
  const gos = rootGrads('grad', !(output instanceof Tensor), opts.gradOutput, outs.length, 'gradOutput', "'output'", 'output');
  outs.forEach((o, i) => checkRoot('grad', o, gos[i], output instanceof Tensor ? 'gradOutput' : `gradOutput[${i}]`));
  const got = new BackwardPass(!!opts.retainGraph, 'grad').run(outs, gos, list)!;
  const unused = opts.allowUnused ? -1 : got.indexOf(null);
  if (unused >= 0) {
    for (const g of new Set(got)) g?.dispose();
    typeError('grad', `the output does not depend on ${single ? 'inputs' : `inputs[${unused}]`} ${shapeStr(list[unused]._shape)}; pass {allowUnused: true} to get null for it`);
  }
  // the gradients join the caller's tidy scope, as an op's outputs do
  for (const g of got) if (g) adopt(g);
  return single ? got[0] : got;
}

/** A Tensor or a non-empty array of live Tensors, as an array (each checked, holes included). */
function tensorList(fn: string, arg: string, v: Tensor | readonly Tensor[]): readonly Tensor[] {
  if (v instanceof Tensor) {
    checkTensor(fn, arg, v);
    return [v];
  }
  if (!Array.isArray(v)) typeError(fn, `'${arg}' must be a Tensor or an array of Tensors, got ${describe(v)}`);
  if (v.length === 0) rangeError(fn, `'${arg}' is an empty array`);
  for (let i = 0; i < v.length; i++) checkTensor(fn, `${arg}[${i}]`, v[i]); // (not forEach: it skips holes)
  return v;
}

/** What a targeted pass (grad()) collects: which leaves and which node outputs, each for which inputs. */
class Targets {
  readonly leaves = new Map<Tensor, number[]>();
  readonly slots = new Map<GradNode, Map<number, number[]>>();
  readonly found: (Tensor | null)[];
  /** the nodes whose backward sends a gradient on toward a target (the only ones that run) */
  readonly needed = new Set<GradNode>();

  constructor(inputs: readonly Tensor[], roots: readonly GradNode[]) {
    this.found = inputs.map(() => null);
    inputs.forEach((t, i) => {
      if (t._gradFn) {
        let m = this.slots.get(t._gradFn);
        if (!m) this.slots.set(t._gradFn, (m = new Map()));
        const k = outIndexOf(t);
        m.set(k, [...(m.get(k) ?? []), i]);
      } else {
        this.leaves.set(t, [...(this.leaves.get(t) ?? []), i]);
      }
    });
    // post-order over the reachable nodes (iterative: graphs may be deep), a node after all it feeds
    const done = new Set<GradNode>();
    const stack: [GradNode, number][] = roots.map((r) => [r, 0]);
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const [n, i] = top;
      if (i < n._edges.length) {
        top[1]++;
        const e = n._edges[i];
        if (e?.node && !done.has(e.node)) stack.push([e.node, 0]);
        continue;
      }
      stack.pop();
      if (done.has(n)) continue;
      done.add(n);
      if (n._edges.some((e) => e !== null && this.wants(e))) this.needed.add(n);
    }
  }

  /** Whether a gradient sent along e reaches a target: a target leaf, a target output, or a node that runs. */
  wants(e: Edge): boolean {
    return e.node ? this.needed.has(e.node) || this.slots.get(e.node)?.has(e.index) === true : this.leaves.has(e.leaf);
  }
}

/** Backward passes under way (a hook or a backward calling backward() is inside one). */
let passesRunning = 0;

class BackwardPass {
  private readonly retain: boolean;
  /** the public function running this pass, for error messages */
  private readonly fn: 'backward' | 'grad';
  /** every tensor created during this pass */
  private scope!: Set<Tensor>;
  /** how many pending slots refer to each gradient tensor */
  private readonly uses = new Map<Tensor, number>();
  /** gradients handed to leaves' .grad (not disposed at the end) */
  private readonly given = new Set<Tensor>();

  constructor(retain: boolean, fn: 'backward' | 'grad' = 'backward') {
    this.retain = retain;
    this.fn = fn;
  }

  private hold(t: Tensor): void {
    this.uses.set(t, (this.uses.get(t) ?? 0) + 1);
  }

  /** One slot stops referring to t; a tensor this pass made is disposed when nothing refers to it. */
  private drop(t: Tensor): void {
    const n = (this.uses.get(t) ?? 1) - 1;
    if (n > 0) {
      this.uses.set(t, n);
      return;
    }
    this.uses.delete(t);
    if (this.scope.has(t) && !this.given.has(t)) t.dispose();
  }

  /** Runs fn in a scope of its own: tensors it makes and does not return are disposed at once, but for
   * those it keep()s (a hook holding on to a copy of the gradient), as tidy does. */
  private contained<R>(fn: () => R): R {
    const inner = pushScope();
    let result: R;
    try {
      result = fn();
    } catch (e) {
      // a hook or a backward that throws: what it made so far belongs to no scope the caller can free
      popScope(inner);
      freeScope(inner);
      throw e;
    }
    popScope(inner);
    const out = collectTensors(result);
    // what fn returns is the pass's from now on, but a kept tensor, which stays fn's (a leaf gets a copy)
    for (const t of out) if (inner.has(t) && !t._kept) this.scope.add(t);
    freeScope(inner, out);
    return result;
  }

  private runHooks(hooks: readonly Hook[], g: Tensor, what: string): Tensor {
    for (const hook of hooks.slice()) {
      const r = this.contained(() => hook(g));
      // the gradient belongs to the pass (it goes on to the inputs, or into .grad): a hook may read it
      if (g._disposed) typeError(this.fn, `a hook on ${what} disposed the gradient it was given; return a new tensor instead`);
      if (r === undefined || r === null || r === g) continue;
      if (!(r instanceof Tensor) || r._disposed || !sameShape(r._shape, g._shape) || r.dtype !== g.dtype || r._dev.name !== g._dev.name)
        typeError(this.fn, `a hook on ${what} returned ${r instanceof Tensor ? `${r._disposed ? 'a disposed tensor ' : ''}${shapeStr(r._shape)} ${r.dtype} on ${r.device}` : describe(r)}; ` +
          `it must return nothing or a gradient ${shapeStr(g._shape)} ${g.dtype} on ${g.device}`);
      this.hold(r);
      this.drop(g);
      g = r;
    }
    return g;
  }

  /** backward() from the roots (grads[i]: root i's gradient, null for ones); with `inputs` (grad()), their
   * gradients returned instead of leaves' .grad set. */
  run(roots: readonly Tensor[], grads: readonly (Tensor | null)[], inputs?: readonly Tensor[]): (Tensor | null)[] | null {
    const prevMode = gradEnabled;
    gradEnabled = false;
    this.scope = pushScope();
    const rootNodes = [...new Set(roots.map((r) => r._gradFn).filter((n): n is GradNode => n !== null))];
    const targets = inputs ? new Targets(inputs, rootNodes) : null;
    passesRunning++;
    try {
      // each root's gradient (ones for a one-element root) into its node's slot, or its leaf's
      const pending = new Map<GradNode, (Tensor | null)[]>();
      const leafPending = new Map<Tensor, Tensor>();
      roots.forEach((root, i) => {
        const g0 = grads[i] ?? this.contained(() => creation.onesLike(root));
        if (root._gradFn) {
          const slots = this.slotsOf(pending, root._gradFn), k = outIndexOf(root);
          slots[k] = this.sum(slots[k], g0);
        } else {
          leafPending.set(root, this.sum(leafPending.get(root), g0));
        }
      });
      if (rootNodes.length > 0) this.walk(pending, leafPending, targets);
      if (!targets) {
        for (const [leaf, g] of leafPending) this.giveToLeaf(leaf, g);
        return null;
      }
      for (const [leaf, g] of leafPending) {
        const ids = targets.leaves.get(leaf);
        if (!ids) {
          this.drop(g);
          continue;
        }
        // a leaf's hooks run as in backward(); what they give is the gradient
        const h = this.leafHooked(leaf, g);
        this.capture(targets, ids, h);
        this.drop(h);
      }
      return targets.found.map((t, i) => (t && targets.found.indexOf(t) < i ? this.own(t) : t));
    } catch (e) {
      // the gradients captured before the error are the pass's own handles: nobody will get them
      if (targets) for (const t of targets.found) if (t && !t._disposed) t.dispose();
      throw e;
    } finally {
      passesRunning--;
      popScope(this.scope);
      gradEnabled = prevMode;
      for (const t of this.scope) if (!this.given.has(t) && !t._disposed) t.dispose();
    }
  }

  /** Records g as the gradient of inputs `ids`: a new handle on it, the caller's own (g itself may flow
   * on to other nodes, which dispose it when they are done). */
  private capture(targets: Targets, ids: readonly number[], g: Tensor): void {
    const mine = this.own(g);
    for (const i of ids) targets.found[i] = mine;
  }

  /** A new handle on g (an alias: the same storage), which the caller owns. */
  private own(g: Tensor): Tensor {
    const a = aliasOf(g);
    this.given.add(a);
    return a;
  }

  /** Runs the nodes reachable from those `pending` holds gradients for, each once all its consumers ran. */
  private walk(pending: Map<GradNode, (Tensor | null)[]>, leafPending: Map<Tensor, Tensor>, targets: Targets | null): void {
    // Incoming edge counts among the reachable nodes.
    const roots = [...pending.keys()];
    const deps = new Map<GradNode, number>(roots.map((r) => [r, 0]));
    const stack = roots.slice();
    while (stack.length > 0) {
      const n = stack.pop()!;
      for (const e of n._edges) {
        if (!e?.node) continue;
        const c = deps.get(e.node);
        if (c === undefined) {
          deps.set(e.node, 1);
          stack.push(e.node);
        } else {
          deps.set(e.node, c + 1);
        }
      }
    }
    // a root that another root feeds runs after it
    const ready = roots.filter((r) => deps.get(r) === 0);
    while (ready.length > 0) {
      const node = ready.pop()!;
      const gs = pending.get(node);
      pending.delete(node);
      let grads: ReadonlyArray<Tensor | null | undefined> = [];
      let used: Tensor[] = [];
      // grad(): a target's gradient is taken after its hooks; a node whose backward leads to no target
      // does not run (its gradients are dropped)
      const skip = targets !== null && !targets.needed.has(node);
      const wanted = targets?.slots.get(node);
      if (gs) {
        const hooked = skip && !wanted ? gs : this.hooked(node, gs); // no hooks where the gradient goes nowhere
        if (wanted) for (const [i, ids] of wanted) if (hooked[i]) this.capture(targets!, ids, hooked[i]!);
        if (skip) used = hooked.filter((g): g is Tensor => g !== null);
        else ({ grads, used } = this.runNode(node, hooked, targets));
      }
      for (let i = 0; i < node._edges.length; i++) {
        const e = node._edges[i];
        const gi = grads[i] ?? null;
        if (e && gi) {
          if (e.node) {
            const slots = this.slotsOf(pending, e.node);
            slots[e.index] = this.sum(slots[e.index], gi);
          } else {
            leafPending.set(e.leaf, this.sum(leafPending.get(e.leaf), gi));
          }
        }
        if (e?.node) {
          const d = deps.get(e.node)! - 1;
          deps.set(e.node, d);
          if (d === 0) ready.push(e.node);
        }
      }
      // The incoming gradients, and gradients for inputs that need none, are released here.
      for (const u of used) this.drop(u);
      for (const gi of grads) if (gi && !this.uses.has(gi) && this.scope.has(gi) && !gi._disposed) gi.dispose();
      if (!this.retain && !skip) node._freeSaved();
    }
  }

  private slotsOf(pending: Map<GradNode, (Tensor | null)[]>, node: GradNode): (Tensor | null)[] {
    let slots = pending.get(node);
    if (!slots) {
      slots = node._outputs ? node._outputs.map(() => null) : [null];
      pending.set(node, slots);
    }
    return slots;
  }

  /** prev + g (g alone when nothing arrived before), held for the slot it goes to. */
  private sum(prev: Tensor | null | undefined, g: Tensor): Tensor {
    this.hold(g);
    if (!prev) return g;
    const s = this.contained(() => ew.add(prev, g));
    this.hold(s);
    this.drop(prev);
    this.drop(g);
    return s;
  }

  /** A leaf's gradient after the hooks registered on it. */
  private leafHooked(leaf: Tensor, g: Tensor): Tensor {
    return leaf._hooks && leaf._hooks.length > 0 ? this.runHooks(leaf._hooks, g, `a leaf ${shapeStr(leaf._shape)}`) : g;
  }

  /** The gradients arrived at a node's outputs, after the hooks registered on them. */
  private hooked(node: GradNode, gIn: readonly (Tensor | null)[]): readonly (Tensor | null)[] {
    if (node._hooks === null) return gIn;
    return gIn.map((g, i) => {
      const hooks = node._hooks?.[i];
      const what = node._outputs ? `output ${i} of ${node.name}` : `the output of ${node.name}`;
      return g && hooks && hooks.length > 0 ? this.runHooks(hooks, g, what) : g;
    });
  }

  /** Runs one node's backward on its outputs' gradients (after hooks); `used` are the gradients it
   * consumed, for the caller to drop. */
  private runNode(node: GradNode, gs: readonly (Tensor | null)[], targets: Targets | null): { grads: ReadonlyArray<Tensor | null | undefined>; used: Tensor[] } {
    if (node._hadSaved && node._saved === null)
      throw new Error(`structura.${this.fn}: the graph through ${node.name} was already freed by an earlier backward() or grad(); ` +
        'pass {retainGraph: true} to the first one to run it twice');
    if (node._released) throw new Error(`structura.${this.fn}: the graph through ${node.name} was released (its tensors were disposed)`);
    // PyTorch's version check: a saved tensor written in place since the forward would give the gradient
    // of other values than those the forward used
    node._saved?.forEach((t, i) => {
      if (t._disposed) throw new Error(`structura.${this.fn}: a tensor ${shapeStr(t._shape)} that ${node.name} saved for its gradient was disposed (by an earlier run of its backward?)`);
      const v = native().version(t._h);
      if (v !== node._versions[i])
        throw new Error(`structura.${this.fn}: a tensor ${shapeStr(t._shape)} ${t.dtype} that ${node.name} saved for its gradient was written in place ` +
          `after the forward (storage version ${v}, ${node._versions[i]} when saved), so the gradient would use other values than the forward did; ` +
          'write into a clone, or after backward()');
    });
    const outs = node._outputs;
    // grad(): only the inputs whose gradient goes on toward a target (a matmul asked for dX computes no dW)
    const needs = node._edges.map((e) => e !== null && (targets === null || targets.wants(e)));
    let grads: ReadonlyArray<Tensor | null | undefined>;
    const used: Tensor[] = [];
    if (outs) {
      // outputs no gradient reached get zeros, so a backward can use every one without checking
      // (held like an arrived gradient: the backward may hand one back as an input's gradient, which
      // the slot it goes to holds too)
      const full = gs.map((g, i) => {
        if (g) return g;
        const z = this.contained(() => creation.zeros(outs[i].shape.slice(), { dtype: outs[i].dtype, device: outs[i].device }));
        this.hold(z);
        return z;
      });
      used.push(...full);
      grads = this.contained(() => (node._fn as MultiBackwardFn)(full, node._saved ?? [], needs));
    } else {
      used.push(gs[0]!);
      grads = this.contained(() => (node._fn as BackwardFn)(gs[0]!, node._saved ?? [], needs));
    }
    if (!Array.isArray(grads))
      typeError(this.fn, `the backward of ${node.name} must return an array of gradients, got ${describe(grads)}`);
    for (let i = 0; i < node._edges.length; i++) {
      const r = grads[i];
      const meta = node._inputs[i];
      if (r === null || r === undefined) continue;
      // as PyTorch: a gradient for an argument that is not a tensor is a mistake in the backward
      if (!meta) typeError(this.fn, `the backward of ${node.name} returned ${r instanceof Tensor ? `a Tensor ${shapeStr(r._shape)}` : describe(r)} as the gradient of input ${i}, which is not a tensor; return null there`);
      if (!node._edges[i]) continue;
      if (!(r instanceof Tensor) || r._disposed)
        typeError(this.fn, `the backward of ${node.name} returned ${r instanceof Tensor ? 'a disposed Tensor' : describe(r)} as the gradient of input ${i}; expected a live Tensor or null`);
      if (!sameShape(r._shape, meta.shape) || r.dtype !== meta.dtype)
        throw new RangeError(`structura.${this.fn}: the backward of ${node.name} returned a gradient ${shapeStr(r._shape)} ${r.dtype} ` +
          `for input ${i}, which is ${shapeStr(meta.shape)} ${meta.dtype}`);
      if (r._dev.name !== meta.device)
        typeError(this.fn, `the backward of ${node.name} returned a gradient on ${r.device} for input ${i}, which is on ${meta.device}`);
    }
    // A gradient the pass did not make (one of the node's saved tensors, which are freed with the node,
    // or a tensor the backward's closure holds) goes on as the pass's own handle on the same values.
    const own = grads.map((r) => (r instanceof Tensor && !r._disposed && !this.scope.has(r) ? this.contained(() => aliasOf(r)) : r));
    return { grads: own, used };
  }

  private giveToLeaf(leaf: Tensor, gIn: Tensor): void {
    if (!leaf._requiresGrad) {
      // frozen after the forward (requiresGrad = false): no .grad, as PyTorch's AccumulateGrad
      this.drop(gIn);
      return;
    }
    const g = this.leafHooked(leaf, gIn);
    if (leaf._disposed) {
      this.drop(g);
      return;
    }
    const cur = leaf._grad && !leaf._grad._disposed ? leaf._grad : null;
    if (cur && cur.isContiguous && !cur._isView) {
      // Accumulate in place, so a reference to .grad (an optimizer's) stays valid, as PyTorch does.
      native().binary('add', cur._h, g._h, cur._h);
    } else if (cur) {
      const s = ew.add(cur, g);
      this.given.add(s);
      leaf._grad = s;
    } else if (this.scope.has(g) && this.uses.get(g) === 1 && !g._isView && g.isContiguous) {
      this.given.add(g); // a fresh tensor nothing else refers to: hand it over
      leaf._grad = g;
    } else {
      const c = fromHandle(native().cast(g._h, DTYPE_CODES[g.dtype]), g.dtype, g._shape, g._dev, false);
      this.given.add(c);
      leaf._grad = c;
    }
    this.drop(g);
  }
}

// ---------------------------------------------------------------------------------------------
// custom ops

export interface CustomOpContext {
  /** Saves tensors for backward (as aliases: the originals may be disposed). */
  saveForBackward(...tensors: Tensor[]): void;
  /** The saved tensors, in order (in backward). */
  readonly saved: readonly Tensor[];
  /** needsInputGrad[i]: whether input i needs a gradient (in backward). */
  readonly needsInputGrad: readonly boolean[];
  /** Anything else backward needs (numbers, shapes). */
  [key: string]: unknown;
}

/** What a customOp's forward returns: one tensor, or several as a tuple. */
export type CustomOpOutput = Tensor | [Tensor, ...Tensor[]] | Tensor[];

/** The gradients a customOp's backward receives: one per output of forward. */
export type CustomOpGrads<R extends CustomOpOutput> = R extends Tensor ? [grad: Tensor] : { [K in keyof R]: Tensor };

export interface CustomOpSpec<A extends unknown[] = Tensor[], R extends CustomOpOutput = Tensor> {
  name: string;
  /** Computes the output (or an array of outputs) from the inputs (grad mode is off inside). Tensors it makes (but keep()s) and
   * does not return are disposed. */
  forward(ctx: CustomOpContext, ...inputs: A): R;
  /** The gradient of each input of forward, non-tensor arguments included (null for none), given one gradient per
   * output of forward (zeros for an output no gradient reached, as PyTorch's materialized gradients; an integer
   * output is not differentiable and gets zeros): one per input (extra trailing nulls allowed), or a single
   * Tensor / null for a one-input op. */
  backward(ctx: CustomOpContext, ...grads: CustomOpGrads<R>): Tensor | null | ReadonlyArray<Tensor | null | undefined>;
}

/**
 * Makes a differentiable op from a forward and a backward (as torch.autograd.Function). Returns a
 * function taking the forward's inputs and returning its output (or outputs); tensor inputs get
 * gradients, other arguments do not.
 */
export function customOp<A extends unknown[] = Tensor[], R extends CustomOpOutput = Tensor>(spec: CustomOpSpec<A, R>): (...inputs: A) => R {
  if (spec === null || typeof spec !== 'object') typeError('customOp', `'spec' must be an object {name, forward, backward}, got ${describe(spec)}`);
  const { name, forward, backward: bwd } = spec;
  if (typeof name !== 'string' || name.length === 0) typeError('customOp', `'name' must be a non-empty string, got ${describe(name)}`);
  if (typeof forward !== 'function') typeError('customOp', `'forward' of ${name} must be a function, got ${describe(forward)}`);
  if (typeof bwd !== 'function') typeError('customOp', `'backward' of ${name} must be a function, got ${describe(bwd)}`);
  const op = (...inputs: A): R => {
    inputs.forEach((x, i) => {
      if (x instanceof Tensor) checkTensor(name, `inputs[${i}]`, x);
    });
    const toSave: Tensor[] = [];
    const ctx: CustomOpContext = {
      saveForBackward(...ts: Tensor[]): void {
        ts.forEach((t, i) => checkTensor(`${name}.saveForBackward`, `tensors[${i}]`, t));
        toSave.push(...ts);
      },
      saved: [],
      needsInputGrad: [],
    };
    const scope = pushScope();
    let out: unknown;
    const prev = gradEnabled;
    gradEnabled = false;
    try {
      out = forward(ctx, ...inputs);
    } catch (e) {
      popScope(scope);
      freeScope(scope);
      throw e;
    } finally {
      gradEnabled = prev;
    }
    popScope(scope);
    const several = Array.isArray(out);
    const list: unknown[] = several ? (out as unknown[]) : [out];
    const bad = list.findIndex((t) => !(t instanceof Tensor) || t._disposed);
    if (bad >= 0 || list.length === 0) {
      freeScope(scope);
      if (list.length === 0) typeError(name, 'forward returned an empty array; return a Tensor or an array of Tensors');
      const what = (v: unknown): string => (v instanceof Tensor ? `a disposed Tensor ${shapeStr(v._shape)}` : describe(v));
      typeError(name, `forward must return a live Tensor${several ? ' or an array of them' : ''}, got ${several ? `${what(list[bad])} at [${bad}]` : what(out)}`);
    }
    // An output the forward did not make (an input passed through), or one returned twice, gets its own handle.
    const results: Tensor[] = [];
    for (const t of list as Tensor[]) results.push(scope.has(t) && !results.includes(t) ? t : aliasOf(t));
    const backward = (gs: readonly Tensor[], saved: readonly Tensor[], needs: readonly boolean[]): ReadonlyArray<Tensor | null | undefined> => {
      const bctx = Object.assign(Object.create(null), ctx, { saved, needsInputGrad: needs }) as CustomOpContext;
      const r = (bwd as (c: CustomOpContext, ...g: readonly Tensor[]) => unknown)(bctx, ...gs);
      const grads = r instanceof Tensor || r === null || r === undefined ? [r] : r;
      if (!Array.isArray(grads)) typeError(name, `backward must return a Tensor, null, or an array of them, got ${describe(r)}`);
      // one entry per forward input (a bare Tensor or null stands for [it]); extra trailing nulls are
      // allowed, as in PyTorch, other counts are a mistake that would drop or misplace a gradient
      if (grads.length < inputs.length || grads.slice(inputs.length).some((x) => x !== null && x !== undefined))
        typeError(name, `backward returned ${grads.length} gradient${grads.length === 1 ? '' : 's'} for ${inputs.length} input${inputs.length === 1 ? '' : 's'}; ` +
          'return one per input of forward (null where there is none)');
      return grads as ReadonlyArray<Tensor | null | undefined>;
    };
    if (several) recordMulti(name, inputs, results, toSave, backward);
    else record(name, inputs, results[0], toSave, (g, saved, needs) => backward([g], saved, needs));
    // record() aliased what it saves, so the forward's own tensors can go now.
    freeScope(scope, new Set(results));
    // the outputs join the caller's tidy scope, as any op's output
    for (const t of results) if (scope.has(t)) adopt(t);
    return (several ? results : results[0]) as R;
  };
  Object.defineProperty(op, 'name', { value: name });
  return op;
}

// ---------------------------------------------------------------------------------------------
// gradcheck

export interface GradcheckOptions {
  /** Finite-difference step (default 1e-6). */
  eps?: number;
  /** Absolute tolerance (default 1e-5). */
  atol?: number;
  /** Relative tolerance (default 1e-3). */
  rtol?: number;
  /** Seed of the random output weights (default 0). */
  seed?: number;
}

/** A live tensor as a new handle in the graph (identity gradient), so that disposing it leaves the
 * tensor itself alone; anything else as it is. */
function ownHandle(r: unknown): unknown {
  return r instanceof Tensor && !r._disposed ? record('Alias', [r], aliasOf(r), [], (g) => [g]) : r;
}

/**
 * Calls fn; its result (a Tensor or an array of them) as gradcheck's own handles, and every tensor fn
 * made disposed (the graph keeps what backward needs), nested or not: fn may return an input, a tensor
 * it did not make, or (a mistake gradcheckOutputs reports) something else holding tensors.
 */
function callOwned(fn: (...inputs: any[]) => unknown, args: readonly unknown[]): unknown[] {
  const scope = pushScope();
  let r: unknown;
  try {
    r = fn(...args);
  } catch (e) {
    popScope(scope);
    freeScope(scope);
    throw e;
  }
  popScope(scope);
  const outs = Array.isArray(r) ? r.map(ownHandle) : [ownHandle(r)];
  freeScope(scope);
  return outs;
}

/** The floating outputs of fn (integer ones are not differentiated), checked; throws on anything else. */
function gradcheckOutputs(outs: readonly unknown[]): Tensor[] {
  if (outs.length === 0) typeError('gradcheck', 'fn returned an empty array; it must return a Tensor or an array of Tensors');
  outs.forEach((o, i) => {
    const what = outs.length > 1 ? `output ${i} of fn` : "fn's output";
    if (!(o instanceof Tensor) || o._disposed) typeError('gradcheck', `fn must return a Tensor or an array of Tensors; ${what} is ${o instanceof Tensor ? 'a disposed Tensor' : describe(o)}`);
    if (isFloating(o.dtype) && o.dtype !== 'float64') typeError('gradcheck', `${what} is ${o.dtype}; with float64 inputs it must be float64`);
  });
  return (outs as Tensor[]).filter((o) => isFloating(o.dtype));
}

/**
 * Checks the gradients of fn at `inputs` against float64 central differences. The inputs that
 * require grad (float64 tensors) are checked; other arguments pass through unchanged. The output (or
 * each floating output of an array of them; integer outputs are left out) is reduced with fixed random
 * weights w, so the check is of the vector–Jacobian product wᵀJ that backward() computes, for every
 * input element. Returns true, or throws an Error naming the worst element.
 */
export function gradcheck(fn: (...inputs: any[]) => Tensor | readonly Tensor[], inputs: readonly unknown[], opts: GradcheckOptions = {}): true {
  if (typeof fn !== 'function') typeError('gradcheck', `'fn' must be a function, got ${describe(fn)}`);
  if (!Array.isArray(inputs)) typeError('gradcheck', `'inputs' must be an array, got ${describe(inputs)}`);
  opts = optionsOf('gradcheck', opts, ['eps', 'atol', 'rtol', 'seed']);
  const eps = checkNumber('gradcheck', 'eps', opts.eps ?? 1e-6, { finite: true });
  const atol = checkNumber('gradcheck', 'atol', opts.atol ?? 1e-5, { finite: true });
  const rtol = checkNumber('gradcheck', 'rtol', opts.rtol ?? 1e-3, { finite: true });
  const seed = checkNumber('gradcheck', 'seed', opts.seed ?? 0, { finite: true });
  if (!(eps > 0)) rangeError('gradcheck', `'eps' must be > 0, got ${eps}`);
  if (atol < 0 || rtol < 0) rangeError('gradcheck', `'atol' and 'rtol' must be ≥ 0 (a negative tolerance fails every element), got ${atol} and ${rtol}`);
  if (!Number.isSafeInteger(seed)) rangeError('gradcheck', `'seed' must be an integer, got ${seed}`);
  const checked: number[] = [];
  inputs.forEach((x, i) => {
    if (!(x instanceof Tensor)) return;
    checkTensor('gradcheck', `inputs[${i}]`, x);
    if (!x._requiresGrad) return;
    if (x.dtype !== 'float64') typeError('gradcheck', `inputs[${i}] ${shapeStr(x._shape)} is ${x.dtype}; gradcheck needs float64 (use .cast('float64'))`);
    checked.push(i);
  });
  if (checked.length === 0) typeError('gradcheck', 'no input requires grad (set requiresGrad = true on the float64 inputs to check)');

  const base = checked.map((i) => (inputs[i] as Tensor).dataSync() as Float64Array);
  const shapes = checked.map((i) => (inputs[i] as Tensor)._shape.slice());
  // on each input's own device: fn is checked where it was given its inputs
  const devs = checked.map((i) => (inputs[i] as Tensor)._dev);
  const mk = (data: Float64Array, shape: readonly number[], requiresGrad: boolean, dev: DeviceSpec): Tensor => {
    const t = fromHandle(native().fromArray(DTYPE_CODES.float64, shape as number[], data, dev.type, dev.index), 'float64', shape, dev);
    t._requiresGrad = requiresGrad;
    return t;
  };
  const argsWith = (repl: Tensor[]): unknown[] => {
    const a = inputs.slice();
    checked.forEach((i, k) => (a[i] = repl[k]));
    return a;
  };

  // Analytical: backward of Σ_i Σ w_i ⊙ fn(x)_i, the w_i fixed random.
  let weights: Float64Array[] | null = null;
  const analytical: Float64Array[] = [];
  const leaves = checked.map((_, k) => mk(base[k], shapes[k], true, devs[k]));
  try {
    enableGrad(() => {
      const outs = callOwned(fn, argsWith(leaves));
      try {
        const floats = gradcheckOutputs(outs);
        if (!floats.some((o) => o._requiresGrad)) typeError('gradcheck', `fn's output${outs.length > 1 ? 's do' : ' does'} not depend on any input that requires grad`);
        weights = splitWeights(floats, seed);
        const w = weights;
        tidy(() => {
          let total: Tensor | null = null;
          floats.forEach((o, i) => {
            if (!o._requiresGrad) return;
            // (outputs on several devices: their sums meet on the CPU, a recorded copy)
            const t0 = red.sum(ew.mul(o, mk(w[i], o._shape, false, o._dev)));
            const t = t0._dev.name === 'cpu' ? t0 : t0.to('cpu');
            total = total ? ew.add(total, t) : t;
          });
          total!.backward();
        });
      } finally {
        for (const o of outs) if (o instanceof Tensor) o.dispose();
      }
    });
    leaves.forEach((l, k) => analytical.push(l.grad ? (l.grad.dataSync() as Float64Array) : new Float64Array(base[k].length)));
  } finally {
    for (const l of leaves) l.dispose();
  }

  // Numerical: central differences of the same weighted sum, one element at a time.
  const w = weights as unknown as Float64Array[];
  const evalAt = (k: number, data: Float64Array): number =>
    noGrad(() => {
      const repl = checked.map((_, j) => mk(j === k ? data : base[j], shapes[j], false, devs[j]));
      try {
        const outs = callOwned(fn, argsWith(repl));
        try {
          const floats = gradcheckOutputs(outs);
          if (floats.length !== w.length || floats.some((o, i) => o.size !== w[i].length))
            rangeError('gradcheck', `fn returned ${floats.length} floating output${floats.length === 1 ? '' : 's'} of ${floats.map((o) => o.size).join(', ')} elements at a shifted input, ` +
              `${w.length} of ${w.map((x) => x.length).join(', ')} at the first; it must be a fixed-shape function of its inputs`);
          let s = 0;
          floats.forEach((o, i) => {
            const v = o.dataSync();
            for (let e = 0; e < v.length; e++) s += v[e] * w[i][e];
          });
          return s;
        } finally {
          for (const o of outs) if (o instanceof Tensor) o.dispose();
        }
      } finally {
        for (const t of repl) t.dispose();
      }
    });
  for (let k = 0; k < checked.length; k++) {
    const x = base[k].slice();
    let worst = -1;
    let worstExcess = 0;
    let worstNum = 0;
    let bad = 0;
    for (let j = 0; j < x.length; j++) {
      const x0 = x[j];
      x[j] = x0 + eps;
      const fp = evalAt(k, x);
      x[j] = x0 - eps;
      const fm = evalAt(k, x);
      x[j] = x0;
      const num = (fp - fm) / (2 * eps);
      const a = analytical[k][j];
      const excess = Math.abs(a - num) - (atol + rtol * Math.abs(num));
      if (!(excess <= 0)) {
        bad++;
        if (worst < 0 || !(excess <= worstExcess)) {
          worst = j;
          worstExcess = excess;
          worstNum = num;
        }
      }
    }
    if (bad > 0) {
      const a = analytical[k][worst];
      const idx = unravel(worst, shapes[k]);
      throw new Error(
        `structura.gradcheck: the gradient of inputs[${checked[k]}] ${shapeStr(shapes[k])} is wrong at element ${shapeStr(idx)}: ` +
          `analytical ${a}, numerical ${worstNum}, |difference| ${Math.abs(a - worstNum)} > atol ${atol} + rtol ${rtol} × |numerical|; ` +
          `${bad} of ${x.length} elements differ (eps ${eps})`,
      );
    }
  }
  return true;
}

function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return idx;
}

/** One weight vector per output, cut from one random sequence (so one output gets the weights it always had). */
function splitWeights(outs: readonly Tensor[], seed: number): Float64Array[] {
  const all = randomWeights(outs.reduce((n, o) => n + o.size, 0), seed);
  let at = 0;
  return outs.map((o) => all.slice(at, (at += o.size)));
}

/** Weights in [0.5, 1.5) with random signs, deterministic in seed (mulberry32). */
function randomWeights(n: number, seed: number): Float64Array {
  let s = (seed >>> 0) ^ 0x9e3779b9;
  const next = (): number => {
    s = (s + 0x6d2b79f5) | 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const w = new Float64Array(n);
  for (let i = 0; i < n; i++) w[i] = (next() < 0.5 ? -1 : 1) * (0.5 + next());
  return w;
}

