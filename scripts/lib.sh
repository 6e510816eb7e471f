# shellcheck shell=bash
# Shared by scripts/demo.sh and bench/: bring up a whole hearth stack on loopback
# (the sample home service, hearth-edge with a self-signed certificate, hearth-origin
# paired through `invite` + `join`) and stop everything that was started here.
#
# Source it from a script that has `set -euo pipefail`. Nothing here kills by name:
# every process is started by hearth_start, remembered by PID, and stopped by
# hearth_stop_all (SIGTERM, bounded wait, then SIGKILL).
#
# Inputs (set before hearth_stack_up; defaults in brackets):
#   HEARTH_BIN_DIR      where hearth-edge and hearth-origin are   [$HEARTH_ROOT/build/bin]
#   HEARTH_STACK_DIR    working directory: certs, configs, logs   [required]
#   HEARTH_PORT_HTTPS HEARTH_PORT_HTTP HEARTH_PORT_TUNNEL HEARTH_PORT_ADMIN
#                       edge listeners on 127.0.0.1              [8443 8080 7443 9901]
#   HEARTH_PORT_APP HEARTH_PORT_WS
#                       the sample service: page, WebSocket echo  [3000 3001]
#   HEARTH_HOSTS        hostnames served (array)                  [(localhost app.localhost)]
#   HEARTH_STARTUP_TIMEOUT  seconds to wait for each piece        [30]
#   HEARTH_PORT_ENV_FMT printf format naming the variable that moves a busy port
#                       in messages                               [HEARTH_PORT_%s]

