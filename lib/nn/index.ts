// nn — layers: the Module base class, Linear, Sequential, activations, Dropout, and init (torch.nn.init).
export { Module } from './module';
export type { StateDict, LoadStateDictResult } from './module';
export { Linear, Identity } from './linear';
export type { LinearOptions } from './linear';
export { Sequential } from './container';
export { LowRankLinear, LoRALinear } from './lowrank';
export type { LowRankLinearOptions, LoRAOptions } from './lowrank';
export { injectLora, unloadLora } from './peft';
export type { InjectLoraOptions } from './peft';
export { disableAdapters } from './adapters';
export { MultiLoRALinear, injectMultiLora, useAdapters, setActiveAdapter, deleteAdapter, adapterNames, BASE_ADAPTER } from './multilora';
export type { MultiLoRAOptions, AddAdapterOptions, AdapterChoice, InjectMultiLoraOptions } from './multilora';
export { ReLU, GELU, SiLU, Tanh, Sigmoid } from './activation';
export { Dropout } from './dropout';
export * as init from './init';
export * as utils from './utils';
