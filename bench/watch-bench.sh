#!/usr/bin/env bash
# Watch fan-out, Concord against etcd: a single member of each on loopback (fresh data dir, each
# server's defaults), one after the other; `concord-bench watch` creates the watchers (one key
# each, spread over the streams), then puts at a fixed rate and measures the delay from each put's
# acknowledgement to its event's arrival, and the server's resident memory per watcher.
#
#   bench/watch-bench.sh [watchers:streams ...]     default: 10000:100 100000:1000
#   ONLY=concord|etcd bench/watch-bench.sh ...      one of the two
#
# Needs: etcd-server and etcd-client (scripts/install-deps.sh --bench) and release builds of
# concord and concord-bench (cargo build --release --workspace --bins).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
concord="$target/release/concord"
bench="$target/release/concord-bench"
shapes=("$@")
[ "${#shapes[@]}" -gt 0 ] || shapes=(10000:100 100000:1000)
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT
export ETCDCTL_API=3
# Below the ephemeral port range, so no outgoing connection holds them.
client="http://127.0.0.1:21379"
peer="http://127.0.0.1:21380"

wait_up() {
  for _ in $(seq 150); do
    etcdctl --endpoints="$client" endpoint health >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "server did not start" >&2
  return 1
}

run() { # name pid watchers streams
  echo "== $1: $3 watchers on $4 streams"
  "$bench" watch --endpoints "$client" --watchers "$3" --streams "$4" --connections 8 \
    --puts 2000 --rate 200 --server-pid "$2"
}

for shape in "${shapes[@]}"; do
  watchers="${shape%%:*}"
  streams="${shape##*:}"
  if [ "${ONLY:-concord}" = concord ]; then
    rm -rf "${work:?}"/*
    "$concord" --data-dir "$work/concord" --listen-client-urls "$client" \
      --advertise-client-urls "$client" --listen-peer-urls "$peer" \
      --initial-advertise-peer-urls "$peer" >"$work/concord.log" 2>&1 &
    pid=$!
    wait_up
    run concord "$pid" "$watchers" "$streams"
    kill "$pid"; wait "$pid" 2>/dev/null || true
  fi
  if [ "${ONLY:-etcd}" = etcd ]; then
    rm -rf "${work:?}"/*
    etcd --data-dir "$work/etcd" --listen-client-urls "$client" --advertise-client-urls "$client" \
      --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
      --initial-cluster "default=$peer" >"$work/etcd.log" 2>&1 &
    pid=$!
    wait_up
    run etcd "$pid" "$watchers" "$streams"
    kill "$pid"; wait "$pid" 2>/dev/null || true
  fi
done
