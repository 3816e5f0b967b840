// init.ts — in-place initialisers, as torch.nn.init: uniform_, normal_, constant_, zeros_, ones_,
// kaimingUniform_, kaimingNormal_, xavierUniform_, xavierNormal_, and calculateGain.
//
// They write into an existing tensor (any floating dtype, any layout) without recording autograd,
// so they work on registered parameters. Random ones take {seed}: the same seed gives the same
// values on every device (the native generator is counter-based). Without a seed they draw from the
// default generator of randn/rand, which manualSeed(n) makes reproducible.
import { Tensor, isFloating } from '../tensor';
import { native, DTYPE_CODES } from '../native';
import { rand, randn } from '../ops/creation';
import { describe, shapeStr, typeError, rangeError, optionsOf } from '../errors';

function checkTarget(fn: string, t: unknown): asserts t is Tensor {
  if (!(t instanceof Tensor)) typeError(fn, `'tensor' must be a Tensor, got ${describe(t)}`);
  if (t.isDisposed) typeError(fn, `'tensor' is a disposed tensor (shape ${shapeStr(t.shape)})`);
  if (!isFloating(t.dtype)) typeError(fn, `'tensor' must be a floating tensor, got ${t.dtype}`);
}

function checkSeed(fn: string, seed: unknown): number | undefined {
  if (seed === undefined) return undefined;
  if (typeof seed !== 'number') typeError(fn, `'seed' must be an integer, got ${describe(seed)}`);
  if (!Number.isSafeInteger(seed)) rangeError(fn, `'seed' must be a safe integer, got ${seed}`);
  return seed;
}

function checkFinite(fn: string, arg: string, v: unknown): number {
  if (typeof v !== 'number') typeError(fn, `'${arg}' must be a number, got ${describe(v)}`);
  if (!Number.isFinite(v)) rangeError(fn, `'${arg}' must be finite, got ${v}`);
  return v;
}

/** Writes a freshly drawn (kind) tensor, mapped by x·scale + shift, into t. */
function fillRandom(t: Tensor, kind: 'uniform' | 'normal', scale: number, shift: number, seed: number | undefined): Tensor {
  const n = native();
  const r = (kind === 'uniform' ? rand : randn)(t.shape, { seed, dtype: t.dtype, device: t.device });
  const h = r._h;
  try {
    n.unary('mul_scalar', h, scale, undefined, h);
    n.unary('add_scalar', h, shift, undefined, h);
    n.copyInto(t._h, h);
  } finally {
    r.dispose();
  }
  return t;
}

/** Fills t with U(low, high). Returns t. */
export function uniform_(t: Tensor, low = 0, high = 1, opts: { seed?: number } = {}): Tensor {
  const fn = 'nn.init.uniform_';
  checkTarget(fn, t);
  opts = optionsOf(fn, opts, ['seed']);
  checkFinite(fn, 'low', low);
  checkFinite(fn, 'high', high);
  if (high < low) rangeError(fn, `'high' (${high}) must be at least 'low' (${low})`);
  return fillRandom(t, 'uniform', high - low, low, checkSeed(fn, opts.seed));
}

/** Fills t with N(mean, std²). Returns t. */
export function normal_(t: Tensor, mean = 0, std = 1, opts: { seed?: number } = {}): Tensor {
  const fn = 'nn.init.normal_';
  checkTarget(fn, t);
  opts = optionsOf(fn, opts, ['seed']);
  checkFinite(fn, 'mean', mean);
  checkFinite(fn, 'std', std);
  if (std < 0) rangeError(fn, `'std' must be non-negative, got ${std}`);
  return fillRandom(t, 'normal', std, mean, checkSeed(fn, opts.seed));
}

/** Fills t with value. Returns t. */
export function constant_(t: Tensor, value: number): Tensor {
  const fn = 'nn.init.constant_';
  checkTarget(fn, t);
  if (typeof value !== 'number') typeError(fn, `'value' must be a number, got ${describe(value)}`);
  const n = native();
  const h = n.full(DTYPE_CODES[t.dtype], [], value, t._dev.type, t._dev.index);
  try {
    n.copyInto(t._h, h);
  } finally {
    n.dispose(h);
  }
  return t;
}

export function zeros_(t: Tensor): Tensor {
  return constant_(t, 0);
}

export function ones_(t: Tensor): Tensor {
  return constant_(t, 1);
}

export type Nonlinearity = 'linear' | 'identity' | 'sigmoid' | 'tanh' | 'relu' | 'leaky_relu' | 'selu';

