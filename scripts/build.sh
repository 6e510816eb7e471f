#!/usr/bin/env bash
# Configure and build hearth with CMake + Ninja.
#
#   scripts/build.sh                       Release build in build/
#   scripts/build.sh --sanitize            Debug + ASan/UBSan build in build-asan/
#   scripts/build.sh --build-dir DIR       build somewhere else (relative to the repo root)
#   scripts/build.sh --type RelWithDebInfo another CMAKE_BUILD_TYPE
#   scripts/build.sh -- -DHEARTH_FUZZ=ON   extra arguments for cmake's configure step
#
# Environment: HEARTH_JOBS (default 2: the reference machine has 2 cores),
# CC / CXX as usual for CMake (only read on the first configure of a build dir).
# Binaries land in DIR/bin/hearth-edge and DIR/bin/hearth-origin.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

sanitize=0
build_dir=""
build_type=""
extra=()
while (($#)); do
  case "$1" in
    --sanitize) sanitize=1 ;;
    --build-dir)
      build_dir=${2:?--build-dir needs a directory}
      shift
      ;;
    --build-dir=*) build_dir=${1#*=} ;;
    --type)
      build_type=${2:?--type needs a CMake build type}
      shift
      ;;
    --type=*) build_type=${1#*=} ;;
    -h | --help)
      sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    --)
      shift
      extra=("$@")
      break
      ;;
    *)
      echo "build.sh: unknown argument: $1 (see --help)" >&2
      exit 1
      ;;
  esac
  shift
done

if ((sanitize)); then
  build_dir=${build_dir:-build-asan}
  build_type=${build_type:-Debug}
  # -g1 (line tables only): sanitizer stack traces keep file:line, and the build is
  # ~15% cheaper than with full -g (Boost coroutine code makes huge debug info).
  extra=(-DHEARTH_SANITIZE=ON -DCMAKE_CXX_FLAGS_DEBUG=-g1 "${extra[@]}")
else
  build_dir=${build_dir:-build}
  build_type=${build_type:-Release}
  extra=(-DHEARTH_SANITIZE=OFF "${extra[@]}")
fi
jobs=${HEARTH_JOBS:-2}

# A build dir configured with another generator cannot be reused: say so plainly.
if [[ -f "$build_dir/CMakeCache.txt" ]] &&
  ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$build_dir/CMakeCache.txt"; then
  echo "build.sh: $build_dir was configured with another generator; remove it first" >&2
  exit 1
fi

start=$SECONDS
echo "build.sh: configuring $build_dir ($build_type$( ((sanitize)) && echo ', ASan+UBSan'))"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="$build_type" "${extra[@]}"
echo "build.sh: building $build_dir with -j$jobs"
cmake --build "$build_dir" -j "$jobs"
echo "build.sh: $build_dir built in $((SECONDS - start))s"
