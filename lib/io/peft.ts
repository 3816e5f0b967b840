// peft.ts — io.loadPeftAdapter(module, dir | {config, tensors}): PEFT's PeftModel.from_pretrained for a
// LoRA adapter. Reads `adapter_config.json` and `adapter_model.safetensors` (as PEFT's save_pretrained
// writes them), puts an nn.LoRALinear over each nn.Linear the file has weights for, with the config's r
// (rank_pattern), lora_alpha (alpha_pattern), use_rslora, use_dora and lora_dropout, and copies the
// weights in (io.loadLoraAdapter). The patterns are read in the file's order, the first match winning as
// in PEFT, integer-like keys too (a JavaScript object would move them first). The layers come from the file's keys, not from target_modules, so what
// is loaded is exactly what was saved. A layer that already is an nn.LoRALinear is loaded as it is, if
// its r, scale and DoRA agree with the config.
//
// Keys that name whole parameters or buffers of the model (modules_to_save's trained copies, saved
// embeddings) are copied into them; a tied module's tensor is shared by all its paths (PEFT trains a
// copy per path). Refused (a RangeError naming the field or key; a silent difference would give other
// outputs than PyTorch's): another peft_type, bias other than "none" (lora_bias, trained biases),
// init_lora_weights that rewrote the base (pissa, olora, corda, loftq), alora_invocation_tokens,
// layer_replication, keys that name neither a LoRA weight nor a parameter of the model, a layer missing
// lora_A, lora_B or (DoRA) its magnitude, shapes that do not fit. A layer the model reaches by several
// paths (a tied block) has its weights under each: they must agree. Everything is checked before the
// model changes; if the copy fails, the layers are put back.
//
// With {adapterName} (PEFT's load_adapter(path, adapter_name)) the adapter goes instead into a free slot
// of each nn.MultiLoRALinear the file names (nn.injectMultiLora made them), under that name, with its r
// (rank ≤ the slots' r) and scale; the module is put in eval mode, its parameters left as they are. Refused besides: DoRA, whole
// parameters (every adapter of the model would share them), a layer that is not an nn.MultiLoRALinear,
// a name a layer already has, a layer with no free slot — all before any slot is written.
//
// io.savePeftAdapter(module, dir) writes the nn.LoRALinear layers of `module` the same way, so that
// PeftModel.from_pretrained (or loadPeftAdapter) loads them: keys base_model.model.<path>.lora_A.weight /
// lora_B.weight / lora_magnitude_vector (a layer held by several parents under each path, as PyTorch's
// state_dict), the config's r and lora_alpha the most common ones with the others in rank_pattern /
// alpha_pattern (^ and the escaped full path: PEFT versions whose get_pattern_key matches (.*\.)?(p)$),
// target_modules one regular expression of exactly the paths (PEFT matches a list's names as
// suffixes). PEFT's config has one use_rslora, one use_dora and one lora_dropout: layers that differ in
// the first two are refused (the scale or the formula would change); the dropout written is the first
// layer's (it does not change what the weights compute). modulesToSave writes those modules' whole state
// dicts (buffers too: PEFT's load map reads every entry) and names them in modules_to_save.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tensor, checkTensor, isFloating } from '../tensor';
import { native } from '../native';
import { describe, shapeStr, typeError, rangeError, optionsOf } from '../errors';
import { Module } from '../nn/module';
import { Linear } from '../nn/linear';
import { LoRALinear } from '../nn/lowrank';
import { MultiLoRALinear, BASE_ADAPTER } from '../nn/multilora';
import { patternLookup, replaceModules, escapeRegExp, discardLayers, trainOnlyAdapters, modulesToSave } from '../nn/peft';
import { checkLive } from '../nn/linear';
import { ADAPTER_KEY, submodule, loadSafetensors, loadLoraAdapter, serializeSafetensors, onFile, checkRecord } from './safetensors';

/** An adapter already in memory: the parsed adapter_config.json and the tensors of its weights file. */
export interface PeftAdapter {
  config: Record<string, unknown>;
  tensors: Record<string, Tensor>;
}

