"""dense.py — PyTorch's CPU matmul on the shapes of bench/dense.bench.ts, for `npm run bench`.

A case spec is {"id", "m", "k", "n", "dtype", "batch"?}: C = A·B with A [*batch, m, k] and B [k, n],
standard normal inputs like the structura side, and an output allocated by every call, as ours is.
The protocol (one JSON line per case on stdin and stdout) is in common.py.
"""
from common import serve


def make_case(torch, spec):
    if spec is None:  # the warm-up: load the BLAS
        a = torch.randn(64, 64)
        torch.matmul(a, a)
        return None
    dtype = {"float32": torch.float32, "float64": torch.float64}[spec["dtype"]]
    a = torch.randn(*spec.get("batch", []), spec["m"], spec["k"], dtype=dtype)
    b = torch.randn(spec["k"], spec["n"], dtype=dtype)
    return lambda: torch.matmul(a, b)


serve(make_case)
