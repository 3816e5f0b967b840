#!/usr/bin/env bash
# gpu-check.sh — the GPU check runner, for a lent GPU machine that has the NVIDIA driver (and maybe
# nvcc) but no Node.js, no npm and no network. Everything it needs travels in .gpu/ (ignored by git).
#
#   bash scripts/gpu-check.sh pack [binary]   (here) compresses node and node_modules into .gpu/, and
#                                              copies the addon built with CUDA (default
#                                              build-gpu/Release/structura.node; build it with
#                                              STRUCTURA_CUDA_ARCHS=90a-real npx cmake-js compile -O build-gpu)
#                                              and the emu-fidelity binary (test/gpu/fidelity/build.js)
#   bash scripts/gpu-check.sh run [what...]   (there, from the repository root) unpacks them and runs
#                                              what = probe (test/gpu/probe.ts: each kernel not yet
#                                              passed on a GPU alone, under a time limit; the ones that
#                                              fail are switched off for the later steps through
#                                              STRUCTURA_CUDA_DISABLE), gpu (the suites of test/gpu/), sanitize (test/gpu's
#                                              dense suite under compute-sanitizer memcheck), test (npm test),
#                                              bench (the GPU bench), ncu (Nsight Compute of the GEMM and
#                                              decode kernels, bench/profile.ts) — default "probe gpu bench" —
#                                              logs and results under $OUT (or .gpu/out).
# Without a carried addon, `run` builds one there for the local GPU (STRUCTURA_CUDA_ARCHS, default 90a-real).
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-}"
case "$mode" in
pack)
  bin="${2:-build-gpu/Release/structura.node}"
  mkdir -p .gpu
  [ -f .gpu/node.xz ] || xz -T0 -6 -c "$(command -v node)" > .gpu/node.xz
  # typescript is only needed for the type check and the dist build, which the GPU run skips.
  tar -cf - --exclude='node_modules/typescript' --exclude='node_modules/.cache' node_modules | xz -T0 -6 > .gpu/node_modules.tar.xz
  if [ -f "$bin" ]; then cp "$bin" .gpu/structura.node; else echo "no addon at $bin: the run will build one" >&2; rm -f .gpu/structura.node; fi
  if [ -f build/emu-fidelity/emu-fidelity ]; then cp build/emu-fidelity/emu-fidelity .gpu/emu-fidelity; fi
  du -sh .gpu/*
  echo "carry .gpu, then run: bash scripts/gpu-check.sh run"
  ;;
run)
  shift
  what="${*:-probe gpu bench}"
  out="${OUT:-.gpu/out}"
  mkdir -p "$out" /tmp/structura-node/bin
  if ! command -v node >/dev/null 2>&1; then
    xz -d -c .gpu/node.xz > /tmp/structura-node/bin/node
    chmod +x /tmp/structura-node/bin/node
    export PATH="/tmp/structura-node/bin:$PATH"
  fi
  [ -d node_modules ] || tar -xJf .gpu/node_modules.tar.xz
  { nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm --format=csv; date -u; } | tee "$out/gpu.txt" || true
  if [ -f .gpu/structura.node ]; then
    export STRUCTURA_BINARY="$PWD/.gpu/structura.node"
  else
    export STRUCTURA_CUDA=ON STRUCTURA_CUDA_ARCHS="${STRUCTURA_CUDA_ARCHS:-90a-real}"
    t=$(date +%s)
    node scripts/install.js --build-from-source 2>&1 | tee "$out/build.log" | tail -5
    echo "build: $(( $(date +%s) - t )) s" | tee -a "$out/build.log"
  fi
  if [ -f .gpu/emu-fidelity ]; then export EMU_FIDELITY_BIN="$PWD/.gpu/emu-fidelity"; fi
  export STRUCTURA_GPU_OUT="$out"
  status=0
  for w in $what; do
    t=$(date +%s)
    case "$w" in
    probe)
      # a kernel that fails here is switched off for the steps after it (and named in their logs)
      node --import tsx test/gpu/probe.ts --device cuda --timeout 90 --out "$out/probe.json" 2>&1 | tee "$out/probe.log" || status=1
      off=$( { grep '^STRUCTURA_CUDA_DISABLE=' "$out/probe.log" || true; } | tail -1 | cut -d= -f2)
      if [ -n "$off" ]; then
        export STRUCTURA_CUDA_DISABLE="${STRUCTURA_CUDA_DISABLE:+$STRUCTURA_CUDA_DISABLE,}$off"
        echo "switched off for the rest of this run: STRUCTURA_CUDA_DISABLE=$STRUCTURA_CUDA_DISABLE" | tee -a "$out/probe.log"
        status=1
      fi
      ;;
    gpu) node scripts/test.js --gpu --timeout 240 2>&1 | tee "$out/test-gpu.log" | grep -v '^\s*$' | tail -60 || status=1 ;;
    sanitize)
      if command -v compute-sanitizer >/dev/null 2>&1; then
        node scripts/test.js --gpu --sanitizer memcheck --timeout 240 'gpu/(dense|lowrank)' 2>&1 | tee "$out/sanitize.log" | tail -25 || status=1
      else echo "no compute-sanitizer on PATH" | tee "$out/sanitize.log"; fi
      ;;
    test) node scripts/test.js --no-types 2>&1 | tee "$out/test.log" | tail -40 || status=1 ;;
    ncu)
      # one launch of each GEMM kernel (bf16 4096³ x·Wᵀ) and of the decode kernels under Nsight Compute:
      # speed of light, occupancy, launch statistics, the warp-stall breakdown (~15 s a kernel)
      if command -v ncu >/dev/null 2>&1; then
        for c in gemm:mma gemm:wgmma gemm:wgmma-tma decode:1 decode:2 decode-nmajor; do
          ncu --target-processes all --kernel-name regex:gemm_ --launch-skip 1 --launch-count 1 \
            --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
            node --import tsx bench/profile.ts "$c" 1 > "$out/ncu-${c/:/-}.txt" 2>&1 || status=1
          grep -E "gemm_|Duration|Compute \(SM\) Throughput|Memory Throughput|DRAM Throughput|Registers Per|Achieved Occupancy" \
            "$out/ncu-${c/:/-}.txt" | sed "s/^/[$c] /" | head -12
        done
      else echo "no ncu on PATH" | tee "$out/ncu.txt"; fi
      ;;
    bench)
      node --import tsx bench/run.ts --device cuda --results "$out" 2>&1 | tee "$out/bench.log" | tail -70 || status=1
      ;;
    *) echo "unknown check '$w' (probe, gpu, sanitize, test, bench, ncu)"; status=1 ;;
    esac
    echo "== $w: $(( $(date +%s) - t )) s"
  done
  exit "$status"
  ;;
*)
  echo "usage: bash scripts/gpu-check.sh pack [binary] | run [probe] [gpu] [sanitize] [test] [bench] [ncu]" >&2
  exit 2
  ;;
esac
