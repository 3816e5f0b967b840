#!/usr/bin/env bash
# gpu-check.sh — the GPU check runner, for a lent GPU machine that has nvcc, cmake and ninja but no
# Node.js and no network.
#
#   bash scripts/gpu-check.sh pack        (here) puts node and node_modules, compressed, into .gpu/
#                                          (ignored by git; ~40 MB), to be carried with the tree
#   bash scripts/gpu-check.sh run [what]  (there, from the repository root) unpacks them, builds the
#                                          addon with CUDA for the local GPU's architecture only
#                                          (STRUCTURA_CUDA_ARCHS, default 90a-real), then runs
#                                          what = "gpu" (npm run test:gpu), "test" (npm test),
#                                          "bench" (npm run bench:gpu) — default "gpu bench" —
#                                          writing logs and bench results under $OUT (or .gpu/out).
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-}"
case "$mode" in
pack)
  mkdir -p .gpu
  xz -T0 -6 -c "$(command -v node)" > .gpu/node.xz
  # typescript is only needed for the type check and the dist build, which the GPU run skips.
  tar -cf - --exclude='node_modules/typescript' --exclude='node_modules/.cache' node_modules | xz -T0 -6 > .gpu/node_modules.tar.xz
  du -sh .gpu/node.xz .gpu/node_modules.tar.xz
  echo "carry .gpu, then run: bash scripts/gpu-check.sh run"
  ;;
run)
  shift
  what="${*:-gpu bench}"
  out="${OUT:-.gpu/out}"
  mkdir -p "$out" /tmp/structura-node/bin
  if ! command -v node >/dev/null 2>&1; then
    xz -d -c .gpu/node.xz > /tmp/structura-node/bin/node
    chmod +x /tmp/structura-node/bin/node
    export PATH="/tmp/structura-node/bin:$PATH"
  fi
  [ -d node_modules ] || tar -xJf .gpu/node_modules.tar.xz
  nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv | tee "$out/gpu.txt" || true
  export STRUCTURA_CUDA=ON STRUCTURA_CUDA_ARCHS="${STRUCTURA_CUDA_ARCHS:-90a-real}"
  t=$(date +%s)
  node scripts/install.js --build-from-source 2>&1 | tee "$out/build.log" | tail -5
  echo "build: $(( $(date +%s) - t )) s" | tee -a "$out/build.log"
  status=0
  for w in $what; do
    case "$w" in
    gpu) node scripts/test.js --gpu 2>&1 | tee "$out/test-gpu.log" | tail -40 || status=1 ;;
    test) node scripts/test.js --no-types 2>&1 | tee "$out/test.log" | tail -40 || status=1 ;;
    bench)
      node --import tsx bench/run.ts --device cuda 2>&1 | tee "$out/bench.log" | tail -40 || status=1
      cp bench/results/*.json bench/results/*.svg "$out/" 2>/dev/null || true
      ;;
    *) echo "unknown check '$w' (gpu, test, bench)"; status=1 ;;
    esac
  done
  exit "$status"
  ;;
*)
  echo "usage: bash scripts/gpu-check.sh pack | run [gpu] [test] [bench]" >&2
  exit 2
  ;;
esac
