#!/usr/bin/env bash
# What authentication, rate limits and budgets add per request, over HTTP on loopback, one
# connection, the response cache bypassed (every request reaches the upstream):
#   - the master key (no lookup, no limits): the baseline;
#   - a virtual key with no limits: hashing the secret and the cached key lookup;
#   - a virtual key whose key and team both have rpm, tpm and a budget, counted in memory;
#   - the same with the counters in Redis (127.0.0.1:6379), as several instances would share.
# Every run also writes its ledger rows and audit entries (SQLite, batched off the request
# path), so the differences are the checks alone.
#
#   bench/tenancy.sh            # 10 s per run
#   DURATION=30 bench/tenancy.sh
#
# Needs: wrk (apt-get install wrk), redis-server on 127.0.0.1:6379 for the last run.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
REDIS=${REDIS:-redis://127.0.0.1:6379/}
. bench/lib.sh
start_upstream

config() { # limits-url
  cat <<TOML
[server]
master_key = "bench-key"

[storage]
url = "sqlite://$tmp/freeway-$RANDOM.db"

[limits]
url = "$1"

[cache]
url = "off"

[[providers]]
name = "up"
protocol = "openai"
base_url = "http://$upstream/v1"
models = ["gpt-4o-mini"]
TOML
}

admin() { # method path body
  curl -fs -X "$1" "http://127.0.0.1:$port$2" -H "authorization: Bearer bench-key" \
    -H "content-type: application/json" -d "$3"
}
secret() { python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])'; }
fw() { echo "http://127.0.0.1:$port/v1/chat/completions"; }

run() { # name key
  BENCH_MODEL=up/gpt-4o-mini BENCH_KEY=$2 measure "$1" chat.lua "$(fw)"
}

# Limits that never refuse, so every request pays for every check.
LIMITS='"rpm": 100000000, "tpm": 100000000000, "budget_usd": 1000000'

start_freeway < <(config memory)
admin POST /admin/teams '{"name": "open"}' >/dev/null
admin POST /admin/teams "{\"name\": \"capped\", $LIMITS}" >/dev/null
plain=$(admin POST /admin/keys '{"team": "open", "role": "developer"}' | secret)
capped=$(admin POST /admin/keys "{\"team\": \"capped\", \"role\": \"developer\", $LIMITS}" | secret)
run master bench-key
run key "$plain"
run limits "$capped"
kill "$fw_pid"; wait "$fw_pid" 2>/dev/null || true

redis_ok=no
if redis-cli -u "$REDIS" ping 2>/dev/null | grep -q PONG; then
  redis_ok=yes
  start_freeway < <(config "$REDIS")
  admin POST /admin/teams "{\"name\": \"capped\", $LIMITS}" >/dev/null
  capped=$(admin POST /admin/keys "{\"team\": \"capped\", \"role\": \"developer\", $LIMITS}" | secret)
  run redis "$capped"
fi

printf '\nfreeway auth, rate-limit and budget overhead (%ss per run, wrk -t1 -c1, loopback, cache off, 2 cores shared by wrk, freeway and the upstream)\n\n' "$DURATION"
printf '| run | p50 | p99 | requests/s | p50 over master | p99 over master |\n|---|---|---|---|---|---|\n'
row() { printf '| %s | %s | %s | %s | %s | %s |\n' "$2" "$(pct "$1" 50%)" "$(pct "$1" 99%)" "$(rps "$1")" "$(delta "$1" master 50%)" "$(delta "$1" master 99%)"; }
row master "master key (no checks)"
row key "virtual key, no limits"
row limits "virtual key, key+team rpm/tpm/budget, memory counters"
[ "$redis_ok" = yes ] && row redis "virtual key, key+team rpm/tpm/budget, Redis counters"
if [ -s "$tmp/fw.err" ]; then echo "freeway stderr:"; tail -5 "$tmp/fw.err"; fi
