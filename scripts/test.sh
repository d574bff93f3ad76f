#!/usr/bin/env bash
# Runs s3db's whole test suite on this machine, from nothing to ctest's summary:
#   1. installs what is missing (Debian packages, npm test peers),
#   2. builds into build/,
#   3. installs the build into a temporary prefix and builds + runs examples/ against it
#      (proves that find_package(s3db) works for a user),
#   4. starts the test servers (scripts/test-services.sh), then runs ctest,
#   5. runs the short reliability suite (scripts/reliability.sh: crash loop, outages, disk full,
#      soak, security checks), the ASan + UBSan subset (scripts/asan.sh, build-asan/) and
#      fuzzes every libFuzzer target briefly (scripts/fuzz.sh, build-fuzz/).
# The servers are stopped on exit, silently; ctest's summary line is repeated last.
# The exit code is ctest's when every step passed, else non-zero: a failing sanitizer or fuzz
# step fails the run (its name is printed just before the summary line).
#
# Environment: S3DB_BUILD_DIR (default build), S3DB_CTEST_JOBS (default 2),
# S3DB_TEST_RELIABILITY, S3DB_TEST_ASAN and S3DB_TEST_FUZZ (0 skips that part of step 5), plus those of scripts/build.sh, scripts/asan.sh,
# scripts/fuzz.sh and scripts/test-services.sh. Extra arguments go to ctest (e.g. -R Storage).
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
build_dir=${S3DB_BUILD_DIR:-build}
[[ "$build_dir" == /* ]] || build_dir="$repo_root/$build_dir"
export S3DB_BUILD_DIR=$build_dir

step() { echo "== $*" >&2; }

install_prefix=""
services_started=false
cleanup() {
  # Prints nothing: whatever ran last (ctest) keeps the last line.
  if $services_started; then scripts/test-services.sh stop >/dev/null 2>&1 || true; fi
  if [[ -n "$install_prefix" ]]; then rm -rf "$install_prefix"; fi
}
trap cleanup EXIT
trap 'exit 130' INT  # so that the EXIT trap runs on Ctrl-C and on kill too
trap 'exit 143' TERM

step "dependencies"
scripts/install-deps.sh --test-peers

step "build"
scripts/build.sh

step "examples against an installed copy"
install_prefix=$(mktemp -d "${TMPDIR:-/tmp}/s3db-install.XXXXXX")
cmake --install "$build_dir" --prefix "$install_prefix" >/dev/null
cmake -S examples -B "$build_dir/examples" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_PREFIX_PATH="$install_prefix" >/dev/null
cmake --build "$build_dir/examples" -j "${S3DB_BUILD_JOBS:-2}"
"$build_dir/examples/basic"

step "test servers"
services_started=true
service_env=$(scripts/test-services.sh start)  # a failed start stops the script here
eval "$service_env"

step "ctest"
set +e
ctest_log="$build_dir/ctest-output.log"
ctest --test-dir "$build_dir" --output-on-failure -j "${S3DB_CTEST_JOBS:-2}" "$@" 2>&1 |
  tee "$ctest_log"
status=${PIPESTATUS[0]}
# ctest prints its timing and the list of skipped tests after the summary; repeat the summary so
# that it is the last line of the output, as CI reads it.
summary=$(grep -E '^[0-9]+% tests passed' "$ctest_log" | tail -n 1)

failed_steps=()
if [[ "${S3DB_TEST_RELIABILITY:-1}" != 0 ]]; then
  step "reliability suite (short)"
  scripts/reliability.sh || failed_steps+=("scripts/reliability.sh")
fi
if [[ "${S3DB_TEST_ASAN:-1}" != 0 ]]; then
  step "ASan + UBSan subset"
  scripts/asan.sh || failed_steps+=("scripts/asan.sh")
fi
if [[ "${S3DB_TEST_FUZZ:-1}" != 0 ]]; then
  step "fuzz (brief)"
  S3DB_FUZZ_SECONDS=${S3DB_FUZZ_SECONDS:-10} scripts/fuzz.sh || failed_steps+=("scripts/fuzz.sh")
fi
if ((${#failed_steps[@]} > 0)); then
  echo "== FAILED: ${failed_steps[*]} (see above)" >&2
  ((status != 0)) || status=1
fi

if [[ -n "$summary" ]]; then
  echo
  echo "$summary"
fi
exit "$status"
