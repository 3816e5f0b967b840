// lr_scheduler.ts — learning-rate schedules that set each parameter group's lr, as
// torch.optim.lr_scheduler, and the two warmup schedules of Hugging Face transformers that PEFT's
// LoRA recipes use.
//
//   new LambdaLR(opt, {lrLambda})                         lr = base · f(t)            (one f, or one per group)
//   new StepLR(opt, {stepSize, gamma = 0.1})              lr = base · γ^⌊t / stepSize⌋
//   new MultiStepLR(opt, {milestones, gamma = 0.1})       lr = base · γ^(milestones ≤ t)
//   new ExponentialLR(opt, {gamma})                       lr = base · γ^t
//   new LinearLR(opt, {startFactor = 1/3, endFactor = 1, totalIters = 5})
//                                                         lr = base · (s + (e − s)·min(t, T)/T)
//   new CosineAnnealingLR(opt, {tMax, etaMin = 0})        lr = η_min + (base − η_min)·(1 + cos(π·t/tMax))/2
//   getLinearScheduleWithWarmup(opt, {numWarmupSteps, numTrainingSteps})
//   getCosineScheduleWithWarmup(opt, {numWarmupSteps, numTrainingSteps, numCycles = 0.5})
//
// t is the scheduler's step count (lastEpoch): construction sets t = 0 and each step() adds one, so
// the usual loop is `opt.step(); sched.step();`. As PyTorch's schedulers, each step derives the new rate
// from the group's current one (the formulas above are what that gives when nothing else writes lr), so
// two schedulers stepped together compose (ExponentialLR with MultiStepLR: both factors); LambdaLR and
// the warmup helpers set base·f(t). base is each group's lr before its first scheduler (PyTorch's
// initial_lr). A rate that comes out negative or not finite is refused by step() (a RangeError naming
// the scheduler), before any group changes.
import type { Optimizer } from './optimizer';
import { describe, typeError, rangeError, optionsOf } from '../errors';

/** What a scheduler saves: the step count, the base rates and the last rates set. */
export interface LRSchedulerStateDict {
  lastEpoch: number;
  baseLrs: number[];
  lastLr: number[];
}

type Groups = { paramGroups: { lr?: unknown }[] };

/** Each group's lr before its first scheduler (PyTorch's group['initial_lr']): a later scheduler of the
 * same optimizer starts from it too, not from whatever rate the earlier one left. */
const initialLr = new WeakMap<object, number>();

function currentLr(fn: string, g: { lr?: unknown }, i: number): number {
  if (typeof g.lr !== 'number' || !Number.isFinite(g.lr)) typeError(fn, `paramGroups[${i}].lr must be a finite number, got ${describe(g.lr)}`);
  return g.lr;
}

export abstract class LRScheduler {
  readonly optimizer: Optimizer<object>;
  /** Each group's lr before its first scheduler was made. */
  readonly baseLrs: number[];
  /** Steps taken: 0 after construction. */
  lastEpoch = -1;
  #lastLr: number[] = [];
  protected readonly name: string;

  protected constructor(name: string, optimizer: Optimizer<object>) {
    this.name = name;
    if (optimizer === null || typeof optimizer !== 'object' || !Array.isArray((optimizer as unknown as Groups).paramGroups))
      typeError(name, `'optimizer' must be an optimizer (optim.SGD, optim.AdamW, …), got ${describe(optimizer)}`);
    this.optimizer = optimizer;
    // recorded as the groups' initial_lr only once the first step has succeeded (see start())
    this.baseLrs = (optimizer as unknown as Groups).paramGroups.map((g, i) => initialLr.get(g) ?? currentLr(name, g, i));
  }

  /** The subclass's constructor ends with this: t = 0 and the groups' lr set (as PyTorch's initial step). */
  protected start(): void {
    this.step();
    (this.optimizer as unknown as Groups).paramGroups.forEach((g, i) => initialLr.has(g) || initialLr.set(g, this.baseLrs[i]));
  }

  /** Group i's rate at step t, from its current rate `lr` (PyTorch's chainable get_lr) and its base. */
  protected abstract lrAt(t: number, lr: number, base: number, i: number): number;

