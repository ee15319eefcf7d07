#!/usr/bin/env bash
# How long the server's fdatasync calls take under load: each server given (a path to a
# `concord` binary, or `etcd`) in turn, three rounds, as a fresh single member on loopback while
# concord-bench puts at 1,000 clients (32-byte keys, 256-byte values) and then at 500 clients
# (256-byte keys, 1 KiB values, the shape of `etcdctl check perf`) for 10 s each. perf records
# the server's fdatasync entries and exits for 8 s of each run; the script prints syncs per
# second and the mean, median and p99 time per sync beside the load's throughput and p99.
#
#   bench/sync-latency.sh [server ...]     default: this tree's concord, then etcd
#
# Needs: scripts/install-deps.sh --bench, cargo build --release --workspace --bins, and perf
# (Debian's linux-perf) with syscall tracepoints, run as root.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
bench="$target/release/concord-bench"
[ $# -gt 0 ] || set -- "$target/release/concord" etcd
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT
# shellcheck source=bench/single-member.sh
. "$root/bench/single-member.sh"
shapes=("--clients 1000 --connections 100 --key-space 100000"
  "--clients 500 --connections 500 --key-size 256 --value-size 1024 --key-space 100000000")

field() { grep -o "\"$1\":[0-9.]*" "$2" | head -1 | cut -d: -f2; }

# fdatasync durations from `perf script` lines "tid time: event": prints a summary.
sync_summary() {
  awk '{ t = $2 + 0 }
    $3 ~ /enter/ { start[$1] = t; next }
    ($1 in start) { print (t - start[$1]) * 1e6; delete start[$1] }' |
    sort -n | awk -v secs=8 '{ d[NR] = $1; s += $1 }
      END { if (NR == 0) { print "no syncs seen"; exit }
        printf "%5.0f syncs/s, mean %4.0f, median %4.0f, p99 %5.0f µs\n",
          NR / secs, s / NR, d[int(NR / 2) + 1], d[int(NR * 0.99) + 1] }'
}

for round in 1 2 3; do
  for server in "$@"; do
    start_member "$server"
    for shape in "${shapes[@]}"; do
      # shellcheck disable=SC2086 # the shape is a list of flags
      "$bench" put --endpoints "$client" $shape --duration 10 --json >"$work/result.json" &
      load=$!
      sleep 1
      perf record -q -e syscalls:sys_enter_fdatasync,syscalls:sys_exit_fdatasync -p "$pid" \
        -o "$work/perf.data" -- sleep 8 >/dev/null 2>&1
      wait "$load"
      syncs="$(perf script -i "$work/perf.data" -F tid,time,event 2>/dev/null | sync_summary)"
      printf '%-8s round %d, %4d clients: %6.0f puts/s, p99 %5.1f ms | %s\n' \
        "$(basename "$server")" "$round" "$(echo "$shape" | cut -d' ' -f2)" \
        "$(field throughput "$work/result.json")" "$(field p99 "$work/result.json")" "$syncs"
    done
    stop_member
  done
done
