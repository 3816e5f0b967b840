// linear.ts — nn.Linear: y = x·Wᵀ + b, x [..., in] → y [..., out], W [out, in], b [out] (PyTorch's
// layout), and nn.Identity.
//
// Initialisation is PyTorch's reset_parameters(): kaiming_uniform_(W, a=√5), which is U(−1/√in, 1/√in),
// and b ~ U(−1/√in, 1/√in). {seed} makes it reproducible: W is drawn with seed, b with seed + 1;
// without it both come from the default generator (manualSeed()).
import { Tensor, checkTensor, parseDType, parseDevice, fromHandle } from '../tensor';
import type { DType, Device } from '../tensor';
import { native, DTYPE_CODES } from '../native';
import { describe, shapeStr, typeError, rangeError, optionsOf } from '../errors';
import { isFloating } from '../tensor';
import { matmul, linearNT } from '../ops/dense';
import { add } from '../ops/elementwise';
import { Module } from './module';
import { uniform_ } from './init';

/** @internal a layer's parameters are floating (they take gradients); else a TypeError naming 'dtype'
 * before anything is allocated. */
export function checkFloatingDType(fn: string, dtype: DType): DType {
  if (!isFloating(dtype)) typeError(fn, `'dtype' must be a floating dtype (parameters take gradients), got ${dtype}`);
  return dtype;
}

/** @internal a layer whose parameters were disposed (module.dispose()) is refused by name. The forward
 * passes its own few parameters: walking the module tree for them would cost every call. */
export function checkLive(fn: string, params: Record<string, Tensor | null | undefined>): void {
  for (const name in params) if (params[name]?.isDisposed) typeError(fn, `its parameter '${name}' was disposed (the module was disposed?)`);
}

/**
 * fn() with a switch set for its duration (nn.useAdapters, nn.disableAdapters): `restore` runs after it,
 * also when it throws. fn must be synchronous: a returned Promise is a TypeError (its awaits would run
 * after the switch is back), `what` saying what the switch was.
 */
export function withSwitch<T>(fn: string, body: () => T, restore: () => void, what: string): T {
  let result: T;
  try {
    result = body();
  } finally {
    restore();
  }
  if (result instanceof Promise) typeError(fn, `fn returned a Promise; ${what} for synchronous code only (what fn awaits would run after the switch is put back)`);
  return result;
}

/** x [..., in]·Wᵀ with W [out, in] (nn.Linear's product, checked by the caller). */
export function linearNoBias(x: Tensor, W: Tensor): Tensor {
  if (x.ndim >= 2) return linearNT(x, W); // W's gradient in its own layout (ops/dense.ts)
  // x·Wᵀ through a transposed view; autograd keeps its own alias, so the view can go at once.
  const wt = W.T;
  try {
    return matmul(x, wt);
  } finally {
    wt.dispose();
  }
}

export interface LinearOptions {
  /** Learn an additive bias (default true). */
  bias?: boolean;
  dtype?: DType;
  device?: Device | string;
  /** Seed of the initialisation (weight: seed, bias: seed + 1); default: the default generator (manualSeed). */
  seed?: number;
}

/** Checks a layer size: a positive integer. */
export function checkFeatures(fn: string, arg: string, v: unknown): number {
  if (typeof v !== 'number') typeError(fn, `'${arg}' must be a positive integer, got ${describe(v)}`);
  if (!Number.isInteger(v) || v < 1 || v > 2 ** 31 - 1) rangeError(fn, `'${arg}' must be a positive integer, got ${v}`);
  return v;
}

/** Checks that x is a live floating tensor whose last dimension is `features`. */
export function checkInput(fn: string, x: unknown, features: number, what: string): asserts x is Tensor {
  checkTensor(fn, 'x', x);
  const shape = x.shape;
  if (shape.length === 0) rangeError(fn, `'x' must have at least one dimension ([..., ${features}]), got a 0-d tensor`);
  if (shape[shape.length - 1] !== features)
    rangeError(fn, `'x' ${shapeStr(shape)} has ${shape[shape.length - 1]} features in its last dimension, but ${what} is ${features}`);
}

/** A fully connected layer: y = x·Wᵀ + b. */
export class Linear extends Module {
  declare weight: Tensor;
  declare bias: Tensor | null;
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(inFeatures: number, outFeatures: number, opts: LinearOptions = {}) {
    super();
    const fn = 'nn.Linear';
    this.inFeatures = checkFeatures(fn, 'inFeatures', inFeatures);
    this.outFeatures = checkFeatures(fn, 'outFeatures', outFeatures);
    opts = optionsOf(fn, opts, ['bias', 'dtype', 'device', 'seed']);
    const useBias = opts.bias ?? true;
    if (typeof useBias !== 'boolean') typeError(fn, `'bias' must be a boolean, got ${describe(useBias)}`);
    const dtype = checkFloatingDType(fn, parseDType(fn, opts.dtype));
    const dev = parseDevice(fn, opts.device);
    if (opts.seed !== undefined && (typeof opts.seed !== 'number' || !Number.isSafeInteger(opts.seed)))
      (typeof opts.seed === 'number' ? rangeError : typeError)(fn, `'seed' must be an integer, got ${describe(opts.seed)}`);
    const seed = opts.seed;

    const n = native();
    const make = (shape: number[]): Tensor => fromHandle(n.empty(DTYPE_CODES[dtype], shape, dev.type, dev.index), dtype, shape, dev);
    const bound = 1 / Math.sqrt(this.inFeatures);
    this.registerParameter('weight', uniform_(make([this.outFeatures, this.inFeatures]), -bound, bound, { seed }));
    this.registerParameter('bias', useBias ? uniform_(make([this.outFeatures]), -bound, bound, { seed: seed === undefined ? undefined : seed + 1 }) : null);
  }

  /** x [..., inFeatures] → [..., outFeatures]. */
  forward(x: Tensor): Tensor {
    checkInput('nn.Linear.forward', x, this.inFeatures, 'inFeatures');
    checkLive('nn.Linear.forward', { weight: this.weight, bias: this.bias });
    const y = linearNoBias(x, this.weight);
    if (!this.bias) return y;
    const out = add(y, this.bias);
    y.dispose();
    return out;
  }

  extraRepr(): string {
    return `inFeatures=${this.inFeatures}, outFeatures=${this.outFeatures}, bias=${this.bias !== null}`;
  }
}

/** Passes its input through unchanged (a placeholder in Sequential, as torch.nn.Identity). */
export class Identity extends Module {
  forward(x: Tensor): Tensor {
    checkTensor('nn.Identity.forward', 'x', x);
    return x;
  }
}