export interface LoadPeftAdapterOptions {
  /** false (default, PEFT's is_trainable): every parameter is frozen and the module is put in eval mode
   * (inference); true: the adapters train and every other parameter is frozen, as get_peft_model leaves
   * a model. */
  trainable?: boolean;
  /** Load into the nn.MultiLoRALinear layers at the file's paths (nn.injectMultiLora), under this name, in
   * a free slot of each: PEFT's load_adapter(path, adapter_name) for a model that serves several. The
   * module is put in eval mode and otherwise left as it is (no parameter's requiresGrad changes); DoRA adapters and whole parameters (modules_to_save, which the
   * adapters of a bank would share) are refused. */
  adapterName?: string;
}

export interface LoadPeftAdapterResult {
  /** The layers made nn.LoRALinear. */
  injected: string[];
  /** Every layer whose adapter was loaded (made here or already one). */
  loaded: string[];
  /** The file's keys of whole parameters copied in (modules_to_save, saved embeddings). */
  copied: string[];
}

const FN = 'io.loadPeftAdapter';

/** The config's LoRA settings, checked; PEFT's defaults for the fields left out (r 8, lora_alpha 8). */
function loraSettings(config: Record<string, unknown>) {
  const field = (k: string) => `adapter_config '${k}'`;
  // only a missing field takes PEFT's default: null is not a number (PEFT would fail on it too)
  const num = (k: string, dflt: number): number => {
    const v = config[k] === undefined ? dflt : config[k];
    if (typeof v !== 'number' || !Number.isFinite(v)) typeError(FN, `${field(k)} must be a finite number, got ${describe(v)}`);
    return v as number;
  };
  // (a boolean's null is false, as PEFT's `if use_rslora:`)
  const bool = (k: string): boolean => {
    const v = config[k] === undefined || config[k] === null ? false : config[k];
    if (typeof v !== 'boolean') typeError(FN, `${field(k)} must be a boolean, got ${describe(v)}`);
    return v as boolean;
  };
  if (config.peft_type !== undefined && config.peft_type !== 'LORA') rangeError(FN, `${field('peft_type')} is ${describe(config.peft_type)}; only LORA adapters load onto nn.LoRALinear`);
  if (config.bias !== undefined && config.bias !== null && config.bias !== 'none')
    rangeError(FN, `${field('bias')} is ${describe(config.bias)}: the adapter trained biases, which nn.LoRALinear does not have (only "none")`);
  // fan_in_fan_out (GPT-2's Conv1D base layers) does not change lora_A / lora_B's layout, and PEFT itself
  // sets it to false for a Linear target: nothing to do
  const init = config.init_lora_weights;
  if (typeof init === 'string' && /^(pissa|olora|corda|loftq)/.test(init))
    rangeError(FN, `${field('init_lora_weights')} is '${init}': that initialisation rewrote the base weights, which PEFT repeats on load and this loader cannot`);
  const alora = config.alora_invocation_tokens;
  if (alora !== undefined && alora !== null && !(Array.isArray(alora) && alora.length === 0))
    rangeError(FN, `${field('alora_invocation_tokens')} is set: an activated LoRA applies to the tokens after them only, which nn.LoRALinear does not do`);
  if (config.layer_replication !== undefined && config.layer_replication !== null)
    rangeError(FN, `${field('layer_replication')} is set: PEFT rebuilds the layer stack before loading, which this loader does not`);
  if (config.lora_bias === true) rangeError(FN, `${field('lora_bias')} is true: lora_B has a bias, which nn.LoRALinear does not have`);
  return {
    r: num('r', 8),
    alpha: num('lora_alpha', 8),
    rslora: bool('use_rslora'),
    dora: bool('use_dora'),
    dropout: num('lora_dropout', 0),
    rankPattern: config.rank_pattern,
    alphaPattern: config.alpha_pattern,
  };
}

/** The same dtype and bytes (a tied layer's weights under its several paths). */
function sameValues(x: Tensor, y: Tensor): boolean {
  return x.dtype === y.dtype && Buffer.from(x.rawDataSync().buffer).equals(Buffer.from(y.rawDataSync().buffer));
}

