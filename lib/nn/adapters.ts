// adapters.ts — nn.disableAdapters(model, fn): PEFT's `with model.disable_adapter():` — fn runs with
// every LoRA layer of the model (nn.LoRALinear, nn.MultiLoRALinear) computing its base layer alone, and
// each layer's switch is put back afterwards, also when fn throws. The frozen base model without a second
// copy of its weights: DPO's reference model (TRL computes the reference log-probabilities this way), or
// the base's output beside the fine-tune's. Unlike PEFT, modules trained in full (injectLora's
// modulesToSave) keep their trained weights inside fn: they are trained in place and no original copy
// is kept. A merged nn.LoRALinear is unmerged inside fn (its weight must be the base's), which a pending
// backward through an earlier forward of it then refuses (the weight it saved changed).
import { describe, typeError, rangeError } from '../errors';
import type { NotPromise } from '../tensor';
import { Module } from './module';
import { withSwitch } from './linear';
import { LoRALinear } from './lowrank';
import { MultiLoRALinear } from './multilora';

/** Runs fn with the adapters of every LoRA layer of `module` switched off; returns what fn returns. */
export function disableAdapters<T>(module: Module, fn: () => NotPromise<T>): T {
  const name = 'nn.disableAdapters';
  if (!(module instanceof Module)) typeError(name, `'module' must be an nn.Module, got ${describe(module)}`);
  if (typeof fn !== 'function') typeError(name, `'fn' must be a function, got ${describe(fn)}`);
  const layers = [...module.modules()].filter((m): m is LoRALinear | MultiLoRALinear => (m instanceof LoRALinear || m instanceof MultiLoRALinear) && !m.unloaded);
  if (layers.length === 0) rangeError(name, 'the module has no LoRA layer (nn.LoRALinear or nn.MultiLoRALinear) to switch off');
  const was = layers.map((l) => l.adaptersEnabled);
  for (const l of layers) l.enableAdapters(false);
  return withSwitch(name, fn, () => layers.forEach((l, i) => l.enableAdapters(was[i])), 'the adapters are off');
}
