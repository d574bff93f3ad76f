#!/usr/bin/env bash
# Configures and builds s3db with CMake and Ninja into build/ (RelWithDebInfo, ccache, 2 jobs).
#
#   scripts/build.sh                 everything: library, s3db CLI, tests, benchmarks
#   scripts/build.sh s3db_cli ...    only the named Ninja targets
#
# Environment: S3DB_BUILD_DIR (default build), S3DB_BUILD_JOBS (default 2),
# S3DB_CMAKE_ARGS (extra configure arguments, split on spaces).
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${S3DB_BUILD_DIR:-build}
[[ "$build_dir" == /* ]] || build_dir="$repo_root/$build_dir"
jobs=${S3DB_BUILD_JOBS:-2}

# Let ccache reuse objects compiled in another checkout of the repo (CI clones afresh).
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$repo_root}
export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}

read -r -a extra_cmake_args <<<"${S3DB_CMAKE_ARGS:-}"
cmake -S "$repo_root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "${extra_cmake_args[@]}" >/dev/null
cmake --build "$build_dir" -j "$jobs" ${1:+--target "$@"}
