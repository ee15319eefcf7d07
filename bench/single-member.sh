# Sourced by bench/cpu-per-request.sh and bench/sync-latency.sh: one fresh single member on
# loopback at a time. The caller sets `work` (a scratch directory).
#
#   start_member <server>   <server> is `etcd` or a path to a `concord` binary; sets `pid` and
#                           returns once the member answers `endpoint health` (fails otherwise)
#   stop_member             stops it and removes its data

client=http://127.0.0.1:23379
peer=http://127.0.0.1:23380

start_member() {
  local flags=(--data-dir "$work/member" --listen-client-urls "$client"
    --advertise-client-urls "$client" --listen-peer-urls "$peer"
    --initial-advertise-peer-urls "$peer" --initial-cluster "default=$peer")
  if [ "$1" = etcd ]; then
    etcd "${flags[@]}" >"$work/member.log" 2>&1 &
  else
    "$1" "${flags[@]}" >"$work/member.log" 2>&1 &
  fi
  pid=$!
  for _ in $(seq 100); do
    ETCDCTL_API=3 etcdctl --endpoints="$client" endpoint health >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "$1 did not start; its log:" >&2
  tail -5 "$work/member.log" >&2
  return 1
}

stop_member() {
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  rm -rf "${work:?}/member"
}
