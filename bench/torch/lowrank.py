"""lowrank.py — PyTorch's CPU versions of the cases of bench/lowrank.bench.ts, for `npm run bench`.

A case spec is {"id", "op", "m", "in", "out", "r", "scale"?}:
  op "lora":   y = F.linear(x, W) + scale · F.linear(F.linear(x, A), B)   (PEFT's unfused LoRA forward)
  op "linear": y = F.linear(F.linear(x, A), B)                            (a factorised low-rank layer)
  op "lora_batched" {"E"}: PEFT's mixed-adapter batch — F.linear(x, W), then for each adapter e the rows
           of x that use it (row i uses i % E) gathered, their rank-r update index_add'ed (A [E, r, in],
           B [E, out, r])
  op "splr_step" {"nnz"}: one training step of SLTrain's sparse-plus-low-rank layer (andyjm3/SLTrain's
           sparse_linear): W = B·A with the sparse values scatter_add'ed into it, y = F.linear(x, W),
           y.backward(g) for the gradients of x, A, B and the values (autograd through the same graph;
           the support: nnz positions of out·in, drawn once, sorted)
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
    if spec["op"] == "splr_step":
        x.requires_grad_(True)
        A.requires_grad_(True)
        B.requires_grad_(True)
        idx = torch.randperm(n_out * n_in)[: spec["nnz"]].sort().values
        vals = torch.randn(spec["nnz"], requires_grad=True)
        g = torch.randn(m, n_out)

        def step():
            with torch.enable_grad():  # common.py times under no_grad
                W = B.mm(A)
                W = W.view(-1).scatter_add(0, idx, vals).view(n_out, n_in)
                F.linear(x, W).backward(g)
            for t in (x, A, B, vals):
                t.grad = None

        return step
    scale = spec.get("scale", 1.0)
    if spec["op"] == "lora_batched":
        E = spec["E"]
        W = torch.randn(n_out, n_in)
        A = torch.randn(E, r, n_in)
        B = torch.randn(E, n_out, r)
        rows = [torch.arange(e, m, E) for e in range(E)]

        def batched():
            y = F.linear(x, W)
            for e in range(E):
                if len(rows[e]):
                    y.index_add_(0, rows[e], F.linear(F.linear(x.index_select(0, rows[e]), A[e]), B[e]), alpha=scale)
            return y

        return batched
    W = torch.randn(n_out, n_in)
    return lambda: F.linear(x, W) + scale * F.linear(F.linear(x, A), B)


serve(make_case)
