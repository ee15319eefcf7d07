#!/usr/bin/env bash
# The node agent's cost per running pod: starts a control plane with one agent
# (scripts/run-control-plane.sh), runs PODS pods (one `sleep` container each, no probes) through a
# Deployment, waits until all are Running, then measures over WINDOW seconds of steady state:
#   - the agent's CPU time (utime + stime) and resident memory;
#   - the shims' resident memory (one shim per container);
# and prints each per pod. Then it scales to 0 and stops everything.
#
#   bench/agent-footprint.sh [PODS=100] [WINDOW=60]
set -euo pipefail
pods="${1:-100}"
window="${2:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cargo build --release --bin concord --bin concord-apiserver --bin concord-scheduler \
  --bin concord-controller-manager --bin concord-agent --bin concord-shim >&2
target="$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
bin="$target/release"
kubectl="${CONCORD_KUBECTL:-/var/cache/concord/tools/kubectl-1.36.4/bin/kubectl}"
data="$(mktemp -d /tmp/agent-footprint.XXXXXX)"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
setsid scripts/run-control-plane.sh --no-build --agents 1 --data-dir "$data" --store-port 42379 \
  --apiserver-port "$port" >"$data/script.out" 2>&1 &
script=$!
cleanup() {
  kill -INT -- "-$script" 2>/dev/null || true
  wait "$script" 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT
k() { "$kubectl" --server "http://127.0.0.1:$port" "$@"; }
for _ in $(seq 1 150); do
  k get node node-0 >/dev/null 2>&1 && break
  sleep 0.2
done
"$bin/concord-agent" --image-dir "$data/images" image import tools:1 >/dev/null
k create deployment sleepers --image=tools:1 --replicas="$pods" -- sleep 36000 >/dev/null
start=$(date +%s)
while :; do
  running=$(k get pods --no-headers 2>/dev/null | grep -c " Running " || true)
  [ "$running" -ge "$pods" ] && break
  if [ $(( $(date +%s) - start )) -gt 300 ]; then echo "only $running of $pods Running after 300 s" >&2; exit 1; fi
  sleep 1
done
echo "pods Running: $pods after $(( $(date +%s) - start )) s"
agent=$(pgrep -f -- "concord-agent --etcd-servers .* --root-dir $data/agent-0 " | head -1)
hz=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# Proportional set size: shared pages (the binary's text, which every shim maps) divided among
# the processes that map them.
pss_kib() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }
sleep 10   # let the start-up writes settle
c0=$(cpu "$agent")
sleep "$window"
c1=$(cpu "$agent")
agent_rss=$(rss_kib "$agent")
agent_pss=$(pss_kib "$agent")
shim_rss=0
shim_pss=0
shims=0
for p in $(pgrep -f "shim $data/agent-0/pods/"); do
  r=$(rss_kib "$p" 2>/dev/null || echo 0)
  q=$(pss_kib "$p" 2>/dev/null || echo 0)
  shim_rss=$((shim_rss + r))
  shim_pss=$((shim_pss + q))
  shims=$((shims + 1))
done
python3 - "$pods" "$window" "$hz" "$c0" "$c1" "$agent_rss" "$shim_rss" "$shims" "$agent_pss" "$shim_pss" <<'EOF'
import sys
pods, window, hz, c0, c1, agent_rss, shim_rss, shims, agent_pss, shim_pss = map(float, sys.argv[1:])
cpu = (c1 - c0) / hz
print(f"agent CPU over {window:.0f} s: {cpu:.2f} s = {100 * cpu / window:.2f} % of a core "
      f"= {1000 * cpu / window / pods:.3f} ms/s per pod")
print(f"agent RSS: {agent_rss / 1024:.1f} MiB = {agent_rss / pods:.0f} KiB per pod "
      f"(PSS {agent_pss / 1024:.1f} MiB)")
print(f"shims: {shims:.0f}, RSS {shim_rss / 1024:.1f} MiB = {shim_rss / max(shims, 1):.0f} KiB each; "
      f"PSS {shim_pss / 1024:.1f} MiB = {shim_pss / max(shims, 1):.0f} KiB each")
EOF
k scale deployment sleepers --replicas=0 >/dev/null
