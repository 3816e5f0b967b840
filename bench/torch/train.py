"""train.py — PyTorch's side of bench/train.bench.ts: one whole CPU training step (zero_grad, forward,
backward, optimizer step), the same model and optimizer as the structura case.

Case specs:
  mlp   {batch, dims: [d0, d1, ..., dn]}   nn.Linear layers d0 → d1 → ... → dn with F.gelu between,
                                           F.cross_entropy against labels (i·7919) mod dn, torch.optim.AdamW
                                           (lr 1e-3, weight decay 0.01)
  lora  {m, d, h, r, alpha, dropout?}      x [m, d] → LoRA(d → h) → F.gelu → LoRA(h → d), F.mse_loss against a
                                           target; each LoRA is PEFT's Linear: the frozen base F.linear(x, W, b)
                                           plus (alpha / r)·(drop(x)·Aᵀ)·Bᵀ, A [r, in] and B [out, r] trained by
                                           AdamW, drop = F.dropout(·, dropout) (PEFT's lora_dropout) when given
  clip  {shapes, max_norm}                 torch.nn.utils.clip_grad_norm_ over parameters of those shapes
                                           holding random gradients (the same clip each call)
The protocol is in common.py.
"""
from common import serve


def make_case(torch, spec):
    if spec is None:  # the warm-up: load the BLAS (describe() reports it)
        a = torch.randn(64, 64)
        torch.matmul(a, a)
        return None
    F = torch.nn.functional
    torch.manual_seed(0)
    op = spec["op"]
    if op == "mlp":
        dims = spec["dims"]
        layers = []
        for i in range(len(dims) - 1):
            layers.append(torch.nn.Linear(dims[i], dims[i + 1]))
            if i < len(dims) - 2:
                layers.append(torch.nn.GELU())
        model = torch.nn.Sequential(*layers)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
        x = torch.randn(spec["batch"], dims[0])
        labels = (torch.arange(spec["batch"]) * 7919) % dims[-1]

        def step():
            opt.zero_grad(set_to_none=True)
            with torch.enable_grad():  # common.py times under no_grad
                loss = F.cross_entropy(model(x), labels)
                loss.backward()
            opt.step()

        return step
    if op == "lora":
        m, d, h, r, alpha = spec["m"], spec["d"], spec["h"], spec["r"], spec["alpha"]
        scale = alpha / r

        def lora_layer(i, o):
            base = torch.nn.Linear(i, o)
            base.requires_grad_(False)
            A = torch.nn.Parameter(torch.empty(r, i).uniform_(-1 / i ** 0.5, 1 / i ** 0.5))
            B = torch.nn.Parameter(torch.zeros(o, r))
            return base, A, B

        l1, l2 = lora_layer(d, h), lora_layer(h, d)

        p = spec.get("dropout", 0)

        def apply(layer, t):
            base, A, B = layer
            td = F.dropout(t, p, training=True) if p > 0 else t  # PEFT's lora_dropout
            return F.linear(t, base.weight, base.bias) + scale * ((td @ A.T) @ B.T)

        opt = torch.optim.AdamW([l1[1], l1[2], l2[1], l2[2]], lr=1e-3, weight_decay=0.01)
        x, target = torch.randn(m, d), torch.randn(m, d)

        def step():
            opt.zero_grad(set_to_none=True)
            with torch.enable_grad():
                loss = F.mse_loss(apply(l2, F.gelu(apply(l1, x))), target)
                loss.backward()
            opt.step()

        return step
    if op == "clip":
        params = []
        for shape in spec["shapes"]:
            p = torch.nn.Parameter(torch.zeros(shape))
            p.grad = torch.randn(shape)
            params.append(p)

        def step():
            torch.nn.utils.clip_grad_norm_(params, spec["max_norm"])

        return step
    raise ValueError(f"unknown op {op!r}")


serve(make_case)
