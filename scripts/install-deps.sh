#!/usr/bin/env bash
# Installs what s3db needs to build, test and run its demo, and only what is missing.
#
#   scripts/install-deps.sh                Debian packages only
#   scripts/install-deps.sh --demo         + the npm package the demo reads (world-countries)
#   scripts/install-deps.sh --test-peers   + every npm test peer in scripts/peers/ (npm ci), LibreOffice
#   scripts/install-deps.sh --bench        + gnuplot-nox and the test peers, for bench/compare/run.sh
#
# Runs as root on Debian 12. Idempotent: `apt-get update` runs only when a package is missing,
# and the npm step is skipped when scripts/peers/node_modules already matches the lock file.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
peers_dir="$repo_root/scripts/peers"

want_demo=false
want_test_peers=false
want_bench=false
for arg in "$@"; do
  case "$arg" in
    --demo) want_demo=true ;;
    --test-peers) want_test_peers=true ;;
    --bench) want_bench=true; want_test_peers=true ;;
    -h|--help) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install-deps: unknown option '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

log() { echo "install-deps: $*" >&2; }

debian_packages=(
  build-essential cmake ninja-build ccache pkg-config g++
  libboost-json1.81-dev libcurl4-openssl-dev libssl-dev openssl libsqlite3-dev sqlite3
  libyaml-cpp-dev liblua5.4-dev libspdlog-dev libfmt-dev libcli11-dev libcpp-httplib-dev
  libxlsxwriter-dev libexpected-dev libgtest-dev libgmock-dev libbenchmark-dev
  libpq-dev libsnappy-dev zlib1g-dev libzstd-dev liblz4-dev libhowardhinnant-date-dev tzdata
  libjemalloc-dev
  clang-14 libclang-rt-14-dev
  postgresql wrk curl jq
)
# Node.js may come from elsewhere than Debian (a newer build is often preinstalled). Installing
# Debian's nodejs/npm over it would replace or conflict with it, so ask for them only when the
# commands are missing.
command -v node >/dev/null 2>&1 || debian_packages+=(nodejs)
$want_bench && debian_packages+=(gnuplot-nox)  # bench/compare's latency plot
$want_test_peers && debian_packages+=(libreoffice-calc-nogui)  # opens the Excel test files
command -v npm >/dev/null 2>&1 || debian_packages+=(npm)

# One dpkg-query for all packages; unknown names print nothing, so they count as missing.
declare -A installed=()
while read -r name status; do
  [[ "$status" == "ii" ]] && installed[$name]=1
done < <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${debian_packages[@]}" \
           2>/dev/null || true)
missing=()
for package in "${debian_packages[@]}"; do
  [[ -n "${installed[$package]:-}" ]] || missing+=("$package")
done

if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -ne 0 ]]; then
    log "missing Debian packages: ${missing[*]}; run this script as root to install them"
    exit 1
  fi
  log "installing ${#missing[@]} Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
else
  log "all ${#debian_packages[@]} Debian packages present"
fi

# npm: `npm ci` reinstalls node_modules from scratch, so it runs only when package.json or the
# lock file changed since the last successful install (a stamp in node_modules/ records them).
npm_quiet=(--no-audit --no-fund --loglevel=error)
stamp="$peers_dir/node_modules/.s3db-installed"
lock_digest() { cat "$peers_dir/package.json" "$peers_dir/package-lock.json" | sha256sum; }
peers_up_to_date() {
  [[ -f "$peers_dir/package-lock.json" && -f "$stamp" && "$(cat "$stamp")" == "$(lock_digest)" ]]
}

if $want_test_peers; then
  if peers_up_to_date; then
    log "npm test peers present"
  elif [[ -f "$peers_dir/package-lock.json" ]]; then
    log "installing npm test peers (npm ci)"
    (cd "$peers_dir" && npm ci "${npm_quiet[@]}" >/dev/null)
    lock_digest >"$stamp"
  else
    log "installing npm test peers (npm install: no lock file yet)"
    (cd "$peers_dir" && npm install "${npm_quiet[@]}" >/dev/null)
    lock_digest >"$stamp"
  fi
elif $want_demo; then
  if [[ -f "$peers_dir/node_modules/world-countries/countries.json" ]]; then
    log "npm package world-countries present"
  else
    # Only the demo's data package (it has no dependencies), at the version and with the
    # checksum that the lock file pins, unpacked where a full `npm ci` would put it.
    read -r version integrity < <(node -e '
      const entry = require(process.argv[1]).packages["node_modules/world-countries"];
      console.log(entry.version, entry.integrity);' "$peers_dir/package-lock.json")
    log "installing npm package world-countries@$version"
    download_dir=$(mktemp -d)
    tarball=$(cd "$download_dir" && npm pack --silent "${npm_quiet[@]}" \
                "world-countries@$version" | tail -n 1)
    actual=$(node -e '
      const data = require("fs").readFileSync(process.argv[1]);
      console.log("sha512-" + require("crypto").createHash("sha512").update(data).digest("base64"));
    ' "$download_dir/$tarball")
    if [[ "$actual" != "$integrity" ]]; then
      log "world-countries@$version: checksum $actual differs from the lock file's $integrity"
      rm -rf "$download_dir"
      exit 1
    fi
    mkdir -p "$peers_dir/node_modules/world-countries"
    tar -xzf "$download_dir/$tarball" -C "$peers_dir/node_modules/world-countries" \
      --strip-components=1
    rm -rf "$download_dir"
  fi
fi
