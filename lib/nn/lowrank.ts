// nn/lowrank.ts — layers over the lowrank ops.
//
//   LowRankLinear(in, out, r)   y = (x·Aᵀ)·Bᵀ + b, A [r, in], B [out, r]; forward(x, {rank}) uses a prefix
//                               (Maestro's ordered truncation, no copy); truncate(k) keeps the first k for good.
//   LoRALinear(base, {r, alpha, rslora, dora, dropout, adapterDtype})
//                               y = base(x) + scale·(x·Aᵀ)·Bᵀ, scale = alpha/r (or alpha/√r with rsLoRA),
//                               PEFT's init (A kaiming-uniform with a = √5, B zeros) and parameter layout
//                               (loraA = lora_A.weight [r, in], loraB = lora_B.weight [out, r]); the base
//                               layer is frozen. DoRA (PEFT's DoraLinearLayer): y = (m/‖W + scale·B·A‖_row)
//                               ⊙ (x·Wᵀ + scale·(x·Aᵀ)·Bᵀ) + b, the norm detached, m initialised to ‖W‖_row.
//                               merge() folds the adapter into W (exact to rounding), unmerge() undoes it,
//                               unload() hands the base back (PEFT's merge_and_unload / unload).
//                               Without gradients to record it keeps the adapters cast to a 16-bit base's
//                               dtype and DoRA's norms, made again after any write (storage versions).
//                               dropout (PEFT's lora_dropout) applies to the adapter's input in training
//                               mode only: y = base(x) + scale·(drop(x)·Aᵀ)·Bᵀ, unfused as in PEFT (the
//                               fused kernel takes one x); DoRA as PEFT's: y = base(x) + (f − 1) ⊙ drop(x)·Wᵀ
//                               + f ⊙ scale·(drop(x)·Aᵀ)·Bᵀ, f = m/‖W + scale·B·A‖_row.
//                               Over a float16 / bfloat16 base the adapter's parameters are float32 (stored
//                               and updated there, as PEFT's autocast_adapter_dtype), but the fused kernel
//                               takes them rounded to the base's dtype (PEFT runs the adapter's path in
//                               float32); merges and DoRA's norms are computed in float32, rounded once.
import { Tensor, parseDType, parseDevice, fromHandle, tidy, keep } from '../tensor';
import { noGrad, needsGrad } from '../autograd';
import type { DType, Device, NotPromise } from '../tensor';
import { native, DTYPE_CODES } from '../native';
import { describe, typeError, rangeError, optionsOf, checkProbability } from '../errors';
import * as lowrank from '../ops/lowrank';
import { matmul } from '../ops/dense';
import { add, mul, div, sqrt, sub, dropout } from '../ops/elementwise';
import { sum } from '../ops/reduce';
import { reshape, narrow, contiguous, cast } from '../ops/shape';
import { Module } from './module';
import { Linear, checkFeatures, checkInput, checkFloatingDType, checkLive, linearNoBias } from './linear';
import { uniform_, zeros_ } from './init';

/** fn with grad mode off inside a tidy (only what it returns survives). */
function noGradScope<T>(fn: () => NotPromise<T>): T {
  return noGrad(() => tidy(fn));
}

export interface LowRankLinearOptions {
  bias?: boolean;
  dtype?: DType;
  device?: Device | string;
  seed?: number;
}

function checkSeed(fn: string, seed: unknown): number | undefined {
  if (seed === undefined) return undefined;
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) (typeof seed === 'number' ? rangeError : typeError)(fn, `'seed' must be an integer, got ${describe(seed)}`);
  return seed as number;
}

function emptyLike(dtype: DType, dev: ReturnType<typeof parseDevice>, shape: number[]): Tensor {
  return fromHandle(native().empty(DTYPE_CODES[dtype], shape, dev.type, dev.index), dtype, shape, dev);
}

