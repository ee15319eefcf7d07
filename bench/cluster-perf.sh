#!/usr/bin/env bash
# Runs `etcdctl check perf` against a three-member Concord cluster and a three-member etcd
# cluster (Debian's etcd 3.4), one after the other, all members on loopback on this machine.
# Same durability: both fsync every commit on each member before it counts towards a quorum.
# Everything else is each server's default. etcdctl gets all three endpoints.
#
#   bench/cluster-perf.sh [load ...]      loads: s m l xl (default: xl = 1000 clients)
#   ONLY=concord|etcd bench/cluster-perf.sh ...   runs one of the two
#
# Needs: etcd-server and etcd-client (scripts/install-deps.sh --bench) and a release build of
# concord (cargo build --release --bin concord).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
concord="$target/release/concord"
loads=("$@")
[ "${#loads[@]}" -gt 0 ] || loads=(xl)
# BENCH_WORK=<dir> keeps the members' data and logs there for a look afterwards.
work="${BENCH_WORK:-$(mktemp -d)}"
mkdir -p "$work"
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; [ -n "${BENCH_WORK:-}" ] || rm -rf "$work"' EXIT
export ETCDCTL_API=3

ports=(0 1 2)
# Below the ephemeral port range (32768+), so no outgoing connection can hold one of them.
client() { echo "http://127.0.0.1:2$(($1 + 1))379"; }
peer() { echo "http://127.0.0.1:2$(($1 + 1))380"; }
initial="m0=$(peer 0),m1=$(peer 1),m2=$(peer 2)"
endpoints="$(client 0),$(client 1),$(client 2)"

wait_up() {
  for _ in $(seq 150); do
    etcdctl --endpoints="$endpoints" endpoint health >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "cluster did not start; member logs:" >&2
  tail -n 5 "$work"/*.log >&2
  return 1
}

run() { # name load
  echo "== $1, three members, load $2"
  local out
  out="$(etcdctl --endpoints="$endpoints" check perf --load="$2" 2>&1 || true)"
  # check perf's verdict lines; anything else (an error) is shown as it came.
  echo "$out" | grep -E "PASS|FAIL|Slowest|Stddev|writes/s" || echo "$out" | tail -n 5
}

stop_all() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
}

for load in "${loads[@]}"; do
  rm -rf "${work:?}"/*
  if [ "${ONLY:-concord}" = concord ]; then
    for i in "${ports[@]}"; do
      "$concord" --name "m$i" --data-dir "$work/concord-m$i" \
        --listen-client-urls "$(client "$i")" --advertise-client-urls "$(client "$i")" \
        --listen-peer-urls "$(peer "$i")" --initial-advertise-peer-urls "$(peer "$i")" \
        --initial-cluster "$initial" >"$work/concord-m$i.log" 2>&1 &
    done
    wait_up
    run concord "$load"
    stop_all
  fi
  if [ "${ONLY:-etcd}" = etcd ]; then
    for i in "${ports[@]}"; do
      etcd --name "m$i" --data-dir "$work/etcd-m$i" \
        --listen-client-urls "$(client "$i")" --advertise-client-urls "$(client "$i")" \
        --listen-peer-urls "$(peer "$i")" --initial-advertise-peer-urls "$(peer "$i")" \
        --initial-cluster "$initial" --initial-cluster-state new >"$work/etcd-m$i.log" 2>&1 &
    done
    wait_up
    run etcd "$load"
    stop_all
  fi
done