/**
 * JSON text (already accepted by JSON.parse) → its value with every object a Map in the text's key
 * order: Python's json keeps that order and PEFT's get_pattern_key takes the first matching pattern,
 * while a JavaScript object puts integer-like keys ('2') first. A repeated key keeps its first place
 * and its last value, as in both.
 */
function parseOrdered(text: string): unknown {
  let i = 0;
  const literal = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null/y;
  const ws = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  };
  const str = (): string => {
    const start = i++;
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (): unknown => {
    ws();
    const c = text[i];
    if (c === '{' || c === '[') {
      i++;
      const obj = c === '{' ? new Map<string, unknown>() : null, arr: unknown[] = [];
      ws();
      if (text[i] === (obj ? '}' : ']')) return i++, obj ?? arr;
      for (;;) {
        if (obj) {
          ws();
          const k = str();
          ws();
          i++; // ':'
          obj.set(k, value());
        } else arr.push(value());
        ws();
        if (text[i++] !== ',') return obj ?? arr; // '}' or ']'
      }
    }
    if (c === '"') return str();
    literal.lastIndex = i;
    const m = literal.exec(text);
    if (!m) return rangeError(FN, `adapter_config.json: unexpected ${JSON.stringify(text.slice(i, i + 20))} at character ${i}`);
    i += m[0].length;
    return JSON.parse(m[0]);
  };
  return value();
}

/** Reads dir/adapter_config.json and dir/adapter_model.safetensors. */
function readAdapter(dir: string): PeftAdapter {
  const cfgPath = path.join(dir, 'adapter_config.json');
  const wPath = path.join(dir, 'adapter_model.safetensors');
  const text = onFile(FN, cfgPath, () => fs.readFileSync(cfgPath, 'utf8'));
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (e) {
    return rangeError(FN, `'${cfgPath}' is not valid JSON (${(e as Error).message})`);
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) rangeError(FN, `'${cfgPath}' must hold a JSON object, got ${describe(config)}`);
  // the patterns in the file's order (their first match wins), which JSON.parse's objects may not keep
  let ordered: Map<string, unknown>;
  try {
    ordered = parseOrdered(text) as Map<string, unknown>;
  } catch (e) {
    // JSON.parse takes nesting deeper than this recursion's stack
    if (e instanceof RangeError && /call stack/.test(e.message)) return rangeError(FN, `'${cfgPath}' nests its JSON too deeply to read`);
    throw e;
  }
  for (const k of ['rank_pattern', 'alpha_pattern']) {
    const v = ordered.get(k);
    if (v instanceof Map) (config as Record<string, unknown>)[k] = v;
  }
  if (!fs.existsSync(wPath))
    rangeError(FN, `'${wPath}' does not exist${fs.existsSync(path.join(dir, 'adapter_model.bin')) ? ' (adapter_model.bin, a pickle, cannot be read here: save the adapter with safe_serialization=True)' : ''}`);
  return { config: config as Record<string, unknown>, tensors: loadSafetensors(wPath) };
}

/**
 * Loads a PEFT LoRA adapter onto `module`: from a directory (adapter_config.json and
 * adapter_model.safetensors) or an adapter in memory ({config, tensors}). Returns the paths of the
 * layers made nn.LoRALinear (`injected`), of every layer loaded (`loaded`), and the keys of the whole
 * parameters and buffers copied in (`copied`: modules_to_save, saved embeddings).
 */
