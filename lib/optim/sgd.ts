// sgd.ts — optim.SGD: stochastic gradient descent with momentum, dampening, Nesterov momentum and
// (coupled, L2) weight decay, exactly PyTorch's torch.optim.SGD update for a parameter p with
// gradient g (all in place):
//
//   g ← −g                                  if maximize
//   g ← g + weightDecay·p                   if weightDecay ≠ 0
//   if momentum ≠ 0:
//     b ← g (a copy)                         at the first step
//     b ← momentum·b + (1 − dampening)·g     afterwards
//     g ← g + momentum·b                     if nesterov, else g ← b
//   p ← p − lr·g
import type { Tensor } from '../tensor';
import { native, DTYPE_CODES, type Handle } from '../native';
import { rangeError } from '../errors';
import {
  Optimizer, checkKnownKeys, checkOptionsObject, checkNonNegative, checkBool, stateTensor,
  type ParamGroupInput, type ParamState, type StateSpec, type Temps,
} from './optimizer';

export interface SGDOptions {
  /** Learning rate (default 1e-3, as PyTorch). */
  lr: number;
  /** Momentum factor (default 0). */
  momentum: number;
  /** Dampening of the momentum (default 0). */
  dampening: number;
  /** L2 penalty added to the gradient (default 0). */
  weightDecay: number;
  /** Nesterov momentum (default false; needs momentum > 0 and dampening 0). */
  nesterov: boolean;
  /** Maximise the objective instead (default false). */
  maximize: boolean;
}

const KEYS = ['lr', 'momentum', 'dampening', 'weightDecay', 'nesterov', 'maximize'] as const;
const DEFAULTS: SGDOptions = { lr: 1e-3, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, maximize: false };

function checkSGDOptions(fn: string, opts: Record<string, unknown>, base: SGDOptions): SGDOptions {
  checkKnownKeys(fn, opts, KEYS);
  const o = { ...base, ...(opts as Partial<SGDOptions>) };
  checkNonNegative(fn, 'lr', o.lr);
  checkNonNegative(fn, 'momentum', o.momentum);
  checkNonNegative(fn, 'dampening', o.dampening);
  checkNonNegative(fn, 'weightDecay', o.weightDecay);
  checkBool(fn, 'nesterov', o.nesterov);
  checkBool(fn, 'maximize', o.maximize);
  if (o.nesterov && (o.momentum <= 0 || o.dampening !== 0))
    rangeError(fn, `nesterov momentum needs momentum > 0 and dampening = 0, got momentum ${o.momentum}, dampening ${o.dampening}`);
  return { lr: o.lr, momentum: o.momentum, dampening: o.dampening, weightDecay: o.weightDecay, nesterov: o.nesterov, maximize: o.maximize };
}

export class SGD extends Optimizer<SGDOptions> {
  /**
   * @param params tensors (e.g. model.parameters()) or groups `{params, lr?, momentum?, …}`
   * @param opts   defaults for every group
   */
  constructor(params: Iterable<Tensor> | Iterable<ParamGroupInput<SGDOptions>>, opts: Partial<SGDOptions> = {}) {
    super('optim.SGD', params, checkSGDOptions('optim.SGD', checkOptionsObject('optim.SGD', opts), DEFAULTS));
  }

  protected get stateSpec(): StateSpec {
    return { momentumBuffer: 'tensor' };
  }

  protected checkOptions(fn: string, opts: Record<string, unknown>, base: SGDOptions): SGDOptions {
    return checkSGDOptions(fn, opts, base);
  }

  protected update(p: Tensor, ph: Handle, gh: Handle, state: ParamState, o: SGDOptions, temps: Temps): void {
    const n = native();
    let d = gh;
    if (o.maximize) d = temps.add(n.unary('neg', d));
    if (o.weightDecay !== 0) {
      const t = temps.add(n.unary('mul_scalar', ph, o.weightDecay));
      n.binary('add', d, t, t);
      d = t;
    }
    if (o.momentum !== 0) {
      let buf = state.momentumBuffer as Tensor | undefined;
      if (!buf) {
        // cast() always copies: the buffer owns its values
        buf = stateTensor(n.cast(d, DTYPE_CODES[p.dtype]), p);
        state.momentumBuffer = buf;
      } else {
        n.unary('mul_scalar', buf._h, o.momentum, undefined, buf._h);
        if (o.dampening === 0) n.binary('add', buf._h, d, buf._h);
        else {
          const t = temps.add(n.unary('mul_scalar', d, 1 - o.dampening));
          n.binary('add', buf._h, t, buf._h);
        }
      }
      if (o.nesterov) {
        const t = temps.add(n.unary('mul_scalar', buf._h, o.momentum));
        n.binary('add', d, t, t);
        d = t;
      } else {
        d = buf._h;
      }
    }
    const step = temps.add(n.unary('mul_scalar', d, o.lr));
    n.binary('sub', ph, step, ph);
  }
}
