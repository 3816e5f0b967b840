// optim — optimizers over parameters updated in place: SGD (momentum, Nesterov) and AdamW; learning-rate schedules (lr_scheduler.ts).
export { Optimizer } from './optimizer';
export type { ParamGroup, ParamGroupInput, ParamState, StateValue, OptimizerStateDict } from './optimizer';
export { SGD } from './sgd';
export type { SGDOptions } from './sgd';
export { AdamW } from './adamw';
export type { AdamWOptions } from './adamw';
export {
  LRScheduler, LambdaLR, StepLR, MultiStepLR, ExponentialLR, LinearLR, CosineAnnealingLR,
  getLinearScheduleWithWarmup, getCosineScheduleWithWarmup,
} from './lr_scheduler';
export type { LRSchedulerStateDict, LambdaLROptions, LrLambda } from './lr_scheduler';
