#!/usr/bin/env bash
# The README's first command: install what is missing, build, and run hearth on loopback.
#
# Starts, in a temporary directory: a sample home service (a page on :3000, a WebSocket
# echo on :3001), hearth-edge with a self-signed certificate for localhost and
# app.localhost, and hearth-origin paired to it with `hearth-edge invite` +
# `hearth-origin join`. Prints the URL and commands to try; Ctrl-C stops everything it
# started and removes the directory.
#
#   scripts/demo.sh                   interactive: runs until Ctrl-C
#   scripts/demo.sh --check           non-interactive: check a 200 and a WebSocket echo
#                                     through the tunnel, stop, check edge and origin
#                                     exit 0 on SIGTERM; exit 0 or 1
#   scripts/demo.sh --build-dir DIR   build into DIR (default build) and use DIR/bin
#   scripts/demo.sh --bin-dir DIR     use the binaries in DIR; no install, no build
#   scripts/demo.sh --no-build        use build/bin as it is; no install, no build
#
# Ports (127.0.0.1 only), overridable by environment:
#   HEARTH_DEMO_HTTPS_PORT 8443   HEARTH_DEMO_HTTP_PORT 8080   HEARTH_DEMO_TUNNEL_PORT 7443
#   HEARTH_DEMO_ADMIN_PORT 9901   HEARTH_DEMO_APP_PORT 3000    HEARTH_DEMO_WS_PORT 3001
# With --check, ports not set in the environment are picked free at random.
# HEARTH_DEMO_KEEP=1 keeps the temporary directory (configs, keys, logs) at exit.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
HEARTH_LOG_PREFIX=demo
# shellcheck source=scripts/lib.sh
source "$root/scripts/lib.sh"

check=0
build=1
build_dir=build
bin_dir=""
while (($#)); do
  case "$1" in
    --check) check=1 ;;
    --no-build) build=0 ;;
    --build-dir)
      build_dir=${2:?--build-dir needs a directory}
      shift
      ;;
    --bin-dir)
      bin_dir=${2:?--bin-dir needs a directory}
      build=0
      shift
      ;;
    -h | --help)
      sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) hearth_die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done

if ((build)); then
  scripts/install-deps.sh
  scripts/build.sh --build-dir "$build_dir"
fi
if [[ -n "$bin_dir" ]]; then
  HEARTH_BIN_DIR=$(cd "$bin_dir" && pwd)
else
  HEARTH_BIN_DIR=$root/$build_dir/bin
  [[ "$build_dir" == /* ]] && HEARTH_BIN_DIR=$build_dir/bin
fi

# Ports: environment first; otherwise the documented defaults, or free ones for --check.
names=(HTTPS HTTP TUNNEL ADMIN APP WS)
defaults=(8443 8080 7443 9901 3000 3001)
if ((check)); then
  read -ra defaults <<<"$(hearth_free_ports ${#names[@]})"
fi
for i in "${!names[@]}"; do
  env_name="HEARTH_DEMO_${names[$i]}_PORT"
  printf -v "HEARTH_PORT_${names[$i]}" '%s' "${!env_name:-${defaults[$i]}}"
done
HEARTH_PORT_ENV_FMT=HEARTH_DEMO_%s_PORT
HEARTH_HOSTS=(localhost app.localhost)

HEARTH_STACK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/hearth-demo.XXXXXX")
status_file=$HEARTH_STACK_DIR/.ok

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if ((status != 0)) && [[ ! -f "$status_file" ]]; then
    hearth_tail_logs 30
  fi
  hearth_stop_all 10
  if [[ "${HEARTH_DEMO_KEEP:-0}" == 1 ]]; then
    hearth_log "kept $HEARTH_STACK_DIR"
  else
    rm -rf "$HEARTH_STACK_DIR"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

hearth_log "starting in $HEARTH_STACK_DIR"
hearth_stack_up

https=https://localhost:$HEARTH_PORT_HTTPS
if ((check)); then
  hearth_ws_echo "wss://localhost:$HEARTH_PORT_HTTPS/signaling" "$HEARTH_STACK_DIR/cert.pem" ||
    hearth_die "WebSocket echo through the tunnel failed"
  # SIGTERM must end both programs cleanly (exit 0): this also catches sanitizer aborts.
  hearth_stop_all 10
  if ! hearth_check_clean_exit edge origin; then
    touch "$status_file" # the report above says why; no need for the log tails again
    hearth_die "edge or origin did not exit cleanly"
  fi
  touch "$status_file"
  hearth_log "ok: $https/ answered 200 and wss://localhost:$HEARTH_PORT_HTTPS/signaling echoed, through edge -> tunnel -> origin -> service; both exited 0 on SIGTERM"
  exit 0
fi
touch "$status_file"

d=$HEARTH_STACK_DIR
cat <<EOF

  hearth is running on loopback (files and logs in $d).

  Open:        $https/   or   https://app.localhost:$HEARTH_PORT_HTTPS/
               (self-signed certificate: accept the browser's warning, or import $d/cert.pem)
  Try:         curl --cacert $d/cert.pem $https/
  WebSocket:   SSL_CERT_FILE=$d/cert.pem $HEARTH_PYTHON -m websockets wss://localhost:$HEARTH_PORT_HTTPS/signaling
  Redirect:    curl -si http://localhost:$HEARTH_PORT_HTTP/ | head -3
  Admin:       curl http://127.0.0.1:$HEARTH_PORT_ADMIN/status
               (also /healthz /readyz /metrics)

  Path:        curl -> hearth-edge :$HEARTH_PORT_HTTPS -> tunnel :$HEARTH_PORT_TUNNEL <- hearth-origin -> service :$HEARTH_PORT_APP / :$HEARTH_PORT_WS
  Logs:        $d/edge.log  $d/origin.log  $d/service.log

  Ctrl-C stops everything.
EOF

# Run until Ctrl-C, or until one of the processes exits by itself.
while :; do
  wait -n "${hearth_pids[@]}" 2>/dev/null || true
  if ! hearth_check_alive; then
    rm -f "$status_file"
    hearth_die "stopped: a process exited (see above)"
  fi
done
