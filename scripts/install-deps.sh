#!/usr/bin/env bash
# Installs what building and testing Concord needs on Debian: a C++ toolchain and libclang for
# RocksDB's bindings, and (with --test) etcd's etcdctl, which the tests drive as a real client.
# With --bench it also installs etcd itself, the baseline of the benchmarks, and GNU time.
set -euo pipefail

packages=(build-essential clang libclang-dev pkg-config)
for arg in "$@"; do
  case "$arg" in
    --test) packages+=(etcd-client) ;;
    --bench) packages+=(etcd-client etcd-server time) ;;
    *) echo "usage: $0 [--test] [--bench]" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# rust-toolchain.toml pins the toolchain. Machines here cannot download one, so when the pinned
# version is not installed under its own name but the machine's toolchain is that version, link
# it under that name.
root="$(cd "$(dirname "$0")/.." && pwd)"
pinned="$(sed -n 's/^channel = "\(.*\)"/\1/p' "$root/rust-toolchain.toml")"
if command -v rustup >/dev/null 2>&1 && [ -n "$pinned" ] \
  && ! rustup toolchain list | grep -q "^$pinned"; then
  for t in $(rustup toolchain list | awk '{print $1}'); do
    if RUSTUP_TOOLCHAIN="$t" rustc --version 2>/dev/null | grep -q "^rustc $pinned "; then
      rustup toolchain link "$pinned" "$(RUSTUP_TOOLCHAIN="$t" rustc --print sysroot)"
      break
    fi
  done
  rustup toolchain list | grep -q "^$pinned" \
    || { echo "Rust $pinned (rust-toolchain.toml) is not installed: install it with rustup" >&2; exit 1; }
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    echo "cargo is in $HOME/.cargo/bin: add it to PATH" >&2
  else
    echo "cargo not found: install Rust (https://rustup.rs) first" >&2
  fi
  exit 1
fi