/** A factorized linear layer y = (x·Aᵀ)·Bᵀ + b with A [r, in], B [out, r]. */
export class LowRankLinear extends Module {
  declare A: Tensor;
  declare B: Tensor;
  declare bias: Tensor | null;
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(inFeatures: number, outFeatures: number, r: number, opts: LowRankLinearOptions = {}) {
    super();
    const fn = 'nn.LowRankLinear';
    this.inFeatures = checkFeatures(fn, 'inFeatures', inFeatures);
    this.outFeatures = checkFeatures(fn, 'outFeatures', outFeatures);
    checkFeatures(fn, 'r', r);
    opts = optionsOf(fn, opts, ['bias', 'dtype', 'device', 'seed']);
    const dtype = checkFloatingDType(fn, parseDType(fn, opts.dtype));
    const dev = parseDevice(fn, opts.device);
    const seed = checkSeed(fn, opts.seed);
    const useBias = opts.bias ?? true;
    if (typeof useBias !== 'boolean') typeError(fn, `'bias' must be a boolean, got ${describe(useBias)}`);
    // Each factor as a Linear of its own (kaiming-uniform, a = √5: U(±1/√fan_in)), so the product's
    // scale matches nn.Linear's at initialisation order of magnitude.
    const bA = 1 / Math.sqrt(this.inFeatures), bB = 1 / Math.sqrt(r);
    const sd = (k: number) => (seed === undefined ? undefined : seed + k);
    this.registerParameter('A', uniform_(emptyLike(dtype, dev, [r, this.inFeatures]), -bA, bA, { seed: sd(0) }));
    this.registerParameter('B', uniform_(emptyLike(dtype, dev, [this.outFeatures, r]), -bB, bB, { seed: sd(1) }));
    this.registerParameter('bias', useBias ? uniform_(emptyLike(dtype, dev, [this.outFeatures]), -bA, bA, { seed: sd(2) }) : null);
  }

  /** The rank r (rows of A). */
  get rank(): number {
    return this.A.shape[0];
  }

  /** x [..., in] → [..., out]; `rank` uses the first `rank` factors only (no copy). */
  forward(x: Tensor, opts: { rank?: number } = {}): Tensor {
    checkInput('nn.LowRankLinear.forward', x, this.inFeatures, 'inFeatures');
    opts = optionsOf('nn.LowRankLinear.forward', opts, ['rank']);
    checkLive('nn.LowRankLinear.forward', { A: this.A, B: this.B, bias: this.bias });
    return lowrank.linear(x, this.A, this.B, { bias: this.bias, rank: opts.rank });
  }

  /** Keeps the first k factors for good (A → A[:k], B → B[:, :k]); the old parameters are disposed. */
  truncate(k: number): this {
    const fn = 'nn.LowRankLinear.truncate';
    if (typeof k !== 'number') typeError(fn, `'k' must be an integer, got ${describe(k)}`);
    if (!Number.isInteger(k) || k < 1 || k > this.rank) rangeError(fn, `'k' must be an integer in [1, ${this.rank}], got ${k}`);
    if (k === this.rank) return this;
    const oldA = this.A, oldB = this.B;
    const [a, b] = noGradScope(() => [contiguous(narrow(oldA, 0, 0, k)), contiguous(narrow(oldB, 1, 0, k))]);
    a.requiresGrad = oldA.requiresGrad;
    b.requiresGrad = oldB.requiresGrad;
    this.A = a;
    this.B = b;
    oldA.dispose();
    oldB.dispose();
    return this;
  }

  extraRepr(): string {
    return `inFeatures=${this.inFeatures}, outFeatures=${this.outFeatures}, rank=${this.rank}, bias=${this.bias !== null}`;
  }
}

export interface LoRAOptions {
  /** The rank (default 8). */
  r?: number;
  /** lora_alpha (default r: scale 1). */
  alpha?: number;
  /** rsLoRA: scale alpha/√r instead of alpha/r. */
  rslora?: boolean;
  /** DoRA: a learned magnitude per output row. */
  dora?: boolean;
  /** PEFT's lora_dropout: the probability of zeroing an element of the adapter's input in training mode (default 0). */
  dropout?: number;
  /** The dtype of loraA, loraB and magnitude: float32 over a float16 / bfloat16 base (PEFT's
   * autocast_adapter_dtype: an optimizer then updates float32 values), else the base's dtype. */
  adapterDtype?: DType;
  seed?: number;
}

/** A LoRA adapter over a frozen nn.Linear (PEFT's LoraLayer for Linear, with rsLoRA and DoRA). */
export class LoRALinear extends Module {
  declare base: Linear;
  declare loraA: Tensor;
  declare loraB: Tensor;
  declare magnitude: Tensor | null;
  readonly r: number;
  readonly alpha: number;
  readonly scale: number;
  readonly useDora: boolean;
  /** rsLoRA: scale = alpha/√r. */
  readonly rslora: boolean;
  /** lora_dropout: the adapter's input dropout in training mode. */
  readonly dropout: number;
  /** The dtype of the adapter's parameters (see LoRAOptions.adapterDtype). */
  readonly adapterDtype: DType;
  #merged = false;
  #unloaded = false;
  #enabled = true;
  // DoRA: the row norms ‖W + scale·B·A‖ used by merge(), so unmerge() divides by the same numbers.
  #mergeNorm: Tensor | null = null;
  // The adapters cast to the base's dtype, with what they were made from (see #factors).
  #castCache: { src: [Tensor, Tensor]; version: [number, number]; dtype: DType; cast: [Tensor, Tensor] } | null = null;
  // DoRA's row norms, with what they were made from (see #norm).
  #normCache: { src: Tensor[]; version: number[]; norm: Tensor } | null = null;

