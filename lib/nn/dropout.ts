// dropout.ts — nn.Dropout(p): in training mode zeroes each element with probability p and scales the
// others by 1/(1 − p) (the dropout op, a fresh mask each call from the default generator: see
// manualSeed); after eval() it passes its input through. Any shape in, same shape out.
import type { Tensor } from '../tensor';
import { checkTensor, checkFloating } from '../tensor';
import { dropout } from '../ops/elementwise';
import { describe, typeError, rangeError } from '../errors';
import { Module } from './module';

/** Checks a dropout probability: a number in [0, 1]. */
export function checkProbability(fn: string, arg: string, p: unknown): number {
  if (typeof p !== 'number') typeError(fn, `'${arg}' must be a number in [0, 1], got ${describe(p)}`);
  if (!(p >= 0 && p <= 1)) rangeError(fn, `'${arg}' must be a probability in [0, 1], got ${p}`);
  return p as number;
}

export class Dropout extends Module {
  readonly p: number;

  constructor(p = 0.5) {
    super();
    this.p = checkProbability('nn.Dropout', 'p', p);
  }

  forward(x: Tensor): Tensor {
    checkTensor('nn.Dropout.forward', 'x', x);
    if (this.training && this.p > 0) checkFloating('nn.Dropout.forward', 'x', x);
    return dropout(x, this.p, { training: this.training });
  }

  extraRepr(): string {
    return `p=${this.p}`;
  }
}
