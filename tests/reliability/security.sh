#!/usr/bin/env bash
# The security checks of scripts/reliability.sh (run by it, after the other tests):
#
#   bash security.sh S3DB_BINARY WORK_DIR GREP_ROOT SECRET...
#
# Prints one line per check, "check NAME: ok" or "check NAME: FAIL <why>"; exits 1 when one
# failed. Needs the test servers' variables (S3DB_TEST_WEBHOOK_URL, ...) and the REL_*
# variables the configs refer to. GREP_ROOT is searched, last, for every SECRET.
set -uo pipefail

s3db=$1 dir=$2 grep_root=$3
shift 3
secrets=("$@")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
failures=0
check() {  # check NAME CONDITION_STATUS DETAIL
  if [[ "$2" == 0 ]]; then
    echo "check $1: ok${3:+ ($3)}"
  else
    echo "check $1: FAIL ${3:-}"
    failures=$((failures + 1))
  fi
}
mkdir -p "$dir/logs"
# Every command's output is kept in $dir/logs, so the secret search covers it.
s3() { "$s3db" "$@" >>"$dir/logs/cli.out" 2>>"$dir/logs/cli.err"; }

# ---- TLS: a self-signed HTTPS receiver is refused unless its certificate is configured ----
tls="$dir/tls"
mkdir -p "$tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
  -addext "subjectAltName=IP:127.0.0.1" -keyout "$tls/key.pem" -out "$tls/cert.pem" \
  >/dev/null 2>&1
node "$here/https_sink.mjs" "$tls/key.pem" "$tls/cert.pem" "$tls/port" "$tls/requests" &
sink_pid=$!
trap 'kill $sink_pid 2>/dev/null' EXIT
for _ in $(seq 100); do [[ -s "$tls/port" ]] && break; sleep 0.05; done
port=$(cat "$tls/port")
: >"$tls/requests"
tls_config() {  # tls_config NAME EXTRA_CONFIG_LINE
  cat >"$tls/$1.yaml" <<EOF
connection: file://$tls/$1/source
stateDir: $tls/$1/state
resources: { items: {} }
replicator:
  maxBackoffMs: 500
  replicators:
    - driver: webhook
      id: hook
      resources: [items]
      config: { url: "https://127.0.0.1:$port/tls", timeout: 2000 $2 }
EOF
}
tls_config default ""
"$s3db" -c "$tls/default.yaml" --wait 4 insert items '{"id":"t1"}' >>"$dir/logs/cli.out" \
  2>"$tls/default.err"
cat "$tls/default.err" >>"$dir/logs/cli.err"
received=$(wc -l <"$tls/requests")
error=$(grep -m1 -oiE '[^:]*certificate[^(]*' "$tls/default.err")
[[ "$received" == 0 && -n "$error" ]] && grep -q "state paused" "$tls/default.err"
check "tls: self-signed receiver refused by default (replicator paused)" $? \
  "requests received: $received, error:${error:0:80}"
tls_config trusted ", caFile: \"$tls/cert.pem\""
s3 -c "$tls/trusted.yaml" --wait 20 insert items '{"id":"t2"}'
received=$(wc -l <"$tls/requests")
[[ "$received" -ge 1 ]]
check "tls: accepted with caFile" $? "requests received: $received"
kill "$sink_pid" 2>/dev/null

# ---- the Lua sandbox reaches no file, process or network ----
lua="$dir/lua"
mkdir -p "$lua"
echo keep >"$lua/victim"
cat >"$lua/config.yaml" <<EOF
connection: file://$lua/source
stateDir: $lua/state
resources: { items: {} }
replicator:
  replicators:
    - driver: s3db
      id: probe
      resources:
        items:
          transform: |
            function(data)
              local function reached(f)
                local ok, value = pcall(f)
                return ok and value ~= nil and value ~= false
              end
              local p = {}
              p.io_open = reached(function() return io.open("/etc/hostname") end)
              p.io_popen = reached(function() return io.popen("id") end)
              p.os_execute = reached(function() return os.execute("touch $lua/created") end)
              p.os_remove = reached(function() return os.remove("$lua/victim") end)
              p.os_getenv = reached(function() return os.getenv("HOME") end)
              p.os_exit = reached(function() return os.exit end)
              p.require = reached(function() return require("io") end)
              p.require_socket = reached(function() return require("socket") end)
              p.package = reached(function() return package.loadlib end)
              p.load = reached(function() return load("return 1") end)
              p.load_bytecode = reached(function() return load(string.dump(function() end), "b", "b") end)
              p.loadstring = reached(function() return loadstring("return 1") end)
              p.dofile = reached(function() return dofile("/etc/hostname") end)
              p.loadfile = reached(function() return loadfile("/etc/hostname") end)
              p.string_dump = reached(function() return string.dump(print) end)
              p.string_meta_dump = reached(function() return getmetatable("").__index.dump end)
              p.debug = reached(function() return debug.getregistry() end)
              p.rawget_io = reached(function() return rawget(_G, "io") end)
              p.collectgarbage = reached(function() return collectgarbage("count") end)
              p.coroutine = reached(function() return coroutine.create end)
              data.probes = p
              return data
            end
      config: { connectionString: "file://$lua/target" }
