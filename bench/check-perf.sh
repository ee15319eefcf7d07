#!/usr/bin/env bash
# Runs `etcdctl check perf` against a single-member Concord and a single-member etcd (Debian's
# etcd 3.4), one after the other on loopback, with the same durability: both fsync every commit
# (etcd always does; Concord fdatasyncs its WAL before acknowledging). Everything else is each
# server's default.
#
#   bench/check-perf.sh [load ...]        loads: s m l xl (default: m l)
#
# Needs: etcd-server and etcd-client (scripts/install-deps.sh --bench) and a release build of
# concord (cargo build --release --bin concord).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
concord="$target/release/concord"
loads=("$@")
[ "${#loads[@]}" -gt 0 ] || loads=(m l)
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
export ETCDCTL_API=3

wait_up() {
  for _ in $(seq 100); do
    etcdctl --endpoints="$1" endpoint health >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "server at $1 did not start" >&2
  return 1
}

run() { # name endpoint load
  echo "== $1, load $3"
  etcdctl --endpoints="$2" check perf --load="$3" 2>&1 | grep -E "PASS|FAIL|Slowest|Stddev|writes/s" || true
}

for load in "${loads[@]}"; do
  rm -rf "$work"/*
  "$concord" --data-dir "$work/concord" --listen-client-urls http://127.0.0.1:42379 \
    --advertise-client-urls http://127.0.0.1:42379 >"$work/concord.log" 2>&1 &
  pid=$!
  wait_up http://127.0.0.1:42379
  run concord http://127.0.0.1:42379 "$load"
  kill "$pid"; wait "$pid" 2>/dev/null || true

  etcd --data-dir "$work/etcd" --listen-client-urls http://127.0.0.1:42479 \
    --advertise-client-urls http://127.0.0.1:42479 --listen-peer-urls http://127.0.0.1:42480 \
    --initial-advertise-peer-urls http://127.0.0.1:42480 \
    --initial-cluster default=http://127.0.0.1:42480 >"$work/etcd.log" 2>&1 &
  pid=$!
  wait_up http://127.0.0.1:42479
  run etcd http://127.0.0.1:42479 "$load"
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
