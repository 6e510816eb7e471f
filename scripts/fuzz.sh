#!/usr/bin/env bash
# Build the libFuzzer targets (clang) and run each one for a bounded time.
#
#   scripts/fuzz.sh                  build build-fuzz/, run every tests/fuzz/*_fuzz.cpp target
#   scripts/fuzz.sh frame_fuzz ...   only these targets
#   scripts/fuzz.sh --build-only     configure and build, run nothing
#
# Each target starts from a scratch copy of its seed corpus (tests/fuzz/corpus/NAME,
# NAME = target without _fuzz), so the committed corpus never grows here, and uses
# tests/fuzz/NAME.dict when there is one. Any crash, leak, timeout, OOM or sanitizer
# report fails the run (exit 1); the input that caused it is kept in
# build-fuzz/artifacts/ and its path is printed.
#
# Environment:
#   HEARTH_FUZZ_SECONDS=N     run time per target (default 60)
#   HEARTH_FUZZ_PARALLEL=N    targets run at the same time (default 2: one per core)
#   HEARTH_FUZZ_BUILD_DIR=DIR build dir (default build-fuzz)
#   HEARTH_JOBS=N             build parallelism (default 2)
#   HEARTH_FUZZ_CXX / HEARTH_FUZZ_CC  compilers (default clang++-14 / clang-14)
# The last line is "fuzz: N passed, N failed" (one per target).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

seconds=${HEARTH_FUZZ_SECONDS:-60}
parallel=${HEARTH_FUZZ_PARALLEL:-2}
build_dir=${HEARTH_FUZZ_BUILD_DIR:-build-fuzz}
jobs=${HEARTH_JOBS:-2}
cxx=${HEARTH_FUZZ_CXX:-clang++-14}
cc=${HEARTH_FUZZ_CC:-clang-14}

build_only=0
targets=()
while (($#)); do
  case "$1" in
    --build-only) build_only=1 ;;
    -h | --help)
      sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    -*)
      echo "fuzz.sh: unknown option: $1 (see --help)" >&2
      exit 1
      ;;
    *) targets+=("$1") ;;
  esac
  shift
done

