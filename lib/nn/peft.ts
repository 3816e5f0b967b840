// peft.ts — nn.injectLora(module, {targetModules, r, alpha, …}): PEFT's get_peft_model for a LoRA
// config — every nn.Linear of `module` whose path PEFT's rules match is replaced in its parent by an
// nn.LoRALinear over it (the base frozen, the adapter initialised as PEFT does). The matching is PEFT's
// (peft/tuners/tuners_utils.py check_target_module_exists, peft/utils/other.py get_pattern_key):
//   targetModules  a string: a regular expression the whole path must match; an array: names that
//                  equal the path or end it after a '.'  ('q_proj' matches 'layers.0.attn.q_proj')
//   excludeModules the same rules; a match is left alone
//   rankPattern / alphaPattern  {pattern: value} (or a Map): the first pattern p (in key order) for which
//                  the path matches (.*\.)?(p)$ gives that layer's r / alpha instead of the default
//   modulesToSave  names a module's path ends with (plain suffixes, PEFT's _set_trainable): trained in
//                  full beside the adapters (a classifier head); every other parameter is frozen
// Paths are the module's own ("block.fc", "0.attn.q_proj"), as namedModules() gives them. Patterns are
// Python regular expressions in PEFT; JavaScript reads most alike (\A and \Z are translated; named
// groups (?P<…>) and inline flags are syntax errors here). A JavaScript object puts its integer-like keys
// ("2") first whatever the order they were written in: a Map keeps the order given (io.loadPeftAdapter
// reads adapter_config.json's patterns into Maps in the file's order, as Python's dicts keep it).
// nn.unloadLora(module, {merge}) undoes it: PEFT's merge_and_unload / unload (with merge: false, also
// nn.injectMultiLora's layers, whose slots are dropped).
import { describe, typeError, rangeError, optionsOf } from '../errors';
import { Module } from './module';
import { Linear, checkLive } from './linear';
import type { Tensor } from '../tensor';
import { LoRALinear } from './lowrank';
import { MultiLoRALinear } from './multilora';

export interface InjectLoraOptions {
  /** Which layers get an adapter: a regular expression for the whole path, or names ending the path. */
  targetModules: string | readonly string[];
  /** Layers to leave alone even when targetModules matches them (the same rules). */
  excludeModules?: string | readonly string[];
  /** The rank (default 8, PEFT's). */
  r?: number;
  /** lora_alpha (default 8, PEFT's: scale alpha/r). */
  alpha?: number;
  /** rsLoRA: scale alpha/√r. */
  rslora?: boolean;
  /** DoRA: a learned magnitude per output row. */
  dora?: boolean;
  /** lora_dropout (default 0). */
  dropout?: number;
  /** {pattern: r} for the layers that take another rank; the first matching pattern wins (a Map keeps
   * integer-like patterns such as '2' where you put them; an object moves them first). */
  rankPattern?: Readonly<Record<string, number>> | ReadonlyMap<string, number>;
  /** {pattern: alpha} for the layers that take another alpha (as rankPattern). */
  alphaPattern?: Readonly<Record<string, number>> | ReadonlyMap<string, number>;
  /** Modules trained in full beside the adapters (PEFT's modules_to_save, e.g. a classifier head): names
   * a module's path ends with (PEFT's rule, plain suffixes). Their parameters are not frozen. */
  modulesToSave?: readonly string[];
  /** Seeds the adapters' initialisation (layer i gets seed + i); fresh seeds without it. */
  seed?: number;
}

/** The modules of `module` whose paths end with one of `names` (PEFT's modules_to_save rule), as
 * [path, module]; each path of a tied module. */
export function modulesToSave(fn: string, module: Module, names: unknown): [string, Module][] {
  if (names === undefined || names === null) return [];
  if (!Array.isArray(names) || names.some((n) => typeof n !== 'string' || n === ''))
    typeError(fn, `'modulesToSave' must be an array of module names, got ${describe(names)}`);
  const found = [...module.namedModules('', new Set(), false)].filter(([p]) => p !== '' && (names as string[]).some((n) => p.endsWith(n)));
  const missing = (names as string[]).filter((n) => !found.some(([p]) => p.endsWith(n)));
  if (missing.length) rangeError(fn, `'modulesToSave' names ${JSON.stringify(missing)}, which no module of the model's path ends with`);
  return found;
}

/** The regular expression `wrap(pattern)`, a syntax error in the user's pattern as a RangeError naming it.
 * Python's \A and \Z (PEFT's patterns are Python's) become ^ and $; in JavaScript they are letters. */
function regex(fn: string, arg: string, pattern: string, wrap: (p: string) => string): RegExp {
  try {
    return new RegExp(wrap(pattern.replace(/(?<!\\)((?:\\\\)*)\\A/g, '$1^').replace(/(?<!\\)((?:\\\\)*)\\Z/g, '$1$$')));
  } catch (e) {
    return rangeError(fn, `'${arg}' has ${JSON.stringify(pattern)}, which is not a valid regular expression (${(e as Error).message})`);
  }
}

/** PEFT's module-name rule: a string is a regular expression for the whole path; an array lists names
 * that equal the path or end it after a '.'. */
