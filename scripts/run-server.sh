#!/usr/bin/env bash
# Builds and runs one Concord member on its defaults: data in ./default.concord, clients on
# 127.0.0.1:2379. Extra arguments go to `concord` (etcd's flag names, e.g. --data-dir). Also builds
# `concordctl`, the CLI, next to it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/install-deps.sh"
cd "$root"
cargo build --release --bin concord --bin concordctl
target="${CARGO_TARGET_DIR:-$root/target}"
exec "$target/release/concord" "$@"