if ((${#targets[@]} == 0)); then
  for source in tests/fuzz/*_fuzz.cpp; do
    name=${source##*/}
    targets+=("${name%.cpp}")
  done
fi
for target in "${targets[@]}"; do
  if [[ ! -f "tests/fuzz/$target.cpp" ]]; then
    echo "fuzz.sh: no such target: $target (tests/fuzz/$target.cpp)" >&2
    exit 1
  fi
done
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ && "$parallel" =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz.sh: HEARTH_FUZZ_SECONDS and HEARTH_FUZZ_PARALLEL must be positive integers" >&2
  exit 1
fi

# --- build -------------------------------------------------------------------
if [[ -f "$build_dir/CMakeCache.txt" ]] &&
  ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$build_dir/CMakeCache.txt"; then
  echo "fuzz.sh: $build_dir was configured with another generator; remove it first" >&2
  exit 1
fi
start=$SECONDS
echo "fuzz.sh: configuring $build_dir ($cxx, libFuzzer + ASan + UBSan)"
# -O1 -g1: what libFuzzer's docs suggest (fast enough, cheap to compile); line
# tables keep file:line in sanitizer reports.
CC=$cc CXX=$cxx cmake -S . -B "$build_dir" -G Ninja \
  -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
  -DHEARTH_FUZZ=ON -DHEARTH_TESTS=ON -DHEARTH_SANITIZE=OFF >/dev/null
echo "fuzz.sh: building ${targets[*]} with -j$jobs"
cmake --build "$build_dir" -j "$jobs" --target "${targets[@]}"
echo "fuzz.sh: $build_dir built in $((SECONDS - start))s"
((build_only)) && exit 0

# --- run ---------------------------------------------------------------------
artifacts="$build_dir/artifacts"
stamp=$(date +%Y%m%d-%H%M%S) # artifacts of earlier runs stay, and are not reported again
work="$build_dir/fuzz-run"
rm -rf "$work"
mkdir -p "$artifacts" "$work"

# run_target TARGET: fuzz it for $seconds; exit status is the verdict.
run_target() {
  local target=$1 name=${1%_fuzz}
  local corpus="$work/$name-corpus" log="$work/$target.log"
  mkdir -p "$corpus"
  if [[ -d "tests/fuzz/corpus/$name" ]]; then
    cp -- tests/fuzz/corpus/"$name"/* "$corpus"/
  fi
  local args=(
    -max_total_time="$seconds"
    -timeout=10 # one input running 10 s is a hang: report it
    -rss_limit_mb=2048
    -detect_leaks=1
    -print_final_stats=1
    -artifact_prefix="$artifacts/$target-$stamp-"
  )
  [[ -f "tests/fuzz/$name.dict" ]] && args+=(-dict="tests/fuzz/$name.dict")
  local status=0
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0:handle_abort=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$build_dir/bin/$target" "${args[@]}" "$corpus" >"$log" 2>&1 || status=$?
  # A report that did not end the process (should not happen: UBSan does not
  # recover, ASan aborts) still fails the target.
  if ((status == 0)) && grep -qE '^(==[0-9]+==)?ERROR: |runtime error: |^SUMMARY: ' "$log"; then
    status=1
  fi
  return "$status"
}

# summary TARGET: one line from libFuzzer's last status line and final stats.
summary() {
  local log="$work/$1.log" done_line execs rate new
  done_line=$(grep -E '^#[0-9]+[[:space:]]+(DONE|INITED|NEW|REDUCE|pulse)' "$log" | tail -1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  new=$(sed -n 's/^stat::new_units_added: *//p' "$log")
  local cov ft corp
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$done_line")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$done_line")
  corp=$(sed -nE 's/.* corp: ([0-9]+\/[0-9]+[a-zA-Z]*).*/\1/p' <<<"$done_line")
  echo "runs ${execs:-?}, ${rate:-?} exec/s, cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}, new ${new:-?}"
}

echo "fuzz.sh: running ${#targets[@]} target(s), ${seconds}s each, $parallel at a time"
declare -A target_of=()
passed=0
failed=0
pending=("${targets[@]}")
t0=$SECONDS
while ((${#pending[@]} || ${#target_of[@]})); do
  while ((${#pending[@]})) && ((${#target_of[@]} < parallel)); do
    target=${pending[0]}
    pending=("${pending[@]:1}")
    run_target "$target" &
    target_of[$!]=$target
    echo "fuzz.sh: $target started (log $work/$target.log)"
  done
  status=0
  wait -n -p done_pid "${!target_of[@]}" || status=$?
  target=${target_of[$done_pid]}
  unset "target_of[$done_pid]"
  if ((status == 0)); then
    passed=$((passed + 1))
    echo "fuzz.sh: PASS $target: $(summary "$target")"
    continue
  fi
  failed=$((failed + 1))
  echo "fuzz.sh: FAIL $target (exit $status): $(summary "$target")"
  echo "----- $work/$target.log (last 60 lines) -----"
  tail -n 60 "$work/$target.log"
  echo "-----"
  found=$(ls -1 "$artifacts/$target-$stamp-"* 2>/dev/null || true)
  if [[ -n "$found" ]]; then
    while read -r artifact; do
      echo "fuzz.sh: $target artifact: $root/$artifact"
      echo "fuzz.sh:   reproduce: $build_dir/bin/$target $artifact"
    done <<<"$found"
  else
    echo "fuzz.sh: $target left no artifact (see the log above)"
  fi
done
echo "fuzz.sh: fuzzing took $((SECONDS - t0))s"
echo "fuzz: $passed passed, $failed failed"
((failed == 0))
