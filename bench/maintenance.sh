#!/usr/bin/env bash
# Backup, restore and defragmentation on a ~1 GiB store, for Concord and for Debian's etcd 3.4,
# one single member at a time on loopback.
#
#   bench/maintenance.sh [concord|etcd ...]     (default: both)
#
# For each server:
#   1. load: 1,048,576 puts of 1 KiB values that compression cannot shrink, over 1,048,576 keys
#      (about 1 GiB of data);
#   2. snapshot save with Debian's etcdctl, timed: MiB/s of the saved file;
#   3. (Concord) snapshot restore with concordctl into a new data dir, timed, and a member started
#      on it to count the keys;
#   4. a steady put load (1,000/s, 1 KiB values, 40 s) with a defragmentation started 5 s in:
#      put latency with the defragmentation in it against 10 s without, the defragmentation's
#      duration, and the store size before and after. (Both servers rewrite everything in a
#      defragmentation, garbage or not: etcd copies its bolt file, Concord compacts every SST.)
#
# Needs: etcd-server and etcd-client (scripts/install-deps.sh --bench) and release builds of
# concord, concordctl and concord-bench (cargo build --release --bins). Takes about 10 minutes
# per server and ~5 GiB of scratch space.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
bench="$target/release/concord-bench"
concordctl="$target/release/concordctl"
servers=("$@")
[ "${#servers[@]}" -gt 0 ] || servers=(concord etcd)
work="$(mktemp -d "${TMPDIR:-/var/tmp}/concord-maint.XXXXXX")"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
export ETCDCTL_API=3
client=http://127.0.0.1:23379
peer=http://127.0.0.1:23380
keys=1048576

start() { # server data-dir [extra flags]
  local server=$1 dir=$2
  shift 2
  local flags=(--name default --data-dir "$dir" --listen-client-urls "$client"
    --advertise-client-urls "$client" --listen-peer-urls "$peer"
    --initial-advertise-peer-urls "$peer" --initial-cluster "default=$peer"
    --quota-backend-bytes 17179869184 "$@")
  if [ "$server" = etcd ]; then
    etcd "${flags[@]}" >>"$work/$server.log" 2>&1 &
  else
    "$target/release/concord" "${flags[@]}" >>"$work/$server.log" 2>&1 &
  fi
  pid=$!
  for _ in $(seq 300); do
    etcdctl --endpoints="$client" endpoint health >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "$server did not start" >&2
  tail -5 "$work/$server.log" >&2
  return 1
}

stop() {
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

secs() { # start-ns end-ns
  awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'
}

db_size() {
  etcdctl --endpoints="$client" endpoint status -w json | python3 -c \
    'import json,sys; print(json.load(sys.stdin)[0]["Status"]["dbSize"])'
}

revision() {
  etcdctl --endpoints="$client" get x -w json | python3 -c \
    'import json,sys; print(json.load(sys.stdin)["header"]["revision"])'
}

for server in "${servers[@]}"; do
  echo "== $server"
  rm -rf "${work:?}"/data* "$work"/snap.db*
  start "$server" "$work/data"
  "$bench" put --endpoints "$client" --total "$keys" --key-space "$keys" --sequential \
    --incompressible --value-size 1024 --clients 64 --connections 8 --json >"$work/load.json"
  echo "load: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.0f puts/s" % d["throughput"])' "$work/load.json"), db size $(($(db_size) / 1048576)) MiB"

  t0=$(date +%s%N)
  etcdctl --endpoints="$client" snapshot save "$work/snap.db" >/dev/null
  t1=$(date +%s%N)
  size=$(stat -c %s "$work/snap.db")
  echo "snapshot save: $((size / 1048576)) MiB in $(secs "$t0" "$t1") s ($(awk -v s="$size" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", s / 1048576 / ((b - a) / 1e9) }') MiB/s)"

  if [ "$server" = concord ]; then
    t0=$(date +%s%N)
    "$concordctl" snapshot restore "$work/snap.db" --name default --data-dir "$work/data-restored" \
      --initial-cluster "default=$peer" --initial-advertise-peer-urls "$peer" >/dev/null
    t1=$(date +%s%N)
    echo "snapshot restore: $(secs "$t0" "$t1") s ($(awk -v s="$size" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", s / 1048576 / ((b - a) / 1e9) }') MiB/s)"
    stop
    start concord "$work/data-restored"
    echo "restored member: $(etcdctl --endpoints="$client" get "" --prefix --keys-only --limit 1 -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])') keys at revision $(revision)"
    stop
    start concord "$work/data"
  fi

  before=$(db_size)
  "$bench" put --endpoints "$client" --rate 1000 --duration 10 --key-space 10000 \
    --value-size 1024 --clients 16 --connections 4 --json >"$work/quiet.json"
  "$bench" put --endpoints "$client" --rate 1000 --duration 40 --key-space 10000 \
    --value-size 1024 --clients 16 --connections 4 --json >"$work/during.json" &
  load=$!
  sleep 5
  t0=$(date +%s%N)
  etcdctl --endpoints="$client" --command-timeout=600s defrag >/dev/null
  t1=$(date +%s%N)
  wait "$load"
  after=$(db_size)
  echo "defrag: $(secs "$t0" "$t1") s, db size $((before / 1048576)) MiB -> $((after / 1048576)) MiB"
  python3 - "$work/quiet.json" "$work/during.json" <<'EOF'
import json, sys
for name, path in (("put latency, no defrag   ", sys.argv[1]), ("put latency, defrag in it", sys.argv[2])):
    d = json.load(open(path))
    l = d["latency_ms"]
    print(f"{name}: p50 {l['p50']:.2f} ms, p99 {l['p99']:.2f} ms, max {l['max']:.1f} ms, "
          f"{d['throughput']:.0f} puts/s, {d['errors']} errors")
EOF
  stop
done
