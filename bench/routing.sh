#!/usr/bin/env bash
# What routing and the response cache cost over HTTP, on loopback:
#   - a route of three fallback targets (the first answers) against the same model addressed
#     directly, one connection, cache bypassed: the routing overhead;
#   - a cache hit at a fixed 2,000 requests/s (4 connections at 500/s each) against the same
#     request proxied to the upstream at the same rate.
#
#   bench/routing.sh            # 10 s per run
#   DURATION=30 RATE=2000 bench/routing.sh
#
# Needs: wrk (apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
RATE=${RATE:-2000}
CONNECTIONS=4
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

cargo build --release -q -p freeway-cli -p freeway-testkit
BIN=target/release
tmp=$(mktemp -d)
cleanup() { kill "${mock_pid:-}" "${fw_pid:-}" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

"$BIN/freeway-mock-upstream" --listen 127.0.0.1:0 >"$tmp/mock.out" &
mock_pid=$!
for _ in $(seq 100); do grep -q listening "$tmp/mock.out" 2>/dev/null && break; sleep 0.05; done
upstream=$(sed -n 's/.*listening on //p' "$tmp/mock.out")

cat >"$tmp/freeway.toml" <<TOML
[server]
master_key = "bench-key"

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
port=$((20000 + RANDOM % 20000))
FREEWAY_LOG=warn "$BIN/freeway" serve --config "$tmp/freeway.toml" --listen "127.0.0.1:$port" 2>"$tmp/fw.err" &
fw_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
fw="http://127.0.0.1:$port/v1/chat/completions"

run() { # name model header script connections
  BENCH_MODEL=$2 BENCH_HEADER=$3 BENCH_RATE=$RATE BENCH_CONNECTIONS=$5 \
    wrk -t1 -c"$5" -d"${DURATION}s" --latency -s "bench/$4" "$fw" >"$tmp/$1.txt"
}
pct() { awk -v p="$2" '$1 == p {print $2}' "$tmp/$1.txt"; }
rps() { awk '/Requests\/sec/ {print $2}' "$tmp/$1.txt"; }
to_us() { # wrk prints 52.00us / 1.23ms / 1.02s
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else print n * 1000000 }'
}

# Warm the pools, and put the answer in the cache.
BENCH_MODEL=three wrk -t1 -c4 -d2s -s bench/chat.lua "$fw" >/dev/null

run direct up/gpt-4o-mini "x-freeway-cache: bypass" chat.lua 1
run route3 three "x-freeway-cache: bypass" chat.lua 1
run proxied up/gpt-4o-mini "x-freeway-cache: bypass" paced.lua $CONNECTIONS
run hit up/gpt-4o-mini "" paced.lua $CONNECTIONS
upstream_calls=$(curl -fs "http://$upstream/_mock/calls")

printf '\nfreeway routing and cache benchmark (%ss per run, wrk -t1, loopback, 2 cores shared by wrk, freeway and the upstream)\n\n' "$DURATION"
printf '| run | connections | p50 | p99 | requests/s |\n|---|---|---|---|---|\n'
printf '| direct up/gpt-4o-mini, cache bypassed | 1 | %s | %s | %s |\n' "$(pct direct 50%)" "$(pct direct 99%)" "$(rps direct)"
printf '| route of 3 fallback targets, cache bypassed | 1 | %s | %s | %s |\n' "$(pct route3 50%)" "$(pct route3 99%)" "$(rps route3)"
printf '| proxied to the upstream at %s/s | %s | %s | %s | %s |\n' "$RATE" "$CONNECTIONS" "$(pct proxied 50%)" "$(pct proxied 99%)" "$(rps proxied)"
printf '| cache hit at %s/s | %s | %s | %s | %s |\n' "$RATE" "$CONNECTIONS" "$(pct hit 50%)" "$(pct hit 99%)" "$(rps hit)"
printf '\nroute of 3 over direct: p50 %+.0f µs, p99 %+.0f µs\n' \
  "$(awk -v a="$(to_us "$(pct route3 50%)")" -v b="$(to_us "$(pct direct 50%)")" 'BEGIN{print a-b}')" \
  "$(awk -v a="$(to_us "$(pct route3 99%)")" -v b="$(to_us "$(pct direct 99%)")" 'BEGIN{print a-b}')"
printf 'upstream chat requests per model: %s\n' "$upstream_calls"
if [ -s "$tmp/fw.err" ]; then echo "freeway stderr:"; tail -5 "$tmp/fw.err"; fi
