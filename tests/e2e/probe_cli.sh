#!/usr/bin/env bash
# `ferry probe`: measures nvme rates in a folder and writes a machine file that `ferry plan`
# and `ferry simulate` load, leaves no temporary file behind, and exits 2 naming a folder it
# cannot use.
set -euo pipefail
tmp=$(mktemp -d); trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

mkdir "$tmp/d"
"$FERRY" probe --dir "$tmp/d" --size 8MiB -o "$tmp/m.yaml" > "$tmp/out" 2> "$tmp/err" \
    || fail "probe exited $?: $(cat "$tmp/err")"
grep -q "^nvme: .*write .*read" "$tmp/err" || fail "no nvme measurement on stderr: $(cat "$tmp/err")"
grep -q "^gpu: " "$tmp/err" || fail "no gpu line on stderr"
grep -q "wrote $tmp/m.yaml" "$tmp/out" || fail "no summary on stdout: $(cat "$tmp/out")"
[ -z "$(ls -A "$tmp/d")" ] || fail "temporary file left: $(ls -A "$tmp/d")"
line=$(grep "^nvme:" "$tmp/m.yaml") || fail "no nvme line: $(cat "$tmp/m.yaml")"
for key in read write; do
    v=$(sed -n "s/.*$key: \([0-9.e+]*\)\([KMGT]*B\/s\).*/\1/p" <<< "$line")
    [ -n "$v" ] || fail "no nvme $key rate in: $line"
    awk -v v="$v" 'BEGIN { exit !(v > 0) }' || fail "nvme $key rate $v is not positive"
done
grep -q "dir: $tmp/d" <<< "$line" || fail "nvme dir not recorded: $line"
# The defaults' text (3GB/s read, 2GB/s write) must not survive a measurement.
! grep -q "read: 3GB/s" <<< "$line" || fail "read rate is the default's"
! grep -q "write: 2GB/s" <<< "$line" || fail "write rate is the default's"

# The file loads: plan with it, then simulate with it.
"$FERRY" graph mlp --layers 2 --hidden 64 --batch 2 -o "$tmp/g.yaml" 2> /dev/null
"$FERRY" plan "$tmp/g.yaml" --machine "$tmp/m.yaml" -o "$tmp/p.yaml" > /dev/null \
    || fail "plan does not load the probed machine"
"$FERRY" simulate "$tmp/p.yaml" --machine "$tmp/m.yaml" > /dev/null \
    || fail "simulate does not load the probed machine"

# -o - prints the machine file on stdout (and no summary).
"$FERRY" probe --dir "$tmp/d" --size 1MiB -o - > "$tmp/stdout.yaml" 2> /dev/null
head -1 "$tmp/stdout.yaml" | grep -q "^ferry: machine/1" || fail "-o - did not print the file"
! grep -q "^wrote" "$tmp/stdout.yaml" || fail "summary mixed into -o -"

# A missing folder whose parent exists is created (and left empty).
"$FERRY" probe --dir "$tmp/new" --size 1MiB -o "$tmp/n.yaml" 2> /dev/null > /dev/null
[ -d "$tmp/new" ] && [ -z "$(ls -A "$tmp/new")" ] || fail "--dir was not created, or not left empty"

# A folder that cannot be used: exit 2, the folder named.
expect_fail() {
    local dir=$1 rc=0
    "$FERRY" probe --dir "$dir" --size 1MiB -o "$tmp/x.yaml" 2> "$tmp/err" > /dev/null || rc=$?
    [ $rc -eq 2 ] || fail "--dir $dir exit $rc, want 2"
    grep -qF "$dir" "$tmp/err" || fail "error does not name $dir: $(cat "$tmp/err")"
    [ ! -e "$tmp/x.yaml" ] || fail "a machine file was written for $dir"
}
expect_fail "$tmp/no/such"
touch "$tmp/file"
expect_fail "$tmp/file"
expect_fail "$tmp/file/sub"
if [ "$(id -u)" -ne 0 ]; then # root writes anywhere: the mode test only means something for others
    mkdir "$tmp/ro"; chmod 555 "$tmp/ro"
    expect_fail "$tmp/ro"
fi
rc=0; "$FERRY" probe --dir "$tmp/d" --size 0 2> "$tmp/err" > /dev/null || rc=$?
[ $rc -eq 2 ] || fail "--size 0 exit $rc, want 2"
echo "probe_cli: ok"
