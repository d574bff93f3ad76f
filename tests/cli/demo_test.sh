#!/usr/bin/env bash
# Runs the README's first command, scripts/demo.sh, against the built s3db CLI in a temporary
# folder (without its install and build steps), twice, and checks what it prints and writes.
#
#   tests/cli/demo_test.sh BUILD_DIR     (ctest runs it as DemoScript)
#
# The data is the npm package world-countries when installed (scripts/install-deps.sh --demo;
# CI installs it): 250 countries, 5 of them in the Antarctic region, which the demo's "summary"
# replicator filters out. Without the package it writes a small file of the same shape.
# S3DB_DEMO_COUNTRIES names another countries.json.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build_dir=${1:?usage: demo_test.sh BUILD_DIR}
export S3DB_BUILD_DIR=$build_dir
work=$(mktemp -d "${TMPDIR:-/tmp}/s3db-demo-test.XXXXXX")
trap 'rm -rf "$work"' EXIT

fail() {
  echo "demo_test: FAIL: $*" >&2
  exit 1
}

countries=${S3DB_DEMO_COUNTRIES:-$repo_root/scripts/peers/node_modules/world-countries/countries.json}
if [[ ! -f "$countries" ]]; then
  echo "demo_test: world-countries is not installed; using a small file of the same shape" >&2
  countries=$work/countries.json
  cat >"$countries" <<'EOF'
[
 {"cca3":"ISL","cca2":"IS","name":{"common":"Iceland","official":"Iceland"},"region":"Europe","subregion":"Northern Europe","capital":["Reykjavik"],"area":103000,"landlocked":false,"languages":{"isl":"Icelandic"}},
 {"cca3":"ALA","cca2":"AX","name":{"common":"Åland Islands","official":"Åland Islands"},"region":"Europe","subregion":"Northern Europe","capital":["Mariehamn"],"area":1580,"landlocked":false,"languages":{"swe":"Swedish"}},
 {"cca3":"JPN","cca2":"JP","name":{"common":"Japan","official":"日本国"},"region":"Asia","subregion":"Eastern Asia","capital":["Tokyo"],"area":377930,"landlocked":false,"languages":{"jpn":"Japanese"}},
 {"cca3":"CIV","cca2":"CI","name":{"common":"Ivory Coast","official":"République de Côte d'Ivoire"},"region":"Africa","subregion":"Western Africa","capital":["Yamoussoukro"],"area":322463,"landlocked":false,"languages":{"fra":"French"}},
 {"cca3":"BRA","cca2":"BR","name":{"common":"Brazil","official":"Federative Republic of Brazil"},"region":"Americas","subregion":"South America","capital":["Brasília"],"area":8515767,"landlocked":false,"languages":{"por":"Portuguese"}},
 {"cca3":"ATA","cca2":"AQ","name":{"common":"Antarctica","official":"Antarctica"},"region":"Antarctic","capital":[],"area":14000000,"landlocked":false}
]
EOF
fi
total=$(node -e 'console.log(require(process.argv[1]).length)' "$countries")
antarctic=$(node -e 'console.log(require(process.argv[1]).filter((c) => c.region === "Antarctic").length)' "$countries")
echo "demo_test: $countries: $total countries, $antarctic in the Antarctic" >&2

for run in 1 2; do  # the second run proves the demo can run again (it wipes its folders)
  "$repo_root/scripts/demo.sh" --no-install --no-build --dir "$work/demo" \
    --countries "$countries" >"$work/out.txt" 2>"$work/err.txt" ||
    { cat "$work/out.txt" "$work/err.txt" >&2; fail "run $run: scripts/demo.sh exited with $?"; }
  out=$(cat "$work/out.txt")
  echo "$out"

  grep -q "^imported $total, failed 0 " <<<"$out" || fail "run $run: no 'imported $total, failed 0'"
  for replicator in "mirror (s3db)" "jsonl-export (jsonl)" "csv-export (csv)" \
                    "parquet-export (parquet)" "excel-export (excel)"; do
    grep -q "^replicator $replicator: delivered $total, filtered 0, failed attempts 0 .*dead letters 0," \
      <<<"$out" || fail "run $run: replicator $replicator did not deliver all $total"
  done
  kept=$((total - antarctic))
  grep -q "^replicator summary (s3db): delivered $kept, filtered $antarctic, failed attempts 0 .*dead letters 0," \
    <<<"$out" || fail "run $run: the summary replicator did not deliver $kept and filter $antarctic"
  grep -Eq "^replicator mirror \(s3db\): .*latency p50 [0-9.]+ ms, p99 [0-9.]+ ms" <<<"$out" ||
    fail "run $run: no latency for the mirror"
  [[ $(grep -c '^{"id":' <<<"$out") -eq $((total < 5 ? total : 5)) ]] ||
    fail "run $run: the listing of the first countries is missing"
done

# What the replicators wrote.
cd "$work/demo"
count() { "$build_dir/s3db" --connection "$1" list "$2" | wc -l; }
[[ $(count file://./demo-data countries) -eq $total ]] || fail "demo-data does not hold $total countries"
[[ $(count file://./demo-mirror countries) -eq $total ]] || fail "demo-mirror/countries is not a full copy"
[[ $(count file://./demo-mirror country_summary) -eq $((total - antarctic)) ]] ||
  fail "demo-mirror/country_summary does not hold $((total - antarctic)) summaries"
"$build_dir/s3db" --connection file://./demo-mirror list country_summary --limit 1 |
  grep -q '"languages":[0-9]' || fail "the summaries are not transformed by the Lua function"
for extension in jsonl csv parquet xlsx; do
  files=(demo-exports/*."$extension")
  [[ -s "${files[0]}" ]] || fail "no .$extension export in demo-exports"
done
jsonl=(demo-exports/*.jsonl)
[[ $(wc -l <"${jsonl[0]}") -eq $total ]] || fail "${jsonl[0]} does not hold $total lines"
grep -q "Åland Islands" "${jsonl[0]}" || fail "the JSONL export lost the Unicode names"
echo "demo_test: OK" >&2
