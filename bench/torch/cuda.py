"""cuda.py — PyTorch on a CUDA GPU, the baseline of `npm run bench:gpu` (bench/run.ts --device cuda):
the line protocol of common.py, each sample timed with a pair of CUDA events.

    python3 bench/torch/cuda.py --threads N --budget S --min-runs N [--sample-ms MS] [--device cuda:N]

The first line describes what is measured: {"torch", "python", "cuda", "gpu", "cc", "memory",
"fp32_matmul", "bf16_reduced_precision_reduction", "threads", "threads_requested", "timing"}; or, when
torch cannot be imported or sees no CUDA device, {"error": "..."} and the exit status 1. Then one JSON
case spec per line on stdin, answered by {"id", "median_ms", "min_ms", "runs", "inner"} or
{"id", "error"}. Case specs ("op"; dtype float32 | float16 | bfloat16; standard normal inputs, and an
output allocated by every call, as structura's is — except copy, which writes into one buffer):
  matmul  {m, k, n, dtype, rotate?}             A [m, k] · B [k, n]                  (torch.matmul)
  linear  {m, in, out, dtype, rotate?}          x [m, in] · Wᵀ, W [out, in]          (F.linear)
  lora    {m, in, out, r, scale, dtype, rotate?} F.linear(x, W) + scale·F.linear(F.linear(x, A), B),
                                                A [r, in], B [out, r]               (PEFT's unfused LoRA)
  add     {n, dtype}                            a + b, [n]
  copy    {n, dtype}                            dst.copy_(src), [n]: device-to-device bandwidth
  dropout {n, p, dtype}                         F.dropout(x, p, training=True), [n] (its mask made too)
rotate R: R independent weights (B of matmul, W of linear and lora) used in turn, so that a weight
smaller than the L2 cache is not served from it call after call (decode shapes are bandwidth-bound and
compared with DRAM bandwidth).

Timing: warm-up (each call synchronised; at least 2 calls and 10% of the budget), a batch of calls
queued back to back to estimate the time per call, then the median of `runs` samples of `inner`
calls (inner > 1 for calls under --sample-ms), each sample between two torch.cuda.Event records.
float32 matmuls run in IEEE float32 (TF32 off): structura's float32 kernel is a float32 SIMT kernel.
"""
import json
import math
import sys
import time
import warnings

from common import parse_args


