#!/usr/bin/env bash
# Install what hearth needs to build and test, from Debian 12 packages.
#
# Idempotent: every package is checked with dpkg-query first, so a machine that
# already has everything does no apt work at all (no `apt-get update` either).
# Run as root (or as a user with sudo).
#
#   scripts/install-deps.sh            build + test dependencies
#   scripts/install-deps.sh --check    only report what is missing; exit 1 if anything is
#   HEARTH_EXTRA_DEPS="a b" scripts/install-deps.sh   also these packages
set -euo pipefail

# Build: Boost must be 1.81 (libboost1.81-dev), not Debian's default libboost-dev (1.74):
# 1.74 lacks awaitable operators and per-operation cancellation and breaks with g++ 12.
# libclang-rt-14-dev carries clang's sanitizer and libFuzzer runtimes.
# libboost-json1.81-dev: Boost.JSON (compiled) for the ACME client (acme/).
BUILD_DEPS=(
  build-essential g++ clang-14 cmake ninja-build pkg-config
  libboost1.81-dev libssl-dev libcli11-dev libtomlplusplus-dev libmnl-dev catch2
  libcrypt-dev libclang-rt-14-dev libnghttp2-dev libboost-json1.81-dev
)
# Test, demo and bench: curl and openssl drive the edge, python3-websockets is the
# WebSocket client and the sample home service, nftables + iproute2 build the CGNAT
# namespaces, wrk measures, procps gives ps and free (process and memory figures);
# nghttp2-client (nghttp, h2load) and python3-h2 (raw frames) test the HTTP/2 front end.
TEST_DEPS=(
  curl openssl python3 python3-websockets nftables iproute2 wrk procps testssl.sh
  nghttp2-client python3-h2
  # pebble: the ACME test CA and its challenge server (tests/integration/test_acme.py).
  pebble
  # issue 13: promtool (metrics lint), headless Chromium (dashboard), lintian (the .deb)
  prometheus chromium lintian
  wireguard-go wireguard-tools  # WireGuard link test (issue 10): userspace backend, `wg`
)

check_only=0
case "${1:-}" in
  --check) check_only=1 ;;
  "") ;;
  -h | --help)
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "install-deps: unknown argument: $1" >&2
    exit 1
    ;;
esac

# HEARTH_EXTRA_DEPS="pkg pkg": more packages (bench/ uses it for what only it needs).
read -ra extra <<<"${HEARTH_EXTRA_DEPS:-}"
wanted=("${BUILD_DEPS[@]}" "${TEST_DEPS[@]}" "${extra[@]}")
# One dpkg-query for all; packages it does not know are simply absent from its output.
declare -A installed=()
while IFS=$'\t' read -r name status; do
  [[ "$status" == installed ]] && installed["${name%%:*}"]=1
done < <(dpkg-query -W -f='${Package}\t${db:Status-Status}\n' "${wanted[@]}" 2>/dev/null || true)

missing=()
for pkg in "${wanted[@]}"; do
  [[ -n "${installed[$pkg]:-}" ]] || missing+=("$pkg")
done

total=${#wanted[@]}
if ((${#missing[@]} == 0)); then
  echo "install-deps: all $total packages present"
  exit 0
fi

echo "install-deps: missing: ${missing[*]}"
if ((check_only)); then
  exit 1
fi

as_root=()
if ((EUID != 0)); then
  if command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "install-deps: run as root to install the packages above" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
# libboost1.81-dev conflicts with libboost1.74-dev; apt removes the older one if present.
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: installed ${#missing[@]} package(s)"
