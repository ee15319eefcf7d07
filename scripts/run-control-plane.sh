#!/usr/bin/env bash
# Runs a whole Concord control plane on this machine, on loopback:
#   - one Concord member (or three with --members 3): member i's client port is --store-port + 2i
#     (12379 by default), its peer port the next one;
#   - concord-apiserver on 127.0.0.1:PORT (--apiserver-port, 8080 by default), giving Services
#     cluster IPs from 127.2.0.0/16;
#   - concord-scheduler and concord-controller-manager;
#   - N node agents (--agents, 2 by default) named node-0 … node-(N-1). Agent i gives its pods
#     addresses from 127.1.i.0/24, keeps its state in DATA/agent-i, serves logs on a port of its
#     own (picked by the system and published in its Node's
#     status.daemonEndpoints.kubeletEndpoint.Port), and serves every Service's cluster IP:
#     all agents listen on each Service address with SO_REUSEPORT and the kernel spreads the
#     connections between them. They share the image store DATA/images.
# Data and logs go to --data-dir (./control-plane.concord by default); run it again to restart the
# same cluster on its data. Ctrl-C stops everything, pod processes included.
#
#   scripts/run-control-plane.sh [--members 1|3] [--agents N] [--data-dir DIR] [--apiserver-port PORT]
#                                [--node-monitor-grace-period D] [--node-lease-duration-seconds S]
#                                [--store-port P] [--no-build] [--bin-dir DIR]
# --bin-dir takes the binaries from DIR instead of building them into the release target
# directory (the tests pass the directory of the profile they were built in).
# --apiserver-port 0 and (with one member) --store-port 0 let the system pick free ports; the
# `apiserver:` and `store:` lines printed once everything has started give them.
# --node-monitor-grace-period (the controller-manager's, 50s) and --node-lease-duration-seconds
# (the agents', 40; renewed every quarter of it) set how fast a stopped agent's node turns
# Unknown; keep the lease's renewal interval well under the grace period.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
members=1
agents=2
data="$PWD/control-plane.concord"
api_port=8080
build=1
bin=""
grace=50s
store_port=12379
lease=40
while [ $# -gt 0 ]; do
  case "$1" in
    --members) members="$2"; shift 2 ;;
    --members=*) members="${1#*=}"; shift ;;
    --agents) agents="$2"; shift 2 ;;
    --agents=*) agents="${1#*=}"; shift ;;
    --data-dir) data="$2"; shift 2 ;;
    --data-dir=*) data="${1#*=}"; shift ;;
    --apiserver-port) api_port="$2"; shift 2 ;;
    --apiserver-port=*) api_port="${1#*=}"; shift ;;
    --node-monitor-grace-period) grace="$2"; shift 2 ;;
    --node-monitor-grace-period=*) grace="${1#*=}"; shift ;;
    --node-lease-duration-seconds) lease="$2"; shift 2 ;;
    --node-lease-duration-seconds=*) lease="${1#*=}"; shift ;;
    --store-port) store_port="$2"; shift 2 ;;
    --store-port=*) store_port="${1#*=}"; shift ;;
    --no-build) build=0; shift ;;
    --bin-dir) bin="$2"; build=0; shift 2 ;;
    --bin-dir=*) bin="${1#*=}"; build=0; shift ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "unknown flag: $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$members" in 1|3) ;; *) echo "--members must be 1 or 3" >&2; exit 2 ;; esac
if [ "$store_port" = 0 ] && [ "$members" != 1 ]; then
  echo "--store-port 0 needs --members 1 (members must know each other's peer ports)" >&2; exit 2
fi
if ! [[ "$agents" =~ ^[0-9]+$ ]] || [ "$agents" -gt 250 ]; then
  echo "--agents must be a number from 0 to 250" >&2; exit 2
fi
cd "$root"
if [ "$build" = 1 ]; then
  cargo build --release --bin concord --bin concord-apiserver --bin concord-scheduler \
    --bin concord-controller-manager --bin concord-agent --bin concord-shim >&2
fi
if [ -z "$bin" ]; then
  target="${CARGO_TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')}"
  bin="$target/release"
fi
mkdir -p "$data"
data="$(cd "$data" && pwd)"

