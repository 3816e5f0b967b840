// cuda_bf16.h (emulation shim) — __half / __nv_bfloat16 and their x2 pairs with the GPU's rounding; they are
// defined in emu_types.h (with the rest of CUDA's value types) so that every emulated file sees one set.
#pragma once
#include "emu_types.h"
