#!/usr/bin/env bash
# Builds the library, the s3db CLI and the test binary with AddressSanitizer + UndefinedBehavior
# Sanitizer (CMake option S3DB_SANITIZE) into build-asan/, and runs a subset of the tests that
# needs no test server: the bad input corpus, core, formats, storage on memory:// and file://,
# config + Lua, the CLI's readers, SigV4, and the fuzz regression tests. Any sanitizer report
# stops the test process (halt_on_error) and fails the run.
#
#   scripts/asan.sh                  build, then run the subset (two gtest shards in parallel)
#   scripts/asan.sh --build-only     only build
#   scripts/asan.sh --filter 'JsonTest.*'    run another gtest filter
#
# The build uses clang with -O1 and line tables only: compiling with sanitizers costs GCC about
# three times as much CPU as clang (measured; see docs/reliability.md), which matters on CI.
# Environment: S3DB_ASAN_BUILD_DIR (default build-asan), S3DB_BUILD_JOBS (default 2),
# CC / CXX (default clang-14 / clang++-14), ASAN_OPTIONS / UBSAN_OPTIONS (defaults below).
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
build_dir=${S3DB_ASAN_BUILD_DIR:-build-asan}
[[ "$build_dir" == /* ]] || build_dir="$repo_root/$build_dir"
jobs=${S3DB_BUILD_JOBS:-2}

# Suites that run without a test server (parameterized store suites: memory and file only).
subset=(
  'BadInput*' 'FuzzRegression*'
  'JsonTest.*' 'SchemaTest.*' 'DatabaseTest.*' 'ResourceDeleteTest.*'
  'AllStores/ResourceTest.*/memory' 'AllStores/ResourceTest.*/file'
  'AllStores/ObjectStoreTest.*/memory' 'AllStores/ObjectStoreTest.*/file'
  'MemoryStoreTest.*' 'FileStoreTest.*' 'ConnectionStringTest.*' 'RedactSecretsTest.*'
  'FileByteSink.*' 'MemoryByteSink.*' 'FormatsColumnSet.*' 'CsvWriter.*' 'JsonlWriter.*'
  'ParquetRleHybrid.*' 'ParquetPlainBooleans.*' 'ParquetThriftCompact.*' 'FormatsIso8601.*'
  'ParquetWriter.*' 'RecordWriters.*'
  'SigV4Test.*' 'XmlTest.*'
  'YamlToJson.*' 'EnvironmentSubstitution.*' 'ConfigFile.*' 'LuaSandbox.*'
  'CsvReader.*' 'JsonArraySource.*' 'JsonLinesSource.*' 'CsvSource.*' 'InputFormats.*'
  'Importer.*' 'JsonInput.*'
)
filter=$(IFS=:; echo "${subset[*]}")
build_only=false
while (($# > 0)); do
  case "$1" in
    --build-only) build_only=true ;;
    --filter) filter=${2:?--filter needs a gtest filter}; shift ;;
    -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "asan.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done

export CC=${CC:-clang-14} CXX=${CXX:-clang++-14}
if ! command -v "$CXX" >/dev/null 2>&1; then
  echo "asan.sh: $CXX not found; run scripts/install-deps.sh (Debian package clang-14)" >&2
  exit 1
fi
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$repo_root}
export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}

echo "asan.sh: building into $build_dir (ASan + UBSan, $CXX)" >&2
# CMake keeps the compiler of the first configure: start afresh when it was another one.
cache="$build_dir/CMakeCache.txt"
if [[ -f "$cache" ]] &&
   ! grep -qx "CMAKE_CXX_COMPILER:FILEPATH=$(command -v "$CXX")" "$cache" &&
   ! grep -qx "CMAKE_CXX_COMPILER:STRING=$CXX" "$cache"; then
  echo "asan.sh: $build_dir was configured with another compiler; reconfiguring" >&2
  rm -rf "$cache" "$build_dir/CMakeFiles"
fi
cmake -S "$repo_root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DS3DB_SANITIZE=ON -DS3DB_BUILD_BENCH=OFF \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only -DNDEBUG" \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only -DNDEBUG" \
  -DCMAKE_CXX_FLAGS="-fno-sanitize-recover=all" >/dev/null
cmake --build "$build_dir" -j "$jobs" --target s3db_tests s3db_cli
$build_only && exit 0

export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
# The CLI that tests spawn is the sanitized one too; its reports go to the same log.
tests="$build_dir/tests/s3db_tests"
log_dir="$build_dir/asan-logs"
rm -rf "$log_dir"
mkdir -p "$log_dir"
echo "asan.sh: running $(("$(GTEST_FILTER=$filter "$tests" --gtest_list_tests |
                               grep -c '^  ')")) tests under ASan + UBSan" >&2
shards=2
pids=()
for ((shard = 0; shard < shards; ++shard)); do
  GTEST_TOTAL_SHARDS=$shards GTEST_SHARD_INDEX=$shard \
    "$tests" --gtest_filter="$filter" --gtest_brief=1 >"$log_dir/shard-$shard.log" 2>&1 &
  pids+=($!)
done
status=0
for ((shard = 0; shard < shards; ++shard)); do
  if ! wait "${pids[$shard]}"; then
    status=1
    echo "asan.sh: shard $shard failed; its log ($log_dir/shard-$shard.log) ends with:" >&2
    tail -n 60 "$log_dir/shard-$shard.log" >&2
  fi
done
# A sanitizer report in a child process (the CLI) does not always fail the test that ran it.
if grep -lE '^(==[0-9]+==ERROR: |SUMMARY: (Address|UndefinedBehavior|Leak)Sanitizer)|runtime error: ' \
     "$log_dir"/*.log >/dev/null 2>&1; then
  status=1
  echo "asan.sh: sanitizer reports:" >&2
  grep -hE -A20 '^==[0-9]+==ERROR: |runtime error: ' "$log_dir"/*.log | head -n 80 >&2
fi
for ((shard = 0; shard < shards; ++shard)); do
  grep -E '^\[  (PASSED|FAILED)  \]|tests? ran' "$log_dir/shard-$shard.log" | sed "s/^/asan.sh: shard $shard: /" >&2 || true
done
if ((status == 0)); then echo "asan.sh: passed" >&2; else echo "asan.sh: FAILED" >&2; fi
exit "$status"