export function loadPeftAdapter(module: Module, source: string | PeftAdapter, opts: LoadPeftAdapterOptions = {}): LoadPeftAdapterResult {
  if (!(module instanceof Module)) typeError(FN, `'module' must be an nn.Module, got ${describe(module)}`);
  const o = optionsOf(FN, opts, ['trainable', 'adapterName']);
  const trainable = o.trainable ?? false;
  if (typeof trainable !== 'boolean') typeError(FN, `'trainable' must be a boolean, got ${describe(trainable)}`);
  const name = o.adapterName;
  if (name !== undefined) {
    if (typeof name !== 'string') typeError(FN, `'adapterName' must be a string, got ${describe(name)}`);
    if (name === '' || name === BASE_ADAPTER) rangeError(FN, `'adapterName' must be a non-empty string other than '${BASE_ADAPTER}', got '${name}'`);
    if (trainable) rangeError(FN, "'trainable' cannot be true with 'adapterName': nn.MultiLoRALinear's slots serve adapters, they are not trained");
  }
  let adapter: PeftAdapter;
  const fromDir = typeof source === 'string';
  if (fromDir) adapter = readAdapter(source);
  else {
    if (source === null || typeof source !== 'object') typeError(FN, `'source' must be a directory or {config, tensors}, got ${describe(source)}`);
    checkRecord(FN, 'source.config', source.config, '(the parsed adapter_config.json)');
    checkRecord(FN, 'source.tensors', source.tensors, '{name: Tensor}');
    adapter = source;
  }
  try {
    return name === undefined ? loadImpl(module, adapter, trainable) : loadIntoSlots(module, adapter, name);
  } finally {
    if (fromDir) for (const t of Object.values(adapter.tensors)) t.dispose();
  }
}

