#!/usr/bin/env bash
# s3db's reliability and security suite, against the real `s3db run` and the test servers.
#
#   scripts/reliability.sh            the short version (CI): 5 kills, 5 s outages, 45 s soak
#   scripts/reliability.sh --full     the long one: 100,000 changes and 50 kills, 30 s outages,
#                                     a 10-minute soak
#   scripts/reliability.sh --only crash,outage,diskfull,soak,security   a subset
#   scripts/reliability.sh --keep     keep the work folder (logs, dumps, CSV) at the end
#
# Prints a summary table (test, runs, changes, lost, duplicated, dead-lettered, max RSS,
# result) and exits 1 when any test failed. docs/reliability.md says what each test does.
#
# Environment: S3DB_BUILD_DIR (default build; the s3db binary is built when missing),
# S3DB_RELIABILITY_DIR (work folder, default a new /tmp/s3db-reliability.XXXXXX), and the
# variables of scripts/test-services.sh (S3DB_TEST_*_PORT, S3DB_TEST_SERVICES_STATE): the
# servers are started when they are not running, and then stopped at the end.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${S3DB_BUILD_DIR:-build}
[[ "$build_dir" == /* ]] || build_dir="$repo_root/$build_dir"
s3db="$build_dir/s3db"
rel="$repo_root/tests/reliability"
services="$repo_root/scripts/test-services.sh"

full=false
keep=false
only="crash,outage,diskfull,soak,security"
only_given=""
while (($#)); do
  case "$1" in
    --full) full=true ;;
    --keep) keep=true ;;
    --only) only=${2:?--only needs a list}; only_given=1; shift ;;
    *) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
  shift
done

if $full; then
  crash_changes=100000 crash_kills=50 crash_max_gap=12
  outage_seconds=30 outage_before=10 outage_after=20
  soak_seconds=600 soak_sample=5
else
  crash_changes=6000 crash_kills=5 crash_max_gap=4
  outage_seconds=5 outage_before=3 outage_after=4
  soak_seconds=45 soak_sample=1
fi
soak_writers=16 soak_rate=5  # per writer, requests/s
# For trying the suite out: smaller runs.
crash_changes=${S3DB_RELIABILITY_CRASH_CHANGES:-$crash_changes}
crash_kills=${S3DB_RELIABILITY_CRASH_KILLS:-$crash_kills}
soak_seconds=${S3DB_RELIABILITY_SOAK_SECONDS:-$soak_seconds}

log() { echo "reliability: $*" >&2; }
wants() { [[ ",$only," == *",$1,"* ]]; }

# ---- setup ----

if [[ ! -x "$s3db" ]]; then
  log "building $s3db"
  S3DB_BUILD_DIR=$build_dir "$repo_root/scripts/build.sh" s3db_cli >&2
fi
work=${S3DB_RELIABILITY_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/s3db-reliability.XXXXXX")}
mkdir -p "$work/logs"
run_id=$(date +%s)$$
started_services=false
run_pids=()      # s3db run processes still running
helper_pids=()   # samplers, drains, receivers, writers
mounted=""

cleanup() {
  local pid
  for pid in "${run_pids[@]}" "${helper_pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  if [[ -n "$mounted" ]]; then umount -l "$mounted" 2>/dev/null || true; fi
  if $started_services; then "$services" stop >/dev/null 2>&1 || true; fi
  if $keep; then log "work folder kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! "$services" status >/dev/null 2>&1; then
  started_services=true
  "$services" start >/dev/null
fi
eval "$("$services" env)"
# The state file of scripts/test-services.sh (same default path as that script computes).
services_state=${S3DB_TEST_SERVICES_STATE:-}
if [[ -z "$services_state" ]]; then
  repo_hash=$(printf '%s' "$repo_root" | sha256sum | cut -c1-12)
  services_state="${TMPDIR:-/tmp}/s3db-test-services.$repo_hash.state"
fi
services_tmp=$(awk '$1 == "tmp" { print $2 }' "$services_state")
if [[ -z "$services_tmp" ]]; then
  log "cannot read the test servers' temporary folder from $services_state"
  exit 1
fi
hook_log="$services_tmp/webhook-requests.jsonl"
pg_url=${S3DB_TEST_PG}
pg_host_port=${pg_url#postgresql://postgres@}
pg_host_port=${pg_host_port%%/*}
# The test PostgreSQL trusts every connection, so a password is accepted and ignored: it is
# configured only to prove that it never shows up anywhere.
pg_secret="pg-Secret-${run_id}"
pg_with_password="postgresql://postgres:${pg_secret}@${pg_host_port}/testdb"
psql_cmd=(psql -h "${pg_host_port%%:*}" -p "${pg_host_port##*:}" -U postgres -d testdb -qAt)
s3_base=${S3DB_TEST_S3_URL}  # http://S3RVER:S3RVER@127.0.0.1:PORT/s3db-test

# The secrets configured anywhere in the run; the security test greps every output for them.
hook_token="tok-Hook-${run_id}"
hook_signing="whsec_$(printf 'signing-secret-%s' "$run_id" | base64 -w0)"
hook_password="basic-Pass-${run_id}"
sqs_secret="sqs-Secret-${run_id}"
secrets=("$pg_secret" "$hook_token" "$hook_signing" "${hook_signing#whsec_}" "$hook_password"
         "$sqs_secret" "S3RVER:S3RVER")
export REL_PG="$pg_with_password" REL_HOOK_TOKEN="$hook_token" REL_HOOK_SIGNING="$hook_signing"
export REL_SQS_SECRET="$sqs_secret" REL_PG_SECRET="$pg_secret" REL_HOOK_PASSWORD="$hook_password"

# ---- results ----

rows=()
failed=false
# add_row TEST RUNS CHANGES LOST DUPLICATED DEAD_LETTERED MAX_RSS_KB RESULT [NOTE]
add_row() {
  local rss=$7
  [[ "$rss" =~ ^[0-9]+$ ]] && rss="$((rss / 1024)) MiB"
  rows+=("| $1 | $2 | $3 | $4 | $5 | $6 | $rss | $8 |")
  [[ "$8" == PASS* || "$8" == SKIP* ]] || failed=true
  if [[ -n "${9:-}" ]]; then notes+=("$1: $9"); fi
  log "$1: $8${9:+ ($9)}"
}
notes=()

# ---- s3db run ----

# start_run NAME CONFIG: starts `s3db run` in the background; sets run_pid and run_url.
start_run() {
  local name=$1 config=$2 state lock deadline
  state=$(dirname "$config")/state
  lock="$state/s3db-cli.lock"
  "$s3db" -c "$config" --log-level info run --listen 127.0.0.1:0 \
    >>"$work/logs/$name.run.out" 2>>"$work/logs/$name.run.err" &
  run_pid=$!
  run_pids+=("$run_pid")
  echo "$run_pid" >"$(dirname "$config")/run.pid"
  deadline=$((SECONDS + 60))
  # The lock names the pid first and the URL once the port is bound: wait for both.
  until [[ -f "$lock" ]] &&
        jq -e --argjson p "$run_pid" '.pid == $p and (.url | type) == "string"' "$lock" \
          >/dev/null 2>&1; do
    if ! kill -0 "$run_pid" 2>/dev/null; then
      log "$name: s3db run exited at start; its log ends with:"
      tail -n 5 "$work/logs/$name.run.err" >&2
      return 1
    fi
    ((SECONDS < deadline)) || { log "$name: s3db run did not start in 60 s"; return 1; }
    sleep 0.05
  done
  run_url=$(jq -r .url "$lock")
}

forget_pid() {  # forget_pid PID: drop it from run_pids
  local pid kept=()
  for pid in "${run_pids[@]}"; do [[ "$pid" == "$1" ]] || kept+=("$pid"); done
  run_pids=("${kept[@]}")
}

stop_run() {  # stop_run PID: SIGTERM (graceful), wait
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget_pid "$1"
}

kill_run() {  # kill_run PID: SIGKILL, wait
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget_pid "$1"
}

# wait_idle URL SECONDS: until every replicator's checkpoint reached the head.
wait_idle() {
  local url=$1 deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)); do
    if curl -sf --max-time 5 "$url/stats" |
         jq -e 'length > 0 and all(.[]; .lagChanges == 0 and .checkpoint >= .head)' \
           >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  log "replication did not catch up within $2 s ($url):"
  curl -sS --max-time 5 "$url/stats" | jq -c '.[] | {id, state, lagChanges, lastError}' >&2 || true
  if command -v gdb >/dev/null && [[ -n "${run_pid:-}" ]]; then
    gdb -p "$run_pid" -batch -ex "thread apply all bt" >"$work/logs/stuck-$run_pid.txt" 2>&1 || true
    log "thread stacks of $run_pid in $work/logs/stuck-$run_pid.txt"
  fi
  return 1
}

# snapshot NAME URL: keeps /metrics, /health and /stats of a running service (the security
# test greps them), and prints the total number of dead letters.
snapshot() {
  local name=$1 url=$2
  curl -s --max-time 5 "$url/metrics" >>"$work/logs/$name.metrics.txt" || true
  curl -s --max-time 5 "$url/health" >>"$work/logs/$name.health.json" || true
  { curl -s --max-time 5 "$url/stats" || true; } | tee -a "$work/logs/$name.stats.json" |
    jq '[.[].deadLetterCount] | add // 0' 2>/dev/null || echo "?"
}

# sampler PIDFILE OUT INTERVAL: every INTERVAL s appends "elapsed_s,rss_kb,fds,anon_kb" of the
# process named in PIDFILE (it changes on restarts) to OUT. rss: VmRSS; anon: RssAnon, the heap
# and stacks without the mapped binary and libraries.
sampler() {
  local pidfile=$1 out=$2 interval=$3 begin=$SECONDS pid rss anon fds
  echo "elapsed_s,rss_kb,fds,anon_kb" >"$out"
  while :; do
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [[ -n "$pid" && -r /proc/$pid/status ]]; then
      read -r rss anon < <(awk '/^VmRSS:/ { r = $2 } /^RssAnon:/ { a = $2 }
                                END { print r, a }' "/proc/$pid/status" 2>/dev/null || true)
      fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
      [[ -n "$rss" ]] && echo "$((SECONDS - begin)),$rss,$fds,${anon:-0}" >>"$out"
    fi
    sleep "$interval"
  done
}

max_rss() { awk -F, 'NR > 1 && $2 > m { m = $2 } END { print m + 0 }' "$1"; }

# rss_trend CSV SECONDS: judges the RSS and fd samples of a CSV written by sampler over the
# first SECONDS s (see test_soak); prints "ok|bad rss A->B MiB, slope S MiB/min, fds F->G".
rss_trend() {
  awk -F, -v seconds="$2" 'function median(list, count,   i, j, swap) {
        for (i = 2; i <= count; i++) {
          for (j = i; j > 1 && list[j - 1] > list[j]; j--) {
            swap = list[j]; list[j] = list[j - 1]; list[j - 1] = swap
          }
        }
        return count ? list[int((count + 1) / 2)] : 0
      }
    NR > 1 && $1 <= seconds {
      t = $1; r = $2 / 1024
      if (t >= seconds / 3 && t < 2 * seconds / 3) { if (r > mid) mid = r; middle[++nm] = $3 }
      if (t >= 2 * seconds / 3) { if (r > end) end = r; last[++nl] = $3 }
      if (t >= seconds / 2) { n++; sx += t; sy += r; sxx += t * t; sxy += t * r }
    }
    END {
      slope = (n > 1 && n * sxx - sx * sx > 0) ? (n * sxy - sx * sy) / (n * sxx - sx * sx) * 60 : 0
      fm = median(middle, nm); fl = median(last, nl)
      if (seconds >= 300) {
        ok = (end <= mid * 1.05 + 2) && (slope <= 0.25)
        short = ""
      } else {
        ok = (end <= mid * 1.25 + 8)
        short = " (short run: flatness not judged)"
      }
      ok = ok && nm > 0 && nl > 0 && (fl <= fm + 8)
      printf "%s rss %.1f->%.1f MiB, slope %+.2f MiB/min%s, fds %d->%d", ok ? "ok" : "bad", mid,
             end, slope, short, fm, fl
    }' "$1"
}

dump_resource_list() {  # dump_resource_list CONNECTION DIR: DIR/<resource>.jsonl per resource
  mkdir -p "$2"
  local r
  for r in items orders; do "$s3db" --connection "$1" list "$r" >"$2/$r.jsonl"; done
}

dump_pg() {  # dump_pg SCHEMA DIR
  mkdir -p "$2"
  local r
  for r in items orders; do
    "${psql_cmd[@]}" -c "SELECT row_to_json(t) FROM \"$1\".\"$r\" t" >"$2/$r.jsonl" 2>/dev/null ||
      : >"$2/$r.jsonl"
  done
}

resources_yaml='resources:
  items: { attributes: { n: number, v: string, tag: string } }
  orders: { attributes: { n: number, v: string, tag: string } }'

webhook_replicator() {  # webhook_replicator ID PATH
  cat <<EOF
    - driver: webhook
      id: $1
      resources: [items, orders]
      config:
        url: $S3DB_TEST_WEBHOOK_URL$2
        auth: { type: bearer, token: "\${REL_HOOK_TOKEN}" }
        signingSecret: "\${REL_HOOK_SIGNING}"
        timeout: 2000
EOF
}

# ---- crash loop ----

test_crash() {
  local dir="$work/crash" schema="rel_crash_$run_id" hook_path="/rel/crash-$run_id"
  mkdir -p "$dir"
  cat >"$dir/config.yaml" <<EOF
connection: file://$dir/source
stateDir: $dir/state
$resources_yaml
replicator:
  batchSize: 100
  replicators:
    - driver: s3db
      id: mirror
      resources: [items, orders]
      config: { connectionString: "file://$dir/target" }
    - driver: jsonl
      id: jsonl
      resources: [items, orders]
      config: { outputPath: $dir/jsonl, rotateBy: null }
    - driver: postgresql
      id: pg
      resources: [items, orders]
      config: { connectionString: "\${REL_PG}", schema: $schema }
$(webhook_replicator hook "$hook_path")
EOF
  start_run crash "$dir/config.yaml" || { add_row "crash loop" 0 0 - - - - FAIL "no start"; return; }
  sampler "$dir/run.pid" "$dir/rss.csv" 1 &
  local sampler_pid=$!
  helper_pids+=("$sampler_pid")
  node "$rel/writer.mjs" --lock "$dir/state/s3db-cli.lock" --resources items,orders \
    --changes "$crash_changes" --workers 8 --journal "$dir/journal.jsonl" \
    >"$dir/writer.out" 2>"$work/logs/crash.writer.err" &
  local writer_pid=$! kills=0 restarts_ok=true
  helper_pids+=("$writer_pid")
  while ((kills < crash_kills)); do
    sleep "$(awk -v m="$crash_max_gap" -v r="$RANDOM" 'BEGIN { printf "%.2f", 0.3 + (r / 32767) * m }')"
    kill_run "$run_pid"
    kills=$((kills + 1))
    ((RANDOM % 2)) && sleep 0.5  # sometimes restart at once, sometimes a little later
    start_run crash "$dir/config.yaml" || { restarts_ok=false; break; }
  done
  local writer_status=0
  wait "$writer_pid" || writer_status=$?
  local dead=0 idle=true
  wait_idle "$run_url" 300 || idle=false
  dead=$(snapshot crash "$run_url")
  stop_run "$run_pid"
  kill "$sampler_pid" 2>/dev/null || true

  dump_resource_list "file://$dir/source" "$dir/dump/source"
  dump_resource_list "file://$dir/target" "$dir/dump/mirror"
  dump_pg "$schema" "$dir/dump/pg"
  local result
  result=$(node "$rel/verify.mjs" --journal "$dir/journal.jsonl" --resources items,orders \
             --source "$dir/dump/source" --state "mirror=$dir/dump/mirror:_sourceRev" \
             --state "pg=$dir/dump/pg:_s3db_rev" --stream "jsonl=jsonl:$dir/jsonl" \
             --stream "hook=webhook:$hook_log:$hook_path" 2>"$dir/verify.err") || true
  echo "$result" >"$dir/verify.json"
  local ok changes lost dups repeated verdict=PASS note=""
  ok=$(jq -r '.ok // false' <<<"$result")
  changes=$(jq -r '.changes // 0' <<<"$result")
  lost=$(jq -r '.lost // "?"' <<<"$result")
  dups=$(jq -r '[.targets[] | .duplicated // 0] | map(tostring) | join("/")' <<<"$result")
  repeated=$(jq -r '.deletesRepeated' "$dir/writer.out" 2>/dev/null || echo "?")
  note="duplicates jsonl/hook: $(jq -r '"\(.targets.jsonl.duplicated)/\(.targets.hook.duplicated)"' \
          <<<"$result"), out of order: $(jq -r .outOfOrder <<<"$result")"
  note+=", logged but unacknowledged: $(jq -r .extra <<<"$result"), deletes repeated: $repeated"
  if [[ "$ok" != true || "$writer_status" != 0 || "$dead" != 0 ]] || ! $idle || ! $restarts_ok; then
    verdict=FAIL
    note+="; writer exit $writer_status, idle $idle, restarts $restarts_ok"
    sed 's/^/  /' "$dir/verify.err" | head -n 10 >&2
  fi
  add_row "crash loop (SIGKILL)" "$kills kills" "$changes" "$lost" \
    "$(jq -r '.duplicated' <<<"$result")" "$dead" "$(max_rss "$dir/rss.csv")" "$verdict" "$note"
}

# ---- target outages ----

test_outage() {
  local dir="$work/outage" schema="rel_outage_$run_id" hook_path="/rel/outage-$run_id"
  mkdir -p "$dir"
  local queue_url
  queue_url=$(node "$rel/sqs.mjs" create "$S3DB_TEST_SQS_ENDPOINT" "rel-outage-$run_id.fifo")
  cat >"$dir/config.yaml" <<EOF
connection: file://$dir/source
stateDir: $dir/state
$resources_yaml
replicator:
  batchSize: 100
  maxBackoffMs: 1000
  replicators:
    - driver: postgresql
      id: pg
      resources: [items, orders]
      config: { connectionString: "\${REL_PG}", schema: $schema, connectTimeoutMs: 2000 }
    - driver: s3db
      id: s3
      resources: [items, orders]
      config: { connectionString: "$s3_base/rel-outage-$run_id" }
    - driver: sqs
      id: sqs
      resources: [items, orders]
      config:
        endpoint: $S3DB_TEST_SQS_ENDPOINT
        region: us-east-1
        credentials: { accessKeyId: AKIDRELIABILITY, secretAccessKey: "\${REL_SQS_SECRET}" }
        queueUrl: $queue_url
$(webhook_replicator hook "$hook_path")
EOF
  start_run outage "$dir/config.yaml" || { add_row "outages" 0 0 - - - - FAIL "no start"; return; }
  sampler "$dir/run.pid" "$dir/rss.csv" 1 &
  local sampler_pid=$!
  helper_pids+=("$sampler_pid")
  node "$rel/sqs.mjs" drain "$S3DB_TEST_SQS_ENDPOINT" "$queue_url" "$dir/sqs.jsonl" &
  local drain_pid=$!
  helper_pids+=("$drain_pid")

  local server replicator catchup=() phase=0
  local phase_seconds=$((outage_before + outage_seconds + outage_after))
  for server in postgres s3 sqs webhook; do
    case "$server" in postgres) replicator=pg ;; s3) replicator=s3 ;; sqs) replicator=sqs ;;
                      webhook) replicator=hook ;; esac
    phase=$((phase + 1))
    node "$rel/writer.mjs" --lock "$dir/state/s3db-cli.lock" --resources items,orders \
      --seconds "$phase_seconds" --workers 8 --rate 10 --seed "$phase" \
      --journal "$dir/journal-$server.jsonl" >"$dir/writer-$server.out" \
      2>>"$work/logs/outage.writer.err" &
    local writer_pid=$!
    sleep "$outage_before"
    if [[ "$server" == sqs ]]; then
      # local-aws-sqs keeps its queues and messages in memory only: a restart would lose
      # messages it had accepted, so the SQS outage freezes the process instead.
      local sqs_pid
      sqs_pid=$(awk '$1 == "pid" && $2 == "sqs" { print $3 }' "$services_state")
      kill -STOP "$sqs_pid"
      sleep "$outage_seconds"
      kill -CONT "$sqs_pid"
    else
      "$services" stop-one "$server"
      sleep "$outage_seconds"
      "$services" start-one "$server"
    fi
    local back=$SECONDS back_ms lag=1 waited
    back_ms=$(date +%s%3N)
    # Catch-up: from the restart until this replicator has no backlog (the writer still runs).
    while ((SECONDS - back < 120)); do
      lag=$(curl -sf --max-time 5 "$run_url/replicators/$replicator/stats" | jq -r .lagChanges) ||
        lag=1
      [[ "$lag" == 0 ]] && break
      sleep 0.1
    done
    waited=$(awk -v ms=$(($(date +%s%3N) - back_ms)) 'BEGIN { printf "%.1f", ms / 1000 }')
    [[ "$lag" == 0 ]] && catchup+=("$server ${waited}s") || catchup+=("$server >120s")
    wait "$writer_pid" || true
  done
  cat "$dir"/journal-*.jsonl | grep -v '"summary"' >"$dir/journal.jsonl"
  local idle=true dead
  wait_idle "$run_url" 300 || idle=false
  dead=$(snapshot outage "$run_url")
  stop_run "$run_pid"
  kill -TERM "$drain_pid" 2>/dev/null || true
  wait "$drain_pid" 2>/dev/null || true
  kill "$sampler_pid" 2>/dev/null || true

  dump_resource_list "file://$dir/source" "$dir/dump/source"
  dump_resource_list "$s3_base/rel-outage-$run_id" "$dir/dump/s3"
  dump_pg "$schema" "$dir/dump/pg"
  local result
  result=$(node "$rel/verify.mjs" --journal "$dir/journal.jsonl" --resources items,orders \
             --source "$dir/dump/source" --state "s3=$dir/dump/s3:_sourceRev" \
             --state "pg=$dir/dump/pg:_s3db_rev" --stream "sqs=sqs:$dir/sqs.jsonl" \
             --stream "hook=webhook:$hook_log:$hook_path" 2>"$dir/verify.err") || true
  echo "$result" >"$dir/verify.json"
  local verdict=PASS
  if [[ "$(jq -r '.ok // false' <<<"$result")" != true || "$dead" != 0 ]] || ! $idle; then
    verdict=FAIL
    sed 's/^/  /' "$dir/verify.err" | head -n 10 >&2
  fi
  local servers=4 target
  for target in pg s3 sqs hook; do
    log "outage: $target $(jq -c ".targets.$target" <<<"$result")"
  done
  add_row "target outages (${outage_seconds} s each)" "$servers servers" \
    "$(jq -r '.changes // 0' <<<"$result")" "$(jq -r '.lost // "?"' <<<"$result")" \
    "$(jq -r '.duplicated // "?"' <<<"$result")" "$dead" "$(max_rss "$dir/rss.csv")" "$verdict" \
    "catch-up after restart: ${catchup[*]}"
}

# ---- disk full on the state directory ----

test_diskfull() {
  local dir="$work/diskfull"
  mkdir -p "$dir/state"
  if ! mount -t tmpfs -o size=16m tmpfs "$dir/state" 2>"$dir/mount.err"; then
    add_row "disk full (state dir)" 0 0 - - - - "SKIP" \
      "cannot mount a tmpfs here ($(head -c 120 "$dir/mount.err")); run as root"
    return
  fi
  mounted="$dir/state"
  cat >"$dir/config.yaml" <<EOF
connection: file://$dir/source
stateDir: $dir/state
$resources_yaml
replicator:
  batchSize: 100
  maxBackoffMs: 1000
  replicators:
    - driver: s3db
      id: mirror
      resources: [items, orders]
      config: { connectionString: "file://$dir/target" }
    - driver: jsonl
      id: jsonl
      resources: [items, orders]
      config: { outputPath: $dir/jsonl, rotateBy: null }
EOF
  start_run diskfull "$dir/config.yaml" || { add_row "disk full" 0 0 - - - - FAIL "no start"; return; }
  sampler "$dir/run.pid" "$dir/rss.csv" 1 &
  local sampler_pid=$!
  helper_pids+=("$sampler_pid")
  node "$rel/writer.mjs" --lock "$dir/state/s3db-cli.lock" --resources items,orders \
    --seconds 14 --workers 4 --rate 20 --journal "$dir/journal.jsonl" \
    --errors "$dir/writer-errors.json" >"$dir/writer.out" 2>>"$work/logs/diskfull.writer.err" &
  local writer_pid=$!
  sleep 3
  # Fill the file system to the last block, hold it full for 5 s, then free it.
  dd if=/dev/zero of="$dir/state/filler" bs=64k 2>/dev/null || true
  local fill_start=$SECONDS
  sleep 5
  local failed_during
  failed_during=$(curl -s --max-time 5 "$run_url/health" | jq -r .status 2>/dev/null || echo "?")
  rm -f "$dir/state/filler"
  local writer_status=0
  wait "$writer_pid" || writer_status=$?
  local idle=true dead alive=true
  kill -0 "$run_pid" 2>/dev/null || alive=false
  if $alive; then
    wait_idle "$run_url" 120 || idle=false
    dead=$(snapshot diskfull "$run_url")
    stop_run "$run_pid"
  else
    idle=false dead="?"
    log "disk full: s3db run died; its log ends with:"
    tail -n 5 "$work/logs/diskfull.run.err" >&2
  fi
  kill "$sampler_pid" 2>/dev/null || true
  cp "$dir/rss.csv" "$work/diskfull-rss.csv"
  umount "$dir/state" 2>/dev/null || umount -l "$dir/state"
  mounted=""

  dump_resource_list "file://$dir/source" "$dir/dump/source"
  dump_resource_list "file://$dir/target" "$dir/dump/mirror"
  local result
  result=$(node "$rel/verify.mjs" --journal "$dir/journal.jsonl" --resources items,orders \
             --source "$dir/dump/source" --state "mirror=$dir/dump/mirror:_sourceRev" \
             2>"$dir/verify.err") || true
  echo "$result" >"$dir/verify.json"
  # The writes refused while the disk was full must say so.
  local failures clear
  failures=$(jq -r '.failedAttempts' "$dir/writer.out" 2>/dev/null || echo 0)
  clear=$(jq -r 'keys | map(select(test("space|full"; "i"))) | length' \
            "$dir/writer-errors.json" 2>/dev/null || echo 0)
  local verdict=PASS note="refused attempts: $failures, health while full: $failed_during"
  note+=", first error: $(jq -r 'keys[0] // "none"' "$dir/writer-errors.json" 2>/dev/null |
                         head -c 160)"
  if [[ "$(jq -r '.ok // false' <<<"$result")" != true || "$writer_status" != 0 ||
        "$dead" != 0 || "$failures" == 0 || "$clear" == 0 ]] || ! $idle || ! $alive; then
    verdict=FAIL
    sed 's/^/  /' "$dir/verify.err" | head -n 10 >&2
  fi
  add_row "disk full (state dir, 16 MiB tmpfs)" 1 "$(jq -r '.changes // 0' <<<"$result")" \
    "$(jq -r '.lost // "?"' <<<"$result")" "$(jq -r '.duplicated // "?"' <<<"$result")" \
    "$dead" "$(max_rss "$work/diskfull-rss.csv")" "$verdict" "$note"
}

# ---- soak ----

test_soak() {
  local dir="$work/soak" schema="rel_soak_$run_id" hook_path="/rel/soak-$run_id"
  mkdir -p "$dir"
  local queue_url
  queue_url=$(node "$rel/sqs.mjs" create "$S3DB_TEST_SQS_ENDPOINT" "rel-soak-$run_id.fifo")
  cat >"$dir/config.yaml" <<EOF
connection: file://$dir/source
stateDir: $dir/state
$resources_yaml
replicator:
  batchSize: 100
  replicators:
    - driver: s3db
      id: mirror
      resources: [items, orders]
      config: { connectionString: "file://$dir/target" }
    - driver: s3db
      id: s3
      resources: [items, orders]
      config: { connectionString: "$s3_base/rel-soak-$run_id" }
    - driver: jsonl
      id: jsonl
      resources: [items, orders]
      config: { outputPath: $dir/files, rotateBy: null }
    - driver: csv
      id: csv
      resources: [items, orders]
      config: { outputPath: $dir/files, rotateBy: null }
    - driver: parquet
      id: parquet
      resources: [items, orders]
      config: { outputPath: $dir/files, rotateBy: null }
    - driver: postgresql
      id: pg
      resources: [items, orders]
      config: { connectionString: "\${REL_PG}", schema: $schema }
    - driver: sqs
      id: sqs
      resources: [items, orders]
      config:
        endpoint: $S3DB_TEST_SQS_ENDPOINT
        region: us-east-1
        credentials: { accessKeyId: AKIDRELIABILITY, secretAccessKey: "\${REL_SQS_SECRET}" }
        queueUrl: $queue_url
$(webhook_replicator hook "$hook_path")
EOF
  start_run soak "$dir/config.yaml" || { add_row "soak" 0 0 - - - - FAIL "no start"; return; }
  sampler "$dir/run.pid" "$dir/rss.csv" "$soak_sample" &
  local sampler_pid=$!
  helper_pids+=("$sampler_pid")
  node "$rel/sqs.mjs" drain "$S3DB_TEST_SQS_ENDPOINT" "$queue_url" "$dir/sqs.jsonl" &
  local drain_pid=$!
  helper_pids+=("$drain_pid")
  local writer_status=0
  node "$rel/writer.mjs" --lock "$dir/state/s3db-cli.lock" --resources items,orders \
    --seconds "$soak_seconds" --workers "$soak_writers" --rate "$soak_rate" \
    --journal "$dir/journal.jsonl" --stats "$dir/latency.csv" >"$dir/writer.out" \
    2>>"$work/logs/soak.writer.err" || writer_status=$?
  local idle=true dead
  wait_idle "$run_url" 300 || idle=false
  dead=$(snapshot soak "$run_url")
  stop_run "$run_pid"
  kill -TERM "$drain_pid" 2>/dev/null || true
  wait "$drain_pid" 2>/dev/null || true
  kill "$sampler_pid" 2>/dev/null || true

  dump_resource_list "file://$dir/source" "$dir/dump/source"
  dump_resource_list "file://$dir/target" "$dir/dump/mirror"
  dump_resource_list "$s3_base/rel-soak-$run_id" "$dir/dump/s3"
  dump_pg "$schema" "$dir/dump/pg"
  local result
  result=$(node "$rel/verify.mjs" --journal "$dir/journal.jsonl" --resources items,orders \
             --source "$dir/dump/source" --state "mirror=$dir/dump/mirror:_sourceRev" \
             --state "s3=$dir/dump/s3:_sourceRev" --state "pg=$dir/dump/pg:_s3db_rev" \
             --stream "jsonl=jsonl:$dir/files" --stream "sqs=sqs:$dir/sqs.jsonl" \
             --stream "hook=webhook:$hook_log:$hook_path" 2>"$dir/verify.err") || true
  echo "$result" >"$dir/verify.json"

  # Flat RSS, judged on the samples of the fixed-rate phase only (while the writer writes),
  # in thirds of it: the first third is warm-up (the change feed fills its 10,000 lines, the
  # file drivers their first row group, the dispatchers a minute of delivered revisions). Pass when the peak of the last third is at most
  # 2 MiB + 5 % above the peak of the middle third, and the least-squares slope of RSS over
  # the second half is at most 0.25 MiB per minute (a leak of 100 B per change at 80 changes/s
  # is 0.46 MiB/min). A run shorter than 5 minutes has not finished warming up, so there only
  # gross growth fails (25 % + 8 MiB) and the note says so. No fd growth: the median fd count
  # of the last third is at most 8 above the middle third's (medians, because sockets that
  # clients open and close make single samples jump by 10 or more). Stable p99: the worst 5 s
  # window p99 of the second half is within 3x + 50 ms of the first half's.
  local trend
  trend=$(rss_trend "$dir/rss.csv" "$soak_seconds")
  local latency
  latency=$(awk -F, 'NR > 1 { p[++n] = $4 }
    END {
      h = int(n / 2); if (h < 1) h = 1
      for (i = 1; i <= n; i++) { if (i <= h) { if (p[i] > a) a = p[i] } else if (p[i] > b) b = p[i] }
      ok = (b <= 3 * a + 50)
      printf "%s p99 %.1f->%.1f ms", ok ? "ok" : "bad", a, b
    }' "$dir/latency.csv")
  cp "$dir/rss.csv" "$work/soak-rss.csv"
  cp "$dir/latency.csv" "$work/soak-latency.csv"
  if command -v gnuplot >/dev/null; then
    # RSS, its anonymous part (heap, stacks) and the fd count over time; the dashed lines are
    # the thirds that the flatness check compares.
    gnuplot -e "set terminal pngcairo size 900,500 noenhanced; set output '$work/soak-rss.png';
      set datafile separator ','; set xlabel 'seconds'; set ylabel 'MiB'; set y2label 'fds';
      set y2tics; set yrange [0:*]; set key bottom right;
      set title 'soak: $soak_writers writers x $soak_rate/s, $soak_seconds s, 8 drivers';
      set arrow from $((soak_seconds / 3)), graph 0 rto 0, graph 1 nohead dt 2;
      set arrow from $((2 * soak_seconds / 3)), graph 0 rto 0, graph 1 nohead dt 2;
      plot '$work/soak-rss.csv' every ::1 using 1:(\$2/1024) with lines title 'RSS',
      '' every ::1 using 1:(\$4/1024) with lines title 'RSS anonymous',
      '' every ::1 using 1:3 axes x1y2 with lines title 'open fds'" 2>/dev/null || true
    gnuplot -e "set terminal pngcairo size 900,500 noenhanced;
      set output '$work/soak-latency.png'; set datafile separator ',';
      set xlabel 'seconds'; set ylabel 'ms'; set yrange [0:*];
      set title 'soak: write latency per 5 s window';
      plot '$work/soak-latency.csv' every ::1 using 1:4 with lines title 'p99',
      '' every ::1 using 1:3 with lines title 'p50'" 2>/dev/null || true
  fi
  local verdict=PASS
  if [[ "$(jq -r '.ok // false' <<<"$result")" != true || "$writer_status" != 0 ||
        "$dead" != 0 || "$trend" != ok* || "$latency" != ok* ]] || ! $idle; then
    verdict=FAIL
    sed 's/^/  /' "$dir/verify.err" | head -n 10 >&2
  fi
  add_row "soak ($soak_writers writers x $soak_rate/s, ${soak_seconds} s, 8 drivers)" 1 \
    "$(jq -r '.changes // 0' <<<"$result")" "$(jq -r '.lost // "?"' <<<"$result")" \
    "$(jq -r '.duplicated // "?"' <<<"$result")" "$dead" "$(max_rss "$dir/rss.csv")" \
    "$verdict" "${trend#* }, ${latency#* }"
}

# ---- security ----

test_security() {
  local dir="$work/security"
  mkdir -p "$dir"
  local status=0
  bash "$rel/security.sh" "$s3db" "$dir" "$work" "${secrets[@]}" >"$dir/out.txt" \
    2>"$work/logs/security.err" || status=$?
  local checks passed
  checks=$(grep -c '^check ' "$dir/out.txt" || true)
  passed=$(grep -c '^check .*: ok' "$dir/out.txt" || true)
  grep '^check ' "$dir/out.txt" | grep -v ': ok' | sed 's/^/  /' >&2 || true
  add_row "security (secrets, TLS, Lua sandbox, paths)" "$checks checks" - - - - - \
    "$([[ $status == 0 && "$checks" -gt 0 ]] && echo PASS || echo FAIL)" "$passed of $checks passed"
}

began=$SECONDS
wants crash && test_crash
wants outage && test_outage
wants diskfull && test_diskfull
wants soak && test_soak
wants security && test_security
elapsed=$((SECONDS - began))

{
  echo
  echo "s3db reliability, $(date -u +%Y-%m-%d)," \
       "\`scripts/reliability.sh$($full && echo ' --full')${only_given:+ --only $only}\`" \
       "(${elapsed} s)"
  echo
  echo "| test | runs | changes | lost | duplicated | dead-lettered | max RSS | result |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  printf -- '- %s\n' "${notes[@]}"
} | tee "$work/summary.md"
$keep && log "summary, CSV and logs in $work"
if $failed; then exit 1; fi