HEARTH_ROOT=${HEARTH_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
# Debian's interpreter explicitly: it is the one python3-websockets is installed for
# (a pyenv or venv python3 earlier on PATH may lack it).
HEARTH_PYTHON=${HEARTH_PYTHON:-/usr/bin/python3}
HEARTH_SERVICE=${HEARTH_SERVICE:-$HEARTH_ROOT/tests/integration/home_service.py}

hearth_pids=()  # started by hearth_start, stopped in reverse order by hearth_stop_all
hearth_names=()
hearth_logs=()
hearth_statuses=()

hearth_log() { printf '%s: %s\n' "${HEARTH_LOG_PREFIX:-hearth}" "$*" >&2; }
hearth_die() {
  hearth_log "$*"
  exit 1
}

# hearth_free_ports N: print N distinct loopback TCP ports that were free a moment ago.
hearth_free_ports() {
  "$HEARTH_PYTHON" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

# hearth_port_in_use PORT: true if something listens on TCP PORT (any address).
hearth_port_in_use() {
  [[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]]
}

# hearth_start NAME LOGFILE CMD...: start CMD in the background, output to LOGFILE.
hearth_start() {
  local name=$1 log=$2
  shift 2
  "$@" </dev/null >"$log" 2>&1 &
  hearth_pids+=("$!")
  hearth_names+=("$name")
  hearth_logs+=("$log")
}

# hearth_pid NAME: the PID of a process started by hearth_start.
hearth_pid() {
  local i
  for i in "${!hearth_names[@]}"; do
    if [[ "${hearth_names[$i]}" == "$1" ]]; then
      echo "${hearth_pids[$i]}"
      return 0
    fi
  done
  return 1
}

# hearth_check_alive: fail, with the end of its log, if a started process has exited.
hearth_check_alive() {
  local i
  for i in "${!hearth_pids[@]}"; do
    if [[ -n "${hearth_pids[$i]}" ]] && ! kill -0 "${hearth_pids[$i]}" 2>/dev/null; then
      local status=0
      wait "${hearth_pids[$i]}" 2>/dev/null || status=$?
      hearth_log "${hearth_names[$i]} exited (status $status); end of ${hearth_logs[$i]}:"
      tail -n 20 "${hearth_logs[$i]}" >&2 || true
      hearth_pids[i]=""
      hearth_statuses[i]=$status
      return 1
    fi
  done
}

# hearth_tail_logs [N]: the last N lines of every log, for a failure report.
hearth_tail_logs() {
  local i
  for i in "${!hearth_logs[@]}"; do
    if [[ -s "${hearth_logs[$i]}" ]]; then
      echo "----- ${hearth_names[$i]}: ${hearth_logs[$i]} (last ${1:-20} lines)" >&2
      tail -n "${1:-20}" "${hearth_logs[$i]}" >&2 || true
    fi
  done
}

# hearth_stop_all [GRACE_SECONDS]: SIGTERM every started process (newest first), wait up
# to GRACE seconds for each, then SIGKILL. Idempotent. Each exit status is kept in
# hearth_statuses (same index as hearth_names; 128+N for signal N).
hearth_stop_all() {
  local grace=${1:-${HEARTH_STOP_GRACE:-10}} i pid deadline status
  for ((i = ${#hearth_pids[@]} - 1; i >= 0; i--)); do
    pid=${hearth_pids[$i]}
    [[ -n "$pid" ]] || continue
    hearth_pids[i]=""
    if kill -TERM "$pid" 2>/dev/null; then
      deadline=$((SECONDS + grace))
      while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.1
      done
      if kill -0 "$pid" 2>/dev/null; then
        hearth_log "${hearth_names[$i]} (pid $pid) still running after ${grace}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
      fi
    fi
    status=0
    wait "$pid" 2>/dev/null || status=$?
    hearth_statuses[i]=$status
  done
}

# hearth_check_clean_exit NAME...: after hearth_stop_all, fail (naming them, with the end
# of their logs) unless each named process exited 0, as SIGTERM should make it.
hearth_check_clean_exit() {
  local name i bad=0
  for name in "$@"; do
    for i in "${!hearth_names[@]}"; do
      [[ "${hearth_names[$i]}" == "$name" ]] || continue
      if [[ "${hearth_statuses[$i]:-?}" != 0 ]]; then
        hearth_log "$name exited with status ${hearth_statuses[$i]:-unknown} after SIGTERM (0 expected); end of ${hearth_logs[$i]}:"
        grep -E 'ERROR: |SUMMARY: |runtime error|^    #[0-9] ' "${hearth_logs[$i]}" | head -n 20 >&2 ||
          tail -n 20 "${hearth_logs[$i]}" >&2 || true
        bad=1
      fi
    done
  done
  return "$bad"
}

# hearth_wait_http URL CODE [CURL ARGS...]: poll until URL answers CODE, bounded by
# HEARTH_STARTUP_TIMEOUT; fails early if a started process died.
hearth_wait_http() {
  local url=$1 want=$2 code=""
  shift 2
  local deadline=$((SECONDS + ${HEARTH_STARTUP_TIMEOUT:-30}))
  while ((SECONDS < deadline)); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$@" "$url" || true)
    [[ "$code" == "$want" ]] && return 0
    hearth_check_alive || return 1
    sleep 0.2
  done
  hearth_log "$url: wanted $want, last answer ${code:-none} after ${HEARTH_STARTUP_TIMEOUT:-30}s"
  return 1
}

# hearth_wait_port PORT: poll until something listens on 127.0.0.1:PORT (bounded).
hearth_wait_port() {
  local deadline=$((SECONDS + ${HEARTH_STARTUP_TIMEOUT:-30}))
  while ((SECONDS < deadline)); do
    hearth_port_in_use "$1" && return 0
    hearth_check_alive || return 1
    sleep 0.1
  done
  hearth_log "nothing listens on port $1 after ${HEARTH_STARTUP_TIMEOUT:-30}s"
  return 1
}

# hearth_make_cert DIR NAME...: self-signed P-256 certificate for the DNS names,
# DIR/cert.pem and DIR/key.pem (the cert is its own CA: give it to curl --cacert).
hearth_make_cert() {
  local dir=$1
  shift
  local san="" n
  for n in "$@"; do
    san+="${san:+,}DNS:$n"
  done
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" -days 30 -subj "/CN=$1" \
    -addext "subjectAltName=$san" -addext "basicConstraints=critical,CA:TRUE" \
    2>"$dir/openssl.log" || {
    cat "$dir/openssl.log" >&2
    return 1
  }
  chmod 600 "$dir/key.pem"
}

# hearth_toml_list A B...: ["A", "B"]
hearth_toml_list() {
  local out="" n
  for n in "$@"; do
    out+="${out:+, }\"$n\""
  done
  printf '[%s]' "$out"
}

# hearth_write_edge_config FILE: edge.toml for the stack, origin "home".
hearth_write_edge_config() {
  local d=$HEARTH_STACK_DIR
  cat >"$1" <<EOF
# Written by scripts/lib.sh for a loopback hearth stack.
[edge]
listen_https  = "127.0.0.1:$HEARTH_PORT_HTTPS"
listen_http   = "127.0.0.1:$HEARTH_PORT_HTTP"
listen_tunnel = "127.0.0.1:$HEARTH_PORT_TUNNEL"
listen_admin  = "127.0.0.1:$HEARTH_PORT_ADMIN"
state_dir     = "$d/state"

[[tls.certificates]]
cert = "$d/cert.pem"
key  = "$d/key.pem"

[[origins]]
name = "home"
hostnames = $(hearth_toml_list "${HEARTH_HOSTS[@]}")
EOF
}

# hearth_pair_origin: `hearth-edge invite` then `hearth-origin join`, and replace the
# example route of the written origin.toml with the stack's routes: for each host,
# /signaling -> the WebSocket port, everything else -> the page port.
hearth_pair_origin() {
  local d=$HEARTH_STACK_DIR token
  token=$("$HEARTH_BIN_DIR/hearth-edge" invite --config "$d/edge.toml" home \
    --edge-address "127.0.0.1:$HEARTH_PORT_TUNNEL" 2>"$d/invite.log") || {
    hearth_log "hearth-edge invite failed:"
    cat "$d/invite.log" >&2
    return 1
  }
  if [[ -z "$token" || "$token" == *$'\n'* ]]; then
    hearth_log "hearth-edge invite should print exactly one line (the join token), got:"
    printf '%s\n' "$token" >&2
    return 1
  fi
  "$HEARTH_BIN_DIR/hearth-origin" join "$token" --out "$d/origin.toml" >"$d/join.log" 2>&1 || {
    hearth_log "hearth-origin join failed:"
    cat "$d/join.log" >&2
    return 1
  }
  # Keep [origin] (name, edge, pin, key file); drop the example route(s) from the first
  # [[routes]] on, and the comment lines just above it.
  awk '/^[[:space:]]*\[\[routes\]\]/ { exit }
       { line[++n] = $0 }
       END { while (n > 0 && line[n] ~ /^[[:space:]]*(#.*)?$/) n--
             for (i = 1; i <= n; i++) print line[i] }' "$d/origin.toml" >"$d/origin.toml.new"
  printf '\n# Routes written by scripts/lib.sh: /signaling to the WebSocket service.\n' \
    >>"$d/origin.toml.new"
  local h
  for h in "${HEARTH_HOSTS[@]}"; do
    cat >>"$d/origin.toml.new" <<EOF

[[routes]]
host    = "$h"
path    = "/signaling"
service = "http://127.0.0.1:$HEARTH_PORT_WS"

[[routes]]
host    = "$h"
service = "http://127.0.0.1:$HEARTH_PORT_APP"
EOF
  done
  mv "$d/origin.toml.new" "$d/origin.toml"
}

# hearth_stack_up: certificate, configs, pairing, then start the service, the edge and
# the origin, and wait until https://HOST:PORT/ answers 200 through the tunnel.
hearth_stack_up() {
  : "${HEARTH_STACK_DIR:?HEARTH_STACK_DIR must be set}"
  HEARTH_BIN_DIR=${HEARTH_BIN_DIR:-$HEARTH_ROOT/build/bin}
  HEARTH_PORT_HTTPS=${HEARTH_PORT_HTTPS:-8443}
  HEARTH_PORT_HTTP=${HEARTH_PORT_HTTP:-8080}
  HEARTH_PORT_TUNNEL=${HEARTH_PORT_TUNNEL:-7443}
  HEARTH_PORT_ADMIN=${HEARTH_PORT_ADMIN:-9901}
  HEARTH_PORT_APP=${HEARTH_PORT_APP:-3000}
  HEARTH_PORT_WS=${HEARTH_PORT_WS:-3001}
  if [[ -z "${HEARTH_HOSTS[*]:-}" ]]; then
    HEARTH_HOSTS=(localhost app.localhost)
  fi
  local d=$HEARTH_STACK_DIR b
  for b in hearth-edge hearth-origin; do
    [[ -x "$HEARTH_BIN_DIR/$b" ]] || hearth_die "$HEARTH_BIN_DIR/$b not found: build first"
  done
  [[ -f "$HEARTH_SERVICE" ]] || hearth_die "sample service $HEARTH_SERVICE not found"

  local var
  for var in HTTPS HTTP TUNNEL ADMIN APP WS; do
    local p_name="HEARTH_PORT_$var"
    if hearth_port_in_use "${!p_name}"; then
      # shellcheck disable=SC2059 # the format is ours
      hearth_die "port ${!p_name} is in use: set $(printf "${HEARTH_PORT_ENV_FMT:-HEARTH_PORT_%s}" "$var") to another"
    fi
  done

  mkdir -p "$d/state"
  chmod 700 "$d/state"
  hearth_make_cert "$d" "${HEARTH_HOSTS[@]}"
  hearth_write_edge_config "$d/edge.toml"
  "$HEARTH_BIN_DIR/hearth-edge" check --config "$d/edge.toml" >"$d/check-edge.log" 2>&1 || {
    hearth_log "hearth-edge check rejected $d/edge.toml:"
    cat "$d/check-edge.log" >&2
    return 1
  }
  # Pair before the edge starts, so it reads the authorized origin at start-up.
  hearth_pair_origin
  "$HEARTH_BIN_DIR/hearth-origin" check --config "$d/origin.toml" >"$d/check-origin.log" 2>&1 || {
    hearth_log "hearth-origin check rejected $d/origin.toml:"
    cat "$d/check-origin.log" >&2
    return 1
  }

  hearth_start service "$d/service.log" "$HEARTH_PYTHON" "$HEARTH_SERVICE" \
    --http-port "$HEARTH_PORT_APP" --ws-port "$HEARTH_PORT_WS"
  hearth_start edge "$d/edge.log" "$HEARTH_BIN_DIR/hearth-edge" run --config "$d/edge.toml"
  hearth_wait_http "http://127.0.0.1:$HEARTH_PORT_APP/" 200 || return 1
  hearth_wait_port "$HEARTH_PORT_WS" || return 1
  hearth_wait_port "$HEARTH_PORT_HTTPS" || return 1
  hearth_start origin "$d/origin.log" "$HEARTH_BIN_DIR/hearth-origin" run --config "$d/origin.toml"
  local h
  for h in "${HEARTH_HOSTS[@]}"; do
    hearth_wait_http "https://$h:$HEARTH_PORT_HTTPS/" 200 --cacert "$d/cert.pem" || return 1
  done
}

# hearth_ws_echo URL CAFILE: open a WebSocket (wss:// checked against CAFILE), send a
# text and a binary message, expect each echoed back unchanged, close with 1000.
hearth_ws_echo() {
  "$HEARTH_PYTHON" - "$1" "$2" <<'EOF'
import asyncio, ssl, sys
import websockets

async def main(url, cafile):
    ctx = ssl.create_default_context(cafile=cafile) if url.startswith("wss:") else None
    async with websockets.connect(url, ssl=ctx, open_timeout=10, close_timeout=5) as ws:
        for msg in ("hello through hearth", bytes(range(256)) * 4):
            await ws.send(msg)
            got = await asyncio.wait_for(ws.recv(), 10)
            if got != msg:
                sys.exit(f"{url}: sent {msg[:40]!r}..., got {got[:40]!r}...")

asyncio.run(main(sys.argv[1], sys.argv[2]))
EOF
}
