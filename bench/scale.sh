#!/usr/bin/env bash
# Scale: load 10 million keys (32-byte keys, 256-byte values) into a single member of Concord,
# then of etcd 3.4 with its backend quota raised to etcd's largest (8 GiB), and report for each:
# write throughput over the load (per million keys), the server's resident memory as it grows,
# point and 100-key range read latency at the end, and the restart time. etcd is stopped where
# it stops (its error is shown).
#
#   bench/scale.sh [keys]           default 10000000
#   ONLY=concord|etcd bench/scale.sh
#
# Needs: scripts/install-deps.sh --bench, cargo build --release --workspace --bins, and disk
# (about 3 GB per server). Takes a while: about 10 minutes per server here.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
concord="$target/release/concord"
bench="$target/release/concord-bench"
keys="${1:-10000000}"
chunk=1000000
[ "$keys" -lt "$chunk" ] && chunk="$keys"
work="${BENCH_WORK:-$(mktemp -d)}"
mkdir -p "$work"
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; [ -n "${BENCH_WORK:-}" ] || rm -rf "$work"' EXIT
export ETCDCTL_API=3
client="http://127.0.0.1:21379"
peer="http://127.0.0.1:21380"
common=(--endpoints "$client" --clients 200 --connections 20 --key-size 32 --value-size 256)

start() { # server
  local flags=(--data-dir "$work/$1" --listen-client-urls "$client" --advertise-client-urls "$client"
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer")
  local began
  began=$(date +%s%N)
  if [ "$1" = concord ]; then
    "$concord" "${flags[@]}" >>"$work/$1.log" 2>&1 &
  else
    etcd "${flags[@]}" --initial-cluster "default=$peer" --quota-backend-bytes 8589934592 \
      >>"$work/$1.log" 2>&1 &
  fi
  pid=$!
  for _ in $(seq 3000); do
    if etcdctl --endpoints="$client" endpoint health >/dev/null 2>&1; then
      echo "  serving after $((($(date +%s%N) - began) / 1000000)) ms"
      return 0
    fi
    sleep 0.1
  done
  echo "$1 did not start" >&2
  return 1
}

rss() { awk '/VmRSS/ { printf "%.0f MiB", $2 / 1024 }' "/proc/$pid/status"; }

for server in concord etcd; do
  [ "${ONLY:-$server}" = "$server" ] || continue
  echo "== $server: loading $keys keys"
  rm -rf "${work:?}/$server"
  start "$server"
  loaded=0
  while [ "$loaded" -lt "$keys" ]; do
    out="$("$bench" put "${common[@]}" --sequential --key-space "$chunk" --key-offset "$loaded" \
      --total "$chunk" --json)"
    errors=$(echo "$out" | sed -E 's/.*"errors":([0-9]+).*/\1/')
    rate=$(echo "$out" | sed -E 's/.*"throughput":([0-9.]+).*/\1/')
    loaded=$((loaded + chunk))
    printf '  %9d keys: %6.0f puts/s, %s errors, rss %s\n' "$loaded" "$rate" "$errors" "$(rss)"
    if [ "$errors" != 0 ]; then
      echo "  $server stopped accepting writes near $loaded keys:"
      etcdctl --endpoints="$client" put probe-key probe-value 2>&1 | tail -1 | sed 's/^/    /'
      break
    fi
  done
  echo "  reads at the end:"
  "$bench" range "${common[@]}" --key-space "$loaded" --total 20000 | sed 's/^/    /'
  "$bench" range "${common[@]}" --key-space "$loaded" --keys-per-range 100 --total 5000 \
    | sed 's/^/    /'
  echo "  rss after reads: $(rss)"
  echo "  restart:"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  start "$server"
  echo "  rss after restart: $(rss)"
  "$bench" range "${common[@]}" --key-space "$loaded" --total 20000 | sed 's/^/    /'
  du -sh "$work/$server" | sed 's/^/  on disk: /'
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
