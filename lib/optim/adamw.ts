// adamw.ts — optim.AdamW: Adam with decoupled weight decay (Loshchilov & Hutter), exactly PyTorch's
// torch.optim.AdamW update for a parameter p with gradient g at step t = 1, 2, … (all in place):
//
//   g ← −g                                   if maximize
//   p ← p·(1 − lr·weightDecay)               decoupled decay, before the Adam step
//   m ← β₁·m + (1 − β₁)·g                    first moment  (m₀ = 0)
//   v ← β₂·v + (1 − β₂)·g²                   second moment (v₀ = 0)
//   v̂ ← max(v̂, v), and v̂ replaces v below  if amsgrad
//   p ← p − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
import type { Tensor } from '../tensor';
import { native, type Handle } from '../native';
import { describe, typeError, rangeError } from '../errors';
import {
  Optimizer, checkKnownKeys, checkNonNegative, checkBool, checkOptionsObject, zerosState,
  type ParamGroupInput, type ParamState, type StateSpec, type Temps,
} from './optimizer';

export interface AdamWOptions {
  /** Learning rate (default 1e-3). */
  lr: number;
  /** Decay rates of the moment estimates (default [0.9, 0.999]), each in [0, 1). */
  betas: [number, number];
  /** Added to the denominator for stability (default 1e-8). */
  eps: number;
  /** Decoupled weight decay (default 1e-2, as PyTorch). */
  weightDecay: number;
  /** The AMSGrad variant (default false). */
  amsgrad: boolean;
  /** Maximise the objective instead (default false). */
  maximize: boolean;
}

const KEYS = ['lr', 'betas', 'eps', 'weightDecay', 'amsgrad', 'maximize'] as const;
const DEFAULTS: AdamWOptions = { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2, amsgrad: false, maximize: false };

function checkAdamWOptions(fn: string, opts: Record<string, unknown>, base: AdamWOptions): AdamWOptions {
  checkKnownKeys(fn, opts, KEYS);
  const o = { ...base, ...(opts as Partial<AdamWOptions>) };
  checkNonNegative(fn, 'lr', o.lr);
  const b = o.betas as unknown;
  if (!Array.isArray(b) || b.length !== 2 || typeof b[0] !== 'number' || typeof b[1] !== 'number')
    typeError(fn, `'betas' must be an array of two numbers [β₁, β₂], got ${describe(b)}`);
  b.forEach((v: number, i: number) => {
    if (!(v >= 0 && v < 1)) rangeError(fn, `'betas[${i}]' must be in [0, 1), got ${v}`);
  });
  checkNonNegative(fn, 'eps', o.eps);
  checkNonNegative(fn, 'weightDecay', o.weightDecay);
  checkBool(fn, 'amsgrad', o.amsgrad);
  checkBool(fn, 'maximize', o.maximize);
  return { lr: o.lr, betas: [b[0], b[1]], eps: o.eps, weightDecay: o.weightDecay, amsgrad: o.amsgrad, maximize: o.maximize };
}

export class AdamW extends Optimizer<AdamWOptions> {
  /**
   * @param params tensors (e.g. model.parameters()) or groups `{params, lr?, betas?, …}`
   * @param opts   defaults for every group
   */
  constructor(params: Iterable<Tensor> | Iterable<ParamGroupInput<AdamWOptions>>, opts: Partial<AdamWOptions> = {}) {
    super('optim.AdamW', params, checkAdamWOptions('optim.AdamW', checkOptionsObject('optim.AdamW', opts), DEFAULTS));
  }

  /** step: the number of updates so far; expAvg: m; expAvgSq: v; maxExpAvgSq: v̂ (amsgrad). */
  protected get stateSpec(): StateSpec {
    return { step: 'number', expAvg: 'tensor', expAvgSq: 'tensor', maxExpAvgSq: 'tensor' };
  }

  /** (maxExpAvgSq may be absent: amsgrad turned on later starts it at zeros.) */
  protected get requiredState(): readonly string[] {
    return ['step', 'expAvg', 'expAvgSq'];
  }

  protected checkOptions(fn: string, opts: Record<string, unknown>, base: AdamWOptions): AdamWOptions {
    return checkAdamWOptions(fn, opts, base);
  }

  protected update(p: Tensor, ph: Handle, gh: Handle, state: ParamState, o: AdamWOptions, temps: Temps): void {
    const n = native();
    const [beta1, beta2] = o.betas;
    const g = o.maximize ? temps.add(n.unary('neg', gh)) : gh;
    if (state.expAvg === undefined) {
      state.step = 0;
      state.expAvg = zerosState(p);
      state.expAvgSq = zerosState(p);
    }
    if (o.amsgrad && state.maxExpAvgSq === undefined) state.maxExpAvgSq = zerosState(p);
    const step = (state.step as number) + 1;
    state.step = step;
    const m = (state.expAvg as Tensor)._h;
    const v = (state.expAvgSq as Tensor)._h;

    if (o.weightDecay !== 0) n.unary('mul_scalar', ph, 1 - o.lr * o.weightDecay, undefined, ph);

    // One scratch tensor serves every intermediate below.
    const t = temps.add(n.unary('mul_scalar', g, 1 - beta1));
    n.unary('mul_scalar', m, beta1, undefined, m);
    n.binary('add', m, t, m);

    n.unary('square', g, undefined, undefined, t);
    n.unary('mul_scalar', t, 1 - beta2, undefined, t);
    n.unary('mul_scalar', v, beta2, undefined, v);
    n.binary('add', v, t, v);

    let vUse = v;
    if (o.amsgrad) {
      const vmax = (state.maxExpAvgSq as Tensor)._h;
      n.binary('maximum', vmax, v, vmax);
      vUse = vmax;
    }
    const bc1 = 1 - beta1 ** step;
    const bc2 = 1 - beta2 ** step;
    const stepSize = o.lr / bc1;
    n.unary('sqrt', vUse, undefined, undefined, t);
    n.unary('mul_scalar', t, 1 / Math.sqrt(bc2), undefined, t);
    n.unary('add_scalar', t, o.eps, undefined, t);
    n.binary('div', m, t, t);
    n.unary('mul_scalar', t, stepSize, undefined, t);
    n.binary('sub', ph, t, ph);
  }
}