pids=()
agent_dirs=()
stop() {
  trap - EXIT INT TERM
  echo "stopping…" >&2
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # An agent that stops leaves its pods running (as a kubelet does): stop them too.
  for d in "${agent_dirs[@]}"; do
    "$bin/concord-agent" --root-dir "$d" kill-pods >/dev/null 2>&1 || true
  done
}
trap stop EXIT
trap 'stop; exit 130' INT TERM

# Waits (30 s) for a file that a starting process writes once it has bound its ports.
wait_file() {
  for _ in $(seq 1 150); do
    [ -s "$1" ] && return 0
    sleep 0.2
  done
  return 1
}

initial=""
endpoints=""
for i in $(seq 0 $((members - 1))); do
  c=$((store_port == 0 ? 0 : store_port + 2 * i)); p=$((store_port == 0 ? 0 : c + 1))
  initial="${initial:+$initial,}m$i=http://127.0.0.1:$p"
  endpoints="${endpoints:+$endpoints,}http://127.0.0.1:$c"
done
for i in $(seq 0 $((members - 1))); do
  c=$((store_port == 0 ? 0 : store_port + 2 * i)); p=$((store_port == 0 ? 0 : c + 1))
  rm -f "$data/m$i.addresses.json"
  "$bin/concord" --name "m$i" --data-dir "$data/m$i" \
    --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
    --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
    --initial-cluster "$initial" --initial-cluster-token concord-control-plane \
    --listen-addresses-file "$data/m$i.addresses.json" 2>"$data/m$i.log" &
  pids+=($!)
done
# The API server needs a member that serves: member 0 writes its addresses file once it does.
if ! wait_file "$data/m0.addresses.json"; then
  echo "the store did not start; see $data/m0.log" >&2
  exit 1
fi
if [ "$store_port" = 0 ]; then
  endpoints="http://$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["client"][0])' \
    "$data/m0.addresses.json")"
fi
rm -f "$data/apiserver.addr"
"$bin/concord-apiserver" --etcd-servers "$endpoints" --listen-address "127.0.0.1:$api_port" \
  --listen-address-file "$data/apiserver.addr" \
  --service-cluster-ip-range 127.2.0.0/16 2>"$data/apiserver.log" &
pids+=($!)
if ! wait_file "$data/apiserver.addr"; then
  echo "the API server did not start; see $data/apiserver.log" >&2
  exit 1
fi
api_port="$(sed -n 's/^.*:\([0-9]*\)$/\1/p' "$data/apiserver.addr")"
healthy() {
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
    "http://127.0.0.1:$api_port/healthz" >/dev/null 2>&1
}
for _ in $(seq 1 100); do
  if healthy; then break; fi
  sleep 0.2
done
if ! healthy; then
  echo "the API server did not become healthy; see $data/apiserver.log" >&2
  exit 1
fi
"$bin/concord-scheduler" --etcd-servers "$endpoints" --port 0 2>"$data/scheduler.log" &
pids+=($!)
"$bin/concord-controller-manager" --etcd-servers "$endpoints" --port 0 \
  --node-monitor-grace-period "$grace" 2>"$data/controller-manager.log" &
pids+=($!)
for i in $(seq 0 $((agents - 1))); do
  d="$data/agent-$i"
  agent_dirs+=("$d")
  "$bin/concord-agent" --etcd-servers "$endpoints" --node-name "node-$i" --root-dir "$d" \
    --image-dir "$data/images" --pod-cidr "127.1.$i.0/24" --port 0 \
    --address-file "$d.addr" --cgroup-root "concord-node-$i" --node-lease-duration-seconds "$lease" \
    2>"$data/agent-$i.log" &
  pids+=($!)
done

cat > "$data/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: concord
  cluster: {server: "http://127.0.0.1:$api_port"}
contexts:
- name: concord
  context: {cluster: concord, user: concord}
users:
- name: concord
  user: {}
current-context: concord
EOF
echo "apiserver: http://127.0.0.1:$api_port"
echo "store: $endpoints"
echo "logs and data: $data"
echo "point kubectl at it:  export KUBECONFIG=$data/kubeconfig   (or kubectl --server http://127.0.0.1:$api_port …)"
echo "images:  $bin/concord-agent --image-dir $data/images image import NAME:TAG --from DIR …"
echo "Ctrl-C stops everything, pod processes included."
wait
