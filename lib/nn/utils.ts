// utils.ts — gradient clipping, as torch.nn.utils: clipGradNorm_ and clipGradValue_.
//
//   clipGradNorm_(params, maxNorm, {normType = 2, errorIfNonfinite = false}) → total norm (0-d tensor)
//       total = ‖(‖g_1‖_p, …, ‖g_n‖_p)‖_p over the gradients that exist; every g_i is multiplied in
//       place by min(1, maxNorm / (total + 1e-6)) (PyTorch's formula and epsilon). A parameter listed
//       twice counts once (PyTorch would count its gradient twice and scale it twice).
//   clipGradValue_(params, clipValue)   every gradient element clamped in place to [−clipValue, clipValue]
//
// The gradients are rewritten in place (the same tensors, as p.grad.mul_ in PyTorch), outside
// autograd. Nothing is read back to the host unless errorIfNonfinite asks (the check needs the value):
// the norm and the scale factor stay on the gradients' device, so a step on a GPU does not wait here.
// Norms are computed in float32 (float64 for float64 gradients) whatever the gradient dtype, so a
// bfloat16 model's norm is not rounded to 8 bits before the clip factor is formed (PyTorch computes a
// 16-bit gradient's norm in float32 too, but rounds the result to the gradient's dtype).
import { Tensor, tidy, isFloating } from '../tensor';
import { native } from '../native';
import { noGrad } from '../autograd';
import { describe, shapeStr, typeError, rangeError, optionsOf } from '../errors';
import { abs, pow, sqrt, square, div, add, mul, clamp, where, gt, lt } from '../ops/elementwise';
import { sum, max } from '../ops/reduce';
import { cast, stack } from '../ops/shape';
import { zeros } from '../ops/creation';

/** The parameters' gradients that exist (a single tensor or an iterable, as PyTorch takes). */
function gradsOf(fn: string, params: unknown): Tensor[] {
  let list: unknown[];
  if (params instanceof Tensor) list = [params];
  else if (params !== null && typeof params === 'object' && Symbol.iterator in params) list = [...(params as Iterable<unknown>)];
  else if (params !== null && typeof params === 'object' && typeof (params as { parameters?: unknown }).parameters === 'function')
    typeError(fn, `'parameters' must be a Tensor or an iterable of tensors, got ${describe(params)}; pass module.parameters()`);
  else typeError(fn, `'parameters' must be a Tensor or an iterable of tensors, got ${describe(params)}`);
  const grads = new Set<Tensor>(); // a tensor listed twice is clipped once
  list.forEach((p, i) => {
    if (!(p instanceof Tensor)) typeError(fn, `'parameters'[${i}] must be a Tensor, got ${describe(p)}`);
    if (p.isDisposed) typeError(fn, `'parameters'[${i}] is a disposed tensor (shape ${shapeStr(p.shape)})`);
    const g = p.grad;
    if (g === null) return;
    if (g.isDisposed) typeError(fn, `the gradient of 'parameters'[${i}] ${shapeStr(p.shape)} is a disposed tensor`);
    if (!isFloating(g.dtype)) typeError(fn, `the gradient of 'parameters'[${i}] must be floating, got ${g.dtype}`);
    grads.add(g);
  });
  return [...grads];
}

/** ‖v‖_p of a 1-D or any-shaped floating tensor, a 0-d tensor of v's dtype. */
function vectorNorm(v: Tensor, p: number): Tensor {
  if (v.size === 0) return zeros([], { dtype: v.dtype, device: v.device });
  if (p === Infinity) return max(abs(v));
  if (p === 2) return sqrt(sum(square(v)));
  if (p === 1) return sum(abs(v));
  // other p: |v|^p leaves float32's range soon (p = 100 and |v| = 20), so m·‖v/m‖_p with m = max |v|
  // (0 and non-finite m as they are: the norm is then m)
  const a = abs(v), m = max(a);
  const scaled = mul(pow(sum(pow(div(a, m), p)), 1 / p), m);
  return where(mul(gt(m, 0), lt(m, Infinity)), scaled, m);
}

