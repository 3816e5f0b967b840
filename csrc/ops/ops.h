// ops.h — each csrc/ops/<op>.cc registers its functions on the addon's exports.
#pragma once
#include <napi.h>

namespace structura {

void register_creation(Napi::Env env, Napi::Object exports);     // ops/creation.cc: tensors, views, copies
void register_elementwise(Napi::Env env, Napi::Object exports);  // ops/elementwise.cc
void register_reduce(Napi::Env env, Napi::Object exports);       // ops/reduce.cc: reductions, softmax, loss
void register_dense(Napi::Env env, Napi::Object exports);        // ops/dense.cc: matmul
void register_lowrank(Napi::Env env, Napi::Object exports);      // ops/lowrank.cc: LoRA, low-rank, sparse + low-rank, svd

}  // namespace structura
