#!/usr/bin/env bash
# What routing and the response cache cost over HTTP, on loopback:
#   - a route of three fallback targets (the first answers) against the same model addressed
#     directly, one connection, cache bypassed: the routing overhead;
#   - a cache hit at about 2,000 requests/s (5 connections, each waiting 2 ms between requests;
#     wrk has no fixed-rate mode) against the same request proxied to the upstream, and sent to
#     the upstream directly, at the same pace. At this pace the machine idles between requests,
#     so every request also pays for waking the processes: the direct run shows that floor.
#
#   bench/routing.sh            # 10 s per run
#   DURATION=30 RATE=2000 bench/routing.sh
#
# Needs: wrk (apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
RATE=${RATE:-2000}
CONNECTIONS=5
. bench/lib.sh
start_upstream

start_freeway <<TOML
[server]
master_key = "bench-key"

# Every request writes its ledger row and audit entry here (batched, off the request path).
[storage]
url = "sqlite://$tmp/freeway.db"

[cache]
url = "memory"

[[providers]]
name = "up"
protocol = "openai"
base_url = "http://$upstream/v1"
models = ["gpt-4o-mini"]

[[routes]]
name = "three"
targets = ["up/gpt-4o-mini", "up/gpt-4o", "up/gpt-4.1"]
strategy = "fallback"
TOML
fw="http://127.0.0.1:$port/v1/chat/completions"

run() { # name model header script connections [url]
  BENCH_MODEL=$2 BENCH_HEADER=$3 BENCH_RATE=$RATE BENCH_CONNECTIONS=$5 \
    wrk -t1 -c"$5" -d"${DURATION}s" --latency -s "bench/$4" "${6:-$fw}" >"$tmp/$1.txt"
}

# Warm the pools, and put the answer in the cache.
BENCH_MODEL=three wrk -t1 -c4 -d2s -s bench/chat.lua "$fw" >/dev/null
BENCH_MODEL=up/gpt-4o-mini wrk -t1 -c1 -d1s -s bench/chat.lua "$fw" >/dev/null

run direct up/gpt-4o-mini "x-freeway-cache: bypass" chat.lua 1
run route3 three "x-freeway-cache: bypass" chat.lua 1
run upstream gpt-4o-mini "" paced.lua $CONNECTIONS "http://$upstream/v1/chat/completions"
run proxied up/gpt-4o-mini "x-freeway-cache: bypass" paced.lua $CONNECTIONS
upstream_calls() { curl -fs "http://$upstream/_mock/calls" | sed -n 's/.*"gpt-4o-mini":\([0-9]*\).*/\1/p'; }
before_hits=$(upstream_calls)
run hit up/gpt-4o-mini "" paced.lua $CONNECTIONS
hit_calls=$(( $(upstream_calls) - before_hits ))

printf '\nfreeway routing and cache benchmark (%ss per run, wrk -t1, loopback, 2 cores shared by wrk, freeway and the upstream)\n\n' "$DURATION"
printf '| run | connections | p50 | p99 | requests/s |\n|---|---|---|---|---|\n'
printf '| direct up/gpt-4o-mini, cache bypassed | 1 | %s | %s | %s |\n' "$(pct direct 50%)" "$(pct direct 99%)" "$(rps direct)"
printf '| route of 3 fallback targets, cache bypassed | 1 | %s | %s | %s |\n' "$(pct route3 50%)" "$(pct route3 99%)" "$(rps route3)"
printf '| the upstream directly, paced | %s | %s | %s | %s |\n' "$CONNECTIONS" "$(pct upstream 50%)" "$(pct upstream 99%)" "$(rps upstream)"
printf '| proxied to the upstream, paced | %s | %s | %s | %s |\n' "$CONNECTIONS" "$(pct proxied 50%)" "$(pct proxied 99%)" "$(rps proxied)"
printf '| cache hit, paced | %s | %s | %s | %s |\n' "$CONNECTIONS" "$(pct hit 50%)" "$(pct hit 99%)" "$(rps hit)"
printf '\nroute of 3 over direct: p50 %+.0f µs, p99 %+.0f µs\n' \
  "$(awk -v a="$(to_us "$(pct route3 50%)")" -v b="$(to_us "$(pct direct 50%)")" 'BEGIN{print a-b}')" \
  "$(awk -v a="$(to_us "$(pct route3 99%)")" -v b="$(to_us "$(pct direct 99%)")" 'BEGIN{print a-b}')"
printf 'upstream requests during the cache-hit run: %s\n' "$hit_calls"
if [ -s "$tmp/fw.err" ]; then echo "freeway stderr:"; tail -5 "$tmp/fw.err"; fi
