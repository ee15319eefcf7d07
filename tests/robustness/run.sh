#!/usr/bin/env bash
# Builds everything and runs concord-robustness: a fresh cluster under load and faults, then
# the history checker. Arguments go to the runner, e.g.
#   tests/robustness/run.sh --minutes 3 [--members 5] [--seed S] [--out DIR]
# Exit status: 0 pass, 1 violations or problems found, 2 the run could not be carried out.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
# Always --workspace: building one package alone changes RocksDB's features and rebuilds it.
cargo build --release --workspace --bins
cargo build --release --workspace --bin concord-failpoints --features concord-server/failpoints
export CONCORD_BIN="${CONCORD_BIN:-$target/release/concord}"
exec "$target/release/concord-robustness" "$@"
