"""core.py — PyTorch's CPU core ops on the shapes of bench/elementwise.bench.ts and
bench/reduce.bench.ts, for `npm run bench` (the CPU side; cuda.py times them on a GPU).

A case spec is {"id", "op", "dtype", ...} with standard normal inputs like the structura side and an
output allocated by every call, as ours is:
  add            {n}            a + b, [n]
  gelu           {n}            F.gelu(x) (the exact erf form), [n]
  sin            {n}            torch.sin(10·x) (angles of a few periods, as rotary embeddings'), [n]
  dropout        {n, p}         F.dropout(x, p, training=True), [n]
  transpose      {n}            x.t().contiguous(), x [n, n]
  cast           {n, to}        x.to(to), x [n, n] of dtype
  where          {m, n}         torch.where(x > 0, x, y), x and y [m, n]
  concat         {m, n, axis}   torch.cat([x, y], axis), x and y [m, n]
  sum            {m, n, axis}   x.sum(axis), x [m, n]
  softmax        {m, n}         torch.softmax(x, -1)
  cross_entropy  {m, n}         F.cross_entropy(logits [m, n], labels [m]), labels (i·7919) mod n
  cross_entropy_weighted {m, n} the same with weight=rand(n), forward and backward
  mse            {m, n}         F.mse_loss(x, y), x and y [m, n]
  randn, rand    {n}            torch.randn(n, n) / torch.rand(n, n) of dtype
  zeros, arange  {n}            torch.zeros(n, n) / torch.arange(n·n) of dtype
  max            {m, n, axis}   x.amax(axis), x [m, n]
The protocol (one JSON line per case on stdin and stdout) is in common.py.
"""
from common import serve


def make_case(torch, spec):
    if spec is None:  # the warm-up: load the BLAS (describe() reports it)
        a = torch.randn(64, 64)
        torch.matmul(a, a)
        return None
    F = torch.nn.functional
    dtypes = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}
    dtype = dtypes[spec["dtype"]]
    op = spec["op"]
    if op == "add":
        a, b = torch.randn(spec["n"]).to(dtype), torch.randn(spec["n"]).to(dtype)
        return lambda: a + b
    if op == "gelu":
        x = torch.randn(spec["n"]).to(dtype)
        return lambda: F.gelu(x)
    if op == "sin":
        x = (10 * torch.randn(spec["n"])).to(dtype)
        return lambda: torch.sin(x)
    if op == "dropout":
        x = torch.randn(spec["n"]).to(dtype)
        return lambda: F.dropout(x, spec["p"], training=True)
    if op == "transpose":
        x = torch.randn(spec["n"], spec["n"]).to(dtype)
        return lambda: x.t().contiguous()
    if op == "cast":
        x, to = torch.randn(spec["n"], spec["n"]).to(dtype), dtypes[spec["to"]]
        return lambda: x.to(to)
    if op in ("randn", "rand"):
        make = torch.randn if op == "randn" else torch.rand
        return lambda: make(spec["n"], spec["n"], dtype=dtype)
    if op == "zeros":
        return lambda: torch.zeros(spec["n"], spec["n"], dtype=dtype)
    if op == "arange":
        return lambda: torch.arange(spec["n"] * spec["n"], dtype=dtype)
    x = torch.randn(spec["m"], spec["n"]).to(dtype)
    if op == "where":  # a random condition (x > 0), as the structura side
        y, cond = torch.randn(spec["m"], spec["n"]).to(dtype), x > 0
        return lambda: torch.where(cond, x, y)
    if op == "concat":
        y = torch.randn(spec["m"], spec["n"]).to(dtype)
        return lambda: torch.cat([x, y], spec["axis"])
    if op == "sum":
        axis = spec["axis"]
        return lambda: x.sum(axis)
    if op == "max":
        axis = spec["axis"]
        return lambda: x.amax(axis)
    if op == "softmax":
        return lambda: torch.softmax(x, -1)
    if op == "mse":
        y = torch.randn(spec["m"], spec["n"]).to(dtype)
        return lambda: F.mse_loss(x, y)
    if op == "cross_entropy":
        labels = (torch.arange(spec["m"]) * 7919) % spec["n"]
        return lambda: F.cross_entropy(x, labels)
    if op == "cross_entropy_weighted":  # forward and backward, as the structura side
        labels = (torch.arange(spec["m"]) * 7919) % spec["n"]
        w = torch.rand(spec["n"]).to(dtype)
        xg = x.clone().requires_grad_()

        def step():
            with torch.enable_grad():  # common.py times under no_grad
                F.cross_entropy(xg, labels, weight=w).backward()
            xg.grad = None

        return step
    raise ValueError(f"unknown op {op!r}")


serve(make_case)
