#!/usr/bin/env bash
# On a terminal, a run that lasts shows a live progress line (events done of total, bytes
# moved, rate, time left) redrawn in place; piped, or with --quiet, it shows none.
set -euo pipefail
command -v script > /dev/null || { echo "run_progress: skipped: no script(1) here"; exit 77; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cat > "$tmp/slow.yaml" <<'G'
ferry: graph/1
name: slow
tensors:
  x: {kind: input, size: 64KiB}
  a: {kind: activation, size: 64KiB}
  b: {kind: activation, size: 64KiB}
  c: {kind: activation, size: 64KiB}
  y: {kind: output, size: 64KiB}
ops:
  - {name: s0, kind: spin, reads: [x], writes: [a], time: 150ms}
  - {name: s1, kind: spin, reads: [a], writes: [b], time: 150ms}
  - {name: s2, kind: spin, reads: [b], writes: [c], time: 150ms}
  - {name: s3, kind: spin, reads: [c], writes: [y], time: 150ms}
G
"$FERRY" plan "$tmp/slow.yaml" -o "$tmp/plan.yaml" > /dev/null
script -qec "'$FERRY' run '$tmp/plan.yaml' --device sim" /dev/null > "$tmp/tty.out" 2>&1
grep -aq $'\r\033\\[K[0-9]*/[0-9]* events, .* moved, .* left' "$tmp/tty.out" \
    || fail "no progress line on a terminal: $(cat -v "$tmp/tty.out" | head -5)"
"$FERRY" run "$tmp/plan.yaml" --device sim > "$tmp/pipe.out" 2>&1
grep -aq "events, " "$tmp/pipe.out" && fail "progress line written to a pipe"
grep -aq "wall time" "$tmp/pipe.out" || fail "no report when piped"
script -qec "'$FERRY' run '$tmp/plan.yaml' --device sim --quiet" /dev/null > "$tmp/quiet.out" 2>&1
grep -aq "events, " "$tmp/quiet.out" && fail "progress line despite --quiet"
echo "run_progress: ok"
