// peft.test.ts — nn.injectLora (PEFT's get_peft_model for LoRA) and io.loadPeftAdapter (PEFT's
// PeftModel.from_pretrained): PEFT's target_modules rules (a regex for the whole path, or names ending it),
// exclude_modules, rank_pattern / alpha_pattern ((.*\.)?(p)$), the freezing get_peft_model does; an adapter
// directory written here as PEFT's save_pretrained writes one (adapter_config.json, and
// adapter_model.safetensors with base_model.model.<path>.lora_A.weight keys, one pair in float16) loaded
// and checked layer by layer against y = x·Wᵀ + b + scale·(x·Aᵀ)·Bᵀ in float64 (DoRA and rsLoRA too);
// modules_to_save's copies loaded; every refusal (another peft_type, bias, a PiSSA / LoftQ init, keys
// that fit no layer, r that disagrees with lora_A, an existing LoRALinear of another scale) leaves the
// model as it was; tied
// layers; savePeftAdapter's files (anchored patterns, every path of a tied layer) loaded back to the same
// outputs; unloadLora (merge_and_unload / unload), atomic; no leaks.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as S from '../lib/index';
import { nn, io, type Tensor } from '../lib/index';
import { liveCounts, assertNoLeak, throwsLike, rng, freshSeed, uniform } from './helpers';
import { native } from '../lib/native';

const IN = 6, HID = 5;

/** Two attention-like blocks in a Sequential: paths 0.q_proj, 0.v_proj, 0.o_proj, 0.act, 1.… */
class Block extends nn.Module {
  declare q_proj: nn.Linear;
  declare v_proj: nn.Linear;
  declare o_proj: nn.Linear;
  declare act: nn.GELU;
  constructor(seed: number) {
    super();
    this.registerModule('q_proj', new nn.Linear(IN, HID, { dtype: 'float64', seed }));
    this.registerModule('v_proj', new nn.Linear(IN, HID, { dtype: 'float64', seed: seed + 2 }));
    this.registerModule('o_proj', new nn.Linear(HID, IN, { dtype: 'float64', seed: seed + 4 }));
    this.registerModule('act', new nn.GELU());
  }
}
const model = (seed: number) => new nn.Sequential(new Block(seed), new Block(seed + 10));

/** The Linear (or LoRALinear) at a path. */
const at = (m: nn.Module, p: string): nn.Module => p.split('.').reduce((o, k) => (o as unknown as Record<string, nn.Module>)[k], m);
const kinds = (m: nn.Module) => [...m.namedModules()].filter(([, x]) => x instanceof nn.Linear || x instanceof nn.LoRALinear).map(([p, x]) => `${p}:${x.constructor.name}`);
const flags = (m: nn.Module) => m.namedParameters().map(([k, t]) => `${k}=${t.requiresGrad}`);

// ---- injectLora -----------------------------------------------------------------------------------

test('injectLora: PEFT\'s target / exclude rules, rank and alpha patterns, the rest frozen', () => {
  const before = liveCounts();
  const m = model(1);
  const x = S.tensor(uniform(rng(3), 2 * IN), { shape: [2, IN], dtype: 'float64' });
  const y0 = S.tidy(() => at(m, '0.q_proj').forward(x).dataSync());
  const paths = nn.injectLora(m, { targetModules: ['q_proj', 'v_proj'], r: 2, alpha: 4, rankPattern: { v_proj: 3 }, alphaPattern: { '1\\.q_proj': 16 }, seed: 5 });
  assert.equal(paths, ['0.q_proj', '0.v_proj', '1.q_proj', '1.v_proj']);
  const l = (p: string) => at(m, p) as nn.LoRALinear;
  assert.equal([l('0.q_proj').r, l('0.v_proj').r, l('1.q_proj').r, l('1.v_proj').r], [2, 3, 2, 3]);
  assert.equal([l('0.q_proj').scale, l('0.v_proj').scale, l('1.q_proj').scale, l('1.v_proj').scale], [2, 4 / 3, 8, 4 / 3]);
  assert.ok(at(m, '0.o_proj') instanceof nn.Linear);
  // B starts at zero: the model computes what it did
  assert.equal(Array.from(S.tidy(() => l('0.q_proj').forward(x).dataSync())), Array.from(y0));
  // only the adapters train
  const trainable = m.namedParameters().filter(([, t]) => t.requiresGrad).map(([k]) => k);
  assert.equal(trainable, ['0.q_proj.loraA', '0.q_proj.loraB', '0.v_proj.loraA', '0.v_proj.loraB', '1.q_proj.loraA', '1.q_proj.loraB', '1.v_proj.loraA', '1.v_proj.loraB']);
  x.dispose();
  m.dispose();

  // a regular expression for the whole path; exclusions; DoRA and dropout passed on
  const m2 = model(2);
  assert.equal(nn.injectLora(m2, { targetModules: '.*\\.(q|o)_proj', excludeModules: ['1.o_proj'], dora: true, dropout: 0.1 }), ['0.q_proj', '0.o_proj', '1.q_proj']);
  assert.ok((at(m2, '0.o_proj') as nn.LoRALinear).useDora && (at(m2, '0.o_proj') as nn.LoRALinear).dropout === 0.1);
  assert.equal((at(m2, '0.q_proj') as nn.LoRALinear).r, 8, "PEFT's default r");
  assert.equal((at(m2, '0.q_proj') as nn.LoRALinear).scale, 1, "PEFT's default alpha 8");
  // '0\.q_proj' as a regex is the whole path: 1.q_proj is not matched; a name must end the path after a '.'
  const m3 = model(3);
  assert.equal(nn.injectLora(m3, { targetModules: '0\\.q_proj' }), ['0.q_proj']);
  throwsLike(() => nn.injectLora(m3, { targetModules: ['proj'] }), RangeError, /no module of the model matches/);
  m2.dispose();
  m3.dispose();
  assertNoLeak(before, 'injectLora');
});