  /** Advances one step and sets every group's lr. Call it after optimizer.step(). */
  step(): void {
    const fn = `${this.name}.step`;
    const t = this.lastEpoch + 1;
    const groups = (this.optimizer as unknown as Groups).paramGroups;
    if (groups.length !== this.baseLrs.length)
      rangeError(fn, `the optimizer has ${groups.length} parameter groups but the scheduler was made for ${this.baseLrs.length}`);
    const lrs = this.baseLrs.map((b, i) => this.lrAt(t, currentLr(fn, groups[i], i), b, i));
    lrs.forEach((lr, i) => {
      if (!(Number.isFinite(lr) && lr >= 0)) rangeError(fn, `the schedule gave paramGroups[${i}] a learning rate of ${lr} at step ${t}`);
    });
    groups.forEach((g, i) => (g.lr = lrs[i]));
    this.lastEpoch = t;
    this.#lastLr = lrs;
  }

  /** The rates the last step set, one per group. */
  getLastLr(): number[] {
    return this.#lastLr.slice();
  }

  stateDict(): LRSchedulerStateDict {
    return { lastEpoch: this.lastEpoch, baseLrs: this.baseLrs.slice(), lastLr: this.#lastLr.slice() };
  }

  /** Resumes a saved schedule: its step count, base rates and last rates. As PyTorch's, it leaves the
   * groups' lr alone: the optimizer's loadStateDict brings those back (with several schedulers on one
   * optimizer each one's lastLr is only its own step's). */
  loadStateDict(state: LRSchedulerStateDict): void {
    const fn = `${this.name}.loadStateDict`;
    if (state === null || typeof state !== 'object') typeError(fn, `'state' must be a scheduler state dict, got ${describe(state)}`);
    const { lastEpoch, baseLrs, lastLr } = state;
    if (!Number.isInteger(lastEpoch) || lastEpoch < 0) rangeError(fn, `'lastEpoch' must be an integer ≥ 0, got ${describe(lastEpoch)}`);
    for (const [k, v] of [['baseLrs', baseLrs], ['lastLr', lastLr]] as const) {
      if (!Array.isArray(v) || v.length !== this.baseLrs.length || !v.every((x) => typeof x === 'number' && Number.isFinite(x)))
        rangeError(fn, `'${k}' must be ${this.baseLrs.length} finite numbers (one per parameter group), got ${describe(v)}`);
    }
    this.baseLrs.splice(0, this.baseLrs.length, ...baseLrs);
    this.lastEpoch = lastEpoch;
    this.#lastLr = lastLr.slice();
    // the groups' initial_lr, which PyTorch's optimizer state dict would have brought back
    (this.optimizer as unknown as Groups).paramGroups.forEach((g, i) => initialLr.set(g, baseLrs[i]));
  }
}

// ---------------------------------------------------------------------------------------------
// option checks

function num(fn: string, o: Record<string, unknown>, key: string, dflt?: number): number {
  const v = o[key] === undefined ? dflt : o[key];
  if (v === undefined) typeError(fn, `'${key}' is required`);
  if (typeof v !== 'number') typeError(fn, `'${key}' must be a number, got ${describe(v)}`);
  if (!Number.isFinite(v)) rangeError(fn, `'${key}' must be finite, got ${v}`);
  return v;
}

function int(fn: string, o: Record<string, unknown>, key: string, min: number, dflt?: number): number {
  const v = num(fn, o, key, dflt);
  if (!Number.isInteger(v) || v < min) rangeError(fn, `'${key}' must be an integer ≥ ${min}, got ${v}`);
  return v;
}

function nonNegative(fn: string, o: Record<string, unknown>, key: string, dflt?: number): number {
  const v = num(fn, o, key, dflt);
  if (!(v >= 0)) rangeError(fn, `'${key}' must be ≥ 0 (a learning rate is), got ${v}`);
  return v;
}

// ---------------------------------------------------------------------------------------------
// schedules

export type LrLambda = (step: number) => number;

export interface LambdaLROptions {
  /** The factor of each group's base rate at step t: one function, or one per group. */
  lrLambda: LrLambda | LrLambda[];
}

/** lr = base · lrLambda(t), as torch.optim.lr_scheduler.LambdaLR. */
export class LambdaLR extends LRScheduler {
  readonly #f: LrLambda[];
  constructor(optimizer: Optimizer<object>, opts: LambdaLROptions, name = 'optim.LambdaLR') {
    super(name, optimizer);
    const o = optionsOf(name, opts as unknown as Record<string, unknown>, ['lrLambda']);
    const f = o.lrLambda;
    const n = this.baseLrs.length;
    if (Array.isArray(f)) {
      if (f.length !== n) rangeError(name, `'lrLambda' has ${f.length} functions but the optimizer has ${n} parameter groups`);
      f.forEach((g, i) => typeof g !== 'function' && typeError(name, `'lrLambda'[${i}] must be a function, got ${describe(g)}`));
      this.#f = f as LrLambda[];
    } else {
      if (typeof f !== 'function') typeError(name, `'lrLambda' must be a function or one per group, got ${describe(f)}`);
      this.#f = new Array(n).fill(f);
    }
    this.start();
  }
  protected lrAt(t: number, _lr: number, base: number, i: number): number {
    const v = this.#f[i](t);
    if (typeof v !== 'number') typeError(`${this.name}.step`, `'lrLambda' returned ${describe(v)} at step ${t}, not a number`);
    return base * v;
  }
}

/** lr = base · gamma^⌊t / stepSize⌋, as torch.optim.lr_scheduler.StepLR. */
export class StepLR extends LRScheduler {
  readonly stepSize: number;
  readonly gamma: number;
  constructor(optimizer: Optimizer<object>, opts: { stepSize: number; gamma?: number }) {
    super('optim.StepLR', optimizer);
    const o = optionsOf(this.name, opts as unknown as Record<string, unknown>, ['stepSize', 'gamma']);
    this.stepSize = int(this.name, o, 'stepSize', 1);
    this.gamma = nonNegative(this.name, o, 'gamma', 0.1);
    this.start();
  }
  protected lrAt(t: number, lr: number): number {
    return t === 0 || t % this.stepSize !== 0 ? lr : lr * this.gamma;
  }
}

/** lr = base · gamma^(number of milestones ≤ t), as torch.optim.lr_scheduler.MultiStepLR. */
export class MultiStepLR extends LRScheduler {
  readonly milestones: readonly number[];
  readonly gamma: number;
  constructor(optimizer: Optimizer<object>, opts: { milestones: number[]; gamma?: number }) {
    super('optim.MultiStepLR', optimizer);
    const o = optionsOf(this.name, opts as unknown as Record<string, unknown>, ['milestones', 'gamma']);
    const m = o.milestones;
    if (!Array.isArray(m) || !m.every((v) => Number.isInteger(v) && v >= 0))
      typeError(this.name, `'milestones' must be an array of integers ≥ 0, got ${describe(m)}`);
    this.milestones = Object.freeze([...(m as number[])].sort((a, b) => a - b));
    this.gamma = nonNegative(this.name, o, 'gamma', 0.1);
    this.start();
  }
  protected lrAt(t: number, lr: number): number {
    const k = this.milestones.filter((m) => m === t).length; // a milestone listed twice counts twice, as PyTorch's Counter
    return k === 0 ? lr : lr * this.gamma ** k;
  }
}

/** lr = base · gamma^t, as torch.optim.lr_scheduler.ExponentialLR. */
export class ExponentialLR extends LRScheduler {
  readonly gamma: number;
  constructor(optimizer: Optimizer<object>, opts: { gamma: number }) {
    super('optim.ExponentialLR', optimizer);
    const o = optionsOf(this.name, opts as unknown as Record<string, unknown>, ['gamma']);
    this.gamma = nonNegative(this.name, o, 'gamma');
    this.start();
  }
  protected lrAt(t: number, lr: number): number {
    return t === 0 ? lr : lr * this.gamma;
  }
}

/** The factor goes linearly from startFactor to endFactor over totalIters steps, then stays (torch's LinearLR). */
export class LinearLR extends LRScheduler {
  readonly startFactor: number;
  readonly endFactor: number;
  readonly totalIters: number;
  constructor(optimizer: Optimizer<object>, opts: { startFactor?: number; endFactor?: number; totalIters?: number } = {}) {
    super('optim.LinearLR', optimizer);
    const o = optionsOf(this.name, opts as unknown as Record<string, unknown>, ['startFactor', 'endFactor', 'totalIters']);
    this.startFactor = num(this.name, o, 'startFactor', 1 / 3);
    this.endFactor = num(this.name, o, 'endFactor', 1);
    this.totalIters = int(this.name, o, 'totalIters', 1, 5);
    if (!(this.startFactor > 0 && this.startFactor <= 1)) rangeError(this.name, `'startFactor' must be in (0, 1], got ${this.startFactor}`);
    if (!(this.endFactor >= 0 && this.endFactor <= 1)) rangeError(this.name, `'endFactor' must be in [0, 1], got ${this.endFactor}`);
    this.start();
  }
  protected lrAt(t: number, lr: number): number {
    const s = this.startFactor, e = this.endFactor, T = this.totalIters;
    if (t === 0) return lr * s;
    return t > T ? lr : lr * (1 + (e - s) / (T * s + (t - 1) * (e - s)));
  }
}

/** lr = etaMin + (base − etaMin)·(1 + cos(π·t/tMax))/2, as torch.optim.lr_scheduler.CosineAnnealingLR. */
export class CosineAnnealingLR extends LRScheduler {
  readonly tMax: number;
  readonly etaMin: number;
  constructor(optimizer: Optimizer<object>, opts: { tMax: number; etaMin?: number }) {
    super('optim.CosineAnnealingLR', optimizer);
    const o = optionsOf(this.name, opts as unknown as Record<string, unknown>, ['tMax', 'etaMin']);
    this.tMax = int(this.name, o, 'tMax', 1); // (an integer, as PyTorch's T_max: the trough's test is exact then)
    this.etaMin = nonNegative(this.name, o, 'etaMin', 0);
    this.start();
  }
  protected lrAt(t: number, lr: number, base: number): number {
    const T = this.tMax, eta = this.etaMin;
    if (t === 0) return lr;
    // where the recursion's denominator would be 0 (the cosine's trough), PyTorch steps by the closed form
    if ((((t - 1 - T) % (2 * T)) + 2 * T) % (2 * T) === 0) return lr + ((base - eta) * (1 - Math.cos(Math.PI / T))) / 2;
    return ((1 + Math.cos((Math.PI * t) / T)) / (1 + Math.cos((Math.PI * (t - 1)) / T))) * (lr - eta) + eta;
  }
}

function warmupOptions(fn: string, opts: unknown, extra: string[] = []): { w: number; n: number; o: Record<string, unknown> } {
  const o = optionsOf(fn, opts as Record<string, unknown>, ['numWarmupSteps', 'numTrainingSteps', ...extra]);
  const w = int(fn, o, 'numWarmupSteps', 0);
  const n = int(fn, o, 'numTrainingSteps', 1);
  return { w, n, o };
}

/**
 * transformers' get_linear_schedule_with_warmup: the factor rises linearly from 0 to 1 over
 * numWarmupSteps, then falls linearly to 0 at numTrainingSteps (and stays 0).
 */
export function getLinearScheduleWithWarmup(optimizer: Optimizer<object>, opts: { numWarmupSteps: number; numTrainingSteps: number }): LambdaLR {
  const fn = 'optim.getLinearScheduleWithWarmup';
  const { w, n } = warmupOptions(fn, opts);
  const f = (t: number) => (t < w ? t / Math.max(1, w) : Math.max(0, (n - t) / Math.max(1, n - w)));
  return new LambdaLR(optimizer, { lrLambda: f }, fn);
}

/**
 * transformers' get_cosine_schedule_with_warmup: linear warmup from 0 over numWarmupSteps, then
 * max(0, (1 + cos(2π·numCycles·progress))/2) with progress going 0 → 1 up to numTrainingSteps
 * (numCycles = 0.5: one half cosine down to 0).
 */
export function getCosineScheduleWithWarmup(
  optimizer: Optimizer<object>, opts: { numWarmupSteps: number; numTrainingSteps: number; numCycles?: number },
): LambdaLR {
  const fn = 'optim.getCosineScheduleWithWarmup';
  const { w, n, o } = warmupOptions(fn, opts, ['numCycles']);
  const cycles = num(fn, o, 'numCycles', 0.5);
  const f = (t: number) => {
    if (t < w) return t / Math.max(1, w);
    const progress = (t - w) / Math.max(1, n - w);
    return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * cycles * 2 * progress)));
  };
  return new LambdaLR(optimizer, { lrLambda: f }, fn);
}
