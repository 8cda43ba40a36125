#!/usr/bin/env bash
# freeway and the LiteLLM proxy side by side, in one run, in front of the same upstream that
# answers at once: the latency each adds over calling the upstream directly, at several fixed
# request rates, and the ratio of the two.
#
#   bench/litellm.sh                      # 10 s per run, rates 50 100 200 req/s
#   DURATION=30 RATES="25 50 100" bench/litellm.sh
#   LOADGEN=wrk bench/litellm.sh          # paced wrk even when oha is installed
#
# With oha installed (`cargo install oha`) the load is open-loop: requests are sent at the rate
# whether or not earlier ones have returned, and latency is measured from when each was due
# (--latency-correction), so a gateway that falls behind shows its queueing instead of lowering
# the rate it is offered. Without oha, wrk paces each connection (closed loop: a slow gateway is
# offered less).
#
# The first run installs LiteLLM (PyPI `litellm[proxy]`, pinned) into bench/.litellm-venv
# (LITELLM_VENV to use another). Both gateways run one process with default settings, no
# cache, no database; LiteLLM with one uvicorn worker, as its own benchmarks do.
# Needs: wrk (apt-get install wrk), python3 with venv; oha for open-loop load.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
RATES=${RATES:-50 100 200}
CONNECTIONS=${CONNECTIONS:-4}
LOADGEN=${LOADGEN:-$(command -v oha >/dev/null && echo oha || echo wrk)}
# Open loop needs enough connections for the requests in flight when a gateway lags.
OHA_CONNECTIONS=${OHA_CONNECTIONS:-64}
LITELLM_VERSION=1.108.7
LITELLM_VENV=${LITELLM_VENV:-bench/.litellm-venv}
. bench/lib.sh

if ! "$LITELLM_VENV/bin/litellm" --version >/dev/null 2>&1; then
  echo "installing litellm[proxy]==$LITELLM_VERSION into $LITELLM_VENV" >&2
  python3 -m venv "$LITELLM_VENV"
  "$LITELLM_VENV/bin/pip" install --quiet --disable-pip-version-check "litellm[proxy]==$LITELLM_VERSION"
fi

start_upstream
start_freeway < <(standard_config; echo 'api_key = "unused"')

cat >"$tmp/litellm.yaml" <<YAML
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://$upstream/v1
      api_key: unused
litellm_settings:
  telemetry: false
  drop_params: true
general_settings:
  master_key: sk-bench-key
YAML
lport=$((20000 + RANDOM % 20000))
LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR "$LITELLM_VENV/bin/litellm" --config "$tmp/litellm.yaml" --host 127.0.0.1 \
  --port "$lport" --num_workers 1 >"$tmp/litellm.out" 2>&1 &
litellm_pid=$!
trap 'kill "$litellm_pid" 2>/dev/null || true; cleanup' EXIT
for _ in $(seq 600); do
  curl -fs "http://127.0.0.1:$lport/health/liveliness" >/dev/null 2>&1 && break
  kill -0 "$litellm_pid" 2>/dev/null || { tail -20 "$tmp/litellm.out"; exit 1; }
  sleep 0.1
done

# Each path must answer the request with a completion, or the figures measure an error path.
check() { # url model key
  curl -fs "$1/v1/chat/completions" -H "authorization: Bearer $3" -H "content-type: application/json" \
    -d "{\"model\":\"$2\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}" | grep -q '"choices"'
}
check "http://$upstream" gpt-4o-mini unused
check "http://127.0.0.1:$port" up/gpt-4o-mini bench-key
check "http://127.0.0.1:$lport" gpt-4o-mini sk-bench-key

run() { # name url model key rate
  if [ "$LOADGEN" = oha ]; then
    open_loop "$1" "$2" "$3" "$4" "$5" "$OHA_CONNECTIONS"
  else
    BENCH_MODEL=$3 BENCH_KEY=$4 BENCH_RATE=$5 BENCH_CONNECTIONS=$CONNECTIONS \
      wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/paced.lua "$2/v1/chat/completions" >"$tmp/$1.txt"
  fi
}
warm() { BENCH_MODEL=$2 BENCH_KEY=$3 wrk -t1 -c4 -d3s -s bench/chat.lua "$1/v1/chat/completions" >/dev/null; }
warm "http://$upstream" gpt-4o-mini unused
warm "http://127.0.0.1:$port" up/gpt-4o-mini bench-key
warm "http://127.0.0.1:$lport" gpt-4o-mini sk-bench-key

for rate in $RATES; do
  run "direct$rate" "http://$upstream" gpt-4o-mini unused "$rate"
  run "freeway$rate" "http://127.0.0.1:$port" up/gpt-4o-mini bench-key "$rate"
  run "litellm$rate" "http://127.0.0.1:$lport" gpt-4o-mini sk-bench-key "$rate"
done

added() { awk -v a="$(us "$1" "$3")" -v b="$(us "$2" "$3")" 'BEGIN{printf "%.0f", a-b}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b <= 0) b = 1; printf "%.0f×", a/b }'; }
if [ "$LOADGEN" = oha ]; then
  load="oha open loop, -c$OHA_CONNECTIONS, latency from each request's due time"
else
  load="wrk -t1 -c$CONNECTIONS paced"
fi
printf '\nfreeway vs LiteLLM %s (%ss per run, %s, loopback, one process each, 2 cores shared with the load generator and the upstream)\n\n' \
  "$LITELLM_VERSION" "$DURATION" "$load"
printf '| rate | direct p50 / p99 | freeway added p50 / p99 | LiteLLM added p50 / p99 | LiteLLM ÷ freeway (p99) | achieved req/s (direct, freeway, LiteLLM) |\n|---|---|---|---|---|---|\n'
for rate in $RATES; do
  f50=$(added "freeway$rate" "direct$rate" 50%); f99=$(added "freeway$rate" "direct$rate" 99%)
  l50=$(added "litellm$rate" "direct$rate" 50%); l99=$(added "litellm$rate" "direct$rate" 99%)
  printf '| %s/s | %s / %s | %s µs / %s µs | %s µs / %s µs | %s | %s, %s, %s |\n' "$rate" \
    "$(pct "direct$rate" 50%)" "$(pct "direct$rate" 99%)" "$f50" "$f99" "$l50" "$l99" \
    "$(ratio "$l99" "$f99")" "$(rps "direct$rate")" "$(rps "freeway$rate")" "$(rps "litellm$rate")"
done
if [ "$LOADGEN" = oha ]; then
  for rate in $RATES; do
    for gw in direct freeway litellm; do
      grep -q '^non-200: 0 errors: 0$' "$tmp/$gw$rate.txt" || echo "$gw at $rate/s: $(grep non-200 "$tmp/$gw$rate.txt")"
    done
  done
fi
printf '\nRSS after the runs: freeway %s MiB, LiteLLM %s MiB\n' \
  "$(awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$fw_pid/status")" \
  "$(ps -o rss= --ppid "$litellm_pid" -p "$litellm_pid" | awk '{s+=$1} END {printf "%.1f", s/1024}')"
