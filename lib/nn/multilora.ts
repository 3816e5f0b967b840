// nn/multilora.ts — many LoRA adapters over one frozen nn.Linear, chosen row by row: serving several
// fine-tunes of one base model in one batch (Punica's and S-LoRA's batched LoRA; PEFT's mixed-batch
// inference, `adapter_names`).
//
//   MultiLoRALinear(base, {slots = 8, r = 16})
//       loraA [slots, r, in], loraB [slots, out, r]: buffers in the base's dtype and device (not
//       parameters: the layer serves adapters trained elsewhere; gradients still reach x)
//     addAdapter(name, A [r_e, in], B [out, r_e], {alpha = r_e, rslora, scale}) → its slot
//       The slot holds A zero-padded to r rows and scale_e·B zero-padded to r columns, so adapters of any
//       rank r_e ≤ r and any scale share one lowrank.loraBatched call (a zero row adds exactly nothing).
//       The scale folded into B is rounded once to the base's dtype: exact for a power of two (alpha = 2r,
//       r, r/2 …) while scale·B stays in the dtype's normal range, else one more rounding than LoRALinear's;
//       a scale·B that would overflow the dtype (float16: 65504) is refused.
//     forward(x [..., in], {adapters}) → [..., out]
//       y_m = x_m·Wᵀ + b + scale_e·(x_m·A_eᵀ)·B_eᵀ with e the adapter of row m (none: the base alone).
//       adapters: one name for every row, or an array with one entry a sample (x.shape[0] entries, each
//       for all of that sample's rows) or one a row; null or '__base__' (PEFT's name) for none. Without
//       it: the names useAdapters() set, else the active adapter (setActiveAdapter), else none.
//     deleteAdapter(name), setActiveAdapter(name | null), adapters, unload() → the base
//   Over a model (every MultiLoRALinear in it; a layer without the named adapter runs its base for
//   those rows, as a PEFT adapter that did not target that layer):
//     injectMultiLora(model, {targetModules, excludeModules, slots, r})   PEFT's matching (injectLora's)
//     useAdapters(model, adapters, fn)   runs fn() with every layer choosing `adapters`
//     setActiveAdapter(model, name | null), deleteAdapter(model, name), adapterNames(model)
//     unloadLora(model, {merge: false}) (nn/peft.ts) puts the bases back
//   io.loadPeftAdapter(model, dir, {adapterName}) puts a PEFT adapter file into the layers' free slots.
import { Tensor, checkTensor, isFloating, tidy } from '../tensor';
import { noGrad } from '../autograd';
import type { NotPromise } from '../tensor';
import { native } from '../native';
import { describe, shapeStr, typeError, rangeError, optionsOf, numel } from '../errors';
import * as lowrank from '../ops/lowrank';
import { mul, abs } from '../ops/elementwise';
import { max } from '../ops/reduce';
import { reshape, narrow, cast } from '../ops/shape';
import { zeros, tensor } from '../ops/creation';
import { Module } from './module';
import { Linear, checkFeatures, checkInput, checkLive, withSwitch } from './linear';
import { targetLinears, replaceModules } from './peft';

/** Which adapter each row takes: a name (or null / '__base__': none) for all, or one entry a sample or a row. */
export type AdapterChoice = string | null | readonly (string | null)[];

/** PEFT's name for "no adapter" in adapter_names. */
export const BASE_ADAPTER = '__base__';

export interface MultiLoRAOptions {
  /** How many adapters the layer holds at once (default 8). */
  slots?: number;
  /** The largest rank an adapter may have (default 16); smaller ones are zero-padded. */
  r?: number;
}

export interface AddAdapterOptions {
  /** lora_alpha (default: the adapter's rank, scale 1). */
  alpha?: number;
  /** rsLoRA: scale alpha/√r_e instead of alpha/r_e. */
  rslora?: boolean;
  /** The scale itself, instead of alpha and rslora. */
  scale?: number;
}

interface Slot {
  name: string;
  r: number;
  scale: number;
}

/** A name for addAdapter: a non-empty string other than '__base__'. */
function checkAdapterName(fn: string, name: unknown): string {
  if (typeof name !== 'string') typeError(fn, `'name' must be a string, got ${describe(name)}`);
  if (name === '' || name === BASE_ADAPTER) rangeError(fn, `'name' must be a non-empty string other than '${BASE_ADAPTER}' (which means no adapter), got '${name}'`);
  return name;
}

