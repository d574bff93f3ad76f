#!/usr/bin/env bash
# The s3db demo: builds the s3db CLI, then keeps the world's countries in a local folder.
#   1. installs what is missing (Debian packages and the npm data package world-countries),
#   2. builds the CLI into build/,
#   3. creates the resource "countries" in ./demo-data (file:// storage; wiped first, so the
#      demo can run again), imports 250 countries and lists the first ones.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
build_dir=${S3DB_BUILD_DIR:-build}
[[ "$build_dir" == /* ]] || build_dir="$repo_root/$build_dir"
export S3DB_BUILD_DIR=$build_dir

step() { echo "== $*" >&2; }

step "dependencies"
scripts/install-deps.sh --demo

step "build the s3db CLI"
scripts/build.sh s3db_cli

work_dir=$(mktemp -d "${TMPDIR:-/tmp}/s3db-demo.XXXXXX")
trap 'rm -rf "$work_dir"' EXIT

# world-countries ships one JSON array with much detail per country. Keep a few fields, one
# record per line, with the ISO 3166 alpha-3 code as the record id.
countries_source=scripts/peers/node_modules/world-countries/countries.json
countries_file="$work_dir/countries.jsonl"
node -e '
  const countries = require(process.argv[1]);
  const lines = countries.map((c) => JSON.stringify({
    id: c.cca3,
    name: c.name.common,
    officialName: c.name.official,
    cca2: c.cca2,
    region: c.region,
    subregion: c.subregion || undefined,
    capital: c.capital && c.capital.length ? c.capital : undefined,
    area: c.area >= 0 ? c.area : undefined,
    landlocked: c.landlocked,
    languages: c.languages || {},
  }));
  require("fs").writeFileSync(process.argv[2], lines.join("\n") + "\n");
' "$PWD/$countries_source" "$countries_file"

s3db() { "$build_dir/s3db" --connection file://./demo-data "$@"; }
attributes='{
  "name": "string|required",
  "officialName": "string",
  "cca2": "string|required|maxlength:2",
  "region": "string|required",
  "subregion": "string",
  "capital": "array|items:string",
  "area": "number|min:0",
  "landlocked": "boolean",
  "languages": "json"
}'

# Shows each command as a user would type it, then runs it.
run() {
  echo "\$ build/s3db --connection file://./demo-data $*" | sed 's/{.*}/{...}/' >&2
  s3db "$@"
}

step "demo: file://./demo-data, replicated to ./demo-mirror and ./demo-exports"
rm -rf demo-data demo-mirror demo-exports
# The config (examples/config/demo.yaml) declares the resource and its replicators: a second
# s3db database (a plain copy and a Lua-transformed summary) and JSONL, CSV, Parquet and Excel
# files.
# The import replicates every record and prints, per replicator, delivered / filtered / failed
# and the write -> delivered latency.
echo "\$ build/s3db -c examples/config/demo.yaml import countries.jsonl --resource countries" >&2
"$build_dir/s3db" -c examples/config/demo.yaml import "$countries_file" --resource countries
run list countries --limit 10 >"$work_dir/list.txt"
head -n 5 "$work_dir/list.txt"
echo "exports:" >&2
ls -l demo-exports >&2
echo "(records under ./demo-data, the copy under ./demo-mirror, files under ./demo-exports)" >&2
