#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (ASan + UBSan + coverage) into build-fuzz/
# and fuzzes each one, starting from its committed seed corpus fuzz/corpus/<target>/.
#
#   scripts/fuzz.sh                    every target for 20 s (CI)
#   scripts/fuzz.sh --full             every target for an hour
#   scripts/fuzz.sh --seconds 300 sigv4 csv_writer     chosen targets, chosen time
#   scripts/fuzz.sh --merge            also add the inputs that reach new coverage to fuzz/corpus/
#
# A crash, a leak, a timeout (10 s per input) or a broken invariant fails the run; the input is
# saved under build-fuzz/fuzz-artifacts/<target>/ (this run's only) and the command to replay it
# is printed.
# New inputs found go to build-fuzz/fuzz-corpus/<target>/ (kept between runs).
#
# Environment: S3DB_FUZZ_BUILD_DIR (default build-fuzz), S3DB_BUILD_JOBS (default 2),
# S3DB_FUZZ_SECONDS (default 20), CC / CXX (default clang-14 / clang++-14).
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
build_dir=${S3DB_FUZZ_BUILD_DIR:-build-fuzz}
[[ "$build_dir" == /* ]] || build_dir="$repo_root/$build_dir"
seconds=${S3DB_FUZZ_SECONDS:-20}
merge=false
all_targets=(connection_string yaml_config json_record sigv4 csv_writer parquet_writer lua_sandbox)
targets=()

while (($# > 0)); do
  case "$1" in
    --full) seconds=3600 ;;
    --seconds) seconds=${2:?--seconds needs a number}; shift ;;
    --merge) merge=true ;;
    -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    *)
      if [[ ! " ${all_targets[*]} " == *" $1 "* ]]; then
        echo "fuzz.sh: unknown target '$1' (known: ${all_targets[*]})" >&2
        exit 2
      fi
      targets+=("$1") ;;
  esac
  shift
done
((${#targets[@]} > 0)) || targets=("${all_targets[@]}")
[[ "$seconds" =~ ^[0-9]+$ && "$seconds" -gt 0 ]] || {
  echo "fuzz.sh: --seconds must be a positive whole number, not '$seconds'" >&2
  exit 2
}

export CC=${CC:-clang-14} CXX=${CXX:-clang++-14}
if ! command -v "$CXX" >/dev/null 2>&1; then
  echo "fuzz.sh: $CXX not found; run scripts/install-deps.sh (Debian packages clang-14," \
       "libclang-rt-14-dev)" >&2
  exit 1
fi

export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$repo_root}
export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}
echo "fuzz.sh: building the fuzz targets into $build_dir" >&2
cmake -S "$repo_root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DS3DB_BUILD_FUZZ=ON -DS3DB_BUILD_TESTS=OFF -DS3DB_BUILD_BENCH=OFF >/dev/null
cmake --build "$build_dir" -j "${S3DB_BUILD_JOBS:-2}" --target fuzz_targets

# ASan's leak check stays on; UBSan findings abort (the targets are built with
# -fno-sanitize-recover=all) and print a stack.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=()
summary=()
for target in "${targets[@]}"; do
  binary="$build_dir/fuzz/fuzz_$target"
  seeds="$repo_root/fuzz/corpus/$target"
  corpus="$build_dir/fuzz-corpus/$target"
  artifacts="$build_dir/fuzz-artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  rm -f "$artifacts"/*  # only this run's findings
  log="$build_dir/fuzz-artifacts/$target.log"
  # The Lua sandbox runs in an empty folder: a script that manages to write a file fails the run.
  workdir=$(mktemp -d "${TMPDIR:-/tmp}/s3db-fuzz-$target.XXXXXX")
  echo "fuzz.sh: $target for ${seconds} s" >&2
  set +e
  (cd "$workdir" && "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2560 \
     -max_len=65536 -print_final_stats=1 -artifact_prefix="$artifacts/" \
     "$corpus" "$seeds") >"$log" 2>&1
  status=$?
  set -e
  runs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' | tail -n 1)
  coverage=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | awk '{print $2}')
  leftovers=$(ls -A "$workdir")
  rm -rf "$workdir"
  result=ok
  if ((status != 0)); then
    result="FAILED (exit $status)"
  elif [[ -n "$leftovers" ]]; then
    result="FAILED (files appeared in the working folder: $leftovers)"
  fi
  summary+=("$(printf '%-18s %8s runs  cov %6s  %s' "$target" "${runs:-?}" "${coverage:-?}" \
                 "$result")")
  if [[ "$result" != ok ]]; then
    failed+=("$target")
    echo "fuzz.sh: $target: $result; last lines of $log:" >&2
    tail -n 40 "$log" >&2
    for artifact in "$artifacts"/*; do
      [[ -e "$artifact" ]] || continue
      echo "fuzz.sh: replay with: $binary $artifact" >&2
    done
  fi
  if $merge && [[ "$result" == ok ]]; then
    # Adds to the seeds only the inputs that reach new coverage; existing seeds stay.
    "$binary" -merge=1 -max_len=65536 "$seeds" "$corpus" >/dev/null 2>&1
    echo "fuzz.sh: $target: $(ls "$seeds" | wc -l) seed inputs in fuzz/corpus/$target" >&2
  fi
done

echo "fuzz.sh: summary (${seconds} s per target)" >&2
for line in "${summary[@]}"; do echo "  $line" >&2; done
if ((${#failed[@]} > 0)); then
  echo "fuzz.sh: failed: ${failed[*]}" >&2
  exit 1
fi
