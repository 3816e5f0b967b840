// dropout.ts — nn.Dropout(p): in training mode zeroes each element with probability p and scales the
// others by 1/(1 − p) (the dropout op, a fresh mask each call from the default generator: see
// manualSeed); after eval() it passes its input through. Any shape in, same shape out.
import type { Tensor } from '../tensor';
import { dropoutImpl } from '../ops/elementwise';
import { checkProbability } from '../errors';
import { Module } from './module';

export class Dropout extends Module {
  readonly p: number;

  constructor(p = 0.5) {
    super();
    this.p = checkProbability('nn.Dropout', 'p', p);
  }

  forward(x: Tensor): Tensor {
    return dropoutImpl('nn.Dropout.forward', x, this.p, this.training, undefined);
  }

  extraRepr(): string {
    return `p=${this.p}`;
  }
}
