// optim — optimizers over parameters updated in place: SGD (momentum, Nesterov) and AdamW.
export { Optimizer } from './optimizer';
export type { ParamGroup, ParamGroupInput, ParamState, StateValue, OptimizerStateDict } from './optimizer';
export { SGD } from './sgd';
export type { SGDOptions } from './sgd';
export { AdamW } from './adamw';
export type { AdamWOptions } from './adamw';