/** LoRA adapters in slots over one frozen nn.Linear, chosen per row (see the file's header). */
export class MultiLoRALinear extends Module {
  declare base: Linear;
  declare loraA: Tensor;
  declare loraB: Tensor;
  /** How many adapters fit. */
  readonly slots: number;
  /** The largest rank an adapter may have. */
  readonly r: number;
  readonly #slot: (Slot | null)[];
  #active: string | null = null;
  // the choice useAdapters() set for the model (undefined: none)
  #context: AdapterChoice | undefined = undefined;
  #unloaded = false;
  #enabled = true;

  constructor(base: Linear, opts: MultiLoRAOptions = {}) {
    super();
    const fn = 'nn.MultiLoRALinear';
    if (!(base instanceof Linear)) typeError(fn, `'base' must be an nn.Linear, got ${describe(base)}`);
    const o = optionsOf(fn, opts, ['slots', 'r']);
    this.slots = checkFeatures(fn, 'slots', o.slots ?? 8);
    this.r = checkFeatures(fn, 'r', o.r ?? 16);
    checkLive(fn, { 'base.weight': base.weight, 'base.bias': base.bias });
    const W = base.weight;
    const opt = { dtype: W.dtype, device: W.device };
    // made before anything changes, so that a failed allocation leaves the base as it was
    const A = zeros([this.slots, this.r, base.inFeatures], opt);
    let B: Tensor;
    try {
      B = zeros([this.slots, base.outFeatures, this.r], opt);
    } catch (e) {
      A.dispose();
      throw e;
    }
    this.registerModule('base', base);
    base.weight.requiresGrad = false;
    if (base.bias) base.bias.requiresGrad = false;
    // not persistent: the adapters live in their own files (io.loadPeftAdapter), and a state dict with the
    // slots but not their names and scales would not say what they hold
    this.registerBuffer('loraA', A, { persistent: false });
    this.registerBuffer('loraB', B, { persistent: false });
    this.#slot = new Array(this.slots).fill(null);
  }

  /** The names of the adapters held, in slot order. */
  get adapters(): string[] {
    return this.#slot.flatMap((s) => (s ? [s.name] : []));
  }

  /** The adapter rows take when forward() is not told otherwise, or null. */
  get activeAdapter(): string | null {
    return this.#active;
  }

  /** True after unload(). */
  get unloaded(): boolean {
    return this.#unloaded;
  }

  /** False while the adapters are switched off (enableAdapters(false), nn.disableAdapters). */
  get adaptersEnabled(): boolean {
    return this.#enabled;
  }

  /** Switches the adapters on or off (PEFT's enable_adapters): off, forward() computes the base alone,
   * whatever adapters it is told to use. */
  enableAdapters(enabled = true): this {
    if (typeof enabled !== 'boolean') typeError('nn.MultiLoRALinear.enableAdapters', `'enabled' must be a boolean, got ${describe(enabled)}`);
    this.#enabled = enabled;
    return this;
  }

  /** The slot of adapter `name`, or −1. */
  slotOf(name: string): number {
    return this.#slot.findIndex((s) => s !== null && s.name === name);
  }

