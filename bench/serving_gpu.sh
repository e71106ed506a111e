#!/usr/bin/env bash
# Serving on the GPU: bench_serving (requests per second for an interleaved 2- and 4-model
# sequence: a fresh engine per request, a workspace, a workspace with the host weight cache,
# the whole trace as one plan) on the cuda device, at sizes where weight movement matters.
# Runs here too with --device sim (small sizes) to check the script itself.
#
# usage: bench/serving_gpu.sh [--device cuda|sim] [WORKDIR]
#        env: BENCH=path of bench_serving, LAYERS (8), HIDDEN (4096), BATCH (64),
#             REQUESTS (32), GPU_BUDGET (default: 1.5 models' weights)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
DEVICE=cuda
if [ "${1:-}" = "--device" ]; then DEVICE=$2; shift 2; fi
WORK=${1:-/var/tmp/ferry-serving-gpu}
BENCH=${BENCH:-$here/../build/bench/bench_serving}
if [ "$DEVICE" = sim ]; then
    LAYERS=${LAYERS:-4}; HIDDEN=${HIDDEN:-512}; BATCH=${BATCH:-8}; REQUESTS=${REQUESTS:-16}
else
    LAYERS=${LAYERS:-8}; HIDDEN=${HIDDEN:-4096}; BATCH=${BATCH:-64}; REQUESTS=${REQUESTS:-32}
fi
[ -x "$BENCH" ] || { echo "serving_gpu.sh: build bench_serving first ($BENCH)" >&2; exit 2; }
mkdir -p "$WORK"
echo "== machine"
if [ "$DEVICE" = cuda ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
echo "cpu: $(nproc) cores, $(awk '/MemTotal/{print $2/1048576 " GiB"}' /proc/meminfo)"
args=(--device "$DEVICE" --layers "$LAYERS" --hidden "$HIDDEN" --batch "$BATCH"
      --requests "$REQUESTS" --dir "$WORK")
[ -n "${GPU_BUDGET:-}" ] && args+=(--gpu "$GPU_BUDGET")
echo "== $BENCH ${args[*]}"
"$BENCH" "${args[@]}"
rm -f "$WORK"/w*.bin
