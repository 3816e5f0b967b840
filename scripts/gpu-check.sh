#!/usr/bin/env bash
# gpu-check.sh — the GPU check runner, for a lent GPU machine that has the NVIDIA driver (and maybe
# nvcc) but no Node.js, no npm and no network. Everything it needs travels in .gpu/ (ignored by git).
#
#   bash scripts/gpu-check.sh pack [binary]   (here) compresses node, node_modules and the addon built
#                                              with CUDA into .gpu/ (all must fit the device tool's 64 MiB;
#                                              pack checks), the addon (default
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
#                                              logs and results under $OUT (or .gpu/out): gpu.txt, probe.log,
#                                              test-gpu.log, bench.log and everything in results.tar.gz (the
#                                              tool returns 8 files); each step under a timeout, the whole run
#                                              within GPU_CHECK_BUDGET seconds (default 540).
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
  # The addon compressed: its five architectures' CUDA code made it 34 MB, and with node and
  # node_modules the carried tree passed the device tool's 64 MiB (the run would have been refused).
  rm -f .gpu/structura.node .gpu/structura.node.xz
  if [ ! -f "$bin" ]; then
    echo "no addon at $bin: build it first (STRUCTURA_CUDA_ARCHS=90a-real npx cmake-js compile -O build-gpu); a build on the GPU machine would spend its time" >&2
    exit 1
  fi
  xz -T0 -6 -c "$bin" > .gpu/structura.node.xz
  # Which commit the addon was built from, printed by the run: an addon older than csrc/ or cuda/ tests old code.
  newest=$(git ls-files csrc cuda CMakeLists.txt | xargs stat -c %Y | sort -n | tail -1)
  if [ "$(stat -c %Y "$bin")" -lt "$newest" ]; then echo "warning: $bin is older than the newest file of csrc/, cuda/ or CMakeLists.txt: rebuild it" >&2; fi
  { git rev-parse HEAD; git status --porcelain csrc cuda CMakeLists.txt | sed 's/^/uncommitted: /'; } > .gpu/stamp.txt
  if [ -f build/emu-fidelity/emu-fidelity ]; then cp build/emu-fidelity/emu-fidelity .gpu/emu-fidelity; fi
  du -sh .gpu/*
  total=$(( $(du -cb .gpu | tail -1 | cut -f1) + $(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1) ))
  echo "carried with the tracked files: $(( total / 1048576 )) MiB of the device tool's 64"
  if [ "$total" -gt $(( 62 * 1048576 )) ]; then echo "too large to travel: leave something out of .gpu" >&2; exit 1; fi
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
  export PATH="$PATH:/usr/local/cuda/bin"  # compute-sanitizer and ncu, where the image keeps them
  { nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm --format=csv; date -u; cat .gpu/stamp.txt 2>/dev/null; } | tee "$out/gpu.txt" || true
  if [ -f .gpu/structura.node.xz ]; then
    xz -d -c .gpu/structura.node.xz > /tmp/structura-node/structura.node
    export STRUCTURA_BINARY=/tmp/structura-node/structura.node
  else
    export STRUCTURA_CUDA=ON STRUCTURA_CUDA_ARCHS="${STRUCTURA_CUDA_ARCHS:-90a-real}"
    t=$(date +%s)
    node scripts/install.js --build-from-source 2>&1 | tee "$out/build.log" | tail -5
    echo "build: $(( $(date +%s) - t )) s" | tee -a "$out/build.log"
  fi
  if [ -f .gpu/emu-fidelity ]; then export EMU_FIDELITY_BIN="$PWD/.gpu/emu-fidelity"; fi
  export STRUCTURA_GPU_OUT="$out"
  status=0
  # One deadline for the whole run (GPU_CHECK_BUDGET seconds, default 540: the device tool kills a
  # command at 600), and each step under `timeout` within it, so a hung kernel costs one step, not the
  # lease. A step that runs out is reported and the next one starts.
  deadline=$(( $(date +%s) + ${GPU_CHECK_BUDGET:-540} ))
  limit() {  # seconds for a step: its own cap, or what is left before the deadline
    local left=$(( deadline - $(date +%s) ))
    if [ "$left" -lt "$1" ]; then echo "$left"; else echo "$1"; fi
  }
  for w in $what; do
    t=$(date +%s)
    if [ "$(limit 1)" -le 0 ]; then echo "== $w: skipped (the run's ${GPU_CHECK_BUDGET:-540} s are spent)"; status=1; continue; fi
    case "$w" in
    probe)
      # a kernel that fails here is switched off for the steps after it (and named in their logs)
      timeout -k 5 "$(limit 150)" node --import tsx test/gpu/probe.ts --device cuda --timeout 45 --out "$out/probe.json" 2>&1 | tee "$out/probe.log" || status=1
      off=$( { grep '^STRUCTURA_CUDA_DISABLE=' "$out/probe.log" || true; } | tail -1 | cut -d= -f2)
      if [ -n "$off" ]; then
        export STRUCTURA_CUDA_DISABLE="${STRUCTURA_CUDA_DISABLE:+$STRUCTURA_CUDA_DISABLE,}$off"
        echo "switched off for the rest of this run: STRUCTURA_CUDA_DISABLE=$STRUCTURA_CUDA_DISABLE" | tee -a "$out/probe.log"
        status=1
      fi
      ;;
    gpu) timeout -k 5 "$(limit 300)" node scripts/test.js --gpu --timeout 240 2>&1 | tee "$out/test-gpu.log" | grep -v '^\s*$' | tail -60 || status=1 ;;
    sanitize)
      if command -v compute-sanitizer >/dev/null 2>&1; then
        timeout -k 5 "$(limit 300)" node scripts/test.js --gpu --sanitizer memcheck --timeout 240 'gpu/(dense|lowrank)' 2>&1 | tee "$out/sanitize.log" | tail -25 || status=1
      else echo "no compute-sanitizer on PATH" | tee "$out/sanitize.log"; fi
      ;;
    test) timeout -k 5 "$(limit 400)" node scripts/test.js --no-types 2>&1 | tee "$out/test.log" | tail -40 || status=1 ;;
    ncu)
      # one launch of each GEMM kernel (bf16 4096³ x·Wᵀ) and of the decode kernels under Nsight Compute:
      # speed of light, occupancy, launch statistics, the warp-stall breakdown (~15 s a kernel)
      if command -v ncu >/dev/null 2>&1; then
        for c in gemm:mma gemm:wgmma gemm:wgmma-tma decode:1 decode:2 decode-nmajor; do
          timeout -k 5 "$(limit 60)" ncu --clock-control none --target-processes all --kernel-name regex:gemm_ --launch-skip 1 --launch-count 1 \
            --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
            node --import tsx bench/profile.ts "$c" 1 > "$out/ncu-${c/:/-}.txt" 2>&1 || status=1
          grep -E "gemm_|Duration|Compute \(SM\) Throughput|Memory Throughput|DRAM Throughput|Registers Per|Achieved Occupancy" \
            "$out/ncu-${c/:/-}.txt" | sed "s/^/[$c] /" | head -12
        done
      else echo "no ncu on PATH" | tee "$out/ncu.txt"; fi
      ;;
    bench)
      # the results file is rewritten after each case: what finished survives a timeout
      timeout -k 5 "$(limit 300)" node bench/run.js --device cuda --results "$out" 2>&1 | tee "$out/bench.log" | tail -70 || status=1
      ;;
    *) echo "unknown check '$w' (probe, gpu, sanitize, test, bench, ncu)"; status=1 ;;
    esac
    echo "== $w: $(( $(date +%s) - t )) s"
  done
  # The device tool returns at most 8 files: everything in one archive, beside the few logs read first.
  (cd "$out" && tar -czf results.tar.gz --exclude=results.tar.gz . && find . -maxdepth 2 -type f ! -name results.tar.gz \
    ! -name gpu.txt ! -name probe.log ! -name test-gpu.log ! -name bench.log -delete && find . -mindepth 1 -type d -empty -delete) || true
  ls -la "$out"
  exit "$status"
  ;;
*)
  echo "usage: bash scripts/gpu-check.sh pack [binary] | run [probe] [gpu] [sanitize] [test] [bench] [ncu]" >&2
  exit 2
  ;;
esac
