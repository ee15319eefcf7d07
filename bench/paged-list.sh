#!/usr/bin/env bash
# A paged list against one full scan, as kube-apiserver lists (500 keys a page, linearizable),
# on 100,000 keys of 1 KiB, for Concord and Debian's etcd 3.4, one fresh single member at a
# time on loopback (issue 11 §1.13: paging must cost about what one scan costs).
#
#   bench/paged-list.sh [keys] [page] [rounds]        (defaults: 100000 500 5)
#
# Needs etcd-server (scripts/install-deps.sh --bench) and release builds of concord and
# concord-bench. Takes about two minutes.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
keys="${1:-100000}" page="${2:-500}" rounds="${3:-5}"
work="$(mktemp -d "${TMPDIR:-/var/tmp}/concord-paged.XXXXXX")"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
# shellcheck source=bench/single-member.sh
. "$root/bench/single-member.sh"
for server in "$target/release/concord" etcd; do
  start_member "$server"
  printf '%-8s ' "$(basename "$server")"
  "$target/release/concord-bench" list --endpoints "$client" --keys "$keys" --page "$page" \
    --rounds "$rounds" | tail -1
  stop_member
done
