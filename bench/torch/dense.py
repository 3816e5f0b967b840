"""dense.py — PyTorch's CPU matmul on the shapes of bench/dense.bench.ts, for `npm run bench`.

A case spec is {"id", "m", "k", "n", "dtype", "batch"?, "wt"?}: C = A·B with A [*batch, m, k] and B [k, n]
(wt: F.linear(A, W) with W [n, k]),
standard normal inputs like the structura side, and an output allocated by every call, as ours is.
The protocol (one JSON line per case on stdin and stdout) is in common.py.
"""
from common import serve


def make_case(torch, spec):
    if spec is None:  # the warm-up: load the BLAS
        a = torch.randn(64, 64)
        torch.matmul(a, a)
        return None
    dtype = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16,
             "float16": torch.float16}[spec["dtype"]]
    a = torch.randn(*spec.get("batch", []), spec["m"], spec["k"]).to(dtype)
    if spec.get("wt"):  # a Linear: x·Wᵀ with W [n, k]
        w = torch.randn(spec["n"], spec["k"]).to(dtype)
        return lambda: torch.nn.functional.linear(a, w)
    b = torch.randn(spec["k"], spec["n"]).to(dtype)
    return lambda: torch.matmul(a, b)


serve(make_case)