  /** The rank and scale adapter `name` was added with, or null. */
  adapterInfo(name: string): { slot: number; r: number; scale: number } | null {
    const e = this.slotOf(name);
    return e < 0 ? null : { slot: e, r: this.#slot[e]!.r, scale: this.#slot[e]!.scale };
  }

  /**
   * Puts adapter `name` (A [r_e, in], B [out, r_e], r_e ≤ r, any floating dtype and device) in the first
   * free slot and returns it. The scale is alpha/r_e (alpha/√r_e with rslora; alpha defaults to r_e) or
   * `scale`. The values are copied: A and B stay the caller's.
   */
  addAdapter(name: string, A: Tensor, B: Tensor, opts: AddAdapterOptions = {}): number {
    const fn = 'nn.MultiLoRALinear.addAdapter';
    this.#checkLoaded(fn);
    const { rE, scale } = this.checkAdapter(fn, name, A, B, opts);
    const e = this.#slot.indexOf(null);
    if (e < 0) rangeError(fn, `all ${this.slots} slots are taken (${this.adapters.map((n) => `'${n}'`).join(', ')}); deleteAdapter() one, or make the layer with more 'slots'`);
    this.#write(e, A, B, rE, scale);
    this.#slot[e] = { name, r: rE, scale };
    return e;
  }

  /** @internal addAdapter's checks without the write: {rank, scale}. (io.loadPeftAdapter checks every layer first.) */
  checkAdapter(fn: string, name: unknown, A: unknown, B: unknown, opts: unknown): { rE: number; scale: number } {
    checkAdapterName(fn, name);
    checkLive(fn, { loraA: this.loraA, loraB: this.loraB });
    if (this.slotOf(name as string) >= 0) rangeError(fn, `the layer already has an adapter '${name}'; deleteAdapter() it first`);
    checkTensor(fn, 'A', A);
    checkTensor(fn, 'B', B);
    for (const [arg, t] of [['A', A], ['B', B]] as const)
      if (!isFloating(t.dtype)) typeError(fn, `'${arg}' must be floating, got ${t.dtype}`);
    const inF = this.base.inFeatures, out = this.base.outFeatures;
    if (A.shape.length !== 2 || A.shape[1] !== inF || A.shape[0] < 1) rangeError(fn, `'A' ${shapeStr(A.shape)} must be [r, in] with in = ${inF} and r ≥ 1`);
    const rE = A.shape[0];
    if (B.shape.length !== 2 || B.shape[0] !== out || B.shape[1] !== rE) rangeError(fn, `'B' ${shapeStr(B.shape)} must be [out, r] = [${out}, ${rE}] (from 'A' ${shapeStr(A.shape)})`);
    if (rE > this.r) rangeError(fn, `the adapter's rank ${rE} ('A' ${shapeStr(A.shape)}) is above the layer's r = ${this.r}; make the layer with a larger 'r'`);
    const o = optionsOf(fn, opts as AddAdapterOptions, ['alpha', 'rslora', 'scale']);
    let scale: number;
    if (o.scale !== undefined) {
      if (o.alpha !== undefined || o.rslora !== undefined) typeError(fn, "give 'scale' or 'alpha' (and 'rslora'), not both");
      if (typeof o.scale !== 'number' || !Number.isFinite(o.scale)) typeError(fn, `'scale' must be a finite number, got ${describe(o.scale)}`);
      scale = o.scale;
    } else {
      const alpha = o.alpha ?? rE;
      const rslora = o.rslora ?? false;
      if (typeof alpha !== 'number' || !Number.isFinite(alpha)) typeError(fn, `'alpha' must be a finite number, got ${describe(alpha)}`);
      if (typeof rslora !== 'boolean') typeError(fn, `'rslora' must be a boolean, got ${describe(rslora)}`);
      scale = rslora ? alpha / Math.sqrt(rE) : alpha / rE;
    }
    return { rE, scale };
  }

  /** Slot e ← A padded with zero rows, scale·B padded with zero columns (the slot cleared first). */
  #write(e: number, A: Tensor, B: Tensor, rE: number, scale: number): void {
    const n = native();
    const dev = this.base.weight.device;
    const dt = this.loraB.dtype;
    noGrad(() =>
      tidy(() => {
        const a = A.device === dev ? A : A.to(dev);
        // the scale applied in float64, so the product is rounded once, to the slot's dtype
        const b = mul(cast(B.device === dev ? B : B.to(dev), 'float64'), scale);
        // finite factors whose product leaves the dtype's range would serve ±inf where nn.LoRALinear, which
        // scales after the product, gives finite outputs: refused before the slot changes
        if (dt !== 'float64') {
          const held = max(abs(cast(b, dt))).item(), exact = max(abs(b)).item();
          if (!Number.isFinite(held) && Number.isFinite(exact))
            rangeError('nn.MultiLoRALinear.addAdapter', `scale·B (scale ${scale}, |B| up to ${max(abs(B)).item()}) overflows ${dt}, the base's dtype, in which the slots hold it`);
          // and a nonzero adapter whose every element rounds to zero would be dropped without a word
          if (held === 0 && exact > 0)
            rangeError('nn.MultiLoRALinear.addAdapter', `scale·B (scale ${scale}, |B| up to ${max(abs(B)).item()}) underflows ${dt}, the base's dtype, in which the slots hold it: every element rounds to 0`);
        }
        this.#clear(e);
        n.copyInto(narrow(narrow(this.loraA, 0, e, 1), 1, 0, rE)._h, a._h);
        n.copyInto(narrow(narrow(this.loraB, 0, e, 1), 2, 0, rE)._h, b._h);
      }),
    );
  }