test('injectLora: no match, a non-Linear, a LoRALinear, a bad regex or a bad option is an error, the model untouched', () => {
  const before = liveCounts();
  const m = model(4);
  const k0 = kinds(m), f0 = flags(m);
  throwsLike(() => nn.injectLora(m, { targetModules: ['k_proj'] }), RangeError, /nn\.injectLora.*no module of the model matches 'targetModules' \["k_proj"\]/);
  throwsLike(() => nn.injectLora(m, { targetModules: ['act'] }), TypeError, /'0\.act' matches 'targetModules' but is an GELU; only nn\.Linear/);
  throwsLike(() => nn.injectLora(m, { targetModules: '(' }), RangeError, /'targetModules' has "\(", which is not a valid regular expression/);
  throwsLike(() => nn.injectLora(m, { targetModules: ['q_proj'], rankPattern: { '[': 2 } }), RangeError, /'rankPattern' has "\[", which is not a valid regular expression/);
  throwsLike(() => nn.injectLora(m, { targetModules: ['q_proj'], rankPattern: { q_proj: 'two' as unknown as number } }), TypeError, /'rankPattern' gives string 'two' for 'q_proj'/);
  throwsLike(() => nn.injectLora(m, {} as nn.InjectLoraOptions), TypeError, /'targetModules' is required/);
  throwsLike(() => nn.injectLora(m, { targetModules: 3 as unknown as string }), TypeError, /'targetModules' must be a regular expression \(a string\) or an array of module names/);
  throwsLike(() => nn.injectLora(m, { target_modules: ['q_proj'] } as unknown as nn.InjectLoraOptions), TypeError, /unknown option 'target_modules' \(did you mean 'targetModules'\?\)/);
  // the third layer's rank is bad: the first two were made, then undone
  throwsLike(() => nn.injectLora(m, { targetModules: ['q_proj', 'v_proj'], rankPattern: { '1\\.q_proj': 0 } }), RangeError, /nn\.LoRALinear.*'r'/);
  throwsLike(() => nn.injectLora(m, { targetModules: ['q_proj'], dropout: 2 }), RangeError, /'dropout' must be a probability/);
  assert.equal(kinds(m), k0, 'no layer replaced');
  assert.equal(flags(m), f0, 'requiresGrad as before');
  nn.injectLora(m, { targetModules: ['q_proj'] });
  throwsLike(() => nn.injectLora(m, { targetModules: ['q_proj'] }), RangeError, /'0\.q_proj' is already an nn\.LoRALinear/);
  m.dispose();
  assertNoLeak(before, 'injectLora errors');
});

// ---- loadPeftAdapter ------------------------------------------------------------------------------

/** fn(dir) with a fresh temporary directory, removed afterwards. */
function inTempDir(fn: (dir: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'structura-peft-'));
  try {
    fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A PEFT adapter directory: adapter_config.json and adapter_model.safetensors (PEFT's key names). */
function writeAdapter(dir: string, config: Record<string, unknown>, tensors: Record<string, Tensor>): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify(config, null, 2));
  io.saveSafetensors(path.join(dir, 'adapter_model.safetensors'), tensors);
}

const PEFT_CONFIG = {
  alpha_pattern: {}, auto_mapping: null, base_model_name_or_path: 'tiny', bias: 'none', fan_in_fan_out: false,
  inference_mode: true, init_lora_weights: true, layers_pattern: null, layers_to_transform: null, lora_alpha: 4,
  lora_dropout: 0.05, modules_to_save: null, peft_type: 'LORA', r: 2, rank_pattern: {}, revision: null,
  target_modules: ['q_proj', 'v_proj'], task_type: 'CAUSAL_LM', use_dora: false, use_rslora: false,
};

/** The adapter's weights for `paths` (r per path), float64 values, stored in `dtype`. */
function adapterTensors(r: () => number, layers: [string, number][], dora: boolean, dtype: S.DType = 'float32'): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [p, rank] of layers) {
    out[`base_model.model.${p}.lora_A.weight`] = S.tensor(uniform(r, rank * IN, -1, 1), { shape: [rank, IN], dtype });
    out[`base_model.model.${p}.lora_B.weight`] = S.tensor(uniform(r, HID * rank, -1, 1), { shape: [HID, rank], dtype });
    if (dora) out[`base_model.model.${p}.lora_magnitude_vector`] = S.tensor(uniform(r, HID, 0.5, 2), { shape: [HID], dtype });
  }
  return out;
}

/** y = x·Wᵀ + b + scale·(x·Aᵀ)·Bᵀ (DoRA: m/‖W + scale·B·A‖_row ⊙ (x·Wᵀ + scale·(x·Aᵀ)·Bᵀ) + b), float64. */
function loraRef(x: ArrayLike<number>, rows: number, W: ArrayLike<number>, b: ArrayLike<number>, A: ArrayLike<number>, B: ArrayLike<number>, rank: number, scale: number, m: ArrayLike<number> | null): Float64Array {
  const y = new Float64Array(rows * HID);
  const f = new Float64Array(HID).fill(1);
  if (m)
    for (let j = 0; j < HID; j++) {
      let s = 0;
      for (let k = 0; k < IN; k++) {
        let d = 0;
        for (let q = 0; q < rank; q++) d += B[j * rank + q] * A[q * IN + k];
        s += (W[j * IN + k] + scale * d) ** 2;
      }
      f[j] = m[j] / Math.sqrt(s);
    }
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < HID; j++) {
      let base = 0, low = 0;
      for (let k = 0; k < IN; k++) base += x[i * IN + k] * W[j * IN + k];
      for (let q = 0; q < rank; q++) {
        let t = 0;
        for (let k = 0; k < IN; k++) t += x[i * IN + k] * A[q * IN + k];
        low += t * B[j * rank + q];
      }
      y[i * HID + j] = f[j] * (base + scale * low) + b[j];
    }
  return y;
}