EOF
s3 -c "$lua/config.yaml" --wait 20 insert items '{"id":"l1"}'
probes=$("$s3db" --connection "file://$lua/target" get items l1 2>>"$dir/logs/cli.err" |
           jq -c .probes)
echo "$probes" >>"$dir/logs/cli.out"
reached=$(jq -r 'to_entries | map(select(.value != false)) | map(.key) | join(",")' \
            <<<"$probes" 2>/dev/null || echo "no result")
[[ -n "$probes" && "$probes" != null && -z "$reached" && ! -e "$lua/created" &&
   -e "$lua/victim" ]]
check "lua: no io, os, require, load, bytecode, debug ($(jq -r 'length' <<<"$probes" 2>/dev/null) probes)" \
  $? "reached: ${reached:-none}"
# A transform that uses io directly fails with a clear error, and the change is dead-lettered.
sed -e 's|id: probe|id: direct|' -e "s|$lua/target|$lua/target2|" \
    -e 's|              data.probes = p|              data.file = io.open("/etc/hostname")|' \
    "$lua/config.yaml" >"$lua/direct.yaml"
sed -i "s|$lua/state|$lua/state2|" "$lua/direct.yaml"
s3 -c "$lua/direct.yaml" --wait 5 insert items '{"id":"l2"}'
letters=$("$s3db" -c "$lua/direct.yaml" dlq list direct 2>>"$dir/logs/cli.err")
echo "$letters" >>"$dir/logs/cli.out"
grep -q "Transform function failed" <<<"$letters" && grep -q "io" <<<"$letters"
check "lua: io.open in a transform is an error, dead-lettered" $? "$(head -c 160 <<<"$letters")"

# ---- export paths stay inside their output folder ----
paths="$dir/paths"
mkdir -p "$paths/out/deep"
cat >"$paths/config.yaml" <<EOF
connection: file://$paths/source
stateDir: $paths/state
resources: { items: {}, orders: {} }
replicator:
  replicators:
    - driver: jsonl
      id: up
      resources: { items: "../../escape-jsonl" }
      config: { outputPath: $paths/out/deep, rotateBy: null }
    - driver: csv
      id: abs
      resources: { orders: "/tmp/escape-csv-$$" }
      config: { outputPath: $paths/out/deep, rotateBy: null }
EOF
s3 -c "$paths/config.yaml" --wait 5 insert items '{"id":"p1"}'
s3 -c "$paths/config.yaml" --wait 5 insert orders '{"id":"p2"}'
outside=$(find "$paths" /tmp -maxdepth 1 -name 'escape-*' 2>/dev/null;
          find "$paths" -name 'escape-*' -not -path "$paths/out/deep/*" \
            -not -path "$paths/state/replicator/drivers/*/*" 2>/dev/null)
outside=$(sort -u <<<"$outside" | grep -v '^$')
[[ -z "$outside" ]]
check "paths: destination names with ../ or / stay inside outputPath" $? \
  "written outside: $(tr '\n' ' ' <<<"$outside")"
rm -f /tmp/escape-csv-$$* 2>/dev/null
# Ids and resource names that try to leave the database folder are refused.
"$s3db" --connection "file://$paths/source" insert items '{"id":"../../evil"}' \
  >>"$dir/logs/cli.out" 2>"$paths/id.err"
status=$?
[[ $status != 0 ]] && grep -q "id" "$paths/id.err" && [[ -z "$(find "$paths" -name 'evil*')" ]]
check "paths: record id ../../evil refused" $? "$(head -c 120 "$paths/id.err")"
"$s3db" --connection "file://$paths/source" resource create '../up' >>"$dir/logs/cli.out" \
  2>"$paths/name.err"
status=$?
[[ $status != 0 ]] && grep -q "resource name" "$paths/name.err"
check "paths: resource name ../up refused" $? "$(head -c 120 "$paths/name.err")"

