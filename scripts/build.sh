#!/usr/bin/env bash
# Configures and builds one build tree. Used by scripts/run and scripts/test.
#   scripts/build.sh DIR BUILD_TYPE [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1; type=$2; shift 2
# Relative paths in ccache's keys: clones in other folders (CI) hit the cache.
export CCACHE_BASEDIR="$PWD"
export CCACHE_NOHASHDIR=1
if [ ! -f "$dir/build.ninja" ] || [ CMakeLists.txt -nt "$dir/build.ninja" ] || [ $# -gt 0 ]; then
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" "$@" >/dev/null
fi
# Two cores: two jobs; CAF translation units need ~500 MB each.
cmake --build "$dir" -- -j"${FLOTILLA_JOBS:-$(nproc)}"