def measure(torch, fn, budget, min_runs, max_runs, sample_s):
    """Median seconds per call of fn() on the GPU; see the module docstring."""
    ev = lambda: torch.cuda.Event(enable_timing=True)  # noqa: E731
    e0, e1 = ev(), ev()

    def timed(k):
        e0.record()
        for _ in range(k):
            fn()
        e1.record()
        e1.synchronize()
        return e0.elapsed_time(e1) * 1e-3 / k

    torch.cuda.synchronize()
    warm = []
    start = time.perf_counter()
    while len(warm) < 2 or (time.perf_counter() - start < 0.1 * budget and len(warm) < 1000):
        warm.append(timed(1))
        if time.perf_counter() - start > budget and len(warm) >= 2:
            break
    est = max(min(warm), 1e-9)
    if est < sample_s:
        # a lone call hides the host's launch cost when it is longer than the kernel: measure a batch
        est = max(timed(min(1000, math.ceil(sample_s / est))), 1e-9)
    inner = math.ceil(sample_s / est) if est < sample_s else 1
    runs = int(min(max_runs, max(min_runs, budget // (est * inner))))
    samples = sorted(timed(inner) for _ in range(runs))
    mid = len(samples) // 2
    median = samples[mid] if len(samples) % 2 else 0.5 * (samples[mid - 1] + samples[mid])
    return {"median_ms": median * 1e3, "min_ms": samples[0] * 1e3, "runs": runs, "inner": inner}


def rotating(items):
    """A function returning items[0], items[1], ... in turn."""
    state = [0]

    def nxt():
        i = state[0]
        state[0] = (i + 1) % len(items)
        return items[i]

    return nxt


def make_case(torch, spec, device):
    F = torch.nn.functional
    dtypes = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if spec.get("dtype", "float32") not in dtypes:
        raise ValueError(f"dtype must be one of {', '.join(dtypes)}, got {spec.get('dtype')!r}")
    dt = dtypes[spec.get("dtype", "float32")]
    randn = lambda *shape: torch.randn(*shape, dtype=dt, device=device)  # noqa: E731
    rotate = max(1, int(spec.get("rotate", 1)))
    op = spec.get("op")
    if op == "matmul":
        a = randn(spec["m"], spec["k"])
        b = rotating([randn(spec["k"], spec["n"]) for _ in range(rotate)])
        return lambda: torch.matmul(a, b())
    if op in ("linear", "lora"):
        m, n_in, n_out = spec["m"], spec["in"], spec["out"]
        x = randn(m, n_in)
        W = rotating([randn(n_out, n_in) for _ in range(rotate)])
        if op == "linear":
            return lambda: F.linear(x, W())
        A = randn(spec["r"], n_in)
        B = randn(n_out, spec["r"])
        scale = float(spec.get("scale", 1.0))
        return lambda: F.linear(x, W()) + scale * F.linear(F.linear(x, A), B)
    if op == "lora_batched":
        # the usual PyTorch multi-LoRA (PEFT's mixed-adapter batch): x·Wᵀ, then per adapter its rows'
        # rank-r update; rows interleaved, adapter of row i = i % E
        m, n_in, n_out, r, E = spec["m"], spec["in"], spec["out"], spec["r"], spec["E"]
        x, W = randn(m, n_in), randn(n_out, n_in)
        A, B = randn(E, r, n_in), randn(E, n_out, r)
        scale = float(spec.get("scale", 1.0))
        rows = [torch.arange(e, m, E, device=device) for e in range(E)]

        def batched():
            y = F.linear(x, W)
            for e in range(E):
                if len(rows[e]):
                    xe = x.index_select(0, rows[e])
                    y.index_add_(0, rows[e], F.linear(F.linear(xe, A[e]), B[e]), alpha=scale)
            return y

        return batched
    if op in ("sum", "softmax"):
        x = randn(spec["m"], spec["n"])
        return (lambda: x.sum(-1)) if op == "sum" else (lambda: torch.softmax(x, -1))
    if op == "cross_entropy":
        logits = randn(spec["m"], spec["n"])
        labels = (torch.arange(spec["m"], device=device) * 7919) % spec["n"]
        return lambda: F.cross_entropy(logits, labels)
    if op in ("h2d", "d2h"):
        pinned = bool(spec.get("pinned", False))
        host = torch.randn(spec["n"], dtype=dt)
        if pinned:
            host = host.pin_memory()
        if op == "h2d":
            return lambda: host.to(device, non_blocking=pinned)
        dev, out = host.to(device), torch.empty(spec["n"], dtype=dt, pin_memory=pinned)
        return lambda: out.copy_(dev, non_blocking=pinned)
    if op == "add":
        a, b = randn(spec["n"]), randn(spec["n"])
        return lambda: a + b
    if op == "copy":
        src, dst = randn(spec["n"]), torch.empty(spec["n"], dtype=dt, device=device)
        return lambda: dst.copy_(src)
    if op == "dropout":
        x = randn(spec["n"])
        return lambda: torch.nn.functional.dropout(x, spec["p"], training=True)
    raise ValueError(f"unknown op {op!r} (matmul, linear, lora, lora_batched, sum, softmax, cross_entropy, h2d, d2h, add, copy, dropout)")


def fp32_ieee(torch):
    """Makes float32 matmuls IEEE float32 (TF32 off) and says how. TF32 is off by default, so
    normally nothing is written: torch >= 2.9 raises on reading a legacy flag after a write through
    the new fp32_precision API that disagrees with it, so the legacy flag is read first and the new
    API used only where the legacy one is gone."""
    m = torch.backends.cuda.matmul
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy flag's deprecation notice
            if not m.allow_tf32:
                return "ieee (allow_tf32=False, the default)"
            m.allow_tf32 = False
            return f"ieee (allow_tf32 set to {m.allow_tf32})"
    except Exception:  # noqa: BLE001 — the legacy flag is gone (older torch raises AssertionError for unknown ones)
        m.fp32_precision = "ieee"
        return f"ieee (fp32_precision={m.fp32_precision})"


def setting(get):
    """get(), or None where this torch has no such setting (it raises AssertionError, not AttributeError)."""
    try:
        return get()
    except Exception:  # noqa: BLE001
        return None


def fail(msg):
    print(json.dumps({"error": msg}), flush=True)
    sys.exit(1)


def main():
    opts = parse_args(sys.argv[1:])
    try:
        import torch
    except Exception as e:  # noqa: BLE001 — reported to the runner, which shows it
        fail(f"cannot import torch: {type(e).__name__}: {e}")
    if not torch.cuda.is_available():
        fail(f"torch {torch.__version__} sees no CUDA device (built with CUDA {torch.version.cuda}; "
             f"{torch.cuda.device_count()} devices)")
    device = torch.device(opts["device"] if opts["device"].startswith("cuda") else "cuda:0")
    try:
        torch.cuda.set_device(device)
        torch.manual_seed(0)
        props = torch.cuda.get_device_properties(device)
        torch.randn(16, device=device).sum().item()
    except Exception as e:  # noqa: BLE001
        fail(f"CUDA failed to start: {type(e).__name__}: {e}")
    try:
        fp32 = fp32_ieee(torch)
    except Exception as e:  # noqa: BLE001 — shown beside the float32 numbers, which then may use TF32
        fp32 = f"unknown ({type(e).__name__}: {e})"
    warmup_errors = {}
    for dt in (torch.float32, torch.bfloat16, torch.float16):  # load cuBLAS(Lt) before the first case
        try:
            a = torch.randn(256, 256, dtype=dt, device=device)
            torch.matmul(a, a)
            torch.cuda.synchronize()
        except Exception as e:  # noqa: BLE001 — that dtype's cases will report it; the others still run
            warmup_errors[str(dt)] = f"{type(e).__name__}: {e}"
    print(json.dumps({
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "cuda": torch.version.cuda,
        "gpu": props.name,
        "cc": f"{props.major}.{props.minor}",
        "memory": props.total_memory,
        "fp32_matmul": fp32,
        "bf16_reduced_precision_reduction": setting(lambda: bool(torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction)),
        "threads": torch.get_num_threads(),
        "threads_requested": opts["threads"],
        "timing": "torch.cuda.Event pair around each sample",
        **({"warmup_errors": warmup_errors} if warmup_errors else {}),
    }), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        spec = json.loads(line)
        try:
            with torch.no_grad():
                fn = make_case(torch, spec, device)
                r = measure(torch, fn, opts["budget"], opts["min_runs"], opts["max_runs"], opts["sample_s"])
            r["id"] = spec["id"]
        except Exception as e:  # noqa: BLE001 — reported to the runner, which shows it in the table
            r = {"id": spec.get("id"), "error": f"{type(e).__name__}: {e}"}
        fn = None
        torch.cuda.empty_cache()  # our process needs the memory next
        print(json.dumps(r), flush=True)


main()