export interface ClipGradNormOptions {
  /** p of the norm: any p > 0, or Infinity (the largest |element|). Default 2. */
  normType?: number;
  /** Throw (a RangeError) when the total norm is NaN or ±Infinity instead of scaling by it. Default false. */
  errorIfNonfinite?: boolean;
}

/**
 * Scales the gradients of `parameters` in place so that their total p-norm (the norm of all of them
 * as one vector) is at most `maxNorm`, as torch.nn.utils.clip_grad_norm_. Returns the total norm
 * before clipping as a 0-d tensor (float32, or float64 when a gradient is float64) on the first
 * gradient's device; parameters without a gradient are skipped (no gradient at all: a zero norm).
 */
export function clipGradNorm_(parameters: Tensor | Iterable<Tensor>, maxNorm: number, opts: ClipGradNormOptions = {}): Tensor {
  const fn = 'nn.utils.clipGradNorm_';
  const grads = gradsOf(fn, parameters);
  if (typeof maxNorm !== 'number') typeError(fn, `'maxNorm' must be a number, got ${describe(maxNorm)}`);
  if (!(maxNorm >= 0)) rangeError(fn, `'maxNorm' must be ≥ 0, got ${maxNorm}`);
  const o = optionsOf(fn, opts as Record<string, unknown>, ['normType', 'errorIfNonfinite']);
  const p = o.normType === undefined ? 2 : o.normType;
  if (typeof p !== 'number') typeError(fn, `'normType' must be a number, got ${describe(p)}`);
  if (!(p > 0)) rangeError(fn, `'normType' must be > 0 or Infinity, got ${p}`);
  const strict = o.errorIfNonfinite === undefined ? false : o.errorIfNonfinite;
  if (typeof strict !== 'boolean') typeError(fn, `'errorIfNonfinite' must be a boolean, got ${describe(strict)}`);
  const wide = grads.some((g) => g.dtype === 'float64') ? 'float64' : 'float32';
  if (grads.length === 0) return zeros([], { dtype: 'float32' });
  const dev = grads[0].device;
  return noGrad(() => {
    const total = tidy(() => {
      const norms = grads.map((g) => {
        const n = vectorNorm(g.dtype === wide ? g : cast(g, wide), p);
        return n.device === dev ? n : n.to(dev);
      });
      return norms.length === 1 ? norms[0] : vectorNorm(stack(norms), p);
    });
    if (strict) {
      const t = total.item();
      if (!Number.isFinite(t)) {
        total.dispose();
        rangeError(fn, `the total norm of order ${p} of the gradients is ${t}, so they cannot be clipped; to scale them by it anyway, leave 'errorIfNonfinite' false`);
      }
    }
    tidy(() => {
      const coef = clamp(div(maxNorm, add(total, 1e-6)), undefined, 1);
      const n = native();
      for (const g of grads)
        tidy(() => {
          const c = coef.device === g.device ? coef : coef.to(g.device);
          if (g.dtype === c.dtype && g.isContiguous) n.binary('mul', g._h, c._h, g._h);
          else if (g.dtype === c.dtype) n.copyInto(g._h, mul(g, c)._h); // a strided gradient (a view set as .grad)
          // 16-bit gradients times the float32 factor, rounded once (not by a factor rounded to 8 bits)
          else n.copyInto(g._h, cast(mul(cast(g, c.dtype), c), g.dtype)._h);
        });
    });
    return total;
  });
}

/**
 * Clamps every gradient element of `parameters` to [−clipValue, clipValue] in place, as
 * torch.nn.utils.clip_grad_value_. Parameters without a gradient are skipped.
 */
export function clipGradValue_(parameters: Tensor | Iterable<Tensor>, clipValue: number): void {
  const fn = 'nn.utils.clipGradValue_';
  const grads = gradsOf(fn, parameters);
  if (typeof clipValue !== 'number') typeError(fn, `'clipValue' must be a number, got ${describe(clipValue)}`);
  if (!(clipValue >= 0)) rangeError(fn, `'clipValue' must be ≥ 0, got ${clipValue}`);
  const n = native();
  for (const g of grads)
    if (g.isContiguous) n.unary('clamp', g._h, -clipValue, clipValue, g._h);
    else noGrad(() => tidy(() => n.copyInto(g._h, clamp(g, -clipValue, clipValue)._h)));
}
