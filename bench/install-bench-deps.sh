#!/usr/bin/env bash
# Install what bench/run needs beyond scripts/install-deps.sh, from Debian 12 packages
# and the npm registry. Idempotent: nothing is fetched when everything is there.
#
#   bench/install-bench-deps.sh          install what is missing
#   bench/install-bench-deps.sh --check  only report; exit 1 if anything is missing
#
# Debian: nginx-light (S1-S3 edge and the shared home service), openssh-server +
# openssh-client (S2: sshd on the "VPS", ssh -N -R from "home"), wireguard-go +
# wireguard-tools (S3: userspace WireGuard configured with `wg` over the UAPI socket),
# gnuplot-nox (the PNG chart), iproute2 (namespaces, veth), procps (ps, RSS).
# npm: ws (the WebSocket echo service and the load clients), into bench/node_modules.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
BENCH_DEPS="nginx-light openssh-server openssh-client wireguard-go wireguard-tools gnuplot-nox iproute2 procps wrk nghttp2-client curl openssl nodejs npm python3"

check=0
case "${1:-}" in
  --check) check=1 ;;
  "") ;;
  -h | --help)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "install-bench-deps: unknown argument: $1" >&2
    exit 1
    ;;
esac

# node and npm may come from elsewhere than Debian (e.g. a newer Node.js already on the
# machine): only ask Debian for them when the commands are missing.
deps=()
for p in $BENCH_DEPS; do
  case "$p" in
    nodejs) command -v node >/dev/null 2>&1 || deps+=("$p") ;;
    npm) command -v npm >/dev/null 2>&1 || deps+=("$p") ;;
    *) deps+=("$p") ;;
  esac
done

if ((check)); then
  HEARTH_EXTRA_DEPS="${deps[*]}" "$root/scripts/install-deps.sh" --check || exit 1
else
  # scripts/install-deps.sh checks with dpkg-query first and installs only what is missing.
  # Debian's policy-rc.d (or its absence of an init) decides whether sshd starts at
  # install; bench/run never uses a system sshd: it runs its own on loopback.
  HEARTH_EXTRA_DEPS="${deps[*]}" "$root/scripts/install-deps.sh"
fi

# npm: ws for the WebSocket echo service and clients (bench/package.json pins it).
if [[ -f "$here/node_modules/ws/package.json" ]]; then
  echo "install-bench-deps: node ws $(node -p "require('$here/node_modules/ws/package.json').version") present"
elif ((check)); then
  echo "install-bench-deps: missing: npm ws (bench/node_modules)"
  exit 1
else
  (cd "$here" && npm install --no-audit --no-fund --loglevel=error)
  echo "install-bench-deps: installed npm ws into bench/node_modules"
fi