  constructor(base: Linear, opts: LoRAOptions = {}) {
    super();
    const fn = 'nn.LoRALinear';
    if (!(base instanceof Linear)) typeError(fn, `'base' must be an nn.Linear, got ${describe(base)}`);
    opts = optionsOf(fn, opts, ['r', 'alpha', 'rslora', 'dora', 'dropout', 'adapterDtype', 'seed']);
    const r = checkFeatures(fn, 'r', opts.r ?? 8);
    const alpha = opts.alpha ?? r;
    if (typeof alpha !== 'number' || !Number.isFinite(alpha)) typeError(fn, `'alpha' must be a finite number, got ${describe(alpha)}`);
    const rslora = opts.rslora ?? false;
    const dora = opts.dora ?? false;
    if (typeof rslora !== 'boolean') typeError(fn, `'rslora' must be a boolean, got ${describe(rslora)}`);
    if (typeof dora !== 'boolean') typeError(fn, `'dora' must be a boolean, got ${describe(dora)}`);
    const seed = checkSeed(fn, opts.seed);
    this.dropout = checkProbability(fn, 'dropout', opts.dropout ?? 0);
    const half = base.weight.dtype === 'float16' || base.weight.dtype === 'bfloat16';
    this.adapterDtype = opts.adapterDtype === undefined ? (half ? 'float32' : base.weight.dtype) : checkFloatingDType(fn, parseDType(fn, opts.adapterDtype));
    this.r = r;
    this.alpha = alpha;
    this.scale = rslora ? alpha / Math.sqrt(r) : alpha / r;
    this.useDora = dora;
    this.rslora = rslora;
    this.registerModule('base', base);
    base.weight.requiresGrad = false;
    if (base.bias) base.bias.requiresGrad = false;
    const W = base.weight;
    const dev = parseDevice(fn, W.device);
    const bound = 1 / Math.sqrt(base.inFeatures); // kaiming_uniform_(a=√5)
    this.registerParameter('loraA', uniform_(emptyLike(this.adapterDtype, dev, [r, base.inFeatures]), -bound, bound, { seed }));
    this.registerParameter('loraB', zeros_(emptyLike(this.adapterDtype, dev, [base.outFeatures, r])));
    this.registerParameter('magnitude', dora ? noGradScope(() => this.#rowNorm(false)) : null);
  }

  get merged(): boolean {
    return this.#merged;
  }

  /** True after unload(): the adapter is gone and the base was handed back. */
  get unloaded(): boolean {
    return this.#unloaded;
  }

  /** False while the adapter is switched off (enableAdapters(false), nn.disableAdapters). */
  get adaptersEnabled(): boolean {
    return this.#enabled;
  }

  /**
   * Switches the adapter on or off (PEFT's enable_adapters): off, forward() computes the base layer
   * alone. As PEFT, a merged layer is unmerged by its next forward while off (its weight must be the
   * base's again); the adapter's parameters are kept and train again once it is back on.
   */
  enableAdapters(enabled = true): this {
    if (typeof enabled !== 'boolean') typeError('nn.LoRALinear.enableAdapters', `'enabled' must be a boolean, got ${describe(enabled)}`);
    this.#enabled = enabled;
    return this;
  }

  /** t in dtype dt (a recorded cast, so gradients reach t), or t itself. */
  static #as(t: Tensor, dt: DType): Tensor {
    return t.dtype === dt ? t : cast(t, dt);
  }

  /**
   * loraA and loraB in dtype dt for the fused kernel. With gradients to record, fresh casts; without
   * (inference: frozen adapters, or noGrad), casts kept from the last call while neither tensor has been
   * written since (their storages' versions: an optimizer step or a load makes them again), which spares
   * a decode step two conversions and their launches.
   */
  #factors(dt: DType): [Tensor, Tensor] {
    const A = this.loraA, B = this.loraB;
    if (A.dtype === dt && B.dtype === dt) return [A, B];
    const c0 = this.#castCache;
    if (c0 && (c0.src[0] !== A || c0.src[1] !== B)) this.#dropCasts(); // (it would keep a replaced factor alive)
    if (needsGrad(A, B)) return [LoRALinear.#as(A, dt), LoRALinear.#as(B, dt)];
    const n = native();
    const va = n.version(A._h), vb = n.version(B._h);
    const c = this.#castCache;
    if (c && c.src[0] === A && c.src[1] === B && c.version[0] === va && c.version[1] === vb && c.dtype === dt) return c.cast;
    this.#dropCasts();
    const cast2 = noGradScope(() => [LoRALinear.#as(A, dt), LoRALinear.#as(B, dt)] as [Tensor, Tensor]);
    for (const t of cast2) keep(t);
    this.#castCache = { src: [A, B], version: [va, vb], dtype: dt, cast: cast2 };
    return cast2;
  }

  #dropCasts(): void {
    for (const t of this.#castCache?.cast ?? []) t.dispose();
    this.#castCache = null;
  }

  /** Frees all the layer keeps besides its parameters: the casts, DoRA's norms, merge()'s norms. */
  #dropKept(): void {
    this.#dropCasts();
    this.#normCache?.norm.dispose();
    this.#normCache = null;
    this.#mergeNorm?.dispose();
    this.#mergeNorm = null;
  }

  /**
   * DoRA's detached ‖W + scale·B·A‖_row for forward(): kept while W, loraA and loraB are unchanged (their
   * storages' versions and identities), as it takes no gradient — an inference step would otherwise form
   * W + scale·B·A, out × in, every call; a training step, whose optimizer writes A and B, makes it again.
   */
  #norm(): Tensor {
    const src: [Tensor, Tensor, Tensor] = [this.base.weight, this.loraA, this.loraB];
    const n = native();
    const version = src.map((t) => n.version(t._h));
    const c = this.#normCache;
    if (c && c.src.every((t, i) => t === src[i]) && c.version.every((v, i) => v === version[i])) return c.norm;
    this.#normCache?.norm.dispose();
    this.#normCache = { src, version, norm: keep(this.#rowNorm(true)) };
    return this.#normCache.norm;
  }

  /** The base weight in the adapter's dtype (no grad): merges and norms are computed there, as PEFT's. */
  #weight(): Tensor {
    return noGradScope(() => LoRALinear.#as(this.base.weight, this.adapterDtype));
  }

  /** scale·B·A [out, in] in the adapter's dtype (no grad). */
  #delta(): Tensor {
    return noGradScope(() => mul(matmul(this.loraB, this.loraA), this.scale));
  }

