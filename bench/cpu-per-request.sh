#!/usr/bin/env bash
# CPU time per request, server and load generator apart: a fresh single member of Concord and
# of etcd 3.4 in turn (twice each, alternating), 100,000 keys loaded, then one concord-bench
# workload for 10 s at 1,000 clients over 100 connections. The server's CPU comes from
# /proc/<pid>/stat before and after the run, concord-bench's from its own rusage.
#
#   bench/cpu-per-request.sh [put|range]      default put
#
# Needs: scripts/install-deps.sh --bench (etcd, GNU time), and cargo build --release --workspace --bins.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
concord="$target/release/concord"
bench="$target/release/concord-bench"
workload="${1:-put}"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT
# shellcheck source=bench/single-member.sh
. "$root/bench/single-member.sh"
tick="$(getconf CLK_TCK)"
cpu_seconds() { awk -v t="$tick" '{ print ($14 + $15) / t }' "/proc/$1/stat"; }

run() { # server name, server (etcd or a concord binary)
  start_member "$2"
  local common=(--endpoints "$client" --connections 100 --key-space 100000 --json)
  "$bench" put "${common[@]}" --clients 100 --total 100000 --sequential >/dev/null
  local before after
  before="$(cpu_seconds "$pid")"
  command time -f '%U %S' -o "$work/time" \
    "$bench" "$workload" "${common[@]}" --clients 1000 --duration 10 >"$work/result.json"
  after="$(cpu_seconds "$pid")"
  local n rate
  n="$(grep -o '"requests":[0-9]*' "$work/result.json" | cut -d: -f2)"
  rate="$(grep -o '"throughput":[0-9.]*' "$work/result.json" | cut -d: -f2)"
  awk -v s="$1" -v n="$n" -v r="$rate" -v b="$before" -v a="$after" -v t="$(cat "$work/time")" \
    'BEGIN { split(t, c, " ");
      printf "%-8s %9.0f req/s  server %5.1f µs/req  concord-bench %5.1f µs/req\n",
        s, r, (a - b) / n * 1e6, (c[1] + c[2]) / n * 1e6 }'
  stop_member
}

for _ in 1 2; do
  run concord "$concord"
  run etcd etcd
done