  /** Zeroes slot e of loraA and loraB (inside the caller's noGrad / tidy). */
  #clear(e: number): void {
    const zero = zeros([], { dtype: this.loraA.dtype, device: this.base.weight.device });
    native().copyInto(narrow(this.loraA, 0, e, 1)._h, zero._h);
    native().copyInto(narrow(this.loraB, 0, e, 1)._h, zero._h);
  }

  /** Takes adapter `name` out (its slot is zeroed and free again). */
  deleteAdapter(name: string): void {
    const fn = 'nn.MultiLoRALinear.deleteAdapter';
    this.#checkLoaded(fn);
    const e = this.#lookup(fn, name, true);
    checkLive(fn, { loraA: this.loraA, loraB: this.loraB });
    noGrad(() => tidy(() => this.#clear(e)));
    this.#slot[e] = null;
    if (this.#active === name) this.#active = null;
  }

  /** The adapter every row takes when forward() is given none (null: the base alone), PEFT's set_adapter. */
  setActiveAdapter(name: string | null): void {
    const fn = 'nn.MultiLoRALinear.setActiveAdapter';
    this.#checkLoaded(fn);
    if (name !== null && name !== BASE_ADAPTER) this.#lookup(fn, name, true);
    this.#active = name === BASE_ADAPTER ? null : name;
  }

  /** @internal the model-level setters: names checked across the model, not in each layer. */
  setActiveLenient(name: string | null): void {
    this.#active = name;
  }

  /** @internal useAdapters: sets the choice and returns the one it replaces. */
  swapContext(choice: AdapterChoice | undefined): AdapterChoice | undefined {
    const old = this.#context;
    this.#context = choice;
    return old;
  }

  /** The slot of `name`; strict: a RangeError if the layer lacks it, else −1. */
  #lookup(fn: string, name: unknown, strict: boolean): number {
    if (typeof name !== 'string') typeError(fn, `an adapter name must be a string, got ${describe(name)}`);
    const e = this.slotOf(name);
    if (e < 0 && strict) rangeError(fn, `the layer has no adapter '${name}' (it has ${this.adapters.length ? this.adapters.map((n) => `'${n}'`).join(', ') : 'none'})`);
    return e;
  }

  /** The slot of each of the `M` rows of x [..., in] (−1: none), or null when no row takes an adapter. */
  #ids(fn: string, choice: unknown, shape: readonly number[], strict: boolean): Int32Array | null {
    const lead = shape.slice(0, -1);
    const M = numel(lead);
    const slotOf = (v: unknown, at: string): number => {
      if (v === null || v === BASE_ADAPTER) return -1;
      if (typeof v !== 'string') typeError(fn, `'adapters'${at} must be an adapter's name or null, got ${describe(v)}`);
      return this.#lookup(fn, v, strict);
    };
    if (!Array.isArray(choice)) {
      const e = slotOf(choice, '');
      return e < 0 || M === 0 ? null : new Int32Array(M).fill(e);
    }
    const n = choice.length;
    // rows an entry covers: one a row, or one a sample (x.shape[0]) for all of its rows
    const perSample = n !== M && lead.length >= 1 && n === lead[0];
    if (n !== M && !perSample)
      rangeError(fn, `'adapters' has ${n} entries but 'x' ${shapeStr(shape)} has ${lead.length ? lead[0] : 1} samples and ${M} rows: give one entry a sample or one a row`);
    const per = perSample ? M / n : 1;
    const ids = new Int32Array(M);
    const seen = new Map<unknown, number>();
    let any = false;
    for (let i = 0; i < n; i++) {
      let e = seen.get(choice[i]);
      if (e === undefined) seen.set(choice[i], (e = slotOf(choice[i], `[${i}]`)));
      if (e >= 0) any = true;
      ids.fill(e, i * per, (i + 1) * per);
    }
    return any ? ids : null;
  }

  forward(x: Tensor, opts: { adapters?: AdapterChoice } = {}): Tensor {
    const fn = 'nn.MultiLoRALinear.forward';
    this.#checkLoaded(fn);
    checkInput(fn, x, this.base.inFeatures, 'inFeatures');
    const o = optionsOf(fn, opts, ['adapters']);
    checkLive(fn, { 'base.weight': this.base.weight, 'base.bias': this.base.bias, loraA: this.loraA, loraB: this.loraB });
    const W0 = this.base.weight;
    if (x.dtype !== W0.dtype) typeError(fn, `'x' is ${x.dtype} but the base layer's weight is ${W0.dtype}`);
    if (x.device !== W0.device) typeError(fn, `'x' is on ${x.device} but the base layer's weight is on ${W0.device}`);
    const given = o.adapters !== undefined;
    const choice = given ? o.adapters : this.#context !== undefined ? this.#context : this.#active;
    const ids = this.#ids(fn, choice, x.shape, given); // checked even while off: a bad choice is a bug
    if (!ids || !this.#enabled) return this.base.forward(x);
    const W = this.base.weight, bias = this.base.bias;
    return tidy(() => {
      const lead = x.shape.slice(0, -1);
      const x2 = x.ndim === 2 ? x : reshape(x, [ids.length, this.base.inFeatures]);
      // on the CPU: the op plans from host ids, so a device's stream is not waited for (test/multilora.test.ts)
      const idT = tensor(ids, { dtype: 'int32' });
      const y = lowrank.loraBatched(x2, W, this.loraA, this.loraB, idT, { bias });
      return x.ndim === 2 ? y : reshape(y, [...lead, this.base.outFeatures]);
    });
  }

  /** Frees the slots and hands the base nn.Linear back (still frozen); the layer is unusable afterwards. */
  unload(): Linear {
    this.#checkLoaded('nn.MultiLoRALinear.unload');
    this.loraA.dispose();
    this.loraB.dispose();
    const base = this.base;
    (this as unknown as { base: Linear | null }).base = null;
    this.#slot.fill(null);
    this.#unloaded = true;
    return base;
  }

  #checkLoaded(fn: string): void {
    if (this.#unloaded) typeError(fn, 'the layer was unloaded (unload() handed its base nn.Linear back)');
  }

  extraRepr(): string {
    return `slots=${this.slots}, r=${this.r}, adapters=[${this.adapters.join(', ')}]${this.#active !== null ? `, active=${this.#active}` : ''}`;
  }
}

/** The distinct MultiLoRALinear layers of `module` (a tied one once). */
function banks(module: Module): MultiLoRALinear[] {
  return [...module.modules()].filter((m): m is MultiLoRALinear => m instanceof MultiLoRALinear && !m.unloaded);
}

function checkModel(fn: string, module: unknown): MultiLoRALinear[] {
  if (!(module instanceof Module)) typeError(fn, `'module' must be an nn.Module, got ${describe(module)}`);
  const layers = banks(module);
  if (layers.length === 0) rangeError(fn, 'the module has no nn.MultiLoRALinear layer (nn.injectMultiLora makes them)');
  return layers;
}

/** Every name the adapters of `choice` use must be in some layer (a typo would otherwise run the base). */
function checkChoice(fn: string, layers: readonly MultiLoRALinear[], choice: unknown): void {
  const names = Array.isArray(choice) ? choice : [choice];
  if (!Array.isArray(choice) && choice !== null && typeof choice !== 'string')
    typeError(fn, `'adapters' must be an adapter's name, null, or an array of them (one a sample or one a row), got ${describe(choice)}`);
  const checked = new Set<unknown>();
  names.forEach((v, i) => {
    if (checked.has(v)) return;
    checked.add(v);
    if (v === null || v === BASE_ADAPTER) return;
    if (typeof v !== 'string') typeError(fn, `'adapters'${Array.isArray(choice) ? `[${i}]` : ''} must be an adapter's name or null, got ${describe(v)}`);
    if (!layers.some((l) => l.slotOf(v) >= 0)) rangeError(fn, `no layer of the module has an adapter '${v}' (it has ${adapterList(layers)})`);
  });
}

function adapterList(layers: readonly MultiLoRALinear[]): string {
  const all = [...new Set(layers.flatMap((l) => l.adapters))];
  return all.length ? all.map((n) => `'${n}'`).join(', ') : 'none';
}

/** The names of the adapters the MultiLoRALinear layers of `module` hold (each once, in module order). */
export function adapterNames(module: Module): string[] {
  return [...new Set(checkModel('nn.adapterNames', module).flatMap((l) => l.adapters))];
}

/**
 * Runs fn() with every MultiLoRALinear layer of `module` taking `adapters` (a name for all rows, or one
 * entry a sample or a row; null / '__base__' for none) unless a forward() is given its own; puts the
 * previous choice back afterwards. Every name must be in some layer. fn must be synchronous.
 */
export function useAdapters<T>(module: Module, adapters: AdapterChoice, fn: () => NotPromise<T>): T {
  const name = 'nn.useAdapters';
  const layers = checkModel(name, module);
  checkChoice(name, layers, adapters);
  if (typeof fn !== 'function') typeError(name, `'fn' must be a function, got ${describe(fn)}`);
  // the array copied, so that a caller's later change does not reach a forward inside
  const choice = Array.isArray(adapters) ? [...adapters] : adapters;
  const old = layers.map((l) => l.swapContext(choice));
  return withSwitch(name, fn, () => layers.forEach((l, i) => l.swapContext(old[i])), 'the adapters are chosen');
}

/** Every MultiLoRALinear layer of `module` takes adapter `name` (null: none) when not told otherwise. */
export function setActiveAdapter(module: Module, name: string | null): void {
  const fn = 'nn.setActiveAdapter';
  const layers = checkModel(fn, module);
  if (name !== null && typeof name !== 'string') typeError(fn, `'name' must be an adapter's name or null, got ${describe(name)}`);
  checkChoice(fn, layers, name);
  for (const l of layers) l.setActiveLenient(name === BASE_ADAPTER ? null : name);
}

/** Takes adapter `name` out of every MultiLoRALinear layer of `module` that has it; returns how many had it. */
export function deleteAdapter(module: Module, name: string): number {
  const fn = 'nn.deleteAdapter';
  const layers = checkModel(fn, module);
  if (typeof name !== 'string') typeError(fn, `'name' must be a string, got ${describe(name)}`);
  const holders = layers.filter((l) => l.slotOf(name) >= 0);
  if (holders.length === 0) rangeError(fn, `no layer of the module has an adapter '${name}' (it has ${adapterList(layers)})`);
  for (const l of holders) l.deleteAdapter(name);
  // the layers without it that had it active too (setActiveAdapter sets every layer): a later adapter of
  // that name must not become active there alone
  for (const l of layers) if (l.activeAdapter === name) l.setActiveLenient(null);
  return holders.length;
}

export interface InjectMultiLoraOptions extends MultiLoRAOptions {
  /** Which layers get slots: a regular expression for the whole path, or names ending the path (PEFT's rules). */
  targetModules: string | readonly string[];
  /** Layers to leave alone even when targetModules matches them. */
  excludeModules?: string | readonly string[];
}

/**
 * Puts an nn.MultiLoRALinear over every nn.Linear of `module` whose path `targetModules` matches (PEFT's
 * rules, as nn.injectLora), in place, with empty slots; returns the paths. Every match must be an
 * nn.Linear (not already a LoRA layer), and nothing changes unless every layer can be made.
 */
export function injectMultiLora(module: Module, opts: InjectMultiLoraOptions): string[] {
  const fn = 'nn.injectMultiLora';
  if (!(module instanceof Module)) typeError(fn, `'module' must be an nn.Module, got ${describe(module)}`);
  const o = optionsOf(fn, opts, ['targetModules', 'excludeModules', 'slots', 'r'], "{targetModules: ['q_proj', 'v_proj'], slots: 8, r: 16}");
  const plan = targetLinears(fn, module, o.targetModules, o.excludeModules);
  // every layer made before any is put in place (a layer freezes its base as it is made: put back on failure)
  const params = module.parameters();
  const flags = params.map((t) => t.requiresGrad);
  const made: MultiLoRALinear[] = [];
  try {
    for (const [, base] of plan) made.push(new MultiLoRALinear(base, { slots: o.slots, r: o.r }));
  } catch (e) {
    for (const l of made) l.unload();
    params.forEach((t, i) => (t.requiresGrad = flags[i]));
    throw e;
  }
  replaceModules(module, new Map<Module, Module>(plan.map(([, base], i) => [base, made[i]])));
  return plan.map(([p]) => p);
}