# ---- errors that carry secrets: unreachable targets with credentials, bad options ----
bad="$dir/bad"
mkdir -p "$bad"
cat >"$bad/config.yaml" <<EOF
connection: file://$bad/source
stateDir: $bad/state
resources: { items: {} }
replicator:
  maxBackoffMs: 500
  replicators:
    - driver: webhook
      id: hook-basic
      resources: [items]
      config:
        url: "http://127.0.0.1:1/x"
        auth: { type: basic, username: u, password: "\${REL_HOOK_PASSWORD}" }
        signingSecret: "\${REL_HOOK_SIGNING}"
        timeout: 500
    - driver: webhook
      id: hook-401
      resources: [items]
      config:
        url: "$S3DB_TEST_WEBHOOK_URL/rel/sec?status=401"
        auth: { type: bearer, token: "\${REL_HOOK_TOKEN}" }
    - driver: postgresql
      id: pg-down
      resources: [items]
      config: { connectionString: "postgresql://postgres:\${REL_PG_SECRET}@127.0.0.1:1/testdb", connectTimeoutMs: 500 }
    - driver: s3db
      id: s3-down
      resources: [items]
      config: { connectionString: "http://AKIDSEC:\${REL_PG_SECRET}@127.0.0.1:1/bucket/x" }
    - driver: sqs
      id: sqs-denied
      resources: [items]
      config:
        endpoint: "http://127.0.0.1:1"
        region: us-east-1
        credentials: { accessKeyId: AKIDSEC, secretAccessKey: "\${REL_SQS_SECRET}" }
        queueUrl: "http://127.0.0.1:1/000000000000/q"
EOF
export REL_HOOK_PASSWORD=${REL_HOOK_PASSWORD:-}
"$s3db" -c "$bad/config.yaml" --log-level debug run --listen 127.0.0.1:0 \
  >"$dir/logs/bad.run.out" 2>"$dir/logs/bad.run.err" &
run_pid=$!
url=""
for _ in $(seq 200); do
  url=$(jq -r '.url // empty' "$bad/state/s3db-cli.lock" 2>/dev/null)
  [[ -n "$url" ]] && break
  sleep 0.05
done
s3 -c "$bad/config.yaml" --wait 2 insert items '{"id":"s1","v":1}'
s3 -c "$bad/config.yaml" --wait 2 update items s1 '{"v":2}'
sleep 4
for endpoint in metrics health stats replicators dlq/hook-basic "replicators/pg-down/stats"; do
  curl -s --max-time 5 "$url/$endpoint" >>"$dir/logs/bad.endpoints.txt"
done
for id in hook-basic hook-401 pg-down s3-down sqs-denied; do
  s3 -c "$bad/config.yaml" replicators stats "$id"
  s3 -c "$bad/config.yaml" dlq list "$id"
done
kill -TERM "$run_pid"
wait "$run_pid"
errors=$(grep -ciE 'error|fail|refused|unauthorized' "$dir/logs/bad.run.err" "$dir/logs/bad.endpoints.txt" |
           awk -F: '{ s += $2 } END { print s + 0 }')
[[ "$errors" -gt 0 ]]
check "secrets: the failing targets produced errors to search" $? "$errors error lines"
# Bad options next to secrets: refused at start, with an error that names the option.
sed 's|timeout: 500|timeout: 500\n        tokn: "${REL_HOOK_TOKEN}"|' "$bad/config.yaml" >"$bad/typo.yaml"
sed -i "s|$bad/state|$bad/state-typo|" "$bad/typo.yaml"
"$s3db" -c "$bad/typo.yaml" run --listen 127.0.0.1:0 >>"$dir/logs/cli.out" 2>"$dir/logs/typo.err"
status=$?
[[ $status != 0 ]] && grep -q "tokn" "$dir/logs/typo.err"
check "secrets: an unknown option is refused by name" $? "$(head -c 160 "$dir/logs/typo.err")"
"$s3db" --connection "http://AKIDSEC:${REL_PG_SECRET}@127.0.0.1:1/bucket" list items \
  >>"$dir/logs/cli.out" 2>>"$dir/logs/cli.err"

# ---- no secret anywhere in what the whole run wrote ----
leaks=""
for secret in "${secrets[@]}"; do
  [[ -n "$secret" ]] || continue
  # Config files hold ${VAR} references, not values; the S3 test pair is written in configs.
  found=$(grep -rlaF --exclude='*.yaml' -- "$secret" "$grep_root" 2>/dev/null | head -n 3)
  [[ -n "$found" ]] && leaks+="${secret:0:6}... in $(tr '\n' ' ' <<<"$found"); "
done
files=$(find "$grep_root" -type f -not -name '*.yaml' | wc -l)
[[ -z "$leaks" ]]
check "secrets: none of ${#secrets[@]} secrets in $files files (logs, errors, /metrics, /health, /stats, dlq, dumps, state)" \
  $? "$leaks"

exit $((failures > 0))