function loadImpl(module: Module, { config, tensors }: PeftAdapter, trainable: boolean): LoadPeftAdapterResult {
  const cfg = loraSettings(config);
  // the layers the file has weights for, each with its lora_A, lora_B and (DoRA) magnitude
  const layers = new Map<string, { A?: Tensor; B?: Tensor; m?: Tensor; keys: string[] }>();
  // Other keys name whole parameters of the model: the trained copies of modules_to_save (a classifier
  // head) and embedding layers PEFT saves, which its load_state_dict puts in place. PEFT keeps the
  // original module beside such a copy (and can switch back); here the copy's values replace its own.
  // (looked up by every path, a tied module's each, as the state dict lists them; a key of a tied module
  // writes the one tensor all its paths share, where PEFT's modules_to_save would train a copy)
  const state = module.stateDict();
  const whole: [Tensor, Tensor, string][] = [];
  const plain: string[] = [];
  for (const [key, t] of Object.entries(tensors)) {
    checkTensor(FN, key, t);
    const k = ADAPTER_KEY.exec(key);
    if (!k) {
      const name = key.replace(/^base_model\.model\./, '');
      const dst = Object.prototype.hasOwnProperty.call(state, name) ? state[name] : undefined;
      if (!dst) rangeError(FN, `'${key}' is neither a LoRA weight of a linear layer (lora_A, lora_B, lora_magnitude_vector) nor a parameter or buffer of the model`);
      if (dst.shape.length !== t.shape.length || dst.shape.some((d, i) => d !== t.shape[i]))
        rangeError(FN, `'${key}' is ${shapeStr(t.shape)} but the model's '${name}' is ${shapeStr(dst.shape)}`);
      if (isFloating(dst.dtype) !== isFloating(t.dtype)) typeError(FN, `'${key}' is ${t.dtype} but the model's '${name}' is ${dst.dtype}`);
      if (whole.some(([d]) => d === dst)) rangeError(FN, `the adapter has two values for the model's '${name}'`);
      whole.push([dst, t, key]);
      plain.push(name);
      continue;
    }
    if (k[3] === '.bias') rangeError(FN, `'${key}' is a bias of the adapter (lora_bias), which nn.LoRALinear does not have`);
    const e = layers.get(k[1]) ?? { keys: [] };
    layers.set(k[1], e);
    e.keys.push(key);
    const slot = k[2] === 'lora_A' ? 'A' : k[2] === 'lora_B' ? 'B' : 'm';
    if (e[slot]) rangeError(FN, `the file has two ${k[2]} for '${k[1]}' (two adapters in one file?)`);
    e[slot] = t;
  }
  if (layers.size === 0) rangeError(FN, 'the adapter has no LoRA weights');
  // a whole weight of a layer the adapter targets (or of one that already is an nn.LoRALinear) is not
  // something PEFT saves (it calls that weight base_layer.weight and would not load it): refused
  const loraPaths = [...layers.keys(), ...[...module.namedModules('', new Set(), false)].filter(([, m]) => m instanceof LoRALinear).map(([q]) => q)];
  for (const name of plain) {
    const owner = loraPaths.find((q) => name.startsWith(`${q}.`));
    if (owner !== undefined) rangeError(FN, `the adapter has the whole '${name}' of '${owner}', a LoRA layer; PEFT would not load it`);
  }
  // one entry a layer: a layer reachable by several paths (a tied block) has its weights under each, the
  // same values (PyTorch's state_dict keeps every path); the first path's are loaded
  const plan = new Map<Module, { p: string; base: Linear; r: number; alpha: number; keys: string[] }>();
  const rankOf = patternLookup(FN, 'adapter_config rank_pattern', cfg.rankPattern);
  const alphaOf = patternLookup(FN, 'adapter_config alpha_pattern', cfg.alphaPattern);
  for (const [p, { A, B, m, keys }] of layers) {
    const target = submodule(module, p);
    if (!target) rangeError(FN, `the adapter has weights for '${p}', which is not a module of the model`);
    if (!A || !B) rangeError(FN, `the adapter has ${A ? 'lora_A' : 'lora_B'} for '${p}' but no ${A ? 'lora_B' : 'lora_A'}`);
    if (cfg.dora !== (m !== undefined)) rangeError(FN, cfg.dora ? `use_dora is true but the adapter has no lora_magnitude_vector for '${p}'` : `'${p}' has a lora_magnitude_vector but use_dora is false`);
    const r = rankOf(p, cfg.r), alpha = alphaOf(p, cfg.alpha);
    if (A.shape.length !== 2 || A.shape[0] !== r)
      rangeError(FN, `the config gives '${p}' r = ${r} (r or rank_pattern) but its lora_A is ${shapeStr(A.shape)}`);
    const base = target instanceof LoRALinear ? target.base : target;
    if (target instanceof MultiLoRALinear) rangeError(FN, `'${p}' is an nn.MultiLoRALinear: load the adapter into its slots with the option {adapterName}`);
    if (!(base instanceof Linear)) typeError(FN, `the adapter has weights for '${p}', which is an nn.${target.constructor.name}, not an nn.Linear`);
    const want: [string, Tensor, number[]][] = [['lora_A', A, [r, base.inFeatures]], ['lora_B', B, [base.outFeatures, r]], ...(m ? [['lora_magnitude_vector', m, [base.outFeatures]] as [string, Tensor, number[]]] : [])];
    for (const [name, t, shape] of want)
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
        rangeError(FN, `'${p}' ${name} is ${shapeStr(t.shape)} but the layer (in ${base.inFeatures}, out ${base.outFeatures}, r ${r}) takes ${shapeStr(shape)}`);
    const first = plan.get(target);
    if (first) {
      const a = layers.get(first.p)!;
      if (first.r !== r || first.alpha !== alpha || !sameValues(a.A!, A) || !sameValues(a.B!, B) || (m && !sameValues(a.m!, m)))
        rangeError(FN, `'${first.p}' and '${p}' are one layer of the model (shared), but the adapter gives them different weights or settings`);
      continue;
    }
    if (target instanceof LoRALinear) {
      const scale = cfg.rslora ? alpha / Math.sqrt(r) : alpha / r;
      if (target.r !== r || target.scale !== scale || target.useDora !== cfg.dora)
        rangeError(FN, `'${p}' is an nn.LoRALinear with r = ${target.r}, scale = ${target.scale}, dora = ${target.useDora} but the adapter has r = ${r}, scale = ${scale}, dora = ${cfg.dora}`);
      if (target.merged) rangeError(FN, `the layer '${p}' is merged; unmerge() it first`);
    }
    plan.set(target, { p, base, r, alpha, keys });
  }
  const fresh = [...plan].filter(([target]) => !(target instanceof LoRALinear));
  const toLoad: Record<string, Tensor> = {};
  for (const { keys } of plan.values()) for (const k of keys) toLoad[k] = tensors[k];
  // the new layers (their bases frozen as they are made: the flags are put back on failure)
  const all = module.parameters();
  const flags = all.map((t) => t.requiresGrad);
  const made: LoRALinear[] = [];
  // the whole values moved to their parameters' devices first, so that nothing after the first change
  // can fail but the LoRA load, which is undone
  const moved: Tensor[] = [];
  try {
    for (const [dst, src] of whole) moved.push(src.device === dst.device ? src : src.to(dst.device));
    try {
      for (const [, { base, r, alpha }] of fresh) made.push(new LoRALinear(base, { r, alpha, rslora: cfg.rslora, dora: cfg.dora, dropout: cfg.dropout }));
      replaceModules(module, new Map(fresh.map(([, { base }], i) => [base as Module, made[i] as Module])));
      try {
        loadLoraAdapter(module, toLoad);
      } catch (e) {
        replaceModules(module, new Map(fresh.map(([, { base }], i) => [made[i] as Module, base as Module])));
        throw e;
      }
    } catch (e) {
      discardLayers(made, all, flags);
      throw e;
    }
    whole.forEach(([dst], i) => native().copyInto(dst._h, moved[i]._h));
  } finally {
    moved.forEach((t, i) => t !== whole[i][1] && t.dispose());
  }
  trainOnlyAdapters(module, [...layers.keys()].map((p) => submodule(module, p) as LoRALinear), trainable);
  for (const [dst] of whole) dst.requiresGrad = trainable; // as PEFT trains modules_to_save
  if (!trainable) module.eval();
  return { injected: fresh.map(([, { p }]) => p), loaded: [...layers.keys()], copied: whole.map(([, , k]) => k) };
}

