#!/usr/bin/env bash
# Streams an MLP of 48 layers of 8192x8192 bf16 weights (6 GiB) through a GPU with a 2 GiB
# budget, batch 64 and 4096, weights resident in pinned host memory and read from the weight
# file on disk, through ferry and three PyTorch baselines (bench/torch_baselines.py), and
# prints one table: time, effective GB/s, the share of the link limit (pinned h2d measured
# here; for the file, the slower of h2d and the disk's read rate as `ferry probe` measures
# it), ferry's predicted time, and each output's error against the synchronous PyTorch run on
# the same inputs.
#
# usage: bench/gpu_stream.sh [WORKDIR]      (env: FERRY=path of ferry, LAYERS, HIDDEN,
#                                            BATCHES="64 4096", GPU_BUDGET=2GiB, REPS=3,
#                                            SOURCES="host nvme", VARIANTS=sync,prefetch,accelerate)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
FERRY=${FERRY:-$here/../build/ferry}
WORK=${1:-/var/tmp/ferry-gpu-stream}
LAYERS=${LAYERS:-48}
HIDDEN=${HIDDEN:-8192}
BATCHES=${BATCHES:-"64 4096"}
GPU_BUDGET=${GPU_BUDGET:-2GiB}
REPS=${REPS:-3}
SOURCES=${SOURCES:-"host nvme"}
VARIANTS=${VARIANTS:-sync,prefetch,accelerate}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1

mkdir -p "$WORK"
results=$WORK/results.jsonl
: >"$results"
echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,pcie.link.gen.max,pcie.link.width.max \
    --format=csv,noheader || true
echo "cpu: $(nproc) cores, $(awk '/MemTotal/{print $2/1048576 " GiB"}' /proc/meminfo)"
echo "disk of $WORK: $(df -h "$WORK" | awk 'NR==2{print $1, $2}')"

# The graph and the weights everyone reads: ferry writes them once; the batch-4096 graph is
# the batch-64 one with the activation shapes changed (checked against ferry's own below).
first=${BATCHES%% *}
g_first=$WORK/g$first.yaml
if [ ! -s "$WORK/w.bin" ] || [ ! -s "$g_first" ]; then
    echo "== ferry graph mlp --layers $LAYERS --hidden $HIDDEN --batch $first --weights w.bin"
    t0=$(date +%s%N)
    "$FERRY" graph mlp --layers "$LAYERS" --hidden "$HIDDEN" --batch "$first" --dtype bf16 \
        --weights "$WORK/w.bin" -o "$g_first"
    echo "   $(( ($(date +%s%N) - t0) / 1000000 )) ms"
fi
for b in $BATCHES; do
    g=$WORK/g$b.yaml
    flops_first=$((2 * first * HIDDEN * HIDDEN)); flops_b=$((2 * b * HIDDEN * HIDDEN))
    if [ "$b" != "$first" ]; then
        sed -e "s/\[$first, $HIDDEN\]/[$b, $HIDDEN]/g" -e "s/flops: $flops_first\$/flops: $flops_b/" \
            -e "s/flops: $flops_first}/flops: $flops_b}/" "$g_first" >"$g"
    fi
    "$FERRY" graph mlp --layers "$LAYERS" --hidden "$HIDDEN" --batch "$b" --dtype bf16 -o "$WORK/check.yaml"
    if ! diff <(sed 's/, source: {[^}]*}//' "$g") "$WORK/check.yaml" >/dev/null; then
        echo "gpu_stream: $g differs from ferry's own batch-$b graph" >&2
        exit 1
    fi
    # x: fixed pseudo-random bf16 values, the same file for every method.
    [ -s "$WORK/x$b.bin" ] || "$PY" -c "
import numpy as np, torch, sys
g = torch.Generator().manual_seed(7)
x = torch.randn(($b, $HIDDEN), generator=g).to(torch.bfloat16)
x.view(torch.int16).numpy().tofile('$WORK/x$b.bin')"
done

