#!/usr/bin/env bash
# Starts and stops the servers that s3db's integration tests talk to, all on 127.0.0.1:
#
#   PostgreSQL 15     port 55432, database "testdb", user postgres, no password (trust)
#   S3 (s3-peer.js)   port 4568, bucket "s3db-test", key S3RVER / secret S3RVER, checks SigV4
#   SQS (sqs-local)   port 4576, no auth
#   webhook sink      port 18080 (see scripts/peers/webhook-sink.mjs for its control endpoints)
#
# Usage:
#   eval "$(scripts/test-services.sh start)"   start them all; prints the export lines below
#   scripts/test-services.sh env               print the export lines again
#   scripts/test-services.sh status            say what runs (exit 1 if not all of it)
#   scripts/test-services.sh stop              stop what `start` started (by PID); prints nothing
#   scripts/test-services.sh stop-one NAME     stop one of them (s3, sqs, webhook, postgres) ...
#   scripts/test-services.sh start-one NAME    ... and start it again (same port, data, log)
#
# Exported variables: S3DB_TEST_S3_URL, S3DB_TEST_SQS_ENDPOINT, S3DB_TEST_WEBHOOK_URL,
# S3DB_TEST_PG, S3DB_PEERS_DIR.
# Ports can be changed with S3DB_TEST_PG_PORT, S3DB_TEST_S3_PORT, S3DB_TEST_SQS_PORT and
# S3DB_TEST_WEBHOOK_PORT (set them for `env` and `stop` too). `start` keeps the PIDs and its
# temporary folder in a state file (S3DB_TEST_SERVICES_STATE overrides where), so `stop` ends
# only those processes. Needs: scripts/install-deps.sh --test-peers, run as root (PostgreSQL is
# started as the postgres user).
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
peers_dir="$repo_root/scripts/peers"
pg_bin=/usr/lib/postgresql/15/bin

pg_port=${S3DB_TEST_PG_PORT:-55432}
s3_port=${S3DB_TEST_S3_PORT:-4568}
sqs_port=${S3DB_TEST_SQS_PORT:-4576}
webhook_port=${S3DB_TEST_WEBHOOK_PORT:-18080}
s3_bucket=s3db-test
ready_timeout_seconds=30

repo_id=$(printf '%s' "$repo_root" | sha256sum | cut -c1-12)
state_file=${S3DB_TEST_SERVICES_STATE:-${TMPDIR:-/tmp}/s3db-test-services.$repo_id.state}

log() { echo "test-services: $*" >&2; }

print_env() {
  cat <<EOF
export S3DB_TEST_S3_URL=http://S3RVER:S3RVER@127.0.0.1:$s3_port/$s3_bucket
export S3DB_TEST_SQS_ENDPOINT=http://127.0.0.1:$sqs_port
export S3DB_TEST_WEBHOOK_URL=http://127.0.0.1:$webhook_port
export S3DB_TEST_PG=postgresql://postgres@127.0.0.1:$pg_port/testdb
export S3DB_PEERS_DIR=$peers_dir
EOF
}

# wait_until SECONDS DESCRIPTION COMMAND...: runs COMMAND every 0.1 s until it succeeds.
wait_until() {
  local seconds=$1 description=$2
  local deadline=$((SECONDS + seconds))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "timed out after ${seconds}s waiting for $description"
      return 1
    fi
    sleep 0.1
  done
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
http_answers() { curl -s -o /dev/null --max-time 2 "$1"; }

# The state file is a list of "name value" lines: tmp DIR, pid NAME PID, pgdata DIR.
state_value() { awk -v key="$1" '$1 == key { print $2 }' "$state_file" 2>/dev/null; }
state_pids() { awk '$1 == "pid" { print $2 " " $3 }' "$state_file" 2>/dev/null; }

# A PID is ours only while its command line still names the script we started (PIDs get reused).
pid_is_ours() {
  local pid=$1 script=$2
  [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$script"
}

script_of() {  # the file a peer's process runs, to recognise it by its command line
  case "$1" in
    s3) echo s3-peer.js ;;
    sqs) echo sqs-local.mjs ;;
    webhook) echo webhook-sink.mjs ;;
    postgres) state_value pgdata ;;
  esac
}

start_node_peer() {  # start_node_peer NAME [VAR=VALUE...]: runs the peer NAME in the background
  local name=$1 tmp
  shift
  tmp=$(state_value tmp)
  # No inherited stdin/stdout: a caller's $(...) must not wait for the server to exit.
  env "$@" node "$peers_dir/$(script_of "$name")" </dev/null >"$tmp/$name.log" 2>&1 &
  echo "pid $name $!" >>"$state_file"
}