/** loadPeftAdapter with adapterName: the adapter into a free slot of each nn.MultiLoRALinear it names. */
function loadIntoSlots(module: Module, { config, tensors }: PeftAdapter, name: string): LoadPeftAdapterResult {
  const cfg = loraSettings(config);
  if (cfg.dora) rangeError(FN, "adapter_config 'use_dora' is true: a DoRA adapter's magnitudes rescale the base's rows, which the slots of an nn.MultiLoRALinear cannot hold");
  const layers = new Map<string, { A?: Tensor; B?: Tensor }>();
  for (const [key, t] of Object.entries(tensors)) {
    checkTensor(FN, key, t);
    const k = ADAPTER_KEY.exec(key);
    if (!k || k[2] === 'lora_magnitude_vector')
      rangeError(FN, `'${key}' is not a LoRA weight (lora_A, lora_B); with 'adapterName' the adapter goes into nn.MultiLoRALinear slots and cannot carry whole parameters (modules_to_save), which every adapter of the model would share`);
    if (k[3] === '.bias') rangeError(FN, `'${key}' is a bias of the adapter (lora_bias), which nn.MultiLoRALinear does not have`);
    const e = layers.get(k[1]) ?? {};
    layers.set(k[1], e);
    const slot = k[2] === 'lora_A' ? 'A' : 'B';
    if (e[slot]) rangeError(FN, `the file has two ${k[2]} for '${k[1]}' (two adapters in one file?)`);
    e[slot] = t;
  }
  if (layers.size === 0) rangeError(FN, 'the adapter has no LoRA weights');
  const rankOf = patternLookup(FN, 'adapter_config rank_pattern', cfg.rankPattern);
  const alphaOf = patternLookup(FN, 'adapter_config alpha_pattern', cfg.alphaPattern);
  // every layer checked (a tied one once, its paths agreeing) before any slot is written
  const plan = new Map<MultiLoRALinear, { p: string; A: Tensor; B: Tensor; alpha: number; r: number }>();
  for (const [p, { A, B }] of layers) {
    const target = submodule(module, p);
    if (!target) rangeError(FN, `the adapter has weights for '${p}', which is not a module of the model`);
    if (!(target instanceof MultiLoRALinear) || target.unloaded)
      rangeError(FN, `'${p}' is an nn.${target.constructor.name}${target instanceof MultiLoRALinear ? ' that was unloaded' : ''}; with 'adapterName' the adapter loads into nn.MultiLoRALinear layers (nn.injectMultiLora makes them)`);
    if (!A || !B) rangeError(FN, `the adapter has ${A ? 'lora_A' : 'lora_B'} for '${p}' but no ${A ? 'lora_B' : 'lora_A'}`);
    const r = rankOf(p, cfg.r), alpha = alphaOf(p, cfg.alpha);
    if (A.shape.length !== 2 || A.shape[0] !== r) rangeError(FN, `the config gives '${p}' r = ${r} (r or rank_pattern) but its lora_A is ${shapeStr(A.shape)}`);
    const first = plan.get(target);
    if (first) {
      if (first.r !== r || first.alpha !== alpha || !sameValues(first.A, A) || !sameValues(first.B, B))
        rangeError(FN, `'${first.p}' and '${p}' are one layer of the model (shared), but the adapter gives them different weights or settings`);
      continue;
    }
    target.checkAdapter(`${FN} ('${p}')`, name, A, B, { alpha, rslora: cfg.rslora });
    if (target.adapters.length >= target.slots) rangeError(FN, `'${p}' has all its ${target.slots} slots taken (${target.adapters.map((n) => `'${n}'`).join(', ')}); nn.deleteAdapter() one first`);
    plan.set(target, { p, A, B, alpha, r });
  }
  const done: MultiLoRALinear[] = [];
  try {
    for (const [target, { A, B, alpha }] of plan) {
      target.addAdapter(name, A, B, { alpha, rslora: cfg.rslora });
      done.push(target);
    }
  } catch (e) {
    for (const l of done) l.deleteAdapter(name);
    throw e;
  }
  module.eval(); // as PEFT's load_adapter without is_trainable
  return { injected: [], loaded: [...layers.keys()], copied: [] };
}

