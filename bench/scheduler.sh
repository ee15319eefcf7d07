#!/usr/bin/env bash
# concord-scheduler at scale on hollow nodes (issue 13, "Scale with simulated nodes"), after
# Kubernetes' scheduler_perf. Each case is one `concord-bench scheduler` run: a fresh single
# Concord member on loopback, 5,000 hollow nodes (Node objects with renewed Leases, as kubelets
# keep them), 1,000 pods already bound, then the scheduler starts from an empty cache and the
# measured pods are created straight into the store. Every run checks what it reads back (all
# bound, no node over-committed, anti-affinity and spread held) and fails otherwise.
#
#   bench/scheduler.sh [case ...]      default: basic-10k basic-50k anti-affinity spread
#     basic-10k      SchedulingBasic: 5,000 nodes, 1,000 placed, 10,000 pods
#     basic-50k      the same with 50,000 pods
#     anti-affinity  required anti-affinity on the hostname, one color: 1,000 placed, 3,000 pods
#     spread         DoNotSchedule spread over 3 zones, maxSkew 1: 1,000 placed, 10,000 pods
#   ROUNDS=3 bench/scheduler.sh ...    each case 3 times; the table shows each case's medians
#   MARK_RUNNING=1 ...                 the hollow nodes also report every pod Running
#   RESULTS=file.jsonl ...             keep the JSON lines (one per run) in this file
#   CASE_TIMEOUT=1800 ...              seconds one run may take (default 1200)
#
# Builds nothing: it runs the release binaries concord, concord-scheduler and concord-bench
# from ${CARGO_TARGET_DIR:-/var/cache/concord/target}/release (build them first:
# cargo build --release --workspace --bins).
set -euo pipefail
# A failed run explains itself; a Rust backtrace of the bench would only bury that.
export RUST_BACKTRACE=0
target="${CARGO_TARGET_DIR:-/var/cache/concord/target}/release"
bench="$target/concord-bench"
for b in concord concord-scheduler concord-bench; do
  if [ ! -x "$target/$b" ]; then
    echo "missing $target/$b: build it first (cargo build --release --workspace --bins)" >&2
    exit 1
  fi
done
rounds="${ROUNDS:-1}"
case_timeout="${CASE_TIMEOUT:-1200}"
cases=("$@")
[ "${#cases[@]}" -gt 0 ] || cases=(basic-10k basic-50k anti-affinity spread)
extra=()
[ -z "${MARK_RUNNING:-}" ] || extra+=(--mark-running)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
results="${RESULTS:-$work/results.jsonl}"
: >"$results"

args_for() {
  case "$1" in
    basic-10k) echo "--workload basic --nodes 5000 --placed 1000 --pods 10000" ;;
    basic-50k) echo "--workload basic --nodes 5000 --placed 1000 --pods 50000" ;;
    anti-affinity) echo "--workload anti-affinity --nodes 5000 --placed 1000 --pods 3000" ;;
    spread) echo "--workload spread --nodes 5000 --zones 3 --placed 1000 --pods 10000" ;;
    *) return 1 ;;
  esac
}

for c in "${cases[@]}"; do
  args_for "$c" >/dev/null || { echo "unknown case $c" >&2; exit 2; }
done

failed=0
for c in "${cases[@]}"; do
  read -r -a args <<<"$(args_for "$c")"
  for r in $(seq "$rounds"); do
    echo "== $c (round $r of $rounds)"
    out="$work/$c-$r.out"
    # The bench stops itself (and its children) at --timeout; `timeout` is the backstop.
    status=0
    timeout --kill-after=30 "$((case_timeout + 120))" \
      "$bench" scheduler "${args[@]}" "${extra[@]}" --timeout "$case_timeout" \
      >"$out" || status=$?
    grep -v '^{' "$out" || true
    line="$(grep '^{' "$out" | tail -n 1 || true)"
    if [ -n "$line" ]; then
      printf '{"case":"%s","round":%d,"result":%s}\n' "$c" "$r" "$line" >>"$results"
    fi
    if [ "$status" -ne 0 ]; then
      echo "!! $c round $r failed (exit $status)" >&2
      failed=1
    fi
  done
done

# One row per case: the medians over its rounds.
python3 - "$results" <<'EOF'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    line = line.strip()
    if line:
        v = json.loads(line)
        rows.setdefault(v["case"], []).append(v["result"])
if not rows:
    sys.exit(0)
def med(runs, f):
    xs = [f(r) for r in runs]
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")
head = f'{"case":<14} {"runs":>4} {"pods":>6} {"pods/s":>8} {"p50 ms":>9} {"p99 ms":>9} {"sched µs/pod":>12} {"store µs/pod":>12} {"sched RSS MiB":>13}  checks'
print()
print(head)
print("-" * len(head))
for case, runs in rows.items():
    ok = all(r.get("pass") for r in runs)
    print(f'{case:<14} {len(runs):>4} {runs[0]["pods"]:>6} '
          f'{med(runs, lambda r: r["pods_per_second"]):>8.0f} '
          f'{med(runs, lambda r: r["bind_latency_ms"]["p50"]):>9.0f} '
          f'{med(runs, lambda r: r["bind_latency_ms"]["p99"]):>9.0f} '
          f'{med(runs, lambda r: r["scheduler_cpu_us_per_pod"]):>12.0f} '
          f'{med(runs, lambda r: r.get("store_cpu_us_per_pod")):>12.0f} '
          f'{med(runs, lambda r: (r.get("scheduler_rss_bytes") or 0) / 2**20):>13.0f}  '
          f'{"PASS" if ok else "FAIL"}')
EOF
exit "$failed"