function pathMatcher(fn: string, arg: string, spec: unknown): (path: string) => boolean {
  if (typeof spec === 'string') {
    const re = regex(fn, arg, spec, (p) => `^(?:${p})$`);
    return (p) => re.test(p);
  }
  if (!Array.isArray(spec) || spec.some((s) => typeof s !== 'string'))
    typeError(fn, `'${arg}' must be a regular expression (a string) or an array of module names, got ${describe(spec)}`);
  const names = spec as string[];
  return (p) => names.some((n) => p === n || p.endsWith(`.${n}`));
}

/** PEFT's get_pattern_key over {pattern: value} or a Map (in its order), compiled once: (path, fallback) →
 * the value of the first pattern p with path ~ (.*\.)?(p)$, else fallback. */
export function patternLookup(fn: string, arg: string, patterns: unknown): (path: string, fallback: number) => number {
  if (patterns === undefined || patterns === null) return (_, fallback) => fallback;
  if (typeof patterns !== 'object' || Array.isArray(patterns)) typeError(fn, `'${arg}' must be an object {pattern: number} or a Map, got ${describe(patterns)}`);
  const entries = patterns instanceof Map ? [...patterns.entries()] : Object.entries(patterns as Record<string, unknown>);
  const table = entries.map(([p, v]) => {
    if (typeof p !== 'string') typeError(fn, `'${arg}' has the key ${describe(p)}; patterns must be strings`);
    if (typeof v !== 'number' || !Number.isFinite(v)) typeError(fn, `'${arg}' gives ${describe(v)} for '${p}'; it must be a finite number`);
    return [regex(fn, arg, p, (q) => `^(?:.*\\.)?(?:${q})$`), v as number] as const;
  });
  return (path, fallback) => table.find(([re]) => re.test(path))?.[1] ?? fallback;
}

/** s with the regular-expression metacharacters escaped (a path as a pattern that matches only it). */
export const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Undoes LoRALinear layers made but not (or no longer) in the model: their adapters freed, every
 * parameter's requiresGrad as `flags` recorded it (a LoRALinear freezes its base as it is made). */
export function discardLayers(made: readonly LoRALinear[], params: readonly Tensor[], flags: readonly boolean[]): void {
  for (const l of made) l.unload({ merge: false });
  params.forEach((t, i) => (t.requiresGrad = flags[i]));
}

/** requiresGrad = trainable for the adapters of `layers`, false for every other parameter of module. */
export function trainOnlyAdapters(module: Module, layers: Iterable<LoRALinear>, trainable = true): void {
  const adapters = new Set<Tensor>();
  for (const l of layers) for (const t of [l.loraA, l.loraB, l.magnitude]) if (t) adapters.add(t);
  for (const t of module.parameters()) t.requiresGrad = trainable && adapters.has(t);
}

/** Puts `swap.get(m)` wherever a module of `root` holds a child m that `swap` has: a layer shared by
 * two parents (tied) is replaced in both. All the slots are found before any changes. */
export function replaceModules(root: Module, swap: ReadonlyMap<Module, Module>): void {
  const slots: [Module, string, Module][] = [];
  for (const m of root.modules())
    for (const [name, c] of m.namedChildren()) if (swap.has(c)) slots.push([m, name, swap.get(c)!]);
  for (const [parent, name, to] of slots) (parent as unknown as Record<string, Module>)[name] = to;
}

/**
 * The nn.Linear layers of `module` whose paths PEFT's rules for `targetModules` and `excludeModules` pick,
 * as [path, layer] in module order (nn.injectLora's and nn.injectMultiLora's targets). The base inside a
 * LoRA layer is not a target of its own; a matched LoRA layer is a RangeError, a matched module of another
 * kind a TypeError (PEFT: "not supported"), no match at all a RangeError.
 */
export function targetLinears(fn: string, module: Module, targetModules: unknown, excludeModules: unknown): [string, Linear][] {
  if (targetModules === undefined) typeError(fn, "'targetModules' is required (a regular expression or an array of module names)");
  const isTarget = pathMatcher(fn, 'targetModules', targetModules);
  const excluded = excludeModules === undefined ? () => false : pathMatcher(fn, 'excludeModules', excludeModules);
  const modules = [...module.namedModules()];
  const bases = new Set<Module>(modules.flatMap(([, m]) => ((m instanceof LoRALinear || m instanceof MultiLoRALinear) && m.base ? [m.base] : [])));
  const found: [string, Linear][] = [];
  for (const [path, m] of modules) {
    if (path === '' || !isTarget(path) || excluded(path) || bases.has(m)) continue;
    if (m instanceof LoRALinear || m instanceof MultiLoRALinear) rangeError(fn, `'${path}' is already an nn.${m.constructor.name}`);
    if (!(m instanceof Linear)) typeError(fn, `'${path}' matches 'targetModules' but is an ${m.constructor.name}; only nn.Linear layers take a LoRA adapter`);
    found.push([path, m]);
  }
  if (found.length === 0) rangeError(fn, `no module of the model matches 'targetModules' ${JSON.stringify(targetModules)}`);
  return found;
}