pg_ctl_start() {  # pg_ctl_start PG_ROOT: starts the cluster in PG_ROOT/data and records its PID
  local pg_root=$1 started=true
  runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pg_root/data" -l "$pg_root/server.log" \
    -w -t "$ready_timeout_seconds" -o "-p $pg_port -k $pg_root \
    -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
    -c full_page_writes=off" start >/dev/null 2>&1 || started=false
  # Record the postmaster even when pg_ctl gave up waiting, so that `stop` can end it.
  if [[ -f "$pg_root/data/postmaster.pid" ]]; then
    echo "pid postgres $(head -n 1 "$pg_root/data/postmaster.pid")" >>"$state_file"
  fi
  if ! $started; then
    log "PostgreSQL did not start (its log follows)"
    return 1
  fi
  wait_until "$ready_timeout_seconds" "PostgreSQL on port $pg_port" \
    "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port"
}

start_postgres() {
  local tmp pg_root
  tmp=$(state_value tmp)
  pg_root="$tmp/pg"
  # initdb refuses to run as root; the postgres user must be able to enter the temp folder.
  chmod 755 "$tmp" && mkdir -p "$pg_root" && chown postgres:postgres "$pg_root" || return 1
  echo "pgdata $pg_root/data" >>"$state_file"
  if ! runuser -u postgres -- "$pg_bin/initdb" -D "$pg_root/data" -U postgres -A trust \
         --no-sync -E UTF8 --locale=C >"$pg_root/initdb.log" 2>&1; then
    log "initdb failed (its log follows)"
    return 1
  fi
  pg_ctl_start "$pg_root" || return 1
  psql -h 127.0.0.1 -p "$pg_port" -U postgres -v ON_ERROR_STOP=1 -qc 'CREATE DATABASE testdb' \
    >/dev/null
}

create_bucket() {
  local empty_sha256 status
  empty_sha256=$(printf '' | sha256sum | cut -d' ' -f1)
  # curl 7.88 signs with SigV4 but does not send x-amz-content-sha256, which s3rver requires.
  status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X PUT \
             --aws-sigv4 "aws:amz:us-east-1:s3" --user S3RVER:S3RVER \
             -H "x-amz-content-sha256: $empty_sha256" \
             "http://127.0.0.1:$s3_port/$s3_bucket")
  if [[ "$status" != 200 ]]; then
    log "creating bucket $s3_bucket answered HTTP $status"
    return 1
  fi
}

all_running() {
  [[ -f "$state_file" ]] || return 1
  local name pid count=0
  while read -r name pid; do
    pid_is_ours "$pid" "$(script_of "$name")" || return 1
    count=$((count + 1))
  done < <(state_pids)
  ((count == 4)) && "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port"
}