/** PyTorch's recommended gain for a nonlinearity (param: leaky_relu's negative slope, default 0.01). */
export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  const fn = 'nn.init.calculateGain';
  switch (nonlinearity) {
    case 'linear':
    case 'identity':
    case 'sigmoid':
      return 1;
    case 'tanh':
      return 5 / 3;
    case 'relu':
      return Math.SQRT2;
    case 'leaky_relu': {
      const slope = param === undefined ? 0.01 : checkFinite(fn, 'param', param);
      return Math.sqrt(2 / (1 + slope * slope));
    }
    case 'selu':
      return 3 / 4;
    default:
      return rangeError(fn, `unknown nonlinearity ${describe(nonlinearity)}; expected one of linear, identity, sigmoid, tanh, relu, leaky_relu, selu`);
  }
}

/**
 * fanIn and fanOut of a weight as PyTorch computes them: dims [out, in, ...receptive field];
 * fanIn = in·∏receptive, fanOut = out·∏receptive. Needs at least 2 dimensions.
 */
export function calculateFans(t: Tensor): { fanIn: number; fanOut: number } {
  const shape = t.shape;
  if (shape.length < 2)
    rangeError('nn.init.calculateFans', `fan in and fan out need a tensor of at least 2 dimensions, got shape ${shapeStr(shape)}`);
  let receptive = 1;
  for (let i = 2; i < shape.length; i++) receptive *= shape[i];
  return { fanIn: shape[1] * receptive, fanOut: shape[0] * receptive };
}

export interface KaimingOptions {
  /** leaky_relu's negative slope (PyTorch's default 0; nn.Linear uses √5). */
  a?: number;
  mode?: 'fanIn' | 'fanOut';
  nonlinearity?: Nonlinearity;
  seed?: number;
}

function kaimingStd(fn: string, t: Tensor, opts: KaimingOptions): number {
  optionsOf(fn, opts, ['a', 'mode', 'nonlinearity', 'seed']);
  const mode = opts.mode ?? 'fanIn';
  if (mode !== 'fanIn' && mode !== 'fanOut') rangeError(fn, `'mode' must be 'fanIn' or 'fanOut', got ${describe(mode)}`);
  const fans = calculateFans(t);
  const fan = mode === 'fanIn' ? fans.fanIn : fans.fanOut;
  if (fan === 0) rangeError(fn, `cannot initialise a tensor with a zero fan (shape ${shapeStr(t.shape)})`);
  const gain = calculateGain(opts.nonlinearity ?? 'leaky_relu', opts.a ?? 0);
  return gain / Math.sqrt(fan);
}

/** He uniform: U(−b, b), b = gain·√(3/fan). With a = √5 (nn.Linear's choice) b = 1/√fanIn. Returns t. */
export function kaimingUniform_(t: Tensor, opts: KaimingOptions = {}): Tensor {
  const fn = 'nn.init.kaimingUniform_';
  checkTarget(fn, t);
  const bound = Math.sqrt(3) * kaimingStd(fn, t, opts);
  return fillRandom(t, 'uniform', 2 * bound, -bound, checkSeed(fn, opts.seed));
}

/** He normal: N(0, std²), std = gain/√fan. Returns t. */
export function kaimingNormal_(t: Tensor, opts: KaimingOptions = {}): Tensor {
  const fn = 'nn.init.kaimingNormal_';
  checkTarget(fn, t);
  return fillRandom(t, 'normal', kaimingStd(fn, t, opts), 0, checkSeed(fn, opts.seed));
}

/** Glorot uniform: U(−b, b), b = gain·√(6/(fanIn + fanOut)). Returns t. */
export function xavierUniform_(t: Tensor, opts: { gain?: number; seed?: number } = {}): Tensor {
  const fn = 'nn.init.xavierUniform_';
  checkTarget(fn, t);
  opts = optionsOf(fn, opts, ['gain', 'seed']);
  const gain = opts.gain === undefined ? 1 : checkFinite(fn, 'gain', opts.gain);
  const { fanIn, fanOut } = calculateFans(t);
  const bound = gain * Math.sqrt(6 / (fanIn + fanOut));
  return fillRandom(t, 'uniform', 2 * bound, -bound, checkSeed(fn, opts.seed));
}

/** Glorot normal: N(0, std²), std = gain·√(2/(fanIn + fanOut)). Returns t. */
export function xavierNormal_(t: Tensor, opts: { gain?: number; seed?: number } = {}): Tensor {
  const fn = 'nn.init.xavierNormal_';
  checkTarget(fn, t);
  opts = optionsOf(fn, opts, ['gain', 'seed']);
  const gain = opts.gain === undefined ? 1 : checkFinite(fn, 'gain', opts.gain);
  const { fanIn, fanOut } = calculateFans(t);
  return fillRandom(t, 'normal', gain * Math.sqrt(2 / (fanIn + fanOut)), 0, checkSeed(fn, opts.seed));
}