/**
 * Puts an nn.LoRALinear over every nn.Linear of `module` that PEFT's rules for `targetModules` (and
 * `excludeModules`) match, in place; returns their paths in module order. A matched module that is not an
 * nn.Linear is a TypeError (PEFT: "not supported"), a matched LoRALinear a RangeError, and no match at
 * all a RangeError. Nothing is replaced unless every match can be. As get_peft_model, every parameter of
 * `module` but the adapters' and modulesToSave's is then frozen (requiresGrad = false).
 */
export function injectLora(module: Module, opts: InjectLoraOptions): string[] {
  const fn = 'nn.injectLora';
  if (!(module instanceof Module)) typeError(fn, `'module' must be an nn.Module, got ${describe(module)}`);
  const o = optionsOf(fn, opts, ['targetModules', 'excludeModules', 'r', 'alpha', 'rslora', 'dora', 'dropout', 'rankPattern', 'alphaPattern', 'modulesToSave', 'seed'], "{targetModules: ['q_proj', 'v_proj']}");
  const saved = modulesToSave(fn, module, o.modulesToSave);
  const rankOf = patternLookup(fn, 'rankPattern', o.rankPattern), alphaOf = patternLookup(fn, 'alphaPattern', o.alphaPattern);
  const targets = targetLinears(fn, module, o.targetModules, o.excludeModules);
  const r0 = o.r ?? 8, alpha0 = o.alpha ?? 8;
  const plan = targets.map(([path, m]) => [path, m, rankOf(path, r0), alphaOf(path, alpha0)] as [string, Linear, number, number]);
  for (const [p] of plan)
    for (const [q] of saved)
      if (p === q || p.startsWith(`${q}.`)) rangeError(fn, `'${p}' is a LoRA target inside '${q}', which 'modulesToSave' trains in full; a module is one or the other`);
  // Every layer is made before any is put in place, so a bad option (r, dropout) leaves the model as it
  // was (LoRALinear freezes its base as it is made: the flags are put back).
  const params = module.parameters();
  const flags = params.map((t) => t.requiresGrad);
  const made: LoRALinear[] = [];
  try {
    plan.forEach(([, base, r, alpha], i) => {
      made.push(new LoRALinear(base, { r, alpha, rslora: o.rslora, dora: o.dora, dropout: o.dropout, seed: o.seed === undefined ? undefined : o.seed + i }));
    });
  } catch (e) {
    discardLayers(made, params, flags);
    throw e;
  }
  replaceModules(module, new Map(plan.map(([, base], i) => [base, made[i]])));
  trainOnlyAdapters(module, made); // as get_peft_model
  for (const [, m] of saved) for (const t of m.parameters()) t.requiresGrad = true;
  return plan.map(([path]) => path);
}

/**
 * PEFT's merge_and_unload (merge: true, the default) and unload (merge: false): every nn.LoRALinear in
 * `module` is replaced, wherever it is a child, by its base nn.Linear — the adapter folded into the weight
 * (exact to rounding) or dropped — and the adapter's tensors are disposed. With merge: false the
 * nn.MultiLoRALinear layers are replaced too, their slots freed (merge: true refuses them: their adapters
 * serve different rows). Returns the layers' paths. (A `module` that is itself such a layer has no parent
 * here: call its unload().)
 */
export function unloadLora(module: Module, opts: { merge?: boolean } = {}): string[] {
  const fn = 'nn.unloadLora';
  if (!(module instanceof Module)) typeError(fn, `'module' must be an nn.Module, got ${describe(module)}`);
  const o = optionsOf(fn, opts, ['merge']);
  const merge = o.merge ?? true;
  if (typeof merge !== 'boolean') typeError(fn, `'merge' must be a boolean, got ${describe(merge)}`);
  if (module instanceof LoRALinear || module instanceof MultiLoRALinear) rangeError(fn, `'module' is itself an nn.${module.constructor.name}, which has no parent here: call its unload()`);
  const layers = [...module.namedModules()].filter(([p, m]) => p !== '' && (m instanceof LoRALinear || m instanceof MultiLoRALinear)) as [string, LoRALinear | MultiLoRALinear][];
  // every layer checked before any is unloaded, so that an error leaves the model as it was
  for (const [p, l] of layers) {
    if (l.unloaded) rangeError(fn, `'${p}' was already unloaded (its base is elsewhere); take it out of the model`);
    if (l instanceof MultiLoRALinear) {
      if (merge) rangeError(fn, `'${p}' is an nn.MultiLoRALinear, whose adapters serve different rows and cannot be merged into one weight; pass {merge: false}`);
      checkLive(`${fn} ('${p}')`, { 'base.weight': l.base.weight, 'base.bias': l.base.bias });
    } else {
      checkLive(`${fn} ('${p}')`, { 'base.weight': l.base.weight, 'base.bias': l.base.bias, loraA: l.loraA, loraB: l.loraB, magnitude: l.magnitude });
    }
  }
  replaceModules(module, new Map(layers.map(([, l]) => [l, l instanceof MultiLoRALinear ? l.unload() : l.unload({ merge })])));
  return layers.map(([p]) => p);
}
