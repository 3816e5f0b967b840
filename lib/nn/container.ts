// container.ts — nn.Sequential: modules applied in order, y = mₙ(…m₂(m₁(x))), registered under the
// names "0", "1", … so their state-dict keys are "0.weight", "2.bias", as in PyTorch.
import type { Tensor } from '../tensor';
import { checkTensor } from '../tensor';
import { describe, typeError, rangeError } from '../errors';
import { Module } from './module';

export class Sequential extends Module {
  #count = 0;

  constructor(...modules: Module[]) {
    super();
    modules.forEach((m, i) => {
      if (!(m instanceof Module)) typeError('nn.Sequential', `'modules[${i}]' must be an nn.Module, got ${describe(m)}`);
    });
    for (const m of modules) this.append(m);
  }

  /** Adds a module at the end (named by its index). Returns this. */
  append(m: Module): this {
    if (!(m instanceof Module)) typeError('nn.Sequential.append', `'module' must be an nn.Module, got ${describe(m)}`);
    this.registerModule(String(this.#count++), m);
    return this;
  }

  /** Number of modules. */
  get length(): number {
    return this.#count;
  }

  /** The i-th module (negative counts from the end). */
  at(i: number): Module {
    if (typeof i !== 'number' || !Number.isInteger(i)) typeError('nn.Sequential.at', `'index' must be an integer, got ${describe(i)}`);
    if (i < -this.#count || i >= this.#count)
      rangeError('nn.Sequential.at', `'index' ${i} is out of range for a Sequential of ${this.#count} modules`);
    return (this as unknown as Record<string, Module>)[String(i < 0 ? i + this.#count : i)];
  }

  [Symbol.iterator](): IterableIterator<Module> {
    return this.children();
  }

  /**
   * Feeds x through every module in turn. Intermediate results are left to the caller's tidy() (a
   * module may keep its output, so they are not disposed here).
   */
  forward(x: Tensor): Tensor {
    checkTensor('nn.Sequential.forward', 'x', x);
    let h = x;
    for (const m of this.children()) h = m.forward(h) as Tensor;
    return h;
  }
}