  /** ‖W (+ scale·B·A)‖ over each row, [out], in the adapter's dtype, detached. */
  #rowNorm(withDelta: boolean): Tensor {
    return noGradScope(() => {
      const W = withDelta ? add(this.#weight(), this.#delta()) : this.#weight();
      return sqrt(sum(mul(W, W), 1));
    });
  }

  forward(x: Tensor): Tensor {
    const fn = 'nn.LoRALinear.forward';
    this.#checkLoaded(fn);
    checkInput(fn, x, this.base.inFeatures, 'inFeatures');
    checkLive(fn, { 'base.weight': this.base.weight, 'base.bias': this.base.bias, loraA: this.loraA, loraB: this.loraB, magnitude: this.magnitude });
    if (!this.#enabled) {
      if (this.#merged) this.unmerge();
      return this.base.forward(x);
    }
    if (this.#merged) return this.base.forward(x);
    const W = this.base.weight;
    if (this.training && this.dropout > 0) return this.#forwardDropout(x);
    // the fused kernel takes one dtype: float32 adapters over a 16-bit base are cast to it (recorded, so
    // their gradients come back in float32)
    return tidy(() => {
      const [A, B] = this.#factors(W.dtype);
      if (!this.useDora) return lowrank.lora(x, W, A, B, { scale: this.scale, bias: this.base.bias });
      // DoRA: the norm is detached (PEFT: "weight_norm.detach()"), so gradients reach m, A and B through
      // m/‖·‖ and the lora term only.
      const f = LoRALinear.#as(div(this.magnitude!, this.#norm()), W.dtype);
      const y = mul(lowrank.lora(x, W, A, B, { scale: this.scale }), f);
      return this.base.bias ? add(y, this.base.bias) : y;
    });
  }

  /** forward() in training mode with lora_dropout: PEFT's LoraLayer / DoraLinearLayer with a dropout. */
  #forwardDropout(x: Tensor): Tensor {
    return tidy(() => {
      const W = this.base.weight;
      const [A, B] = this.#factors(W.dtype);
      const xd = dropout(x, this.dropout);
      const y = this.base.forward(x);
      if (!this.useDora) return add(y, mul(lowrank.linear(xd, A, B), this.scale));
      // (f − 1)·drop(x)·Wᵀ + f·scale·(drop(x)·Aᵀ)·Bᵀ: two passes over W in all, as PEFT's
      const f = LoRALinear.#as(div(this.magnitude!, this.#norm()), W.dtype);
      const plain = linearNoBias(xd, W);
      const low = lowrank.linear(xd, A, B);
      return add(add(y, mul(plain, sub(f, 1))), mul(low, mul(f, this.scale)));
    });
  }

  /** Folds the adapter into the base weight: W ← W + scale·B·A (DoRA: W ← m/‖W + scale·B·A‖ ⊙ (W + scale·B·A)). */
  merge(): this {
    this.#checkLoaded('nn.LoRALinear.merge');
    if (this.#merged) return this;
    checkLive('nn.LoRALinear.merge', { 'base.weight': this.base.weight, loraA: this.loraA, loraB: this.loraB, magnitude: this.magnitude });
    const norm = noGradScope(() => {
      const W = this.base.weight;
      let merged = add(this.#weight(), this.#delta());
      let n: Tensor | null = null;
      if (this.useDora) {
        n = this.#rowNorm(true);
        merged = mul(merged, reshape(div(this.magnitude!, n), [-1, 1]));
      }
      native().copyInto(W._h, merged._h);
      return n;
    });
    this.#mergeNorm = norm ? keep(norm) : null;
    this.#merged = true;
    return this;
  }

  /** Undoes merge(): W ← W − scale·B·A (DoRA: W ← W·‖·‖/m − scale·B·A with the norms merge() used). */
  unmerge(): this {
    this.#checkLoaded('nn.LoRALinear.unmerge');
    if (!this.#merged) return this;
    checkLive('nn.LoRALinear.unmerge', { 'base.weight': this.base.weight, loraA: this.loraA, loraB: this.loraB, magnitude: this.magnitude });
    noGradScope(() => {
      let w = this.#weight();
      if (this.useDora) w = div(w, reshape(div(this.magnitude!, this.#mergeNorm!), [-1, 1]));
      native().copyInto(this.base.weight._h, sub(w, this.#delta())._h);
    });
    this.#mergeNorm?.dispose();
    this.#mergeNorm = null;
    this.#merged = false;
    return this;
  }

  /**
   * Takes the adapter away and returns the base nn.Linear (PEFT's merge_and_unload / unload): with merge
   * (the default) its weight keeps the adapter folded in (merge(), exact to rounding), without it the
   * weight is the original (unmerge() if merged). The adapter's tensors are disposed: this layer is
   * unusable afterwards; the base stays frozen. nn.unloadLora does this for every layer of a model.
   */
  unload(opts: { merge?: boolean } = {}): Linear {
    this.#checkLoaded('nn.LoRALinear.unload');
    const o = optionsOf('nn.LoRALinear.unload', opts, ['merge']);
    const merge = o.merge ?? true;
    if (typeof merge !== 'boolean') typeError('nn.LoRALinear.unload', `'merge' must be a boolean, got ${describe(merge)}`);
    checkLive('nn.LoRALinear.unload', { 'base.weight': this.base.weight, loraA: this.loraA, loraB: this.loraB, magnitude: this.magnitude });
    if (merge) this.merge();
    else this.unmerge();
    this.#dropKept();
    for (const t of [this.loraA, this.loraB, this.magnitude]) t?.dispose();
    // the base is the caller's now: this layer lets go of it (its dispose() must not free it)
    const base = this.base;
    (this as unknown as { base: Linear | null }).base = null;
    this.#unloaded = true;
    return base;
  }

  #checkLoaded(fn: string): void {
    if (this.#unloaded) typeError(fn, 'the layer was unloaded (unload() handed its base nn.Linear back)');
  }

  /** Frees the parameters, the base's too, and what the layer keeps (merge norms, casts): dispose the
   * layer, not its parameters one by one (unload() hands the base back first). */
  dispose(): void {
    this.#dropKept();
    super.dispose();
  }

  extraRepr(): string {
    return `r=${this.r}, alpha=${this.alpha}, scale=${this.scale}, dora=${this.useDora}${this.rslora ? ', rslora=true' : ''}${this.dropout > 0 ? `, dropout=${this.dropout}` : ''}, merged=${this.#merged}`;
  }
}
