#!/usr/bin/env bash
# First figures through the tunnel on loopback, beside the same requests sent straight
# to the service:
#   (a) direct:  client -> sample service (plain HTTP)
#   (b) hearth:  client -> hearth-edge (HTTPS) -> tunnel (TLS) -> hearth-origin -> service
# Small requests/s and latency with wrk (keep-alive), and MB/s of one large download with
# curl (median of several runs, direct and hearth interleaved). Prints a markdown table;
# ratios are hearth/direct. Everything runs on 127.0.0.1 and is stopped at exit.
#
#   bench/tunnel_vs_direct.sh [--bin-dir DIR] [--threads 2] [--connections 50]
#                             [--duration 10s] [--bytes 200000000] [--runs 3] [--out FILE]
#
# The binaries must exist (scripts/build.sh builds them into build/bin). The service is
# the Python sample (tests/integration/home_service.py), so "direct" is bounded by
# Python: a ratio near 1.00 means hearth is not the bottleneck, not that it is as fast
# as a native service. bench/run (issue 4) compares against nginx-based stacks.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
HEARTH_LOG_PREFIX=bench
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

bin_dir=$root/build/bin
threads=2
connections=50
duration=10s
warmup=2s
bytes=200000000
runs=3
out=""
while (($#)); do
  case "$1" in
    --bin-dir) bin_dir=${2:?} && shift ;;
    --threads) threads=${2:?} && shift ;;
    --connections) connections=${2:?} && shift ;;
    --duration) duration=${2:?} && shift ;;
    --warmup) warmup=${2:?} && shift ;;
    --bytes) bytes=${2:?} && shift ;;
    --runs) runs=${2:?} && shift ;;
    --out) out=${2:?} && shift ;;
    -h | --help)
      sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) hearth_die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
for tool in wrk curl openssl; do
  command -v "$tool" >/dev/null || hearth_die "$tool is missing: run scripts/install-deps.sh"
done
HEARTH_BIN_DIR=$(cd "$bin_dir" 2>/dev/null && pwd) || hearth_die "no directory $bin_dir: build first"

HEARTH_STACK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/hearth-bench.XXXXXX")
BENCH_LOG_DIR=$HEARTH_STACK_DIR
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  ((status == 0)) || hearth_tail_logs 20
  hearth_stop_all 10
  rm -rf "$HEARTH_STACK_DIR"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

read -r HEARTH_PORT_HTTPS HEARTH_PORT_HTTP HEARTH_PORT_TUNNEL HEARTH_PORT_ADMIN \
  HEARTH_PORT_APP HEARTH_PORT_WS <<<"$(hearth_free_ports 6)"
HEARTH_HOSTS=(localhost)
bench_log "starting service, edge and origin in $HEARTH_STACK_DIR"
hearth_stack_up

direct=http://127.0.0.1:$HEARTH_PORT_APP
hearth=https://localhost:$HEARTH_PORT_HTTPS
tls=(--cacert "$HEARTH_STACK_DIR/cert.pem" --resolve "localhost:$HEARTH_PORT_HTTPS:127.0.0.1")
wrk_args=(-t "$threads" -c "$connections" -d "$duration" --timeout 10s)

# Small requests: warm both paths up, then one measured run each.
bench_log "wrk warm-up ($warmup each)"
bench_wrk "$direct/" -t "$threads" -c "$connections" -d "$warmup" >/dev/null
bench_wrk "$hearth/" -t "$threads" -c "$connections" -d "$warmup" >/dev/null
bench_log "wrk ${wrk_args[*]} $direct/"
read -r d_rps d_p50 d_p99 d_err <<<"$(bench_wrk "$direct/" "${wrk_args[@]}")"
bench_log "wrk ${wrk_args[*]} $hearth/"
read -r h_rps h_p50 h_p99 h_err <<<"$(bench_wrk "$hearth/" "${wrk_args[@]}")"

# One large download, interleaved direct / hearth, $runs times.
d_mbs=()
h_mbs=()
for ((i = 1; i <= runs; i++)); do
  path="/download?bytes=$bytes&seed=$i"
  bench_log "download $bytes bytes, run $i/$runs"
  d_mbs+=("$(bench_download "$direct$path" "$bytes")")
  h_mbs+=("$(bench_download "$hearth$path" "$bytes" "${tls[@]}")")
done
d_mb=$(bench_median "${d_mbs[@]}")
h_mb=$(bench_median "${h_mbs[@]}")

mb=$(awk -v b="$bytes" 'BEGIN { printf "%g", b / 1e6 }')
table=$(
  cat <<EOF
| loopback, $(nproc) cores | direct | through hearth | hearth/direct |
|---|---:|---:|---:|
| small GET /, requests/s (wrk -t$threads -c$connections -d$duration, keep-alive) | $(bench_fmt "$d_rps") | $(bench_fmt "$h_rps") | $(bench_ratio "$h_rps" "$d_rps") |
| small GET /, p50 latency (ms) | $(bench_fmt "$d_p50" 2) | $(bench_fmt "$h_p50" 2) | $(bench_ratio "$h_p50" "$d_p50") |
| small GET /, p99 latency (ms) | $(bench_fmt "$d_p99" 2) | $(bench_fmt "$h_p99" 2) | $(bench_ratio "$h_p99" "$d_p99") |
| download $mb MB, MB/s (median of $runs) | $(bench_fmt "$d_mb" 1) | $(bench_fmt "$h_mb" 1) | $(bench_ratio "$h_mb" "$d_mb") |
EOF
)
notes="Direct: plain HTTP to the Python sample service. Through hearth: HTTPS to hearth-edge, TLS tunnel, hearth-origin, same service. Download runs (MB/s): direct ${d_mbs[*]}; hearth ${h_mbs[*]}. Machine: $(bench_machine)."
if ((d_err + h_err > 0)); then
  notes+=" Errors (socket errors + non-2xx/3xx) during wrk: direct $d_err, hearth $h_err."
fi

printf '\n%s\n\n%s\n' "$table" "$notes"
if [[ -n "$out" ]]; then
  printf '%s\n\n%s\n' "$table" "$notes" >"$out"
  bench_log "table written to $out"
fi
