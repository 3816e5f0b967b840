// structura — tensors, autograd and structured-matrix ops for Node.js over a native addon.
//
// This is the public entry. Everything here works on CPU tensors today; see DESIGN.md for the
// contract of each op (shapes, dtypes, gradients).
export {
  Tensor, tidy, keep, dispose, memory, emptyCache, setNumThreads, getNumThreads, setFlushDenormal, backend, cuda, isFloating, DTYPES, FLOAT_DTYPES,
} from './tensor';
export type { DType, Device, TypedArray, Memory, DeviceMemory, NotPromise } from './tensor';
export type { BackendInfo } from './native';

export { tensor, zeros, ones, full, zerosLike, onesLike, fullLike, eye, arange, randn, rand, manualSeed } from './ops/creation';
export type { TensorOptions, RandomOptions } from './ops/creation';

export {
  add, sub, mul, div, pow, maximum, minimum, neg, eq, ne, lt, le, gt, ge, where,
  exp, log, sqrt, rsqrt, abs, square, reciprocal, sign, relu, gelu, silu, tanh, sigmoid, erf, sin, cos, clamp, dropout,
} from './ops/elementwise';
export type { Operand, DropoutOptions } from './ops/elementwise';
export { sum, mean, max, min, argmax, argmin, softmax, logSoftmax, mseLoss, crossEntropy } from './ops/reduce';
export type { CrossEntropyOptions } from './ops/reduce';
export { matmul } from './ops/dense';
export * as lowrank from './ops/lowrank';
export type { LowRankLinearOptions, LoraOptions, LoraBatchOptions, SparseMatrix, PreparedSparseMatrix, SvdOptions } from './ops/lowrank';
export {
  reshape, transpose, permute, narrow, squeeze, unsqueeze, expand, flatten, contiguous, clone, cast, concat, stack,
} from './ops/shape';

export {
  noGrad, enableGrad, isGradEnabled, setGradEnabled, customOp, gradcheck, grad, backward, GradNode,
} from './autograd';
export type { Hook, BackwardFn, CustomOpContext, CustomOpSpec, CustomOpOutput, CustomOpGrads, GradcheckOptions, GradOptions } from './autograd';

export * as nn from './nn';
export * as optim from './optim';
export * as io from './io';
