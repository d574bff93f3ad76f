#!/usr/bin/env bash
# The s3db demo: imports the world's countries into a local database and replicates them as
# they are written.
#   1. installs what is missing (Debian packages and the npm data package world-countries),
#   2. builds the s3db CLI into build/,
#   3. with examples/config/demo.yaml: creates the resource "countries" in ./demo-data
#      (file:// storage), imports the 250 countries, and replicates every write to a second
#      s3db database in ./demo-mirror (a plain copy and a Lua-transformed summary) and to
#      JSONL, CSV, Parquet and Excel files in ./demo-exports; prints per replicator delivered,
#      filtered, failed and the write -> delivered latency; lists the first countries.
# The three folders are wiped first, so the demo can run again.
#
# Options (for CI, tests/cli/demo_test.sh):
#   --no-install      skip step 1          --no-build     skip step 2 (use the built CLI)
#   --dir DIR         create the folders in DIR instead of the repository root
#   --countries FILE  world-countries' countries.json (default: the npm package's)
# Environment: S3DB_BUILD_DIR (default build), as for scripts/build.sh.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${S3DB_BUILD_DIR:-build}
[[ "$build_dir" == /* ]] || build_dir="$repo_root/$build_dir"
export S3DB_BUILD_DIR=$build_dir

install=true
build=true
demo_dir=$repo_root
countries_source=$repo_root/scripts/peers/node_modules/world-countries/countries.json
while (($#)); do
  case "$1" in
    --no-install) install=false ;;
    --no-build) build=false ;;
    --dir) demo_dir=${2:?--dir needs a folder}; shift ;;
    --countries) countries_source=${2:?--countries needs a file}; shift ;;
    -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done

step() { echo "== $*" >&2; }

cd "$repo_root"
if $install; then
  step "dependencies"
  scripts/install-deps.sh --demo
fi
if $build; then
  step "build the s3db CLI"
  scripts/build.sh s3db_cli
fi
s3db_bin=$build_dir/s3db
if [[ ! -x "$s3db_bin" ]]; then
  echo "demo: $s3db_bin is missing; build it with scripts/build.sh s3db_cli" >&2
  exit 1
fi
if [[ ! -f "$countries_source" ]]; then
  echo "demo: $countries_source is missing; install it with scripts/install-deps.sh --demo" >&2
  exit 1
fi
countries_source=$(cd "$(dirname "$countries_source")" && pwd)/$(basename "$countries_source")
config=$repo_root/examples/config/demo.yaml

work_dir=$(mktemp -d "${TMPDIR:-/tmp}/s3db-demo.XXXXXX")
trap 'rm -rf "$work_dir"' EXIT

# world-countries ships one JSON array with much detail per country. Keep a few fields, one
# record per line, with the ISO 3166 alpha-3 code as the record id.
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
' "$countries_source" "$countries_file"

step "demo: file://./demo-data, replicated to ./demo-mirror and ./demo-exports"
mkdir -p "$demo_dir"
cd "$demo_dir"
rm -rf demo-data demo-mirror demo-exports
# The config declares the resource and its replicators; the import replicates every record
# and prints, per replicator, delivered / filtered / failed and the write -> delivered latency.
echo "\$ build/s3db -c examples/config/demo.yaml import countries.jsonl --resource countries" >&2
"$s3db_bin" -c "$config" import "$countries_file" --resource countries
echo "\$ build/s3db --connection file://./demo-data list countries --limit 10" >&2
"$s3db_bin" --connection file://./demo-data list countries --limit 10 >"$work_dir/list.txt"
head -n 5 "$work_dir/list.txt"
echo "exports:" >&2
ls -l demo-exports >&2
echo "(records under ./demo-data, the copy under ./demo-mirror, files under ./demo-exports)" >&2
