"""common.py — the PyTorch side of `npm run bench`: thread setup, the timing loop, and the line
protocol bench/run.ts drives.

    python3 bench/torch/<op>.py --threads N --budget S --min-runs N

prints one JSON line describing torch (version, threads, the BLAS library actually loaded), then
reads one JSON case spec per line on stdin and answers each with one JSON line
{"id", "median_ms", "min_ms", "runs", "inner"} or {"id", "error"}. bench/run.ts sends each case right
after timing structura's side of it, so the two are measured close together in time (the machine
may be shared), never at the same time (both use every thread).

The timing mirrors bench/run.ts exactly (warm-up, then the median of N timed samples, N scaled so
the case takes about `budget` seconds).

Thread count: OpenBLAS reads OPENBLAS_NUM_THREADS when it is loaded and ignores
torch.set_num_threads for its GEMM, so the variables must be set BEFORE `import torch`; serve()
does that, then imports torch.
"""
import json
import math
import os
import re
import sys
import time


def parse_args(argv):
    """--threads N --budget S --min-runs N --max-runs N --sample-ms MS (the shortest sample: shorter
    calls are batched; 1 ms on the CPU, 2 ms on a GPU) --device cuda:N (cuda.py)"""
    opts = {"threads": 1, "budget": 0.75, "min_runs": 5, "max_runs": 200, "sample_s": 1e-3, "device": "cuda:0"}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--threads":
            opts["threads"] = int(argv[i + 1])
        elif a == "--budget":
            opts["budget"] = float(argv[i + 1])
        elif a == "--min-runs":
            opts["min_runs"] = int(argv[i + 1])
        elif a == "--max-runs":
            opts["max_runs"] = int(argv[i + 1])
        elif a == "--sample-ms":
            opts["sample_s"] = float(argv[i + 1]) * 1e-3
        elif a == "--device":
            opts["device"] = argv[i + 1]
        else:
            raise SystemExit(f"unknown argument {a}")
        i += 2
    return opts


def setup_threads(n):
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


def measure(fn, budget, min_runs, max_runs, sample_s=1e-3):
    """Median seconds per call of fn(): warm-up (at least 2 calls and 10% of the budget, at most
    the budget), then `runs` samples of `inner` calls each (inner > 1 only for calls under sample_s)."""
    warm = []
    start = time.perf_counter()
    while len(warm) < 2 or (time.perf_counter() - start < 0.1 * budget and len(warm) < 1000):
        t = time.perf_counter()
        fn()
        warm.append(time.perf_counter() - t)
        if time.perf_counter() - start > budget and len(warm) >= 2:
            break
    est = max(min(warm), 1e-9)
    inner = max(1, math.ceil(sample_s / est)) if est < sample_s else 1
    runs = int(min(max_runs, max(min_runs, budget // (est * inner))))
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t) / inner)
    samples.sort()
    mid = len(samples) // 2
    median = samples[mid] if len(samples) % 2 else 0.5 * (samples[mid - 1] + samples[mid])
    return {"median_ms": median * 1e3, "min_ms": samples[0] * 1e3, "runs": runs, "inner": inner}


def blas_library():
    """The BLAS shared library this process has loaded (after a matmul), resolved through Debian's
    alternatives links: Debian's python3-torch calls whatever libblas.so.3 points to, which is the
    slow reference BLAS unless an optimised one (libopenblas0-pthread) is installed."""
    found = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                name = os.path.basename(path)
                if ("blas" in name or "blis" in name or "mkl_core" in name) and path not in found:
                    found.append(path)
    except OSError:
        return ""
    return ", ".join(os.path.realpath(p) for p in found)


def describe(torch, threads):
    """The first JSON line: what is being measured."""
    blas = ""
    try:
        m = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
        blas = m.group(1) if m else ""
    except Exception:  # noqa: BLE001 — the config string is informative only
        pass
    return {
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "threads": torch.get_num_threads(),
        "threads_requested": threads,
        "blas": blas,
        "blas_library": blas_library(),
    }


def serve(make_case):
    """Runs the protocol above. make_case(torch, spec) returns the function to time for one case."""
    opts = parse_args(sys.argv[1:])
    setup_threads(opts["threads"])
    import torch  # after the thread variables (see the module docstring)

    torch.set_num_threads(opts["threads"])
    torch.manual_seed(0)
    make_case(torch, None)  # a warm-up that loads the BLAS, so describe() can see which one
    print(json.dumps(describe(torch, opts["threads"])), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        spec = json.loads(line)
        try:
            fn = make_case(torch, spec)
            with torch.no_grad():
                r = measure(fn, opts["budget"], opts["min_runs"], opts["max_runs"], opts["sample_s"])
            r["id"] = spec["id"]
        except Exception as e:  # noqa: BLE001 — reported to the runner, which shows it in the table
            r = {"id": spec.get("id"), "error": f"{type(e).__name__}: {e}"}
        print(json.dumps(r), flush=True)