command_start() {
  if all_running; then
    log "already running (state in $state_file)"
    print_env
    return 0
  fi
  [[ -f "$state_file" ]] && command_stop  # leftovers of a start that died half-way

  if [[ ! -f "$peers_dir/node_modules/@20minutes/s3rver/package.json" ]]; then
    log "npm test peers are missing: run scripts/install-deps.sh --test-peers"
    return 1
  fi
  local port busy=()
  for port in "$pg_port" "$s3_port" "$sqs_port" "$webhook_port"; do
    port_in_use "$port" && busy+=("$port")
  done
  if ((${#busy[@]} > 0)); then
    log "port(s) ${busy[*]} on 127.0.0.1 already in use by another program; stop it or pick"
    log "other ports with S3DB_TEST_PG_PORT / _S3_PORT / _SQS_PORT / _WEBHOOK_PORT"
    return 1
  fi

  local tmp
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/s3db-test-services.XXXXXX")
  echo "tmp $tmp" >"$state_file"
  mkdir -p "$tmp/s3"

  # Any failure from here on stops what did start, so a failed start leaves nothing behind.
  if ! {
    start_node_peer s3 NODE_OPTIONS=--openssl-legacy-provider \
      S3_DIR="$tmp/s3" S3_PORT="$s3_port" &&
    start_node_peer sqs SQS_PORT="$sqs_port" &&
    start_node_peer webhook HOOK_PORT="$webhook_port" \
      HOOK_LOG="$tmp/webhook-requests.jsonl" &&
    start_postgres &&
    wait_until "$ready_timeout_seconds" "S3 peer on port $s3_port" \
      http_answers "http://127.0.0.1:$s3_port/" &&
    wait_until "$ready_timeout_seconds" "SQS peer on port $sqs_port" \
      http_answers "http://127.0.0.1:$sqs_port/" &&
    wait_until "$ready_timeout_seconds" "webhook sink on port $webhook_port" \
      curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$webhook_port/__health" &&
    create_bucket
  }; then
    log "start failed; logs:"
    tail -n 5 "$tmp"/*.log "$tmp"/pg/*.log >&2 2>/dev/null || true
    command_stop
    return 1
  fi
  log "PostgreSQL :$pg_port, S3 :$s3_port (bucket $s3_bucket), SQS :$sqs_port," \
      "webhook :$webhook_port are up; logs in $tmp"
  print_env
}

command_stop() {
  [[ -f "$state_file" ]] || return 0
  local name pid tmp
  local stopped=()
  # Node peers get SIGTERM; PostgreSQL gets SIGINT (its "fast" shutdown).
  while read -r name pid; do
    pid_is_ours "$pid" "$(script_of "$name")" || continue
    if [[ "$name" == postgres ]]; then
      kill -INT "$pid" 2>/dev/null && stopped+=("$pid")
    else
      kill -TERM "$pid" 2>/dev/null && stopped+=("$pid")
    fi
  done < <(state_pids)

  # Give them up to 10 s to exit, then SIGKILL whatever is left.
  local deadline=$((SECONDS + 10))
  for pid in "${stopped[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.05; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  done

  tmp=$(state_value tmp)
  [[ -n "$tmp" && -d "$tmp" && "$tmp" == *s3db-test-services.* ]] && rm -rf "$tmp"
  rm -f "$state_file"
}

# stop-one NAME / start-one NAME (s3, sqs, webhook, postgres): stop one server of a running set
# and start it again with the same port, data and log (for outage tests). S3 objects and
# PostgreSQL data survive; the SQS peer keeps its queues in memory, so they are gone.
command_stop_one() {
  local name=$1 pid
  pid=$(awk -v n="$name" '$1 == "pid" && $2 == n { print $3 }' "$state_file" 2>/dev/null)
  [[ -n "$pid" ]] || { log "$name is not running"; return 1; }
  if pid_is_ours "$pid" "$(script_of "$name")"; then
    if [[ "$name" == postgres ]]; then kill -INT "$pid"; else kill -TERM "$pid"; fi
    local deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.05; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  awk -v n="$name" '!($1 == "pid" && $2 == n)' "$state_file" >"$state_file.new" &&
    mv "$state_file.new" "$state_file"
}

command_start_one() {
  local name=$1 tmp
  tmp=$(state_value tmp)
  [[ -n "$tmp" ]] || { log "not running: use start"; return 1; }
  case "$name" in
    s3) start_node_peer s3 NODE_OPTIONS=--openssl-legacy-provider S3_DIR="$tmp/s3" \
          S3_PORT="$s3_port" &&
        wait_until "$ready_timeout_seconds" "S3 peer on port $s3_port" \
          http_answers "http://127.0.0.1:$s3_port/" ;;
    sqs) start_node_peer sqs SQS_PORT="$sqs_port" &&
         wait_until "$ready_timeout_seconds" "SQS peer on port $sqs_port" \
           http_answers "http://127.0.0.1:$sqs_port/" ;;
    webhook) start_node_peer webhook HOOK_PORT="$webhook_port" \
               HOOK_LOG="$tmp/webhook-requests.jsonl" &&
             wait_until "$ready_timeout_seconds" "webhook sink on port $webhook_port" \
               curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$webhook_port/__health" ;;
    postgres) pg_ctl_start "$tmp/pg" ;;
    *) log "unknown server '$name' (known: s3, sqs, webhook, postgres)"; return 2 ;;
  esac
}

command_status() {
  if all_running; then
    echo "running: PostgreSQL :$pg_port, S3 :$s3_port, SQS :$sqs_port, webhook :$webhook_port"
    echo "state: $state_file"
  else
    echo "not running (or only partly; 'stop' cleans up)"
    return 1
  fi
}

case "${1:-}" in
  start) command_start ;;
  stop) command_stop ;;
  env) print_env ;;
  status) command_status ;;
  stop-one) command_stop_one "${2:?stop-one NAME}" ;;
  start-one) command_start_one "${2:?start-one NAME}" ;;
  *) sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
