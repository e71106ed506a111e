#!/usr/bin/env bash
# ferry's rows of bench/gpu_stream.sh: plans the graph under the gpu budget with the default
# policy, runs it with `ferry run --device cuda` (one warm-up, then REPS timed runs; the median
# counts) and prints one JSON line for the table, with ferry's predicted time when `ferry
# simulate` exists. Weights "host": the graph without sources, so every weight rests in the
# caller's memory (read from per-layer files cut from the same weight file, then page-locked by
# the engine before the clock starts); "nvme": the graph as written, weights read from the file
# with O_DIRECT after the page cache is dropped. Same x as the baselines; y goes where the
# table compares it with theirs.
#
# usage: bench/gpu_stream_ferry.sh FERRY GRAPH WORKDIR host|nvme BATCH GPU_BUDGET REPS
#        (env DEVICE=sim runs it without a GPU, to try the script)
set -euo pipefail
FERRY=$1 G=$2 WORK=$3 SRC=$4 B=$5 BUDGET=$6 REPS=$7
PY=${PYTHON:-python3}
tag=$SRC-$B
inputs=$WORK/in-$tag
mkdir -p "$inputs"
ln -sf "$WORK/x$B.bin" "$inputs/x.bin"
if [ "$SRC" = host ]; then
    graph=$WORK/g$B-host.yaml
    sed 's/, source: {[^}]*}//' "$G" >"$graph"
    # The weights as the caller holds them: one file per tensor, cut from w.bin once.
    if [ ! -s "$WORK/wsplit/done" ]; then
        mkdir -p "$WORK/wsplit"
        "$PY" - "$G" "$WORK/w.bin" "$WORK/wsplit" <<'EOF'
import sys, yaml
g = yaml.safe_load(open(sys.argv[1]))
with open(sys.argv[2], "rb") as f:
    for name, t in g["tensors"].items():
        if "source" in t:
            f.seek(int(t["source"]["offset"]))
            n = 2 * t["shape"][0] * t["shape"][1]
            open(f"{sys.argv[3]}/{name}.bin", "wb").write(f.read(n))
open(f"{sys.argv[3]}/done", "w").write("ok\n")
EOF
    fi
    for w in "$WORK"/wsplit/w*.bin; do ln -sf "$w" "$inputs/$(basename "$w")"; done
else
    graph=$G
fi
plan=$WORK/plan-$tag.yaml
"$FERRY" plan "$graph" --gpu "$BUDGET" -o "$plan" >&2
"$FERRY" check "$plan" >&2
predicted=null
if "$FERRY" simulate --help >/dev/null 2>&1; then
    machine=(); [ -n "${FERRY_MACHINE:-}" ] && machine=(--machine "$FERRY_MACHINE")
    predicted=$("$FERRY" simulate "$plan" "${machine[@]}" --json | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
for k in ("total_s", "predicted_s", "time_s"):
    if isinstance(d.get(k), (int, float)):
        print(d[k]); break
else:
    print("null")') || predicted=null
fi
[ "$SRC" = nvme ] && { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
out=$WORK/out-$tag
log=$WORK/ferry-$tag.txt
"$FERRY" run "$plan" --device "${DEVICE:-cuda}" --inputs "$inputs" --outputs "$out" --warmup 1 \
    --repeat "$REPS" --trace "$WORK/trace-$tag.json" >"$log"
cat "$log" >&2
y=$WORK/y-ferry-$tag.bin
cp "$out/y.bin" "$y"
bytes=$(stat -c %s "$WORK/w.bin")
"$PY" - "$log" "$SRC" "$B" "$predicted" "$y" "$bytes" <<'EOF'
import json, re, sys
log, src, b, pred, y, nbytes = sys.argv[1:]
text = open(log).read()
m = re.search(r"wall times \(ms\):([\d. ]+); median ([\d.]+) ms", text)
times = [float(t) / 1e3 for t in m.group(1).split()]
pin = re.search(r"page-locked for the run: (\S+) in (\S+)", text)
print(json.dumps({"what": "ferry", "variant": "ferry", "source": src, "batch": int(b),
                  "seconds": float(m.group(2)) / 1e3, "times": times, "bytes": int(nbytes),
                  "predicted": None if pred == "null" else float(pred), "y": y,
                  "pinned": pin.group(1) + " in " + pin.group(2) if pin else None}))
EOF
