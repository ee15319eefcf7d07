#!/usr/bin/env bash
# Runs a three-member Concord cluster on this machine, on loopback:
#   members m0 m1 m2, clients on 127.0.0.1:12379/22379/32379, peers on 127.0.0.1:12380/22380/32380,
#   data in ./cluster.concord/m0 m1 m2. Ctrl-C stops all three.
# Run it again to restart the same cluster on its data.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/install-deps.sh"
cd "$root"
cargo build --release --bin concord
target="${CARGO_TARGET_DIR:-$root/target}"
bin="$target/release/concord"
data="${CONCORD_CLUSTER_DIR:-$PWD/cluster.concord}"
mkdir -p "$data"
initial="m0=http://127.0.0.1:12380,m1=http://127.0.0.1:22380,m2=http://127.0.0.1:32380"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for i in 0 1 2; do
  p=$((i + 1))
  "$bin" --name "m$i" --data-dir "$data/m$i" \
    --listen-client-urls "http://127.0.0.1:${p}2379" --advertise-client-urls "http://127.0.0.1:${p}2379" \
    --listen-peer-urls "http://127.0.0.1:${p}2380" --initial-advertise-peer-urls "http://127.0.0.1:${p}2380" \
    --initial-cluster "$initial" --initial-cluster-token concord-local \
    2>"$data/m$i.log" &
  pids+=($!)
done
echo "cluster starting; logs in $data/m*.log"
echo "  ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:12379,127.0.0.1:22379,127.0.0.1:32379 member list -w table"
wait
