#!/usr/bin/env bash
# Builds everything and runs concord-robustness: a fresh cluster under load and faults, then
# the history checker. Arguments go to the runner, e.g.
#   tests/robustness/run.sh --minutes 3 [--members 5] [--seed S] [--out DIR]
# Exit status: 0 pass, 1 violations or problems found, 2 the run could not be carried out.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
# The test suite's profile, `ci` (release with overflow checks), so that the build is shared
# with it. Always --workspace: building one package alone changes RocksDB's features and
# rebuilds it.
cargo build --profile ci --workspace --bins
cargo build --profile ci --workspace --bin concord-failpoints --features concord-server/failpoints
export CONCORD_BIN="${CONCORD_BIN:-$target/ci/concord}"
exec "$target/ci/concord-robustness" "$@"