for (const variant of ['plain', 'dora+rslora'] as const)
  test(`loadPeftAdapter (${variant}): a directory as save_pretrained writes it, every layer against the float64 formula`, () => {
    const seed = freshSeed();
    const r = rng(seed);
    const before = liveCounts();
    const dora = variant !== 'plain';
    inTempDir((dir) => {
      const layers: [string, number][] = [['0.q_proj', 2], ['0.v_proj', 3], ['1.q_proj', 2], ['1.v_proj', 3]];
      const tensors = adapterTensors(r, layers, dora);
      // one pair in float16, as a half-precision adapter file holds (converted on load)
      const k16 = 'base_model.model.1.q_proj.lora_A.weight';
      const t16 = tensors[k16].cast('float16');
      tensors[k16].dispose();
      tensors[k16] = t16;
      const config = { ...PEFT_CONFIG, rank_pattern: { v_proj: 3 }, alpha_pattern: { '1.q_proj': 16 }, use_dora: dora, use_rslora: dora };
      writeAdapter(dir, config, tensors);
      const m = model(seed % 1000);
      const res = io.loadPeftAdapter(m, dir);
      assert.equal(res.injected, ['0.q_proj', '0.v_proj', '1.q_proj', '1.v_proj']);
      assert.equal(res.loaded.slice().sort(), res.injected);
      assert.is(m.training, false, 'inference: eval mode');
      assert.ok(m.parameters().every((t) => !t.requiresGrad), 'inference: nothing trains');
      const x = S.tensor(uniform(r, 3 * IN), { shape: [3, IN], dtype: 'float64' });
      for (const [p, rank] of layers) {
        const l = at(m, p) as nn.LoRALinear;
        const alpha = p === '1.q_proj' ? 16 : 4;
        const scale = dora ? alpha / Math.sqrt(rank) : alpha / rank;
        assert.is(l.r, rank);
        assert.is(l.scale, scale);
        assert.is(l.dropout, 0.05);
        const A = S.tidy(() => tensors[`base_model.model.${p}.lora_A.weight`].cast('float64').dataSync());
        const B = S.tidy(() => tensors[`base_model.model.${p}.lora_B.weight`].cast('float64').dataSync());
        const mag = dora ? S.tidy(() => tensors[`base_model.model.${p}.lora_magnitude_vector`].cast('float64').dataSync()) : null;
        const want = loraRef(x.dataSync(), 3, l.base.weight.dataSync(), l.base.bias!.dataSync(), A, B, rank, scale, mag);
        const got = S.tidy(() => l.forward(x).dataSync());
        for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= 1e-12 * (1 + Math.abs(want[i])), `${p}[${i}]: ${got[i]} vs ${want[i]}`);
      }
      // trainable: the adapters train, nothing else does; the caller's tensors are left alone
      const m2 = model(7);
      const res2 = io.loadPeftAdapter(m2, { config, tensors }, { trainable: true });
      assert.equal(res2.injected.length, 4);
      assert.is(m2.training, true);
      const trainable = m2.namedParameters().filter(([, t]) => t.requiresGrad).map(([k]) => k.split('.').pop());
      assert.equal(new Set(trainable), new Set(dora ? ['loraA', 'loraB', 'magnitude'] : ['loraA', 'loraB']));
      assert.equal(trainable.length, dora ? 12 : 8);
      assert.ok(Object.values(tensors).every((t) => !t.isDisposed), "the caller's tensors are not disposed");
      // an nn.LoRALinear already there with the same r and scale is loaded, not replaced
      const m3 = model(8);
      nn.injectLora(m3, { targetModules: ['q_proj'], r: 2, alpha: 4, rankPattern: {}, alphaPattern: { '1.q_proj': 16 }, rslora: dora, dora });
      const res3 = io.loadPeftAdapter(m3, dir);
      assert.equal(res3.injected, ['0.v_proj', '1.v_proj']);
      x.dispose();
      for (const t of Object.values(tensors)) t.dispose();
      m.dispose();
      m2.dispose();
      m3.dispose();
    });
    assertNoLeak(before, 'loadPeftAdapter');
  });

