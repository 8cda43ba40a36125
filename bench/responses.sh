#!/usr/bin/env bash
# What the Responses ingress adds over Chat Completions for the same request, over HTTP on
# loopback, one connection, the response cache off, the master key: the same prompt sent to
# /v1/chat/completions (bench/chat.lua) and to /v1/responses (bench/responses.lua), both
# answered by the same upstream through the openai protocol. `store: false` measures the
# translation alone; `store: true` adds keeping the response and its conversation (SQLite).
#
#   bench/responses.sh            # 10 s per run
#   DURATION=30 bench/responses.sh
#
# Needs: wrk (apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
. bench/lib.sh
start_upstream

start_freeway < <(standard_config)

run() { # name script path [store]
  BENCH_MODEL=up/gpt-4o-mini BENCH_STORE=${4:-false} measure "$1" "$2" "http://127.0.0.1:$port$3"
}
# Each answer must be a success, or the figures measure an error path.
curl -fs "http://127.0.0.1:$port/v1/responses" -H "authorization: Bearer bench-key" \
  -H "content-type: application/json" \
  -d '{"model":"up/gpt-4o-mini","input":"hi","store":false}' | grep -q '"status":"completed"'

run chat chat.lua /v1/chat/completions
run responses responses.lua /v1/responses false
run stored responses.lua /v1/responses true

printf '\nResponses ingress over Chat Completions (%ss per run, wrk -t1 -c1, loopback, cache off, 2 cores shared by wrk, freeway and the upstream)\n\n' "$DURATION"
printf '| run | p50 | p99 | requests/s | p50 over chat | p99 over chat |\n|---|---|---|---|---|---|\n'
row() { printf '| %s | %s | %s | %s | %s | %s |\n' "$2" "$(pct "$1" 50%)" "$(pct "$1" 99%)" "$(rps "$1")" "$(delta "$1" chat 50%)" "$(delta "$1" chat 99%)"; }
row chat "POST /v1/chat/completions"
row responses "POST /v1/responses, store false"
row stored "POST /v1/responses, store true (SQLite)"
if [ -s "$tmp/fw.err" ]; then echo "freeway stderr:"; tail -5 "$tmp/fw.err"; fi
