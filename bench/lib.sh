# shellcheck shell=bash
# Shared by the scripts in bench/: measuring with wrk and curl, medians, ratios and
# markdown tables. Starting and stopping a hearth stack comes from scripts/lib.sh,
# which this file sources (hearth_stack_up, hearth_stop_all, hearth_free_ports, ...).
#
# Source it from a script that has `set -euo pipefail`. Loopback only.

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HEARTH_ROOT=${HEARTH_ROOT:-$BENCH_ROOT}
# shellcheck source=scripts/lib.sh
source "$BENCH_ROOT/scripts/lib.sh"

bench_log() { printf 'bench: %s\n' "$*" >&2; }

# bench_to_ms VALUE: wrk's "850.00us" / "1.23ms" / "2.10s" -> milliseconds.
bench_to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) n /= 1000
    else if (v ~ /ms$/) n += 0
    else if (v ~ /m$/) n *= 60000
    else if (v ~ /s$/) n *= 1000
    printf "%.3f", n }'
}

# bench_wrk URL [WRK ARGS...]: run wrk with --latency (keep-alive: wrk's default).
# Prints "RPS P50_MS P99_MS ERRORS", ERRORS being socket errors + non-2xx/3xx answers.
# The raw wrk output goes to $BENCH_LOG_DIR/wrk-N.log when BENCH_LOG_DIR is set.
bench_wrk_seq=0
bench_wrk() {
  local url=$1 out
  shift
  out=$(wrk --latency "$@" "$url" 2>&1) || {
    bench_log "wrk failed: $out"
    return 1
  }
  if [[ -n "${BENCH_LOG_DIR:-}" ]]; then
    bench_wrk_seq=$((bench_wrk_seq + 1))
    printf '%s\n%s\n' "wrk --latency $* $url" "$out" >"$BENCH_LOG_DIR/wrk-$bench_wrk_seq.log"
  fi
  local rps p50 p99 errors
  rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
  p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
  p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
  errors=$(awk '
    /Socket errors:/ { gsub(/,/, ""); e += $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx responses:/ { e += $NF }
    END { print e + 0 }' <<<"$out")
  if [[ -z "$rps" || -z "$p50" || -z "$p99" ]]; then
    bench_log "could not read wrk's output:"
    printf '%s\n' "$out" >&2
    return 1
  fi
  printf '%s %s %s %s\n' "$rps" "$(bench_to_ms "$p50")" "$(bench_to_ms "$p99")" "$errors"
}

# bench_download URL BYTES [CURL ARGS...]: one download to /dev/null; prints MB/s
# (10^6 bytes per second). Fails unless the answer is 200 with exactly BYTES bytes.
bench_download() {
  local url=$1 bytes=$2 out code size speed
  shift 2
  out=$(curl -s -o /dev/null --max-time 300 -w '%{http_code} %{size_download} %{speed_download}' \
    "$@" "$url") || {
    bench_log "curl $url failed: $out"
    return 1
  }
  read -r code size speed <<<"$out"
  if [[ "$code" != 200 || "$size" != "$bytes" ]]; then
    bench_log "$url: status $code, $size bytes (wanted 200 and $bytes)"
    return 1
  fi
  awk -v s="$speed" 'BEGIN { printf "%.1f", s / 1e6 }'
}

# bench_median N...: the median (mean of the middle two for an even count).
bench_median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) exit 1
    if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# bench_ratio A B: A/B with two decimals ("n/a" when B is 0).
bench_ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.2f\n", a / b }'
}

# bench_fmt VALUE [DECIMALS]: a number rounded for a table.
bench_fmt() {
  awk -v v="$1" -v d="${2:-0}" 'BEGIN { printf "%.*f\n", d, v }'
}

# bench_machine: one line about where the figures come from.
bench_machine() {
  local cpu
  cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
  printf '%s, %s cores, %s, kernel %s\n' "${cpu:-unknown CPU}" "$(nproc)" \
    "$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown OS}")" "$(uname -r)"
}