test('loadPeftAdapter: what does not fit is refused, naming the field or key, and the model is left as it was', () => {
  const before = liveCounts();
  const r = rng(freshSeed());
  inTempDir((dir) => {
    const m = model(9);
    nn.injectLora(m, { targetModules: ['1.q_proj'], r: 2, alpha: 2 }); // scale 1, not the adapter's 2
    const k0 = kinds(m), f0 = flags(m);
    const good = adapterTensors(r, [['0.q_proj', 2], ['0.v_proj', 2]], false);
    const refuse = (config: Record<string, unknown>, tensors: Record<string, Tensor>, type: typeof TypeError | typeof RangeError, re: RegExp) => {
      throwsLike(() => io.loadPeftAdapter(m, { config: { ...PEFT_CONFIG, ...config }, tensors }), type, re);
      assert.equal(kinds(m), k0, `${re}: no layer replaced`);
      assert.equal(flags(m), f0, `${re}: requiresGrad as before`);
      assert.is(m.training, true);
    };
    refuse({ peft_type: 'IA3' }, good, RangeError, /io\.loadPeftAdapter.*adapter_config 'peft_type' is string 'IA3'; only LORA/);
    refuse({ bias: 'all' }, good, RangeError, /adapter_config 'bias' is string 'all': the adapter trained biases/);
    refuse({ init_lora_weights: 'pissa_niter_4' }, good, RangeError, /'init_lora_weights' is 'pissa_niter_4': that initialisation rewrote the base weights/);
    refuse({ init_lora_weights: 'loftq' }, good, RangeError, /'init_lora_weights' is 'loftq'/);
    refuse({ alora_invocation_tokens: [5, 6] }, good, RangeError, /'alora_invocation_tokens' is set/);
    refuse({ layer_replication: [[0, 1], [0, 1]] }, good, RangeError, /'layer_replication' is set/);
    refuse({ r: 'two' }, good, TypeError, /adapter_config 'r' must be a finite number/);
    // a number's null is not "left out" (it does not take PEFT's default); a boolean's null is false, as
    // PEFT's `if use_rslora:` (tested where adapters load)
    refuse({ lora_alpha: null }, good, TypeError, /adapter_config 'lora_alpha' must be a finite number, got null/);
    refuse({ r: 3 }, good, RangeError, /the config gives '0\.q_proj' r = 3 \(r or rank_pattern\) but its lora_A is \[2, 6\]/);
    refuse({ use_dora: true }, good, RangeError, /use_dora is true but the adapter has no lora_magnitude_vector for '0\.q_proj'/);
    refuse({}, { ...good, 'base_model.model.2.q_proj.lora_A.weight': good['base_model.model.0.q_proj.lora_A.weight'] }, RangeError, /weights for '2\.q_proj', which is not a module of the model/);
    refuse({}, { ...good, 'base_model.model.0.o_proj.lora_A.weight': good['base_model.model.0.q_proj.lora_A.weight'] }, RangeError, /the adapter has lora_A for '0\.o_proj' but no lora_B/);
    refuse({}, { ...good, 'base_model.model.0.act.lora_A.weight': good['base_model.model.0.q_proj.lora_A.weight'], 'base_model.model.0.act.lora_B.weight': good['base_model.model.0.q_proj.lora_B.weight'] }, TypeError, /'0\.act', which is an nn\.GELU, not an nn\.Linear/);
    refuse({}, { ...good, 'base_model.model.0.q_proj.weight': good['base_model.model.0.q_proj.lora_A.weight'] }, RangeError, /'base_model\.model\.0\.q_proj\.weight' is \[2, 6\] but the model's '0\.q_proj\.weight' is \[5, 6\]/);
    const w56 = S.zeros([5, 6]);
    refuse({}, { ...good, 'base_model.model.0.q_proj.weight': w56 }, RangeError, /the adapter has the whole '0\.q_proj\.weight' of '0\.q_proj', a LoRA layer; PEFT would not load it/);
    const i6 = S.zeros([6], { dtype: 'int32' });
    refuse({}, { ...good, 'base_model.model.0.o_proj.bias': i6 }, TypeError, /'base_model\.model\.0\.o_proj\.bias' is int32 but the model's '0\.o_proj\.bias' is float64/);
    const gone = S.zeros([6, 5]);
    gone.dispose();
    refuse({}, { ...good, 'base_model.model.0.o_proj.weight': gone }, TypeError, /'base_model\.model\.0\.o_proj\.weight'.*disposed/);
    w56.dispose();
    i6.dispose();
    refuse({}, { ...good, 'base_model.model.0.k_proj.weight': good['base_model.model.0.q_proj.lora_A.weight'] }, RangeError, /'base_model\.model\.0\.k_proj\.weight' is neither a LoRA weight of a linear layer .* nor a parameter or buffer of the model/);
    refuse({}, { ...good, 'base_model.model.0.o_proj.lora_A.weight': good['base_model.model.0.q_proj.lora_A.weight'], 'base_model.model.0.o_proj.lora_B.weight': good['base_model.model.0.q_proj.lora_B.weight'] }, RangeError, /'0\.o_proj' lora_A is \[2, 6\] but the layer \(in 5, out 6, r 2\) takes \[2, 5\]/);
    const l1 = adapterTensors(r, [['1.q_proj', 2]], false);
    refuse({}, { ...good, ...l1 }, RangeError, /'1\.q_proj' is an nn\.LoRALinear with r = 2, scale = 1, dora = false but the adapter has r = 2, scale = 2, dora = false/);
    refuse({}, {}, RangeError, /the adapter has no LoRA weights/);
    throwsLike(() => io.loadPeftAdapter(m, { config: PEFT_CONFIG, tensors: good }, { trainable: 1 as unknown as boolean }), TypeError, /'trainable' must be a boolean/);
    throwsLike(() => io.loadPeftAdapter(m, 42 as unknown as string), TypeError, /'source' must be a directory or \{config, tensors\}/);
    throwsLike(() => io.loadPeftAdapter({} as nn.Module, dir), TypeError, /'module' must be an nn\.Module/);
    // the files: missing, not JSON, a pickle instead of safetensors
    throwsLike(() => io.loadPeftAdapter(m, path.join(dir, 'nope')), RangeError, /io\.loadPeftAdapter: 'path' ".*nope\/adapter_config\.json": ENOENT/);
    fs.writeFileSync(path.join(dir, 'adapter_config.json'), '{"r": 2,');
    throwsLike(() => io.loadPeftAdapter(m, dir), RangeError, /adapter_config\.json' is not valid JSON/);
    fs.writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify(PEFT_CONFIG));
    fs.writeFileSync(path.join(dir, 'adapter_model.bin'), 'pickle');
    throwsLike(() => io.loadPeftAdapter(m, dir), RangeError, /adapter_model\.safetensors' does not exist \(adapter_model\.bin, a pickle, cannot be read here/);
    // refused after reading the file: its tensors are freed all the same
    io.saveSafetensors(path.join(dir, 'adapter_model.safetensors'), { ...good, ...l1 });
    throwsLike(() => io.loadPeftAdapter(m, dir), RangeError, /'1\.q_proj' is an nn\.LoRALinear/);
    assert.equal(kinds(m), k0);
    for (const t of [...Object.values(good), ...Object.values(l1)]) t.dispose();
    m.dispose();
  });
  assertNoLeak(before, 'loadPeftAdapter errors');
});

// ---- savePeftAdapter / unloadLora -------------------------------------------------------------------

/** Every Linear / LoRALinear layer's output on x, by path. */
function outputs(m: nn.Module, x: Tensor): Map<string, Float64Array> {
  const out = new Map<string, Float64Array>();
  for (const [p, l] of m.namedModules())
    if ((l instanceof nn.Linear && !(at(m, p.split('.').slice(0, -1).join('.') || '') instanceof nn.LoRALinear)) || l instanceof nn.LoRALinear) {
      const inF = l instanceof nn.LoRALinear ? l.base.inFeatures : (l as nn.Linear).inFeatures;
      out.set(p, S.tidy(() => Float64Array.from(l.forward(inF === IN ? x : S.narrow(x, 1, 0, inF)).dataSync())));
    }
  return out;
}

for (const variant of ['plain', 'dora+rslora'] as const)
  test(`savePeftAdapter (${variant}): PEFT's files, loaded back by loadPeftAdapter to the same outputs`, () => {
    const seed = freshSeed();
    const before = liveCounts();
    const dora = variant !== 'plain';
    inTempDir((dir) => {
      const m = model(seed % 1000);
      nn.injectLora(m, { targetModules: ['q_proj', 'v_proj', '1.o_proj'], r: 2, alpha: 4, rankPattern: { v_proj: 3 }, alphaPattern: { '1\\.q_proj': 16 }, dora, rslora: dora, dropout: 0.1, seed });
      for (const [, t] of m.namedParameters()) if (t.requiresGrad) S.nn.init.uniform_(t, 0.5, 1.5, { seed: seed + 1 });
      assert.equal(io.savePeftAdapter(m, dir, { baseModel: 'tiny' }), ['0.q_proj', '0.v_proj', '1.q_proj', '1.v_proj', '1.o_proj']);
      const config = JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8'));
      assert.is(config.peft_type, 'LORA');
      assert.is(config.r, 2, 'the most common r');
      assert.is(config.lora_alpha, 4);
      assert.equal(config.rank_pattern, { '^0\\.v_proj': 3, '^1\\.v_proj': 3 });
      assert.equal(config.alpha_pattern, { '^1\\.q_proj': 16 });
      assert.is(config.target_modules, '^(?:0\\.q_proj|0\\.v_proj|1\\.q_proj|1\\.v_proj|1\\.o_proj)$');
      assert.equal([config.use_dora, config.use_rslora, config.lora_dropout, config.bias, config.base_model_name_or_path], [dora, dora, 0.1, 'none', 'tiny']);
      const saved = io.loadSafetensors(path.join(dir, 'adapter_model.safetensors'));
      const keys = Object.keys(saved);
      assert.ok(keys.includes('base_model.model.0.v_proj.lora_A.weight') && keys.includes('base_model.model.1.o_proj.lora_B.weight'));
      assert.is(keys.includes('base_model.model.0.q_proj.lora_magnitude_vector'), dora);
      assert.equal(saved['base_model.model.0.v_proj.lora_A.weight'].shape, [3, IN]);
      for (const t of Object.values(saved)) t.dispose();
      // a fresh model of the same base weights, loaded from the directory: every layer computes the same
      const m2 = model(seed % 1000);
      const res = io.loadPeftAdapter(m2, dir, { trainable: true });
      assert.equal(res.injected.length, 5);
      m.eval(); // (no lora_dropout)
      m2.eval();
      const x = S.tensor(uniform(rng(seed), 2 * IN), { shape: [2, IN], dtype: 'float64' });
      const y1 = outputs(m, x), y2 = outputs(m2, x);
      assert.equal([...y2.keys()], [...y1.keys()]);
      for (const [p, v] of y1) assert.equal(Array.from(y2.get(p)!), Array.from(v), p);
      assert.equal((at(m2, '1.q_proj') as nn.LoRALinear).scale, (at(m, '1.q_proj') as nn.LoRALinear).scale);
      x.dispose();
      m.dispose();
      m2.dispose();
    });
    assertNoLeak(before, 'savePeftAdapter');
  });

test('savePeftAdapter: what PEFT cannot hold is refused', () => {
  const before = liveCounts();
  inTempDir((dir) => {
    const m = model(5);
    throwsLike(() => io.savePeftAdapter(m, dir), RangeError, /io\.savePeftAdapter.*the module has no nn\.LoRALinear layer/);
    nn.injectLora(m, { targetModules: ['0.q_proj'] });
    nn.injectLora(m, { targetModules: ['1.q_proj'], rslora: true });
    throwsLike(() => io.savePeftAdapter(m, dir), RangeError, /'0\.q_proj' has rslora = false but '1\.q_proj' has true; PEFT's use_rslora is one setting/);
    const m2 = model(6);
    nn.injectLora(m2, { targetModules: ['q_proj'] });
    (at(m2, '1.q_proj') as nn.LoRALinear).merge();
    throwsLike(() => io.savePeftAdapter(m2, dir), RangeError, /'1\.q_proj' is merged/);
    const lone = new nn.LoRALinear(new nn.Linear(3, 2));
    throwsLike(() => io.savePeftAdapter(lone, dir), RangeError, /'module' is itself an nn\.LoRALinear/);
    throwsLike(() => io.savePeftAdapter(m2, 3 as unknown as string), TypeError, /'dir' must be a string/);
    assert.equal(fs.readdirSync(dir), [], 'nothing written');
    // a file where the directory should be: the write's error, not the cleanup's (ENOTDIR from rmSync)
    const file = path.join(dir, 'a-file');
    fs.writeFileSync(file, 'x');
    const m3 = model(7);
    nn.injectLora(m3, { targetModules: ['q_proj'] });
    throwsLike(() => io.savePeftAdapter(m3, file), RangeError, /io\.savePeftAdapter: cannot write '.*a-file'/);
    fs.rmSync(file);
    m3.dispose();
    m.dispose();
    m2.dispose();
    lone.dispose();
  });
  assertNoLeak(before, 'savePeftAdapter errors');
});

test('unloadLora / LoRALinear.unload: merge_and_unload and unload, shared layers, the unloaded layer refused', () => {
  const before = liveCounts();
  for (const dora of [false, true])
    for (const merge of [true, false]) {
      const m = model(11);
      const x = S.tensor(uniform(rng(12), 2 * IN), { shape: [2, IN], dtype: 'float64' });
      const base = outputs(m, x);
      nn.injectLora(m, { targetModules: ['q_proj', 'o_proj'], r: 2, dora, seed: 3 });
      for (const [, t] of m.namedParameters()) if (t.requiresGrad) S.nn.init.uniform_(t, 0.5, 1.5, { seed: 4 });
      const adapted = outputs(m, x);
      const live = liveCounts();
      assert.equal(nn.unloadLora(m, { merge }), ['0.q_proj', '0.o_proj', '1.q_proj', '1.o_proj']);
      assert.ok([...m.modules()].every((l) => !(l instanceof nn.LoRALinear)), 'no LoRALinear left');
      assert.ok(live.tensors - liveCounts().tensors >= 8, 'the adapters were disposed');
      const after = outputs(m, x);
      for (const [p, v] of after) {
        const want = merge ? adapted.get(p)! : base.get(p)!;
        for (let i = 0; i < v.length; i++) assert.ok(Math.abs(v[i] - want[i]) <= 1e-12 * (1 + Math.abs(want[i])), `dora=${dora} merge=${merge} ${p}[${i}]: ${v[i]} vs ${want[i]}`);
      }
      x.dispose();
      m.dispose();
    }
  // a layer held by two parents is replaced in both; the unloaded layer refuses to run and does not free its old base
  const shared = new nn.Linear(IN, HID, { dtype: 'float64', seed: 1 });
  const a = new nn.Sequential(shared), b = new nn.Sequential(a);
  b.registerModule('again', shared);
  nn.injectLora(b, { targetModules: ['0.0'] });
  assert.ok(at(b, 'again') instanceof nn.LoRALinear && at(b, 'again') === at(b, '0.0'), 'one LoRALinear in both places');
  const l = at(b, 'again') as nn.LoRALinear;
  nn.unloadLora(b);
  assert.ok(at(b, 'again') === shared && at(b, '0.0') === shared, 'both parents hold the base again');
  S.tidy(() => throwsLike(() => l.forward(S.zeros([1, IN], { dtype: 'float64' })), TypeError, /nn\.LoRALinear\.forward.*the layer was unloaded/));
  throwsLike(() => l.merge(), TypeError, /the layer was unloaded/);
  l.dispose();
  assert.ok(!shared.weight.isDisposed, "disposing the unloaded layer leaves its old base alone");
  throwsLike(() => nn.unloadLora(b, { merge: 'yes' as unknown as boolean }), TypeError, /'merge' must be a boolean/);
  b.dispose();
  assertNoLeak(before, 'unloadLora');
});

test('loadPeftAdapter: a tied block (one layer, two paths), fan_in_fan_out, Python\'s \\A / \\Z in patterns', () => {
  const before = liveCounts();
  const r = rng(freshSeed());
  const block = new Block(21);
  const m = new nn.Sequential(block);
  m.registerModule('dec', block); // the same block again: 0.q_proj and dec.q_proj are one layer
  const good = adapterTensors(r, [['0.q_proj', 2]], false);
  const tied: Record<string, Tensor> = { ...good };
  for (const [k, t] of Object.entries(good)) tied[k.replace('.0.', '.dec.')] = t;
  const res = io.loadPeftAdapter(m, { config: { ...PEFT_CONFIG, fan_in_fan_out: true, use_rslora: null, use_dora: null, alpha_pattern: { 'q_pro\\Z': 99, 'q_proj\\Z': 8 } }, tensors: tied });
  assert.equal(res.injected, ['0.q_proj']);
  assert.ok(at(m, 'dec.q_proj') === at(m, '0.q_proj') && at(m, '0.q_proj') instanceof nn.LoRALinear, 'one LoRALinear in both places');
  assert.is((at(m, '0.q_proj') as nn.LoRALinear).scale, 4, "alpha 8 from 'q_proj\\Z' (Python's end anchor)");
  // different weights under the two paths of one layer
  const other = adapterTensors(r, [['dec.q_proj', 2]], false);
  const m2 = new nn.Sequential(new Block(22));
  m2.registerModule('dec', at(m2, '0') as Block);
  throwsLike(() => io.loadPeftAdapter(m2, { config: PEFT_CONFIG, tensors: { ...good, ...other } }), RangeError, /'0\.q_proj' and 'dec\.q_proj' are one layer of the model \(shared\), but the adapter gives them different weights/);
  assert.ok(at(m2, '0.q_proj') instanceof nn.Linear);
  for (const t of [...Object.values(good), ...Object.values(other)]) t.dispose();
  m.dispose();
  m2.dispose();
  assertNoLeak(before, 'tied block');
});

test('savePeftAdapter: patterns that would also match other paths (0 and 1.0), a tied layer under both paths', () => {
  const before = liveCounts();
  inTempDir((dir) => {
    const make = () => new nn.Sequential(new nn.Linear(4, 4, { dtype: 'float64', seed: 1 }), new nn.Sequential(new nn.Linear(4, 4, { dtype: 'float64', seed: 2 }), new nn.Linear(4, 4, { dtype: 'float64', seed: 3 })));
    const m = make();
    nn.injectLora(m, { targetModules: '0', r: 4, seed: 1 }); // the path '0' only (['0'] would take '1.0' too)
    assert.equal(nn.injectLora(m, { targetModules: '1\\..', r: 8, alpha: 8, seed: 2 }), ['1.0', '1.1']);
    for (const [, t] of m.namedParameters()) if (t.requiresGrad) S.nn.init.uniform_(t, -1, 1, { seed: 5 });
    io.savePeftAdapter(m, dir);
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8'));
    assert.equal([config.r, config.rank_pattern, config.alpha_pattern], [8, { '^0': 4 }, {}]);
    // PEFT's get_pattern_key: (.*\.)?(^0)$ matches "0" and not "1.0"
    assert.ok(/^(?:.*\.)?(?:^0)$/.test('0') && !/^(?:.*\.)?(?:^0)$/.test('1.0'));
    const m2 = make();
    io.loadPeftAdapter(m2, dir);
    assert.equal([0, 1, 2].map((i) => (at(m2, ['0', '1.0', '1.1'][i]) as nn.LoRALinear).r), [4, 8, 8]);
    m.eval();
    const x = S.tensor(uniform(rng(9), 8), { shape: [2, 4], dtype: 'float64' });
    S.tidy(() => assert.equal(Array.from(m2.forward(x).dataSync()), Array.from(m.forward(x).dataSync())));
    x.dispose();
    // a tied layer: its weights under each path, as PyTorch's state_dict lists it; loaded back as one layer
    const t = new nn.Sequential(new nn.Linear(4, 4, { dtype: 'float64', seed: 4 }));
    t.registerModule('again', at(t, '0'));
    nn.injectLora(t, { targetModules: ['0'], r: 2 });
    assert.equal(io.savePeftAdapter(t, dir), ['0', 'again']);
    const buf = fs.readFileSync(path.join(dir, 'adapter_model.safetensors'));
    const keys = Object.keys(JSON.parse(buf.subarray(8, 8 + Number(buf.readBigUInt64LE(0))).toString()));
    assert.ok(keys.includes('base_model.model.0.lora_A.weight') && keys.includes('base_model.model.again.lora_A.weight'), keys.join(' '));
    const t2 = new nn.Sequential(new nn.Linear(4, 4, { dtype: 'float64', seed: 4 }));
    t2.registerModule('again', at(t2, '0'));
    assert.equal(io.loadPeftAdapter(t2, dir).injected, ['0']);
    assert.ok(at(t2, 'again') === at(t2, '0'));
    for (const mm of [m, m2, t, t2]) mm.dispose();
  });
  assertNoLeak(before, 'save patterns and tied');
});

test('unloadLora: checks every layer first (an error leaves the model as it was); an unloaded layer is refused by save', () => {
  const before = liveCounts();
  const m = model(13);
  nn.injectLora(m, { targetModules: ['q_proj'] });
  const k0 = kinds(m);
  (at(m, '1.q_proj') as nn.LoRALinear).loraB.dispose();
  throwsLike(() => nn.unloadLora(m), TypeError, /nn\.unloadLora \('1\.q_proj'\): its parameter 'loraB' was disposed/);
  assert.equal(kinds(m), k0, 'nothing unloaded');
  assert.ok(!(at(m, '0.q_proj') as nn.LoRALinear).unloaded);
  const lone = new nn.LoRALinear(new nn.Linear(3, 2));
  throwsLike(() => nn.unloadLora(lone), RangeError, /'module' is itself an nn\.LoRALinear, which has no parent here: call its unload\(\)/);
  // a layer unloaded by hand and left in the model
  const m2 = model(14);
  nn.injectLora(m2, { targetModules: ['0.q_proj'] });
  const l = at(m2, '0.q_proj') as nn.LoRALinear;
  const base = l.unload();
  assert.ok(l.unloaded);
  inTempDir((dir) => {
    throwsLike(() => io.savePeftAdapter(m2, dir), RangeError, /'0\.q_proj' was unloaded \(its adapter is gone\)/);
    assert.equal(fs.readdirSync(dir), []);
  });
  throwsLike(() => nn.unloadLora(m2), RangeError, /'0\.q_proj' was already unloaded/);
  m.dispose();
  lone.dispose();
  base.dispose();
  m2.dispose();
  assertNoLeak(before, 'unloadLora errors');
});

test('loadPeftAdapter: modules_to_save (a trained classifier head) copied into the model, trained when trainable', () => {
  const before = liveCounts();
  const r = rng(freshSeed());
  for (const trainable of [false, true]) {
    const m = model(31);
    m.registerModule('classifier', new nn.Linear(HID, 3, { dtype: 'float64', seed: 32 }));
    const tensors = adapterTensors(r, [['0.q_proj', 2]], false);
    const W = S.tensor(uniform(r, 3 * HID), { shape: [3, HID], dtype: 'float32' }); // another dtype: converted
    const b = S.tensor(uniform(r, 3), { shape: [3], dtype: 'float64' });
    const res = io.loadPeftAdapter(m, { config: { ...PEFT_CONFIG, modules_to_save: ['classifier'] }, tensors: { ...tensors, 'base_model.model.classifier.weight': W, 'base_model.model.classifier.bias': b } }, { trainable });
    assert.equal(res.copied, ['base_model.model.classifier.weight', 'base_model.model.classifier.bias']);
    const head = at(m, 'classifier') as nn.Linear;
    assert.equal(Array.from(head.weight.dataSync()), Array.from(S.tidy(() => W.cast('float64').dataSync())));
    assert.equal(Array.from(head.bias!.dataSync()), Array.from(b.dataSync()));
    assert.equal([head.weight.requiresGrad, head.bias!.requiresGrad], [trainable, trainable]);
    assert.is((at(m, '0.o_proj') as nn.Linear).weight.requiresGrad, false);
    for (const t of [...Object.values(tensors), W, b]) t.dispose();
    m.dispose();
  }
  assertNoLeak(before, 'modules_to_save');
});

test('modulesToSave: injectLora keeps the head trainable, savePeftAdapter writes it in full, loadPeftAdapter puts it back', () => {
  const before = liveCounts();
  inTempDir((dir) => {
    const make = () => {
      const m = model(41);
      const head = m.registerModule('classifier', new nn.Linear(HID, 3, { dtype: 'float64', seed: 42 }));
      head.registerBuffer('temperature', S.tensor([1], { dtype: 'float64' })); // saved too (PEFT's load map reads it)
      return m;
    };
    const m = make();
    S.tidy(() => native().copyInto((at(m, 'classifier') as nn.Linear).buffers()[0]._h, S.tensor([2.5], { dtype: 'float64' })._h));
    nn.injectLora(m, { targetModules: ['q_proj'], r: 2, modulesToSave: ['classifier'], seed: 1 });
    const trainable = m.namedParameters().filter(([, t]) => t.requiresGrad).map(([k]) => k);
    assert.ok(trainable.includes('classifier.weight') && trainable.includes('classifier.bias') && !trainable.includes('0.o_proj.weight'), trainable.join(' '));
    // one optimizer step on everything trainable: the head and the adapters change
    const opt = new S.optim.SGD(m.parameters().filter((t) => t.requiresGrad), { lr: 0.1 });
    S.tidy(() => {
      const x = S.tensor(uniform(rng(5), 2 * IN), { shape: [2, IN], dtype: 'float64' });
      const h = (at(m, '0.q_proj') as nn.LoRALinear).forward(x);
      S.sum(S.square((at(m, 'classifier') as nn.Linear).forward(h))).backward();
    });
    opt.step();
    io.savePeftAdapter(m, dir, { modulesToSave: ['classifier'] });
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8'));
    assert.equal(config.modules_to_save, ['classifier']);
    const m2 = make();
    const res = io.loadPeftAdapter(m2, dir);
    assert.equal(res.copied, ['base_model.model.classifier.weight', 'base_model.model.classifier.bias', 'base_model.model.classifier.temperature']);
    for (const k of ['classifier.weight', 'classifier.bias', 'classifier.temperature', '0.q_proj.loraB'])
      assert.equal(Array.from(m2.stateDict()[k].dataSync()), Array.from(m.stateDict()[k].dataSync()), k);
    // a module is a LoRA target or saved in full, not both
    const m3 = make();
    throwsLike(() => nn.injectLora(m3, { targetModules: ['v_proj'], modulesToSave: ['0'] }), RangeError, /'0\.v_proj' is a LoRA target inside '0', which 'modulesToSave' trains in full/);
    throwsLike(() => io.savePeftAdapter(m, dir, { modulesToSave: ['0'] }), RangeError, /'modulesToSave' takes '0', which holds an nn\.LoRALinear/);
    throwsLike(() => nn.injectLora(m3, { targetModules: ['q_proj'], modulesToSave: ['head'] }), RangeError, /'modulesToSave' names \["head"\], which no module of the model's path ends with/);
    assert.ok(m3.parameters().every((t) => t.requiresGrad), 'm3 untouched');
    m3.dispose();
    opt.zeroGrad();
    m.dispose();
    m2.dispose();
  });
  assertNoLeak(before, 'modulesToSave');
});

// PEFT's get_pattern_key takes the first matching pattern in the config's order (Python's dicts keep the
// file's). A JavaScript object would move the integer-like pattern '1' (it matches '0.1' too) first.
test("rank_pattern / alpha_pattern in the file's order, integer-like keys included; a Map keeps injectLora's order", () => {
  const before = liveCounts();
  const twoLinears = () => new nn.Sequential(new nn.Sequential(new nn.Linear(IN, HID, { dtype: 'float64', seed: 1 }), new nn.Linear(HID, HID, { dtype: 'float64', seed: 2 })));
  inTempDir((dir) => {
    const r = rng(freshSeed());
    const w = (rank: number, inF: number, name: string) => ({
      [`base_model.model.${name}.lora_A.weight`]: S.tensor(uniform(r, rank * inF), { shape: [rank, inF], dtype: 'float64' }),
      [`base_model.model.${name}.lora_B.weight`]: S.tensor(uniform(r, HID * rank), { shape: [HID, rank], dtype: 'float64' }),
    });
    const tensors = { ...w(3, IN, '0.0'), ...w(4, HID, '0.1') };
    io.saveSafetensors(path.join(dir, 'adapter_model.safetensors'), tensors);
    // written by hand: JSON.stringify of an object would put "1" first
    fs.writeFileSync(path.join(dir, 'adapter_config.json'),
      '{"peft_type": "LORA", "r": 3, "lora_alpha": 6, "target_modules": "0\\\\.[01]",\n' +
      ' "rank_pattern": {"0.1": 4, "1": 2}, "alpha_pattern": {"0\\\\.1": 8, "1": 100, "0.1": 1}}');
    const m = twoLinears();
    io.loadPeftAdapter(m, dir);
    const l = (p: string) => at(m, p) as nn.LoRALinear;
    assert.equal([l('0.0').r, l('0.1').r], [3, 4], "'0.1' comes first in the file");
    assert.equal([l('0.0').scale, l('0.1').scale], [2, 2], "alpha 8 from '0\\.1' (the later '0.1': 1 repeats no key)");
    m.dispose();
    S.dispose(Object.values(tensors));
  });
  const m1 = twoLinears(), m2 = twoLinears();
  nn.injectLora(m1, { targetModules: '0\\.[01]', r: 3, rankPattern: new Map([['0.1', 4], ['1', 2]]) });
  nn.injectLora(m2, { targetModules: '0\\.[01]', r: 3, rankPattern: { '0.1': 4, '1': 2 } });
  assert.is((at(m1, '0.1') as nn.LoRALinear).r, 4, 'a Map: its order');
  assert.is((at(m2, '0.1') as nn.LoRALinear).r, 2, "an object: JavaScript's ('1' first)");
  throwsLike(() => nn.injectLora(m1, { targetModules: '0\\.0', rankPattern: new Map([[1 as never, 2]]) }), TypeError, /'rankPattern' has the key number 1; patterns must be strings/);
  m1.dispose();
  m2.dispose();
  assertNoLeak(before, 'pattern order');
});

test('disableAdapters: the base model alone inside fn (PEFT\'s disable_adapter), each layer\'s switch put back, merged layers unmerged, no gradient to the adapters', () => {
  const before = liveCounts();
  const mk = () => new nn.Sequential(new nn.Linear(IN, HID, { dtype: 'float64', seed: 7 }), new nn.GELU(), new nn.Linear(HID, 3, { dtype: 'float64', seed: 8 }));
  const plain = mk(), m = mk();
  nn.injectLora(m, { targetModules: ['0', '2'], r: 2, alpha: 4, seed: 9 });
  const l0 = at(m, '0') as nn.LoRALinear, l2 = at(m, '2') as nn.LoRALinear;
  for (const l of [l0, l2]) nn.init.normal_(l.loraB, 0, 0.5, { seed: 3 });
  S.tidy(() => {
    const x = S.tensor(uniform(rng(freshSeed()), 4 * IN), { shape: [4, IN], dtype: 'float64' });
    const yBase = Array.from(plain.forward(x).dataSync()), yLora = Array.from(m.forward(x).dataSync());
    assert.not.equal(yLora, yBase);
    l2.enableAdapters(false); // one layer already off: it stays off afterwards
    const got = nn.disableAdapters(m, () => m.forward(x));
    assert.equal(Array.from(got.dataSync()), yBase, 'the base model, bit for bit');
    assert.equal([l0.adaptersEnabled, l2.adaptersEnabled], [true, false], 'each switch as it was');
    l2.enableAdapters();
    assert.equal(Array.from(m.forward(x).dataSync()), yLora);
    // an error inside fn: the adapters come back on
    throwsLike(() => nn.disableAdapters(m, () => { throw new RangeError('inside'); }), RangeError, /inside/);
    assert.ok(l0.adaptersEnabled && l2.adaptersEnabled);
    // no gradient reaches the adapters (their branch is not computed); x still gets one
    const xg = x.clone();
    xg.requiresGrad = true;
    nn.disableAdapters(m, () => m.forward(xg).sum().backward());
    assert.ok(l0.loraA.grad === null && l2.loraB.grad === null && xg.grad !== null);
    // a merged layer is unmerged while off (its weight must be the base's), as PEFT does
    l0.merge();
    const off = nn.disableAdapters(m, () => m.forward(x)).dataSync();
    assert.ok(!l0.merged, 'unmerged');
    off.forEach((v, i) => assert.ok(Math.abs(v - yBase[i]) <= 1e-12 * (1 + Math.abs(yBase[i])), `merged then off: ${v} vs ${yBase[i]}`));
    Array.from(m.forward(x).dataSync()).forEach((v, i) => assert.ok(Math.abs(v - yLora[i]) <= 1e-12 * (1 + Math.abs(yLora[i]))));
    assert.is(nn.disableAdapters(m, () => 42), 42);
  });
  throwsLike(() => nn.disableAdapters(plain, () => 1), RangeError, /nn\.disableAdapters: the module has no LoRA layer/);
  throwsLike(() => nn.disableAdapters(m, 3 as never), TypeError, /'fn' must be a function/);
  throwsLike(() => nn.disableAdapters({} as never, () => 1), TypeError, /'module' must be an nn\.Module/);
  throwsLike(() => l0.enableAdapters('no' as never), TypeError, /nn\.LoRALinear\.enableAdapters: 'enabled' must be a boolean/);
  throwsLike(() => nn.disableAdapters(m, (() => Promise.resolve(1)) as never), TypeError, /returned a Promise/);
  assert.ok(l0.adaptersEnabled);
  plain.dispose();
  m.dispose();
  assertNoLeak(before, 'disableAdapters');
});

test.run();
