#!/usr/bin/env bash
# Checks formatting and clippy, then runs every test: unit tests of each crate and the
# integration tests that start the real `concord` binary and drive it with etcdctl and
# concord-client.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/install-deps.sh" --test
cd "$root"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Style first: formatting, and clippy with the workspace's lints (Cargo.toml), warnings denied.
cargo fmt --all -- --check
cargo clippy --profile ci --workspace --all-targets -- -D warnings
# Every declared dependency is named by its crate's code.
python3 "$root/scripts/unused-deps.py"
# Everything is built and tested in the `ci` profile (Cargo.toml): release optimisation with
# integer overflow checks on, in the binaries under test too. One profile, so RocksDB is compiled
# once (it takes ~25 minutes from scratch here).
cargo build --profile ci --workspace --bins
# `concord` with failpoints, for the fault tests (never part of the release binaries).
cargo build --profile ci --workspace --bin concord-failpoints --features concord-server/failpoints
target="${CARGO_TARGET_DIR:-$root/target}"
export CONCORD_BIN="$target/ci/concord"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
# The log's failpoints and power-loss simulation are global to the process, so they run alone.
cargo test --profile ci --package=concord-wal --features failpoints -- crash:: --test-threads=1 \
    2>&1 | tee "$log" || status=$?
cargo test --profile ci --workspace -- --test-threads=2 2>&1 | tee -a "$log" || status=$?
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "summary: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