/** The value most layers have (the first of the most common on a tie). */
function mostCommon(values: readonly number[]): number {
  const count = new Map<number, number>();
  for (const v of values) count.set(v, (count.get(v) ?? 0) + 1);
  let best = values[0];
  for (const v of values) if (count.get(v)! > count.get(best)!) best = v;
  return best;
}

/** A path as a regular expression matching exactly it: PEFT reads a pattern p as (.*\.)?(p)$, so an
 * unanchored "0" would match "1.0" too; ^ keeps it to the path itself (PEFT's advice for an exact match). */
const exactPattern = (p: string): string => '^' + escapeRegExp(p);

export interface SavePeftAdapterOptions {
  /** base_model_name_or_path in the config (what PeftModel.from_pretrained's base should be). */
  baseModel?: string;
  /** Modules saved in full beside the adapters (PEFT's modules_to_save, as injectLora's option): their
   * parameters are written under their own keys, and the names go in the config. */
  modulesToSave?: readonly string[];
}

/**
 * Writes the nn.LoRALinear layers of `module` as a PEFT adapter directory (created if need be):
 * adapter_config.json and adapter_model.safetensors, as PEFT's save_pretrained. Returns the layers' paths.
 */
export function savePeftAdapter(module: Module, dir: string, opts: SavePeftAdapterOptions = {}): string[] {
  const fn = 'io.savePeftAdapter';
  if (!(module instanceof Module)) typeError(fn, `'module' must be an nn.Module, got ${describe(module)}`);
  if (typeof dir !== 'string') typeError(fn, `'dir' must be a string, got ${describe(dir)}`);
  const o = optionsOf(fn, opts, ['baseModel', 'modulesToSave']);
  const full = modulesToSave(fn, module, o.modulesToSave);
  for (const [p, m] of full)
    if ([...m.modules()].some((c) => c instanceof LoRALinear)) rangeError(fn, `'modulesToSave' takes '${p}', which holds an nn.LoRALinear; a module is a LoRA target or saved in full, not both`);
  if (o.baseModel !== undefined && typeof o.baseModel !== 'string') typeError(fn, `'baseModel' must be a string, got ${describe(o.baseModel)}`);
  if (module instanceof LoRALinear) rangeError(fn, "'module' is itself an nn.LoRALinear: PEFT names layers by their path in a model; save a module that holds it");
  // every path, a tied layer's each (as PyTorch's state_dict, which save_pretrained writes)
  const layers = [...module.namedModules('', new Set(), false)].filter(([, m]) => m instanceof LoRALinear) as [string, LoRALinear][];
  if (layers.length === 0) rangeError(fn, 'the module has no nn.LoRALinear layer');
  for (const [p, l] of layers) {
    if (l.unloaded) rangeError(fn, `'${p}' was unloaded (its adapter is gone); take it out of the model`);
    checkLive(`${fn} ('${p}')`, { loraA: l.loraA, loraB: l.loraB, magnitude: l.magnitude });
    if (l.merged) rangeError(fn, `'${p}' is merged (its adapter is inside the base weight); unmerge() it first`);
  }
  const [p0, l0] = layers[0];
  for (const [p, l] of layers) {
    if (l.rslora !== l0.rslora) rangeError(fn, `'${p0}' has rslora = ${l0.rslora} but '${p}' has ${l.rslora}; PEFT's use_rslora is one setting for every layer`);
    if (l.useDora !== l0.useDora) rangeError(fn, `'${p0}' has dora = ${l0.useDora} but '${p}' has ${l.useDora}; PEFT's use_dora is one setting for every layer`);
  }
  const r = mostCommon(layers.map(([, l]) => l.r));
  const alpha = mostCommon(layers.map(([, l]) => l.alpha));
  const rankPattern: Record<string, number> = {}, alphaPattern: Record<string, number> = {};
  for (const [p, l] of layers) {
    if (l.r !== r) rankPattern[exactPattern(p)] = l.r;
    if (l.alpha !== alpha) alphaPattern[exactPattern(p)] = l.alpha;
  }
  const config = {
    alpha_pattern: alphaPattern, auto_mapping: null, base_model_name_or_path: o.baseModel ?? null, bias: 'none',
    fan_in_fan_out: false, inference_mode: true, init_lora_weights: true, layers_pattern: null, layers_to_transform: null,
    lora_alpha: alpha, lora_dropout: l0.dropout, modules_to_save: full.length ? o.modulesToSave : null, peft_type: 'LORA', r, rank_pattern: rankPattern,
    revision: null, target_modules: `^(?:${layers.map(([p]) => escapeRegExp(p)).join('|')})$`, task_type: null, use_dora: l0.useDora, use_rslora: l0.rslora,
  };
  const tensors: Record<string, Tensor> = {};
  for (const [p, l] of layers) {
    const k = `base_model.model.${p}`;
    tensors[`${k}.lora_A.weight`] = l.loraA;
    tensors[`${k}.lora_B.weight`] = l.loraB;
    if (l.magnitude) tensors[`${k}.lora_magnitude_vector`] = l.magnitude;
  }
  // every entry of their state dicts, persistent buffers too (PEFT's load map reads each)
  for (const [p, m] of full) for (const [name, t] of Object.entries(m.stateDict())) tensors[`base_model.model.${p}.${name}`] = t;
  // Both files written under temporary names and then renamed, the weights first: a failure leaves no
  // config beside missing or stale weights.
  const files: [string, Uint8Array | string][] = [
    ['adapter_model.safetensors', serializeSafetensors(tensors, { format: 'pt' })],
    ['adapter_config.json', JSON.stringify(config, null, 2) + '\n'],
  ];
  let at = dir;
  try {
    fs.mkdirSync(dir, { recursive: true });
    for (const [name, data] of files) fs.writeFileSync((at = path.join(dir, `${name}.tmp`)), data);
    for (const [name] of files) fs.renameSync((at = path.join(dir, `${name}.tmp`)), path.join(dir, name));
  } catch (e) {
    for (const [name] of files) {
      try {
        fs.rmSync(path.join(dir, `${name}.tmp`), { force: true });
      } catch {
        // (dir may be a file, or gone): the error to report is the first one
      }
    }
    rangeError(fn, `cannot write '${at}' (${(e as Error).message})`);
  }
  return layers.map(([p]) => p);
}
