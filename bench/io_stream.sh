#!/usr/bin/env bash
# Streams one large file from disk with each method, the page cache emptied before every
# run, rounds interleaved so that a noisy neighbour hits all methods alike; prints the
# median, min and max GB/s of each and its ratio to dd. Results go to docs/performance.md.
#
#   bench/io_stream.sh [DIR]        env: SIZE (4GiB; 2GiB when DIR has less than 12 GiB
#                                   free), ROUNDS (3), BENCH (build/bench/bench_io_stream),
#                                   KEEP=1 keeps the file for the next run
set -euo pipefail

dir=${1:-/var/tmp/ferry-bench}
rounds=${ROUNDS:-3}
bench=${BENCH:-$(dirname "$0")/../build/bench/bench_io_stream}
[ -x "$bench" ] || { echo "io_stream.sh: no $bench (build first)" >&2; exit 2; }
mkdir -p "$dir"
file=$dir/io_stream.bin

free_kib=$(df -Pk "$dir" | awk 'NR==2 {print $4}')
if [ -z "${SIZE:-}" ]; then
    SIZE=4GiB
    [ "$free_kib" -lt $((12 * 1024 * 1024)) ] && SIZE=2GiB
fi
bytes=$(numfmt --from=iec-i --suffix=B "$SIZE" 2>/dev/null || numfmt --from=iec "${SIZE%B}")
bytes=${bytes%B}
if [ "$(stat -c %s "$file" 2>/dev/null || echo 0)" != "$bytes" ]; then
    echo "creating $file ($SIZE)..." >&2
    "$bench" create "$file" "$SIZE"
fi
[ "${KEEP:-0}" = 1 ] || trap 'rm -f "$file"' EXIT

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')," \
     "$(free -g | awk '/Mem:/ {print $2}') GiB RAM, kernel $(uname -r)"
src=$(df -P "$dir" | awk 'NR==2 {print $1}')
echo "file: $file ($SIZE) on $src ($(findmnt -no FSTYPE -T "$dir"))," \
     "scheduler $(cat /sys/block/"$(basename "$src")"/queue/scheduler 2>/dev/null || echo '?')"
echo "rounds: $rounds, page cache evicted (posix_fadvise DONTNEED) before every run;" \
     "load average before: $(cut -d" " -f1-3 /proc/loadavg)"

methods=(uring_direct uring_registered threads_direct uring_buffered threads_buffered dd_direct pread_buffered)
declare -A label=(
    [uring_direct]="ferry io_uring O_DIRECT (depth 32, chunk 1MiB)"
    [threads_direct]="ferry threads O_DIRECT (16 workers, chunk 1MiB)"
    [uring_registered]="ferry io_uring O_DIRECT, registered buffer"
    [uring_buffered]="ferry io_uring buffered"
    [threads_buffered]="ferry threads buffered"
    [dd_direct]="dd bs=4M iflag=direct"
    [pread_buffered]="plain pread loop, 4MiB, buffered"
)

# Prints the rate of one run in GB/s (10^9 bytes per second).
run() {
    "$bench" evict "$file"
    case $1 in
    uring_direct) "$bench" read "$file" --backend io_uring ;;
    threads_direct) "$bench" read "$file" --backend threads ;;
    uring_registered) "$bench" read "$file" --backend io_uring --register ;;
    uring_buffered) "$bench" read "$file" --backend io_uring --buffered ;;
    threads_buffered) "$bench" read "$file" --backend threads --buffered ;;
    pread_buffered) "$bench" pread "$file" ;;
    dd_direct)
        local t0 t1
        t0=$(date +%s.%N)
        dd if="$file" of=/dev/null bs=4M iflag=direct status=none
        t1=$(date +%s.%N)
        awk -v b="$bytes" -v a="$t0" -v z="$t1" 'BEGIN {printf "dd: = %.3f GB/s\n", b / (z - a) / 1e9}'
        ;;
    esac | sed -n 's/.*= \([0-9.]*\) GB\/s.*/\1/p'
}

declare -A rates
for ((r = 1; r <= rounds; r++)); do
    for m in "${methods[@]}"; do
        v=$(run "$m")
        [ -n "$v" ] || { echo "io_stream.sh: $m produced no rate" >&2; exit 1; }
        rates[$m]="${rates[$m]:-} $v"
    done
done

stats() { # median min max of the numbers given
    printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {
        m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.2f %.2f %.2f\n", m, v[1], v[NR]}'
}
read -r dd_med _ _ <<<"$(stats ${rates[dd_direct]})"
printf '\n| method | GB/s (median) | min | max | vs dd |\n| --- | ---: | ---: | ---: | ---: |\n'
for m in "${methods[@]}"; do
    read -r med lo hi <<<"$(stats ${rates[$m]})"
    printf '| %s | %s | %s | %s | %.2fx |\n' "${label[$m]}" "$med" "$lo" "$hi" \
        "$(awk -v a="$med" -v b="$dd_med" 'BEGIN {print a / b}')"
done