echo "== O_DIRECT read of the weight file"
sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || echo "(cannot drop the page cache)"
dd if="$WORK/w.bin" of=/dev/null bs=64M iflag=direct 2>"$WORK/dd.txt"; cat "$WORK/dd.txt"
bytes=$(stat -c %s "$WORK/w.bin")
secs=$(awk '/copied/{for(i=1;i<=NF;i++) if($i ~ /^s,?$/) print $(i-1)}' "$WORK/dd.txt" | head -1)
dd_rate=$(awk -v b="$bytes" -v s="$secs" 'BEGIN{printf "%.0f", b / s}')

# The machine ferry's prediction uses, measured here (calibration is a machine file, not
# code): `ferry probe`, which reads at the depth ferry reads with (io_uring, O_DIRECT, 32
# requests in flight) and times the pinned link and the matmul through the cuda device; where
# this ferry has no probe, the PyTorch link rates and dd's one-request-at-a-time read. The
# disk's limit in the table is the probe's read rate (dd's where there is no probe).
if "$FERRY" probe --help >/dev/null 2>&1; then
    echo "== ferry probe --dir $WORK/probe --size 4GiB"
    "$FERRY" probe --dir "$WORK/probe" --size 4GiB -o "$WORK/machine.yaml"
    rm -rf "$WORK/probe"
    "$PY" - "$WORK/machine.yaml" "$dd_rate" >>"$results" <<'PYEOF'
import json, re, sys, yaml
m = yaml.safe_load(open(sys.argv[1]))
v, unit = re.fullmatch(r"([0-9.eE+-]+)\s*([KMGT]?)B/s", str(m["nvme"]["read"])).groups()
read = float(v) * {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}[unit]
print(json.dumps({"what": "disk", "read": read, "dd": float(sys.argv[2]), "how": "ferry probe"}))
PYEOF
else
    echo "{\"what\": \"disk\", \"read\": $dd_rate, \"dd\": $dd_rate, \"how\": \"dd\"}" >>"$results"
    "$PY" - "$here" "$WORK/machine.yaml" "$dd_rate" <<'PYEOF'
import sys, torch
sys.path.insert(0, sys.argv[1])
from torch_baselines import link_rates
r = link_rates(torch.device("cuda"))
with open(sys.argv[2], "w") as f:
    f.write("ferry: machine/1\n")
    f.write("gpu: {h2d: %.0fB/s, d2h: %.0fB/s}\n" % (r["h2d"], r["d2h"]))
    f.write("nvme: {read: %.0fB/s}\n" % float(sys.argv[3]))
PYEOF
fi
echo "== machine for the prediction"; cat "$WORK/machine.yaml"
export FERRY_MACHINE="$WORK/machine.yaml"

# ferry: plan under the budget with the default policy, check, then run on the GPU.
ferry_ready=1
"$FERRY" plan --help >/dev/null 2>&1 || ferry_ready=0
"$FERRY" run --help 2>&1 | grep -q cuda || ferry_ready=0
for src in $SOURCES; do
    for b in $BATCHES; do
        g=$WORK/g$b.yaml
        link=""; [ "$src" = host ] && [ "$b" = "$first" ] && link=--link
        if [ $ferry_ready = 1 ]; then
            "$here/gpu_stream_ferry.sh" "$FERRY" "$g" "$WORK" "$src" "$b" "$GPU_BUDGET" "$REPS" \
                >>"$results" || echo "{\"what\": \"ferry\", \"variant\": \"ferry\", \"source\": \"$src\", \"batch\": $b, \"seconds\": null, \"note\": \"run failed\"}" >>"$results"
        fi
        echo "== PyTorch baselines: weights from $src, batch $b"
        "$PY" "$here/torch_baselines.py" --graph "$g" --weights "$WORK/w.bin" --x "$WORK/x$b.bin" \
            --source "$src" --variants "$VARIANTS" --reps "$REPS" --out-dir "$WORK" \
            --offload-dir "$WORK/accelerate-offload" $link >>"$results"
    done
done
[ $ferry_ready = 1 ] || echo "(ferry plan/run --device cuda not available in $FERRY: no ferry rows)"

echo "== table (GB/s: 6 GiB of weights over the time; of limit: GB/s over pinned h2d, or over"
echo "   the slower of h2d and the disk's read rate for weights read from the file)"
"$PY" "$here/torch_baselines.py" table "$results"
