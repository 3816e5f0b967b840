"""lowrank.py — PyTorch's CPU versions of the cases of bench/lowrank.bench.ts, for `npm run bench`.

A case spec is {"id", "op", "m", "in", "out", "r", "scale"?}:
  op "lora":   y = F.linear(x, W) + scale · F.linear(F.linear(x, A), B)   (PEFT's unfused LoRA forward)
  op "linear": y = F.linear(F.linear(x, A), B)                            (a factorised low-rank layer)
  op "svd" {"m", "n", "rank", "iters"}: torch.svd_lowrank(W [m, n], q = rank + 10, niter = iters), the same
           randomized range finder (Halko et al.) as lowrank.svd, with its oversampling and power iterations
with x [m, in], W [out, in], A [r, in], B [out, r] standard normal, and an output allocated by every
call, as ours is. The protocol (one JSON line per case on stdin and stdout) is in common.py.
"""
from common import serve


def make_case(torch, spec):
    F = torch.nn.functional
    if spec is None:  # the warm-up: load the BLAS
        a = torch.randn(64, 64)
        F.linear(a, a)
        return None
    if spec["op"] == "svd":
        W = torch.randn(spec["m"], spec["n"])
        return lambda: torch.svd_lowrank(W, q=spec["rank"] + 10, niter=spec["iters"])
    m, n_in, n_out, r = spec["m"], spec["in"], spec["out"], spec["r"]
    x = torch.randn(m, n_in)
    A = torch.randn(r, n_in)
    B = torch.randn(n_out, r)
    if spec["op"] == "linear":
        return lambda: F.linear(F.linear(x, A), B)
    W = torch.randn(n_out, n_in)
    scale = spec.get("scale", 1.0)
    return lambda: F.linear(x, W) + scale * F.linear(F.linear(x, A), B)


serve(make_case)
